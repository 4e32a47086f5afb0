"""Metrics against hand-computed cases; ignored pixels count in neither the metrics nor the loss."""

from __future__ import annotations

import warnings

import pytest
import torch

from jess_geo.data.augment import AugmentConfig
from jess_geo.training.metrics import confusion_matrix, metrics_from_confusion
from jess_geo.training.task import SegmentationTask

X = 255  # ignore index


def test_confusion_matrix_rows_are_truth_and_ignored_pixels_are_left_out() -> None:
    truth = torch.tensor([[0, 0, 1, 1], [2, 2, X, X]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = confusion_matrix(pred, truth, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert int(cm.sum()) == 6  # the two ignored pixels are not counted


def test_hand_computed_metrics() -> None:
    # truth\pred   0  1  2
    #   0          3  1  0
    #   1          2  2  0
    #   2          0  0  0    (class 2 absent from the truth, never predicted)
    cm = torch.tensor([[3, 1, 0], [2, 2, 0], [0, 0, 0]])
    m = metrics_from_confusion(cm, ["soil", "crust", "moss"])
    assert m["pixels"] == 8 and m["accuracy"] == pytest.approx(5 / 8)
    iou0, iou1 = 3 / (4 + 5 - 3), 2 / (4 + 3 - 2)
    assert m["per_class"]["soil"]["iou"] == pytest.approx(iou0)
    assert m["per_class"]["crust"]["iou"] == pytest.approx(iou1)
    assert m["per_class"]["moss"]["iou"] is None and m["per_class"]["moss"]["support"] == 0
    assert m["miou"] == pytest.approx((iou0 + iou1) / 2)  # over the classes present only
    p0, p1, r0, r1 = 3 / 5, 2 / 3, 3 / 4, 2 / 4
    f0, f1 = 2 * p0 * r0 / (p0 + r0), 2 * p1 * r1 / (p1 + r1)
    assert m["precision_macro"] == pytest.approx((p0 + p1) / 2)
    assert m["recall_macro"] == pytest.approx((r0 + r1) / 2)
    assert m["f1_macro"] == pytest.approx((f0 + f1) / 2)
    assert m["per_class"]["soil"]["f1"] == pytest.approx(f0)
    assert m["confusion_matrix"] == cm.tolist() and m["class_names"] == ["soil", "crust", "moss"]


def test_class_predicted_but_absent_from_the_truth() -> None:
    # truth\pred  0  1
    #   0         2  2     class 1 never occurs but is predicted twice
    #   1         0  0
    m = metrics_from_confusion(torch.tensor([[2, 2], [0, 0]]))
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["miou"] == pytest.approx(0.5)  # only class 0 is present: IoU 2 / 4
    assert m["per_class"]["1"]["iou"] is None and m["per_class"]["1"]["precision"] == 0.0
    assert m["precision_macro"] == pytest.approx(1.0) and m["recall_macro"] == pytest.approx(0.5)


def test_perfect_and_empty() -> None:
    truth = torch.tensor([0, 1, 2, 2, X])
    m = metrics_from_confusion(confusion_matrix(truth.clamp(max=2), truth, 3))
    assert m["accuracy"] == 1.0 and m["miou"] == 1.0 and m["f1_macro"] == 1.0 and m["pixels"] == 4
    empty = metrics_from_confusion(confusion_matrix(torch.zeros(3, dtype=torch.long), torch.full((3,), X), 3))
    assert empty["pixels"] == 0 and empty["accuracy"] == 0.0 and empty["miou"] == 0.0


def test_batched_confusion_equals_the_sum_over_images() -> None:
    g = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 4, (3, 16, 16), generator=g)
    truth[0, :4] = X
    pred = torch.randint(0, 4, (3, 16, 16), generator=g)
    total = confusion_matrix(pred, truth, 4)
    parts = sum(confusion_matrix(pred[i], truth[i], 4) for i in range(3))
    assert torch.equal(total, parts)
    m = metrics_from_confusion(total)
    assert m["pixels"] == 3 * 256 - 4 * 16
    assert m["accuracy"] == pytest.approx(float((pred == truth).sum()) / m["pixels"])


class _Pointwise(torch.nn.Module):
    """A 1x1 convolution: each pixel's logits depend on that pixel only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _loss(task: SegmentationTask, image: torch.Tensor, mask: torch.Tensor) -> float:
    batch = {"image": image, "mask": mask, "valid": mask != X, "scene": torch.zeros(len(image), dtype=torch.long)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() without a Trainer
        return float(task.training_step(batch, 0))


def test_ignored_pixels_do_not_enter_the_loss() -> None:
    task = SegmentationTask(_Pointwise(), ["a", "b", "c"], lr=1e-3, augment=AugmentConfig(False, False, 0.0))
    g = torch.Generator().manual_seed(1)
    image = torch.randn(2, 2, 8, 8, generator=g)
    mask = torch.randint(0, 3, (2, 8, 8), generator=g)
    mask[:, :, :3] = X
    base = _loss(task, image, mask)
    changed = image.clone()
    changed[:, :, :, :3] = torch.randn(2, 2, 8, 3, generator=g) * 50  # only ignored pixels change
    assert _loss(task, changed, mask) == pytest.approx(base, rel=1e-6)
    labelled = mask != X
    logits = task.model(image)
    expected = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[labelled], mask[labelled])
    assert base == pytest.approx(float(expected), rel=1e-5)
    assert _loss(task, image, torch.full_like(mask, X)) == 0.0  # nothing labelled: no loss, no NaN
