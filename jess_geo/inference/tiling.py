"""Tile layout and blending weights for windowed inference: pure numpy, no I/O, no torch.

Units are pixels of the grid being tiled. A scene of ``length`` pixels is covered by tiles of
``tile`` pixels whose starts are ``stride = tile - overlap`` apart; the last tile is moved back
so that it ends on the last pixel (it then overlaps its neighbour by more than ``overlap``),
so no tile reaches outside the scene and the last row/column is covered exactly once more.
A scene shorter than a tile gets a single, shorter tile (the caller pads it for the network).

Blending: each tile's logits are multiplied by a weight window that is 1 in the middle and
falls off smoothly (a raised-cosine, i.e. Hann, ramp) over ``overlap`` pixels towards every
side that has a neighbouring tile. Sides on the scene border keep weight 1, so border pixels
are never under-weighted. Where two ramps overlap by exactly ``overlap`` pixels they sum to 1.
Weights are clipped to a small positive floor so every covered pixel has a positive weight sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np

WEIGHT_FLOOR = 1e-3


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``[0, length)`` with ``overlap``.

    The last tile ends exactly at ``length``; when ``length <= tile`` there is one tile at 0.
    """
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class Tile:
    """One tile: its window in the grid and which of its sides lie on the scene border."""

    index: int
    row_index: int
    row: int
    col: int
    height: int
    width: int
    top: bool
    bottom: bool
    left: bool
    right: bool


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering a ``height`` x ``width`` grid, row by row."""

    height: int
    width: int
    tile: int
    overlap: int

    @property
    def row_starts(self) -> list[int]:
        """Start row of each tile row."""
        return tile_starts(self.height, self.tile, self.overlap)

    @property
    def col_starts(self) -> list[int]:
        """Start column of each tile column."""
        return tile_starts(self.width, self.tile, self.overlap)

    @property
    def tile_height(self) -> int:
        """Height of every tile (shorter than ``tile`` only for a scene shorter than a tile)."""
        return min(self.tile, self.height)

    @property
    def tile_width(self) -> int:
        """Width of every tile (narrower than ``tile`` only for a scene narrower than a tile)."""
        return min(self.tile, self.width)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def rows(self) -> Iterator[list[Tile]]:
        """Tiles grouped by tile row, top to bottom, each row left to right."""
        rs, cs = self.row_starts, self.col_starts
        th, tw = self.tile_height, self.tile_width
        index = 0
        for ri, r in enumerate(rs):
            row = []
            for ci, c in enumerate(cs):
                row.append(
                    Tile(index, ri, r, c, th, tw, top=ri == 0, bottom=ri == len(rs) - 1, left=ci == 0, right=ci == len(cs) - 1)
                )
                index += 1
            yield row

    def finalized_until(self, row_index: int) -> int:
        """First grid row still open after tile row ``row_index`` is blended (rows above it are final)."""
        rs = self.row_starts
        return rs[row_index + 1] if row_index + 1 < len(rs) else self.height


def ramp(length: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """1-D weights of ``length``: a Hann ramp over ``overlap`` pixels at the start (``rise``) and end (``fall``)."""
    w = np.ones(length, dtype=np.float64)
    n = min(overlap, length // 2)
    if n > 0:
        d = (np.arange(n) + 0.5) / n  # 0..1 across the ramp
        up = np.sin(0.5 * np.pi * d) ** 2
        if rise:
            w[:n] = np.minimum(w[:n], up)
        if fall:
            w[length - n :] = np.minimum(w[length - n :], up[::-1])
    return np.maximum(w, WEIGHT_FLOOR)


@lru_cache(maxsize=32)
def _weights(height: int, width: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool) -> np.ndarray:
    wy = ramp(height, overlap, rise=not top, fall=not bottom)
    wx = ramp(width, overlap, rise=not left, fall=not right)
    out = np.outer(wy, wx).astype(np.float32)
    out.setflags(write=False)
    return out


def tile_weights(tile: Tile, overlap: int) -> np.ndarray:
    """Read-only ``(height, width)`` float32 blending weights for ``tile``."""
    return _weights(tile.height, tile.width, overlap, tile.top, tile.bottom, tile.left, tile.right)


def network_size(size: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size``."""
    return max(multiple, -(-size // multiple) * multiple)


def valid_tile_size(tile: int, multiple: int) -> tuple[int, str | None]:
    """``tile`` rounded to the nearest multiple the network takes (at least one), with a notice when changed."""
    if tile <= 0:
        raise ValueError(f"tile size must be positive, got {tile}")
    adjusted = max(multiple, int(round(tile / multiple)) * multiple)
    if adjusted == tile:
        return tile, None
    return adjusted, f"Tile size {tile} is not a multiple of {multiple} (the network needs that); using {adjusted}."

