"""Batch augmentations on tensors: flips, 90-degree rotations, colour noise, optional jitter."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    """What to apply; colour noise std is in normalised units (the paper: 0.05 on [0, 1] pixels)."""

    flips: bool = True
    rotations: bool = True
    color_noise: float = 0.05
    brightness: float = 0.0
    contrast: float = 0.0


def augment_batch(
    image: torch.Tensor, mask: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the same geometric transform to image ``(N, C, H, W)`` and mask ``(N, H, W)`` per sample."""
    n = image.shape[0]
    out_i, out_m = [], []
    g = generator
    for k in range(n):
        img, msk = image[k], mask[k]
        if cfg.flips:
            if torch.rand(1, generator=g).item() < 0.5:
                img, msk = img.flip(-1), msk.flip(-1)
            if torch.rand(1, generator=g).item() < 0.5:
                img, msk = img.flip(-2), msk.flip(-2)
        if cfg.rotations and img.shape[-1] == img.shape[-2]:
            r = int(torch.randint(0, 4, (1,), generator=g).item())
            if r:
                img, msk = torch.rot90(img, r, (-2, -1)), torch.rot90(msk, r, (-2, -1))
        out_i.append(img)
        out_m.append(msk)
    image, mask = torch.stack(out_i), torch.stack(out_m)
    if cfg.brightness > 0:
        image = image + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * cfg.brightness
    if cfg.contrast > 0:
        image = image * (1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * cfg.contrast)
    if cfg.color_noise > 0:
        image = image + torch.randn(image.shape, generator=g) * cfg.color_noise
    return image.contiguous(), mask.contiguous()
