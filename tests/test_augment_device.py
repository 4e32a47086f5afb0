"""Augmentation runs where Lightning put the batch (a GPU in real runs): no CPU tensor mixed in."""

from __future__ import annotations

import torch

from jess_geo.data.augment import AugmentConfig, augment_batch


def test_augmentation_keeps_the_batch_on_its_device() -> None:
    # The 'meta' device stands in for a GPU: adding a CPU tensor to it fails just as on CUDA.
    image = torch.zeros(2, 3, 32, 32, device="meta")
    mask = torch.zeros(2, 32, 32, dtype=torch.int64, device="meta")
    cfg = AugmentConfig(brightness=0.1, contrast=0.1, color_noise=0.05)
    out_image, out_mask = augment_batch(image, mask, cfg, generator=torch.Generator().manual_seed(0))
    assert out_image.device.type == "meta" and out_mask.device.type == "meta"
    assert out_image.shape == image.shape and out_mask.shape == mask.shape
