"""Model factory: the one place a segmentation network is built from its description."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from jess_geo.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEFAULT_ENCODER = "timm-tf_efficientnet_lite0"
ARCHITECTURES = ("unet",)  # smp classes, imported when a network is built (smp -> timm -> torchvision is slow)


def architecture_dict(
    encoder: str = DEFAULT_ENCODER,
    in_channels: int = 3,
    num_classes: int = 2,
    decoder_channels: Sequence[int] = (128, 64, 32, 16, 16),
    arch: str = "unet",
) -> dict[str, Any]:
    """The JSON-able description stored in a model file."""
    return {
        "arch": arch,
        "encoder": encoder,
        "decoder_channels": [int(c) for c in decoder_channels],
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
    }


def build_model(architecture: dict[str, Any]) -> "torch.nn.Module":
    """Build an (untrained) network from an architecture dict; one output logit per class."""
    import segmentation_models_pytorch as smp

    arch = architecture.get("arch", "unet")
    if arch not in ARCHITECTURES:
        raise ConfigError(f"Unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}.")
    encoder = architecture["encoder"]
    if encoder not in smp.encoders.get_encoder_names():
        names = ", ".join(sorted(n for n in smp.encoders.get_encoder_names() if "efficientnet" in n or "resnet" in n or "mobilenet" in n)[:12])
        raise ConfigError(f"Unknown encoder {encoder!r}; choose an smp encoder such as {names}.")
    decoder = list(architecture.get("decoder_channels", (256, 128, 64, 32, 16)))
    return {"unet": smp.Unet}[arch](
        encoder_name=encoder,
        encoder_weights=None,
        in_channels=int(architecture["in_channels"]),
        classes=int(architecture["num_classes"]),
        encoder_depth=len(decoder),
        decoder_channels=decoder,
    )


def size_multiple(architecture: dict[str, Any]) -> int:
    """Input height and width must be multiples of this (2 ** encoder depth)."""
    return 2 ** len(architecture.get("decoder_channels", (0,) * 5))
