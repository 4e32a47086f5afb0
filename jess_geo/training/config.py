"""Training configuration: a dataclass read from YAML, with command-line overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jess_geo.errors import ConfigError
from jess_geo.models.factory import DEFAULT_ENCODER


@dataclass
class TrainConfig:
    """Every setting of a training run; defaults are the measured CPU recipe (see README)."""

    images: str | None = None
    masks: str | None = None
    classes: str | None = None
    output_dir: str = "runs/model"
    val_images: str | None = None
    val_masks: str | None = None
    val_fraction: float = 0.2
    seed: int = 0
    bands: list[int] | None = None
    label_field: str | None = None
    gsd: float | None = None
    photo_scale: float = 0.5
    encoder: str = DEFAULT_ENCODER
    encoder_weights: str | None = "imagenet"
    decoder_channels: list[int] = field(default_factory=lambda: [128, 64, 32, 16, 16])
    crop_size: int = 256
    batch_size: int = 8
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_epochs: int = 1
    epochs: int = 30
    samples_per_epoch: int = 128
    flips: bool = True
    rotations: bool = True
    color_noise: float = 0.05
    brightness: float = 0.0
    contrast: float = 0.0
    scale_jitter: float = 0.0
    val_crop: int = 512
    tile_size: int = 512
    overlap: int = 64
    accelerator: str = "auto"
    devices: str = "auto"
    precision: str = "auto"
    max_minutes: float | None = None
    method: str = "baseline"
    target_images: str | None = None
    target_masks: str | None = None
    energy_weight: float = 0.01
    energy_reg: float = 1e-3
    jess_batchnorm: str = "split"

    def validate(self) -> None:
        """Raise ConfigError for values that cannot work."""
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.crop_size >= 32 and self.crop_size % 32 == 0, "crop_size must be a multiple of 32 (e.g. 256)"),
            (self.lr > 0, "lr must be positive"),
            (0 <= self.scale_jitter < 1, "scale_jitter must be in [0, 1) (0.2 zooms by 1/1.2 to 1.2)"),
            (0 < self.photo_scale <= 4, "photo_scale must be in (0, 4]"),
            (self.gsd is None or self.gsd > 0, "gsd must be positive"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (self.method in ("baseline", "jess"), "method must be baseline or jess"),
            (self.energy_weight >= 0, "energy_weight (lambda) must be >= 0"),
            (self.energy_reg >= 0, "energy_reg must be >= 0"),
            (self.jess_batchnorm in ("mixed", "source", "split"), "jess_batchnorm must be mixed, source or split"),
            (self.optimizer in ("adam", "adamw", "sgd"), "optimizer must be adam, adamw or sgd"),
            (self.scheduler in ("cosine", "none"), "scheduler must be cosine or none"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"Invalid training setting: {msg}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return dataclasses.asdict(self)


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the YAML file, then the non-None ``overrides`` (command-line flags)."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {p} does not exist; check the path given to --config.")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            raise ConfigError(f"Config file {p} is not valid YAML; fix its syntax.") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"Config file {p} must hold a mapping of settings (key: value).")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"Unknown training setting(s) {unknown}; valid settings are: {', '.join(sorted(known))}.")
    cfg = TrainConfig(**data)
    cfg.validate()
    return cfg
