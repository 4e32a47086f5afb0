"""The metadata of a model file, checked field by field before anything uses it (no torch).

A model file's JSON metadata decides which bands are read, how they are normalised, what the
classes are called and coloured, and how the scene is tiled. A hand-edited or damaged file
must fail here with one line naming the field, never later with a traceback or, worse, run
with nonsense (a std of zero, a class id no raster can hold).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from jess_geo.classes import IGNORE, check_class_name, parse_color
from jess_geo.errors import InputError, ModelFileError

__all__ = ["REQUIRED_KEYS", "validate_metadata"]

REQUIRED_KEYS = ("architecture", "bands", "normalization", "classes", "resolution", "tile_size", "overlap")
REMEDY = "use a model file written by `jess-geo train` (or undo the edit)"


class _Bad(Exception):
    """One problem in one field: ``field`` names it in the dotted form users see."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def _type_name(value: Any) -> str:
    return {str: "text", bool: "true/false", dict: "an object", list: "a list", type(None): "null"}.get(
        type(value), type(value).__name__)


def _integer(value: Any, field: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(field, f"must be a whole number, not {_type_name(value)} {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}-{high}" if high is not None else f"{low} or more"
        raise _Bad(field, f"is {value}, outside {bounds}")
    return value


def _number(value: Any, field: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(field, f"must be a number, not {_type_name(value)} {value!r}")
    if not math.isfinite(value):
        raise _Bad(field, f"is {value}, not a finite number")
    if positive and value <= 0:
        raise _Bad(field, f"is {value}, not a positive number")
    return float(value)


def _mapping(meta: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = meta[key]
    if not isinstance(value, dict):
        raise _Bad(key, f"must be an object, not {_type_name(value)}")
    return value


def _number_list(value: Any, field: str, length: int, positive: bool = False) -> list[float]:
    if not isinstance(value, list):
        raise _Bad(field, f"must be a list of {length} numbers, not {_type_name(value)} {value!r}")
    if len(value) != length:
        raise _Bad(field, f"has {len(value)} values but the network has {length} input bands")
    return [_number(v, f"{field}[{i}]", positive) for i, v in enumerate(value)]


def _check_architecture(meta: Mapping[str, Any]) -> tuple[int, int]:
    arch = _mapping(meta, "architecture")
    for key in ("encoder", "in_channels", "num_classes"):
        if key not in arch:
            raise _Bad(f"architecture.{key}", "is missing")
    for key in ("arch", "encoder"):
        if key in arch and (not isinstance(arch[key], str) or not arch[key].strip()):
            raise _Bad(f"architecture.{key}", f"must be a name, not {_type_name(arch[key])} {arch[key]!r}")
    if "decoder_channels" in arch:
        channels = arch["decoder_channels"]
        if not isinstance(channels, list) or not channels:
            raise _Bad("architecture.decoder_channels", f"must be a list of channel counts, not {_type_name(channels)} {channels!r}")
        for i, c in enumerate(channels):
            _integer(c, f"architecture.decoder_channels[{i}]", 1)
    return (_integer(arch["in_channels"], "architecture.in_channels", 1),
            _integer(arch["num_classes"], "architecture.num_classes", 1, IGNORE))


def _check_bands(meta: Mapping[str, Any], in_channels: int) -> None:
    bands = meta["bands"]
    if not isinstance(bands, list):
        raise _Bad("bands", f"must be a list of band numbers such as [1, 2, 3], not {_type_name(bands)} {bands!r}")
    if len(bands) != in_channels:
        raise _Bad("bands", f"lists {len(bands)} bands but the network takes {in_channels}")
    for i, b in enumerate(bands):
        _integer(b, f"bands[{i}]", 1)


def _check_normalization(meta: Mapping[str, Any], in_channels: int) -> None:
    norm = _mapping(meta, "normalization")
    for key in ("mean", "std"):
        if key not in norm:
            raise _Bad(f"normalization.{key}", "is missing")
    _number_list(norm["mean"], "normalization.mean", in_channels)
    _number_list(norm["std"], "normalization.std", in_channels, positive=True)


def _check_classes(meta: Mapping[str, Any], num_classes: int) -> None:
    classes = meta["classes"]
    if not isinstance(classes, list):
        raise _Bad("classes", f"must be a list of {{id, name, color}}, not {_type_name(classes)}")
    for i, c in enumerate(classes):
        if not isinstance(c, dict):
            raise _Bad(f"classes[{i}]", f"must be an object {{id, name, color}}, not {_type_name(c)}")
        for key in ("id", "name", "color"):
            if key not in c:
                raise _Bad(f"classes[{i}].{key}", "is missing")
        _integer(c["id"], f"classes[{i}].id", 0, IGNORE - 1)
        try:
            check_class_name(c["name"])
        except InputError:
            what = "contains control characters" if isinstance(c["name"], str) and c["name"].strip() else "must be non-empty text"
            raise _Bad(f"classes[{i}].name", f"{c['name']!r} {what}") from None
        try:
            parse_color(c["color"])
        except InputError:
            raise _Bad(f"classes[{i}].color", f'{c["color"]!r} is not a colour written as "#rrggbb"') from None
    ids = [c["id"] for c in classes]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise _Bad("classes", f"lists id {twice[0]} twice")
    if len(classes) != num_classes:
        raise _Bad("classes", f"lists {len(classes)} classes but the network outputs {num_classes}")


def _check_tiling(meta: Mapping[str, Any]) -> None:
    res = _mapping(meta, "resolution")
    if res.get("gsd") is not None:
        _number(res["gsd"], "resolution.gsd", positive=True)
    if res.get("photo_scale") is not None:
        _number(res["photo_scale"], "resolution.photo_scale", positive=True)
    tile = _integer(meta["tile_size"], "tile_size", 1)
    overlap = _integer(meta["overlap"], "overlap", 0)
    if overlap >= tile:
        raise _Bad("overlap", f"is {overlap}, not less than tile_size {tile}")
    if "ignore_index" in meta and meta["ignore_index"] != IGNORE:
        raise _Bad("ignore_index", f"is {meta['ignore_index']!r}; jess-geo models use {IGNORE}")


ADAPTATION_METHODS = ("jess", "adabn", "tent", "histmatch", "fewshot", "camsim")


def _check_adaptation(meta: Mapping[str, Any]) -> None:
    record = meta.get("adaptation")
    if record is None:
        return
    if not isinstance(record, dict):
        raise _Bad("adaptation", f"must be an object or null, not {_type_name(record)}")
    method = record.get("method", "jess")
    if method not in ADAPTATION_METHODS:
        raise _Bad("adaptation.method", f"is {method!r}, not one of {', '.join(ADAPTATION_METHODS)}")


def _check_colour_alignment(meta: Mapping[str, Any], in_channels: int) -> None:
    align = meta.get("colour_alignment")
    if align is None:
        return
    if not isinstance(align, dict):
        raise _Bad("colour_alignment", f"must be an object or null, not {_type_name(align)}")
    if align.get("kind") != "histogram_matching":
        raise _Bad("colour_alignment.kind", f"is {align.get('kind')!r}, not 'histogram_matching'")
    bands = align.get("bands")
    if not isinstance(bands, list) or len(bands) != in_channels:
        raise _Bad("colour_alignment.bands", f"must list one table per input band ({in_channels})")
    for i, band in enumerate(bands):
        field = f"colour_alignment.bands[{i}]"
        if not isinstance(band, dict) or not isinstance(band.get("input"), list) or not band["input"]:
            raise _Bad(field, "must be an object with lists input and output")
        if not isinstance(band.get("output"), list) or len(band["output"]) != len(band["input"]):
            raise _Bad(f"{field}.output", f"must be a list as long as input ({len(band['input'])} values)")
        x = [_number(v, f"{field}.input[{k}]") for k, v in enumerate(band["input"])]
        y = [_number(v, f"{field}.output[{k}]") for k, v in enumerate(band["output"])]
        if any(b <= a for a, b in zip(x, x[1:])):
            raise _Bad(f"{field}.input", "is not strictly increasing")
        if any(b < a for a, b in zip(y, y[1:])):
            raise _Bad(f"{field}.output", "is decreasing somewhere")


def _check_feature_stats(meta: Mapping[str, Any]) -> None:
    """``feature_stats`` (optional, helper D): per BatchNorm layer, input means and variances."""
    stats = meta.get("feature_stats")
    if stats is None:
        return
    if not isinstance(stats, dict) or not isinstance(stats.get("layers"), list):
        raise _Bad("feature_stats", "must be an object with a list of layers, or null")
    for i, layer in enumerate(stats["layers"]):
        field = f"feature_stats.layers[{i}]"
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str) or not isinstance(layer.get("mean"), list):
            raise _Bad(field, "must be an object with a name and lists mean and var")
        if not isinstance(layer.get("var"), list) or len(layer["var"]) != len(layer["mean"]):
            raise _Bad(f"{field}.var", f"must be a list as long as mean ({len(layer['mean'])} values)")
        for k, v in enumerate(layer["mean"]):
            _number(v, f"{field}.mean[{k}]")
        if any(_number(v, f"{field}.var[{k}]") < 0 for k, v in enumerate(layer["var"])):
            raise _Bad(f"{field}.var", "has a negative variance")


def validate_metadata(meta: Any, source: str) -> dict[str, Any]:
    """``meta`` unchanged when every field the pipeline reads is well formed.

    Args:
        meta: the decoded metadata.
        source: how to name the file in messages (e.g. ``"Model file m.pt"``).

    Raises:
        ModelFileError: one line naming the first bad field and what is wrong with it.
    """
    if not isinstance(meta, dict):
        raise ModelFileError(f"{source} has no readable metadata; {REMEDY}.")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{source} lacks metadata {missing}; {REMEDY}.")
    try:
        in_channels, num_classes = _check_architecture(meta)
        _check_bands(meta, in_channels)
        _check_normalization(meta, in_channels)
        _check_classes(meta, num_classes)
        _check_tiling(meta)
        _check_adaptation(meta)
        _check_colour_alignment(meta, in_channels)
        _check_feature_stats(meta)
    except _Bad as bad:
        raise ModelFileError(f"{source}: metadata field {bad.field} {bad.problem}; {REMEDY}.") from None
    return meta
