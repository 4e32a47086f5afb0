"""Resampling tiles between the input grid and the model's working grid: pure numpy, no torch.

Bilinear resampling is a product of two small weight matrices (rows, then columns): the
triangle filter of each output pixel over the input pixels it covers, widened by the shrink
factor when shrinking (antialiasing) and normalised to sum to 1. For enlarging this is exactly
bilinear interpolation with pixel-centre alignment (``align_corners=False``); for shrinking it
is the antialiased triangle filter PIL and ``torch.nn.functional.interpolate(antialias=True)``
use. Matrices depend only on the two sizes and are cached.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def linear_weights(size_in: int, size_out: int) -> np.ndarray:
    """``(size_out, size_in)`` float32 matrix of normalised triangle-filter weights."""
    scale = size_in / size_out
    support = max(scale, 1.0)  # filter half-width in input pixels
    centres = (np.arange(size_out) + 0.5) * scale  # output pixel centres, input pixel units
    inputs = np.arange(size_in) + 0.5
    w = 1.0 - np.abs(inputs[None, :] - centres[:, None]) / support
    np.maximum(w, 0.0, out=w)
    w /= w.sum(axis=1, keepdims=True)
    out = w.astype(np.float32)
    out.setflags(write=False)
    return out


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(..., h, w)`` float32 -> ``(..., H, W)``: bilinear, antialiased when shrinking."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x.astype(np.float32, copy=False)
    rows = linear_weights(h, size[0])
    cols = linear_weights(w, size[1])
    return np.matmul(np.matmul(rows, x.astype(np.float32, copy=False)), cols.T)


def resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` -> ``(H, W)``: each output pixel takes the input pixel under its centre."""
    h, w = mask.shape
    r = np.minimum(((np.arange(size[0]) + 0.5) * (h / size[0])).astype(np.int64), h - 1)
    c = np.minimum(((np.arange(size[1]) + 0.5) * (w / size[1])).astype(np.int64), w - 1)
    return mask[r[:, None], c[None, :]]
