"""The Dask client for a batch: a LocalCluster of worker processes, or a running scheduler.

:func:`open_client` is the only place that starts or connects to a cluster. Workers run one
task at a time (one Dask thread each); the task itself sets torch's thread count
(:func:`jess_geo.distributed.worker.set_threads`), so N workers x T threads stay within the cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

from jess_geo.errors import InputError

EXTRA = "install it with: pip install 'jess-geo[dask]'"
CONNECT_TIMEOUT_S = 5.0


def import_distributed() -> Any:
    """The ``distributed`` module, or a one-line InputError naming the extra."""
    try:
        import distributed
    except ImportError:
        raise InputError(f"Dask distributed is not installed (needed for --workers, --scheduler and --block-size on a cluster); {EXTRA}.") from None
    return distributed


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_budget(workers: int, threads_per_worker: int | None = None) -> int:
    """Torch threads per worker: as given, else the cores shared out (at least one each)."""
    if threads_per_worker is not None:
        if threads_per_worker < 1:
            raise InputError(f"--threads-per-worker {threads_per_worker} is not positive; pass 1 or more.")
        return threads_per_worker
    return max(1, cores() // max(1, workers))


def check_address(address: str) -> str:
    """A scheduler address as Dask takes it (``tcp://host:8786``); a bare ``host:port`` gets ``tcp://``."""
    address = address.strip()
    if not address:
        raise InputError("--scheduler is empty; pass an address such as tcp://HOST:8786.")
    return address if "://" in address else f"tcp://{address}"


@contextlib.contextmanager
def open_client(*, workers: int | None = None, scheduler: str | None = None,
                threads_per_worker: int | None = None,
                connect_timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A ``distributed.Client``: ``workers`` local worker processes or the cluster at ``scheduler``.

    Raises InputError (one line) for a bad worker count or an unreachable scheduler.
    """
    distributed = import_distributed()
    if (workers is None) == (scheduler is None):
        raise InputError("Pass either --workers N (a cluster on this machine) or --scheduler ADDRESS (a running one).")
    if scheduler is not None:
        address = check_address(scheduler)
        try:
            client = distributed.Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            why = "no answer" if isinstance(exc, TimeoutError) or "Timed out" in str(exc) else type(exc).__name__
            raise InputError(f"Cannot reach the Dask scheduler at {address} ({why} within {connect_timeout:g} s); "
                             "check the address and that `dask scheduler` runs there.") from None
        with client:
            yield client
        return
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers} is not positive; pass 1 or more.")
    threads = thread_budget(workers, threads_per_worker)
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR,
                                       env=env)
    try:
        with distributed.Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        cluster.close()
