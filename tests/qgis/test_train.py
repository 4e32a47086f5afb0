"""Training and adaptation inside QGIS: the Train dialog's task, Cancel, and jessgeo:train / jessgeo:adapt.

Real QGIS, the real `jess-geo train` / `adapt` (tiny recipe, 1 epoch on the bundled sample data).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from qgis.core import QgsProcessingFeedback, QgsProject, QgsRasterLayer, QgsSettings, QgsVectorLayer

from plugin_testing import REPO, SAMPLE_TRAIN, polygon_labels, write_tiny_recipe

TRAIN_TIMEOUT_MS = 900_000
SAMPLE_CLASSES = "0 bare soil #c9a87c\n1 cyanobacteria crust #5b4a3f\n2 lichen #e3d55a\n3 moss #3f7a2e"


@pytest.fixture
def training_project(tmp_path):
    """The three sample plots as raster layers and their masks as one polygon label layer."""
    project = QgsProject.instance()
    rasters = []
    for image in sorted((SAMPLE_TRAIN / "images").glob("*.tif")):
        layer = QgsRasterLayer(str(image), image.stem, "gdal")
        assert layer.isValid()
        project.addMapLayer(layer)
        rasters.append(str(image))
    labels = polygon_labels(sorted((SAMPLE_TRAIN / "masks").glob("*.tif")), tmp_path / "labels.gpkg")
    label_layer = QgsVectorLayer(f"{labels}|layername=labels", "labels", "ogr")
    assert label_layer.isValid() and label_layer.featureCount() > 0
    project.addMapLayer(label_layer)
    out = tmp_path / "models"
    out.mkdir()
    return {"rasters": rasters, "labels": label_layer, "out": out,
            "recipe": str(write_tiny_recipe(tmp_path / "tiny.yaml"))}


def _train_dialog(qtbot, plugin, data):
    plugin.train_action.trigger()
    dialog = plugin.train_dialog
    qtbot.waitUntil(lambda: dialog.engine is not None, timeout=300_000)
    assert dialog.engine.ok, dialog.engine.message
    dialog.refresh_layers()
    dialog.set_rasters(data["rasters"])
    dialog.labels_combo.setLayer(data["labels"])
    dialog.field_combo.setField("class_id")
    dialog.classes_edit.setPlainText(SAMPLE_CLASSES)
    dialog.recipe_widget.setFilePath(data["recipe"])
    dialog.epochs_spin.setValue(1)
    dialog.device_combo.setCurrentText("cpu")
    dialog.model_widget.setFilePath(str(data["out"] / "crust.pt"))
    return dialog


def test_train_dialog_trains_from_a_polygon_label_layer(
    qtbot, loaded_plugin, plugin_settings, jess_geo_exe, training_project
):
    plugin_settings(executable=jess_geo_exe)
    dialog = _train_dialog(qtbot, loaded_plugin, training_project)
    task = dialog.start_run()
    assert task is not None, dialog.status_label.text()
    assert dialog.cancel_run_button.isEnabled() and not dialog.run_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.last_outcome is not None, timeout=TRAIN_TIMEOUT_MS)

    outcome = dialog.last_outcome
    assert type(outcome).__name__ == "Trained", getattr(outcome, "message", outcome)
    model = training_project["out"] / "crust.pt"
    assert model.is_file() and outcome.model_path == str(model)
    assert sorted(os.listdir(training_project["out"])) == ["crust.pt", "crust_training"]
    assert "epoch 1/1: validation accuracy" in dialog.accuracy_label.text()
    assert len(dialog.accuracies) == 1 and 0.0 < dialog.accuracies[0] <= 1.0
    assert f"best validation accuracy {100 * outcome.metrics['val_accuracy']:.1f} %" in dialog.status_label.text()
    assert "curves.png" in dialog.figures_label.text() and "confusion_matrix.png" in dialog.figures_label.text()
    assert all(os.path.isfile(p) for p in outcome.figures)
    info = subprocess.run([jess_geo_exe, "info", str(model), "--json"], capture_output=True, text=True, timeout=600)
    assert [c["name"] for c in json.loads(info.stdout)["classes"]] == [
        "bare soil", "cyanobacteria crust", "lichen", "moss"]


def test_cancel_during_training_leaves_no_model_file(
    qtbot, loaded_plugin, plugin_settings, jess_geo_exe, training_project
):
    plugin_settings(executable=jess_geo_exe)
    dialog = _train_dialog(qtbot, loaded_plugin, training_project)
    dialog.epochs_spin.setValue(50)
    task = dialog.start_run()
    assert task is not None, dialog.status_label.text()
    qtbot.wait(8000)  # jess-geo is loading the data or training by now
    assert dialog.last_outcome is None
    dialog.cancel_run_button.click()
    qtbot.waitUntil(lambda: dialog.last_outcome is not None, timeout=300_000)
    assert type(dialog.last_outcome).__name__ == "Canceled"
    assert os.listdir(training_project["out"]) == []
    assert "no model file" in dialog.status_label.text()


def test_a_bad_class_table_is_refused_before_anything_runs(
    qtbot, loaded_plugin, plugin_settings, jess_geo_exe, training_project
):
    plugin_settings(executable=jess_geo_exe)
    dialog = _train_dialog(qtbot, loaded_plugin, training_project)
    dialog.classes_edit.setPlainText("0 bare soil\n0 moss")
    assert dialog.start_run() is None
    assert "given twice" in dialog.status_label.text()
    assert os.listdir(training_project["out"]) == []


def test_processing_train_writes_the_model_and_reports_accuracy(
    qgis_processing, loaded_plugin, plugin_settings, jess_geo_exe, training_project
):
    import processing

    plugin_settings(executable=jess_geo_exe)
    target = training_project["out"] / "from_processing.pt"
    results = processing.run("jessgeo:train", {
        "INPUT": training_project["rasters"], "LABELS": training_project["labels"], "CLASS_FIELD": "class_id",
        "CLASSES": SAMPLE_CLASSES, "RECIPE": training_project["recipe"], "EPOCHS": 1, "DEVICE": "cpu",
        "OUTPUT_MODEL": str(target),
    })
    assert results["OUTPUT_MODEL"] == str(target) and target.is_file()
    assert 0.0 < results["VAL_ACCURACY"] <= 1.0
    assert os.path.isfile(results["CURVES"]) and os.path.isfile(results["CONFUSION"])


def test_processing_adapt_writes_an_adapted_model_and_makes_it_current(
    qgis_processing, loaded_plugin, plugin_settings, jess_geo_exe, training_project
):
    import processing

    plugin_settings(executable=jess_geo_exe, model="")
    base = REPO / "jess_geo" / "assets" / "demo_model.pt"
    scene = QgsRasterLayer(str(REPO / "sample_data" / "scene.tif"), "scene", "gdal")
    target = training_project["out"] / "adapted.pt"
    log = []

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, info):
            log.append(info)

    results = processing.run("jessgeo:adapt", {
        "INPUT": scene, "BASE_MODEL": str(base), "SOURCE_IMAGES": str(SAMPLE_TRAIN / "images"),
        "SOURCE_LABELS": str(SAMPLE_TRAIN / "masks"), "RECIPE": training_project["recipe"], "EPOCHS": 1,
        "DEVICE": "cpu", "OUTPUT_MODEL": str(target),
    }, feedback=Feedback())
    assert results["OUTPUT_MODEL"] == str(target) and target.is_file()
    assert QgsSettings().value("jess_geo/model") == str(target)
    info = json.loads(subprocess.run([jess_geo_exe, "info", str(target), "--json"], capture_output=True,
                                     text=True, timeout=600).stdout)
    adaptation = info.get("adaptation") or (info.get("metadata") or {}).get("adaptation")
    assert adaptation["base_model"]["name"] == "demo_model.pt"
    assert adaptation["target_images"] == [str((REPO / "sample_data" / "scene.tif").resolve())]
    # What changed: the base model's energies before the first step (recorded in the model) and
    # the adapted model's after, as outputs and as one line of the log.
    before = adaptation["before"]
    assert results["TARGET_ENERGY_BEFORE"] == pytest.approx(before["target_energy"])
    assert results["SOURCE_ENERGY_BEFORE"] == pytest.approx(before["source_energy"])
    assert results["GAP_BEFORE"] == pytest.approx(before["target_energy"] - before["source_energy"])
    assert results["GAP_AFTER"] == pytest.approx(results["TARGET_ENERGY"] - results["SOURCE_ENERGY"])
    summary = next(line for line in log if line.startswith("target energy before"))
    print(summary)
    assert (f"target energy before {before['target_energy']:.3f}, after {results['TARGET_ENERGY']:.3f}; "
            f"gap before {results['GAP_BEFORE']:.3f}, after {results['GAP_AFTER']:.3f}") in summary
