"""Render the README's QGIS screenshots offscreen: the dialog and a styled result.

Usage (from the repository root, with QGIS's Python):
    QT_QPA_PLATFORM=offscreen HOME=$(mktemp -d) .venv-qgis/bin/python qgis_plugin/make_screenshots.py
Writes docs/img/qgis_dialog.png and docs/img/qgis_result.png with the demo model (or
`--model PATH`), and docs/img/qgis_train.png (the Train dialog after its first epoch;
`--train-only` renders just that one), and docs/img/qgis_correction.png (a polygon corrected
to another class, the model retrained on it for 2 epochs; `--correction-only`). Needs a working jess-geo ($JESS_GEO_EXE or <repo>/.venv/bin/jess-geo)
and sample_data/scene.tif.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "qgis_plugin"))

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QRectF, QSize, Qt  # noqa: E402
from qgis.PyQt.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter  # noqa: E402

SCENE = REPO / "sample_data" / "scene.tif"
OUT_DIR = REPO / "docs" / "img"


def _executable() -> str:
    exe = os.environ.get("JESS_GEO_EXE") or str(REPO / ".venv" / "bin" / "jess-geo")
    if not os.path.isfile(exe):
        sys.exit(f"make_screenshots: jess-geo not found at {exe}; set JESS_GEO_EXE.")
    return exe


def _wait(app: QgsApplication, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def dialog_screenshot(app: QgsApplication, scene_layer: QgsRasterLayer, path: Path) -> None:
    from jess_geo_qgis.dialog import SegmentDialog

    dialog = SegmentDialog(None)
    dialog.layer_combo.setLayer(scene_layer)
    dialog.device_combo.setCurrentText("auto")
    dialog.show()
    if not _wait(app, lambda: dialog.engine is not None, 60):
        sys.exit("make_screenshots: jess-geo --version did not answer")
    if not dialog.engine.ok:
        sys.exit(f"make_screenshots: {dialog.engine.message}")
    _wait(app, lambda: "classes" in dialog.model_label.text() or bool(dialog.model_error), 120)
    dialog.progress_bar.setValue(0)
    dialog.adjustSize()
    _wait(app, lambda: False, 0.3)
    dialog.grab().save(str(path))
    dialog.close()
    dialog.deleteLater()
    app.processEvents()


def _render(layers, extent, size: QSize) -> QImage:
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(extent)
    settings.setOutputSize(size)
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def result_screenshot(scene_layer: QgsRasterLayer, path: Path, model: str) -> None:
    from jess_geo_qgis.protocol import Success
    from jess_geo_qgis.request import PredictRequest
    from jess_geo_qgis.runner import run_predict
    from jess_geo_qgis.styling import add_result_layers

    work = Path(tempfile.mkdtemp(prefix="jess-geo-shots-"))
    request = PredictRequest(
        scene=str(SCENE), model=model, classes_path=str(work / "scene_classes.tif"),
        vector_path=str(work / "scene_classes.gpkg"), device="auto",
    )
    outcome = run_predict(_executable(), request)
    if not isinstance(outcome, Success):
        sys.exit(f"make_screenshots: jess-geo predict failed: {outcome}")
    layers = add_result_layers(QgsProject.instance(), "scene", outcome.outputs, outcome.classes)
    vector = next(layer for layer in layers if layer.type() == layer.VectorLayer)
    raster = next(layer for layer in layers if layer.type() == layer.RasterLayer)
    raster.setOpacity(1.0)
    vector.setOpacity(0.9)

    extent = scene_layer.extent()
    width = 560
    height = int(round(width * extent.height() / extent.width()))
    size = QSize(width, height)
    left = _render([scene_layer], extent, size)
    right = _render([vector, raster], extent, size)

    margin, title_height, row_height = 12, 26, 28
    legend_font = QFont()
    legend_font.setPixelSize(13)
    metrics = QFontMetrics(legend_font)
    positions, x, row = [], 0, 0
    for entry in outcome.classes:
        item_width = 24 + metrics.horizontalAdvance(entry.name) + 18
        if x and x + item_width > width:
            x, row = 0, row + 1
        positions.append((x, row))
        x += item_width
    legend_height = row_height * (row + 1) + 8
    image = QImage(2 * width + 3 * margin, height + legend_height + title_height + 2 * margin, QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    font = QFont()
    font.setPixelSize(15)
    painter.setFont(font)
    painter.setPen(QColor("#222222"))
    painter.drawText(QRectF(margin, margin, width, title_height), Qt.AlignLeft, "sample_data/scene.tif")
    painter.drawText(QRectF(2 * margin + width, margin, width, title_height), Qt.AlignLeft,
                     "jess-geo classes and polygons (styled by the plugin)")
    top = margin + title_height
    painter.drawImage(margin, top, left)
    painter.drawImage(2 * margin + width, top, right)
    painter.setFont(legend_font)
    for entry, (x, row) in zip(outcome.classes, positions):
        left_x = 2 * margin + width + x
        y = top + height + 10 + row * row_height
        painter.fillRect(left_x, y, 18, 18, QColor(entry.color))
        painter.drawRect(left_x, y, 18, 18)
        painter.drawText(QRectF(left_x + 24, y - 1, width, 20), Qt.AlignVCenter | Qt.AlignLeft, entry.name)
    painter.end()
    image.save(str(path))
    del layers, vector, raster


def _outline_layer(geometry, crs) -> QgsVectorLayer:
    """A memory layer drawing ``geometry`` as a thick red outline (the corrected polygon)."""
    from qgis.core import QgsFeature, QgsFillSymbol

    layer = QgsVectorLayer(f"MultiPolygon?crs={crs.authid()}", "corrected", "memory")
    feature = QgsFeature()
    feature.setGeometry(geometry)
    layer.dataProvider().addFeatures([feature])
    layer.renderer().setSymbol(QgsFillSymbol.createSimple(
        {"color": "0,0,0,0", "outline_color": "#e8141b", "outline_width": "0.9"}))
    return layer


def correction_screenshot(scene_layer: QgsRasterLayer, path: Path) -> str:
    """Predict, correct the largest polygon of the commonest class to moss, retrain 2 epochs, predict again."""
    from jess_geo_qgis.corrections import corrections_request
    from jess_geo_qgis.protocol import Success
    from jess_geo_qgis.request import PredictRequest
    from jess_geo_qgis.runner import run_predict
    from jess_geo_qgis.styling import add_result_layers
    from jess_geo_qgis.train_runner import run_train
    from jess_geo_qgis.training import Trained

    work = Path(tempfile.mkdtemp(prefix="jess-geo-correction-"))
    demo = str(REPO / "jess_geo" / "assets" / "demo_model.pt")

    def predict(model: str, stem: str):
        request = PredictRequest(scene=str(SCENE), model=model, classes_path=str(work / f"{stem}.tif"),
                                 vector_path=str(work / f"{stem}.gpkg"), device="cpu")
        outcome = run_predict(_executable(), request)
        if not isinstance(outcome, Success):
            sys.exit(f"make_screenshots: jess-geo predict failed: {outcome}")
        return outcome

    before = predict(demo, "before")
    layers = add_result_layers(QgsProject.instance(), "before", before.outputs, before.classes)
    vector = next(layer for layer in layers if layer.type() == layer.VectorLayer)
    biggest = max(vector.getFeatures(), key=lambda f: f.geometry().area())
    moss = 3 if biggest["class_id"] != 3 else 2
    vector.startEditing()
    vector.changeAttributeValue(biggest.id(), vector.fields().indexOf("class_id"), moss)
    vector.commitChanges()
    recipe = work / "recipe.yaml"
    recipe.write_text("samples_per_epoch: 32\nbatch_size: 4\ncrop_size: 64\nlr: 0.001\nseed: 0\n", encoding="utf-8")
    request = corrections_request(vector, str(SCENE), demo, before.classes, model_path=str(work / "corrected.pt"),
                                  recipe=str(recipe), epochs=2, device="cpu", labels_dir=str(work))
    trained = run_train(_executable(), request)
    if not isinstance(trained, Trained):
        sys.exit(f"make_screenshots: retraining failed: {trained}")
    after = predict(trained.model_path, "after")
    before_raster = QgsRasterLayer(before.outputs["classes"], "before", "gdal")
    after_layers = add_result_layers(QgsProject.instance(), "after", after.outputs, after.classes)
    after_raster = next(layer for layer in after_layers if layer.type() == layer.RasterLayer)
    before_raster.setRenderer(after_raster.renderer().clone())
    outline = _outline_layer(biggest.geometry(), scene_layer.crs())
    extent = scene_layer.extent()
    width = 480
    height = int(round(width * extent.height() / extent.width()))
    size = QSize(width, height)
    panels = [("image", _render([outline, scene_layer], extent, size)),
              ("before: demo model", _render([outline, before_raster], extent, size)),
              (f"after: corrected to '{after.classes[moss].name}', 2 epochs", _render([outline, after_raster], extent, size))]
    margin, title_height = 12, 26
    image = QImage(3 * width + 4 * margin, height + title_height + 2 * margin, QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    font = QFont()
    font.setPixelSize(15)
    painter.setFont(font)
    painter.setPen(QColor("#222222"))
    for index, (title, panel) in enumerate(panels):
        x = margin + index * (width + margin)
        painter.drawText(QRectF(x, margin, width, title_height), Qt.AlignLeft, title)
        painter.drawImage(x, margin + title_height, panel)
    painter.end()
    image.save(str(path))
    return trained.model_path


def train_screenshot(app: QgsApplication, path: Path) -> None:
    """The Train dialog after its first epoch on the bundled sample plots (then cancelled)."""
    sys.path.insert(0, str(REPO / "tests" / "qgis"))
    from plugin_testing import SAMPLE_TRAIN, polygon_labels, write_tiny_recipe
    from jess_geo_qgis.train_dialog import TrainDialog

    work = Path(tempfile.mkdtemp(prefix="jess-geo-train-shot-"))
    images = sorted((SAMPLE_TRAIN / "images").glob("*.tif"))
    for image in images:
        QgsProject.instance().addMapLayer(QgsRasterLayer(str(image), image.stem, "gdal"))
    labels_path = polygon_labels(sorted((SAMPLE_TRAIN / "masks").glob("*.tif")), work / "labels.gpkg")
    labels = QgsVectorLayer(f"{labels_path}|layername=labels", "labels", "ogr")
    QgsProject.instance().addMapLayer(labels)
    dialog = TrainDialog(None)
    dialog.show()
    if not _wait(app, lambda: dialog.engine is not None and dialog.engine.ok, 120):
        sys.exit("make_screenshots: jess-geo --version did not answer")
    dialog.refresh_layers()
    dialog.set_rasters([str(p) for p in images])
    dialog.labels_combo.setLayer(labels)
    dialog.field_combo.setField("class_id")
    dialog.classes_edit.setPlainText("0 bare soil #c9a87c\n1 cyanobacteria crust #5b4a3f\n2 lichen #e3d55a\n3 moss #3f7a2e")
    dialog.recipe_widget.setFilePath(str(write_tiny_recipe(work / "tiny.yaml")))
    dialog.epochs_spin.setValue(5)
    dialog.device_combo.setCurrentText("cpu")
    dialog.model_widget.setFilePath(str(work / "crust.pt"))
    if dialog.start_run() is None:
        sys.exit(f"make_screenshots: training refused: {dialog.status_label.text()}")
    if not _wait(app, lambda: bool(dialog.accuracies), 900):
        sys.exit(f"make_screenshots: no epoch finished: {dialog.status_label.text()}")
    dialog.adjustSize()
    _wait(app, lambda: False, 0.3)
    dialog.grab().save(str(path))
    dialog.cancel_run()
    _wait(app, lambda: dialog.last_outcome is not None, 300)
    dialog.close()
    dialog.deleteLater()
    app.processEvents()
    del labels


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="model file (default: the demo model)")
    parser.add_argument("--train-only", action="store_true", help="only docs/img/qgis_train.png")
    parser.add_argument("--correction-only", action="store_true", help="only docs/img/qgis_correction.png")
    arguments = parser.parse_args()
    model = arguments.model
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], True)
    app.initQgis()
    QgsSettings().setValue("jess_geo/executable", _executable())
    QgsSettings().setValue("jess_geo/model", model)
    scene_layer = QgsRasterLayer(str(SCENE), SCENE.stem, "gdal")
    if not scene_layer.isValid():
        sys.exit(f"make_screenshots: cannot open {SCENE}")
    QgsProject.instance().addMapLayer(scene_layer)

    if arguments.correction_only:
        correction_screenshot(scene_layer, OUT_DIR / "qgis_correction.png")
        print(f"wrote {OUT_DIR / 'qgis_correction.png'}")
    if not arguments.train_only and not arguments.correction_only:
        dialog_screenshot(app, scene_layer, OUT_DIR / "qgis_dialog.png")
        result_screenshot(scene_layer, OUT_DIR / "qgis_result.png", model)
        print(f"wrote {OUT_DIR / 'qgis_dialog.png'} and {OUT_DIR / 'qgis_result.png'}")
    if not arguments.correction_only:
        train_screenshot(app, OUT_DIR / "qgis_train.png")
        print(f"wrote {OUT_DIR / 'qgis_train.png'}")
    if not arguments.train_only and not arguments.correction_only:
        correction_screenshot(scene_layer, OUT_DIR / "qgis_correction.png")
        print(f"wrote {OUT_DIR / 'qgis_correction.png'}")

    QgsProject.instance().removeAllMapLayers()
    del scene_layer
    gc.collect()
    app.exitQgis()


if __name__ == "__main__":
    main()
