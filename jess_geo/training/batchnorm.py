"""BatchNorm statistics for JESS's shared source+target forward pass.

One forward pass over ``cat([source, target])`` saves compute, but BatchNorm then has to be told
whose statistics to use. Three modes of the shared pass, and the reference code's way:

- ``mixed``: plain BatchNorm over both domains; the running statistics become a source/target mix.
- ``source``: statistics of the source crops only, applied to the target crops too, so the target
  is normalised in training exactly as a source-statistics model normalises it at prediction time.
- ``split``: each domain normalised with its own batch statistics, as the reference code's separate
  passes do. The source's running statistics live in the model as usual; the target's are kept
  beside it (``DomainStatistics``) and are the ones an adapted model is saved with, because the
  adapted model is meant for the target camera.
- ``passes``: no shared pass. Three separate forward passes in the reference code's order
  (target, source contrast set, labelled source; :func:`separate_passes`): each batch normalised
  with its own statistics, and every pass updates the one set of running statistics in turn, so
  the saved model carries their moving-average mix (one target pass to two source passes).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

BATCHNORM_MODES = ("mixed", "source", "split", "passes")
SHARED_MODES = BATCHNORM_MODES[:3]


def batchnorm_layers(model: torch.nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers that track running statistics, in module order."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def _momentum(m: _BatchNorm) -> float:
    if m.num_batches_tracked is not None:
        m.num_batches_tracked.add_(1)
    if m.momentum is None:
        return 1.0 / float(m.num_batches_tracked) if m.num_batches_tracked is not None else 0.0
    return m.momentum


def _after_norm(m: _BatchNorm, out: torch.Tensor) -> torch.Tensor:
    # timm's BatchNormAct2d (EfficientNet encoders) applies dropout and an activation after the norm.
    for extra in ("drop", "act"):
        if hasattr(m, extra):
            out = getattr(m, extra)(out)
    return out


def _normalise_with(x: torch.Tensor, like: torch.Tensor, m: _BatchNorm) -> torch.Tensor:
    """``x`` normalised with the batch mean and (biased) variance of ``like``, then BatchNorm's affine."""
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(like, dim=dims, unbiased=False)
    out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + m.eps)
    if m.weight is not None:
        out = out * m.weight.view(shape) + m.bias.view(shape)
    return out


def _forward(m: _BatchNorm, n: int, x: torch.Tensor, mode: str, target: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    # Two native (fused) BatchNorm calls and a concatenation: measured faster on the CPU than one
    # hand-written pass with per-sample scale and shift, whose autograd graph has many more nodes.
    # split, not slicing: its backward is one concatenation of the two gradients, where two slices
    # would each scatter into a zero-filled tensor of the full batch
    src, tgt = torch.split(x, [n, x.shape[0] - n])
    factor = _momentum(m)
    out_s = F.batch_norm(src, m.running_mean, m.running_var, m.weight, m.bias, True, factor, m.eps)
    if mode == "source":
        out_t = _normalise_with(tgt, src, m)
    else:  # split: the target's own statistics, tracked in the target buffers
        assert target is not None
        out_t = F.batch_norm(tgt, target[0], target[1], m.weight, m.bias, True, factor, m.eps)
    return _after_norm(m, torch.cat([out_s, out_t]))


class DomainStatistics(torch.nn.Module):
    """Target-domain running statistics for every BatchNorm of ``model`` (mode ``split``).

    A module of buffers, so a Lightning checkpoint saves and restores them with the task.
    Initialised from the model's own running statistics.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.count = 0
        for i, m in enumerate(batchnorm_layers(model)):
            self.register_buffer(f"mean_{i}", m.running_mean.detach().clone())
            self.register_buffer(f"var_{i}", m.running_var.detach().clone())
            self.count += 1

    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"mean_{i}"), getattr(self, f"var_{i}")


@contextlib.contextmanager
def shared_pass(model: torch.nn.Module, n_source: int, mode: str, target: DomainStatistics | None = None) -> Iterator[None]:
    """Within the block, a forward pass of ``model`` in training mode over ``cat([source, target])``
    (``n_source`` source samples first) takes its BatchNorm statistics as ``mode`` says."""
    if mode not in SHARED_MODES:
        raise ValueError(f"a shared pass takes batchnorm {SHARED_MODES}")
    if mode == "split" and target is None:
        raise ValueError("batchnorm 'split' needs the target statistics")
    if mode == "mixed":
        yield
        return
    patched = []
    for i, m in enumerate(batchnorm_layers(model)):
        if m.training:
            pair = target.pair(i) if target is not None else None
            m.forward = lambda x, m=m, pair=pair: _forward(m, n_source, x, mode, pair)  # type: ignore[method-assign]
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def separate_passes(model: torch.nn.Module, source: torch.Tensor, contrast: torch.Tensor,
                    target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of the labelled source, the source contrast set and the target batches from three
    forward passes in the reference code's order (target, contrast, source), BatchNorm as is."""
    logits_t = model(target)
    logits_c = model(contrast)
    return model(source), logits_c, logits_t


@contextlib.contextmanager
def using_statistics(model: torch.nn.Module, stats: DomainStatistics | None) -> Iterator[None]:
    """Within the block, ``model``'s BatchNorm running statistics are those in ``stats``
    (no-op for None); the model's own come back afterwards."""
    if stats is None:
        yield
        return
    layers = batchnorm_layers(model)
    if len(layers) != stats.count:
        raise ValueError("the statistics belong to another model")
    saved = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
    try:
        for i, m in enumerate(layers):
            mean, var = stats.pair(i)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
        yield
    finally:
        for m, (mean, var) in zip(layers, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)


@torch.no_grad()
def recalibrate(model: torch.nn.Module, batches: Iterator[torch.Tensor], device: torch.device | str = "cpu") -> int:
    """Re-estimate every BatchNorm's running statistics from ``batches`` of images (AdaBN):
    a cumulative average over all batches, no gradients, weights untouched. Returns the batch count."""
    first = next(batches, None)
    if first is None:
        raise ValueError("no images to recalibrate BatchNorm with")
    layers = batchnorm_layers(model)
    was_training = model.training
    saved = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    n = 0
    try:
        for x in itertools.chain([first], batches):
            model(x.to(device))
            n += 1
    finally:
        for m, mom in zip(layers, saved):
            m.momentum = mom
        model.train(was_training)
    return n
