"""The training data's feature statistics, measured on source training crops and stored in a model file.

Called once after a training run (``jess-geo train``, ``adapt``, ``train --init``): the saved
model (the best epoch, with the BatchNorm statistics it deploys with) sees up to
:data:`MAX_CROPS` crops of the labelled training images, and its metadata gains
``feature_stats`` (see :mod:`jess_geo.shift.stats`). No Lightning, no torchgeo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from jess_geo.shift.stats import feature_statistics

__all__ = ["MAX_CROPS", "crop_batches", "training_crops", "record_feature_stats"]

MAX_CROPS = 32
BATCH = 4


def _starts(size: int, crop: int) -> list[int]:
    if size <= crop:
        return [0]
    n = -(-size // crop)
    return np.linspace(0, size - crop, n).round().astype(int).tolist()


def training_crops(images: Sequence[tuple[np.ndarray, np.ndarray]], normalization: dict[str, Any], crop: int,
                   multiple: int, max_crops: int = MAX_CROPS) -> list[np.ndarray]:
    """Normalised ``(C, h, w)`` crops (h, w multiples of ``multiple``, at most ``crop``) of ``(raw image
    (C, H, W), valid (H, W))`` pairs on a grid, mostly valid ones, up to ``max_crops`` evenly chosen."""
    mean = np.asarray(normalization["mean"], np.float32).reshape(-1, 1, 1)
    std = np.asarray(normalization["std"], np.float32).reshape(-1, 1, 1)
    found: list[np.ndarray] = []
    for image, valid in images:
        h = max(multiple, min(crop, image.shape[1]) // multiple * multiple)
        w = max(multiple, min(crop, image.shape[2]) // multiple * multiple)
        for r in _starts(image.shape[1], h):
            for c in _starts(image.shape[2], w):
                v = valid[r : r + h, c : c + w]
                if v.size == 0 or v.mean() < 0.5:
                    continue
                x = np.zeros((image.shape[0], h, w), np.float32)
                piece = (image[:, r : r + h, c : c + w] - mean) / std
                piece[:, ~v] = 0.0
                x[:, : piece.shape[1], : piece.shape[2]] = piece
                found.append(x)
    if len(found) > max_crops:
        keep = np.linspace(0, len(found) - 1, max_crops).round().astype(int)
        found = [found[i] for i in dict.fromkeys(keep.tolist())]
    return found


def crop_batches(crops: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Batches of up to four crops of one shape."""
    by_shape: dict[tuple[int, ...], list[np.ndarray]] = {}
    for c in crops:
        by_shape.setdefault(c.shape, []).append(c)
    for group in by_shape.values():
        for i in range(0, len(group), BATCH):
            yield np.stack(group[i : i + BATCH])


def record_feature_stats(model_path: str | Path, scenes: Sequence[Any], normalization: dict[str, Any],
                         crop: int) -> dict[str, Any] | None:
    """Add ``feature_stats`` of ``scenes`` (objects with ``image`` and ``valid`` at working resolution)
    to the model file at ``model_path`` (rewritten atomically); None when there is no file or no crop."""
    from jess_geo.models.factory import size_multiple
    from jess_geo.models.modelfile import load_model_file, save_model_file

    path = Path(model_path)
    if not path.is_file():
        return None
    loaded = load_model_file(path)
    multiple = size_multiple(loaded.metadata["architecture"])
    crops = training_crops([(s.image, s.valid) for s in scenes], normalization, crop, multiple)
    if not crops:
        return None
    stats = feature_statistics(loaded.model, crop_batches(crops))
    stats["source"] = "training crops"
    stats["crops"] = len(crops)
    save_model_file(path, loaded.model, dict(loaded.metadata, feature_stats=stats))
    return stats
