"""What a training run writes while it runs: the curve table, the best model and its metrics.

Every file is written by the global-rank-zero process only (``trainer.is_global_zero``); the
metrics it records are already synchronised across ranks by the task.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import lightning as L

from jess_geo.io.atomic import atomic_output
from jess_geo.models.modelfile import save_model_file

CURVE_COLUMNS = [
    "epoch", "step", "minutes", "cpu_minutes", "lr", "train_loss", "train_ce", "train_energy_source", "train_energy_target",
    "val_accuracy", "val_miou", "val_f1", "target_accuracy", "target_miou", "target_f1",
    "source_energy", "target_energy", "energy_gap",
]
HEADLINE = ("epoch", "val_accuracy", "val_miou", "val_f1", "target_accuracy", "target_miou", "source_energy", "target_energy")


def cpu_seconds() -> float:
    """CPU time (user + system, all threads) this process has used: a load-independent clock."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few figures stored in the model file and printed at the end."""
    return {k: metrics[k] for k in HEADLINE if metrics.get(k) is not None}


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def write_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the per-epoch curve table as CSV (atomically)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r[k]) for k in CURVE_COLUMNS})


def read_curves(path: Path) -> list[dict[str, Any]]:
    """The rows of a curve table (empty when there is none); counters stay integers."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]
    for r in rows:
        for k in ("epoch", "step"):
            if r.get(k) is not None:
                r[k] = int(r[k])
    return rows


def _scalar(v: Any) -> float | None:
    if v is None:
        return None
    return float(v.item() if hasattr(v, "item") else v)


class RunRecorder(L.Callback):
    """After each validation: append a curve row, and save the best model by validation mIoU (rank zero)."""

    def __init__(self, out: Path, metadata: dict[str, Any], rows: list[dict[str, Any]], best: float,
                 best_metrics: dict[str, Any] | None = None) -> None:
        self.out, self.metadata, self.rows, self.best = out, metadata, rows, best
        self.best_metrics: dict[str, Any] = best_metrics or {}
        self.start = dt.datetime.now()
        self.start_cpu = cpu_seconds()
        self.offset_min = rows[-1]["minutes"] if rows else 0.0
        self.offset_cpu = (rows[-1].get("cpu_minutes") or 0.0) if rows else 0.0

    def _row(self, trainer: L.Trainer, metrics: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "epoch": trainer.current_epoch + 1,
            "step": trainer.global_step,
            "minutes": round(self.offset_min + (dt.datetime.now() - self.start).total_seconds() / 60, 3),
            "cpu_minutes": round(self.offset_cpu + (cpu_seconds() - self.start_cpu) / 60, 3),
            "lr": trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None,
        }
        for k in CURVE_COLUMNS[5:]:
            row[k] = _scalar(metrics.get(k))
        return row

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = pl_module.epoch_metrics  # type: ignore[attr-defined]
        row = self._row(trainer, m)
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        score = row.get("val_miou")
        if score is not None and score > self.best:
            self.best = score
            self.best_metrics = {"epoch": row["epoch"], **{k: v for k, v in row.items() if v is not None and k != "lr"},
                                 "validation": m.get("_val_full", {})}
            if m.get("_target_full"):
                self.best_metrics["target"] = m["_target_full"]
            if trainer.is_global_zero:
                meta = dict(self.metadata, metrics=headline(self.best_metrics))
                with pl_module.deployed():  # type: ignore[attr-defined]
                    save_model_file(self.out / "model.pt", pl_module.model, meta)  # type: ignore[attr-defined]
                write_json(self.out / "best_metrics.json", self.best_metrics)
        if trainer.is_global_zero:
            # Curves last: a row in curves.csv means this epoch's model and best metrics are on disk.
            write_curves(self.rows, self.out / "curves.csv")
