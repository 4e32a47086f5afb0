"""Run a training: data, model, Lightning trainer, callbacks that write the model file and curves."""

from __future__ import annotations

import contextlib
import csv
import logging
import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any, Iterator

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
import torch

import jess_geo
from jess_geo.classes import ClassTable, load_class_table
from jess_geo.data.augment import AugmentConfig
from jess_geo.data.dataset import SceneDataset, grid_loader, train_loader
from jess_geo.data.normalization import compute_stats
from jess_geo.data.scenes import Scene, load_scene, pair_files, split_files
from jess_geo.errors import Cancelled, ConfigError
from jess_geo.io.atomic import atomic_output, check_dir_creatable, ensure_dir
from jess_geo.io.raster import inspect_raster, list_rasters
from jess_geo.models.factory import architecture_dict, build_model
from jess_geo.models.modelfile import LoadedModel, save_model_file
from jess_geo.training.config import TrainConfig
from jess_geo.training.plots import plot_confusion, plot_curves
from jess_geo.training.task import SegmentationTask

CURVE_COLUMNS = [
    "epoch", "step", "minutes", "cpu_minutes", "lr", "train_loss", "train_ce", "train_energy_source", "train_energy_target",
    "val_accuracy", "val_miou", "val_f1", "target_accuracy", "target_miou", "target_f1",
    "source_energy", "target_energy", "energy_gap",
]


