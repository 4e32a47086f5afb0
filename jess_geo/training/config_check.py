"""Type and range checks of training settings: one line naming the setting and what it needs.

Float settings accept numeric strings, since YAML 1.1 (PyYAML) reads ``lr: 1e-3`` as the
string "1e-3"; every other type must be given as that type.
"""

from __future__ import annotations

import math
import types
import typing
from typing import TYPE_CHECKING, Any, Callable

from jess_geo.errors import ConfigError

if TYPE_CHECKING:
    from jess_geo.training.config import TrainConfig

# Training losses (jess_geo.training.losses): plain, class-weighted, plus a region term, focal.
LOSSES = ("ce", "wce", "ce+dice", "ce+lovasz", "focal", "wfocal")

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _describe(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return text + (" or null" if type(None) in args else "")
    if typing.get_origin(hint) is list:
        return "a list of integers such as [1, 2, 3]"
    return _NAMES.get(hint, str(hint))


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` or raise ValueError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a)
            except ValueError:
                pass
        raise ValueError(value)
    if origin is list:
        if not isinstance(value, list) or not value:
            raise ValueError(value)
        return [_coerce(v, args[0]) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        return _as_float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    raise ValueError(value)


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    try:
        number = float(value)
    except ValueError:
        raise ValueError(value) from None
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def check_type(name: str, value: Any, hint: Any) -> Any:
    """``value`` converted to ``hint``; ConfigError naming ``name`` and the expected type otherwise."""
    try:
        return _coerce(value, hint)
    except ValueError:
        raise ConfigError(
            f"Invalid training setting {name}: expected {_describe(hint)}, got {value!r}; fix it in the config or on the command line."
        ) from None


def _multiple_of_32(v: int) -> bool:
    return v >= 32 and v % 32 == 0


def _devices_ok(v: int | str) -> bool:
    """A count (1, 2, ...; -1 = all), "auto", or device ids with a comma ("0,1" or "1,")."""
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if isinstance(v, int):
        return v >= 1 or v == -1
    ids = [p.strip() for p in v.split(",") if p.strip()]
    return v == "auto" or ("," in v and bool(ids) and all(p.isdigit() for p in ids))


# (section, field, check, what it needs)
RULES: list[tuple[str | None, str, Callable[[Any], bool], str]] = [
    (None, "method", lambda v: v in ("baseline", "jess"), "baseline or jess"),
    (None, "seed", lambda v: 0 <= v < 2**32, "an integer from 0 to 4294967295"),
    ("data", "val_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data", "bands", lambda v: v is None or all(b >= 1 for b in v), "1-based band numbers such as [1, 2, 3]"),
    ("data", "gsd", lambda v: v is None or v > 0, "positive"),
    ("data", "photo_scale", lambda v: 0 < v <= 4, "in (0, 4]"),
    ("data", "crop_size", _multiple_of_32, "a multiple of 32 (e.g. 256)"),
    ("data", "val_crop", _multiple_of_32, "a multiple of 32 (e.g. 512)"),
    ("data", "batch_size", lambda v: v >= 1, "at least 1"),
    ("data", "samples_per_epoch", lambda v: v >= 1, "at least 1"),
    ("data", "balance", lambda v: 0 <= v <= 1, "in [0, 1] (the share of crops centred on a rare class)"),
    ("model", "decoder_channels", lambda v: len(v) == 5 and all(c >= 1 for c in v), "five positive integers such as [128, 64, 32, 16, 16]"),
    ("model", "tile_size", _multiple_of_32, "a multiple of 32 (e.g. 512)"),
    ("model", "overlap", lambda v: v >= 0, "0 or more"),
    ("optim", "optimizer", lambda v: v in ("adam", "adamw", "sgd"), "adam, adamw or sgd"),
    ("optim", "lr", lambda v: v > 0, "positive"),
    ("optim", "weight_decay", lambda v: v >= 0, "0 or more"),
    ("optim", "scheduler", lambda v: v in ("cosine", "none"), "cosine or none"),
    ("optim", "warmup_epochs", lambda v: v >= 0, "0 or more"),
    ("loss", "name", lambda v: v in LOSSES, ", ".join(LOSSES)),
    ("loss", "focal_gamma", lambda v: 0 <= v <= 10, "in [0, 10]"),
    ("loss", "region_weight", lambda v: v >= 0, "0 or more"),
    ("loss", "weight_clip", lambda v: v >= 1, "at least 1"),
    ("augment", "color_noise", lambda v: v >= 0, "0 or more"),
    ("augment", "brightness", lambda v: v >= 0, "0 or more"),
    ("augment", "contrast", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("augment", "scale_jitter", lambda v: 0 <= v < 1, "in [0, 1) (0.2 zooms by 1/1.2 to 1.2)"),
    ("jess", "energy_weight", lambda v: v >= 0, "0 or more (lambda)"),
    ("jess", "energy_reg", lambda v: v >= 0, "0 or more"),
    ("jess", "batchnorm", lambda v: v in ("mixed", "source", "split", "passes"), "mixed, source, split or passes"),
    ("jess", "energy", lambda v: v in ("pixel", "image"), "pixel or image"),
    ("jess", "margin", lambda v: v is None or v >= 0, "empty (the open-ended gap) or 0 or more"),
    ("trainer", "epochs", lambda v: v >= 1, "at least 1"),
    ("trainer", "max_minutes", lambda v: v is None or v > 0, "a positive number of minutes"),
    ("trainer", "accelerator", lambda v: v in ("auto", "cpu", "gpu", "cuda", "mps"), "auto, cpu, gpu, cuda or mps"),
    ("trainer", "devices", _devices_ok, "auto, a number of devices (1, 2, ...) or device ids such as 0,1"),
    ("trainer", "num_nodes", lambda v: v >= 1, "at least 1"),
    ("trainer", "strategy", lambda v: v in ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true"), "auto, ddp or ddp_spawn"),
    ("trainer", "precision", lambda v: v in ("auto", "32-true", "16-mixed", "bf16-mixed", "32", "16", "bf16"), "auto, 32-true, 16-mixed or bf16-mixed"),
]


def check_ranges(cfg: "TrainConfig", names: dict[str, str]) -> None:
    """Raise ConfigError for the first value that cannot work, naming the setting as the user wrote it."""
    for section, name, ok, needs in RULES:
        holder = cfg if section is None else getattr(cfg, section)
        value = getattr(holder, name)
        dotted = name if section is None else f"{section}.{name}"
        if not ok(value):
            shown = names.get(dotted, dotted)
            raise ConfigError(f"Invalid training setting {shown}: must be {needs}, got {value!r}; fix it in the config or on the command line.")
    if cfg.model.overlap * 2 >= cfg.model.tile_size:
        raise ConfigError(
            f"Invalid training setting overlap: must be under half of tile_size ({cfg.model.tile_size}), got {cfg.model.overlap}; lower it."
        )
