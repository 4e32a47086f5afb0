"""Retrain with corrections in real QGIS: edit predicted polygons, fine-tune with `train --init`, predict again.

One run of the whole loop as a user does it, with the demo .pt model (the torch runtime end to
end through the plugin): the dialog segments, the user relabels polygons, the correction panel's
Retrain fine-tunes and the dialog segments again. The class fraction inside the corrected
polygons is measured before and after (printed; run with -s to see it) and must move toward the
corrected class.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter

from plugin_testing import REPO

DEMO = REPO / "jess_geo" / "assets" / "demo_model.pt"


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


def _relabel_a_third_of_the_dominant_class(layer) -> tuple[list[int], int, int, float, float]:
    """The user's correction: the largest polygons of the dominant class, a third of its area, become another class."""
    field = layer.fields().indexOf("class_id")
    area = Counter()
    for feature in layer.getFeatures():
        area[feature["class_id"]] += feature.geometry().area()
    wrong = area.most_common(1)[0][0]
    right = 3 if wrong != 3 else 2
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
    return corrected, wrong, right, covered, area[wrong]


def test_retrain_with_corrections_moves_the_prediction_toward_the_corrected_class(
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

    polygons = first.outputs["vector"]
    layer = edited_layer(polygons, first.outputs.get("vector_layer") or "classes")
    assert layer.isValid() and layer.featureCount() > 0
    corrected, wrong, right, covered, total = _relabel_a_third_of_the_dominant_class(layer)
    panel.epochs_spin.setValue(1)  # the panel offers 2; one epoch is enough to move it here
    assert panel.start_retrain() is not None, panel.status_label.text()
    qtbot.waitUntil(lambda: panel.last_outcome is not None, timeout=900_000)
    assert type(panel.last_outcome).__name__ == "Trained", panel.status_label.text()
    model = panel.last_outcome.model_path
    assert model == os.path.join(os.path.dirname(polygons), "demo_model_corrected.pt")
    tuned = json.loads(subprocess.run([jess_geo_predict, "info", model, "--json"], capture_output=True,
                                      text=True, timeout=600).stdout)
    record = tuned.get("init_model") or (tuned.get("metadata") or {}).get("init_model")
    assert record and record["name"] == "demo_model.pt"  # the fine-tuned model says where it came from

    qtbot.waitUntil(lambda: dialog.last_outcome is not None and dialog.last_outcome is not first, timeout=900_000)
    second = dialog.last_outcome
    assert type(second).__name__ == "Success", getattr(second, "message", second)
    assert second.outputs["classes"].endswith("_demo_model_corrected.tif") and os.path.isfile(second.outputs["classes"])
    assert os.path.isfile(first.outputs["classes"])  # the first prediction stays for comparison

    before = _fraction_inside(first.outputs["classes"], polygons, corrected, right)
    after = _fraction_inside(second.outputs["classes"], polygons, corrected, right)
    kept_before = _fraction_inside(first.outputs["classes"], polygons, corrected, wrong)
    kept_after = _fraction_inside(second.outputs["classes"], polygons, corrected, wrong)
    print(f"\ncorrection: {len(corrected)} polygons of class {wrong} -> {right} "
          f"({covered:.3f} of {total:.3f} m2 of class {wrong}); inside them, class {right}: "
          f"{100 * before:.1f} % before, {100 * after:.1f} % after; class {wrong}: "
          f"{100 * kept_before:.1f} % before, {100 * kept_after:.1f} % after")
    assert after > before
    assert kept_after < kept_before
