"""Self-describing model files: weights plus JSON metadata, loaded without unpickling objects.

The metadata is checked field by field on every read (:mod:`jess_geo.models.metadata`) and
before every save. ``read_metadata`` also reads exported ``.onnx`` models (their metadata is
the same JSON, stored by :mod:`jess_geo.export.onnx_meta`). torch is imported only by the
functions that need it.
"""

from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jess_geo
from jess_geo.classes import IGNORE
from jess_geo.errors import JessGeoError, ModelFileError
from jess_geo.io.atomic import atomic_output
from jess_geo.models.metadata import REQUIRED_KEYS, validate_metadata

if TYPE_CHECKING:
    import torch

__all__ = ["FORMAT", "FORMAT_VERSION", "REQUIRED_KEYS", "LoadedModel", "bundled_demo_model", "copy_model_file",
           "load_model_file", "read_metadata", "save_model_file"]

FORMAT = "jess-geo-model"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A network in eval mode (float32, CPU) and its metadata."""

    model: torch.nn.Module
    metadata: dict[str, Any]


def save_model_file(path: str | Path, model: torch.nn.Module, metadata: dict[str, Any], half: bool = False) -> None:
    """Write weights and metadata atomically; ``half`` stores float tensors as float16.

    Raises:
        ModelFileError: the metadata would not load again (a missing or malformed field).
    """
    import torch

    meta = dict(metadata)
    meta.setdefault("jess_geo_version", jess_geo.__version__)
    meta.setdefault("ignore_index", IGNORE)
    validate_metadata(meta, f"Metadata for {Path(path).name}")
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().clone()
        if half and v.is_floating_point():
            v = v.half()
        state[k] = v
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": json.dumps(meta, sort_keys=True),
        "state_dict": state,
    }
    with atomic_output(Path(path)) as tmp:
        torch.save(payload, tmp)


# What torch's weights-only unpickler says when a file asks for code (a class, a function) to be
# imported or called: such a file carries pickled objects and is refused before anything runs.
_OBJECT_SIGNS = (
    "Unsupported global",
    "is blocked",
    "unrecognized function",
    "Can only create new object",
    "must be imported to load",
    "Unsupported class",
)


def _read_payload(path: Path) -> dict[str, Any]:
    import torch

    if not path.exists():
        raise ModelFileError(f"Model file {path} does not exist; pass --model with a file written by `jess-geo train`.")
    if not path.is_file():
        raise ModelFileError(f"Model file {path} is a folder, not a file; pass the model.pt written by `jess-geo train`.")
    corrupt = ModelFileError(f"Model file {path} is corrupt or truncated; copy it again or retrain.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the verdict follows below
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if any(sign in str(exc) for sign in _OBJECT_SIGNS):
            raise ModelFileError(
                f"Model file {path} carries pickled Python objects and was refused (not executed); use a model written by `jess-geo train`."
            ) from None
        raise corrupt from None
    except Exception:  # noqa: BLE001 - weights_only=True runs no code: any failure means a damaged file
        raise corrupt from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a jess-geo model file; use a model written by `jess-geo train`.")
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"Model file {path} has no valid format version; retrain it with `jess-geo train`.")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"Model file {path} needs a newer jess-geo (format {version}); upgrade jess-geo.")
    return payload


def _metadata_of(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(payload["metadata"])
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"Model file {path} has no readable metadata; retrain it with `jess-geo train`.") from None
    return validate_metadata(meta, f"Model file {path}")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The checked metadata of a model file (``.pt`` or exported ``.onnx``), without building the network."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        try:
            from jess_geo.export.onnx_meta import read_onnx_metadata
        except ImportError:
            raise ModelFileError(f"Model file {path} is an ONNX model, which this jess-geo cannot read; "
                                 "pass the .pt model file or install a jess-geo with ONNX support.") from None
        return validate_metadata(read_onnx_metadata(path), f"Model file {path}")
    return _metadata_of(_read_payload(path), path)


def load_model_file(path: str | Path, inference: bool = False) -> LoadedModel:
    """Load a model file: build the network from its metadata and fill its weights strictly.

    ``inference=True`` builds EfficientNet-Lite U-Nets with :mod:`jess_geo.models.lite_unet`
    (the same network and logits, without importing smp, timm and torchvision); use it only
    where the network just predicts.
    """
    import torch

    path = Path(path)
    payload = _read_payload(path)
    meta = _metadata_of(payload, path)
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ModelFileError(f"Model file {path} holds no weights; retrain it with `jess-geo train`.")
    try:
        model = _build(meta["architecture"], state_dict, inference)
    except JessGeoError as exc:
        raise ModelFileError(f"Model file {path} describes a network this jess-geo cannot build ({exc}); upgrade jess-geo or retrain.") from None
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"Model file {path} has an unreadable architecture; retrain it with `jess-geo train`.") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise ModelFileError(f"Model file {path} has weights that do not fit its architecture; retrain it.") from None
    model.eval()
    return LoadedModel(model=model, metadata=meta)


def _build(architecture: dict[str, Any], state_dict: dict[str, Any], inference: bool) -> torch.nn.Module:
    if inference:
        from jess_geo.models import lite_unet

        if lite_unet.supports(architecture):
            try:
                return lite_unet.build_lite_unet(architecture, state_dict)
            except ValueError:
                pass  # an unusual layout: smp builds it (or says why not)
    from jess_geo.models.factory import build_model

    return build_model(architecture)


def bundled_demo_model() -> Path:
    """Path of the small demo model shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "assets" / "demo_model.pt"


def copy_model_file(src: str | Path, dst: str | Path, half: bool = True) -> None:
    """Re-save a model file (e.g. in half precision, for shipping); metadata unchanged."""
    loaded = load_model_file(src)
    save_model_file(dst, loaded.model, loaded.metadata, half=half)


if __name__ == "__main__":  # python -m jess_geo.models.modelfile SRC DST: half-precision copy
    import sys

    copy_model_file(sys.argv[1], sys.argv[2], half=True)
