"""Change between two class rasters: aligned reading, transition matrix, change raster.

The AFTER raster is read on BEFORE's grid: as is when size, transform and CRS agree, else
through a nearest-neighbour ``WarpedVRT`` onto BEFORE's grid (a notice says so). Both rasters
must have the same class table (ids and names), or a mapping from AFTER's class ids to
BEFORE's is given. Everything is computed strip by strip.

The change raster holds ``from_index * K + to_index`` (class indexes in BEFORE's table, so
K <= 15 classes fit a byte), 255 where either date has no class; its class table names every
pair ("soil -> moss", "soil (unchanged)").
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from jess_geo.classes import IGNORE
from jess_geo.errors import Cancelled, InputError
from jess_geo.measure.grid import STRIP_ROWS, ClassGrid, read_index, strips
from jess_geo.measure.zones import Zones, zone_strips

MAX_CLASSES = 15
"""Most classes a byte change raster can hold (15 x 15 = 225 pairs + nodata)."""


def load_mapping(path: str | Path | None, before: ClassGrid, after: ClassGrid) -> np.ndarray:
    """Look-up table AFTER raw value -> BEFORE class index (``before.k`` = no class)."""
    lut = np.full(256, -1, dtype=np.int16)
    lut[IGNORE] = before.k
    if after.nodata is not None and 0 <= after.nodata <= 255:
        lut[after.nodata] = before.k
    index_of = {cid: i for i, cid in enumerate(before.ids)}
    if path is None:
        same = [(c["id"], c["name"]) for c in before.classes] == [(c["id"], c["name"]) for c in after.classes]
        if not same:
            raise InputError(
                f"{before.path.name} and {after.path.name} have different class tables "
                f"({', '.join(f'{i}={n}' for i, n in zip(before.ids, before.names))} vs "
                f"{', '.join(f'{i}={n}' for i, n in zip(after.ids, after.names))}); "
                "pass --mapping FILE.json that maps each AFTER class id to a BEFORE class id."
            )
        for cid, i in index_of.items():
            lut[cid] = i
        return lut
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"Mapping file {path} cannot be read as JSON; write it as {{\"<after id>\": <before id>, ...}}.") from None
    if not isinstance(data, dict):
        raise InputError(f"Mapping file {path} is not a JSON object; write it as {{\"<after id>\": <before id>, ...}}.")
    for key, value in data.items():
        try:
            a, b = int(key), int(value)
        except (TypeError, ValueError):
            raise InputError(f"Mapping file {path}: {key!r}: {value!r} is not a pair of class ids; use integers.") from None
        if a not in after.ids or b not in index_of:
            raise InputError(f"Mapping file {path} maps {a} -> {b}, but {a} is not an AFTER class or {b} not a BEFORE class; fix the mapping.")
        lut[a] = index_of[b]
    missing = [cid for cid in after.ids if lut[cid] < 0]
    if missing:
        raise InputError(f"Mapping file {path} does not map AFTER class id(s) {missing}; map every AFTER class to a BEFORE class.")
    return lut


@contextmanager
def aligned(src: Any, grid: ClassGrid, onto: ClassGrid) -> Iterator[tuple[Any, str | None]]:
    """``src`` (AFTER) as a dataset on ``onto``'s grid, and a notice when it had to be resampled."""
    if grid.same_grid(onto):
        yield src, None
        return
    if not grid.crs_wkt or not onto.crs_wkt:
        raise InputError(
            f"{grid.path.name} ({grid.width} x {grid.height}) and {onto.path.name} ({onto.width} x {onto.height}) "
            "are not on one grid and at least one has no CRS; pass two rasters of the same size and georeferencing."
        )
    vrt = WarpedVRT(src, crs=onto.crs_wkt, transform=onto.transform, width=onto.width, height=onto.height,
                    resampling=Resampling.nearest, nodata=IGNORE)
    try:
        yield vrt, f"{grid.path.name} was resampled onto the grid of {onto.path.name} (nearest neighbour)"
    finally:
        vrt.close()


