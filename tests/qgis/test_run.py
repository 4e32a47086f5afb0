"""Full runs through the QgsTask: styled results, cancel, and the engine's own error sentence."""

from __future__ import annotations

import os

from qgis.core import (
    Qgis,
    QgsCategorizedSymbolRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from plugin_testing import model_band_count, model_pixel_size, write_scene

RUN_TIMEOUT_MS = 900_000


def _dialog_ready(qtbot, plugin, layer: QgsRasterLayer):
    plugin.action.trigger()
    dialog = plugin.dialog
    qtbot.waitUntil(lambda: dialog.engine is not None, timeout=300_000)
    assert dialog.engine.ok, dialog.engine.message
    qtbot.waitUntil(lambda: "classes" in dialog.model_label.text() or bool(dialog.model_error), timeout=600_000)
    assert not dialog.model_error, dialog.model_error
    dialog.layer_combo.setLayer(layer)
    return dialog


def _run(qtbot, dialog):
    task = dialog.start_run()
    assert task is not None, dialog.status_label.text()
    assert dialog.cancel_run_button.isEnabled() and not dialog.run_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.last_outcome is not None, timeout=RUN_TIMEOUT_MS)
    return dialog.last_outcome


def _add_layer(path, name) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name, "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_full_run_adds_styled_class_raster_and_polygons(
    model_path, qtbot, qgis_iface, loaded_plugin, plugin_settings, jess_geo_predict, demo_model_info, scene, tmp_path
):
    plugin_settings(executable=jess_geo_predict, model=model_path)
    qgis_iface.messageBar().clear_messages()
    layer = _add_layer(scene, "input")
    dialog = _dialog_ready(qtbot, loaded_plugin, layer)
    out = tmp_path / "out"
    out.mkdir()
    dialog.classes_widget.setFilePath(str(out / "classes.tif"))
    dialog.vector_widget.setFilePath(str(out / "polygons.gpkg"))
    dialog.energy_check.setChecked(True)
    dialog.energy_widget.setFilePath(str(out / "energy.tif"))
    dialog.device_combo.setCurrentText("cpu")

    outcome = _run(qtbot, dialog)

    assert type(outcome).__name__ == "Success", getattr(outcome, "message", outcome)
    assert (out / "classes.tif").is_file() and (out / "polygons.gpkg").is_file()
    assert dialog.progress_bar.value() == 100
    assert dialog.run_button.isEnabled() and not dialog.cancel_run_button.isEnabled()

    expected = {c["id"]: (c["name"], c["color"].lower()) for c in demo_model_info["classes"]}
    group = QgsProject.instance().layerTreeRoot().findGroup(scene.stem)
    assert group is not None, "no layer group named after the scene"
    nodes = group.findLayers()
    layers = [node.layer() for node in nodes]
    assert [lyr.source().split("|")[0] for lyr in layers] == [
        str(out / "polygons.gpkg"), str(out / "classes.tif"), str(out / "energy.tif")]
    assert [node.itemVisibilityChecked() for node in nodes] == [True, True, False]
    rasters = [lyr for lyr in layers[:2] if isinstance(lyr, QgsRasterLayer)]
    vectors = [lyr for lyr in layers[:2] if isinstance(lyr, QgsVectorLayer)]
    assert len(rasters) == 1 and len(vectors) == 1

    renderer = rasters[0].renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    palette = {int(c.value): (c.label, c.color.name()) for c in renderer.classes()}
    assert palette == expected

    symbology = vectors[0].renderer()
    assert isinstance(symbology, QgsCategorizedSymbolRenderer)
    assert symbology.classAttribute() == "class_id"
    categories = {int(c.value()): (c.label(), c.symbol().color().name()) for c in symbology.categories()}
    assert categories == expected
    assert vectors[0].featureCount() > 0
    assert {"class_id", "class_name"} <= set(vectors[0].fields().names())

    successes = qgis_iface.messageBar().get_messages(Qgis.Success)
    assert any(scene.stem in m for m in successes), successes


