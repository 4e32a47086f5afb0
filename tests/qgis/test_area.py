"""Segment only part of a layer: the map canvas extent (--bbox) and a polygon layer (--aoi), real QGIS and jess-geo.

The runs use the session's test model (the demo model's ONNX export, see conftest.model_path):
the area options are the plugin's and the engine's tiling business, not the network's.
"""

from __future__ import annotations

import shutil

import numpy as np
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsRasterLayer, QgsRectangle, QgsVectorLayer

from plugin_testing import REPO


def _scene(tmp_path):
    scene = tmp_path / "scene.tif"
    shutil.copy(REPO / "sample_data" / "scene.tif", scene)
    layer = QgsRasterLayer(str(scene), "scene", "gdal")
    assert layer.isValid()
    return scene, layer


def _predict(exe, model, scene, tmp_path, **area):
    from jess_geo_qgis.protocol import Success
    from jess_geo_qgis.request import PredictRequest
    from jess_geo_qgis.runner import run_predict

    request = PredictRequest(scene=str(scene), model=model, classes_path=str(tmp_path / "classes.tif"),
                             vector_path=str(tmp_path / "classes.gpkg"), device="cpu", **area)
    outcome = run_predict(exe, request)
    assert isinstance(outcome, Success), outcome
    return outcome


def _read(path):
    from osgeo import gdal

    dataset = gdal.Open(str(path))
    band = dataset.GetRasterBand(1)
    return band.ReadAsArray(), band.GetNoDataValue(), dataset.GetGeoTransform()


def test_canvas_extent_segments_only_what_is_on_screen(tmp_path, qgis_iface, jess_geo_predict, model_path):
    from jess_geo_qgis.area import extent_area

    scene, layer = _scene(tmp_path)
    full = layer.extent()
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    c, half = full.center(), full.height() / 8  # a small view at the centre (the canvas widens it to its aspect)
    wanted = QgsRectangle(c.x() - half, c.y() - half, c.x() + half, c.y() + half)
    canvas.setExtent(wanted)
    area = extent_area(canvas.extent(), canvas.mapSettings().destinationCrs())
    assert area["bbox_crs"] == layer.crs().authid()
    outcome = _predict(jess_geo_predict, model_path, scene, tmp_path, **area)
    values, nodata, transform = _read(outcome.outputs["classes"])
    out_width = values.shape[1] * transform[1]
    assert values.shape[1] < layer.width() and values.shape[0] < layer.height(), (area, canvas.size())
    assert out_width < full.width()
    xmin, ymin, xmax, ymax = area["bbox"]
    cols = (np.arange(values.shape[1]) + 0.5) * transform[1] + transform[0]
    rows = (np.arange(values.shape[0]) + 0.5) * transform[5] + transform[3]
    inside = (cols[None, :] > xmin) & (cols[None, :] < xmax) & (rows[:, None] > ymin) & (rows[:, None] < ymax)
    assert (values[inside] != nodata).all()
    assert (values[~inside] == nodata).all()
    print(f"\ncanvas {area['bbox']} -> classes {values.shape[1]} x {values.shape[0]} px of {layer.width()} x {layer.height()}")


def test_polygon_layer_area_leaves_nodata_outside_the_polygon(tmp_path, jess_geo_predict, model_path):
    from jess_geo_qgis.area import polygon_area

    scene, layer = _scene(tmp_path)
    centre = layer.extent().center()
    radius = layer.extent().width() / 5
    polygons = QgsVectorLayer(f"Polygon?crs={layer.crs().authid()}", "plots", "memory")
    for dx in (0.0, 3 * radius):
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(centre.x() - radius + dx, centre.y())).buffer(radius / 2, 24))
        polygons.dataProvider().addFeatures([feature])
    polygons.selectByIds([next(polygons.getFeatures()).id()])
    area = polygon_area(polygons, selected_only=True, folder=str(tmp_path))
    outcome = _predict(jess_geo_predict, model_path, scene, tmp_path, **area)
    values, nodata, transform = _read(outcome.outputs["classes"])
    labelled = values != nodata
    h, w = values.shape
    assert labelled[h // 2, w // 2]  # the polygon's centre
    assert not labelled[0, 0] and not labelled[-1, -1]  # corners of its window lie outside the circle
    disc = np.pi * (radius / 2) ** 2 / abs(transform[1] * transform[5])
    assert 0.9 * disc < labelled.sum() < 1.1 * disc  # the one selected polygon, not the other
    print(f"\npolygon: {labelled.sum()} labelled pixels (disc {disc:.0f}) in a {w} x {h} window")


def test_dialog_area_and_bands_choices_reach_the_run(tmp_path, qtbot, qgis_iface, loaded_plugin, plugin_settings,
                                                     jess_geo_predict, model_path):
    from qgis.core import QgsProject

    scene, layer = _scene(tmp_path)
    QgsProject.instance().addMapLayer(layer)
    plugin_settings(executable=jess_geo_predict, model=model_path, device="cpu")
    loaded_plugin.action.trigger()
    dialog = loaded_plugin.dialog
    qtbot.waitUntil(lambda: dialog.engine is not None and "classes" in dialog.model_label.text(), timeout=600_000)
    assert dialog.bands_edit.placeholderText() == "model bands 1,2,3"
    dialog.layer_combo.setLayer(layer)
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    c, half = layer.extent().center(), layer.extent().height() / 8
    canvas.setExtent(QgsRectangle(c.x() - half, c.y() - half, c.x() + half, c.y() + half))
    dialog.area_combo.setCurrentIndex(1)
    dialog.bands_edit.setText("3,2,1")
    request = dialog.request()
    assert request.bbox is not None and request.bbox_crs == layer.crs().authid() and request.bands == (3, 2, 1)
    dialog.bands_edit.setText("3,x")
    try:
        dialog.request()
        raise AssertionError("bad bands accepted")
    except ValueError as error:
        assert "band numbers" in str(error)
    dialog.bands_edit.setText("")
    dialog.area_combo.setCurrentIndex(2)
    dialog.area_selected_check.setChecked(True)
    try:
        dialog.request()
        raise AssertionError("no polygon layer accepted")
    except ValueError as error:
        assert "polygon layer" in str(error)


def test_processing_segment_with_an_extent_and_polygons(tmp_path, qgis_processing, loaded_plugin, plugin_settings,
                                                       jess_geo_predict, model_path):
    import processing

    scene, layer = _scene(tmp_path)
    plugin_settings(executable=jess_geo_predict, model=model_path)
    c, half = layer.extent().center(), layer.extent().height() / 8
    box = f"{c.x() - half},{c.x() + half},{c.y() - half},{c.y() + half} [{layer.crs().authid()}]"
    results = processing.run("jessgeo:segmentraster", {
        "INPUT": str(scene), "MODEL": model_path, "EXTENT": box, "DEVICE": "cpu", "BANDS": "1,2,3",
        "OUTPUT": str(tmp_path / "box.tif"), "VECTOR_OUTPUT": str(tmp_path / "box.gpkg")})
    values, nodata, _ = _read(results["OUTPUT"])
    assert values.shape[0] < layer.height() and (values == nodata).any() and (values != nodata).any()
