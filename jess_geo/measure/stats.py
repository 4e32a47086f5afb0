"""Cover and landscape metrics of a class raster, for the whole raster or per zone.

``zone_stats`` returns one JSON-able dict per zone (or one for the whole raster):
``{"zone", "status", "outside_fraction", "nodata_fraction", "zone_pixels", "valid_pixels",
"valid_area", "classes": [...], "adjacency": {...}}`` with the per-class fields of
:class:`jess_geo.measure.landscape.Landscape` plus ``id``, ``name``, ``color``. ``status`` is
``ok``, ``partly outside`` (part of the zone lies off the raster), ``outside`` (all of it),
or ``no valid pixels`` (only nodata under it).
"""

from __future__ import annotations

from typing import Any, Callable

from rasterio.windows import Window

from jess_geo.errors import Cancelled
from jess_geo.measure.grid import STRIP_ROWS, ClassGrid, EdgeMeasure, read_index, strips
from jess_geo.measure.landscape import Landscape
from jess_geo.measure.zones import Zones, outside_fraction, raster_footprint, zone_strips

Progress = Callable[[str, int, int, str], None]
PARTLY_OUTSIDE = 1e-6
"""Outside share above which a zone is reported as partly outside (rounding of the footprint)."""


def new_landscape(grid: ClassGrid, connectivity: int = 8, patches: bool = True) -> Landscape:
    """A :class:`Landscape` measuring with ``grid``'s pixel areas and edge lengths."""
    measure, edges = grid.measure, EdgeMeasure(grid)
    return Landscape(grid.k, row_areas=measure.row_pixel_areas, horizontal=edges.horizontal,
                     vertical=edges.vertical, connectivity=connectivity, patches=patches)


def _finish(land: Landscape, grid: ClassGrid, zone: str, zone_pixels: int, outside: float) -> dict[str, Any]:
    res = land.result(grid.names)
    nodata = zone_pixels - res["valid_pixels"]
    for c, row in zip(grid.classes, res["classes"]):
        row.update({"id": int(c["id"]), "name": c["name"], "color": c.get("color", "")})
    res["classes"] = [{k: r[k] for k in ("id", "name", "color", *[x for x in r if x not in ("id", "name", "color")])}
                      for r in res["classes"]]
    if zone_pixels == 0 and outside >= 1.0 - PARTLY_OUTSIDE:
        status = "outside"
    elif res["valid_pixels"] == 0:
        status = "no valid pixels"
    elif outside > PARTLY_OUTSIDE:
        status = "partly outside"
    else:
        status = "ok"
    return {"zone": zone, "status": status, "outside_fraction": outside,
            "nodata_fraction": nodata / zone_pixels if zone_pixels else None,
            "zone_pixels": zone_pixels, "nodata_pixels": nodata, **res}


def raster_stats(src: Any, grid: ClassGrid, *, connectivity: int = 8, rows: int = STRIP_ROWS,
                 progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Metrics of the whole raster, strip by strip."""
    land = new_landscape(grid, connectivity)
    n = -(-grid.height // rows)
    for i, (r, h) in enumerate(strips(grid.height, rows)):
        if cancel is not None and cancel():
            raise Cancelled("stats was cancelled; nothing was written.")
        land.add(read_index(src, grid, Window(0, r, grid.width, h)), r)
        if progress is not None:
            progress("stats", i + 1, n, f"rows {r + h}/{grid.height}")
    return _finish(land, grid, "all", grid.width * grid.height, 0.0)


def one_zone(src: Any, grid: ClassGrid, geom: Any, name: str, *, connectivity: int = 8,
             rows: int = STRIP_ROWS) -> dict[str, Any]:
    """Metrics of the pixels whose centres fall inside ``geom`` (pixels outside it are no class)."""
    land = new_landscape(grid, connectivity)
    zone_pixels = 0
    for win, inside in zone_strips(geom, grid, rows):
        idx = read_index(src, grid, win)
        idx[~inside] = grid.k
        zone_pixels += int(inside.sum())
        land.add(idx, int(win.row_off))
    return _finish(land, grid, name, zone_pixels, outside_fraction(geom, raster_footprint(grid)))


def zone_stats(src: Any, grid: ClassGrid, zones: Zones | None = None, *, connectivity: int = 8,
               rows: int = STRIP_ROWS, progress: Progress | None = None,
               cancel: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Metrics per zone (``zones``), or of the whole raster when ``zones`` is None."""
    if zones is None:
        return [raster_stats(src, grid, connectivity=connectivity, rows=rows, progress=progress, cancel=cancel)]
    out = []
    for i, (geom, name) in enumerate(zip(zones.geoms, zones.names)):
        if cancel is not None and cancel():
            raise Cancelled("stats was cancelled; nothing was written.")
        out.append(one_zone(src, grid, geom, name, connectivity=connectivity, rows=rows))
        if progress is not None:
            progress("stats", i + 1, len(zones.names), f"zone {name}")
    return out


def cover_columns(grid: ClassGrid) -> list[tuple[str, int]]:
    """GeoPackage field names for the cover of each class: ``pct_<name>`` and ``area_<name>``."""
    used: set[str] = set()
    out = []
    for i, name in enumerate(grid.names):
        base = "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_") or f"class_{grid.ids[i]}"
        while base in used:
            base = f"{base}_{grid.ids[i]}"
        used.add(base)
        out.append((base, i))
    return out


def summary_columns(results: list[dict[str, Any]], grid: ClassGrid) -> dict[str, list[Any]]:
    """Per-zone columns to join onto the zones table (percent and area per class, quality fields)."""
    unit = grid.area_unit
    cols: dict[str, list[Any]] = {"status": [], "outside_fraction": [], "nodata_fraction": [], f"valid_area_{unit}": []}
    for base, _ in cover_columns(grid):
        cols[f"pct_{base}"] = []
        cols[f"{unit}_{base}"] = []
    for res in results:
        cols["status"].append(res["status"])
        cols["outside_fraction"].append(res["outside_fraction"])
        cols["nodata_fraction"].append(res["nodata_fraction"])
        cols[f"valid_area_{unit}"].append(res["valid_area"])
        for base, i in cover_columns(grid):
            row = res["classes"][i]
            cols[f"pct_{base}"].append(row["percent"] if res["valid_pixels"] else None)
            cols[f"{unit}_{base}"].append(row["area"])
    return cols


__all__ = ["zone_stats", "raster_stats", "one_zone", "new_landscape", "summary_columns", "cover_columns"]
