"""Per-band normalisation statistics from the training data (valid pixels only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jess_geo.data.scenes import Scene
from jess_geo.errors import InputError


def compute_stats(scenes: Sequence[Scene], max_pixels: int = 2_000_000, seed: int = 0) -> dict[str, list[float]]:
    """Mean and standard deviation of each band over the valid pixels of ``scenes`` (raw units)."""
    rng = np.random.default_rng(seed)
    samples = []
    per_scene = max(1, max_pixels // max(1, len(scenes)))
    for s in scenes:
        px = s.image[:, s.valid]
        if px.shape[1] > per_scene:
            px = px[:, rng.choice(px.shape[1], per_scene, replace=False)]
        samples.append(px)
    allpx = np.concatenate(samples, axis=1).astype(np.float64) if samples else np.zeros((0, 0))
    if allpx.shape[1] == 0:
        names = ", ".join(s.name for s in scenes) or "none"
        raise InputError(
            f"The training images ({names}) have no valid pixels, only nodata; check their nodata value, alpha band or mask."
        )
    mean = allpx.mean(axis=1)
    std = np.maximum(allpx.std(axis=1), 1e-6)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
