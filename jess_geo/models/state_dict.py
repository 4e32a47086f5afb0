"""Mapping a foreign state dict onto an encoder's keys, and adapting RGB filters to other inputs.

A foreign state dict (other key names, e.g. ``efficientnet_pytorch``'s ``_conv_stem`` /
``_blocks.N``) is mapped onto the encoder by position: tensors are paired in order, and each
pair must agree in its last name part (``weight``, ``bias``, ``running_mean``, ...), in shape
and in kind (float or integer). Every encoder tensor must be filled, or nothing is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from jess_geo.errors import InputError

__all__ = ["adapt_first_conv", "map_state_dict"]

# Source keys under these top-level names are classifier heads, never part of an smp encoder.
HEAD_NAMES = frozenset({"_fc", "fc", "classifier", "head", "last_linear"})
BATCH_COUNTER = "num_batches_tracked"


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




def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
