"""The run folder: refuse to destroy a model, decide whether to resume, one ``last.ckpt``.

A folder resumes when it holds ``checkpoints/last.ckpt`` and ``run_config.json`` equal to this
run's settings (epochs, time budget and devices may differ: raising ``--epochs`` continues a
run). A folder holding another run's ``model.pt`` is refused unless ``overwrite``. Deciding is
read-only (every DDP rank decides the same before any rank writes); :class:`PrepareRunFolder`
writes, on global rank zero, once all ranks have started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import lightning as L

from jess_geo.errors import Cancelled, OutputError
from jess_geo.io.atomic import atomic_output, check_dir_creatable, ensure_dir
from jess_geo.training.config import TrainConfig
from jess_geo.training.recorder import read_curves, write_json

# Settings that may change between a run and its continuation.
NOT_IN_RUN_KEY = ("epochs", "max_minutes", "accelerator", "devices", "num_nodes", "strategy")
STALE = ("checkpoints/last.ckpt", "curves.csv", "best_metrics.json", "metrics.json", "curves.png", "confusion_matrix.png")


@dataclass
class RunFolder:
    """What a run folder holds and what this run does with it."""

    out: Path
    key: dict[str, Any]
    resume: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    best: float = -1.0
    best_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> Path:
        """The one checkpoint a run resumes from."""
        return self.out / "checkpoints" / "last.ckpt"


def run_key(cfg: TrainConfig, adaptation: dict[str, Any] | None) -> dict[str, Any]:
    """The settings that identify a run (a fine-tuning of another base model is another run)."""
    key = cfg.to_dict()
    key["trainer"] = {k: v for k, v in key["trainer"].items() if k not in NOT_IN_RUN_KEY}
    # The base model's figures before adaptation are measured, not chosen: not part of the run.
    key["adaptation"] = {k: v for k, v in adaptation.items() if k not in ("epochs", "before")} if adaptation else None
    return key


def _check_not_an_input(out: Path, inputs: Iterable[str | Path | None]) -> None:
    target = out.resolve()
    for item in inputs:
        if item is None:
            continue
        p = Path(item).resolve()
        if p == target or p == target / "model.pt":
            what = "the base model" if p.suffix == ".pt" else "an input folder"
            raise OutputError(f"Output folder {out} holds {what} ({item}); choose another --output-dir.")


def plan_run_folder(out: Path, key: dict[str, Any], *, overwrite: bool, inputs: Iterable[str | Path | None]) -> RunFolder:
    """Decide fresh start or resume; refuse an output that is an input or holds another run's model."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"Output folder {out} is a file; choose another --output-dir.")
    _check_not_an_input(out, inputs)
    check_dir_creatable(out)
    state = out / "run_config.json"
    try:
        same = state.is_file() and json.loads(state.read_text()) == json.loads(json.dumps(key))
    except (OSError, ValueError):
        same = False
    folder = RunFolder(out, key, resume=same and (out / "checkpoints" / "last.ckpt").is_file())
    if not folder.resume and (out / "model.pt").exists() and not overwrite:
        raise OutputError(
            f"{out} already holds model.pt from another run (or one that cannot resume); pass --overwrite to replace it "
            f"or choose another --output-dir."
        )
    if folder.resume:
        folder.rows = read_curves(out / "curves.csv")
        if (out / "model.pt").is_file() and (out / "best_metrics.json").is_file():
            folder.best_metrics = json.loads((out / "best_metrics.json").read_text())
            folder.best = max((r["val_miou"] for r in folder.rows if r.get("val_miou") is not None), default=-1.0)
    return folder


def prepare_run_folder(folder: RunFolder) -> None:
    """Create the folder; for a fresh start remove the previous run's records (rank zero only).

    A previous ``model.pt`` stays until this run's first validation replaces it.
    """
    ensure_dir(folder.out)
    if folder.resume:
        return
    for name in STALE:
        (folder.out / name).unlink(missing_ok=True)
    write_json(folder.out / "run_config.json", folder.key)


class PrepareRunFolder(L.Callback):
    """Prepare the run folder once every rank has decided (Lightning ``setup``): rank zero writes, all wait."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            prepare_run_folder(self.folder)
        trainer.strategy.barrier("jess_geo.prepare_run_folder")


def checkpoint_callback(folder: RunFolder) -> L.pytorch.callbacks.ModelCheckpoint:
    """Lightning's checkpointing, writing only ``checkpoints/last.ckpt`` (never ``last-v1.ckpt``)."""
    return L.pytorch.callbacks.ModelCheckpoint(
        dirpath=folder.last.parent, save_last=True, save_top_k=0, every_n_epochs=1, enable_version_counter=False,
    )


class SaveOnInterrupt(L.Callback):
    """Write ``last.ckpt`` when training is interrupted (SIGTERM/Ctrl-C), so the same command resumes.

    Single-process runs only: under DDP the other ranks cannot join the save, so a stopped DDP
    run resumes from the last finished epoch.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved = False
        self.stopped_by: str | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (Cancelled, KeyboardInterrupt)):
            return
        self.stopped_by = "SIGTERM" if isinstance(exception, Cancelled) else "Ctrl-C"
        if trainer.world_size == 1:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.path) as tmp:
                trainer.save_checkpoint(tmp)
            self.saved = True


def stop_message(folder: RunFolder, stopped_by: str, best_metrics: dict[str, Any], last_saved: bool) -> str:
    """The one line printed when training is stopped: what was kept and how to continue."""
    kept = []
    if (folder.out / "model.pt").is_file() and best_metrics.get("epoch"):
        miou = best_metrics.get("val_miou")
        score = f", val mIoU {100 * miou:.1f} %" if miou is not None else ""
        kept.append(f"{folder.out / 'model.pt'} (best epoch {best_metrics['epoch']}{score})")
    if folder.last.is_file():
        kept.append(f"{folder.last}" + ("" if last_saved else " (from the last finished epoch)"))
    if not kept:
        return f"Stopped by {stopped_by} before the first epoch ended; nothing was kept, run the command again to start over."
    return f"Stopped by {stopped_by}; kept {' and '.join(kept)}; run the same command to resume."
