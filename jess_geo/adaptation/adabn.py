"""AdaBN (Li et al. 2016): BatchNorm running statistics re-estimated on unlabelled target images.

No training and no labels: random crops of the target images pass through the network in
training mode, and every BatchNorm layer's running mean and variance become the cumulative
average over them. Weights, BatchNorm affine parameters and everything else stay as they were.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jess_geo.adaptation.common import (
    Crops, adapted_metadata, check_positive, crop_batches, figures, finish, image_scenes, images_of, labelled_scenes,
    record, start, window_batches,
)
from jess_geo.training.batchnorm import recalibrate

ADABN_SAMPLES = 64  # target crops the statistics are averaged over


def adapt_adabn(
    model: str | Path, target_images: str | Path, output: str | Path, *, crop_size: int = 256, batch_size: int = 8,
    samples: int = ADABN_SAMPLES, seed: int = 0, target_masks: str | Path | None = None, overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``output``: ``model`` with BatchNorm statistics of ``samples`` random target crops.

    ``target_masks`` (optional) are used only to measure accuracy and mIoU before and after.
    Returns the summary (:func:`jess_geo.adaptation.common.finish`).
    """
    t0 = time.perf_counter()
    check_positive(crop_size=crop_size, batch_size=batch_size, samples=samples)
    model_path, out, base = start(model, output, overwrite)
    meta, crops = base.metadata, Crops(crop_size, batch_size, seed)
    scenes = image_scenes(target_images, meta)
    measured = labelled_scenes(target_images, target_masks, meta) if target_masks else scenes
    windows = window_batches(measured, meta, crops)
    k = len(meta["classes"])
    before = figures(base.model, windows, k)
    batches = recalibrate(base.model, images_of(crop_batches(scenes, meta, crops, samples)))
    settings = {"samples": samples, "batches": batches, "crop_size": crop_size, "batch_size": batch_size, "seed": seed}
    rec = record("adabn", model_path, meta, target_images, settings)
    rec.update(before=before, after=figures(base.model, windows, k))
    return finish(out, base.model, adapted_metadata(meta, rec), time.perf_counter() - t0)
