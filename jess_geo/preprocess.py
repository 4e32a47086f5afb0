"""Pure functions shared by training and inference: working scale and normalisation."""

from __future__ import annotations

from typing import Any

import numpy as np

from jess_geo.io.raster import RasterInfo, pixel_size_m


def working_scale(info: RasterInfo, resolution: dict[str, Any]) -> float:
    """Factor from input pixels to working pixels (0.5 = the model sees the image at half size).

    Georeferenced inputs are resampled to the model's ground sampling distance ``gsd`` (metres;
    a geographic CRS's degrees are converted to metres first) when the model has one; photos
    (and inputs to a model trained without a GSD) are scaled by ``photo_scale``.
    """
    gsd = resolution.get("gsd")
    size = pixel_size_m(info)
    if size is not None and gsd:
        return float(size) / float(gsd)
    return float(resolution.get("photo_scale", 1.0) or 1.0)


def scaled_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """Size of an image of ``height`` x ``width`` pixels at ``scale`` (at least one pixel)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def normalize(raw: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    """``(raw - mean) / std`` per band; ``raw`` is ``(C, H, W)`` or ``(N, C, H, W)`` float32."""
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    std = np.asarray(normalization["std"], dtype=np.float32)
    shape = (-1, 1, 1) if raw.ndim == 3 else (1, -1, 1, 1)
    return (raw - mean.reshape(shape)) / std.reshape(shape)
