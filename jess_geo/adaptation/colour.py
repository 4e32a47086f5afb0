"""Per-band histogram matching: target quantiles mapped onto source quantiles (numpy only).

A colour alignment is stored in a model file's metadata (``colour_alignment``) and applied by
the predict pipeline to the raw bands of every tile before normalisation, so a scene from the
target camera reaches the network with the source's per-band value distribution::

    {"kind": "histogram_matching", "levels": 257,
     "bands": [{"input": [x0 < x1 < ...], "output": [y0 <= y1 <= ...]}, ...],   # model input order
     "source_images": "...", "target_images": "..."}

A raw value ``v`` of band ``b`` becomes ``interp(v, input_b, output_b)`` (piecewise linear,
clamped at both ends): the target's quantile ``q`` goes to the source's quantile ``q``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jess_geo.errors import InputError

KIND = "histogram_matching"
LEVELS = 257  # quantile levels 0, 1/256, ..., 1
MAX_PIXELS = 2_000_000  # per band: a regular subsample of the valid pixels beyond this

Tables = tuple[tuple[np.ndarray, np.ndarray], ...]


def band_quantiles(images: Sequence[np.ndarray], valid: Sequence[np.ndarray], levels: int = LEVELS,
                   what: str = "images") -> np.ndarray:
    """``(C, levels)`` quantiles of each band over the valid pixels of ``images`` (each ``(C, H, W)``)."""
    pixels = [img[:, np.asarray(v, dtype=bool)] for img, v in zip(images, valid)]
    stacked = np.concatenate(pixels, axis=1) if pixels else np.empty((0, 0))
    if stacked.size == 0:
        raise InputError(f"The {what} have no valid pixel to measure colours on; use images with data.")
    step = max(1, stacked.shape[1] // MAX_PIXELS)
    return np.quantile(stacked[:, ::step].astype(np.float64), np.linspace(0.0, 1.0, levels), axis=1).T


def matching_table(target_q: np.ndarray, source_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One band's table: the distinct target quantiles (strictly increasing) and, for each, the mean
    of the source quantiles at the levels where the target takes that value (non-decreasing)."""
    x, inverse = np.unique(np.asarray(target_q, dtype=np.float64), return_inverse=True)
    y = np.bincount(inverse, weights=np.asarray(source_q, dtype=np.float64)) / np.bincount(inverse)
    return x, np.maximum.accumulate(y)


def colour_alignment(source_q: np.ndarray, target_q: np.ndarray, *, source: str, target: str) -> dict[str, Any]:
    """The ``colour_alignment`` metadata entry mapping ``target_q`` onto ``source_q`` (both ``(C, levels)``)."""
    bands = []
    for t, s in zip(target_q, source_q):
        x, y = matching_table(t, s)
        bands.append({"input": [round(float(v), 6) for v in x], "output": [round(float(v), 6) for v in y]})
    return {"kind": KIND, "levels": int(source_q.shape[1]), "bands": bands,
            "source_images": source, "target_images": target}


def lookup_tables(alignment: dict[str, Any] | None) -> Tables | None:
    """The per-band ``(input, output)`` arrays of a stored alignment (None for none)."""
    if not alignment:
        return None
    return tuple((np.asarray(b["input"], dtype=np.float64), np.asarray(b["output"], dtype=np.float64))
                 for b in alignment["bands"])


def apply_tables(raw: np.ndarray, tables: Tables | None) -> np.ndarray:
    """``raw`` (``(C, H, W)``, any dtype) with each band mapped through its table, as float32."""
    if tables is None:
        return raw
    out = np.empty(raw.shape, dtype=np.float32)
    for b, (x, y) in enumerate(tables):
        out[b] = np.interp(raw[b], x, y)
    return out
