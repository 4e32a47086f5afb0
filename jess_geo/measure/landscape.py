"""Per-class cover, patches, edges and adjacency of a class-index raster, strip by strip.

:class:`Landscape` takes consecutive strips of class indexes (``k`` = no class) top to bottom
and keeps only the last row of the previous strip, the per-class sums and the patches still
open on the seam: memory does not grow with the raster.

Definitions (FRAGSTATS names in brackets):

- *adjacency*: every pair of 4-neighbour pixels shares one pixel edge; ``length[i][j]`` is the
  total length of edges between classes i and j (i != j, symmetric) and ``length[i][i]`` that of
  edges inside class i. Edges on the raster border or next to no-class pixels are not counted.
  ``normalised[i][j]``: the share of class i's pixel edges that face class j (edges inside
  class i counted from both sides; each row sums to 1) [adjacency matrix, double count].
- *edge density*: length of class i's edges with other classes per hectare of valid area
  (m/ha; photos: px per 10,000 px²); the landscape border and nodata are not edges [ED].
- *patches*: connected regions of one class, ``connectivity`` 8 (FRAGSTATS's default) or 4
  [NP, AREA_MN, AREA_MX]; in a zone, patches are cut at the zone's edge.
- *aggregation index*: like adjacencies of class i over the most a class of that many pixels can
  have, x 100 (He et al. 2000) [AI]; undefined (None) for a class of fewer than 2 pixels.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy import ndimage

_STRUCTURE = {4: ndimage.generate_binary_structure(2, 1), 8: np.ones((3, 3), dtype=bool)}


def max_like_adjacencies(pixels: int) -> int:
    """Most like adjacencies (shared edges) ``pixels`` cells can have (He et al. 2000)."""
    n = int(math.isqrt(pixels))
    m = pixels - n * n
    if m == 0:
        return 2 * n * (n - 1)
    return 2 * n * (n - 1) + 2 * m - (1 if m <= n else 2)


class _UnionFind(dict):
    def find(self, a: int) -> int:
        root = a
        while self.get(root, root) != root:
            root = self[root]
        while a != root:
            self[a], a = root, self.get(a, a)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self[max(ra, rb)] = min(ra, rb)


class Patches:
    """Connected patches per class, labelled strip by strip and joined across the seams."""

    def __init__(self, k: int, connectivity: int = 8) -> None:
        if connectivity not in _STRUCTURE:
            raise ValueError(f"connectivity must be 4 or 8, not {connectivity}")
        self.k, self.connectivity = k, connectivity
        self.count = np.zeros(k, dtype=np.int64)
        self.area_sum = np.zeros(k)
        self.area_max = np.zeros(k)
        self._open: dict[int, list[float]] = {}  # gid -> [class, area]
        self._seam: np.ndarray | None = None  # gid of each pixel of the previous strip's last row, -1 none
        self._seam_cls: np.ndarray | None = None
        self._next = 1

    def _label(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels = np.zeros(idx.shape, dtype=np.int64)
        cls: list[np.ndarray] = [np.array([-1])]
        n_total = 0
        for c in range(self.k):
            mask = idx == c
            if not mask.any():
                continue
            lab, n = ndimage.label(mask, structure=_STRUCTURE[self.connectivity])
            labels[mask] = lab[mask] + n_total
            cls.append(np.full(n, c))
            n_total += n
        return labels, np.concatenate(cls)

    def _close(self, c: int, area: float) -> None:
        self.count[c] += 1
        self.area_sum[c] += area
        self.area_max[c] = max(self.area_max[c], area)

    def add(self, idx: np.ndarray, pixel_area: np.ndarray) -> None:
        """Add a strip of class indexes ``(h, W)``; ``pixel_area`` is the area of a pixel per row."""
        labels, cls = self._label(idx)
        n = len(cls) - 1
        area = _label_areas(labels, pixel_area, n)
        base = self._next
        self._next += n + 1
        uf = _UnionFind()
        touching = np.zeros(n + 1, dtype=bool)
        if self._seam is not None and self._open:
            for a, b in _seam_pairs(self._seam, self._seam_cls, labels[0], idx[0], self.connectivity, self.k):
                uf.union(int(a), base + int(b))
                touching[b] = True
        bottom = np.zeros(n + 1, dtype=bool)
        bottom[labels[-1]] = True
        bottom[0] = False
        alone = np.flatnonzero(~touching & ~bottom)
        alone = alone[alone > 0]
        for c in range(self.k):  # patches wholly inside this strip
            sel = alone[cls[alone] == c]
            if len(sel):
                self.count[c] += len(sel)
                self.area_sum[c] += float(area[sel].sum())
                self.area_max[c] = max(self.area_max[c], float(area[sel].max()))
        groups: dict[int, list[float]] = {}
        for gid, (c, a) in self._open.items():
            g = groups.setdefault(uf.find(gid), [c, 0.0, 0.0])
            g[1] += a
        for lab in np.flatnonzero(touching | bottom).tolist():
            g = groups.setdefault(uf.find(base + lab), [int(cls[lab]), 0.0, 0.0])
            g[1] += float(area[lab])
            if bottom[lab]:
                g[2] = 1.0
        self._open = {}
        for root, (c, a, is_open) in groups.items():
            if is_open:
                self._open[root] = [c, a]
            else:
                self._close(int(c), a)
        roots = np.zeros(n + 1, dtype=np.int64) - 1
        for lab in np.flatnonzero(bottom).tolist():
            roots[lab] = uf.find(base + lab)
        self._seam, self._seam_cls = roots[labels[-1]], idx[-1].copy()

    def finish(self) -> None:
        """Close every patch still open (call once after the last strip)."""
        for c, a in self._open.values():
            self._close(int(c), a)
        self._open, self._seam, self._seam_cls = {}, None, None


def _label_areas(labels: np.ndarray, pixel_area: np.ndarray, n: int) -> np.ndarray:
    if np.all(pixel_area == pixel_area[0]):
        return np.bincount(labels.ravel(), minlength=n + 1) * float(pixel_area[0])
    out = np.zeros(n + 1)
    for r in range(labels.shape[0]):
        out += np.bincount(labels[r], minlength=n + 1) * float(pixel_area[r])
    return out


def _seam_pairs(prev: np.ndarray, prev_cls: np.ndarray, cur: np.ndarray, cur_cls: np.ndarray,
                connectivity: int, k: int) -> np.ndarray:
    """Unique (previous gid, current label) pairs of same-class pixels that touch across the seam."""
    shifts = (0,) if connectivity == 4 else (-1, 0, 1)
    w = len(prev)
    found = []
    for s in shifts:
        a = slice(max(0, -s), w - max(0, s))
        b = slice(max(0, s), w - max(0, -s))
        ok = (prev[a] >= 0) & (cur[b] > 0) & (prev_cls[a] == cur_cls[b]) & (cur_cls[b] < k)
        if ok.any():
            found.append(np.stack([prev[a][ok], cur[b][ok]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


class Landscape:
    """Streaming per-class pixels, area, adjacency, edges and patches of a class-index raster."""

    def __init__(self, k: int, *, row_areas: Callable[[int, int], np.ndarray],
                 horizontal: Callable[[int, int], np.ndarray], vertical: Callable[[int, int], np.ndarray],
                 connectivity: int = 8, patches: bool = True) -> None:
        self.k = k
        self.row_areas, self.horizontal, self.vertical = row_areas, horizontal, vertical
        self.pixels = np.zeros(k + 1, dtype=np.int64)
        self.area = np.zeros(k + 1)
        self.edge_count = np.zeros((k, k), dtype=np.int64)  # directed: left->right and top->bottom pairs
        self.edge_length = np.zeros((k, k))
        self.patches = Patches(k, connectivity) if patches else None
        self._last: np.ndarray | None = None
        self._last_row = -1

    def _pairs(self, a: np.ndarray, b: np.ndarray, lengths: np.ndarray | float) -> None:
        k = self.k
        ok = (a < k) & (b < k)
        code = a[ok].astype(np.int64) * k + b[ok]
        counts = np.bincount(code, minlength=k * k).reshape(k, k)
        self.edge_count += counts
        lengths = np.asarray(lengths, dtype=np.float64)
        if lengths.size == 0:
            return
        if np.all(lengths == lengths.flat[0]):
            self.edge_length += counts * float(lengths.flat[0])
        else:
            w = np.broadcast_to(lengths[:, None], a.shape)[ok]
            self.edge_length += np.bincount(code, weights=w, minlength=k * k).reshape(k, k)

    def add(self, idx: np.ndarray, row_off: int) -> None:
        """Add the strip ``idx`` (``(h, W)`` uint8 class indexes) whose first row is ``row_off``."""
        h = idx.shape[0]
        areas = self.row_areas(row_off, h)
        if h == 0:
            return
        if np.all(areas == areas[0]):
            counts = np.bincount(idx.ravel(), minlength=self.k + 1)
            self.pixels += counts
            self.area += counts * float(areas[0])
        else:
            per_row = np.stack([np.bincount(r, minlength=self.k + 1) for r in idx])
            self.pixels += per_row.sum(axis=0)
            self.area += areas @ per_row
        vert = self.vertical(row_off, h)
        self._pairs(idx[:, :-1], idx[:, 1:], vert)  # left-right neighbours share a vertical edge
        hor = self.horizontal(row_off + 1, max(h - 1, 0))
        if h > 1:
            self._pairs(idx[:-1], idx[1:], hor)
        if self._last is not None and self._last_row == row_off - 1:
            self._pairs(self._last[None], idx[:1], self.horizontal(row_off, 1))
        if self.patches is not None:
            if self._last_row != row_off - 1 and self._last is not None:
                self.patches.finish()
            self.patches.add(idx, areas)
        self._last, self._last_row = idx[-1].copy(), row_off + h - 1

    def result(self, names: list[str], area_factor: float = 1e4) -> dict[str, Any]:
        """Per-class metrics and the adjacency matrix as JSON-able lists (closes open patches)."""
        if self.patches is not None:
            self.patches.finish()
        k = self.k
        directed = self.edge_length
        length = directed + directed.T - np.diag(np.diag(directed))
        both = directed + directed.T  # inside-class edges seen from both pixels
        totals = both.sum(axis=1)
        normalised = np.divide(both, totals[:, None], out=np.zeros_like(both), where=totals[:, None] > 0)
        like = np.diag(self.edge_count)
        valid_area = float(self.area[:k].sum())
        rows = []
        for i in range(k):
            px = int(self.pixels[i])
            max_like = max_like_adjacencies(px)
            p = self.patches
            n_patch = int(p.count[i]) if p is not None else None
            other = float(length[i].sum() - length[i, i])
            rows.append({
                "pixels": px,
                "area": float(self.area[i]),
                "percent": 100.0 * float(self.area[i]) / valid_area if valid_area > 0 else 0.0,
                "patches": n_patch,
                "mean_patch_area": (float(p.area_sum[i]) / n_patch if n_patch else 0.0) if p is not None else None,
                "largest_patch_area": float(p.area_max[i]) if p is not None else None,
                "edge_length": other,
                "edge_density": other / valid_area * area_factor if valid_area > 0 else 0.0,
                "aggregation_index": 100.0 * float(like[i]) / max_like if max_like > 0 else None,
            })
        return {
            "classes": rows,
            "valid_pixels": int(self.pixels[:k].sum()),
            "valid_area": valid_area,
            "adjacency": {"classes": list(names), "length": length.tolist(), "normalised": normalised.tolist()},
        }
