"""PyTorch runtime: the device choice, the network in its fast layout, and a device-side fast path."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jess_geo.errors import InputError
from jess_geo.models.layout import fast_input, to_fast_layout
from jess_geo.models.lite_unet import fold_batchnorm
from jess_geo.models.modelfile import LoadedModel, load_model_file


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an unavailable device is an InputError."""
    device = (device or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device auto or cpu.")
        return torch.device(device)
    if device == "mps":
        if not has_mps:
            raise InputError("--device mps was asked for but this PyTorch has no Apple MPS support here; use --device auto or cpu.")
        return torch.device("mps")
    raise InputError(f"Unknown device {device!r}; choose auto, cpu, cuda or mps.")


def prepare_network(net: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """The network on ``dev`` in evaluation mode and in its fast memory layout (changes ``net`` in place)."""
    return to_fast_layout(net.to(dev).eval(), dev)


class TorchRuntime:
    """A ``torch.nn.Module`` behind the :class:`~jess_geo.inference.runtime.Runtime` interface."""

    name = "torch"

    def __init__(self, net: torch.nn.Module, dev: torch.device) -> None:
        self.dev = dev
        self.device = str(dev)
        self.net = prepare_network(net, dev)  # as loaded, BatchNorm kept: what hooks and statistics see
        self._folded: torch.nn.Module | None = None  # built on first use (the network must not change later)
        self._fold_tried = False
        self._modules = list(self.net.modules())

    def _network(self) -> torch.nn.Module:
        """The BatchNorm-folded copy (built on first use, about 30 ms), or the network itself while a
        hook is on any of its modules (predict's shift notice watches the first batches)."""
        if any(m._forward_pre_hooks or m._forward_hooks for m in self._modules):
            return self.net
        if not self._fold_tried:
            self._fold_tried = True
            folded = fold_batchnorm(self.net)  # None for networks other than the Lite U-Net
            self._folded = prepare_network(folded, self.dev) if folded is not None else None
        return self._folded if self._folded is not None else self.net

    @classmethod
    def open(cls, model: str | Path | LoadedModel, device: str = "auto") -> "TorchRuntime":
        """Load ``model`` (a file or a LoadedModel) onto ``device``."""
        dev = resolve_device(device)
        loaded = model if isinstance(model, LoadedModel) else load_model_file(model, inference=True)
        return cls(loaded.model, dev)

    def _run(self, x: np.ndarray) -> torch.Tensor:
        xt = torch.from_numpy(x)
        if self.dev.type == "cuda":
            xt = xt.pin_memory().to(self.dev, non_blocking=True)
        elif self.dev.type != "cpu":
            xt = xt.to(self.dev)
        amp = torch.autocast("cuda", dtype=torch.float16) if self.dev.type == "cuda" else contextlib.nullcontext()
        with amp:
            return self._network()(fast_input(xt, self.dev))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(B, C, H, W)`` -> ``(B, K, H, W)`` float32 logits."""
        with torch.inference_mode():
            return self._run(x).float().cpu().numpy()

    def weighted_logits(self, x: np.ndarray, weights: np.ndarray, work_hw: tuple[int, int]) -> np.ndarray:
        """Fast path: logits cropped to ``work_hw``, resized to the ``(B, h, w)`` weights' size,
        multiplied by them, then the weights: ``(B, K + 1, h, w)``, all on the device."""
        with torch.inference_mode():
            y = self._run(x)[:, :, : work_hw[0], : work_hw[1]].float()
            out_hw = tuple(weights.shape[1:])
            if tuple(work_hw) != out_hw:
                y = F.interpolate(y, size=out_hw, mode="bilinear", align_corners=False)
            w = torch.from_numpy(weights)[:, None].to(self.dev)
            return torch.cat([y * w, w], dim=1).contiguous().cpu().numpy()
