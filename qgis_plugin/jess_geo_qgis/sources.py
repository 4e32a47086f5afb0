"""Which raster layers jess-geo can read: plain files on disk, read by GDAL."""

from __future__ import annotations

import os
from typing import Optional, Tuple

from qgis.core import QgsProviderRegistry, QgsRasterLayer


def raster_file(layer: Optional[QgsRasterLayer]) -> Tuple[str, str]:
    """Return ``(path, "")`` for a layer backed by a local file, else ``("", message)``.

    The message says what to do: jess-geo reads files, not web services, virtual or
    in-memory layers.
    """
    if layer is None or not layer.isValid():
        return "", "Choose a valid raster layer or file to segment."
    name = layer.name()
    provider = layer.providerType()
    if provider == "gdal":
        parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
        path = str(parts.get("path") or layer.source().split("|")[0])
        if path and os.path.isfile(path):
            return path, ""
    kind = {
        "wms": "a web map service (WMS/WMTS/XYZ) layer",
        "wcs": "a web coverage service (WCS) layer",
        "virtualraster": "a virtual raster layer",
        "memory": "a memory layer",
    }.get(provider, f"not a file on disk (data provider '{provider}')")
    return "", (
        f"Layer '{name}' is {kind}; jess-geo reads raster files only. Save it as a GeoTIFF "
        f"first (right-click the layer > Export > Save As...) and segment that file."
    )


def file_path_problem(path: str) -> str:
    """'' when ``path`` is an existing file, else the sentence to show."""
    if not path:
        return "Choose a raster layer or file to segment."
    if not os.path.isfile(path):
        return f"The input file {path} does not exist; choose an existing raster file."
    return ""
