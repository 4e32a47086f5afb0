"""The QGIS plugin's reading of the engine's JSON lines (pure: runs without QGIS)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qgis_plugin"))

from jess_geo_qgis.protocol import (  # noqa: E402
    ClassEntry,
    error_from_stderr,
    failure_message,
    notices,
    parse_classes,
    parse_plans,
    parse_progress_line,
)
from jess_geo_qgis.runner import clean_environment  # noqa: E402


def test_pure_plugin_modules_do_not_import_qgis():
    import jess_geo_qgis.environment  # noqa: F401
    import jess_geo_qgis.request  # noqa: F401

    assert not [name for name in sys.modules if name == "qgis" or name.startswith("qgis.")]


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


PLAN = {
    "stage": "plan", "scene": "/d/site.tif",
    "outputs": {"classes": "/o/x_classes.tif", "vector": "/o/x_classes.gpkg", "vector_layer": "classes",
                "probabilities": None, "energy": None, "cover_csv": "/o/x_cover.csv", "cover_json": "/o/x_cover.json"},
    "tiles": 2, "working_size": [300, 200], "tile_size": 256, "overlap": 32, "scale": 1.0,
}


def test_plan_line_gives_every_file_and_leaves_out_the_layer_name():
    plans = parse_plans("loading\n" + json.dumps(PLAN) + "\n" + json.dumps(dict(PLAN, scene="/d/b.tif")) + "\n")
    assert [p.scene for p in plans] == ["/d/site.tif", "/d/b.tif"]
    plan = plans[0]
    assert plan.files() == ["/o/x_classes.tif", "/o/x_classes.gpkg", "/o/x_cover.csv", "/o/x_cover.json"]
    assert (plan.tiles, plan.tile_size, plan.overlap, plan.working_size) == (2, 256, 32, (300, 200))


def test_lines_that_are_not_plans_give_no_plan():
    error = json.dumps({"stage": "error", "error": "/o/x_classes.tif exists; pass --overwrite."})
    assert parse_plans(error + "\n" + json.dumps({"stage": "plan", "outputs": {}}) + "\n") == []


def test_error_line_gives_the_sentence():
    event = parse_progress_line('{"stage": "error", "error": "The model file x.pt is truncated; re-export it."}')
    assert failure_message(2, [event], ["jess-geo: error: other"]) == "The model file x.pt is truncated; re-export it."
    assert failure_message(1, [], ["Killed"]) == "jess-geo stopped with exit code 1: Killed"


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


def test_a_new_camera_notice_reaches_the_plugin(run_cli, repo_root, tmp_path):
    """The engine's shift notice rides on its `done` line; the plugin shows it (the clean scene has none)."""
    from test_check import _shifted_copy

    shifted = _shifted_copy(tmp_path / "shifted.tif")
    found = {}
    for scene in (shifted, repo_root / "sample_data" / "scene.tif"):
        ran = run_cli("predict", scene, "-o", tmp_path / f"{scene.stem}_classes.tif", "--no-vector", "--json-progress")
        assert ran.exit_code == 0, ran.stderr
        events = [e for e in map(parse_progress_line, ran.stdout.splitlines()) if e is not None]
        found[scene.stem] = notices(events)
    assert len(found["shifted"]) == 1 and "looks unlike the model's training data" in found["shifted"][0]
    assert found["scene"] == []
