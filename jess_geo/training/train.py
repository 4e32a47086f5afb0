"""Run a training: check the run folder, load scenes, build the network, fit, write the results.

Writes ``model.pt`` (best by validation mIoU), ``metrics.json``, ``curves.csv/png`` and the
confusion-matrix PNG into the output folder, on global rank zero only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import lightning as L
import torch

from jess_geo.classes import ClassTable, load_class_table
from jess_geo.data.datamodule import LoaderSettings, SceneDataModule
from jess_geo.data.normalization import compute_stats
from jess_geo.errors import Cancelled, ConfigError
from jess_geo.models.factory import architecture_dict, build_model
from jess_geo.models.modelfile import LoadedModel
from jess_geo.shift.reference import record_feature_stats
from jess_geo.training.config import TrainConfig
from jess_geo.training.loading import RunScenes, load_run_scenes
from jess_geo.training.metadata import jess_record, model_metadata
from jess_geo.training.plots import plot_confusion, plot_curves
from jess_geo.training.recorder import RunRecorder, headline, write_json
from jess_geo.training.resume import (
    PrepareRunFolder, RunFolder, SaveOnInterrupt, checkpoint_callback, plan_run_folder, run_key, stop_message,
)
from jess_geo.training.losses import make_criterion
from jess_geo.training.task import SegmentationTask
from jess_geo.training.trainer import build_trainer, fit


@dataclass
class Network:
    """The network to train, its architecture, input normalisation and where its weights came from."""

    model: torch.nn.Module
    architecture: dict[str, Any]
    normalization: dict[str, list[float]]
    weights_note: str


def _classes(cfg: TrainConfig, init: LoadedModel | None) -> ClassTable:
    if init is not None:
        return ClassTable.from_list(init.metadata["classes"])
    if not cfg.data.classes:
        raise ConfigError("Training needs --classes, a JSON or YAML class table (id, name, colour).")
    return load_class_table(cfg.data.classes)


def _network(cfg: TrainConfig, scenes: RunScenes, classes: ClassTable, init: LoadedModel | None) -> Network:
    if init is not None:
        model = build_model(init.metadata["architecture"])
        model.load_state_dict(init.model.state_dict())
        return Network(model, init.metadata["architecture"], dict(init.metadata["normalization"]), "from model file")
    from jess_geo.models.pretrained import load_pretrained_encoder

    arch = architecture_dict(cfg.model.encoder, len(scenes.bands), len(classes), cfg.model.decoder_channels)
    model = build_model(arch)
    note = load_pretrained_encoder(model, cfg.model.encoder, cfg.model.encoder_weights)
    return Network(model, arch, compute_stats(scenes.train, seed=cfg.seed), note)


def _task(cfg: TrainConfig, net: Network, classes: ClassTable, dm: SceneDataModule, world: int) -> SegmentationTask:
    steps = max(1, dm.steps_per_epoch // world)
    jess = cfg.method == "jess"
    return SegmentationTask(
        net.model, classes.names,
        lr=cfg.optim.lr, optimizer=cfg.optim.optimizer, weight_decay=cfg.optim.weight_decay, scheduler=cfg.optim.scheduler,
        warmup_steps=cfg.optim.warmup_epochs * steps, total_steps=cfg.trainer.epochs * steps,
        augment=cfg.augment,
        target_loader=dm.target_dataloader if jess else None,
        energy_weight=cfg.jess.energy_weight if jess else 0.0, energy_reg=cfg.jess.energy_reg,
        seed=cfg.seed,
        time_budget_s=cfg.trainer.max_minutes * 60 * 0.97 if cfg.trainer.max_minutes else None,
        batchnorm=cfg.jess.batchnorm, energy=cfg.jess.energy, margin=cfg.jess.margin,
        criterion=None if cfg.loss.name == "ce" else make_criterion(cfg.loss, dm.class_counts(len(classes.names))),
    )


def _fit(trainer: L.Trainer, task: SegmentationTask, dm: SceneDataModule, folder: RunFolder,
         recorder: RunRecorder, saver: SaveOnInterrupt, epochs: int) -> None:
    try:
        fit(trainer, task, dm, str(folder.last) if folder.resume else None, epochs)
    except (Cancelled, KeyboardInterrupt, SystemExit):
        if saver.stopped_by is None:  # Lightning exits on Ctrl-C after its callbacks ran; anything else is not a stop
            raise
        raise Cancelled(stop_message(folder, saver.stopped_by, recorder.best_metrics, saver.saved)) from None


def _finish(trainer: L.Trainer, folder: RunFolder, recorder: RunRecorder, cfg: TrainConfig, weights_note: str) -> dict[str, Any]:
    final = recorder.best_metrics
    out = folder.out
    result = {
        "model": str(out / "model.pt"),
        "best_epoch": final.get("epoch"),
        "epochs_run": trainer.current_epoch,
        "minutes": recorder.rows[-1]["minutes"] if recorder.rows else 0.0,
        "encoder_weights": weights_note,
        **headline(final),
        "validation": final.get("validation"),
        "target": final.get("target"),
        "config": cfg.to_dict(),
        "global_rank": trainer.global_rank,
    }
    if not trainer.is_global_zero:
        return result
    write_json(out / "metrics.json", {k: v for k, v in result.items() if k != "global_rank"})
    if recorder.rows:
        plot_curves(recorder.rows, out / "curves.png")
    if final.get("validation"):
        v = final["validation"]
        plot_confusion(v["confusion_matrix"], v["class_names"], out / "confusion_matrix.png", "validation (working resolution)")
    return result


def _inputs(cfg: TrainConfig) -> list[str | None]:
    d = cfg.data
    return [d.images, d.masks, d.val_images, d.val_masks, d.target_images, d.target_masks]


def run_training(
    cfg: TrainConfig,
    progress_bar: bool = True,
    init: LoadedModel | None = None,
    adaptation: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    notice: Callable[[str], None] | None = None,
    init_model: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train (or, with ``init``, fine-tune) a model; see the module docstring for what is written.

    ``init_model`` (name, path, sha256 of the model file ``init`` came from) is recorded in the
    metadata and makes a fine-tuning of another model file another run.

    The output folder is checked before any data is read: an input folder (or ``inputs``, e.g.
    the base model) is refused, and so is a folder holding another run's model.pt unless
    ``overwrite``. A folder holding this run's checkpoint resumes it.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    classes = _classes(cfg, init)
    key = run_key(cfg, adaptation)
    if init_model is not None:
        key["init_model"] = init_model["sha256"]
    folder = plan_run_folder(Path(cfg.output_dir), key, overwrite=overwrite,
                             inputs=[*_inputs(cfg), *inputs])
    load_kwargs = {"notice": notice} if notice else {}
    scenes = load_run_scenes(cfg.data, classes, seed=cfg.seed, jess=cfg.method == "jess", **load_kwargs)
    net = _network(cfg, scenes, classes, init)
    meta = model_metadata(cfg, scenes, architecture=net.architecture, normalization=net.normalization, classes=classes,
                          weights_note=net.weights_note, adaptation=adaptation or jess_record(cfg, scenes),
                          base=init.metadata if init is not None else None)
    if init_model is not None:
        meta["init_model"] = init_model
    d = cfg.data
    dm = SceneDataModule(scenes.train, scenes.val, scenes.target, net.normalization,
                         LoaderSettings(d.crop_size, d.val_crop, d.batch_size, d.samples_per_epoch, cfg.seed, balance=d.balance))
    recorder = RunRecorder(folder.out, meta, folder.rows, folder.best, folder.best_metrics)
    saver = SaveOnInterrupt(folder.last)
    trainer = build_trainer(cfg.trainer, [PrepareRunFolder(folder), recorder, checkpoint_callback(folder), saver], progress_bar)
    task = _task(cfg, net, classes, dm, trainer.world_size)
    _fit(trainer, task, dm, folder, recorder, saver, cfg.trainer.epochs)
    if trainer.is_global_zero:  # the training data's feature statistics, for `jess-geo check` (helper D)
        record_feature_stats(folder.out / "model.pt", scenes.train, net.normalization, cfg.model.tile_size)
    return _finish(trainer, folder, recorder, cfg, net.weights_note)
