"""Side-car files of the class GeoTIFF: category names and attribute table, QGIS default style.

- ``<file>.aux.xml`` (GDAL PAM): the band's category names (index = class value) and a thematic
  raster attribute table (Value, Class, Red, Green, Blue). GDAL keeps a GeoTIFF's RAT and
  category names in this file; rasterio cannot write them, so the XML is written here.
  ``gdalinfo``, QGIS 3.30+ and ArcGIS read it.
- ``<stem>.qml``: a paletted renderer with one entry per class (colour and name), which QGIS
  loads by itself when the raster is opened. QGIS 3.22 takes labels from the category names
  but makes one legend entry per colour-table entry (256 for a byte raster); this style lists
  the model's classes only.

Both are written next to the (temporary) raster when it is finished; whoever renames the
raster renames :func:`sidecars` with it, and :func:`copy_sidecars` follows a copy (COG).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape, quoteattr

from jess_geo.classes import color_rgb

__all__ = ["class_pam_xml", "class_qml", "copy_sidecars", "sidecars", "write_class_sidecars"]

RAT_FIELDS = (("Value", 0, 5), ("Class", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8))
"""(name, GDALRATFieldType, GDALRATFieldUsage): integer/MinMax, string/Name, integer/Red/Green/Blue."""


def sidecars(path: str | Path) -> list[Path]:
    """The side-car files of raster ``path``: GDAL's ``<file>.aux.xml`` and QGIS's ``<stem>.qml``."""
    path = Path(path)
    return [Path(f"{path}.aux.xml"), path.with_suffix(".qml")]


def class_pam_xml(classes: Sequence[dict[str, Any]]) -> str:
    """GDAL PAM XML for band 1: category names (index = class value) and a thematic RAT.

    GDAL keeps a GeoTIFF's category names and attribute table in this ``.aux.xml`` side-car;
    QGIS (3.30 and later) and ArcGIS read the table from it, ``gdalinfo`` lists both.
    """
    by_id = {int(c["id"]): c for c in classes}
    names = [escape(str(by_id[i]["name"])) if i in by_id else "" for i in range(max(by_id) + 1)]
    cats = "".join(f"      <Category>{n}</Category>\n" for n in names)
    fields = "".join(
        f'      <FieldDefn index="{i}">\n        <Name>{n}</Name>\n        <Type>{t}</Type>\n        <Usage>{u}</Usage>\n      </FieldDefn>\n'
        for i, (n, t, u) in enumerate(RAT_FIELDS))
    rows = []
    for row, cid in enumerate(sorted(by_id)):
        r, g, b = color_rgb(by_id[cid]["color"])
        values = [str(cid), escape(str(by_id[cid]["name"])), str(r), str(g), str(b)]
        rows.append(f'      <Row index="{row}">\n' + "".join(f"        <F>{v}</F>\n" for v in values) + "      </Row>\n")
    return ('<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n' + cats +
            '    </CategoryNames>\n    <GDALRasterAttributeTable tableType="thematic">\n' + fields + "".join(rows) +
            "    </GDALRasterAttributeTable>\n  </PAMRasterBand>\n</PAMDataset>\n")


def class_qml(classes: Sequence[dict[str, Any]]) -> str:
    """A QGIS style (QML) for the class raster: a paletted renderer listing the classes only."""
    entries = "".join(
        f'    <paletteEntry value="{int(c["id"])}" color="{"#%02x%02x%02x" % color_rgb(c["color"])}" alpha="255" '
        f'label={quoteattr(str(c["name"]))}/>\n' for c in sorted(classes, key=lambda c: int(c["id"])))
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22.0" styleCategories="Symbology">\n <pipe>\n'
            '  <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
            "   <rasterTransparency/>\n   <colorPalette>\n" + entries + "   </colorPalette>\n  </rasterrenderer>\n"
            '  <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
            '  <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" '
            'colorizeBlue="128" colorizeStrength="100" invertColors="0"/>\n'
            '  <rasterresampler maxOversampling="2"/>\n </pipe>\n <blendMode>0</blendMode>\n</qgis>\n')


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_class_sidecars(path: str | Path, classes: Sequence[dict[str, Any]]) -> None:
    """Write ``<file>.aux.xml`` (category names, attribute table) and ``<stem>.qml`` beside ``path``."""
    aux, qml = sidecars(path)
    _write_text(aux, class_pam_xml(classes))
    _write_text(qml, class_qml(classes))


def copy_sidecars(src: str | Path, dst: str | Path) -> None:
    """Copy the side-cars of raster ``src`` (those that exist) to the side-car names of ``dst``."""
    for a, b in zip(sidecars(src), sidecars(dst)):
        if a.exists():
            shutil.copyfile(a, b)
