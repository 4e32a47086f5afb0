"""BatchNorm statistics for JESS's shared source+target forward pass.

One forward pass over ``cat([source, target])`` saves compute, but BatchNorm then has to be told
whose statistics to use. Three modes:

- ``mixed``: plain BatchNorm over both domains; the running statistics become a source/target mix.
- ``source``: statistics of the source crops only, applied to the target crops too, so the target
  is normalised in training exactly as a source-statistics model normalises it at prediction time.
- ``split``: each domain normalised with its own batch statistics, as the reference code's separate
  passes do. The source's running statistics live in the model as usual; the target's are kept
  beside it (``DomainStatistics``) and are the ones an adapted model is saved with, because the
  adapted model is meant for the target camera.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Iterator

import torch
from torch.nn.modules.batchnorm import _BatchNorm

BATCHNORM_MODES = ("mixed", "source", "split")


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


def _update_running(mean_buf: torch.Tensor, var_buf: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, count: int, factor: float) -> None:
    """Running statistics updated as BatchNorm does (the running variance is the unbiased one)."""
    with torch.no_grad():
        mean_buf.mul_(1 - factor).add_(mean.detach(), alpha=factor)
        var_buf.mul_(1 - factor).add_(var.detach() * (count / max(count - 1, 1)), alpha=factor)


def _forward(m: _BatchNorm, n: int, x: torch.Tensor, mode: str, target: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """One BatchNorm over ``cat([source, target])`` with per-domain statistics, in one elementwise
    pass (per-sample scale and shift) rather than two BatchNorm calls and a concatenation."""
    dims = [0, *range(2, x.dim())]
    per_sample = x[0].numel() // x.shape[1]
    var_s, mean_s = torch.var_mean(x[:n], dim=dims, unbiased=False)
    factor = _momentum(m)
    _update_running(m.running_mean, m.running_var, mean_s, var_s, n * per_sample, factor)
    if mode == "source":
        mean_t, var_t = mean_s, var_s
    else:  # split: the target's own statistics, tracked in the target buffers
        assert target is not None
        var_t, mean_t = torch.var_mean(x[n:], dim=dims, unbiased=False)
        _update_running(target[0], target[1], mean_t, var_t, (x.shape[0] - n) * per_sample, factor)
    mean = torch.stack([mean_s, mean_t])  # (2, C)
    inv = torch.rsqrt(torch.stack([var_s, var_t]) + m.eps)
    scale = inv * m.weight if m.weight is not None else inv
    shift = -mean * scale + (m.bias if m.bias is not None else 0.0)
    domain = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    domain[n:] = 1
    shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
    return _after_norm(m, torch.addcmul(shift[domain].view(shape), x, scale[domain].view(shape)))


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
    if mode not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}")
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
