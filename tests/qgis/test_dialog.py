"""The toolbar button opens the dialog; it lists raster layers and reads the model's defaults."""

from __future__ import annotations

from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QDialog, QToolBar

from plugin_testing import model_pixel_size, write_scene


def _click_toolbar_button(qtbot, main_window):
    toolbar = main_window.findChild(QToolBar, "JessGeoToolbar")
    action = next(a for a in toolbar.actions() if a.objectName() == "JessGeoSegmentAction")
    qtbot.mouseClick(toolbar.widgetForAction(action), Qt.LeftButton)
    dialog = main_window.findChild(QDialog, "JessGeoSegmentDialog")
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    return dialog


def _wait_for_plan(qtbot, dialog):
    """Wait for the engine's output plan (or its refusal, shown in the plan label)."""
    qtbot.waitUntil(lambda: dialog.plan is not None or "could not" in dialog.plan_label.text(), timeout=300_000)
    assert dialog.plan is not None, dialog.plan_label.text()


def test_button_opens_dialog_listing_raster_layers(
    model_path, qtbot, qgis_iface, loaded_plugin, plugin_settings, jess_geo_predict, demo_model_info, tmp_path
):
    plugin_settings(executable=jess_geo_predict, model=model_path)
    project = QgsProject.instance()
    rasters = [
        QgsRasterLayer(str(write_scene(tmp_path / f"{name}.tif", pixel_size=model_pixel_size(demo_model_info))),
                       name, "gdal") for name in ("north", "south")
    ]
    points = QgsVectorLayer("Point?crs=EPSG:32612", "points", "memory")
    for layer in rasters + [points]:
        assert layer.isValid()
        project.addMapLayer(layer)

    dialog = _click_toolbar_button(qtbot, qgis_iface.mainWindow())

    combo = dialog.layer_combo
    listed = {combo.layer(i).name() for i in range(combo.count()) if combo.layer(i) is not None}
    assert listed == {"north", "south"}
    # The real jess-geo is checked and the demo model's defaults are filled in.
    qtbot.waitUntil(lambda: dialog.engine is not None, timeout=300_000)
    assert dialog.engine.ok, dialog.engine.message
    assert "jess-geo" in dialog.environment_label.text()
    # The engine's plan names the outputs beside the chosen raster, and its cover table.
    chosen = combo.currentLayer().source()
    _wait_for_plan(qtbot, dialog)
    assert dialog.classes_widget.filePath() == chosen[:-4] + "_classes.tif"
    assert dialog.vector_widget.filePath() == chosen[:-4] + "_classes.gpkg"
    assert chosen[:-4] + "_cover.csv" in dialog.plan_label.text()
    # Another layer gets its own names; a name the user typed is kept.
    dialog.vector_widget.setFilePath(str(tmp_path / "mine.gpkg"))
    other = next(layer for layer in rasters if layer.source() != chosen)
    dialog.plan = None
    combo.setLayer(other)
    _wait_for_plan(qtbot, dialog)
    assert dialog.classes_widget.filePath() == other.source()[:-4] + "_classes.tif"
    assert dialog.vector_widget.filePath() == str(tmp_path / "mine.gpkg")
    qtbot.waitUntil(lambda: "classes" in dialog.model_label.text(), timeout=600_000)
    assert dialog.tile_spin.value() == demo_model_info["tile_size"]
    assert dialog.overlap_spin.value() == demo_model_info["overlap"]
    for entry in demo_model_info["classes"]:
        assert entry["name"] in dialog.model_label.text()
    assert dialog.run_button.isEnabled()
    assert not dialog.cancel_run_button.isEnabled()
    # Test-time augmentation is off by default; the user's choice reaches the form (and `--tta`).
    assert dialog.tta_combo.currentText() == "none"
    dialog.tta_combo.setCurrentText("flips")
    assert dialog.form().tta == "flips"


def test_layers_that_are_not_files_get_a_clear_message(
    model_path, qtbot, qgis_iface, loaded_plugin, plugin_settings, jess_geo_exe, tmp_path
):
    plugin_settings(executable=jess_geo_exe, model=model_path)
    scene = write_scene(tmp_path / "base.tif")
    uri = (
        "?crs=EPSG:32612&extent=400000,4199840,400192,4200000&width=96&height=80"
        f"&formula=%22base@1%22%20*%202&base:uri={scene}&base:provider=gdal"
    )
    virtual = QgsRasterLayer(uri, "doubled", "virtualraster")
    assert virtual.isValid(), virtual.error().summary()
    QgsProject.instance().addMapLayer(virtual)

    dialog = _click_toolbar_button(qtbot, qgis_iface.mainWindow())
    dialog.layer_combo.setLayer(virtual)
    qtbot.waitUntil(lambda: dialog.engine is not None, timeout=300_000)
    assert dialog.start_run() is None
    message = dialog.status_label.text()
    assert "'doubled'" in message and "virtual raster" in message and "GeoTIFF" in message
    assert dialog.task is None


def test_a_raster_file_outside_the_project_can_be_chosen(
    model_path, qtbot, qgis_iface, loaded_plugin, plugin_settings, jess_geo_predict, demo_model_info, tmp_path
):
    plugin_settings(executable=jess_geo_predict, model=model_path)
    scene = write_scene(tmp_path / "outside.tif", pixel_size=model_pixel_size(demo_model_info))
    dialog = _click_toolbar_button(qtbot, qgis_iface.mainWindow())
    qtbot.waitUntil(lambda: dialog.engine is not None, timeout=300_000)
    dialog.set_input_file(str(scene))
    assert dialog.input_path() == (str(scene), "")
    dialog.plan = None
    _wait_for_plan(qtbot, dialog)
    assert dialog.classes_widget.filePath() == str(tmp_path / "outside_classes.tif")


def test_a_scene_far_from_the_models_resolution_is_explained_before_running(
    model_path, qtbot, qgis_iface, loaded_plugin, plugin_settings, jess_geo_predict, demo_model_info, tmp_path
):
    plugin_settings(executable=jess_geo_predict, model=model_path)
    coarse = write_scene(tmp_path / "coarse.tif", pixel_size=100 * model_pixel_size(demo_model_info))
    dialog = _click_toolbar_button(qtbot, qgis_iface.mainWindow())
    qtbot.waitUntil(lambda: dialog.engine is not None, timeout=300_000)
    dialog.set_input_file(str(coarse))
    qtbot.waitUntil(lambda: "could not" in dialog.plan_label.text(), timeout=300_000)
    assert "coarse.tif" in dialog.plan_label.text() and "Traceback" not in dialog.plan_label.text()
    assert dialog.classes_widget.filePath() == ""  # nothing proposed for a run the engine refuses
