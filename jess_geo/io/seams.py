"""Joining polygon pieces of consecutive raster strips into whole regions (union-find on seams).

Pieces are polygons in pixel coordinates (x = column, y = row) whose vertices are exact pixel
corners, so an edge on the seam between two strips has the same coordinates on both sides.
Each column of a seam says which region lies above it and which piece lies below; same class
on both sides joins them. A region with no piece on the latest seam is closed: its parts are
unioned once and handed back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import shapely

__all__ = ["SeamMerger", "close_region", "seam_owner"]


@dataclass
class Region:
    """An open region: its class and the pixel-space parts collected so far."""

    class_id: int
    parts: list[Any] = field(default_factory=list)
    pixels: float = 0.0


class UnionFind:
    """Disjoint sets over ``0..n-1`` (path halving; the smaller root wins)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def seam_owner(geoms: Sequence[Any], y: float, width: int) -> np.ndarray:
    """For each column, the index of the polygon whose exterior has an edge on the line ``y``.

    Edges on a strip's top or bottom line belong to exterior rings only (a hole is enclosed by
    the strip's own pixels), and the pieces on a line partition it, so each column has at most
    one owner; -1 where there is none (nodata).
    """
    owner = np.full(width, -1, dtype=np.int64)
    if len(geoms) == 0:
        return owner
    rings = shapely.get_exterior_ring(np.asarray(geoms, dtype=object))
    coords, idx = shapely.get_coordinates(rings, return_index=True)
    on = coords[:, 1] == y
    seg = on[:-1] & on[1:] & (idx[:-1] == idx[1:])
    if not seg.any():
        return owner
    x0, x1 = coords[:-1, 0][seg], coords[1:, 0][seg]
    lo = np.minimum(x0, x1).astype(np.int64)
    hi = np.maximum(x0, x1).astype(np.int64)
    lengths = hi - lo
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    owner[starts + np.arange(int(lengths.sum()))] = np.repeat(idx[:-1][seg], lengths)
    return owner


def close_region(parts: list[Any]) -> list[Any]:
    """Union the parts of a finished region once: one polygon (parts join along seam edges).

    Only the exteriors go through the union: a part's holes lie inside its own strip, away from
    every seam, so no other part reaches them; they are put back unchanged afterwards. This
    keeps the union cheap for a big region with thousands of holes.
    """
    if len(parts) == 1:
        return [parts[0]]
    arr = np.asarray(parts, dtype=object)
    geom = shapely.union_all(shapely.polygons(shapely.get_exterior_ring(arr)))
    if geom.geom_type == "Polygon":
        if shapely.get_num_interior_rings(arr).sum():
            rings, idx = shapely.get_rings(arr, return_index=True)
            first = np.r_[True, idx[1:] != idx[:-1]]
            holes = np.concatenate([shapely.get_interior_ring(geom, np.arange(len(geom.interiors))), rings[~first]])
            geom = shapely.polygons(geom.exterior, holes=holes)
        return [geom]
    # cannot happen for parts joined along seam edges; never hand back a multipolygon regardless
    return [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]


