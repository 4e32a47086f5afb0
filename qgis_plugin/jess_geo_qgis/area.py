"""The area to segment, as `jess-geo predict` options: map canvas extent or a polygon layer.

Runs on the GUI thread (QGIS layers and the canvas are not for worker threads). The entire
layer needs no option. A canvas extent becomes ``--bbox`` in the canvas CRS (for a layer
without CRS, the extent as it is: x = column, y = -row); a polygon layer (its selected
features, or all) is written to a one-layer GeoPackage for ``--aoi``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Dict, Tuple

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)


def extent_area(extent: QgsRectangle, crs) -> Dict[str, object]:
    """PredictRequest fields for an extent (the map canvas's): ``bbox`` and ``bbox_crs``."""
    box: Tuple[float, float, float, float] = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
    authid = crs.authid() if crs is not None and crs.isValid() else ""
    return {"bbox": box, "bbox_crs": authid}


def polygon_area(layer: QgsVectorLayer, selected_only: bool = False, folder: str = "") -> Dict[str, object]:
    """PredictRequest fields for a polygon layer: ``aoi_path``, a GeoPackage of its (selected) polygons.

    Raises:
        ValueError: not a polygon layer, no feature selected, or the file cannot be written.
    """
    if layer is None or not layer.isValid() or layer.geometryType() != QgsWkbTypes.PolygonGeometry:
        raise ValueError("Choose a polygon layer for the area.")
    if selected_only and layer.selectedFeatureCount() == 0:
        raise ValueError(f"No feature of '{layer.name()}' is selected; select the polygons to segment in.")
    path = os.path.join(folder or tempfile.mkdtemp(prefix="jess-geo-aoi-"), "area.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "area"
    options.onlySelectedFeatures = selected_only
    options.attributes = []
    error = QgsVectorFileWriter.writeAsVectorFormatV2(layer, path, QgsCoordinateTransformContext(), options)
    if error[0] != QgsVectorFileWriter.NoError:
        raise ValueError(f"Could not write the area to {path}: {error[1]}")
    return {"aoi_path": path}


def parse_bands(text: str):
    """``"3,2,1"`` -> (3, 2, 1); empty -> () (the model's bands).

    Raises:
        ValueError: a value that is not a positive band number.
    """
    items = [item.strip() for item in text.replace(" ", ",").split(",") if item.strip()]
    if not all(item.isdigit() and int(item) >= 1 for item in items):
        raise ValueError(f"Layer bands {text!r} must be band numbers from 1, one per model band, e.g. 3,2,1.")
    return tuple(int(item) for item in items)
