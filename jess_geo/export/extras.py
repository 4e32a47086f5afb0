"""Optional packages of the ``[onnx]`` and ``[openvino]`` extras, imported on demand."""

from __future__ import annotations

import importlib
from types import ModuleType

from jess_geo.errors import InputError

# top-level package -> the jess-geo extra that installs it
EXTRA_OF = {"onnx": "onnx", "onnxruntime": "onnx", "openvino": "openvino"}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise a one-line InputError naming the extra that installs it."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRA_OF.get(package, "onnx")
        raise InputError(f"{package} is not installed; install it with: pip install 'jess-geo[{extra}]'.") from None
