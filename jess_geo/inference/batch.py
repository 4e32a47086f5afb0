"""Many scenes in one run: one task per scene, in this process or on a Dask cluster.

:func:`predict_many` plans every scene's outputs in ``output_dir``, skips scenes whose outputs
are all there already (a rerun resumes an interrupted batch; ``overwrite`` redoes them), runs the
rest (:func:`run_scene`: the same steps as ``jess-geo predict`` on one scene, with the network
opened once per process), hands each :class:`SceneRecord` to ``on_record`` as scenes finish, and
writes the run summary (:mod:`jess_geo.distributed.summary`) beside the outputs. A failing
scene becomes a record with its one-line reason; it never stops the others unless ``fail_fast``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from jess_geo.errors import InputError, JessGeoError, OutputError
from jess_geo.inference.outputs import AUTO, OutputPlan, plan_outputs, scene_stem
from jess_geo.inference.prepare import Options

__all__ = ["SceneRecord", "BatchProgress", "predict_many", "run_scene", "batch_plans"]


@dataclass(frozen=True)
class SceneRecord:
    """What happened to one scene: ``status`` is ``done``, ``failed``, ``skipped`` or ``not run``."""

    scene: str
    status: str
    seconds: float = 0.0
    tiles: int = 0
    valid_pixels: int = 0
    cover: dict[str, float] = field(default_factory=dict)  # class name -> percent of the valid area
    outputs: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None

    @property
    def ok(self) -> bool:
        """True for a scene whose outputs exist (written now or before)."""
        return self.status in ("done", "skipped")

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return {"scene": self.scene, "status": self.status, "seconds": self.seconds, "tiles": self.tiles,
                "valid_pixels": self.valid_pixels, "cover": dict(self.cover), "outputs": dict(self.outputs),
                "error": self.error, "worker": self.worker}


@dataclass
class BatchProgress:
    """Scenes done of all, tiles of the finished scenes, and an estimate of the time left."""

    total: int
    done: int = 0
    failed: int = 0
    tiles: int = 0
    t0: float = field(default_factory=time.perf_counter)

    def add(self, rec: SceneRecord) -> None:
        self.done += 1
        self.failed += rec.status == "failed"
        self.tiles += rec.tiles

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first scene)."""
        if self.done == 0:
            return None
        return (time.perf_counter() - self.t0) * (self.total - self.done) / self.done

    def to_json(self) -> dict[str, Any]:
        eta = self.eta_s
        return {"done": self.done, "total": self.total, "failed": self.failed, "tiles": self.tiles,
                "elapsed_s": round(time.perf_counter() - self.t0, 3), "eta_s": None if eta is None else round(eta, 1)}


def cover_percent(table: dict[str, Any]) -> dict[str, float]:
    """``{class name: percent of the valid area}`` of a cover table."""
    return {str(r["name"]): round(float(r["percent"]), 4) for r in table.get("classes", [])}


def _record(result: dict[str, Any], worker: str | None) -> SceneRecord:
    return SceneRecord(result["scene"], "done", float(result["seconds"]), int(result["tiles"]),
                       int(result["cover"]["valid_pixels"]), cover_percent(result["cover"]), dict(result["outputs"]),
                       worker=worker)


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return None


def run_scene(scene: str, model: str, outputs: OutputPlan, opts: Options, threads: int | None = None) -> SceneRecord:
    """Predict one scene into ``outputs`` (the task of a batch); every error becomes a failed record."""
    from jess_geo.distributed.worker import cached_model, set_threads
    from jess_geo.inference.prepare import prepare_scene
    from jess_geo.inference.outputs import check_outputs
    from jess_geo.inference.products import write_scene

    t0 = time.perf_counter()
    try:
        set_threads(threads)
        meta, name, rt = cached_model(model, opts.runtime, opts.device, opts.batch_size, opts.streams)
        prep = prepare_scene(scene, meta, outputs, opts, name)
        check_outputs([outputs], inputs=[model], overwrite=opts.overwrite)
        return _record(write_scene(prep, rt, opts, model_name=name), _worker_name())
    except JessGeoError as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - one scene's surprise must not end the batch
        reason = f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} (please report this)"
    return SceneRecord(str(scene), "failed", round(time.perf_counter() - t0, 3), outputs=_paths(outputs),
                       error=reason, worker=_worker_name())


def _paths(plan: OutputPlan) -> dict[str, str | None]:
    return {k: (str(v) if v is not None else None) for k, v in plan.paths().items()}


