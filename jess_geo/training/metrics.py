"""Segmentation metrics from a confusion matrix (pure functions)."""

from __future__ import annotations

from typing import Any, Sequence

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """``cm[t, p]`` counts pixels of true class t predicted as p; ignored pixels are left out."""
    keep = target != ignore_index
    t = target[keep].long()
    p = pred[keep].long()
    idx = t * num_classes + p
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_confusion(cm: torch.Tensor, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Overall accuracy, per-class IoU/precision/recall/F1, and their means over classes present in the truth."""
    cm = cm.double()
    tp = cm.diag()
    truth = cm.sum(1)
    predicted = cm.sum(0)
    total = cm.sum()
    present = truth > 0
    iou = tp / (truth + predicted - tp).clamp(min=1)
    precision = tp / predicted.clamp(min=1)
    recall = tp / truth.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    names = list(names) if names is not None else [str(i) for i in range(cm.shape[0])]

    def mean(v: torch.Tensor) -> float:
        return float(v[present].mean()) if present.any() else 0.0

    return {
        "accuracy": float(tp.sum() / total) if total > 0 else 0.0,
        "miou": mean(iou),
        "precision_macro": mean(precision),
        "recall_macro": mean(recall),
        "f1_macro": mean(f1),
        "pixels": int(total),
        "per_class": {
            names[i]: {
                "iou": float(iou[i]) if present[i] else None,
                "precision": float(precision[i]) if predicted[i] > 0 else None,
                "recall": float(recall[i]) if present[i] else None,
                "f1": float(f1[i]) if present[i] else None,
                "support": int(truth[i]),
            }
            for i in range(cm.shape[0])
        },
        "confusion_matrix": cm.long().tolist(),
        "class_names": names,
    }
