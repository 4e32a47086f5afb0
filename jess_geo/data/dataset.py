"""A torchgeo dataset over in-memory scenes, and its samplers.

Scenes are indexed in working-pixel coordinates (x = column, y = -row) with one time slot per
file, so a torchgeo sampler's query always hits exactly one file: scenes of different CRSs,
resolutions and photos mix freely, and no sample ever blends two files.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import torch
from torch.utils.data import DataLoader
from torchgeo.datasets import GeoDataset
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from jess_geo.classes import IGNORE
from jess_geo.data.scenes import Scene
from jess_geo.preprocess import normalize

_EPOCH = datetime(2000, 1, 1)


def _slot(i: int) -> pd.Interval:
    start = pd.Timestamp(_EPOCH + timedelta(days=i))
    return pd.Interval(start, start + pd.Timedelta(hours=1), closed="both")


class SceneDataset(GeoDataset):
    """In-memory scenes as a torchgeo GeoDataset; samples are normalised image/mask crops."""

    def __init__(self, scenes: Sequence[Scene], normalization: dict[str, list[float]], min_extent: int = 0) -> None:
        """Index ``scenes``; a scene smaller than ``min_extent`` is indexed as if padded to it
        (the padding is ignored by the loss), so samplers never skip small images."""
        self.scenes = list(scenes)
        self.norm_images = [normalize(s.image, normalization).astype(np.float32) for s in self.scenes]
        geoms = [
            shapely.box(0, -max(s.image.shape[1], min_extent), max(s.image.shape[2], min_extent), 0) for s in self.scenes
        ]
        index = pd.IntervalIndex([_slot(i) for i in range(len(self.scenes))], name="datetime")
        self.index = gpd.GeoDataFrame(index=index, geometry=geoms, crs=None)
        self.paths = [str(s.info.path) for s in self.scenes]

    @property
    def res(self) -> tuple[float, float]:
        """One unit per working pixel, in x and y."""
        return (1.0, 1.0)

    def _slices(self, query: Any) -> tuple[slice, slice, slice]:
        """The (x, y, t) slices of a query; missing parts default to the dataset's ``bounds``."""
        parts = (query,) if isinstance(query, slice) else tuple(query)
        if len(parts) > 3 or not all(isinstance(p, slice) for p in parts):
            raise TypeError(f"SceneDataset is indexed by (x, y, t) slices, not {query!r}")
        full = list(self.bounds)
        for i, p in enumerate(parts):
            full[i] = slice(full[i].start if p.start is None else p.start, full[i].stop if p.stop is None else p.stop)
        return full[0], full[1], full[2]

    def _scene_for(self, t: slice) -> int:
        day = (pd.Timestamp(t.start) - pd.Timestamp(_EPOCH)).days
        if not 0 <= day < len(self.scenes):
            raise IndexError(f"query time {t} hits no scene")
        return day

    def __getitem__(self, query: Any) -> dict[str, Any]:
        x, y, t = self._slices(query)
        i = self._scene_for(t)
        img = self.norm_images[i]
        target = self.scenes[i].target
        h, w = img.shape[1:]
        c0, c1 = int(round(x.start)), int(round(x.stop))
        r0, r1 = int(round(-y.stop)), int(round(-y.start))
        out_img = np.zeros((img.shape[0], r1 - r0, c1 - c0), dtype=np.float32)
        out_mask = np.full((r1 - r0, c1 - c0), IGNORE, dtype=np.int64)
        out_valid = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        rr0, rr1, cc0, cc1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
        if rr1 > rr0 and cc1 > cc0:
            out_img[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = img[:, rr0:rr1, cc0:cc1]
            out_valid[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = self.scenes[i].valid[rr0:rr1, cc0:cc1]
            if target is not None:
                out_mask[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = target[rr0:rr1, cc0:cc1]
        return {"image": torch.from_numpy(out_img), "mask": torch.from_numpy(out_mask),
                "valid": torch.from_numpy(out_valid), "scene": i}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch (the scene index as a tensor)."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "mask": torch.stack([s["mask"] for s in samples]),
        "valid": torch.stack([s["valid"] for s in samples]),
        "scene": torch.tensor([s["scene"] for s in samples]),
    }


def random_sampler(ds: SceneDataset, crop: int, samples: int, seed: int) -> RandomGeoSampler:
    """``samples`` random ``crop`` px windows (torchgeo RandomGeoSampler), seeded."""
    return RandomGeoSampler(ds, size=crop, length=samples, generator=torch.Generator().manual_seed(seed))


def grid_sampler(ds: SceneDataset, crop: int, stride: int) -> GridGeoSampler:
    """Grid windows (torchgeo GridGeoSampler) covering every scene; edge windows are padded and ignored."""
    return GridGeoSampler(ds, size=crop, stride=stride)


def train_loader(ds: SceneDataset, crop: int, batch_size: int, samples: int, seed: int) -> DataLoader:
    """Random crops, ``samples`` of them per epoch, seeded."""
    return DataLoader(ds, batch_size=batch_size, sampler=random_sampler(ds, crop, samples, seed), collate_fn=collate)


def grid_loader(ds: SceneDataset, crop: int, stride: int, batch_size: int) -> DataLoader:
    """Grid windows covering every scene, in a fixed order."""
    return DataLoader(ds, batch_size=batch_size, sampler=grid_sampler(ds, crop, stride), collate_fn=collate)
