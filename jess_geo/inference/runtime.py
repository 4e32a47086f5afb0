"""The network behind one small interface, so the pipeline runs any runtime the same way.

A :class:`Runtime` turns a normalised batch ``(B, C, H, W)`` float32 (H and W multiples of the
network's size multiple) into logits ``(B, K, H, W)`` float32, and says what it is (``name``:
``"torch"``, ``"onnxruntime"``, ``"openvino"``) and where it runs (``device``). The pipeline calls
nothing else; a runtime may offer ``weighted_logits`` (crop, resize and weight on the device) as
a fast path. :func:`open_runtime` picks the class and imports its libraries only when asked.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from jess_geo.errors import InputError

if TYPE_CHECKING:
    from jess_geo.models.modelfile import LoadedModel

RUNTIMES = ("torch", "onnxruntime", "openvino")


@runtime_checkable
class Runtime(Protocol):
    """What the pipeline needs from a network."""

    name: str
    device: str

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(B, C, H, W)`` float32 normalised input -> ``(B, K, H, W)`` float32 logits."""
        ...


def default_runtime(model: "str | Path | LoadedModel") -> str:
    """``onnxruntime`` for ``.onnx`` files, ``torch`` otherwise."""
    return "onnxruntime" if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx") else "torch"


def open_runtime(model: "str | Path | LoadedModel", runtime: str | None = None, device: str = "auto",
                 metadata: dict[str, Any] | None = None, batch: int | None = None,
                 streams: int | None = None) -> Runtime:
    """The runtime ``runtime`` (default: :func:`default_runtime`) for ``model`` on ``device``.

    ``model`` is a model file path or an already loaded :class:`LoadedModel` (torch only).
    ``batch``: tiles per network call, which sets ONNX Runtime's default concurrent runs;
    ``streams``: those runs set explicitly (ONNX runtimes only).
    Raises InputError for an unknown runtime or an ``.onnx`` file given to torch.
    """
    name = (runtime or default_runtime(model)).lower()
    if name not in RUNTIMES:
        raise InputError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    is_path = isinstance(model, (str, Path))
    if name == "torch" and streams is not None:
        raise InputError("--streams sets concurrent runs of --runtime onnxruntime or openvino; drop it for --runtime torch.")
    if name == "torch":
        from jess_geo.inference.torch_runtime import TorchRuntime

        if is_path and str(model).lower().endswith(".onnx"):
            raise InputError(f"{Path(model).name} is an ONNX model: run it with --runtime onnxruntime or openvino, or give the .pt model to --runtime torch.")
        return TorchRuntime.open(model, device)
    if not is_path:  # a .pt path is exported in memory by open_onnx_runtime
        raise InputError(f"--runtime {name} runs model files (.onnx, or .pt exported in memory); pass a path, or use --runtime torch.")
    try:
        onnx = importlib.import_module("jess_geo.inference.onnx_runtime")
    except ImportError:
        raise InputError(f"--runtime {name} is not available in this jess-geo; use --runtime torch.") from None
    return onnx.open_onnx_runtime(model, runtime=name, device=device, batch=batch, streams=streams)
