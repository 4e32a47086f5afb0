"""Row-major blending with a one-tile-wide window and a full-width overlap band, flat memory.

The scene is cut into *cells* (rows from one tile row start to the next x columns from one tile
column start to the next); a cell is final as soon as its tile is blended, so only a window one
tile wide plus the overlap band below the current tile row (full width, ``overlap`` rows) is kept.
Each tile arrives as ``(C + 1, h, w)``: logits times its blending weights, then the weights
(:mod:`jess_geo.inference.tiling`), so blending is one addition per tile.

Windows come from a preallocated ring: a finished cell is a view into its window, and the ring is
longer than the cell queue plus the cells being finished, so no window is reused while a cell
still refers to it. The two overlap bands swap between tile rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from jess_geo.inference.job import Job
from jess_geo.inference.tiling import Tile

QUEUE_CELLS = 8


@dataclass
class Cell:
    """A final part of the scene: summed weighted logits and weights, and its valid pixels."""

    row_index: int
    col_index: int
    row0: int
    col0: int
    acc: np.ndarray  # (C + 1, h, w): logit sums, then the weight sum
    valid: np.ndarray  # (h, w) bool


class Blender:
    """Adds tiles in row-major order and emits each cell once it is final."""

    def __init__(self, job: Job, emit: Callable[[Cell], None]) -> None:
        grid = job.tiles.grid
        self.emit = emit
        self.rows, self.cols = grid.row_starts, grid.col_starts
        self.th, self.tw, self.H, self.W = grid.tile_height, grid.tile_width, grid.height, grid.width
        depth = len(job.classes) + 1
        self.ring = [np.empty((depth, self.th, self.tw), np.float32) for _ in range(QUEUE_CELLS + 3)]
        self.k = 0
        band = max([0] + [self.th - (b - a) for a, b in zip(self.rows, self.rows[1:])])
        self.bands = [np.zeros((depth, band, self.W), np.float32) for _ in range(2)]
        self.carry: np.ndarray | None = None  # sums for rows below the last tile row's final rows
        self.next_carry: np.ndarray | None = None
        self.win: np.ndarray | None = None
        self.final_rows = 0

    def _window(self) -> np.ndarray:
        self.k += 1
        win = self.ring[self.k % len(self.ring)]
        win.fill(0.0)
        return win

    def _carry_into(self, win: np.ndarray, c0: int, c1: int, at: int) -> None:
        """Add carried sums of columns [c0, c1) to ``win`` columns starting at ``at``."""
        if self.carry is not None and c1 > c0:
            n = self.carry.shape[1]
            win[:, :n, at : at + (c1 - c0)] += self.carry[:, :, c0:c1]

    def _start_row(self, tile: Tile) -> None:
        self.win = self._window()
        self._carry_into(self.win, 0, self.tw, 0)
        k = tile.row_index
        self.final_rows = (self.rows[k + 1] if k + 1 < len(self.rows) else self.H) - tile.row
        rest = self.th - self.final_rows
        if rest > 0:
            band = self.bands[k % 2][:, :rest]
            band.fill(0.0)
            self.next_carry = band
        else:
            self.next_carry = None

    def add(self, tile: Tile, weighted: np.ndarray | None, valid_strip: np.ndarray) -> None:
        """Blend one tile (``None``: a tile without valid pixels, never run) and emit its cell."""
        k, j = tile.row_index, tile.index - tile.row_index * len(self.cols)
        if j == 0:
            self._start_row(tile)
        win = self.win
        assert win is not None
        if weighted is not None:
            win += weighted
        c_next = self.cols[j + 1] if j + 1 < len(self.cols) else self.W
        n, fr = c_next - tile.col, self.final_rows
        self.emit(Cell(k, j, tile.row, tile.col, win[:, :fr, :n], valid_strip[:fr, tile.col : c_next]))
        if self.next_carry is not None:
            self.next_carry[:, :, tile.col : c_next] = win[:, fr:, :n]
        if j + 1 < len(self.cols):
            new = self._window()
            new[:, :, : self.tw - n] = win[:, :, n:]
            self._carry_into(new, tile.col + self.tw, c_next + self.tw, self.tw - n)
            self.win = new
        else:
            self.win = None
            self.carry = self.next_carry
            self.next_carry = None
