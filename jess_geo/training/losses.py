"""Segmentation losses for rare classes: weighted cross-entropy, Dice and Lovász-softmax terms, focal.

Pure torch functions of ``logits (N, C, H, W)`` and ``target (N, H, W)`` (class channel
indexes, ``classes.IGNORE`` where unlabelled); ignored pixels never contribute. Class weights
come from the training labels' pixel counts (:func:`class_weights`):

    w_c = clip(sqrt(median_f / f_c), 1 / max_ratio, max_ratio),  f_c = n_c / sum(n)

over the classes present (median-frequency balancing, Eigen & Fergus 2015, softened by the
square root); a class absent from the training labels gets weight 1 (it never occurs in a
training crop). The weights are then rescaled so their pixel-weighted mean is 1, keeping the
loss on the scale of plain cross-entropy (the learning rate keeps its meaning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch
import torch.nn.functional as F

from jess_geo.classes import IGNORE
from jess_geo.training.config_check import LOSSES

if TYPE_CHECKING:
    from jess_geo.training.config import LossConfig

__all__ = ["LOSSES", "class_weights", "cross_entropy", "dice_loss", "focal_loss", "lovasz_softmax", "make_criterion"]

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def class_weights(counts: Sequence[int] | torch.Tensor, max_ratio: float = 10.0) -> torch.Tensor:
    """Per-class weights from labelled pixel counts (square-root median-frequency, clipped; see module)."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    present = n > 0
    w = torch.ones_like(n)
    if present.sum() == 0:
        return w.float()
    f = n / n.sum()
    med = f[present].median()
    w[present] = torch.sqrt(med / f[present]).clamp(1.0 / max_ratio, max_ratio)
    w = w / (w[present] * f[present]).sum()
    return w.float()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels (weighted mean when ``weight`` is given); 0 if none."""
    if not (target != IGNORE).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=IGNORE)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): ``-(1 - p_t)^gamma log p_t``, mean over labelled pixels (weighted)."""
    labelled = target != IGNORE
    if not labelled.any():
        return logits.sum() * 0.0
    logp = F.log_softmax(logits.float(), dim=1)
    t = target.clamp_max(logits.shape[1] - 1).unsqueeze(1)
    logp_t = logp.gather(1, t).squeeze(1)[labelled]
    loss = -((1.0 - logp_t.exp()) ** gamma) * logp_t
    if weight is None:
        return loss.mean()
    w = weight.to(loss.device)[target[labelled]]
    return (w * loss).sum() / w.sum()


def _flat(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (P, C) and labels (P,) of the labelled pixels."""
    probs = F.softmax(logits.float(), dim=1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    t = target.reshape(-1)
    keep = t != IGNORE
    return probs[keep], t[keep]


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss, 1 - mean over the classes present in ``target`` of 2|P∩G| / (|P| + |G|)."""
    p, t = _flat(logits, target)
    if t.numel() == 0:
        return logits.sum() * 0.0
    g = F.one_hot(t, logits.shape[1]).float()
    present = g.sum(0) > 0
    inter = (p * g).sum(0)
    dice = (2 * inter + eps) / (p.sum(0) + g.sum(0) + eps)
    return 1.0 - dice[present].mean()


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted in decreasing order.

    With ``gt_sorted`` the ground truth (0/1) ordered by decreasing error, the Jaccard loss of the
    first ``i`` pixels predicted wrong is ``J_i = 1 - (G - cumsum(gt)_i) / (G + cumsum(1 - gt)_i)``;
    the gradient is its sequence of increments ``J_i - J_{i-1}`` (Berman et al. 2018, eq. 9).
    """
    g = gt_sorted.sum()
    intersection = g - gt_sorted.cumsum(0)
    union = g + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovász-softmax loss (Berman et al. 2018) over labelled pixels, averaged over the classes present."""
    p, t = _flat(logits, target)
    if t.numel() == 0:
        return logits.sum() * 0.0
    losses = []
    for c in range(logits.shape[1]):
        fg = (t == c).float()
        if fg.sum() == 0:
            continue
        errors = (fg - p[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[order])))
    return torch.stack(losses).mean()


def make_criterion(settings: "LossConfig", counts: Sequence[int] | None = None) -> Criterion:
    """The training loss ``criterion(logits, target)`` named by ``settings``; ``counts`` (labelled pixels per
    class of the training data) are needed by the weighted losses."""
    name = settings.name
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    weight = None
    if name in ("wce", "wfocal"):
        if counts is None:
            raise ValueError(f"loss {name} needs the training labels' class counts")
        weight = class_weights(counts, settings.weight_clip)
    lam, gamma = settings.region_weight, settings.focal_gamma

    def criterion(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = None if weight is None else weight.to(logits.device)
        if name in ("focal", "wfocal"):
            return focal_loss(logits, target, gamma, w)
        ce = cross_entropy(logits, target, w)
        if name == "ce+dice":
            return ce + lam * dice_loss(logits, target)
        if name == "ce+lovasz":
            return ce + lam * lovasz_softmax(logits, target)
        return ce

    return criterion
