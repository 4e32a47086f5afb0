"""Class-balanced crops: with probability ``balance`` a crop is centred on a pixel of a rare class.

A torchgeo ``GeoSampler`` over a :class:`~jess_geo.data.dataset.SceneDataset`. Each draw is,
with probability ``balance``, a crop centred on a labelled pixel of class ``c``, where ``c`` is
drawn among the classes present in the training labels with probability proportional to
``f_c ** -0.5`` (``f_c`` its share of labelled pixels: rarer classes more often, the commonest
not excluded); otherwise the usual uniform random crop (scene chosen by area). The pixel is
drawn uniformly among the class's pixels of all scenes (on a ``stride``-pixel lattice, which
bounds memory). Every random choice comes from one seeded generator, so the crops are the same
for the same seed.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torchgeo.samplers import GeoSampler

from jess_geo.classes import IGNORE
from jess_geo.data.dataset import SceneDataset
from jess_geo.data.scenes import Scene

__all__ = ["ClassBalancedSampler", "class_counts", "class_draw_probabilities"]


def class_counts(scenes: Sequence[Scene], num_classes: int) -> np.ndarray:
    """Labelled pixels per class channel over ``scenes`` (IGNORE and out-of-range ids not counted)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for s in scenes:
        if s.target is None:
            continue
        t = s.target[(s.target != IGNORE) & (s.target < num_classes)]
        counts += np.bincount(t.ravel(), minlength=num_classes)
    return counts


def class_draw_probabilities(counts: np.ndarray) -> np.ndarray:
    """Probability of drawing each class for a balanced crop: ``f_c ** -0.5`` over present classes, 0 elsewhere."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    p = np.zeros_like(counts)
    if present.any():
        p[present] = (counts[present] / counts.sum()) ** -0.5
        p /= p.sum()
    return p


class ClassBalancedSampler(GeoSampler):
    """``length`` crops of ``size`` px; a share ``balance`` of them centred on rare-class pixels (see module).

    ``num_classes`` defaults to one more than the largest label of the scenes.
    """

    def __init__(self, dataset: SceneDataset, size: int, length: int, balance: float, seed: int,
                 num_classes: int | None = None, stride: int = 4) -> None:
        super().__init__(dataset)
        self.size, self.length, self.balance = int(size), int(length), float(balance)
        self.generator = torch.Generator().manual_seed(seed)
        # (xmin, ymax, slot start, slot end) of every scene's indexed extent (pixels; y = -row)
        self.extents = []
        for i in range(len(self.index)):
            xmin, ymin, xmax, ymax = self.index.geometry.iloc[i].bounds
            slot = self.index.index[i]
            self.extents.append((int(xmin), int(xmax - xmin), int(ymax - ymin), slot.left, slot.right))
        self.areas = torch.tensor([float(w * h) for _, w, h, _, _ in self.extents])
        if num_classes is None:
            num_classes = 1 + max((int(s.target[s.target != IGNORE].max(initial=-1)) for s in dataset.scenes if s.target is not None), default=-1)
        self.points = self._lattice(dataset.scenes, num_classes, stride)
        self.class_p = torch.from_numpy(class_draw_probabilities(np.array([len(p) for p in self.points])))

    @staticmethod
    def _lattice(scenes: Sequence[Scene], num_classes: int, stride: int) -> list[np.ndarray]:
        """Per class, the (scene, row, col) of its labelled pixels on a ``stride`` lattice (int32)."""
        found: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        for i, s in enumerate(scenes):
            if s.target is None:
                continue
            sub = s.target[::stride, ::stride]
            for c in range(num_classes):
                rows, cols = np.nonzero(sub == c)
                if rows.size:
                    found[c].append(np.stack([np.full_like(rows, i), rows * stride, cols * stride], 1).astype(np.int32))
        return [np.concatenate(f) if f else np.zeros((0, 3), np.int32) for f in found]

    def _rand(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.generator))

    def _window(self, scene: int, row: int, col: int) -> tuple[slice, slice, slice]:
        xmin, w, h, t0, t1 = self.extents[scene]
        r0 = min(max(row, 0), max(h - self.size, 0))
        c0 = min(max(col, 0), max(w - self.size, 0))
        return slice(xmin + c0, xmin + c0 + self.size), slice(-(r0 + self.size), -r0), slice(t0, t1)

    def __iter__(self) -> Iterator[tuple[slice, slice, slice]]:
        rare = self.class_p.sum() > 0
        for _ in range(self.length):
            if rare and float(torch.rand(1, generator=self.generator)) < self.balance:
                c = int(torch.multinomial(self.class_p, 1, generator=self.generator))
                scene, row, col = (int(v) for v in self.points[c][self._rand(len(self.points[c]))])
                yield self._window(scene, row - self.size // 2, col - self.size // 2)
            else:
                scene = int(torch.multinomial(self.areas, 1, generator=self.generator))
                _, w, h, _, _ = self.extents[scene]
                yield self._window(scene, self._rand(max(h - self.size, 0) + 1), self._rand(max(w - self.size, 0) + 1))

    def __len__(self) -> int:
        return self.length