def batch_plans(scenes: Sequence[str | Path], output_dir: str | Path, *, vector: bool = True, layer: str = "classes",
                probabilities: bool = False, energy: bool = False) -> list[OutputPlan]:
    """Every scene's outputs in ``output_dir`` (``<stem>_classes.tif``, ...); two scenes with one stem are refused."""
    out = Path(output_dir)
    plans, seen = [], {}
    for s in scenes:
        stem = scene_stem(s)
        if stem in seen:
            raise OutputError(f"Scenes {seen[stem]} and {s} would both write {out / (stem + '_classes.tif')}; "
                              "rename one or predict them into separate folders.")
        seen[stem] = str(s)
        plans.append(plan_outputs(s, output=out / f"{stem}_classes.tif", vector=AUTO if vector else None, layer=layer,
                                  probabilities=out / f"{stem}_probabilities.tif" if probabilities else None,
                                  energy=out / f"{stem}_energy.tif" if energy else None))
    return plans


def is_complete(plan: OutputPlan) -> bool:
    """True when every output of ``plan`` exists and none is being written (no lock beside it)."""
    from jess_geo.io.atomic import lock_name

    return all(p.is_file() and not lock_name(p).exists() for p in plan.files().values())


def skipped_record(plan: OutputPlan) -> SceneRecord:
    """The record of a scene done before: valid pixels and cover from its cover table."""
    import json

    cover: dict[str, Any] = {}
    if plan.cover_json is not None:
        try:
            cover = json.loads(plan.cover_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cover = {}
    return SceneRecord(plan.scene, "skipped", 0.0, 0, int(cover.get("valid_pixels", 0)), cover_percent(cover), _paths(plan))


def predict_many(scenes: Iterable[str | Path], model: str | Path, *, output_dir: str | Path, client: Any = None,
                 workers: int | None = None, scheduler: str | None = None, overwrite: bool = False,
                 fail_fast: bool = False, threads_per_worker: int | None = None, vector: bool = True,
                 layer: str = "classes", probabilities: bool = False, energy: bool = False,
                 block_size: int | None = None, on_record: Callable[[SceneRecord, BatchProgress], None] | None = None,
                 summary: bool = True, **predict_options: Any) -> list[SceneRecord]:
    """Predict ``scenes`` with the model file ``model`` into ``output_dir``; one record per scene, in order.

    Args:
        client: a ``distributed.Client`` to run on; else ``workers`` (a LocalCluster of that many
            processes) or ``scheduler`` (the address of a running one); none: in this process.
        overwrite: redo scenes whose outputs exist (default: skip them).
        fail_fast: stop submitting and cancel the rest after the first failure (``not run``).
        threads_per_worker: torch threads per worker (default: the cores shared out).
        vector, layer, probabilities, energy: which outputs (names fixed in ``output_dir``).
        block_size: predict each scene in blocks of this many pixels (:mod:`.blocks`).
        on_record: called in this process as each scene finishes.
        summary: write ``predict_summary.csv`` / ``.json`` in ``output_dir``.
        **predict_options: fields of :class:`~jess_geo.inference.prepare.Options`.

    Raises:
        InputError, ModelFileError, OutputError before any work (bad options, model, folder, names).
    """
    from jess_geo.distributed.run import batch_client, run_batch
    from jess_geo.inference.predict import model_metadata
    from jess_geo.io.atomic import check_dir_creatable, ensure_dir

    scenes = [str(s) for s in scenes]
    if not scenes:
        raise InputError("No scene given; pass one or more rasters.")
    opts = Options(overwrite=overwrite, **predict_options)
    opts.check()
    model_metadata(model)  # a missing, corrupt or foreign model file fails once, here
    check_dir_creatable(output_dir)
    plans = batch_plans(scenes, output_dir, vector=vector, layer=layer, probabilities=probabilities, energy=energy)
    with batch_client(client, workers, scheduler, threads_per_worker) as (dask_client, threads):
        out_dir = ensure_dir(output_dir)  # only once the cluster answers: a refused run creates nothing
        records = run_batch(plans, str(Path(model).absolute()), opts, client=dask_client, threads=threads,
                            fail_fast=fail_fast, block_size=block_size, on_record=on_record)
    if summary:
        from jess_geo.distributed.summary import write_summary

        write_summary(records, out_dir, model=Path(model).name)
    return records
