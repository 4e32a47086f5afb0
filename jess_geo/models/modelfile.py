"""Self-describing model files: weights plus JSON metadata, loaded without unpickling objects."""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import jess_geo
from jess_geo.errors import ModelFileError
from jess_geo.io.atomic import atomic_output
from jess_geo.models.factory import build_model

FORMAT = "jess-geo-model"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("architecture", "bands", "normalization", "classes", "resolution", "tile_size", "overlap")


@dataclass
class LoadedModel:
    """A network in eval mode (float32, CPU) and its metadata."""

    model: torch.nn.Module
    metadata: dict[str, Any]


def save_model_file(path: str | Path, model: torch.nn.Module, metadata: dict[str, Any], half: bool = False) -> None:
    """Write weights and metadata atomically; ``half`` stores float tensors as float16."""
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise ValueError(f"model metadata lacks {missing}")
    meta = dict(metadata)
    meta.setdefault("jess_geo_version", jess_geo.__version__)
    meta.setdefault("ignore_index", 255)
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


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelFileError(f"Model file {path} does not exist; pass --model with a file written by `jess-geo train`.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported" in str(exc) or "global" in str(exc).lower():
            raise ModelFileError(
                f"Model file {path} carries pickled Python objects and was refused (not executed); use a model written by `jess-geo train`."
            ) from None
        raise ModelFileError(f"Model file {path} is corrupt or truncated; copy it again or retrain.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
        raise ModelFileError(f"Model file {path} is corrupt or truncated; copy it again or retrain.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a jess-geo model file; use a model written by `jess-geo train`.")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"Model file {path} needs a newer jess-geo (format {payload['format_version']}); upgrade jess-geo.")
    return payload


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a model file, without building the network."""
    payload = _read_payload(Path(path))
    try:
        meta = json.loads(payload["metadata"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ModelFileError(f"Model file {path} has no readable metadata; retrain it with `jess-geo train`.") from None
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"Model file {path} lacks metadata {missing}; retrain it with `jess-geo train`.")
    return meta


def load_model_file(path: str | Path) -> LoadedModel:
    """Load a model file: build the network from its metadata and fill its weights strictly."""
    path = Path(path)
    payload = _read_payload(path)
    meta = read_metadata(path) if "metadata" not in payload else json.loads(payload["metadata"])
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"Model file {path} lacks metadata {missing}; retrain it with `jess-geo train`.")
    model = build_model(meta["architecture"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise ModelFileError(f"Model file {path} has weights that do not fit its architecture; retrain it.") from None
    model.eval()
    return LoadedModel(model=model, metadata=meta)


def bundled_demo_model() -> Path:
    """Path of the small demo model shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "assets" / "demo_model.pt"
