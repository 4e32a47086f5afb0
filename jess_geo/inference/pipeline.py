"""The threaded run of one scene: reader thread -> network + blending (calling thread) -> writer thread.

On a GPU the three stages run at the same time. On the CPU the network already keeps every core
busy, and work in the other threads during a network call stalls torch's threads at every
barrier (the network then loses more time than that work takes), so there the reader and writer
take turns with the network calls (one lock) and run beside the blending and while the network
waits for data. Stopping (``cancel()`` True, an error in any stage) sets one event; both threads
are joined before this returns, and each closes the datasets it opened itself.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from typing import Any, Callable

import numpy as np

from jess_geo.errors import Cancelled, JessGeoError
from jess_geo.inference.blend import QUEUE_CELLS, Blender, Cell
from jess_geo.inference.finish import Sink, write_cells
from jess_geo.inference.job import Job
from jess_geo.inference.reader import POLL, QUEUE_BATCHES, Batch, put, read_batches
from jess_geo.inference.resample import resize_bilinear
from jess_geo.inference.runtime import Runtime
from jess_geo.inference.tiling import Tile, tile_weights
from jess_geo.inference.tta import with_tta
from jess_geo.progress import ProgressCallback

CANCELLED = "Cancelled; outputs were not written (partial files removed)."


class Stage(threading.Thread):
    """A thread that records its exception for the calling thread instead of printing it."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            self.error = exc


def check_cancel(cancel: Callable[[], bool] | None) -> None:
    """Raise :class:`Cancelled` when ``cancel()`` says so."""
    if cancel is not None and cancel():
        raise Cancelled(CANCELLED)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _serial(rt: Runtime) -> bool:
    """Whether reader / writer work must not overlap network calls (a CPU runtime on every core)."""
    if getattr(rt, "device", "cpu") != "cpu":
        return False
    threads = getattr(rt, "threads", None)
    if threads is None and getattr(rt, "name", "") == "torch":
        import torch

        threads = torch.get_num_threads()
    return threads is None or threads >= _cores()


def forward(rt: Runtime, job: Job, x: np.ndarray, tiles: list[Tile]) -> np.ndarray:
    """``(B, K + 1, h, w)``: the logits of ``x`` on the tiles' input grid x blending weights, then the weights."""
    weights = np.stack([tile_weights(t, job.tiles.grid.overlap) for t in tiles])
    wh, ww = job.tiles.work_shape
    fast = getattr(rt, "weighted_logits", None)
    if fast is not None:
        return fast(x, weights, (wh, ww))
    y = rt.logits(x)[:, :, :wh, :ww]
    y = resize_bilinear(y, weights.shape[1:])
    return np.concatenate([y * weights[:, None], weights[:, None]], axis=1)


class _Progress:
    """Progress with an estimate of the time left once the first batches are done."""

    def __init__(self, progress: ProgressCallback | None, total: int) -> None:
        self.progress, self.total, self.t0 = progress, total, time.perf_counter()

    def __call__(self, done: int) -> None:
        if self.progress is None:
            return
        msg = f"tile {done}/{self.total}"
        elapsed = time.perf_counter() - self.t0
        if 0 < done < self.total and elapsed > 1.0:
            msg += f", about {elapsed * (self.total - done) / done:.0f} s left"
        self.progress("predict", done, self.total, msg)


def _network_loop(job: Job, rt: Runtime, batches: "queue.Queue[Any]", reader: Stage, writer: Stage,
                  blender: Blender, gate: Any, report: _Progress, cancel: Callable[[], bool] | None) -> int:
    done = ran = 0
    while True:
        check_cancel(cancel)
        try:
            batch: Batch | None = batches.get(timeout=POLL)
        except queue.Empty:
            if reader.error is not None:
                raise reader.error
            if not reader.is_alive() and batches.empty():
                raise JessGeoError("The tile reader stopped unexpectedly; please report this.")
            continue
        if batch is None:
            return ran
        weighted = None
        if batch.x is not None:
            with gate:
                weighted = forward(rt, job, batch.x, [batch.tiles[i][0] for i in batch.run])
        runs = dict(zip(batch.run, range(len(batch.run))))
        for pos, (tile, valid) in enumerate(batch.tiles):
            blender.add(tile, weighted[runs[pos]] if pos in runs else None, valid)  # type: ignore[index]
        done += len(batch.tiles)
        ran += len(batch.run)
        report(done)
        if writer.error is not None:
            raise writer.error


def run_tiles(job: Job, rt: Runtime, open_sinks: Callable[[], dict[str, Sink]], cover: Any | None,
              batch_size: int, progress: ProgressCallback | None = None,
              cancel: Callable[[], bool] | None = None) -> dict[str, int]:
    """Classify every tile of ``job`` with ``rt`` and finish its rows into the sinks ``open_sinks()``
    makes (in the writer thread). Returns ``{"tiles", "tiles_run"}``; raises what a stage raised.

    With ``job.tta`` other than ``"none"`` each batch's scores are averaged over its test-time
    augmentations (:mod:`jess_geo.inference.tta`) before they are cropped, resized and blended."""
    rt = with_tta(rt, job.tta)  # type: ignore[assignment]
    stop = threading.Event()
    batches: "queue.Queue[Any]" = queue.Queue(maxsize=QUEUE_BATCHES)
    cells: "queue.Queue[Any]" = queue.Queue(maxsize=QUEUE_CELLS)
    gate: Any = threading.Lock() if _serial(rt) else contextlib.nullcontext()
    reader = Stage("jess-geo-reader", lambda: read_batches(job, batches, stop, batch_size, gate))
    writer = Stage("jess-geo-writer", lambda: write_cells(job, open_sinks, cover, cells, stop, gate))

    def emit(cell: Cell) -> None:
        if writer.error is not None:
            raise writer.error
        if not put(cells, cell, stop):
            raise Cancelled(CANCELLED)

    total = len(job.tiles.grid)
    report = _Progress(progress, total)
    reader.start()
    writer.start()
    try:
        report(0)
        ran = _network_loop(job, rt, batches, reader, writer, Blender(job, emit), gate, report, cancel)
        if not put(cells, None, stop):
            raise Cancelled(CANCELLED)
        while writer.is_alive():
            writer.join(timeout=POLL)
            check_cancel(cancel)
        for stage in (reader, writer):
            if stage.error is not None:
                raise stage.error
    finally:
        stop.set()
        writer.join()  # it aborts (or has closed) its outputs before it ends
        reader.join()
    return {"tiles": total, "tiles_run": ran}
