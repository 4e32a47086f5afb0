"""Fine-tune a model file to a new camera or season with JESS: recipe, record, one call.

The new model keeps the base model's classes, bands, normalisation and resolution, and records
what it was adapted to (target files, lambda, epochs, base model and its sha256), and the base
model's energies on the run's source validation and target data before the first step
(``before``), so a user can compare them with the adapted model's (``metrics``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Any, Callable

from jess_geo.errors import ConfigError
from jess_geo.io.raster import list_rasters
from jess_geo.models.modelfile import LoadedModel, load_model_file
from jess_geo.training.config import TrainConfig, flatten, load_config, read_config_file

# Settings taken over from the base model's own training run (its recipe), unless the config
# file or a flag says otherwise (the seed too, so the validation split is the base model's).
# Data paths, epochs and learning rate are not inherited.
INHERITED = (
    "crop_size", "batch_size", "optimizer", "weight_decay", "scheduler", "samples_per_epoch", "flips",
    "rotations", "color_noise", "brightness", "contrast", "val_crop", "val_fraction", "energy_reg",
    "precision", "seed",
)
# Fine-tuning defaults: a pretrained start needs a lower learning rate and fewer epochs.
ADAPT_DEFAULTS: dict[str, Any] = {"method": "jess", "lr": 2e-4, "epochs": 10, "warmup_epochs": 0}
# The figures compared before and after adaptation (the names of curves.csv's columns).
SHIFT_KEYS = ("source_energy", "target_energy", "energy_gap", "val_miou", "target_miou")


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inherited_config(base: dict[str, Any], config: str | Path | None, flags: dict[str, Any],
                     defaults: dict[str, Any], dropped: Any = ()) -> TrainConfig:
    """Base model's recipe < ``defaults`` < config file < flags (flags in ``dropped`` left out)."""
    named = set(flatten(read_config_file(config))) if config else set()
    named |= {k for k, v in flags.items() if v is not None}
    recipe = flatten(base.get("training") or {})
    merged = {k: recipe[k] for k in INHERITED if k in recipe}
    merged.update(defaults)
    overrides = {k: v for k, v in merged.items() if k not in named}
    overrides.update({k: v for k, v in flags.items() if v is not None and k not in dropped})
    return load_config(config, overrides)


def adapt_config(base: dict[str, Any], config: str | Path | None, flags: dict[str, Any]) -> TrainConfig:
    """The fine-tuning config: base recipe < adapt defaults < config file < flags; data as the base model's."""
    if not flags.get("target_images"):
        raise ConfigError("adapt needs --target-images, a folder of unlabelled images from the new camera or season.")
    if not flags.get("images") or not flags.get("masks"):
        raise ConfigError("adapt needs --images and --masks, the labelled source images (as used to train MODEL).")
    cfg = inherited_config(base, config, flags, ADAPT_DEFAULTS)
    if cfg.method != "jess":
        raise ConfigError("adapt fine-tunes with JESS; remove `method: baseline` from the config.")
    cfg.data.bands = list(base["bands"])
    cfg.data.gsd = base["resolution"].get("gsd")
    cfg.data.photo_scale = base["resolution"].get("photo_scale", cfg.data.photo_scale)
    return cfg


def adaptation_record(cfg: TrainConfig, model_path: Path, base: dict[str, Any]) -> dict[str, Any]:
    """What the adapted model records about its adaptation (``jess-geo info`` shows it)."""
    assert cfg.data.target_images is not None and cfg.data.images is not None
    targets = list_rasters(cfg.data.target_images, "target images")
    return {
        "method": "jess",
        "target_images": [str(p.resolve()) for p in targets],
        "target_folder": str(Path(cfg.data.target_images).resolve()),
        "lambda": cfg.jess.energy_weight,
        "batchnorm": cfg.jess.batchnorm,
        "epochs": cfg.trainer.epochs,
        "lr": cfg.optim.lr,
        "source_images": str(Path(cfg.data.images).resolve()),
        "base_model": {"name": model_path.name, "path": str(model_path.resolve()), "sha256": sha256(model_path)},
        "previous": base.get("adaptation"),
    }


def _no_notice(message: str) -> None:
    """Notices about the images are left to the training run, which reads them again."""


def base_figures(cfg: TrainConfig, base: LoadedModel) -> dict[str, float]:
    """The base model's validation figures on this run's source validation and target data.

    The same split, windows, BatchNorm handling and measurement as the run's per-epoch validation
    (curves.csv), before any training step; on one device (each rank of a distributed run
    measures the same figures by itself).
    """
    from jess_geo.classes import ClassTable
    from jess_geo.data.datamodule import LoaderSettings, SceneDataModule
    from jess_geo.models.factory import build_model
    from jess_geo.training.loading import load_run_scenes
    from jess_geo.training.task import SegmentationTask
    from jess_geo.training.trainer import build_trainer, quiet_lightning

    meta = base.metadata
    classes = ClassTable.from_list(meta["classes"])
    scenes = load_run_scenes(cfg.data, classes, seed=cfg.seed, jess=True, notice=_no_notice)
    model = build_model(meta["architecture"])
    model.load_state_dict(base.model.state_dict())
    d = cfg.data
    dm = SceneDataModule(scenes.train, scenes.val, scenes.target, dict(meta["normalization"]),
                         LoaderSettings(d.crop_size, d.val_crop, d.batch_size, d.samples_per_epoch, cfg.seed))
    task = SegmentationTask(model, classes.names, lr=cfg.optim.lr, target_loader=dm.target_dataloader,
                            batchnorm=cfg.jess.batchnorm)
    trainer = build_trainer(dataclasses.replace(cfg.trainer, devices=1, num_nodes=1, strategy="auto"), [], False)
    with warnings.catch_warnings(), quiet_lightning():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*treespec.*")
        trainer.validate(task, datamodule=dm, verbose=False)
    return {k: float(task.epoch_metrics[k]) for k in SHIFT_KEYS if task.epoch_metrics.get(k) is not None}


def shift(before: dict[str, float], result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The figures before adaptation (the base model) and after (the saved adapted model)."""
    after = {k: float(result[k]) for k in SHIFT_KEYS if result.get(k) is not None}
    if "source_energy" in after and "target_energy" in after:
        after["energy_gap"] = after["target_energy"] - after["source_energy"]
    return {"before": before, "after": after}


def run_adaptation(
    model: str | Path, config: str | Path | None, flags: dict[str, Any], *, overwrite: bool = False,
    progress_bar: bool = True, notice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` with JESS; returns run_training's result plus ``adapted`` (targets, lambda,
    epochs, and the ``before``/``after`` figures of :data:`SHIFT_KEYS`)."""
    from jess_geo.training.train import run_training

    model_path = Path(model)
    base: LoadedModel = load_model_file(model_path)
    cfg = adapt_config(base.metadata, config, flags)
    record = adaptation_record(cfg, model_path, base.metadata)
    record["before"] = base_figures(cfg, base)
    result = run_training(cfg, progress_bar=progress_bar, init=base, adaptation=record, overwrite=overwrite,
                          inputs=[model_path], notice=notice)
    result["adapted"] = {"targets": len(record["target_images"]), "folder": cfg.data.target_images,
                         "lambda": cfg.jess.energy_weight, "epochs": cfg.trainer.epochs,
                         **shift(record["before"], result)}
    return result
