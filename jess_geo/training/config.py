"""Training configuration: nested sections read from YAML, with command-line overrides.

A config file may be nested (``optim: {lr: 1.0e-3}``) or flat (``lr: 1.0e-3``, the layout of
configs written before the sections existed and of the ``training`` record in older model
files); both load to the same :class:`TrainConfig`. Every value is type-checked (one line
naming the setting and the type it needs) and range-checked before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jess_geo.data.augment import AugmentConfig
from jess_geo.errors import ConfigError
from jess_geo.models.factory import DEFAULT_ENCODER
from jess_geo.training.config_check import check_ranges, check_type


@dataclass
class DataConfig:
    """Where the images and labels are, how they are read, and the crops drawn from them."""

    images: str | None = None
    masks: str | None = None
    classes: str | None = None
    val_images: str | None = None
    val_masks: str | None = None
    val_fraction: float = 0.2
    bands: list[int] | None = None
    label_field: str | None = None
    gsd: float | None = None
    photo_scale: float = 0.5
    target_images: str | None = None
    target_masks: str | None = None
    crop_size: int = 256
    batch_size: int = 8
    samples_per_epoch: int = 128
    val_crop: int = 512
    balance: float = 0.0


@dataclass
class ModelConfig:
    """The network and how the saved model tiles scenes at prediction time."""

    encoder: str = DEFAULT_ENCODER
    encoder_weights: str | None = "imagenet"
    decoder_channels: list[int] = field(default_factory=lambda: [128, 64, 32, 16, 16])
    tile_size: int = 512
    overlap: int = 64


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_epochs: int = 1


@dataclass
class LossConfig:
    """The training loss (``jess_geo.training.losses``): ``name`` is ce, wce (class weights from the
    training labels), ce+dice, ce+lovasz (``region_weight`` times the region term), focal or wfocal."""

    name: str = "ce"
    focal_gamma: float = 2.0
    region_weight: float = 1.0
    weight_clip: float = 10.0


@dataclass
class JessConfig:
    """The JESS energy term (used when ``method`` is jess)."""

    energy_weight: float = 0.01
    energy_reg: float = 1e-3
    batchnorm: str = "split"
    energy: str = "pixel"
    margin: float | None = None


@dataclass
class TrainerConfig:
    """How long and where the Lightning trainer runs."""

    epochs: int = 30
    max_minutes: float | None = None
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"


SECTIONS: dict[str, type] = {
    "data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "loss": LossConfig,
    "augment": AugmentConfig, "jess": JessConfig, "trainer": TrainerConfig,
}
TOP_LEVEL = ("output_dir", "method", "seed")
# Flat names that are not the field's own name (flat configs and command-line flags).
FLAT_ALIASES = {"jess_batchnorm": ("jess", "batchnorm"), "loss": ("loss", "name")}


@dataclass
class TrainConfig:
    """Every setting of a training run; defaults are the measured CPU recipe (see README)."""

    output_dir: str = "runs/model"
    method: str = "baseline"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    jess: JessConfig = field(default_factory=JessConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able nested copy (sections as dicts)."""
        return dataclasses.asdict(self)

    def replace(self, **flat: Any) -> "TrainConfig":
        """A checked copy with some settings changed, named flat (``lr=...``) or dotted-free."""
        return config_from_mapping(merge(self.to_dict(), flat))


def _flat_location(key: str) -> tuple[str | None, str] | None:
    """(section or None for top level, field) of a flat setting name, or None if unknown."""
    if key in TOP_LEVEL:
        return None, key
    if key in FLAT_ALIASES:
        return FLAT_ALIASES[key]
    for name, cls in SECTIONS.items():
        if key in {f.name for f in dataclasses.fields(cls)}:
            return name, key
    return None


def _known_names() -> list[str]:
    names = list(TOP_LEVEL) + list(FLAT_ALIASES)
    for name, cls in SECTIONS.items():
        names += [f"{name}.{f.name}" for f in dataclasses.fields(cls)]
    return names


def merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``base`` (nested) with ``updates`` (nested, flat, or mixed) applied; unknown names refused."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in updates.items():
        if key in SECTIONS and isinstance(value, dict):
            section = out.setdefault(key, {})
            for sub, v in value.items():
                if sub not in {f.name for f in dataclasses.fields(SECTIONS[key])}:
                    raise ConfigError(f"Unknown training setting {key}.{sub}; valid settings are: {', '.join(_known_names())}.")
                section[sub] = v
            continue
        where = _flat_location(key)
        if where is None:
            raise ConfigError(f"Unknown training setting(s) {[key]}; valid settings are: {', '.join(_known_names())}.")
        section_name, name = where
        if section_name is None:
            out[name] = value
        else:
            out.setdefault(section_name, {})[name] = value
    return out


def flatten(settings: dict[str, Any]) -> dict[str, Any]:
    """Flat ``{name: value}`` of a nested (or already flat) settings record, e.g. a model's ``training``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if key in SECTIONS and isinstance(value, dict):
            for sub, v in value.items():
                alias = next((a for a, loc in FLAT_ALIASES.items() if loc == (key, sub)), sub)
                flat[alias] = v
        else:
            flat[key] = value
    return flat


def _build(cls: type, values: dict[str, Any], prefix: str, names: dict[str, str]) -> Any:
    kwargs = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in values:
            label = names.get(f"{prefix}{f.name}", f"{prefix}{f.name}")
            kwargs[f.name] = check_type(label, values[f.name], hints[f.name])
    return cls(**kwargs)


def _hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def config_from_mapping(data: dict[str, Any], names: dict[str, str] | None = None) -> TrainConfig:
    """A checked TrainConfig from a nested or flat mapping; ``names`` maps dotted names to how the user wrote them."""
    nested = merge({}, data)
    names = names or {}
    top_hints = _hints(TrainConfig)
    top = {k: check_type(names.get(k, k), nested[k], top_hints[k]) for k in TOP_LEVEL if k in nested}
    sections = {
        name: _build(cls, nested.get(name) or {}, f"{name}.", names) for name, cls in SECTIONS.items()
    }
    cfg = TrainConfig(**top, **sections)
    check_ranges(cfg, names)
    return cfg


def _user_names(data: dict[str, Any]) -> dict[str, str]:
    """Dotted setting name -> the name as the user wrote it (flat names stay flat in messages)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            continue
        where = _flat_location(key)
        if where is not None and where[0] is not None:
            out[f"{where[0]}.{where[1]}"] = key
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML config file (ConfigError for a missing or malformed file)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file {p} does not exist; check the path given to --config.")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ConfigError(f"Config file {p} is not valid YAML; fix its syntax.") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"Config file {p} must hold a mapping of settings (key: value).")
    return loaded


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the YAML file, then the non-None ``overrides`` (command-line flags, flat names)."""
    data = read_config_file(path) if path is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    merged = merge(merge({}, data), given)
    names = {**_user_names(data), **_user_names(given)}
    return config_from_mapping(merged, names)
