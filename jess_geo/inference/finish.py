"""The finisher: blended cells -> class, probability and energy rows, written block-aligned.

Runs in the writer thread, which also opens and closes the output datasets (each GDAL dataset is
used by one thread only). Rows of one tile row are assembled in preallocated full-width arrays;
:class:`RowBuffer` collects them into whole rows of GeoTIFF blocks (a preallocated buffer, reused)
so the writer never holds on to them, and memory stays flat whatever the scene size.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, Callable, Protocol

import numpy as np

from jess_geo.classes import IGNORE
from jess_geo.inference.blend import Cell
from jess_geo.inference.job import Job
from jess_geo.inference.reader import POLL
from jess_geo.io.geotiff import BLOCK


class Sink(Protocol):
    """Where finished rows go: a GeoTIFF row writer or an in-memory collector."""

    def write_rows(self, rows: np.ndarray) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class RowBuffer:
    """Hands rows to ``sink`` in whole rows of ``BLOCK``-row blocks from one reused buffer."""

    def __init__(self, sink: Sink, count: int, width: int, max_rows: int, dtype: Any) -> None:
        self.sink = sink
        self.buf = np.empty((count, BLOCK + max_rows, width), dtype)
        self.n = 0

    def add(self, rows: np.ndarray) -> None:
        rows = rows if rows.ndim == 3 else rows[None]
        h = rows.shape[1]
        self.buf[:, self.n : self.n + h] = rows
        self.n += h
        full = (self.n // BLOCK) * BLOCK
        if full:
            self.sink.write_rows(self.buf[:, :full])
            rest = self.n - full
            self.buf[:, :rest] = self.buf[:, full : self.n]
            self.n = rest

    def flush(self) -> None:
        if self.n:
            self.sink.write_rows(self.buf[:, : self.n])
            self.n = 0


class Finisher:
    """Turns cells into output rows (argmax classes, uint8 probabilities, free energy)."""

    def __init__(self, job: Job, sinks: dict[str, Sink], cover: Any | None) -> None:
        self.job, self.cover = job, cover
        self.C = len(job.classes)
        self.lut = np.array([int(c["id"]) for c in job.classes], dtype=np.uint8)
        self.ncols = len(job.tiles.grid.col_starts)
        th, width = job.tiles.grid.tile_height, job.info.width
        shapes = {"classes": ((th, width), np.uint8), "probabilities": ((self.C, th, width), np.uint8),
                  "energy": ((th, width), np.float32)}
        self.band = {k: np.empty(*shapes[k]) for k in sinks}
        counts = {"classes": 1, "probabilities": self.C, "energy": 1}
        self.out = {k: RowBuffer(s, counts[k], width, th, shapes[k][1]) for k, s in sinks.items()}

    def add(self, cell: Cell) -> None:
        """Finish one cell; after the last cell of a tile row, hand its rows on."""
        C = self.C
        h, w = cell.valid.shape
        invalid = ~cell.valid
        cols = slice(cell.col0, cell.col0 + w)
        if "classes" in self.band:  # the weight sum is positive on valid pixels: argmax of the sums
            cls = self.lut[np.argmax(cell.acc[:C], axis=0)]
            cls[invalid] = IGNORE
            self.band["classes"][:h, cols] = cls
        if "probabilities" in self.band or "energy" in self.band:
            self._soft(cell, invalid, cols)
        if cell.col_index == self.ncols - 1:
            for key, data in self.band.items():
                self.out[key].add(data[..., :h, :])
            if self.cover is not None and "classes" in self.band:
                self.cover.add(self.band["classes"][:h], cell.row0)

    def _soft(self, cell: Cell, invalid: np.ndarray, cols: slice) -> None:
        C, h = self.C, cell.valid.shape[0]
        weight = cell.acc[C]
        logits = cell.acc[:C] / np.where(weight > 0, weight, 1.0)[None]
        m = logits.max(axis=0)
        ex = np.exp(logits - m[None])
        s = ex.sum(axis=0)
        if "energy" in self.band:
            e = -(m + np.log(s))
            e[invalid] = np.nan
            self.band["energy"][:h, cols] = e
        if "probabilities" in self.band:
            p = np.rint(ex * (254.0 / s)[None]).astype(np.uint8)
            p[:, invalid] = IGNORE
            self.band["probabilities"][:, :h, cols] = p

    def flush(self) -> None:
        """Hand on the last rows (end of the scene)."""
        for buf in self.out.values():
            buf.flush()


def write_cells(job: Job, open_sinks: Callable[[], dict[str, Sink]], cover: Any | None,
                inbox: "queue.Queue[Any]", stop: threading.Event,
                gate: "threading.Lock | contextlib.nullcontext[None]") -> None:
    """Writer thread: open the sinks, finish cells until ``None``, close them (abort on any stop)."""
    sinks = open_sinks()
    ok = False
    try:
        finisher = Finisher(job, sinks, cover)
        while not stop.is_set():
            try:
                cell = inbox.get(timeout=POLL)
            except queue.Empty:
                continue
            if cell is None:
                with gate:
                    finisher.flush()
                ok = True
                return
            with gate:
                finisher.add(cell)
    finally:
        for sink in sinks.values():
            if ok:
                sink.close()
            else:
                sink.abort()
