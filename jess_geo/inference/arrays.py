"""The pipeline into memory: a scene's class (and energy) arrays, for scoring and diagnostics.

``evaluate`` scores through this, so it sees exactly what ``predict`` writes: the same tiles,
resampling, blending and nodata handling. Meant for images that fit in memory (label photos).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jess_geo.inference.pipeline import run_tiles
from jess_geo.inference.prepare import Options, prepare_scene
from jess_geo.inference.runtime import Runtime


class ArraySink:
    """A sink that keeps every row: ``(count, H, W)`` of ``dtype``."""

    def __init__(self, count: int, height: int, width: int, dtype: Any) -> None:
        self.data = np.empty((count, height, width), dtype)
        self.n = 0

    def write_rows(self, rows: np.ndarray) -> None:
        rows = rows if rows.ndim == 3 else rows[None]
        self.data[:, self.n : self.n + rows.shape[1]] = rows
        self.n += rows.shape[1]

    def close(self) -> None:
        """Nothing to close."""

    def abort(self) -> None:
        """Nothing to remove."""


def predict_arrays(scene: str | Path, rt: Runtime, meta: dict[str, Any], *, keys: Sequence[str] = ("classes",),
                   opts: Options | None = None) -> dict[str, np.ndarray]:
    """``{"classes": (H, W) uint8 class ids (255 = nodata), "energy": (H, W) float32 (NaN = nodata)}``
    for the ``keys`` asked, through the same pipeline as ``predict``."""
    opts = opts or Options()
    prep = prepare_scene(scene, meta, None, opts)
    info = prep.job.info
    dtypes = {"classes": np.uint8, "energy": np.float32}
    sinks = {k: ArraySink(1, info.height, info.width, dtypes[k]) for k in keys}
    run_tiles(prep.job, rt, lambda: dict(sinks), None, opts.batch_size)
    return {k: s.data[0] for k, s in sinks.items()}
