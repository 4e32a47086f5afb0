"""The QGIS plugin's predict requests: form rules, command lines, and names taken from the engine.

Pure (no QGIS): the plugin's own modules are imported from qgis_plugin/, and the engine's
answers come from the real `jess-geo` command line run in this process.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qgis_plugin"))

from jess_geo_qgis.protocol import parse_plans  # noqa: E402
from jess_geo_qgis.request import (  # noqa: E402
    PredictForm,
    PredictRequest,
    build_predict_command,
    planning_request,
    proposals,
    request_from_form,
)


def test_minimal_command_uses_demo_model_and_defaults():
    command = build_predict_command("/env/bin/jess-geo", PredictRequest(scene="/data/a.tif"))
    assert command == ["/env/bin/jess-geo", "predict", "--device", "auto", "--json-progress", "--", "/data/a.tif"]
    dry = build_predict_command("jess-geo", PredictRequest(scene="/data/a.tif"), dry_run=True)
    assert dry[-4:] == ["--dry-run", "--json", "--", "/data/a.tif"] and "--json-progress" not in dry


def test_full_command_passes_every_option():
    request = PredictRequest(
        scene="/data/a.tif", model="/m/crust.onnx", classes_path="/o/c.tif", vector_path="/o/p.fgb",
        probabilities_path="/o/p.tif", energy_path="/o/e.tif", tile_size=256, overlap=0,
        device="cpu", min_area=12.5, simplify=1.0, overwrite=True,
    )
    command = build_predict_command("jess-geo", request)
    assert command[:2] == ["jess-geo", "predict"] and command[-2:] == ["--", "/data/a.tif"]
    pairs = {command[i]: command[i + 1] for i in range(2, len(command) - 3) if command[i].startswith("-")}
    assert pairs["--model"] == "/m/crust.onnx"
    assert (pairs["-o"], pairs["--vector"], pairs["--probabilities"], pairs["--energy"]) == (
        "/o/c.tif", "/o/p.fgb", "/o/p.tif", "/o/e.tif")
    assert (pairs["--tile-size"], pairs["--overlap"], pairs["--device"]) == ("256", "0", "cpu")
    assert (pairs["--min-area"], pairs["--simplify"]) == ("12.5", "1")
    assert "--overwrite" in command and "--json-progress" in command


def test_scene_named_like_an_option_stays_a_scene():
    assert build_predict_command("x", PredictRequest(scene="-v.tif"))[-2:] == ["--", "-v.tif"]


def test_no_vector_wins_over_a_vector_path():
    command = build_predict_command("x", PredictRequest(scene="a.tif", vector=False, vector_path="p.gpkg"))
    assert "--no-vector" in command and "--vector" not in command


@pytest.mark.parametrize(
    "request_kwargs",
    [{"scene": ""}, {"scene": "a.tif", "device": "tpu"}, {"scene": "a.tif", "tile_size": 0},
     {"scene": "a.tif", "overlap": -3}, {"scene": "a.tif", "min_area": -1.0}],
)
def test_impossible_requests_are_refused_with_a_sentence(request_kwargs):
    with pytest.raises(ValueError) as error:
        build_predict_command("x", PredictRequest(**request_kwargs))
    assert str(error.value).endswith(".")


def test_form_defaults_become_engine_defaults():
    request = request_from_form(PredictForm(scene="/d/a.tif", classes=" ", vector="", tile_size=0, overlap=-1))
    assert (request.classes_path, request.vector_path, request.tile_size, request.overlap) == ("", "", None, None)
    assert request.vector and request.probabilities_path == ""


@pytest.mark.parametrize("form, sentence", [
    (PredictForm(scene="", scene_problem="Layer 'x' is a memory layer; save it."), "Layer 'x' is a memory layer"),
    (PredictForm(scene="/d/a.tif", probabilities_on=True), "Choose where to write the probabilities raster"),
    (PredictForm(scene="/d/a.tif", energy_on=True, energy=" "), "Choose where to write the energy raster"),
])
def test_form_problems_are_one_sentence(form, sentence):
    with pytest.raises(ValueError, match=sentence):
        request_from_form(form)


def test_unticked_outputs_are_not_passed():
    request = request_from_form(PredictForm(scene="/d/a.tif", vector_on=False, vector="/o/p.gpkg",
                                            probabilities=" /o/p.tif", energy_on=True, energy="/o/e.tif"))
    assert (request.vector, request.vector_path, request.probabilities_path, request.energy_path) == (
        False, "", "", "/o/e.tif")


def test_planning_keeps_the_users_names_and_drops_the_last_proposals():
    auto = {"classes": "/d/old_classes.tif", "vector": "/d/old_classes.gpkg"}
    form = PredictForm(scene="/d/new.tif", classes="/d/old_classes.tif", vector="/mine/p.gpkg",
                       probabilities_on=True, probabilities="/o/p.tif")
    request = planning_request(form, auto)
    assert (request.classes_path, request.vector_path, request.probabilities_path) == ("", "/mine/p.gpkg", "")
    assert request.overwrite  # existing files must not stop the proposals


def test_proposals_fill_only_empty_or_proposed_fields():
    plan = parse_plans('{"stage": "plan", "scene": "/d/new.tif", "outputs": {"classes": "/d/new_classes.tif",'
                       ' "vector": "/d/new_classes.gpkg"}}')[0]
    auto = {"classes": "/d/old_classes.tif", "vector": "/d/old_classes.gpkg"}
    assert proposals({"classes": "/d/old_classes.tif", "vector": ""}, auto, plan) == {
        "classes": "/d/new_classes.tif", "vector": "/d/new_classes.gpkg"}
    assert proposals({"classes": "/mine/c.tif", "vector": "/mine/p.gpkg"}, auto, plan) == {}


# --- names from the real engine: the drift case of issue 9 ----------------------------------

def test_expected_outputs_are_the_files_the_engine_writes(run_cli, repo_root, tmp_path):
    """-o /o/x_classes.tif: the plugin once expected /d/site_classes.gpkg and /o/x_classes_cover.csv."""
    data, out = tmp_path / "d", tmp_path / "o"
    data.mkdir()
    out.mkdir()
    scene = shutil.copy(repo_root / "sample_data" / "scene.tif", data / "site.tif")
    request = PredictRequest(scene=str(scene), classes_path=str(out / "x_classes.tif"), device="cpu")

    planned = run_cli(*build_predict_command("jess-geo", request, dry_run=True)[1:])
    assert planned.exit_code == 0, planned.stderr
    expected = parse_plans(planned.stdout)[0].files()
    assert sorted(p.name for p in data.iterdir()) == ["site.tif"] and list(out.iterdir()) == []

    ran = run_cli(*build_predict_command("jess-geo", request)[1:])
    assert ran.exit_code == 0, ran.stderr
    written = {str(p) for p in out.iterdir()} | {str(p) for p in data.iterdir() if p.name != "site.tif"}
    # Sidecars of the class raster (GDAL's .aux.xml attribute table, QGIS's .qml style) come with it.
    sidecars = {str(out / "x_classes.tif.aux.xml"), str(out / "x_classes.qml")}
    assert sorted(expected) == sorted(written - sidecars)
    assert str(out / "x_classes.gpkg") in expected and str(out / "x_cover.csv") in expected


@pytest.mark.parametrize("path, refused", [
    ("memory:", True), ("memory:polygons", True), ("postgres:dbname=x", True), ("ogr:dbname='/x.gpkg'", True),
    ("/o/p.gpkg", False), ("C:\\o\\p.gpkg", False), ("/o/a:b.tif", False), ("relative.fgb", False),
])
def test_destinations_that_are_not_files_are_refused(path, refused):
    from jess_geo_qgis.request import file_output_problem

    problem = file_output_problem(path, "Polygons")
    assert bool(problem) == refused
    if refused:
        assert problem.startswith("Polygons: jess-geo writes files") and problem.endswith(".")


def test_area_and_bands_reach_the_command_line():
    from jess_geo_qgis.request import PredictRequest, build_predict_command

    box = PredictRequest(scene="/d/s.tif", bbox=(1.0, 2.0, 3.5, 4.0), bbox_crs="EPSG:3857", bands=(3, 2, 1))
    command = build_predict_command("jess-geo", box)
    at = command.index("--bbox")
    assert command[at:at + 7] == ["--bbox", "1.0", "2.0", "3.5", "4.0", "--bbox-crs", "EPSG:3857"]
    assert command[command.index("--bands") + 1] == "3,2,1"
    aoi = build_predict_command("jess-geo", PredictRequest(scene="/d/s.tif", aoi_path="/tmp/a.gpkg"))
    assert aoi[aoi.index("--aoi") + 1] == "/tmp/a.gpkg" and "--bbox" not in aoi
    with pytest.raises(ValueError, match="extent is empty"):
        build_predict_command("jess-geo", PredictRequest(scene="/d/s.tif", bbox=(1.0, 2.0, 1.0, 4.0)))


def test_test_time_augmentation_reaches_the_engine(run_cli, repo_root):
    """The form's TTA choice becomes `--tta`, which the engine accepts and records in its plan."""
    form = PredictForm(scene=str(repo_root / "sample_data" / "scene.tif"), tta="d4", device="cpu")
    request = request_from_form(form)
    command = build_predict_command("jess-geo", request, dry_run=True)
    assert command[command.index("--tta") + 1] == "d4"
    assert "--tta" not in build_predict_command("jess-geo", PredictRequest(scene="a.tif"))
    planned = run_cli(*command[1:])
    assert planned.exit_code == 0, planned.stderr
    assert '"tta": "d4"' in planned.stdout
    with pytest.raises(ValueError, match="test-time augmentation"):
        build_predict_command("x", PredictRequest(scene="a.tif", tta="rot90"))
