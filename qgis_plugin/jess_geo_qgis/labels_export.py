"""Write a polygon layer of labels as the GeoPackage ``jess-geo train`` reads (field ``class_id``).

Runs on the GUI thread before a training task starts (QGIS layers are not for worker threads).
A feature whose class value is empty, not a class id or name of the table, or (with
``only_field``) not marked true in that field is left out: unlabelled, as where there is no
polygon at all.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from .protocol import ClassEntry
from .training import LABEL_FIELD, label_value, marked


def export_labels(layer: QgsVectorLayer, field: str, path: str, classes: Sequence[ClassEntry], *,
                  selected_only: bool = False, only_field: str = "") -> int:
    """Write a polygon layer's labels (class from ``field``) to ``path``; returns the count written."""
    if layer is None or not layer.isValid() or layer.geometryType() != QgsWkbTypes.PolygonGeometry:
        raise ValueError("Choose a polygon layer of labels.")
    features = layer.getSelectedFeatures() if selected_only else layer.getFeatures()
    return export_features(features, layer.fields(), layer.crs(), layer.name(), field, path, classes,
                           only_field=only_field)


def export_features(features: Iterable[QgsFeature], fields: QgsFields, crs, name: str, field: str, path: str,
                    classes: Sequence[ClassEntry], *, only_field: str = "") -> int:
    """Write labelled polygons to a GeoPackage with one integer field ``class_id``.

    Works on any feature iterator (a layer's, or a Processing feature source's in a worker thread).

    Raises:
        ValueError: no such field, the file cannot be written, or no feature has a class.
    """
    for wanted in filter(None, (field, only_field)):
        if fields.indexOf(wanted) < 0:
            raise ValueError(f"Layer '{name}' has no field '{wanted}'; choose one of its fields.")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "labels"
    writer = QgsVectorFileWriter.create(path, _fields(), QgsWkbTypes.MultiPolygon, crs,
                                        QgsCoordinateTransformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.NoError:
        raise ValueError(f"Could not write the labels to {path}: {writer.errorMessage()}")
    written = 0
    for feature in features:
        value: Optional[int] = label_value(feature[field], classes)
        if value is None or not feature.hasGeometry() or (only_field and not marked(feature[only_field])):
            continue
        geometry = feature.geometry()
        geometry.convertToMultiType()
        out = QgsFeature(_fields())
        out.setGeometry(geometry)
        out.setAttributes([value])
        written += bool(writer.addFeature(out))
    del writer
    if not written:
        raise ValueError(f"No polygon of '{name}' has a class of the table in field '{field}'"
                         + (f" and '{only_field}' set" if only_field else "") + "; label some polygons first.")
    return written


def _fields() -> QgsFields:
    fields = QgsFields()
    fields.append(QgsField(LABEL_FIELD, QVariant.Int))
    return fields