def _cpu_seconds() -> float:
    """CPU time (user + system, all threads) this process has used: a load-independent clock."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _scalar(v: Any) -> float | None:
    if v is None:
        return None
    return float(v.item() if hasattr(v, "item") else v)


class RunRecorder(L.Callback):
    """After each validation: append a curve row, replot, and save the best model by validation mIoU."""

    def __init__(self, out: Path, metadata: dict[str, Any], resume_rows: list[dict[str, Any]], best: float) -> None:
        self.out = out
        self.metadata = metadata
        self.rows = resume_rows
        self.best = best
        self.best_metrics: dict[str, Any] = {}
        self.start = dt.datetime.now()
        self.offset_min = resume_rows[-1]["minutes"] if resume_rows else 0.0
        self.start_cpu = _cpu_seconds()
        self.offset_cpu = (resume_rows[-1].get("cpu_minutes") or 0.0) if resume_rows else 0.0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = pl_module.epoch_metrics  # type: ignore[attr-defined]
        cb = trainer.callback_metrics
        row: dict[str, Any] = {
            "epoch": trainer.current_epoch + 1,
            "step": trainer.global_step,
            "minutes": round(self.offset_min + (dt.datetime.now() - self.start).total_seconds() / 60, 3),
            "cpu_minutes": round(self.offset_cpu + (_cpu_seconds() - self.start_cpu) / 60, 3),
            "lr": trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None,
        }
        for k in CURVE_COLUMNS[5:]:
            row[k] = _scalar(m.get(k, cb.get(k)))
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        score = row.get("val_miou")
        if score is not None and score > self.best:
            self.best = score
            full = m.get("_val_full", {})
            self.best_metrics = {"epoch": row["epoch"], **{k: v for k, v in row.items() if v is not None and k != "lr"}, "validation": full}
            if m.get("_target_full"):
                self.best_metrics["target"] = m["_target_full"]
            meta = dict(self.metadata, metrics=_headline(self.best_metrics))
            with pl_module.deployed():  # type: ignore[attr-defined]
                save_model_file(self.out / "model.pt", pl_module.model, meta)  # type: ignore[attr-defined]
            _write_json(self.out / "best_metrics.json", self.best_metrics)
        # Curves last: a row in curves.csv means this epoch's model and best metrics are on disk.
        write_curves(self.rows, self.out / "curves.csv")


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("epoch", "val_accuracy", "val_miou", "val_f1", "target_accuracy", "target_miou", "source_energy", "target_energy")
    return {k: m[k] for k in keys if m.get(k) is not None}


class SaveOnInterrupt(L.Callback):
    """Write the last checkpoint when training is interrupted (SIGTERM/Ctrl-C), so a restart resumes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (Cancelled, KeyboardInterrupt)):
            with atomic_output(self.path) as tmp:
                trainer.save_checkpoint(tmp)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up chatter (GPU/TPU lines, tips); keep warnings and errors."""
    names = (
        "lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.seed",
        "lightning.pytorch.trainer.connectors.signal_connector", "lightning.pytorch.trainer.connectors.checkpoint_connector",
    )
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def write_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the per-epoch curve table as CSV (atomically)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r[k]) for k in CURVE_COLUMNS})


def _read_curves(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]
    for r in rows:  # keep counters integers, so a resumed run writes "3", not "3.0"
        for k in ("epoch", "step"):
            if r.get(k) is not None:
                r[k] = int(r[k])
    return rows


def _write_json(path: Path, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def _emit_notices(scenes: list[Scene]) -> None:
    for notice in dict.fromkeys(s.notice for s in scenes if s.notice):
        warnings.warn(notice)


def load_training_scenes(cfg: TrainConfig, classes: ClassTable) -> tuple[list[Scene], list[Scene], list[int]]:
    """Read, pair and split the labelled images; every image is read with the same bands.

    The bands are the config's ``bands``, else every image band of the first image; each image
    goes through the one band policy (:func:`jess_geo.bands.resolve_bands`).
    """
    if not cfg.images or not cfg.masks:
        raise ConfigError("Training needs --images and --masks (folders of images and their labels, paired by file stem).")
    resolution = {"gsd": cfg.gsd, "photo_scale": cfg.photo_scale}
    pairs = pair_files(cfg.images, cfg.masks)
    if cfg.val_images:
        train_pairs, val_pairs = pairs, pair_files(cfg.val_images, cfg.val_masks or cfg.masks)
    else:
        train_pairs, val_pairs = split_files(pairs, cfg.val_fraction, cfg.seed)
    bands = list(cfg.bands) if cfg.bands else inspect_raster(train_pairs[0][0]).data_bands
    train = [load_scene(i, l, classes, bands, resolution, cfg.label_field) for i, l in train_pairs]
    val = [load_scene(i, l, classes, bands, resolution, cfg.label_field) for i, l in val_pairs]
    _emit_notices(train + val)
    if not val:
        warnings.warn("Only one labelled image: validating on the training image (metrics will be optimistic).")
        val = train
    return train, val, bands


def load_target_scenes(cfg: TrainConfig, classes: ClassTable, bands: list[int]) -> list[Scene]:
    """The target-domain images (with labels when --target-masks is given, for metrics only), same bands."""
    if not cfg.target_images:
        raise ConfigError("method jess needs --target-images, a folder of unlabelled images from the new camera.")
    resolution = {"gsd": cfg.gsd, "photo_scale": cfg.photo_scale}
    if cfg.target_masks:
        pairs = pair_files(cfg.target_images, cfg.target_masks)
        scenes = [load_scene(i, l, classes, bands, resolution, cfg.label_field) for i, l in pairs]
    else:
        scenes = [load_scene(p, None, None, bands, resolution) for p in list_rasters(cfg.target_images, "target images")]
    _emit_notices(scenes)
    return scenes


def run_training(
    cfg: TrainConfig,
    progress_bar: bool = True,
    init: LoadedModel | None = None,
    adaptation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or, with ``init``, fine-tune) a model; writes model.pt, metrics.json, curves.csv/png."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if init is not None:
        classes = ClassTable.from_list(init.metadata["classes"])
        cfg.bands = list(init.metadata["bands"])
        cfg.gsd = init.metadata["resolution"].get("gsd")
        cfg.photo_scale = init.metadata["resolution"].get("photo_scale", cfg.photo_scale)
    else:
        if not cfg.classes:
            raise ConfigError("Training needs --classes, a JSON or YAML class table (id, name, colour).")
        classes = load_class_table(cfg.classes)
    check_dir_creatable(cfg.output_dir)  # before minutes of data loading, not after
    train, val, bands = load_training_scenes(cfg, classes)
    resolution = {"gsd": cfg.gsd, "photo_scale": cfg.photo_scale}
    target = load_target_scenes(cfg, classes, bands) if (cfg.method == "jess" or cfg.target_images) else []
    if adaptation is None and cfg.method == "jess":
        adaptation = {
            "method": "jess",
            "target_images": [str(s.info.path) for s in target],
            "lambda": cfg.energy_weight,
            "batchnorm": cfg.jess_batchnorm,
            "epochs": cfg.epochs,
        }
    out = ensure_dir(cfg.output_dir)

    norm = dict(init.metadata["normalization"]) if init is not None else compute_stats(train, seed=cfg.seed)
    arch = (
        init.metadata["architecture"]
        if init is not None
        else architecture_dict(cfg.encoder, len(bands), len(classes), cfg.decoder_channels)
    )
    model = build_model(arch)
    weights_note = "from model file"
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    else:
        from jess_geo.models.pretrained import load_pretrained_encoder

        weights_note = load_pretrained_encoder(model, cfg.encoder, cfg.encoder_weights)

    train_ds = SceneDataset(train, norm, min_extent=cfg.crop_size)
    val_ds = SceneDataset(val, norm, min_extent=cfg.val_crop)
    steps_per_epoch = max(1, cfg.samples_per_epoch // cfg.batch_size)
    loader = train_loader(train_ds, cfg.crop_size, cfg.batch_size, steps_per_epoch * cfg.batch_size, cfg.seed)
    val_loaders = [grid_loader(val_ds, cfg.val_crop, cfg.val_crop, 2)]
    target_loader = None
    if target:
        target_ds = SceneDataset(target, norm, min_extent=cfg.crop_size)
        if cfg.method == "jess":
            target_loader = train_loader(target_ds, cfg.crop_size, max(1, cfg.batch_size // 2), 10**6, cfg.seed + 7)
        val_loaders.append(grid_loader(SceneDataset(target, norm, min_extent=cfg.val_crop), cfg.val_crop, cfg.val_crop, 2))

    task = SegmentationTask(
        model,
        classes.names,
        lr=cfg.lr,
        optimizer=cfg.optimizer,
        weight_decay=cfg.weight_decay,
        scheduler=cfg.scheduler,
        warmup_steps=cfg.warmup_epochs * steps_per_epoch,
        total_steps=cfg.epochs * steps_per_epoch,
        augment=AugmentConfig(cfg.flips, cfg.rotations, cfg.color_noise, cfg.brightness, cfg.contrast, cfg.scale_jitter),
        target_loader=target_loader,
        energy_weight=cfg.energy_weight if cfg.method == "jess" else 0.0,
        energy_reg=cfg.energy_reg,
        seed=cfg.seed,
        time_budget_s=cfg.max_minutes * 60 * 0.97 if cfg.max_minutes else None,
        batchnorm=cfg.jess_batchnorm,
    )

    metadata: dict[str, Any] = {
        "jess_geo_version": jess_geo.__version__,
        "architecture": arch,
        "bands": bands,
        "normalization": norm,
        "classes": classes.to_list(),
        "ignore_index": 255,
        "resolution": resolution,
        "tile_size": cfg.tile_size,
        "overlap": cfg.overlap,
        "training": dict(cfg.to_dict(), encoder_weights_loaded=weights_note),
        "provenance": {
            "train_images": [str(s.info.path) for s in train],
            "val_images": [str(s.info.path) for s in val],
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
        "adaptation": adaptation,
    }
    if target:
        metadata["provenance"]["target_images"] = [str(s.info.path) for s in target]
    if init is not None and init.metadata.get("provenance"):
        metadata["provenance"]["base_model"] = init.metadata["provenance"]

    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    run_key = {k: v for k, v in cfg.to_dict().items() if k not in ("epochs", "max_minutes", "accelerator", "devices")}
    # A fine-tuning of another base model (or to other target images) must not resume this run.
    run_key["adaptation"] = {k: v for k, v in adaptation.items() if k != "epochs"} if adaptation else None
    state_file = out / "run_config.json"
    resume = last.is_file() and state_file.is_file() and json.loads(state_file.read_text()) == run_key
    rows = _read_curves(out / "curves.csv") if resume else []
    best = max((r["val_miou"] for r in rows if r.get("val_miou") is not None), default=-1.0)
    if not ((out / "model.pt").is_file() and (out / "best_metrics.json").is_file()):
        best = -1.0  # no best model on disk yet: the next validation writes one
    if not resume:
        for stale in (last, out / "curves.csv", out / "best_metrics.json"):
            stale.unlink(missing_ok=True)
        _write_json(state_file, run_key)

    accelerator = cfg.accelerator
    precision: Any = cfg.precision
    if precision == "auto":
        gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        precision = "16-mixed" if gpu else "32-true"
    recorder = RunRecorder(out, metadata, rows, best)
    if resume and best > -1.0:  # the best epoch so far may stay the best: keep its metrics
        recorder.best_metrics = json.loads((out / "best_metrics.json").read_text())
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0, every_n_epochs=1)
    with _quiet_lightning():  # "GPU available", tips: start-up chatter on stderr
        trainer = L.Trainer(
            max_epochs=cfg.epochs,
            max_time=dt.timedelta(minutes=cfg.max_minutes) if cfg.max_minutes else None,
            accelerator=accelerator,
            devices=cfg.devices,
            precision=precision,
            logger=False,
            callbacks=[recorder, checkpoint, SaveOnInterrupt(last)],
            num_sanity_val_steps=0,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            deterministic=False,
        )
    with warnings.catch_warnings(), _quiet_lightning():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*num_workers.*")
        warnings.filterwarnings("ignore", ".*treespec.*")
        # A SIGTERM mid-epoch saves a mid-epoch checkpoint; resuming restarts that epoch's crops.
        warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")
        try:
            trainer.fit(task, train_dataloaders=loader, val_dataloaders=val_loaders, ckpt_path=str(last) if resume else None)
        except MisconfigurationException as exc:
            if "restored a checkpoint" in str(exc):
                raise ConfigError(
                    f"{out} holds a finished run of more epochs than --epochs {cfg.epochs}; raise --epochs to continue it or choose a new --output-dir."
                ) from None
            raise

    final = recorder.best_metrics
    result = {
        "model": str(out / "model.pt"),
        "best_epoch": final.get("epoch"),
        "epochs_run": trainer.current_epoch,
        "minutes": recorder.rows[-1]["minutes"] if recorder.rows else 0.0,
        "encoder_weights": weights_note,
        **_headline(final),
        "validation": final.get("validation"),
        "target": final.get("target"),
        "config": cfg.to_dict(),
    }
    _write_json(out / "metrics.json", result)
    if recorder.rows:
        plot_curves(recorder.rows, out / "curves.png")
    if final.get("validation"):
        v = final["validation"]
        plot_confusion(v["confusion_matrix"], v["class_names"], out / "confusion_matrix.png", "validation (working resolution)")
    return result
