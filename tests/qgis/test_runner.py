"""The plugin's runner against the real engine: progress, outputs, cancel, error sentences.

The pure parts (command lines, the JSON protocol) are tested in tests/test_plugin_*.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from jess_geo_qgis.protocol import Canceled, Failed, Success
from jess_geo_qgis.request import PredictRequest
from jess_geo_qgis.runner import run_predict
from plugin_testing import REPO, find_jess_geo


@pytest.fixture(scope="module")
def engine(model_path) -> str:
    exe = find_jess_geo()
    if not exe:
        pytest.skip("jess-geo is not installed: set JESS_GEO_EXE or create <repo>/.venv")
    helped = subprocess.run([exe, "predict", "--help"], capture_output=True, text=True, timeout=900)
    if helped.returncode != 0 or "--dry-run" not in helped.stdout:
        pytest.skip("`jess-geo predict --dry-run` (output plan) is not available yet")
    info = subprocess.run([exe, "info", *([model_path] if model_path else []), "--json"], capture_output=True, text=True, timeout=900)
    if info.returncode != 0:
        pytest.skip(f"no model to predict with: {info.stderr.strip()[-200:]}")
    return exe


@pytest.fixture
def sample_scene(tmp_path):
    source = REPO / "sample_data" / "scene.tif"
    if not source.is_file():
        pytest.skip("sample_data/scene.tif is missing")
    folder = tmp_path / "in"
    folder.mkdir()
    return str(shutil.copy(source, folder / "scene.tif"))


def test_run_predict_reports_progress_outputs_and_classes(engine, model_path, sample_scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    events = []
    request = PredictRequest(scene=sample_scene, model=model_path,
                             classes_path=str(out / "c.tif"), vector_path=str(out / "p.gpkg"), device="cpu")
    outcome = run_predict(engine, request, on_progress=events.append)
    assert isinstance(outcome, Success), outcome
    assert outcome.outputs["classes"] == str(out / "c.tif") and os.path.isfile(out / "c.tif")
    assert outcome.outputs["vector"] == str(out / "p.gpkg") and os.path.isfile(out / "p.gpkg")
    assert outcome.classes and all(c.color.startswith("#") for c in outcome.classes)
    stages = [e.stage for e in events]
    assert "predict" in stages and stages[-1] == "done"
    percents = [e.percent for e in events if e.stage == "predict"]
    assert percents == sorted(percents)


def test_run_predict_cancel_leaves_nothing(engine, model_path, sample_scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    started = []
    request = PredictRequest(scene=sample_scene, model=model_path,
                             classes_path=str(out / "c.tif"), vector_path=str(out / "p.gpkg"),
                             tile_size=64, overlap=16, device="cpu")
    outcome = run_predict(engine, request, on_progress=started.append, is_canceled=lambda: bool(started))
    assert isinstance(outcome, Canceled), outcome
    assert os.listdir(out) == []
    assert sorted(os.listdir(os.path.dirname(sample_scene))) == ["scene.tif"]


def test_run_predict_missing_scene_gives_the_engine_sentence(engine, model_path, tmp_path):
    request = PredictRequest(scene=str(tmp_path / "nothing.tif"), model=model_path,
                             device="cpu")
    outcome = run_predict(engine, request)
    assert isinstance(outcome, Failed)
    assert "nothing.tif" in outcome.message and "Traceback" not in outcome.message and "\n" not in outcome.message


def test_run_predict_reports_the_files_the_engine_wrote(engine, model_path, sample_scene, tmp_path):
    """Issue 9's drift case: -o /o/x_classes.tif writes /o/x_classes.gpkg and /o/x_cover.csv."""
    out = tmp_path / "o"
    out.mkdir()
    request = PredictRequest(scene=sample_scene, model=model_path,
                             classes_path=str(out / "x_classes.tif"), device="cpu")
    outcome = run_predict(engine, request)
    assert isinstance(outcome, Success), outcome
    reported = {path for key, path in outcome.outputs.items() if path and key != "vector_layer"}
    sidecar = (".aux.xml", ".qml")  # the class raster's category names/RAT and QGIS style travel with it
    written = {str(p) for p in out.iterdir() if not p.name.endswith(sidecar)} | {
        str(p) for p in (tmp_path / "in").iterdir() if p.name != "scene.tif" and not p.name.endswith(sidecar)}
    assert reported == written
    assert {str(out / "x_classes.gpkg"), str(out / "x_cover.csv")} <= written
