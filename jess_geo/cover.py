"""Per-class cover table of a class raster: pixels, area and percent of the valid area.

Built incrementally, strip by strip, while the class raster is written (no full-scene array).
Areas follow :mod:`jess_geo.io.areas` (the same rule as the polygons): square metres for a
projected CRS, geodesic square metres for a geographic CRS (each row of pixels measured on the
ellipsoid), px² for photos and rasters without a CRS. Nodata pixels (``IGNORE``) are counted
apart and left out of the percentages.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from affine import Affine

from jess_geo.classes import IGNORE
from jess_geo.io.areas import Measure

_CHUNK_ROWS = 64


class CoverCounter:
    """Counts pixels and area per class as rows of the class raster come in."""

    def __init__(self, classes: Sequence[dict[str, Any]], crs_wkt: str | None, transform: Affine) -> None:
        self.classes = [dict(c) for c in classes]
        self.measure = Measure(transform, crs_wkt)
        self.counts = np.zeros(256, dtype=np.int64)
        self.areas = np.zeros(256, dtype=np.float64)
        self.unit = self.measure.area_unit
        self.pixel_area = self.measure.constant_pixel_area

    def add(self, rows: np.ndarray, row_off: int) -> None:
        """Count ``rows`` (``(h, W)`` uint8 class values, IGNORE = nodata) that start at row ``row_off``."""
        if self.pixel_area is not None:
            self.counts += np.bincount(rows.ravel(), minlength=256)
            return
        for start in range(0, rows.shape[0], _CHUNK_ROWS):
            chunk = rows[start : start + _CHUNK_ROWS]
            h = chunk.shape[0]
            idx = chunk.astype(np.int64) + 256 * np.arange(h, dtype=np.int64)[:, None]
            per_row = np.bincount(idx.ravel(), minlength=256 * h).reshape(h, 256)
            self.counts += per_row.sum(axis=0)
            self.areas += self.measure.row_pixel_areas(row_off + start, h, rows.shape[1] / 2.0) @ per_row

    def table(self, source: str = "", model: str = "") -> dict[str, Any]:
        """The cover table as a JSON-able dict."""
        areas = self.areas if self.pixel_area is None else self.counts * float(self.pixel_area)
        valid_px = int(sum(self.counts[int(c["id"])] for c in self.classes))
        valid_area = float(sum(areas[int(c["id"])] for c in self.classes))
        rows = []
        for c in self.classes:
            cid = int(c["id"])
            px = int(self.counts[cid])
            area = float(areas[cid])
            rows.append({
                "id": cid,
                "name": c["name"],
                "color": c.get("color", ""),
                "pixels": px,
                "area": area,
                "percent": (100.0 * area / valid_area) if valid_area > 0 else 0.0,
            })
        return {
            "source": source,
            "model": model,
            "area_unit": self.unit,
            "pixel_area": self.pixel_area,
            "valid_pixels": valid_px,
            "nodata_pixels": int(self.counts[IGNORE]),
            "valid_area": valid_area,
            "classes": rows,
        }


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet reads a cell that starts with one of these as a formula (CSV injection)."""


def csv_text(value: Any) -> Any:
    """``value`` safe for a CSV cell: text that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_cover_csv(table: dict[str, Any], path: Path) -> None:
    """One row per class: class_id, class_name, color, pixels, area_<unit>, percent.

    Text cells starting with ``= + - @`` (or a tab / carriage return) are prefixed with ``'`` so
    that a spreadsheet shows them instead of evaluating them (a class named ``=HYPERLINK(...)``).
    """
    unit = table["area_unit"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["class_id", "class_name", "color", "pixels", f"area_{unit}", "percent"])
        for r in table["classes"]:
            w.writerow([r["id"], csv_text(r["name"]), csv_text(r["color"]), r["pixels"], f"{r['area']:.3f}", f"{r['percent']:.4f}"])


def write_cover_json(table: dict[str, Any], path: Path) -> None:
    """The whole table (with totals, unit, source and model) as JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(table, f, indent=2)
        f.write("\n")


def format_cover(table: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    unit = "m²" if table["area_unit"] == "m2" else "px²"
    name_w = max([len("class")] + [len(str(r["name"])) for r in table["classes"]])
    lines = [f"{'id':>3}  {'class':<{name_w}}  {'pixels':>12}  {'area ' + unit:>16}  {'percent':>8}"]
    for r in table["classes"]:
        lines.append(f"{r['id']:>3}  {r['name']:<{name_w}}  {r['pixels']:>12d}  {r['area']:>16.1f}  {r['percent']:>7.2f}%")
    lines.append(f"valid pixels {table['valid_pixels']}, nodata pixels {table['nodata_pixels']}")
    return "\n".join(lines)
