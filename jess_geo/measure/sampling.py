"""Stratified random samples of a class raster (strata = map classes) and their stored design.

Two passes over the raster in strips: the first counts the pixels and area of each class, the
second picks, for each class, ``n_h`` of its pixels uniformly at random without replacement
(pixel ranks drawn up front, so memory follows the sample size, not the raster). Points are
pixel centres.

The design travels inside the GeoPackage as the non-spatial table ``sample_design`` (one row
per stratum: class id and name, pixels, area, weight, sample size, allocation, seed, source),
so ``jess-geo assess`` weights each stratum by the mapped area it had when it was sampled.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from jess_geo.errors import InputError, OutputError
from jess_geo.io.atomic import atomic_output
from jess_geo.measure.grid import STRIP_ROWS, ClassGrid, read_index, strips

SAMPLES_LAYER = "samples"
DESIGN_LAYER = "sample_design"
LABEL_FIELD = "class"


def class_totals(src: Any, grid: ClassGrid, rows: int = STRIP_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and area of each class (arrays of length K)."""
    pixels = np.zeros(grid.k + 1, dtype=np.int64)
    area = np.zeros(grid.k + 1)
    measure = grid.measure
    for r, h in strips(grid.height, rows):
        idx = read_index(src, grid, Window(0, r, grid.width, h))
        areas = measure.row_pixel_areas(r, h)
        for i in range(h):
            counts = np.bincount(idx[i], minlength=grid.k + 1)
            pixels += counts
            area += counts * areas[i]
    return pixels[: grid.k], area[: grid.k]


def allocate(pixels: np.ndarray, n: int, allocation: str = "proportional", min_per_class: int = 0) -> np.ndarray:
    """Sample size per stratum: proportional to its pixels (largest remainders) or equal;
    every non-empty stratum gets at least ``min_per_class`` (never more than it has pixels)."""
    pixels = np.asarray(pixels, dtype=np.int64)
    present = pixels > 0
    if n < 1:
        raise InputError(f"--n {n} is not positive; ask for 1 or more sample points.")
    if not present.any():
        raise InputError("The raster has no pixel with a class; there is nothing to sample.")
    if allocation == "equal":
        share = np.where(present, 1.0, 0.0)
    elif allocation == "proportional":
        share = pixels.astype(float)
    else:
        raise InputError(f"Allocation {allocation!r} is unknown; use proportional or equal.")
    exact = n * share / share.sum()
    out = np.floor(exact).astype(np.int64)
    rest = n - int(out.sum())
    out[np.argsort(-(exact - out), kind="stable")[:rest]] += 1
    out = np.where(present, np.maximum(out, min_per_class), 0)
    return np.minimum(out, pixels)


def draw_ranks(pixels: np.ndarray, sizes: np.ndarray, seed: int) -> list[np.ndarray]:
    """For each stratum, the sorted ranks (0-based, in raster order) of the pixels drawn."""
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(int(p), size=int(s), replace=False)) if s else np.zeros(0, dtype=np.int64)
            for p, s in zip(pixels, sizes)]


def locate(src: Any, grid: ClassGrid, ranks: list[np.ndarray], rows: int = STRIP_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, class index) of the drawn pixels, by a second pass over the raster."""
    seen = np.zeros(grid.k, dtype=np.int64)
    out_r, out_c, out_k = [], [], []
    for r, h in strips(grid.height, rows):
        idx = read_index(src, grid, Window(0, r, grid.width, h)).ravel()
        counts = np.bincount(idx, minlength=grid.k + 1)[: grid.k]
        for c in np.flatnonzero(counts):
            rk = ranks[c]
            lo, hi = np.searchsorted(rk, [seen[c], seen[c] + counts[c]])
            if hi > lo:
                pos = np.flatnonzero(idx == c)[rk[lo:hi] - seen[c]]
                out_r.append(r + pos // grid.width)
                out_c.append(pos % grid.width)
                out_k.append(np.full(hi - lo, c))
        seen += counts
    if not out_r:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    rr, cc, kk = np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_k)
    order = np.lexsort((cc, rr))
    return rr[order], cc[order], kk[order]


def design_rows(grid: ClassGrid, pixels: np.ndarray, area: np.ndarray, sizes: np.ndarray, *, allocation: str,
                seed: int, source: str) -> dict[str, list[Any]]:
    """Columns of the ``sample_design`` table."""
    total = float(area.sum())
    return {
        "class_id": grid.ids, "class_name": grid.names, "pixels": [int(p) for p in pixels],
        f"area_{grid.area_unit}": [float(a) for a in area], "weight": [float(a) / total if total else 0.0 for a in area],
        "n": [int(s) for s in sizes], "allocation": [allocation] * grid.k, "seed": [int(seed)] * grid.k,
        "source": [source] * grid.k,
    }


def write_sample(path: Path, grid: ClassGrid, rows: np.ndarray, cols: np.ndarray, kidx: np.ndarray,
                 design: dict[str, list[Any]]) -> None:
    """The GeoPackage: point layer ``samples`` (``class`` empty, to be labelled) + ``sample_design``."""
    import geopandas as gpd
    import pandas as pd
    import pyogrio
    import shapely

    t = grid.transform
    xs = t.a * (cols + 0.5) + t.b * (rows + 0.5) + t.c
    ys = t.d * (cols + 0.5) + t.e * (rows + 0.5) + t.f
    ids = np.asarray(grid.ids)[kidx] if len(kidx) else np.zeros(0, dtype=np.int64)
    frame = gpd.GeoDataFrame({
        "sample_id": np.arange(1, len(rows) + 1, dtype=np.int64),
        "map_class": ids.astype(np.int64),
        "map_name": [grid.names[k] for k in kidx],
        LABEL_FIELD: pd.array([None] * len(rows), dtype="Int64"),
        "row": rows.astype(np.int64), "col": cols.astype(np.int64),
    }, geometry=shapely.points(xs, ys), crs=grid.crs_wkt)
    with atomic_output(path) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)  # photos
                pyogrio.write_dataframe(frame, tmp, layer=SAMPLES_LAYER, driver="GPKG")
            pyogrio.write_dataframe(pd.DataFrame(design), tmp, layer=DESIGN_LAYER, driver="GPKG", append=False)
        except Exception as exc:  # pyogrio errors, OSError
            raise OutputError(f"{path} could not be written ({str(exc).splitlines()[0]}); check the disk and the folder permissions.") from None


def read_design(path: Path) -> dict[str, Any] | None:
    """The ``sample_design`` table of a sample GeoPackage as columns, or None when it has none."""
    import pyogrio

    try:
        layers = [name for name, _ in pyogrio.list_layers(path)]
    except Exception:  # noqa: BLE001 - not a GeoPackage: no design
        return None
    if DESIGN_LAYER not in layers:
        return None
    table = pyogrio.read_dataframe(path, layer=DESIGN_LAYER)
    return {c: table[c].tolist() for c in table.columns if c != "geometry"}
