"""Appending measured class polygons to a layer in batches (GeoPackage: sqlite3, else pyogrio), plus its style.

Fields of every feature: ``class_id``, ``class_name``, ``area_m2``, ``perimeter_m``,
``area_px``, ``perimeter_px``, ``source``, ``model``. Shapefile field names are limited to 10
characters: there ``perimeter_m`` and ``perimeter_px`` are called ``perim_m`` and ``perim_px``.
``area_m2``/``perimeter_m`` are NULL for photos (no real-world units); the ``_px`` fields are
always filled.

A GeoPackage is written by :mod:`jess_geo.io.gpkg_writer` on the standard ``sqlite3`` module,
so predicting to a ``.gpkg`` never imports pyogrio (and with it pandas); FlatGeobuf, GeoJSON and
Shapefile go through pyogrio.

Style: a GeoPackage gets the categorized class style as its layer's default style in
``layer_styles``; the other formats get the same style as a ``.qml`` file beside them, which
QGIS loads by itself when the layer is opened.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import shapely

from jess_geo.errors import OutputError
from jess_geo.io.areas import Measure
from jess_geo.io.gpkg_style import categorized_qml, write_layer_style
from jess_geo.io.gpkg_writer import finish_gpkg_layer, write_gpkg_batch

__all__ = ["FIELDS", "PolygonWriter", "field_names"]

FIELDS = ["class_id", "class_name", "area_m2", "perimeter_m", "area_px", "perimeter_px", "source", "model"]
SHAPEFILE_NAMES = {"perimeter_m": "perim_m", "perimeter_px": "perim_px"}

WRITE_BATCH = 20000
"""Closed polygons buffered before they are appended to the layer."""


def field_names(driver: str) -> list[str]:
    """The attribute names written with ``driver`` (Shapefile: at most 10 characters)."""
    if driver == "ESRI Shapefile":
        return [SHAPEFILE_NAMES.get(f, f) for f in FIELDS]
    return list(FIELDS)


class PolygonWriter:
    """Buffers closed pixel-space polygons; moves, measures and appends them in batches."""

    def __init__(self, path: Path, driver: str, layer: str, measure: Measure, names: dict[int, str],
                 source: str = "", model: str = "", label: str = "") -> None:
        self.path, self.driver, self.layer, self.m = Path(path), driver, layer, measure
        self.label = label or self.path.name  # the name users know (the final path) for messages
        self.names, self.source, self.model = names, source, model
        self.geoms: list[Any] = []
        self.cls: list[int] = []
        self.created = False
        self.count: dict[int, int] = {}
        self.area: dict[int, float] = {}

    @property
    def pending(self) -> int:
        """Polygons written or buffered so far."""
        return sum(self.count.values()) + len(self.geoms)

    def add_many(self, polygons: Sequence[tuple[Any, int]]) -> None:
        """Queue ``(pixel-space polygon, class id)`` pairs; writes a batch when enough are queued."""
        for geom, class_id in polygons:
            self.geoms.append(geom)
            self.cls.append(class_id)
        if len(self.geoms) >= WRITE_BATCH:
            self.flush()

    def flush(self, final: bool = False) -> None:
        """Append the queued polygons (``final``: create the layer even when empty, then index a GeoPackage)."""
        px = np.array(self.geoms, dtype=object)
        cls = np.array(self.cls, dtype=np.int32)
        self.geoms, self.cls = [], []
        if len(px) == 0 and (self.created or not final):
            if final:
                self._finish()
            return
        area_px = np.asarray(shapely.area(px) if len(px) else np.zeros(0), dtype=np.float64)
        perim_px = np.asarray(shapely.length(px) if len(px) else np.zeros(0), dtype=np.float64)
        crs_geoms = self.m.to_crs(px) if len(px) else px
        area_m2, perim_m = self.m.measure(crs_geoms)
        n = len(px)
        names = np.array([self.names.get(int(c), f"class {int(c)}") for c in cls], dtype=object)
        columns = [cls, names, area_m2.astype(np.float64), perim_m.astype(np.float64), area_px, perim_px,
                   np.full(n, self.source, dtype=object), np.full(n, self.model, dtype=object)]
        self._write(crs_geoms, columns)
        self.created = True
        summary_area = area_m2 if self.m.georeferenced else area_px
        for c, a in zip(cls.tolist(), summary_area.tolist()):
            self.count[c] = self.count.get(c, 0) + 1
            self.area[c] = self.area.get(c, 0.0) + a
        if final:
            self._finish()

    def _finish(self) -> None:
        """After the last batch: a GeoPackage's spatial index, built in one pass."""
        if self.driver == "GPKG":
            try:
                finish_gpkg_layer(self.path, self.layer)
            except (sqlite3.Error, OSError) as exc:
                raise self._fail(exc) from None

    def _fail(self, exc: BaseException) -> OutputError:
        return OutputError(f"Polygons could not be written to {self.label} ({exc}); check the disk and the folder permissions.")

    def _write(self, crs_geoms: np.ndarray, columns: list[np.ndarray]) -> None:
        if self.driver == "GPKG":
            # GeoPackage 1.2: read without a warning by the GDAL of every QGIS from 3.22 on.
            try:
                write_gpkg_batch(self.path, self.layer, crs_geoms, field_names(self.driver), columns,
                                 crs_wkt=self.m.crs_wkt, append=self.created, geometry_type="POLYGON")
            except (sqlite3.Error, OSError) as exc:
                raise self._fail(exc) from None
            return
        import pyogrio.raw

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)  # photos
            try:
                pyogrio.raw.write(
                    str(self.path),
                    geometry=shapely.to_wkb(crs_geoms) if len(crs_geoms) else np.empty(0, dtype=object),
                    field_data=columns,
                    fields=field_names(self.driver),
                    layer=self.layer,
                    driver=self.driver,
                    geometry_type="Polygon",
                    crs=self.m.crs_wkt,
                    append=self.created,
                    encoding="UTF-8",
                )
            except Exception as exc:  # pyogrio.errors.DataSourceError / DataLayerError, OSError
                raise self._fail(exc) from None

    def write_style(self, classes: Sequence[dict[str, Any]]) -> None:
        """Store the class style: in the GeoPackage, else as a ``.qml`` file beside the data."""
        field = "class_id"
        try:
            if self.driver == "GPKG":
                write_layer_style(self.path, self.layer, classes, field=field)
            else:
                self.path.with_suffix(".qml").write_text(categorized_qml(classes, field), encoding="utf-8")
        except Exception as exc:  # sqlite3.Error and OSError
            raise OutputError(f"The layer style could not be written for {self.label} ({exc}); check the disk and the folder permissions.") from None

    def summary(self) -> dict[int, dict[str, Any]]:
        """Polygon count and summed area per class id (every class of the table, zeros included)."""
        ids = sorted(set(self.names) | set(self.count))
        return {i: {"name": self.names.get(i, f"class {i}"), "count": self.count.get(i, 0),
                    "area": self.area.get(i, 0.0)} for i in ids}
