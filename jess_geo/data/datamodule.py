"""A Lightning DataModule over in-memory scenes: random crops to train, grid windows to validate.

Loaders are built once the trainer knows its ranks: under DDP every rank draws its own random
crops (seed + rank, ``samples / world_size`` of them) and scores every ``world_size``-th
validation window, so the ranks' summed confusion matrices equal one process's, with no window
repeated (Lightning's distributed sampler would pad with repeats; it is turned off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Sampler

from jess_geo.data.dataset import SceneDataset, collate, random_sampler, grid_sampler
from jess_geo.data.sampling import ClassBalancedSampler, class_counts
from jess_geo.data.scenes import Scene


class ShardSampler(Sampler):
    """Every ``world``-th item of another sampler, starting at ``rank`` (no padding, no repeats)."""

    def __init__(self, sampler: Sampler, rank: int, world: int) -> None:
        self.sampler, self.rank, self.world = sampler, rank, world

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(self.sampler):
            if i % self.world == self.rank:
                yield item

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return max(0, (n - self.rank + self.world - 1) // self.world)


@dataclass
class LoaderSettings:
    """Crop sizes, batch size and crops per epoch (whole run, all ranks together); ``balance`` is the
    share of training crops centred on a rare-class pixel (``jess_geo.data.sampling``)."""

    crop_size: int
    val_crop: int
    batch_size: int
    samples_per_epoch: int
    seed: int
    jess: bool = False
    balance: float = 0.0


class SceneDataModule(L.LightningDataModule):
    """Source scenes (train, validation) and optional target scenes (JESS crops, target metrics)."""

    def __init__(self, train: Sequence[Scene], val: Sequence[Scene], target: Sequence[Scene],
                 normalization: dict[str, list[float]], settings: LoaderSettings) -> None:
        super().__init__()
        s = settings
        self.settings = s
        self.train_ds = SceneDataset(train, normalization, min_extent=s.crop_size)
        self.val_ds = SceneDataset(val, normalization, min_extent=s.val_crop)
        self.target_ds = SceneDataset(target, normalization, min_extent=s.crop_size) if target else None
        self.target_val_ds = SceneDataset(target, normalization, min_extent=s.val_crop) if target else None

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch for one process (divide by the world size under DDP)."""
        return max(1, self.settings.samples_per_epoch // self.settings.batch_size)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Labelled pixels per class channel of the training scenes (for class-weighted losses)."""
        return class_counts(self.train_ds.scenes, num_classes)

    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._ranks()
        s = self.settings
        steps = max(1, self.steps_per_epoch // world)
        seed = s.seed + 1000 * rank
        if s.balance > 0:
            sampler = ClassBalancedSampler(self.train_ds, s.crop_size, steps * s.batch_size, s.balance, seed)
        else:
            sampler = random_sampler(self.train_ds, s.crop_size, steps * s.batch_size, seed)
        return DataLoader(self.train_ds, batch_size=s.batch_size, sampler=sampler, collate_fn=collate)

    def target_dataloader(self) -> DataLoader:
        """Endless random target crops for the JESS energy term (half the source batch)."""
        assert self.target_ds is not None
        rank, _ = self._ranks()
        s = self.settings
        sampler = random_sampler(self.target_ds, s.crop_size, 10**6, s.seed + 7 + 1000 * rank)
        return DataLoader(self.target_ds, batch_size=max(1, s.batch_size // 2), sampler=sampler, collate_fn=collate)

    def val_dataloader(self) -> list[DataLoader]:
        rank, world = self._ranks()
        crop = self.settings.val_crop
        sets = [self.val_ds] + ([self.target_val_ds] if self.target_val_ds is not None else [])
        return [
            DataLoader(ds, batch_size=2, sampler=ShardSampler(grid_sampler(ds, crop, crop), rank, world), collate_fn=collate)
            for ds in sets
        ]
