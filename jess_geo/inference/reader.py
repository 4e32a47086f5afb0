"""The tile reader: full-width strips of each tile row, normalised tiles, batches for the network.

Every input row is decoded once: rows shared by two tile rows are carried over in one strip
buffer. Invalid pixels (nodata value, alpha, mask, and any non-finite value) take the band mean
before any resampling, so nodata never bleeds into valid pixels, and are 0 in the network input.
Batch buffers come from a small ring whose size bounds what the queue and the network can hold.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from jess_geo.adaptation.colour import apply_tables
from jess_geo.inference.aoi import area_mask
from jess_geo.inference.job import Job
from jess_geo.inference.resample import resize_bilinear, resize_nearest
from jess_geo.inference.tiling import Tile
from jess_geo.io.raster import all_valid, finite_mask, open_raster, read_rows, read_valid

POLL = 0.1
QUEUE_BATCHES = 3


@dataclass
class Batch:
    """Tiles in order, with the valid strip of their tile row; ``run``: those the network sees."""

    tiles: list[tuple[Tile, np.ndarray]]
    run: list[int]
    x: np.ndarray | None  # (len(run), C, H, W) float32 network input


def put(q: "queue.Queue[Any]", item: Any, stop: threading.Event) -> bool:
    """Queue ``item`` unless ``stop`` is set first; False when stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL)
            return True
        except queue.Full:
            continue
    return False


class _Filler:
    """Normalised tiles into a ring of batch buffers (queue size + one in the network + one filling)."""

    def __init__(self, job: Job, batch_size: int) -> None:
        nh, nw = job.tiles.net_shape
        self.job = job
        self.ring = [np.empty((batch_size, len(job.bands), nh, nw), np.float32) for _ in range(QUEUE_BATCHES + 2)]
        self.k = 0
        self.padded = (nh, nw) != job.tiles.work_shape
        self.inv_std = (1.0 / job.std).astype(np.float32)

    @property
    def buf(self) -> np.ndarray:
        return self.ring[self.k % len(self.ring)]

    def next_buffer(self) -> None:
        self.k += 1

    def fill(self, i: int, raw: np.ndarray, valid: np.ndarray) -> None:
        """Tile ``raw`` (C, h, w) into slot ``i``: invalid pixels and padding are 0 after normalising."""
        job, dst = self.job, self.buf[i]
        raw = apply_tables(raw, job.colour)  # the model's colour alignment, if any (adapt --method histmatch)
        work = job.tiles.work_shape
        if self.padded:
            dst.fill(0.0)
        if job.tiles.scale != 1.0:
            x = raw.astype(np.float32)
            if not valid.all():
                np.copyto(x, np.broadcast_to(job.mean, x.shape), where=~valid[None])
            raw, valid = resize_bilinear(x, work), resize_nearest(valid, work)
        d = dst[:, : raw.shape[1], : raw.shape[2]]
        with np.errstate(invalid="ignore", over="ignore"):
            np.subtract(raw, job.mean, out=d, casting="unsafe")
            d *= self.inv_std
        if not valid.all():
            d[:, ~valid] = 0.0


def _strip_valid(src: Any, raw_new: np.ndarray, row0: int, row1: int, cols: tuple[int, int]) -> np.ndarray:
    valid = read_valid(src, window=Window(cols[0], row0, cols[1] - cols[0], row1 - row0))
    finite = finite_mask(raw_new)
    return valid if finite is None else valid & finite


def read_batches(job: Job, out: "queue.Queue[Any]", stop: threading.Event, batch_size: int,
                 gate: "threading.Lock | contextlib.nullcontext[None]") -> None:
    """Reader thread: queue :class:`Batch` objects for every tile row, then ``None``."""
    info, grid, area = job.info, job.tiles.grid, job.area
    th = grid.tile_height
    r_off, c_off = (area.row_off, area.col_off) if area is not None else (0, 0)  # a window of the file
    cols = (c_off, c_off + info.width)
    filler = _Filler(job, batch_size)
    pending: list[tuple[Tile, np.ndarray]] = []
    run: list[int] = []

    def flush() -> bool:
        nonlocal pending, run
        if not pending:
            return True
        ok = put(out, Batch(pending, run, filler.buf[: len(run)] if run else None), stop)
        if run:
            filler.next_buffer()
        pending, run = [], []
        return ok

    with open_raster(info.source or info.path) as src:  # opened, read and closed in this thread
        raw = np.empty((len(job.bands), th, info.width), dtype=np.dtype(info.dtype))
        everywhere = all_valid(src)
        valid: np.ndarray = np.broadcast_to(np.True_, (th, info.width))
        carry_end = 0
        for tile_row in grid.rows():
            if stop.is_set():
                return
            r0, r1 = tile_row[0].row, tile_row[0].row + th
            new0 = max(r0, carry_end)
            keep = new0 - r0  # rows of the previous strip that this one starts with
            with gate:
                raw_new = read_rows(src, job.bands, new0 + r_off, r1 + r_off, cols)
                if keep:
                    raw[:, :keep] = raw[:, th - keep :]
                raw[:, keep:] = raw_new
                if not everywhere:
                    valid_new = _strip_valid(src, raw_new, new0 + r_off, r1 + r_off, cols)
                    # a new array each tile row: queued batches and cells still refer to the previous one
                    valid = np.concatenate([valid[th - keep :], valid_new], axis=0) if keep else valid_new
                del raw_new
                # outputs: valid and inside the area; network input: every valid pixel (context)
                inside = valid if area is None else area_mask(area, r0, th) & valid
            carry_end = r1
            for t in tile_row:
                with gate:
                    v = valid[:, t.col : t.col + t.width]
                    pending.append((t, inside))
                    if inside[:, t.col : t.col + t.width].any():
                        filler.fill(len(run), raw[:, :, t.col : t.col + t.width], v)
                        run.append(len(pending) - 1)
                if len(run) >= batch_size or len(pending) >= 4 * batch_size:
                    if not flush():
                        return
        flush()
    put(out, None, stop)
