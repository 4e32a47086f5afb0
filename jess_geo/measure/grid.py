"""A class raster opened for measuring: its class table, strips of class indexes, pixel sizes.

Class values are turned into *class indexes* ``0..K-1`` (the order of the class table) through a
256-entry look-up table; ``K`` marks "no class" (nodata, a masked pixel, outside a zone). The
class table comes from the raster's own tags (``CLASS_NAMES`` / ``CLASS_COLORS``, written by
``jess-geo predict`` and ``jess-geo change``) or from a class-table file.

Areas come from :class:`jess_geo.io.areas.Measure` (m², geodesic in a geographic CRS; px² for
photos); edge lengths between pixels are measured here with the same rule.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from rasterio.windows import Window

from jess_geo.classes import IGNORE, load_class_table
from jess_geo.errors import InputError
from jess_geo.io.areas import Measure
from jess_geo.io.raster import info_from_dataset, open_raster, read_valid

STRIP_ROWS = 512
"""Rows of a class raster read at a time."""

_DEFAULT_COLOUR = "#7f7f7f"


@dataclass
class ClassGrid:
    """Size, georeferencing and class table of one class raster."""

    path: Path
    width: int
    height: int
    transform: Any
    crs_wkt: str | None
    nodata: int | None
    classes: list[dict[str, Any]]
    use_mask: bool = False
    lut: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lut = np.full(256, -1, dtype=np.int16)
        for i, c in enumerate(self.classes):
            self.lut[int(c["id"])] = i
        self.lut[IGNORE] = self.k
        if self.nodata is not None and 0 <= self.nodata <= 255:
            self.lut[self.nodata] = self.k

    @property
    def k(self) -> int:
        """Number of classes (also the index that means "no class")."""
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [str(c["name"]) for c in self.classes]

    @property
    def ids(self) -> list[int]:
        return [int(c["id"]) for c in self.classes]

    @property
    def measure(self) -> Measure:
        return Measure(self.transform, self.crs_wkt)

    @property
    def area_unit(self) -> str:
        """``"m2"`` (georeferenced) or ``"px2"`` (photos)."""
        return "m2" if self.crs_wkt else "px2"

    def same_grid(self, other: "ClassGrid") -> bool:
        """True when ``other`` has this raster's size, transform and CRS."""
        return (self.width, self.height) == (other.width, other.height) and \
            self.transform.almost_equals(other.transform) and self.crs_wkt == other.crs_wkt

    def to_index(self, values: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Class indexes (uint8, ``k`` = no class) of raw class values; unknown values are an InputError."""
        idx = self.lut[values]
        bad = idx < 0
        if bad.any():
            unknown = sorted({int(v) for v in np.unique(values[bad])})[:5]
            raise InputError(
                f"{self.path} holds value(s) {unknown} that its class table does not list; "
                "pass --classes with the table that matches this raster."
            )
        if valid is not None:
            idx = np.where(valid, idx, self.k)
        return idx.astype(np.uint8)


def _tag_json(tags: dict[str, str], key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(tags[key])
    except (KeyError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def classes_from_tags(tags: dict[str, str], colormap: dict[int, tuple] | None) -> list[dict[str, Any]] | None:
    """The class table written into a class raster by jess-geo, or None when it has none."""
    names = _tag_json(tags, "CLASS_NAMES")
    if not names:
        return None
    colours = _tag_json(tags, "CLASS_COLORS") or {}
    out = []
    for key, name in names.items():
        cid = int(key)
        colour = colours.get(key)
        if not colour and colormap and cid in colormap:
            colour = "#{:02x}{:02x}{:02x}".format(*colormap[cid][:3])
        out.append({"id": cid, "name": str(name), "color": str(colour or _DEFAULT_COLOUR)})
    return sorted(out, key=lambda c: c["id"])


def _colormap(src: Any) -> dict[int, tuple] | None:
    try:
        return src.colormap(1)
    except ValueError:
        return None


def describe(src: Any, classes_path: str | Path | None = None) -> ClassGrid:
    """The :class:`ClassGrid` of an open single-band class raster."""
    info = info_from_dataset(src)
    if info.count != 1 or not np.issubdtype(np.dtype(info.dtype), np.integer) or np.dtype(info.dtype).itemsize > 2:
        raise InputError(
            f"{info.path} is not a class raster ({info.count} band(s) of {info.dtype}); "
            "pass the single-band class GeoTIFF written by `jess-geo predict`."
        )
    if classes_path is not None:
        classes = load_class_table(classes_path).to_list()
    else:
        classes = classes_from_tags(src.tags(), _colormap(src))
        if classes is None:
            raise InputError(
                f"{info.path} has no class table (no CLASS_NAMES tag); pass --classes with its class table (JSON or YAML)."
            )
    nodata = int(info.nodata) if info.nodata is not None and float(info.nodata).is_integer() else None
    return ClassGrid(
        path=info.path, width=info.width, height=info.height, transform=info.transform, crs_wkt=info.crs_wkt,
        nodata=nodata, classes=classes, use_mask=info.has_internal_mask or info.alpha_band is not None,
    )


@contextmanager
def open_class_raster(path: str | Path, classes_path: str | Path | None = None) -> Iterator[tuple[Any, ClassGrid]]:
    """Open a class raster and describe it: ``with open_class_raster(p) as (src, grid):``."""
    with open_raster(path) as src:
        yield src, describe(src, classes_path)


def read_index(src: Any, grid: ClassGrid, window: Window) -> np.ndarray:
    """Class indexes of one window (``grid.k`` where there is no class)."""
    try:
        values = src.read(1, window=window)
    except Exception as exc:  # rasterio.errors.RasterioIOError on a corrupt block
        raise InputError(f"{grid.path} could not be read (corrupt or truncated image?); re-export or replace the file.") from exc
    if values.dtype != np.uint8:
        if values.min(initial=0) < 0 or values.max(initial=0) > 255:
            raise InputError(f"{grid.path} holds class values outside 0-255; pass a class raster written by jess-geo.")
        values = values.astype(np.uint8)
    valid = read_valid(src, window=window) if grid.use_mask else None
    return grid.to_index(values, valid)


def strips(height: int, rows: int = STRIP_ROWS, row_off: int = 0) -> Iterator[tuple[int, int]]:
    """(first row, number of rows) of consecutive strips covering ``height`` rows from ``row_off``."""
    for r in range(row_off, row_off + height, rows):
        yield r, min(rows, row_off + height - r)


class EdgeMeasure:
    """Length (m, or px for photos) of pixel edges, row by row, with the rule of :class:`Measure`."""

    def __init__(self, grid: ClassGrid) -> None:
        self.measure = grid.measure
        t = grid.transform
        self.t = t
        if not self.measure.georeferenced:
            self._w, self._h = 1.0, 1.0
        elif self.measure.geod is None:
            self._w = math.hypot(t.a, t.d) * self.measure.unit
            self._h = math.hypot(t.b, t.e) * self.measure.unit
        else:
            self._w = self._h = None  # type: ignore[assignment]

    def _geodesic(self, rows: np.ndarray, dcol: float, drow: float) -> np.ndarray:
        t = self.t
        x0, y0 = t.a * 0 + t.b * rows + t.c, t.d * 0 + t.e * rows + t.f
        x1, y1 = t.a * dcol + t.b * (rows + drow) + t.c, t.d * dcol + t.e * (rows + drow) + t.f
        _, _, dist = self.measure.geod.inv(x0, y0, x1, y1)
        return np.abs(np.asarray(dist, dtype=np.float64))

    def horizontal(self, row_off: int, n: int) -> np.ndarray:
        """Length of one pixel's edge on each row line ``row_off .. row_off + n - 1`` (the top edge of that row)."""
        if self._w is not None:
            return np.full(n, self._w)
        return self._geodesic(np.arange(row_off, row_off + n, dtype=np.float64), 1.0, 0.0)

    def vertical(self, row_off: int, n: int) -> np.ndarray:
        """Length of a pixel's side edge in each row ``row_off .. row_off + n - 1``."""
        if self._h is not None:
            return np.full(n, self._h)
        return self._geodesic(np.arange(row_off, row_off + n, dtype=np.float64), 0.0, 1.0)
