"""The QGIS plugin's train/adapt requests: class tables, labels, workspaces, commands (pure, no QGIS)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qgis_plugin"))

from jess_geo_qgis.protocol import ClassEntry  # noqa: E402
from jess_geo_qgis.train_runner import prepare_workspace  # noqa: E402
from jess_geo_qgis.training import (  # noqa: E402
    EpochRow,
    TrainRequest,
    Workspace,
    build_train_command,
    check_train_request,
    class_lines,
    class_table_json,
    classes_from_info,
    epoch_text,
    final_metrics,
    label_value,
    link_names,
    marked,
    parse_class_lines,
    parse_curves,
    run_folder,
)

CLASSES = [ClassEntry(0, "bare soil", "#c9a87c"), ClassEntry(3, "moss", "#3f7a2e")]


def test_typed_class_table_round_trips_and_becomes_the_engines_json():
    classes = parse_class_lines("0 bare soil #C9A87C\n\n3   moss   #3f7a2e\n")
    assert classes == CLASSES
    assert parse_class_lines(class_lines(classes)) == classes
    assert json.loads(class_table_json(classes)) == {
        "0": {"name": "bare soil", "color": "#c9a87c"}, "3": {"name": "moss", "color": "#3f7a2e"}}
    assert parse_class_lines("0 soil\n1 crust")[1].color.startswith("#")  # a colour is made up when missing


@pytest.mark.parametrize("text, sentence", [
    ("soil #ffffff\n1 crust", "Class line 1"), ("0 soil\n300 crust", "outside 0-254"),
    ("0 soil\n0 crust", "given twice"), ("0 soil", "at least two classes"), ("", "at least two classes"),
])
def test_bad_class_tables_are_one_sentence(text, sentence):
    with pytest.raises(ValueError, match=sentence):
        parse_class_lines(text)


def test_class_table_from_a_models_metadata():
    info = {"classes": [{"id": 0, "name": "bare soil", "color": "#c9a87c"}, {"id": 3, "name": "moss", "color": "#3f7a2e"}]}
    assert classes_from_info(info) == CLASSES
    assert classes_from_info({"metadata": info}) == CLASSES


@pytest.mark.parametrize("value, expected", [
    (3, 3), (3.0, 3), ("3", 3), ("Moss", 3), (" bare soil ", 0), (2, None), ("lichen", None),
    (None, None), (True, None), (3.5, None),
])
def test_label_values_are_ids_or_names_of_the_table(value, expected):
    assert label_value(value, CLASSES) == expected


@pytest.mark.parametrize("value, expected", [
    (True, True), (1, True), ("yes", True), ("TRUE", True), (False, False), (0, False), ("", False), (None, False),
])
def test_verified_marks(value, expected):
    assert marked(value) is expected


def test_train_and_adapt_command_lines():
    workspace = Workspace("/w")
    train = TrainRequest(model_path="/m/crust.pt", images=["/d/a.tif"], labels_path="/l.gpkg", classes=CLASSES,
                         recipe="/c/cpu.yaml", epochs=3, max_minutes=2.5, device="cuda")
    assert build_train_command("jess-geo", train, workspace) == [
        "jess-geo", "train", "--images", "/w/images", "--masks", "/w/masks", "--classes", "/w/classes.json",
        "--output-dir", "/w/run", "--config", "/c/cpu.yaml", "--epochs", "3", "--max-minutes", "2.5",
        "--accelerator", "gpu", "--quiet", "--json"]
    adapt = TrainRequest(model_path="/m/adapted.pt", base_model="/m/base.pt", images_dir="/src/images",
                         masks_dir="/src/masks", targets=["/d/new.tif"])
    assert build_train_command("jess-geo", adapt, workspace) == [
        "jess-geo", "adapt", "/m/base.pt", "--method", "jess", "--images", "/src/images", "--masks", "/src/masks",
        "--target-images", "/w/targets", "--output-dir", "/w/run", "--accelerator", "auto", "--quiet", "--json"]


def test_requests_that_cannot_run_are_refused(tmp_path):
    good = dict(model_path=str(tmp_path / "m.pt"), images=["/d/a.tif"], labels_path="/l.gpkg", classes=CLASSES)
    check_train_request(TrainRequest(**good))
    (tmp_path / "old.pt").write_bytes(b"x")
    (tmp_path / "kept_training").mkdir()
    for change, sentence in [
        ({"model_path": ""}, "Choose where to write the model"), ({"model_path": str(tmp_path / "m.onnx")}, "must end in .pt"),
        ({"model_path": str(tmp_path / "old.pt")}, "already exists"), ({"model_path": str(tmp_path / "kept.pt")}, "kept_training already exists"),
        ({"images": []}, "at least one raster"), ({"labels_path": ""}, "polygon layer of labels"),
        ({"classes": CLASSES[:1]}, "at least two classes"), ({"epochs": 0}, "1 or more"), ({"device": "tpu"}, "Unknown device"),
        ({"base_model": "/b.pt"}, "layer to adapt to"),
    ]:
        with pytest.raises(ValueError, match=sentence):
            check_train_request(TrainRequest(**dict(good, **change)))


def test_images_get_distinct_names_for_the_engines_pairing():
    assert link_names(["/a/plot.tif", "/b/plot.tif", "/c/plot.jpg", "/d/other.tif"]) == [
        "plot.tif", "1_plot.tif", "2_plot.jpg", "other.tif"]


def test_workspace_pairs_every_image_with_the_labels(tmp_path):
    images = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        images.append(tmp_path / folder / "plot.tif")
        images[-1].write_bytes(folder.encode())
    labels = tmp_path / "labels.gpkg"
    labels.write_bytes(b"gpkg")
    (tmp_path / "out").mkdir()
    request = TrainRequest(model_path=str(tmp_path / "out" / "crust.pt"), images=[str(p) for p in images],
                           labels_path=str(labels), classes=CLASSES)
    workspace = prepare_workspace(request)
    root = Path(workspace.root)
    assert root.parent == tmp_path / "out" and root.name.startswith(".crust-")
    assert sorted(os.listdir(root / "images")) == ["1_plot.tif", "plot.tif"]
    assert (root / "images" / "1_plot.tif").read_bytes() == b"b"
    assert sorted(os.listdir(root / "masks")) == ["1_plot.gpkg", "plot.gpkg"]
    assert (root / "masks" / "plot.gpkg").read_bytes() == b"gpkg"
    assert json.loads((root / "classes.json").read_text())["3"]["name"] == "moss"
    assert run_folder(request.model_path) == str(tmp_path / "out" / "crust_training")


def test_epochs_are_read_from_the_engines_curve_table():
    text = ("epoch,step,minutes,val_accuracy,val_miou,train_loss\n"
            "1,4,0.5,0.5759,0.3906,1.44\n2,8,1.0,,,1.03\nbad,row,,,,\n")
    rows = parse_curves(text)
    assert rows == [EpochRow(1, 0.5759, 0.3906, 1.44), EpochRow(2, None, None, 1.03)]
    assert epoch_text(rows[0], 10) == "epoch 1/10: validation accuracy 57.6 %, mIoU 39.1 %"
    assert epoch_text(rows[1], None) == "epoch 2"
    assert parse_curves("") == []


def test_final_metrics_are_the_last_json_object():
    assert final_metrics(["Epoch 1", '{"val_accuracy": 0.8}', "done"]) == {"val_accuracy": 0.8}
    assert final_metrics(["{broken", "no json"]) == {}


def test_init_model_runs_train_init_without_a_class_table():
    from jess_geo_qgis.training import TrainRequest, Workspace, build_train_command, check_train_request

    request = TrainRequest(model_path="/tmp/m_corrected.pt", images=["/data/scene.tif"], labels_path="/tmp/c.gpkg",
                           init_model="/models/m.pt", epochs=2)
    check_train_request(request)  # the class table comes from the model
    command = build_train_command("jess-geo", request, Workspace("/tmp/ws"))
    assert command[:2] == ["jess-geo", "train"]
    assert command[command.index("--init") + 1] == "/models/m.pt" and "--classes" not in command
