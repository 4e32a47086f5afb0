"""Pure parts of the plugin's runner: command line, progress protocol, environment (no QGIS)."""

from __future__ import annotations

import json

import pytest

from jess_geo_qgis.runner import (
    ClassEntry,
    PredictRequest,
    build_predict_command,
    clean_environment,
    error_from_stderr,
    expected_outputs,
    parse_classes,
    parse_progress_line,
)


def test_minimal_command_uses_demo_model_and_defaults():
    command = build_predict_command("/env/bin/jess-geo", PredictRequest(scene="/data/a.tif"))
    assert command == ["/env/bin/jess-geo", "predict", "--device", "auto", "--json-progress", "--", "/data/a.tif"]


def test_full_command_passes_every_option():
    request = PredictRequest(
        scene="/data/a.tif", model="/m/crust.pt", classes_path="/o/c.tif", vector_path="/o/p.gpkg",
        probabilities_path="/o/p.tif", energy_path="/o/e.tif", tile_size=256, overlap=0,
        device="cpu", min_area=12.5, simplify=1.0, overwrite=True,
    )
    command = build_predict_command("jess-geo", request)
    assert command[:2] == ["jess-geo", "predict"] and command[-2:] == ["--", "/data/a.tif"]
    pairs = {command[i]: command[i + 1] for i in range(2, len(command) - 3) if command[i].startswith("-")}
    assert pairs["--model"] == "/m/crust.pt"
    assert pairs["-o"] == "/o/c.tif"
    assert pairs["--vector"] == "/o/p.gpkg"
    assert pairs["--probabilities"] == "/o/p.tif"
    assert pairs["--energy"] == "/o/e.tif"
    assert pairs["--tile-size"] == "256"
    assert pairs["--overlap"] == "0"
    assert pairs["--device"] == "cpu"
    assert pairs["--min-area"] == "12.5"
    assert pairs["--simplify"] == "1"
    assert "--overwrite" in command and "--json-progress" in command


def test_scene_named_like_an_option_stays_a_scene():
    command = build_predict_command("x", PredictRequest(scene="-v.tif"))
    assert command[-2:] == ["--", "-v.tif"]


def test_no_vector_wins_over_a_vector_path():
    command = build_predict_command("x", PredictRequest(scene="a.tif", vector=False, vector_path="p.gpkg"))
    assert "--no-vector" in command and "--vector" not in command


@pytest.mark.parametrize(
    "request_kwargs",
    [{"scene": ""}, {"scene": "a.tif", "device": "tpu"}, {"scene": "a.tif", "tile_size": 0},
     {"scene": "a.tif", "overlap": -3}],
)
def test_impossible_requests_are_refused_with_a_sentence(request_kwargs):
    with pytest.raises(ValueError) as error:
        build_predict_command("x", PredictRequest(**request_kwargs))
    assert str(error.value).endswith(".")


def test_expected_outputs_include_defaults_beside_the_scene():
    outputs = expected_outputs(PredictRequest(scene="/d/site.tif"))
    assert outputs[:2] == ["/d/site_classes.tif", "/d/site_classes.gpkg"]
    assert "/d/site_cover.csv" in outputs and "/d/site_cover.json" in outputs
    no_vector = expected_outputs(PredictRequest(scene="/d/site.tif", vector=False, classes_path="/o/x.tif"))
    assert "/d/site_classes.gpkg" not in no_vector and no_vector[0] == "/o/x.tif"


def test_progress_lines_are_parsed():
    event = parse_progress_line(json.dumps(
        {"stage": "predict", "done": 3, "total": 12, "percent": 25.0, "message": "tile 3/12"}) + "\n")
    assert (event.stage, event.done, event.total, event.percent, event.message) == ("predict", 3, 12, 25.0, "tile 3/12")


def test_done_line_carries_outputs_and_classes():
    line = json.dumps({
        "stage": "done", "percent": 100.0,
        "outputs": {"classes": "/o/c.tif", "vector": "/o/c.gpkg", "probabilities": None, "energy": None},
        "classes": [{"id": 0, "name": "soil", "color": "#AABBCC"}, {"id": 7, "name": "cyano", "color": "#112233"}],
    })
    event = parse_progress_line(line)
    assert event.outputs == {"classes": "/o/c.tif", "vector": "/o/c.gpkg", "probabilities": None, "energy": None}
    assert event.classes == [ClassEntry(0, "soil", "#aabbcc"), ClassEntry(7, "cyano", "#112233")]


