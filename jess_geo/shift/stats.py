"""Feature statistics of a network's BatchNorm inputs, and a scene's distance from the training data's.

A BatchNorm layer normalises its input with the mean and variance it saw in training; a scene
from another camera or season moves those inputs. :func:`feature_statistics` records, for a few
BatchNorm layers spread through the network, the per-channel mean and variance of their inputs
over some batches; :func:`shift_score` is the mean over those layers of a per-channel Gaussian
distance between a scene's statistics and the training data's. Stored in a model file's metadata
as ``feature_stats`` (JSON): the BatchNorm buffers themselves are not enough, because a model
adapted with split BatchNorm carries the target's running statistics.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Iterator

import numpy as np
import torch

__all__ = ["DEFAULT_METRIC", "FALLBACK_THRESHOLD", "KIND", "MAX_LAYERS", "METRICS", "THRESHOLD", "FeatureCollector",
           "bn_layers", "feature_statistics", "layer_distances", "running_statistics", "shift_score", "threshold_for"]

KIND = "batchnorm_inputs"
METRICS = ("kl", "w2", "smd")
DEFAULT_METRIC = "kl"
# kl scores above these look like a new camera. Origin: benchmarks/results/shift_score.md, the
# camera split's trained baselines (7 models, photos they were not trained on): against stored
# feature_stats unshifted photos scored 0.019-0.083 and CAMERA-shifted ones 0.197-0.631; against
# BatchNorm running statistics (the fallback) 0.057-0.170 and 0.287-0.678. Each threshold sits
# near the geometric middle of its gap.
THRESHOLD = 0.12
FALLBACK_THRESHOLD = 0.22


def threshold_for(origin: str) -> float:
    """The default threshold for a reference of ``origin`` (``"stored"`` or ``"fallback"``)."""
    return FALLBACK_THRESHOLD if origin == "fallback" else THRESHOLD
MAX_LAYERS = 12  # layers spread evenly through the network: a few thousand numbers in the metadata
DIGITS = 5  # significant digits stored


def bn_layers(model: torch.nn.Module, max_layers: int | None = MAX_LAYERS) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` of up to ``max_layers`` BatchNorm layers, evenly spaced in module order."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if max_layers is None or len(layers) <= max_layers:
        return layers
    picks = np.linspace(0, len(layers) - 1, max_layers).round().astype(int)
    return [layers[i] for i in dict.fromkeys(picks.tolist())]


class _Moments:
    """Per-channel count, mean and M2 (sum of squared deviations), merged batch by batch (float64)."""

    def __init__(self) -> None:
        self.n = 0.0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().float()
        n_b = float(x.shape[0] * x.shape[2] * x.shape[3])
        mean_b = x.mean(dim=(0, 2, 3)).double().cpu().numpy()
        m2_b = x.var(dim=(0, 2, 3), unbiased=False).double().cpu().numpy() * n_b
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta ** 2 * (self.n * n_b / n)
        self.n = n

    def var(self) -> np.ndarray:
        assert self.m2 is not None
        return self.m2 / max(self.n, 1.0)


class FeatureCollector:
    """Forward pre-hooks on BatchNorm layers that accumulate their inputs' per-channel moments.

    ``with FeatureCollector(model) as fc: model(x)...; fc.statistics()``; ``limit`` batches at
    most are recorded, then the hooks remove themselves.
    """

    def __init__(self, model: torch.nn.Module, max_layers: int | None = MAX_LAYERS, limit: int | None = None) -> None:
        self.layers = bn_layers(model, max_layers)
        self.moments = {name: _Moments() for name, _ in self.layers}
        self.limit = limit
        self.calls: dict[str, int] = {name: 0 for name, _ in self.layers}
        self.handles: list[Any] = []
        self._handles: dict[str, Any] = {}

    def _hook(self, name: str) -> Any:
        def hook(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if self.limit is not None and self.calls[name] >= self.limit:
                return
            self.calls[name] += 1
            self.moments[name].add(args[0])
            if self.limit is not None and self.calls[name] >= self.limit:
                self._handles[name].remove()  # done: later batches run unwatched (and on a folded copy)
        return hook

    def __enter__(self) -> "FeatureCollector":
        self._handles = {name: m.register_forward_pre_hook(self._hook(name)) for name, m in self.layers}
        self.handles = list(self._handles.values())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the hooks (the moments are kept)."""
        for h in self.handles:
            h.remove()
        self.handles = []

    @property
    def batches(self) -> int:
        """How many batches were recorded."""
        return min(self.calls.values()) if self.calls else 0

    def statistics(self) -> dict[str, Any]:
        """The recorded moments as a ``feature_stats`` dict (JSON-ready)."""
        layers = []
        for name, _ in self.layers:
            mo = self.moments[name]
            if mo.mean is None:
                continue
            layers.append({"name": name, "mean": _round(mo.mean), "var": _round(mo.var())})
        pixels = int(self.moments[self.layers[0][0]].n) if self.layers else 0
        return {"kind": KIND, "version": 1, "layers": layers, "pixels": pixels, "batches": self.batches}


