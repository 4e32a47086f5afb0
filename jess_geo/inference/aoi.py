"""The area of interest of one scene: its pixel window, its tiles, its mask strip by strip.

Design: a run with an area works on the area's bounding *window* only (whole pixels, grown by the
tiles' overlap as context, starting on a working pixel, inside the scene). Every output has the window's size and transform (the scene's transform shifted to the
window's corner), so a small area of a huge scene costs its own size in work and disk. Inside
the window, pixels whose centre lies outside the area's polygon are nodata in every output (and
so never counted in the cover table nor vectorised), but their values still reach the network as
context, so predictions near the area's edge see what a full-scene run sees there. Tiles without
a pixel inside the area are never sent to the network.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.features import geometry_mask
from shapely.geometry.base import BaseGeometry

from jess_geo.errors import InputError
from jess_geo.inference.tiling import TileGrid
from jess_geo.io.aoi import AreaSpec, area_in_scene
from jess_geo.io.raster import RasterInfo

EPS = 1e-6  # pixels: a bound this close to a pixel edge is on it


@dataclass(frozen=True)
class Area:
    """An area in one scene: geometry in scene coordinates, its window (pixels) and transform."""

    geometry: BaseGeometry
    col_off: int
    row_off: int
    width: int
    height: int
    transform: Affine  # of the window (every output's transform)
    label: str
    tiles_in_area: int | None = None  # tiles of the plan with a part inside the geometry
    notice: str | None = None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The geometry's (minx, miny, maxx, maxy), clipped to the scene, in scene coordinates."""
        return tuple(float(v) for v in self.geometry.bounds)  # type: ignore[return-value]


def _window(geom: BaseGeometry, transform: Affine, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``(col0, row0, col1, row1)``: whole pixels covering ``geom``'s bounds, inside the scene."""
    minx, miny, maxx, maxy = geom.bounds
    inv = ~transform
    cols, rows = zip(*(inv @ (x, y) for x in (minx, maxx) for y in (miny, maxy)))
    c0, r0 = max(0, math.floor(min(cols) + EPS)), max(0, math.floor(min(rows) + EPS))
    c1, r1 = min(width, math.ceil(max(cols) - EPS)), min(height, math.ceil(max(rows) - EPS))
    return (c0, r0, c1, r1) if c1 > c0 and r1 > r0 else None


def resolve_area(spec: AreaSpec, info: RasterInfo, margin: int = 0, step: int = 1) -> Area:
    """The area of ``spec`` in scene ``info``; an area outside the scene is a one-line InputError.

    The window is grown by ``margin`` pixels of context on every side and starts on a multiple
    of ``step`` pixels (the working scale's pixel), both within the scene.
    """
    geom, notice = area_in_scene(spec, info.crs_wkt, info.name)
    scene_box = shapely.box(*info.bounds)
    inside = shapely.intersection(geom, scene_box)
    window = _window(inside, info.transform, info.width, info.height) if not inside.is_empty else None
    if window is None or inside.area <= 0:
        where = "the photo's pixel coordinates" if info.crs_wkt is None else "the scene's CRS"
        b = " ".join(f"{v:.6g}" for v in geom.bounds)
        s = " ".join(f"{v:.6g}" for v in info.bounds)
        raise InputError(f"The {spec.label} ({b} in {where}) does not overlap {info.name} ({s}); choose an area over the scene.")
    c0, r0, c1, r1 = window
    c0, r0 = (max(0, v - margin) // step * step for v in (c0, r0))
    c1, r1 = min(info.width, c1 + margin), min(info.height, r1 + margin)
    return Area(inside, c0, r0, c1 - c0, r1 - r0, info.transform @ Affine.translation(c0, r0), spec.label, notice=notice)


def context_pixels(overlap: int, scale: float) -> tuple[int, int]:
    """``(margin, step)`` in scene pixels: the tiles' overlap as context, one working pixel."""
    if not (math.isfinite(scale) and scale > 0):
        return 0, 1  # the tile plan refuses such a scale
    return int(round(overlap / scale)), max(1, int(round(1 / scale)))


def crop_info(info: RasterInfo, area: Area) -> RasterInfo:
    """``info`` as the pipeline sees a cropped scene: the window's size and transform (same file)."""
    return dataclasses.replace(info, width=area.width, height=area.height, transform=area.transform)


def count_tiles(area: Area, grid: TileGrid) -> Area:
    """``area`` with ``tiles_in_area``: the tiles of ``grid`` (window pixels) that have a part inside its geometry."""
    tiles = [tile for row in grid.rows() for tile in row]
    t = area.transform
    x0, y0 = t @ (np.array([tl.col for tl in tiles]), np.array([tl.row for tl in tiles]))
    x1, y1 = t @ (np.array([tl.col + tl.width for tl in tiles]), np.array([tl.row + tl.height for tl in tiles]))
    boxes = shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1))
    n = int(np.count_nonzero(shapely.intersects(area.geometry, boxes) & ~shapely.touches(area.geometry, boxes)))
    return dataclasses.replace(area, tiles_in_area=n)


def area_mask(area: Area, row0: int, height: int) -> np.ndarray:
    """``(height, width)`` bool: True where a pixel centre of window rows ``[row0, row0 + height)`` is in the area."""
    shape = (height, area.width)
    return geometry_mask([area.geometry], out_shape=shape, transform=area.transform @ Affine.translation(0, row0), invert=True)


def area_json(area: Area | None) -> dict[str, Any] | None:
    """The ``aoi`` object of the plan line: label, bounds (scene CRS), window, tiles touching it."""
    if area is None:
        return None
    return {"label": area.label, "bounds": list(area.bounds),
            "window": [area.col_off, area.row_off, area.width, area.height], "tiles_in_area": area.tiles_in_area}
