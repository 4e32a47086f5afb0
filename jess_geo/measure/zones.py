"""Zones (plots) from a vector file: read, moved to the raster's CRS, cut into pixel windows.

A pixel belongs to a zone when its centre lies inside the zone's polygon (the rule of
``rasterio.features.rasterize``). Overlapping zones each get all their pixels. A zone's window
is its bounding box clipped to the raster, read in strips, so memory follows the strip size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from jess_geo.errors import InputError
from jess_geo.measure.grid import STRIP_ROWS, ClassGrid


@dataclass
class Zones:
    """Zone polygons in the raster's CRS, their names and the original table (for the GeoPackage copy)."""

    frame: Any  # geopandas.GeoDataFrame as read (original CRS and fields)
    geoms: np.ndarray  # shapely geometries in the raster's CRS
    names: list[str]
    field: str
    notice: str | None = None


def read_zones(path: str | Path, field: str | None, grid: ClassGrid, layer: str | None = None) -> Zones:
    """Read polygon zones and move them to ``grid``'s CRS; missing file or field is an InputError."""
    import geopandas as gpd
    import pyogrio

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Zones file {path} does not exist; check the path of --zones.")
    try:
        frame = gpd.read_file(path, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        raise InputError(f"Zones file {path} cannot be read as a vector layer ({str(exc).splitlines()[0]}); pass a GeoPackage or shapefile.") from None
    if frame.geometry is None or len(frame) == 0:
        raise InputError(f"Zones file {path} holds no features; draw at least one polygon.")
    if field is not None and field not in frame.columns:
        fields = ", ".join(c for c in frame.columns if c != frame.geometry.name) or "none"
        raise InputError(f"Zones file {path} has no field {field!r} (fields: {fields}); pass --zone-field with one of them.")
    kinds = set(frame.geometry.geom_type.dropna())
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise InputError(f"Zones file {path} holds {', '.join(sorted(kinds))} geometries; zones must be polygons.")
    notice = None
    geo = frame.geometry
    if grid.crs_wkt and frame.crs is not None:
        from pyproj import CRS

        target = CRS.from_wkt(grid.crs_wkt)
        if not frame.crs.equals(target):
            geo = geo.to_crs(target)
            notice = f"zones moved from {frame.crs.to_string()} to the raster's CRS"
    elif grid.crs_wkt and frame.crs is None:
        notice = "the zones have no CRS; their coordinates are taken to be in the raster's CRS"
    elif not grid.crs_wkt and frame.crs is not None:
        notice = "the raster has no CRS (a photo); zone coordinates are taken as pixel coordinates (x = column, y = -row)"
    names = [str(v) for v in frame[field]] if field else [str(i + 1) for i in range(len(frame))]
    return Zones(frame=frame, geoms=np.asarray(geo.values, dtype=object), names=names, field=field or "zone", notice=notice)


def raster_footprint(grid: ClassGrid) -> Any:
    """The raster's outline as a polygon in its CRS (or pixel) coordinates."""
    t = grid.transform
    cols = np.array([0, grid.width, grid.width, 0], dtype=float)
    rows = np.array([0, 0, grid.height, grid.height], dtype=float)
    return shapely.Polygon(np.c_[t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f])


def outside_fraction(geom: Any, footprint: Any) -> float:
    """Share of the zone's area that lies outside the raster (planar, in the raster's CRS)."""
    if geom is None or geom.is_empty or geom.area == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        inside = shapely.intersection(geom, footprint).area
    return max(0.0, 1.0 - inside / geom.area)


def zone_window(geom: Any, grid: ClassGrid) -> Window | None:
    """The pixel window of the zone's bounding box, clipped to the raster; None when outside."""
    if geom is None or geom.is_empty:
        return None
    win = from_bounds(*geom.bounds, transform=grid.transform)
    c0, r0 = int(np.floor(win.col_off)), int(np.floor(win.row_off))
    c1, r1 = int(np.ceil(win.col_off + win.width)), int(np.ceil(win.row_off + win.height))
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, grid.width), min(r1, grid.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def zone_strips(geom: Any, grid: ClassGrid, rows: int = STRIP_ROWS) -> Iterator[tuple[Window, np.ndarray]]:
    """(window, inside mask) for consecutive strips of the zone's window."""
    win = zone_window(geom, grid)
    if win is None:
        return
    c0, r0, w, h = int(win.col_off), int(win.row_off), int(win.width), int(win.height)
    for r in range(r0, r0 + h, rows):
        n = min(rows, r0 + h - r)
        strip = Window(c0, r, w, n)
        mask = rasterize([(geom, 1)], out_shape=(n, w), transform=window_transform(strip, grid.transform),
                         fill=0, dtype="uint8").astype(bool)
        yield strip, mask
