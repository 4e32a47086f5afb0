"""Retrain with corrections in real QGIS: edit predicted polygons, fine-tune with `train --init`, predict again.

The class fraction inside the corrected polygons is measured before and after (printed; run
with -s to see it) and must move toward the corrected class.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter

import numpy as np
from qgis.core import QgsVectorLayer

from plugin_testing import REPO

DEMO = REPO / "jess_geo" / "assets" / "demo_model.pt"
RECIPE = "samples_per_epoch: 32\nbatch_size: 4\ncrop_size: 64\nval_crop: 128\nlr: 0.001\nseed: 0\n"


def _predict(exe: str, model: str, scene, stem):
    out, vector = scene.with_name(f"{stem}.tif"), scene.with_name(f"{stem}.gpkg")
    done = subprocess.run([exe, "predict", str(scene), "--model", model, "--output", str(out), "--vector", str(vector),
                           "--device", "cpu", "--quiet"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return out, vector


def _fraction_inside(classes_tif, vector, fids, class_id: int) -> float:
    """Share of the pixels of ``classes_tif`` inside the features ``fids`` of ``vector`` that are ``class_id``."""
    from osgeo import gdal, ogr

    raster = gdal.Open(str(classes_tif))
    values = raster.GetRasterBand(1).ReadAsArray()
    mask = gdal.GetDriverByName("MEM").Create("", raster.RasterXSize, raster.RasterYSize, 1, gdal.GDT_Byte)
    mask.SetGeoTransform(raster.GetGeoTransform())
    mask.SetProjection(raster.GetProjection())
    source = ogr.Open(str(vector))
    layer = source.GetLayerByName("classes")
    layer.SetAttributeFilter("fid IN (%s)" % ",".join(str(f) for f in fids))
    gdal.RasterizeLayer(mask, [1], layer, burn_values=[1])
    inside = mask.GetRasterBand(1).ReadAsArray() == 1
    return float((values[inside] == class_id).mean())


def test_retrain_with_corrections_moves_the_prediction_toward_the_corrected_class(tmp_path, jess_geo_exe, qgis_iface):
    from jess_geo_qgis.corrections import corrections_request
    from jess_geo_qgis.training import classes_from_info
    from jess_geo_qgis.train_runner import run_train

    scene = tmp_path / "scene.tif"
    shutil.copy(REPO / "sample_data" / "scene.tif", scene)
    before_tif, polygons = _predict(jess_geo_exe, str(DEMO), scene, "before")
    layer = QgsVectorLayer(f"{polygons}|layername=classes", "classes", "ogr")
    assert layer.isValid() and layer.featureCount() > 0
    field = layer.fields().indexOf("class_id")
    area = Counter()
    for feature in layer.getFeatures():
        area[feature["class_id"]] += feature.geometry().area()
    wrong = area.most_common(1)[0][0]
    right = 3 if wrong != 3 else 2
    # The user decides that the largest polygons of the dominant class (a third of its area) are `right`.
    candidates = sorted((f for f in layer.getFeatures() if f["class_id"] == wrong), key=lambda f: -f.geometry().area())
    corrected, covered = [], 0.0
    for feature in candidates:
        if covered >= area[wrong] / 3:
            break
        corrected.append(feature.id())
        covered += feature.geometry().area()
    assert layer.startEditing()
    for fid in corrected:
        assert layer.changeAttributeValue(fid, field, right)
    assert layer.commitChanges(), layer.commitErrors()

    info = json.loads(subprocess.run([jess_geo_exe, "info", str(DEMO), "--json"], capture_output=True, text=True,
                                     timeout=600).stdout)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    request = corrections_request(layer, str(scene), str(DEMO), classes_from_info(info),
                                  model_path=str(tmp_path / "corrected.pt"), recipe=str(recipe), epochs=2,
                                  device="cpu", labels_dir=str(tmp_path))
    outcome = run_train(jess_geo_exe, request)
    assert type(outcome).__name__ == "Trained", getattr(outcome, "message", outcome)
    tuned = json.loads(subprocess.run([jess_geo_exe, "info", outcome.model_path, "--json"], capture_output=True,
                                      text=True, timeout=600).stdout)
    record = tuned.get("init_model") or (tuned.get("metadata") or {}).get("init_model")
    assert record and record["name"] == "demo_model.pt"

    after_tif, _ = _predict(jess_geo_exe, outcome.model_path, scene, "after")
    before = _fraction_inside(before_tif, polygons, corrected, right)
    after = _fraction_inside(after_tif, polygons, corrected, right)
    kept_before = _fraction_inside(before_tif, polygons, corrected, wrong)
    kept_after = _fraction_inside(after_tif, polygons, corrected, wrong)
    print(f"\ncorrection: {len(corrected)} polygons of class {wrong} -> {right} "
          f"({covered:.3f} of {area[wrong]:.3f} m2 of class {wrong}); inside them, class {right}: "
          f"{100 * before:.1f} % before, {100 * after:.1f} % after; class {wrong}: "
          f"{100 * kept_before:.1f} % before, {100 * kept_after:.1f} % after")
    assert after > before
    assert kept_after < kept_before


def test_retrain_button_fine_tunes_and_segments_again(
    tmp_path, qtbot, qgis_iface, loaded_plugin, plugin_settings, jess_geo_predict
):
    from qgis.core import QgsProject, QgsRasterLayer

    from jess_geo_qgis.correction_panel import edited_layer

    scene = tmp_path / "scene.tif"
    shutil.copy(REPO / "sample_data" / "scene.tif", scene)
    plugin_settings(executable=jess_geo_predict, model=str(DEMO), device="cpu")
    raster = QgsRasterLayer(str(scene), "scene", "gdal")
    QgsProject.instance().addMapLayer(raster)
    loaded_plugin.action.trigger()
    dialog = loaded_plugin.dialog
    qtbot.waitUntil(lambda: dialog.engine is not None and "classes" in dialog.model_label.text(), timeout=600_000)
    panel = dialog.correction_panel
    assert not panel.retrain_button.isEnabled()  # nothing to correct before a run
    dialog.layer_combo.setLayer(raster)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=300_000)
    assert dialog.start_run() is not None, dialog.status_label.text()
    qtbot.waitUntil(lambda: dialog.last_outcome is not None, timeout=900_000)
    first = dialog.last_outcome
    assert type(first).__name__ == "Success" and panel.retrain_button.isEnabled()

    layer = edited_layer(first.outputs["vector"], first.outputs.get("vector_layer") or "classes")
    assert layer.startEditing()
    biggest = max(layer.getFeatures(), key=lambda f: f.geometry().area())
    layer.changeAttributeValue(biggest.id(), layer.fields().indexOf("class_id"), 3 if biggest["class_id"] != 3 else 2)
    assert layer.commitChanges()
    panel.epochs_spin.setValue(1)
    assert panel.start_retrain() is not None, panel.status_label.text()
    qtbot.waitUntil(lambda: panel.last_outcome is not None, timeout=900_000)
    assert type(panel.last_outcome).__name__ == "Trained", panel.status_label.text()
    model = panel.last_outcome.model_path
    assert model == os.path.join(os.path.dirname(first.outputs["vector"]), "demo_model_corrected.pt")
    qtbot.waitUntil(lambda: dialog.last_outcome is not None and dialog.last_outcome is not first, timeout=900_000)
    second = dialog.last_outcome
    assert type(second).__name__ == "Success", getattr(second, "message", second)
    assert second.outputs["classes"].endswith("_demo_model_corrected.tif") and os.path.isfile(second.outputs["classes"])
    assert os.path.isfile(first.outputs["classes"])  # the first prediction stays for comparison