def test_error_line_gives_the_sentence():
    event = parse_progress_line('{"stage": "error", "error": "The model file x.pt is truncated; re-export it."}')
    assert event.stage == "error" and event.error == "The model file x.pt is truncated; re-export it."


@pytest.mark.parametrize("line", ["", "loading model...", "{not json", "[1, 2]", '{"percent": 3}', '{"stage": 5}'])
def test_other_lines_are_ignored(line):
    assert parse_progress_line(line) is None


def test_classes_without_colour_or_name_get_stable_fallbacks():
    classes = parse_classes([{"id": 2}, {"id": 3, "name": "moss", "color": "red"}, "junk", {"name": "no id"}])
    assert [c.id for c in classes] == [2, 3]
    assert classes[0].name == "class 2"
    assert all(c.color.startswith("#") and len(c.color) == 7 for c in classes)
    assert parse_classes([{"id": 2}]) == parse_classes([{"id": 2}])


def test_clean_environment_drops_qgis_python_gdal_and_proj():
    env = clean_environment({
        "PATH": "/usr/bin", "HOME": "/h", "PYTHONPATH": "/qgis/python", "PYTHONHOME": "/x",
        "PROJ_LIB": "/qgis/proj", "PROJ_DATA": "/p", "GDAL_DATA": "/qgis/gdal", "LANG": "C",
    })
    assert env == {"PATH": "/usr/bin", "HOME": "/h", "LANG": "C"}


def test_error_sentence_is_taken_from_stderr():
    stderr = "Warning: something\njess-geo: error: The scene /x.tif does not exist; check the path.\n"
    assert error_from_stderr(stderr) == "The scene /x.tif does not exist; check the path."
    assert error_from_stderr("Error: No such option: --bogus\n") == "No such option: --bogus"
    assert error_from_stderr("Traceback (most recent call last):\n  boom\n") == ""


# --- the same runner against the real engine (skipped until `jess-geo predict` exists) -----

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402

from jess_geo_qgis.runner import Canceled, Failed, Success, run_predict  # noqa: E402
from plugin_testing import REPO, find_jess_geo  # noqa: E402


@pytest.fixture(scope="module")
def engine() -> str:
    exe = find_jess_geo()
    if not exe:
        pytest.skip("jess-geo is not installed: set JESS_GEO_EXE or create <repo>/.venv")
    helped = subprocess.run([exe, "predict", "--help"], capture_output=True, text=True, timeout=900)
    if helped.returncode != 0 or "--json-progress" not in helped.stdout:
        pytest.skip("`jess-geo predict --json-progress` is not available yet")
    model = os.environ.get("JESS_GEO_TEST_MODEL", "")
    info = subprocess.run([exe, "info", *([model] if model else []), "--json"], capture_output=True, text=True, timeout=900)
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


def test_run_predict_reports_progress_outputs_and_classes(engine, sample_scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    events = []
    request = PredictRequest(scene=sample_scene, model=os.environ.get("JESS_GEO_TEST_MODEL", ""),
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


def test_run_predict_cancel_leaves_nothing(engine, sample_scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    started = []
    request = PredictRequest(scene=sample_scene, model=os.environ.get("JESS_GEO_TEST_MODEL", ""),
                             classes_path=str(out / "c.tif"), vector_path=str(out / "p.gpkg"),
                             tile_size=64, overlap=16, device="cpu")
    outcome = run_predict(engine, request, on_progress=started.append, is_canceled=lambda: bool(started))
    assert isinstance(outcome, Canceled), outcome
    assert os.listdir(out) == []
    assert sorted(os.listdir(os.path.dirname(sample_scene))) == ["scene.tif"]


def test_run_predict_missing_scene_gives_the_engine_sentence(engine, tmp_path):
    request = PredictRequest(scene=str(tmp_path / "nothing.tif"), model=os.environ.get("JESS_GEO_TEST_MODEL", ""),
                             device="cpu")
    outcome = run_predict(engine, request)
    assert isinstance(outcome, Failed)
    assert "nothing.tif" in outcome.message and "Traceback" not in outcome.message and "\n" not in outcome.message
