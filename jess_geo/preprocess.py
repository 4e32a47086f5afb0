"""Pure functions shared by training and inference: working scale, band checks, normalisation."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jess_geo.errors import InputError
from jess_geo.io.raster import RasterInfo


def working_scale(info: RasterInfo, resolution: dict[str, Any]) -> float:
    """Factor from input pixels to working pixels (0.5 = the model sees the image at half size).

    Georeferenced inputs are resampled to the model's ground sampling distance ``gsd`` when the
    model has one; photos (and inputs to a model trained without a GSD) are scaled by ``photo_scale``.
    """
    gsd = resolution.get("gsd")
    if info.georeferenced and gsd:
        return float(info.res[0]) / float(gsd)
    return float(resolution.get("photo_scale", 1.0) or 1.0)


def scaled_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """Size of an image of ``height`` x ``width`` pixels at ``scale`` (at least one pixel)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def check_bands(info: RasterInfo, bands: Sequence[int]) -> None:
    """Raise a one-line InputError when ``info`` lacks the bands a model or config needs."""
    available = info.data_bands
    missing = [b for b in bands if b not in available and b > info.count]
    if missing:
        raise InputError(
            f"{info.path.name} has {len(available)} image band(s) but the model needs band(s) {list(bands)}; "
            f"use an image with {max(bands)} bands or a model trained on {len(available)}-band images."
        )


def normalize(raw: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    """``(raw - mean) / std`` per band; ``raw`` is ``(C, H, W)`` or ``(N, C, H, W)`` float32."""
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    std = np.asarray(normalization["std"], dtype=np.float32)
    shape = (-1, 1, 1) if raw.ndim == 3 else (1, -1, 1, 1)
    return (raw - mean.reshape(shape)) / std.reshape(shape)
