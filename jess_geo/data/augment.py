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
    scale_jitter: float = 0.0


def scale_jitter(
    image: torch.Tensor, mask: torch.Tensor, factor: float, pad_label: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zoom a batch by ``factor`` about its centre, keeping its size: image bilinear, mask nearest.

    Zooming out pads the border with zeros (image) and ``pad_label`` (mask: ignored by the loss).
    """
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    img = F.interpolate(image, size=(nh, nw), mode="bilinear", align_corners=False)
    msk = F.interpolate(mask[:, None].float(), size=(nh, nw), mode="nearest")[:, 0].to(mask.dtype)
    out_i = image.new_zeros(image.shape)
    out_m = torch.full_like(mask, pad_label)
    # Centre crop (zoom in) or centre paste (zoom out), per axis.
    sr, dr, ln_r = (nh - h) // 2, 0, h
    if nh < h:
        sr, dr, ln_r = 0, (h - nh) // 2, nh
    sc, dc, ln_c = (nw - w) // 2, 0, w
    if nw < w:
        sc, dc, ln_c = 0, (w - nw) // 2, nw
    out_i[..., dr : dr + ln_r, dc : dc + ln_c] = img[..., sr : sr + ln_r, sc : sc + ln_c]
    out_m[..., dr : dr + ln_r, dc : dc + ln_c] = msk[..., sr : sr + ln_r, sc : sc + ln_c]
    return out_i, out_m


def augment_batch(
    image: torch.Tensor,
    mask: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator | None = None,
    pad_label: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the same geometric transform to image ``(N, C, H, W)`` and mask ``(N, H, W)`` per sample.

    ``pad_label`` fills mask pixels that scale jitter uncovers (255: ignored by the loss).
    """
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
    if cfg.scale_jitter > 0:
        lo, hi = 1.0 / (1.0 + cfg.scale_jitter), 1.0 + cfg.scale_jitter
        factor = lo + (hi - lo) * float(torch.rand(1, generator=g).item())
        image, mask = scale_jitter(image, mask, factor, pad_label)
    if cfg.brightness > 0:
        image = image + ((torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * cfg.brightness).to(image.device)
    if cfg.contrast > 0:
        image = image * (1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * cfg.contrast).to(image.device)
    if cfg.color_noise > 0:
        image = image + (torch.randn(image.shape, generator=g) * cfg.color_noise).to(image.device)
    return image.contiguous(), mask.contiguous()
