"""What the pipeline needs to know about one scene: where to read, which bands, how to normalise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from jess_geo.inference.tileplan import TilePlan
from jess_geo.io.raster import RasterInfo


@dataclass(frozen=True)
class Job:
    """One scene to classify: its raster, the model's input bands and normalisation, the tile plan."""

    info: RasterInfo
    bands: tuple[int, ...]  # 1-based scene bands, in model input order
    mean: np.ndarray  # (C, 1, 1) float32
    std: np.ndarray  # (C, 1, 1) float32
    classes: tuple[dict[str, Any], ...]
    tiles: TilePlan
    area: Any = None  # jess_geo.inference.aoi.Area: a window of the scene and its polygon (None: all of it)
    colour: Any = None  # per-band lookup tables of the model's colour alignment (jess_geo.adaptation.colour)
    tta: str = "none"  # test-time augmentation of every batch (jess_geo.inference.tta.MODES)
    feature_stats: Any = None  # the model's training feature statistics: predict's shift notice (jess_geo.shift)

    @classmethod
    def make(cls, info: RasterInfo, bands: tuple[int, ...], normalization: dict[str, Any],
             classes: list[dict[str, Any]], tiles: TilePlan) -> "Job":
        """Build a job; normalisation lists become per-band float32 columns."""
        mean = np.asarray(normalization["mean"], dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(normalization["std"], dtype=np.float32).reshape(-1, 1, 1)
        return cls(info, tuple(int(b) for b in bands), mean, std, tuple(dict(c) for c in classes), tiles)
