"""BatchNorm statistics re-estimated on a new camera's unlabelled images (AdaBN, Li et al. 2016)."""

from __future__ import annotations

from pathlib import Path

from jess_geo.data.dataset import SceneDataset, train_loader
from jess_geo.data.scenes import load_unlabelled
from jess_geo.models.modelfile import LoadedModel
from jess_geo.training.batchnorm import recalibrate


def recalibrate_on_images(
    loaded: LoadedModel, folder: str | Path, crop: int = 256, batch: int = 8, samples: int = 64, seed: int = 0
) -> int:
    """Replace the model's BatchNorm running statistics by those of ``samples`` random crops of the
    images in ``folder`` (read at the model's working resolution, normalised as in training).
    Weights are untouched. Returns the number of batches used."""
    meta = loaded.metadata
    scenes = load_unlabelled(folder, meta["bands"], meta["resolution"])
    loader = train_loader(SceneDataset(scenes, meta["normalization"], min_extent=crop), crop, batch, samples, seed)
    return recalibrate(loaded.model, (b["image"] for b in loader))
