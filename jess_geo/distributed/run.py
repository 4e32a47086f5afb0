"""Running a batch's scene tasks: in this process, or on a Dask client as they finish.

Scenes whose outputs all exist are skipped (unless ``overwrite``); the others run one task per
scene. On a cluster the tasks are submitted at once and gathered with ``as_completed``; a task
whose worker died is retried once on another worker (Dask reschedules it) and otherwise reported
as failed, after the temporary files and locks of the dead process are removed.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from jess_geo.inference.batch import BatchProgress, SceneRecord, is_complete, run_scene, skipped_record
from jess_geo.inference.outputs import OutputPlan
from jess_geo.inference.prepare import Options

OnRecord = Callable[[SceneRecord, BatchProgress], None]
RETRIES = 1


def run_batch(plans: list[OutputPlan], model: str, opts: Options, *, client: Any = None, threads: int | None = None,
              fail_fast: bool = False, block_size: int | None = None,
              on_record: OnRecord | None = None) -> list[SceneRecord]:
    """One record per plan, in the plans' order (on ``client``, or here when None); ``on_record`` sees each as it comes."""
    progress = BatchProgress(len(plans))
    records: dict[int, SceneRecord] = {}

    def note(i: int, rec: SceneRecord) -> None:
        records[i] = rec
        progress.add(rec)
        if on_record is not None:
            on_record(rec, progress)

    todo = []
    for i, plan in enumerate(plans):
        if not opts.overwrite and is_complete(plan):
            note(i, skipped_record(plan))
        else:
            todo.append(i)
    if block_size is not None:
        from jess_geo.inference.blocks import predict_blocks

        run_one = lambda i: predict_blocks(plans[i], model, opts, block_size, client=client, threads=threads)  # noqa: E731
    elif client is None:
        run_one = lambda i: run_scene(plans[i].scene, model, plans[i], opts, threads)  # noqa: E731
    else:
        _run_on(client, plans, todo, model, opts, threads, fail_fast, note)
        todo = []
    for i in todo:  # one scene after another here (block tasks of one scene may still run on the cluster)
        note(i, run_one(i))
        if fail_fast and records[i].status == "failed":
            break
    return [records.get(i, SceneRecord(p.scene, "not run", error="not run: an earlier scene failed (--fail-fast)"))
            for i, p in enumerate(plans)]


@contextlib.contextmanager
def batch_client(client: Any, workers: int | None, scheduler: str | None,
                 threads_per_worker: int | None) -> Iterator[tuple[Any, int | None]]:
    """``(client or None, torch threads per task)``: the given client, a new one, or none."""
    if client is not None:
        yield client, threads_per_worker
        return
    if workers is None and scheduler is None:
        yield None, threads_per_worker
        return
    from jess_geo.distributed.cluster import open_client, thread_budget

    threads = thread_budget(workers, threads_per_worker) if workers is not None else threads_per_worker
    with open_client(workers=workers, scheduler=scheduler, threads_per_worker=threads_per_worker) as c:
        yield c, threads


def _run_on(client: Any, plans: list[OutputPlan], todo: list[int], model: str, opts: Options,
            threads: int | None, fail_fast: bool, note: Callable[[int, SceneRecord], None]) -> None:
    from distributed import as_completed

    tag = uuid.uuid4().hex[:8]
    futures = {client.submit(run_scene, plans[i].scene, model, plans[i], opts, threads, key=f"jess-geo-scene-{tag}-{i}",
                             pure=False, retries=RETRIES): i for i in todo}
    for fut in as_completed(list(futures), loop=client.loop):
        i = futures[fut]
        try:
            rec = fut.result()
        except Exception as exc:  # noqa: BLE001 - a lost worker (KilledWorker), a cancelled task
            rec = lost_record(plans[i], exc)
        note(i, rec)
        if fail_fast and rec.status == "failed":
            for other in futures:
                other.cancel()
            return


def lost_record(plan: OutputPlan, exc: BaseException) -> SceneRecord:
    """A scene whose task ended without a record: the worker died (twice) or the task was cancelled."""
    from jess_geo.io.atomic import clean_stale

    for path in plan.files().values():
        clean_stale(Path(path))  # the dead process's .part files and locks (same host: its pid is gone)
    kind = type(exc).__name__
    why = "its worker died" if kind == "KilledWorker" else f"the task ended with {kind}"
    return SceneRecord(plan.scene, "failed", error=f"{plan.scene}: {why} (tried {RETRIES + 1} times); "
                       "nothing was written for it, run the batch again to retry it.",
                       outputs={k: (str(v) if v is not None else None) for k, v in plan.paths().items()})