def read_pair(src_b: Any, before: ClassGrid, src_a: Any, after: ClassGrid, lut: np.ndarray, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """BEFORE and AFTER class indexes (in BEFORE's table) of one window."""
    ib = read_index(src_b, before, win)
    raw = src_a.read(1, window=win)
    if raw.dtype != np.uint8:
        raw = np.clip(raw, 0, 255).astype(np.uint8)
    ia = lut[raw]
    if (ia < 0).any():
        bad = sorted({int(v) for v in np.unique(raw[ia < 0])})[:5]
        raise InputError(f"{after.path} holds value(s) {bad} that its class table does not list; pass --mapping or fix the raster.")
    if after.use_mask:
        from jess_geo.io.raster import read_valid

        ia = np.where(read_valid(src_a, window=win), ia, before.k)
    return ib, ia.astype(np.uint8)


class Transitions:
    """Accumulates the (K+1) x (K+1) from-to matrix in pixels and area (index K = no class)."""

    def __init__(self, k: int, row_areas: Callable[[int, int], np.ndarray]) -> None:
        self.k, self.row_areas = k, row_areas
        self.pixels = np.zeros((k + 1, k + 1), dtype=np.int64)
        self.area = np.zeros((k + 1, k + 1))

    def add(self, ib: np.ndarray, ia: np.ndarray, row_off: int, inside: np.ndarray | None = None) -> None:
        n = (self.k + 1) ** 2
        code = ib.astype(np.int64) * (self.k + 1) + ia
        if inside is not None:
            code = np.where(inside, code, n)
        areas = self.row_areas(row_off, ib.shape[0])
        if np.all(areas == areas[0]):
            counts = np.bincount(code.ravel(), minlength=n + 1)[:n]
            self.pixels += counts.reshape(self.k + 1, -1)
            self.area += counts.reshape(self.k + 1, -1) * float(areas[0])
            return
        for r in range(code.shape[0]):
            counts = np.bincount(code[r], minlength=n + 1)[:n].reshape(self.k + 1, -1)
            self.pixels += counts
            self.area += counts * float(areas[r])

    def summary(self, names: list[str]) -> dict[str, Any]:
        """Matrices and per-class gain, loss, net change and persistence (pixels valid on both dates)."""
        k = self.k
        a, p = self.area[:k, :k], self.pixels[:k, :k]
        per_class = []
        for i, name in enumerate(names):
            persist = float(a[i, i])
            gain = float(a[:, i].sum() - persist)
            loss = float(a[i, :].sum() - persist)
            per_class.append({"class": name, "before": float(a[i, :].sum()), "after": float(a[:, i].sum()),
                              "gain": gain, "loss": loss, "net": gain - loss, "persistence": persist,
                              "gain_pixels": int(p[:, i].sum() - p[i, i]), "loss_pixels": int(p[i, :].sum() - p[i, i])})
        return {"classes": list(names), "pixels": p.tolist(), "area": a.tolist(), "per_class": per_class,
                "valid_pixels": int(p.sum()), "changed_pixels": int(p.sum() - np.trace(p)),
                "no_class_pixels": {"before": int(self.pixels[k, :].sum()), "after": int(self.pixels[:, k].sum())}}


def _blend(colour: str, towards: str = "#ffffff", share: float = 0.6) -> str:
    a = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(towards[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b))


def change_classes(before: ClassGrid) -> list[dict[str, Any]]:
    """Class table of the change raster: one entry per (from, to) pair."""
    k = before.k
    out = []
    for i, ci in enumerate(before.classes):
        for j, cj in enumerate(before.classes):
            name = f"{ci['name']} (unchanged)" if i == j else f"{ci['name']} -> {cj['name']}"
            colour = _blend(ci["color"]) if i == j else cj["color"]
            out.append({"id": i * k + j, "name": name, "color": colour, "from": ci["name"], "to": cj["name"]})
    return out


def change_codes(ib: np.ndarray, ia: np.ndarray, k: int, changed_only: bool = False) -> np.ndarray:
    """Change raster values of one strip (255 where a date has no class, or unchanged with ``changed_only``)."""
    code = (ib.astype(np.int16) * k + ia).astype(np.uint8)
    none = (ib >= k) | (ia >= k)
    if changed_only:
        none |= ib == ia
    code[none] = IGNORE
    return code


def run_change(src_b: Any, before: ClassGrid, src_a: Any, after: ClassGrid, lut: np.ndarray, *,
               writers: tuple[Any, ...] = (), zones: Zones | None = None, rows: int = STRIP_ROWS,
               progress: Callable[[str, int, int, str], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> tuple[Transitions, list[Transitions]]:
    """One pass over both rasters: the whole-raster transitions (writing the change raster(s)
    through ``writers``: the full change raster, then optionally the changed-only one) and, with
    ``zones``, one :class:`Transitions` per zone."""
    if before.k > MAX_CLASSES:
        raise InputError(f"{before.path.name} has {before.k} classes; change rasters hold at most {MAX_CLASSES} classes.")
    total = Transitions(before.k, before.measure.row_pixel_areas)
    n = -(-before.height // rows)
    for s, (r, h) in enumerate(strips(before.height, rows)):
        if cancel is not None and cancel():
            raise Cancelled("change was cancelled; nothing was written.")
        ib, ia = read_pair(src_b, before, src_a, after, lut, Window(0, r, before.width, h))
        total.add(ib, ia, r)
        for w, changed_only in zip(writers, (False, True)):
            w.write_rows(change_codes(ib, ia, before.k, changed_only))
        if progress is not None:
            progress("change", s + 1, n, f"rows {r + h}/{before.height}")
    per_zone = []
    for geom in (zones.geoms if zones is not None else []):
        t = Transitions(before.k, before.measure.row_pixel_areas)
        for win, inside in zone_strips(geom, before, rows):
            ib, ia = read_pair(src_b, before, src_a, after, lut, win)
            t.add(ib, ia, int(win.row_off), inside)
        per_zone.append(t)
    return total, per_zone
