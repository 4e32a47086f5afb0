"""`jess-geo adapt MODEL`: fine-tune an existing model to a new camera or season with JESS."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import click

from jess_geo.cli.train import print_summary, training_options

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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _config_keys(config: str | None) -> set[str]:
    """The settings a YAML config file names (load_config reports a bad file properly later)."""
    if not config or not Path(config).is_file():
        return set()
    import yaml

    try:
        data = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return set()
    return set(data) if isinstance(data, dict) else set()


@click.command("adapt")
@click.argument("model", type=click.Path(dir_okay=False))
@training_options
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON.")
def command(model: str, config: str | None, quiet: bool, as_json: bool, **flags: Any) -> None:
    """Fine-tune MODEL on its labelled source images plus unlabelled --target-images (JESS).

    The new DIR/model.pt keeps MODEL's classes, bands, normalisation and resolution, and records
    in its metadata what it was adapted to (target files, lambda, epochs, base model); `jess-geo
    info` shows it. Defaults: the base model's training recipe, lr 2e-4, 10 epochs, lambda 0.01.
    """
    from jess_geo.errors import ConfigError
    from jess_geo.io.raster import list_rasters
    from jess_geo.models.modelfile import load_model_file
    from jess_geo.training.config import load_config
    from jess_geo.training.train import run_training

    base = load_model_file(model)
    if not flags.get("target_images"):
        raise ConfigError("adapt needs --target-images, a folder of unlabelled images from the new camera or season.")
    if not flags.get("images") or not flags.get("masks"):
        raise ConfigError("adapt needs --images and --masks, the labelled source images (as used to train MODEL).")
    named = _config_keys(config) | {k for k, v in flags.items() if v is not None}
    recipe = base.metadata.get("training") or {}
    defaults = {k: recipe[k] for k in INHERITED if k in recipe}
    defaults.update(ADAPT_DEFAULTS)
    overrides = {k: v for k, v in defaults.items() if k not in named}
    overrides.update({k: v for k, v in flags.items() if v is not None})
    cfg = load_config(config, overrides)
    if cfg.method != "jess":
        raise ConfigError("adapt fine-tunes with JESS; remove `method: baseline` from the config.")
    targets = list_rasters(cfg.target_images, "target images")
    model_path = Path(model)
    adaptation = {
        "method": "jess",
        "target_images": [str(p.resolve()) for p in targets],
        "target_folder": str(Path(cfg.target_images).resolve()),
        "lambda": cfg.energy_weight,
        "batchnorm": cfg.jess_batchnorm,
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "source_images": str(Path(cfg.images).resolve()),  # type: ignore[arg-type]
        "base_model": {"name": model_path.name, "path": str(model_path.resolve()), "sha256": _sha256(model_path)},
        "previous": base.metadata.get("adaptation"),
    }
    result = run_training(cfg, progress_bar=not quiet, init=base, adaptation=adaptation)
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "config"}))
    else:
        print_summary(result)
        click.echo(f"adapted:  to {len(targets)} target image(s) in {cfg.target_images}, lambda {cfg.energy_weight}, {cfg.epochs} epochs")