def test_cancel_in_the_middle_leaves_no_output_files(
    model_path, qtbot, loaded_plugin, plugin_settings, jess_geo_predict, demo_model_info, tmp_path
):
    plugin_settings(executable=jess_geo_predict, model=model_path)
    scene_dir = tmp_path / "scene"
    scene_dir.mkdir()
    scene = write_scene(scene_dir / "big_scene.tif", width=2048, height=2048,
                        bands=model_band_count(demo_model_info), pixel_size=model_pixel_size(demo_model_info))
    layer = _add_layer(scene, "big")
    dialog = _dialog_ready(qtbot, loaded_plugin, layer)
    out = tmp_path / "out"
    out.mkdir()
    dialog.classes_widget.setFilePath(str(out / "classes.tif"))
    dialog.vector_widget.setFilePath(str(out / "polygons.gpkg"))
    dialog.probabilities_check.setChecked(True)
    dialog.probabilities_widget.setFilePath(str(out / "probabilities.tif"))
    dialog.tile_spin.setValue(64)
    dialog.overlap_spin.setValue(16)
    dialog.device_combo.setCurrentText("cpu")

    task = dialog.start_run()
    assert task is not None, dialog.status_label.text()
    # Wait until the child reports tiles, i.e. it is really in the middle of the work.
    qtbot.waitUntil(lambda: dialog.progress_bar.value() > 0 or "predict" in dialog.status_label.text(),
                    timeout=RUN_TIMEOUT_MS)
    dialog.cancel_run_button.click()
    qtbot.waitUntil(lambda: dialog.last_outcome is not None, timeout=600_000)

    assert type(dialog.last_outcome).__name__ == "Canceled"
    assert sorted(os.listdir(out)) == []
    assert sorted(os.listdir(scene_dir)) == ["big_scene.tif"]
    assert "Cancelled" in dialog.status_label.text()
    assert QgsProject.instance().layerTreeRoot().findGroup("big_scene") is None


def test_engine_error_sentence_reaches_the_message_bar(
    model_path, qtbot, qgis_iface, loaded_plugin, plugin_settings, jess_geo_predict, demo_model_info, tmp_path
):
    """A scene whose band count the model cannot take: the engine's one line, no traceback."""
    plugin_settings(executable=jess_geo_predict, model=model_path)
    qgis_iface.messageBar().clear_messages()
    model_bands = max([int(b) for b in demo_model_info.get("bands", [1, 2, 3])])
    scene = write_scene(tmp_path / "too_few_bands.tif", bands=max(1, model_bands - 2),
                        pixel_size=model_pixel_size(demo_model_info))
    layer = _add_layer(scene, "too few bands")
    dialog = _dialog_ready(qtbot, loaded_plugin, layer)
    dialog.device_combo.setCurrentText("cpu")

    outcome = _run(qtbot, dialog)

    assert type(outcome).__name__ == "Failed"
    assert outcome.message and "\n" not in outcome.message and "Traceback" not in outcome.message
    assert outcome.message in dialog.status_label.text()
    critical = qgis_iface.messageBar().get_messages(Qgis.Critical)
    assert any(outcome.message in m for m in critical), critical
    assert not (tmp_path / "too_few_bands_classes.tif").exists()


def test_corrupt_model_file_is_explained_before_running(
    qtbot, loaded_plugin, plugin_settings, jess_geo_exe, tmp_path
):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a jess-geo model")
    plugin_settings(executable=jess_geo_exe, model=str(corrupt))
    loaded_plugin.action.trigger()
    dialog = loaded_plugin.dialog
    qtbot.waitUntil(lambda: bool(dialog.model_error), timeout=600_000)
    assert "Traceback" not in dialog.model_error and "\n" not in dialog.model_error
    assert dialog.model_error in dialog.model_label.text()
    assert not dialog.run_button.isEnabled()
