"""Self-training on the target: the model's own confident predictions as labels, kept per class.

Once a model reads the target camera roughly (after ``camsim``), its most confident predictions
on the unlabelled target images are mostly right. Kept per predicted class (the ``keep`` most
confident share of each class's pixels, so a rare class keeps its pixels rather than losing them
to a global threshold: class-balanced self-training, Zou et al. 2018), they become partial labels
(everything else IGNORE) for further fine-tuning on the target images themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jess_geo.classes import IGNORE
from jess_geo.inference.tiling import TileGrid, network_size, tile_weights
from jess_geo.models.factory import size_multiple
from jess_geo.preprocess import normalize

PSEUDO_KEEP = 0.5  # of each predicted class's pixels, the most confident


@torch.no_grad()
def scene_probabilities(model: torch.nn.Module, image: np.ndarray, meta: dict[str, Any], *, tile: int = 256,
                        overlap: int = 32, batch_size: int = 8) -> np.ndarray:
    """Softmax probabilities ``(K, H, W)`` float32 of ``model`` (eval mode) on a raw ``(C, H, W)``
    image at working resolution: overlapping tiles blended with the predict pipeline's weights."""
    x = normalize(image, meta["normalization"]).astype(np.float32)
    _, h, w = x.shape
    multiple = size_multiple(meta["architecture"])
    grid = TileGrid(h, w, tile, overlap)
    tiles = [t for row in grid.rows() for t in row]
    th, tw = network_size(grid.tile_height, multiple), network_size(grid.tile_width, multiple)
    was_training = model.training
    model.eval()
    total = weight = None
    for i in range(0, len(tiles), batch_size):
        part = tiles[i : i + batch_size]
        stack = np.zeros((len(part), x.shape[0], th, tw), np.float32)  # padded with the normalised mean
        for j, t in enumerate(part):
            stack[j, :, : t.height, : t.width] = x[:, t.row : t.row + t.height, t.col : t.col + t.width]
        probs = torch.softmax(model(torch.from_numpy(stack)), 1).numpy()
        if total is None:
            total = np.zeros((probs.shape[1], h, w), np.float32)
            weight = np.zeros((h, w), np.float32)
        for j, t in enumerate(part):
            wt = tile_weights(t, overlap)
            total[:, t.row : t.row + t.height, t.col : t.col + t.width] += probs[j, :, : t.height, : t.width] * wt
            weight[t.row : t.row + t.height, t.col : t.col + t.width] += wt
    model.train(was_training)
    return total / weight


def pseudo_labels(probs: np.ndarray, valid: np.ndarray, keep: float = PSEUDO_KEEP) -> np.ndarray:
    """``(H, W)`` int64 labels: for each class, its ``keep`` most confident predicted valid pixels; IGNORE elsewhere."""
    pred, conf = probs.argmax(0), probs.max(0)
    out = np.full(pred.shape, IGNORE, np.int64)
    for c in range(probs.shape[0]):
        chosen = (pred == c) & valid
        if chosen.any():
            out[chosen & (conf >= np.quantile(conf[chosen], 1.0 - keep))] = c
    return out