class SeamMerger:
    """Carries the regions open on the latest seam from strip to strip.

    Feed strips top to bottom with :meth:`add_strip`; it returns the polygons that are finished.
    Memory: the regions still open on the current seam (their parts), never a whole raster.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.carried: list[Region] = []
        self.seam = np.full(width, -1, dtype=np.int64)  # carried region per column above the seam

    def add_strip(self, pieces: list[Any], classes: np.ndarray, pixels: np.ndarray, r0: int, r1: int,
                  min_px: float = 0.0) -> list[tuple[Any, int]]:
        """Join the pieces of rows [r0, r1) to the open regions; return the closed (polygon, class).

        A closed region of fewer than ``min_px`` pixels survived the sieve only because it has no
        valid neighbour to merge into (an island in nodata): it is left out.
        """
        n_pieces, n_carried = len(pieces), len(self.carried)
        top = seam_owner(pieces, float(r0), self.width) if n_carried else np.full(self.width, -1, dtype=np.int64)
        bottom = seam_owner(pieces, float(r1), self.width) if r1 < self.height else np.full(self.width, -1, dtype=np.int64)
        opens_down = np.zeros(n_pieces, dtype=bool)
        opens_down[bottom[bottom >= 0]] = True
        uf, touching = self._join(top, classes, n_pieces)

        simple = ~touching & ~opens_down  # pieces on their own, finished in this strip
        done = [(pieces[i], int(classes[i])) for i in np.flatnonzero(simple & (pixels >= min_px))]
        region_of_piece = np.full(n_pieces, -1, dtype=np.int64)
        carried: list[Region] = []
        for members in self._groups(uf, np.flatnonzero(~simple).tolist()):
            region, piece_ids, is_open = self._collect(members, pieces, classes, pixels, opens_down)
            if is_open:
                region_of_piece[piece_ids] = len(carried)
                carried.append(region)
            elif region.pixels >= min_px:
                done.extend((g, region.class_id) for g in close_region(region.parts))
        self.carried = carried
        if n_pieces == 0:
            self.seam = np.full(self.width, -1, dtype=np.int64)
        else:
            self.seam = np.where(bottom >= 0, region_of_piece[np.maximum(bottom, 0)], -1)
        return done

    def finish(self) -> list[tuple[Any, int]]:
        """Close whatever is still open (nothing is after the last strip; kept for safety)."""
        done = [(g, r.class_id) for r in self.carried for g in close_region(r.parts)]
        self.carried = []
        return done

    def _join(self, top: np.ndarray, classes: np.ndarray, n_pieces: int) -> tuple[UnionFind | None, np.ndarray]:
        """Union carried regions (nodes 0..C-1) with same-class pieces below them (nodes C..)."""
        touching = np.zeros(n_pieces, dtype=bool)
        n_carried = len(self.carried)
        if not n_carried:
            return None, touching
        carried_cls = np.array([r.class_id for r in self.carried], dtype=np.int64)
        both = (self.seam >= 0) & (top >= 0)
        a, b = self.seam[both], top[both]
        same = carried_cls[a] == classes[b]
        pairs = np.unique(np.stack([a[same], b[same]], axis=1), axis=0) if same.any() else np.zeros((0, 2), np.int64)
        uf = UnionFind(n_carried + n_pieces)
        for ca, pb in pairs.tolist():
            uf.union(ca, n_carried + pb)
        touching[pairs[:, 1]] = True
        return uf, touching

    def _groups(self, uf: UnionFind | None, piece_ids: list[int]) -> list[list[int]]:
        """Node lists of the connected groups of carried regions and non-simple pieces."""
        n_carried = len(self.carried)
        groups: dict[int, list[int]] = {}
        for node in [n_carried + i for i in piece_ids] + list(range(n_carried)):
            root = uf.find(node) if uf is not None else node
            groups.setdefault(root, []).append(node)
        return list(groups.values())

    def _collect(self, members: list[int], pieces: list[Any], classes: np.ndarray, pixels: np.ndarray,
                 opens_down: np.ndarray) -> tuple[Region, list[int], bool]:
        """One region from a group's nodes; its piece indexes; whether it continues downwards."""
        n_carried = len(self.carried)
        region = Region(-1)
        piece_ids: list[int] = []
        is_open = False
        for m in members:
            if m < n_carried:
                old = self.carried[m]
                region.parts.extend(old.parts)
                region.pixels += old.pixels
                region.class_id = old.class_id
            else:
                i = m - n_carried
                region.parts.append(pieces[i])
                region.pixels += float(pixels[i])
                region.class_id = int(classes[i])
                is_open |= bool(opens_down[i])
                piece_ids.append(i)
        return region, piece_ids, is_open
