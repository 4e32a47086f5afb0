"""Class-balanced crops: a rare class is seen more often, reproducibly, through the real loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jess_geo.classes import ClassTable
from jess_geo.data.datamodule import LoaderSettings, SceneDataModule
from jess_geo.data.dataset import SceneDataset, collate
from jess_geo.data.normalization import compute_stats
from jess_geo.data.sampling import ClassBalancedSampler, class_counts, class_draw_probabilities
from jess_geo.data.scenes import load_scene

CLASSES = ClassTable.from_list([{"id": 0, "name": "soil", "color": "#8c6d4f"},
                                {"id": 1, "name": "moss", "color": "#2e7d32"},
                                {"id": 2, "name": "lichen", "color": "#ffd400"}])
CROP = 32


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Two photos (PNG + PNG mask): soil, a moss half, and a 6 x 6 px lichen patch in the first only."""
    folder = tmp_path_factory.mktemp("balanced")
    out = []
    for k in range(2):
        rgb = np.random.default_rng(k).integers(0, 255, (160, 200, 3), dtype=np.uint8)
        labels = np.zeros((160, 200), np.uint8)
        labels[:, 100:] = 1
        if k == 0:
            labels[120:126, 20:26] = 2
        labels[:4] = 255  # unlabelled rows
        Image.fromarray(rgb).save(folder / f"p{k}.jpg")
        Image.fromarray(labels, "L").save(folder / f"p{k}.png")
        out.append(load_scene(folder / f"p{k}.jpg", folder / f"p{k}.png", CLASSES, None, {"gsd": None, "photo_scale": 1.0}))
    return out


def _dataset(scenes: list) -> SceneDataset:
    return SceneDataset(scenes, compute_stats(scenes, seed=0), min_extent=CROP)


def _lichen_share(ds: SceneDataset, balance: float, seed: int = 0, n: int = 200) -> float:
    batch = collate([ds[q] for q in ClassBalancedSampler(ds, CROP, n, balance, seed)])
    return float((batch["mask"] == 2).flatten(1).any(1).float().mean())


def test_rare_class_crops_are_more_frequent_with_balance(scenes: list) -> None:
    ds = _dataset(scenes)
    plain, balanced = _lichen_share(ds, 0.0), _lichen_share(ds, 0.9)
    assert plain < 0.15
    assert balanced > 0.5 > plain


def test_balanced_crops_are_reproducible_and_inside_the_scenes(scenes: list) -> None:
    ds = _dataset(scenes)
    a = list(ClassBalancedSampler(ds, CROP, 50, 0.7, seed=3))
    assert a == list(ClassBalancedSampler(ds, CROP, 50, 0.7, seed=3))
    assert a != list(ClassBalancedSampler(ds, CROP, 50, 0.7, seed=4))
    for x, y, _t in a:
        assert x.stop - x.start == CROP and y.stop - y.start == CROP
        assert 0 <= x.start and x.stop <= 200 and -160 <= y.start and y.stop <= 0


def test_class_counts_and_draw_probabilities_favour_the_rarest(scenes: list) -> None:
    counts = class_counts(scenes, 3)
    assert counts.tolist() == [2 * 156 * 100 - 36, 2 * 156 * 100, 36]
    p = class_draw_probabilities(np.append(counts, 0))
    assert p[2] > p[0] > 0 and p[3] == 0 and p.sum() == pytest.approx(1.0)


def test_datamodule_uses_the_balanced_sampler_only_when_asked(scenes: list) -> None:
    norm = compute_stats(scenes, seed=0)
    shares = []
    for balance in (0.0, 0.9):
        dm = SceneDataModule(scenes, [], [], norm, LoaderSettings(CROP, 64, 8, 160, seed=0, balance=balance))
        masks = torch.cat([b["mask"] for b in dm.train_dataloader()])
        shares.append(float((masks == 2).flatten(1).any(1).float().mean()))
    assert shares[1] > 0.5 > shares[0]
    assert dm.class_counts(3).tolist() == class_counts(scenes, 3).tolist()
