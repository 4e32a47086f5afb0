"""Checks that run before any work, so predict refuses nonsense in one line instead of computing it.

- every numeric option in range (:func:`check_numbers`);
- the scene: pixels, a real-valued data type (:func:`check_scene`);
- resolution and CRS: the scene's pixel size in metres (degrees converted) against the model's
  working resolution; beyond :data:`MAX_FACTOR` either way it is refused unless overridden
  (:func:`check_resolution`);
- the value range against the model's normalisation: a notice, not an error (:func:`range_notice`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jess_geo.errors import InputError
from jess_geo.io.raster import RasterInfo, pixel_size_m

MAX_FACTOR = 8.0
FAR_SIGMAS = 6.0
OVERRIDE = "--allow-resolution-mismatch"


def _number(name: str, value: float | None, *, low: float, strict: bool = False, integer: bool = False) -> None:
    if value is None:
        return
    bad = not math.isfinite(value) or value < low or (strict and value <= low) or (integer and value != int(value))
    if bad:
        what = "a whole number " if integer else "a number "
        bound = f"above {low:g}" if strict else f"{low:g} or more"
        raise InputError(f"{name} {value:g} is out of range; pass {what}{bound}.")


def check_numbers(*, tile_size: int | None = None, overlap: int | None = None, batch_size: int = 4,
                  streams: int | None = None, min_area: float = 0.0, simplify: float = 0.0) -> None:
    """One-line InputError for any numeric option out of range (before any file is read)."""
    _number("--tile-size", tile_size, low=1, integer=True)
    _number("--overlap", overlap, low=0, integer=True)
    _number("--batch-size", batch_size, low=1, integer=True)
    _number("--streams", streams, low=1, integer=True)
    _number("--min-area", min_area, low=0)
    _number("--simplify", simplify, low=0)
    if tile_size is not None and overlap is not None and overlap >= tile_size:
        raise InputError(f"--overlap {overlap} is not smaller than --tile-size {tile_size}; pass an overlap below {tile_size // 2 + 1}.")


def check_scene(info: RasterInfo) -> None:
    """A scene without pixels or with complex pixels is refused."""
    if info.width < 1 or info.height < 1:
        raise InputError(f"{info.name} has no pixels; pass a non-empty raster.")
    if np.dtype(info.dtype).kind == "c":
        raise InputError(
            f"{info.name} has complex ({info.dtype}) pixels, which jess-geo does not classify; "
            f"convert it to real values first (e.g. gdal_translate -ot Float32 of the amplitude)."
        )


def _metres(value: float) -> str:
    return f"{value * 100:.3g} cm" if value < 1 else f"{value:.4g} m"


def resolution_factor(info: RasterInfo, resolution: dict[str, Any]) -> tuple[float, float, float] | None:
    """``(scene pixel m, model pixel m, scene / model)``, or None for photos or models without a GSD."""
    gsd = resolution.get("gsd")
    size = pixel_size_m(info)
    if size is None or not gsd:
        return None
    return size, float(gsd), size / float(gsd)


def check_resolution(info: RasterInfo, resolution: dict[str, Any], *, allow: bool = False) -> str | None:
    """Refuse a scene whose pixels are more than :data:`MAX_FACTOR` times coarser or finer than the
    model's working resolution (unless ``allow``); returns a notice when allowed anyway."""
    found = resolution_factor(info, resolution)
    if found is None:
        return None
    scene_m, model_m, factor = found
    if 1.0 / MAX_FACTOR <= factor <= MAX_FACTOR:
        return None
    how = f"{factor:.3g}x coarser" if factor > 1 else f"{1 / factor:.3g}x finer"
    text = f"{info.name} has {_metres(scene_m)} pixels but the model works at {_metres(model_m)} ({how})"
    if allow:
        return f"{text}; running anyway ({OVERRIDE})."
    raise InputError(
        f"{text}; use imagery near {_metres(model_m)} per pixel or a model trained at {_metres(scene_m)}, "
        f"or pass {OVERRIDE} to run anyway."
    )


def range_notice(name: str, values: np.ndarray, normalization: dict[str, Any]) -> str | None:
    """A notice when most sampled values lie more than :data:`FAR_SIGMAS` std from the model's mean."""
    if values.size == 0:
        return None
    mean = np.asarray(normalization["mean"], dtype=np.float64).reshape(-1, 1)
    std = np.asarray(normalization["std"], dtype=np.float64).reshape(-1, 1)
    z = np.abs(values - mean) / std
    if np.median(z) <= FAR_SIGMAS:
        return None
    lo, hi = float(np.percentile(values, 1)), float(np.percentile(values, 99))
    return (
        f"{name}: values {lo:.6g} to {hi:.6g} are far outside what the model was trained on "
        f"(mean {', '.join(f'{m:.4g}' for m in mean.ravel())}; std {', '.join(f'{s:.3g}' for s in std.ravel())}); "
        f"check the bands (--bands) and the units (e.g. reflectance 0-1 against 0-10000); results may be nonsense."
    )
