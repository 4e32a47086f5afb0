"""Area and length of raster pixels and polygons, in metres where the raster has a CRS.

One rule for every output that reports an area (polygons, cover tables):

- projected CRS: planar area and length times the CRS's linear unit in metres (squared);
- geographic CRS: geodesic area and length on the CRS's ellipsoid (``pyproj.Geod``; WGS84 when
  the CRS names none), so a degree of longitude shrinks towards the poles as it should;
- no CRS (plain photos): pixel units, one pixel is 1 px² whatever the transform says.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from affine import Affine

__all__ = ["Measure"]


class Measure:
    """Measures pixels and pixel-space polygons of one raster (its transform and CRS)."""

    def __init__(self, transform: Affine, crs_wkt: str | None) -> None:
        self.transform = transform
        self.crs_wkt = crs_wkt or None
        self.geod: Any = None
        self.unit = 1.0  # metres per CRS unit (projected CRSs)
        if self.crs_wkt is None:
            return
        from pyproj import CRS, Geod

        crs = CRS.from_wkt(self.crs_wkt)
        if crs.is_geographic:
            self.geod = crs.get_geod() or Geod(ellps="WGS84")
            return
        try:
            self.unit = float(crs.axis_info[0].unit_conversion_factor)
        except (IndexError, AttributeError, TypeError, ValueError):
            self.unit = 1.0

    @property
    def georeferenced(self) -> bool:
        """Whether areas are in m² (True) or px² (False)."""
        return self.crs_wkt is not None

    @property
    def area_unit(self) -> str:
        """``"m2"`` or ``"px2"``."""
        return "m2" if self.georeferenced else "px2"

    @property
    def pixel_size(self) -> float:
        """Mean side of a pixel in CRS units (1 for photos)."""
        t = self.transform
        return math.sqrt(abs(t.a * t.e - t.b * t.d)) if self.georeferenced else 1.0

    @property
    def constant_pixel_area(self) -> float | None:
        """Area of every pixel (m² or px²), or None when it varies by row (geographic CRS)."""
        if not self.georeferenced:
            return 1.0
        if self.geod is not None:
            return None
        t = self.transform
        return abs(t.a * t.e - t.b * t.d) * self.unit**2

    def pixel_area(self, row: float, col: float = 0.0) -> float:
        """Area of the pixel whose top-left corner is at (``row``, ``col``)."""
        return float(self.row_pixel_areas(row, 1, col)[0])

    def row_pixel_areas(self, row_off: float, n: int, col: float = 0.0) -> np.ndarray:
        """Area of one pixel in each of ``n`` rows starting at row ``row_off``."""
        constant = self.constant_pixel_area
        if constant is not None:
            return np.full(n, constant, dtype=np.float64)
        t = self.transform
        cols = np.array([col, col + 1, col + 1, col], dtype=np.float64)
        out = np.empty(n, dtype=np.float64)
        for i in range(n):
            r = row_off + i
            rows = np.array([r, r, r + 1, r + 1], dtype=np.float64)
            xs, ys = t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f
            area, _ = self.geod.polygon_area_perimeter(xs, ys)
            out[i] = abs(area)
        return out

    def to_crs(self, geoms: np.ndarray) -> np.ndarray:
        """Pixel-space geometries (x = column, y = row) moved by the raster's affine transform."""
        t = self.transform

        def apply(xy: np.ndarray) -> np.ndarray:
            out = np.empty_like(xy)
            x, y = xy[:, 0], xy[:, 1]
            out[:, 0] = t.a * x + t.b * y + t.c
            out[:, 1] = t.d * x + t.e * y + t.f
            return out

        return shapely.transform(geoms, apply)

    def measure(self, crs_geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(area m², perimeter m) of geometries in CRS coordinates; NaN for photos."""
        n = len(crs_geoms)
        if not self.georeferenced:
            return np.full(n, np.nan), np.full(n, np.nan)
        if self.geod is None:
            return shapely.area(crs_geoms) * self.unit**2, shapely.length(crs_geoms) * self.unit
        area, perimeter = np.empty(n), np.empty(n)
        for i, g in enumerate(crs_geoms):
            a, p = self.geod.geometry_area_perimeter(g)
            area[i], perimeter[i] = abs(a), p
        return area, perimeter
