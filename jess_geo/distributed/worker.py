"""What runs inside a worker process: the model loaded once, torch threads set once.

The cache is per process and keyed by the model file's path, size and modification time, so a
worker runs every scene of a batch with one network and notices a model file that changed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_RUNTIMES: dict[tuple[Any, ...], Any] = {}
_THREADS: list[int] = []
LOADS = {"count": 0}  # how many times this process opened a runtime (for tests and benchmarks)


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads once per process (None: leave torch's default)."""
    if threads is None or _THREADS == [threads]:
        return
    import torch

    torch.set_num_threads(int(threads))
    _THREADS[:] = [threads]


def model_key(model: str | Path, runtime: str | None, device: str, *settings: Any) -> tuple[Any, ...]:
    """Cache key: the resolved path with its size and mtime, the runtime, the device and other settings."""
    p = Path(model).resolve()
    st = os.stat(p)
    return (str(p), st.st_size, st.st_mtime_ns, runtime, device, *settings)


def cached_model(model: str | Path, runtime: str | None, device: str, batch: int | None = None,
                 streams: int | None = None) -> tuple[dict[str, Any], str, Any]:
    """``(metadata, file name, Runtime)`` of ``model``: read and opened once per process."""
    from jess_geo.inference.predict import model_metadata
    from jess_geo.inference.runtime import open_runtime

    key = model_key(model, runtime, device, batch, streams)
    with _LOCK:
        hit = _RUNTIMES.get(key)
        if hit is None:
            _RUNTIMES.clear()  # one model per worker: a changed file replaces the old network
            meta, name = model_metadata(model)
            hit = (meta, name, open_runtime(model, runtime, device, metadata=meta, batch=batch, streams=streams))
            _RUNTIMES[key] = hit
            LOADS["count"] += 1
        return hit


def loads() -> int:
    """How many runtimes this process has opened (a task: ``client.run(loads)``)."""
    return LOADS["count"]
