"""Screenshots of predict's rasters as QGIS shows them when dragged into a plain project.

Run with the Python that has QGIS (not the project's venv), headless:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 docs/make_output_screenshots.py

It runs ``jess-geo predict`` (from ``.venv/bin/jess-geo`` unless ``--engine`` says otherwise)
on the sample scene with ``--probabilities``, opens each raster in a fresh ``QgsProject`` with
whatever default style QGIS finds (the ``.qml`` beside the class raster, nothing else), and
exports two print layouts:

- ``docs/img/qgis_classes_legend.png``: the class raster and its legend (class names);
- ``docs/img/qgis_probabilities.png``: the probability raster as QGIS draws it by default, its
  legend, and each band in grey with the band name QGIS reads (none is hidden as alpha).
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsLayout,
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
    QgsUnitTypes,
)
from qgis.PyQt.QtGui import QFont

ROOT = Path(__file__).resolve().parents[1]
MM = QgsUnitTypes.LayoutMillimeters


def run_predict(engine: str, out: Path) -> tuple[Path, Path]:
    """The class and probability rasters of the sample scene, written into ``out``."""
    classes, probs = out / "scene_classes.tif", out / "scene_probabilities.tif"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PROJ_", "GDAL_", "QT_"))}
    subprocess.run([engine, "predict", str(ROOT / "sample_data" / "scene.tif"), "-o", str(classes),
                    "--probabilities", str(probs), "--no-vector", "--quiet", "--overwrite"], check=True, env=env)
    return classes, probs


def _place(item, x: float, y: float, w: float, h: float) -> None:  # type: ignore[no-untyped-def]
    item.attemptMove(QgsLayoutPoint(x, y, MM))
    item.attemptResize(QgsLayoutSize(w, h, MM))


def _map(layout: QgsLayout, layers: list, x: float, y: float, w: float, h: float) -> QgsLayoutItemMap:
    item = QgsLayoutItemMap(layout)
    _place(item, x, y, w, h)
    item.setLayers(layers)
    item.setKeepLayerSet(True)
    item.setExtent(layers[0].extent())
    item.setFrameEnabled(True)
    layout.addLayoutItem(item)
    return item


def _label(layout: QgsLayout, text: str, x: float, y: float, w: float, size: int = 10) -> None:
    item = QgsLayoutItemLabel(layout)
    item.setText(text)
    font = QFont()
    font.setPointSize(size)
    item.setFont(font)
    _place(item, x, y, w, 6)
    layout.addLayoutItem(item)


def _legend(layout: QgsLayout, linked: QgsLayoutItemMap, x: float, y: float) -> None:
    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Layers")
    legend.setLinkedMap(linked)
    legend.setLegendFilterByMapEnabled(False)
    layout.addLayoutItem(legend)
    legend.attemptMove(QgsLayoutPoint(x, y, MM))


def _page(project: QgsProject, w: float, h: float) -> QgsLayout:
    layout = QgsLayout(project)
    layout.initializeDefaults()
    layout.pageCollection().page(0).setPageSize(QgsLayoutSize(w, h, MM))
    return layout


def _export(layout: QgsLayout, path: Path) -> None:
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = 110
    settings.generateWorldFile = False
    result = QgsLayoutExporter(layout).exportToImage(str(path), settings)
    if result != QgsLayoutExporter.Success:
        raise SystemExit(f"exporting {path} failed ({result})")


def classes_shot(layer: QgsRasterLayer, path: Path) -> None:
    project = QgsProject()
    project.addMapLayer(layer)
    layout = _page(project, 235, 130)
    _label(layout, f"{layer.name()} dragged into QGIS {Qgis.QGIS_VERSION.split('-')[0]} (default style: the .qml beside it)", 8, 4, 234, 11)
    linked = _map(layout, [layer], 8, 14, 140, 112)
    _legend(layout, linked, 154, 14)
    _export(layout, path)
    project.takeMapLayer(layer)


def probabilities_shot(layer: QgsRasterLayer, path: Path) -> None:
    project = QgsProject()
    project.addMapLayer(layer)
    layout = _page(project, 300, 170)
    _label(layout, f"{layer.name()} dragged into QGIS {Qgis.QGIS_VERSION.split('-')[0]}: default rendering, and every band in grey", 8, 4, 284, 11)
    linked = _map(layout, [layer], 8, 16, 120, 96)
    _legend(layout, linked, 8, 116)
    keep = []
    for i in range(1, layer.bandCount() + 1):
        band = layer.clone()
        band.setRenderer(QgsSingleBandGrayRenderer(band.dataProvider(), i))
        band.renderer().setContrastEnhancement(None)
        keep.append(band)
        col, row = (i - 1) % 2, (i - 1) // 2
        x, y = 136 + col * 80, 16 + row * 76
        _label(layout, f"{layer.bandName(i)} ({layer.dataProvider().colorInterpretationName(i)})", x, y, 78, 8)
        _map(layout, [band], x, y + 6, 76, 62)
    _export(layout, path)
    project.takeMapLayer(layer)
    del keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default=str(ROOT / ".venv" / "bin" / "jess-geo"), help="the jess-geo command to run")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder for the two PNG files")
    args = parser.parse_args()
    app = QgsApplication([], False)
    app.initQgis()
    with tempfile.TemporaryDirectory() as tmp:
        classes_tif, probs_tif = run_predict(args.engine, Path(tmp))
        classes = QgsRasterLayer(str(classes_tif), classes_tif.stem)
        probs = QgsRasterLayer(str(probs_tif), probs_tif.stem)
        for layer in (classes, probs):
            if not layer.isValid():
                raise SystemExit(f"QGIS cannot open {layer.source()}")
        out = Path(args.out)
        classes_shot(classes, out / "qgis_classes_legend.png")
        probabilities_shot(probs, out / "qgis_probabilities.png")
        print(f"{classes.name()}: renderer {classes.renderer().type()}, legend "
              f"{[t for t, _ in classes.renderer().legendSymbologyItems()]}")
        print(f"{probs.name()}: renderer {probs.renderer().type()}, bands "
              f"{[(probs.bandName(i), probs.dataProvider().colorInterpretationName(i)) for i in range(1, probs.bandCount() + 1)]}")
        del classes, probs
        gc.collect()
    app.exitQgis()


if __name__ == "__main__":
    sys.exit(main())
