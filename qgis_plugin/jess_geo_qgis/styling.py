"""Show jess-geo's outputs in QGIS: class colours and names on the raster and the polygons."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from .protocol import ClassEntry

CLASS_ID_FIELD = "class_id"
CLASS_NAME_FIELD = "class_name"


def classes_from_raster(layer: QgsRasterLayer) -> List[ClassEntry]:
    """The classes of a class raster from its embedded colour table (names are generic)."""
    provider = layer.dataProvider()
    table = provider.colorTable(1) if provider is not None else []
    entries = QgsPalettedRasterRenderer.colorTableToClassData(table) if table else []
    nodata = provider.sourceNoDataValue(1) if provider and provider.sourceHasNoDataValue(1) else None
    return [
        ClassEntry(int(e.value), e.label or f"class {int(e.value)}", e.color.name())
        for e in entries
        if nodata is None or int(e.value) != int(nodata)
    ]


def paletted_renderer(layer: QgsRasterLayer, classes: Sequence[ClassEntry]) -> QgsPalettedRasterRenderer:
    """A paletted renderer for band 1 with one entry per class (its colour and name)."""
    entries = [QgsPalettedRasterRenderer.Class(c.id, QColor(c.color), c.name) for c in classes]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, entries)


def categorized_renderer(
    layer: QgsVectorLayer, classes: Sequence[ClassEntry]
) -> Optional[QgsCategorizedSymbolRenderer]:
    """Categories by class id (labelled with class names); None without a class field."""
    fields = layer.fields()
    if fields.indexOf(CLASS_ID_FIELD) >= 0:
        field, key = CLASS_ID_FIELD, "id"
    elif fields.indexOf(CLASS_NAME_FIELD) >= 0:
        field, key = CLASS_NAME_FIELD, "name"
    else:
        return None
    categories = []
    for entry in classes:
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        colour = QColor(entry.color)
        symbol.setColor(colour)
        symbol_layer = symbol.symbolLayer(0)
        if symbol_layer is not None and hasattr(symbol_layer, "setStrokeColor"):
            symbol_layer.setStrokeColor(colour.darker(150))
            symbol_layer.setStrokeWidth(0.2)
        value = entry.id if key == "id" else entry.name
        categories.append(QgsRendererCategory(value, symbol, entry.name))
    return QgsCategorizedSymbolRenderer(field, categories)


def style_class_raster(layer: QgsRasterLayer, classes: Sequence[ClassEntry]) -> None:
    layer.setRenderer(paletted_renderer(layer, classes))
    layer.triggerRepaint()


def style_polygons(layer: QgsVectorLayer, classes: Sequence[ClassEntry]) -> None:
    """Categorized symbology by class; keeps the GeoPackage's own style when it has no class field."""
    renderer = categorized_renderer(layer, classes)
    if renderer is not None:
        layer.setRenderer(renderer)
        layer.triggerRepaint()


def _group(project: QgsProject, name: str) -> QgsLayerTreeGroup:
    root = project.layerTreeRoot()
    group = root.findGroup(name)
    return group if group is not None else root.insertGroup(0, name)


def add_result_layers(
    project: QgsProject,
    group_name: str,
    outputs: Dict[str, Optional[str]],
    classes: Sequence[ClassEntry],
) -> List[QgsMapLayer]:
    """Add the outputs of a run to ``project`` in a group called ``group_name``.

    The class raster gets a paletted renderer and the polygons a categorized one, both in
    the model's colours and class names; probability and energy rasters are added hidden.
    Returns the layers added, top first.
    """
    layers: List[QgsMapLayer] = []
    hidden: List[QgsMapLayer] = []
    classes = list(classes)

    classes_path = outputs.get("classes")
    raster = None
    if classes_path and os.path.exists(classes_path):
        raster = QgsRasterLayer(classes_path, f"{group_name} classes", "gdal")
        if raster.isValid():
            if not classes:
                classes = classes_from_raster(raster)
            style_class_raster(raster, classes)
        else:
            raster = None

    vector_path = outputs.get("vector")
    if vector_path and os.path.exists(vector_path):
        layer_name = outputs.get("vector_layer")
        uri = f"{vector_path}|layername={layer_name}" if layer_name and vector_path.endswith(".gpkg") else vector_path
        vector = QgsVectorLayer(uri, f"{group_name} polygons", "ogr")
        if vector.isValid():
            style_polygons(vector, classes)
            layers.append(vector)
    if raster is not None:
        layers.append(raster)

    for key, label in (("energy", "energy"), ("probabilities", "probabilities")):
        path = outputs.get(key)
        if path and os.path.exists(path):
            extra = QgsRasterLayer(path, f"{group_name} {label}", "gdal")
            if extra.isValid():
                layers.append(extra)
                hidden.append(extra)

    if not layers:
        return []
    group = _group(project, group_name)
    for position, layer in enumerate(layers):
        project.addMapLayer(layer, False)
        node = group.insertLayer(position, layer)
        if layer in hidden and node is not None:
            node.setItemVisibilityChecked(False)
    return layers