def _round(values: np.ndarray) -> list[float]:
    return [float(f"{v:.{DIGITS}g}") for v in np.asarray(values, dtype=np.float64)]


@contextlib.contextmanager
def _eval(model: torch.nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def feature_statistics(model: torch.nn.Module, batches: Iterable[torch.Tensor | np.ndarray],
                       max_layers: int | None = MAX_LAYERS) -> dict[str, Any]:
    """Per-channel mean and variance of the inputs of up to ``max_layers`` BatchNorm layers of
    ``model`` (in eval mode, no gradients) over ``batches`` of normalised input ``(B, C, H, W)``."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    with _eval(model), torch.inference_mode(), FeatureCollector(model, max_layers) as fc:
        for x in batches:
            xt = torch.as_tensor(x)
            model(xt.to(device=device, dtype=dtype))
    return fc.statistics()


def running_statistics(model: torch.nn.Module, max_layers: int | None = MAX_LAYERS) -> dict[str, Any]:
    """A fallback reference for models without ``feature_stats``: the BatchNorm running statistics
    (the inputs' moments during training; the target's after split-BatchNorm adaptation)."""
    layers = []
    for name, m in bn_layers(model, max_layers):
        if getattr(m, "running_mean", None) is None:
            continue
        layers.append({"name": name, "mean": _round(m.running_mean.double().cpu().numpy()),
                       "var": _round(m.running_var.double().cpu().numpy())})
    return {"kind": KIND, "version": 1, "layers": layers, "pixels": 0, "batches": 0, "origin": "batchnorm running statistics"}


def _distance(m_r: np.ndarray, v_r: np.ndarray, m_s: np.ndarray, v_s: np.ndarray, metric: str) -> float:
    """Mean over channels of a Gaussian distance between reference and scene (variances floored)."""
    floor = max(1e-6, 1e-2 * float(np.median(v_r)))
    v_r, v_s = np.maximum(v_r, floor), np.maximum(v_s, floor)
    if metric == "kl":  # symmetric Kullback-Leibler divergence of two 1-D Gaussians, halved
        d = 0.25 * (v_r / v_s + v_s / v_r - 2.0) + 0.25 * (m_s - m_r) ** 2 * (1.0 / v_r + 1.0 / v_s)
    elif metric == "w2":  # squared 2-Wasserstein distance in units of the reference variance
        d = ((m_s - m_r) ** 2 + (np.sqrt(v_s) - np.sqrt(v_r)) ** 2) / v_r
    elif metric == "smd":  # standardised mean difference
        d = np.abs(m_s - m_r) / np.sqrt(v_r)
    else:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    return float(np.mean(d))


def layer_distances(reference: dict[str, Any], scene: dict[str, Any], metric: str = "kl") -> dict[str, float]:
    """``{layer name: distance}`` for every layer both statistics hold with the same channel count."""
    ref = {layer["name"]: layer for layer in reference.get("layers", [])}
    out: dict[str, float] = {}
    for layer in scene.get("layers", []):
        r = ref.get(layer["name"])
        if r is None or len(r["mean"]) != len(layer["mean"]):
            continue
        out[layer["name"]] = _distance(np.asarray(r["mean"], float), np.asarray(r["var"], float),
                                       np.asarray(layer["mean"], float), np.asarray(layer["var"], float), metric)
    return out


def shift_score(reference: dict[str, Any], scene_stats: dict[str, Any], metric: str = DEFAULT_METRIC) -> float:
    """The mean over shared BatchNorm layers of the per-channel distance (0: identical; NaN: no layer shared)."""
    d = layer_distances(reference, scene_stats, metric)
    return float(np.mean(list(d.values()))) if d else math.nan
