"""Camera simulation: fine-tuning on the labelled source photos re-rendered as the target camera sees them.

Colour alignment and BatchNorm statistics cannot teach a network to read a softer, noisier image.
This method measures, from the unlabelled target images alone, how the target camera differs
from the source one, renders the labelled source images that way and fine-tunes on them:

1. colour: a per-band histogram-matching table from the source images toward the target's
   (:mod:`jess_geo.adaptation.colour`, the direction opposite to ``histmatch``);
2. sharpness and noise: a Gaussian blur and white noise fitted to the target's power spectrum
   against the colour-matched source's (:mod:`jess_geo.adaptation.appearance`);
3. ``steps`` AdamW steps of cross-entropy on crops of the rendered source images (fresh noise
   for every crop), the weights averaged over the second half of the steps (``average``), then
   BatchNorm running statistics re-estimated on target crops (AdaBN);
4. optionally (``pseudo_steps``) self-training: the model's most confident predictions on the
   target images, kept per class (:mod:`jess_geo.adaptation.pseudo`), label half of each batch,
   rendered source crops the other half; then target BatchNorm statistics again.

The target images are read as predict reads them (through the model's colour alignment when it
has one, so ``histmatch`` then ``camsim`` works); their labels, if given, only measure.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from jess_geo.adaptation.adabn import ADABN_SAMPLES
from jess_geo.adaptation.appearance import blur, fit_degradation, power_spectrum
from jess_geo.adaptation.colour import LEVELS, apply_tables, band_quantiles, matching_table
from jess_geo.adaptation.common import (
    Crops, adapted_metadata, check_positive, crop_batches, figures, finish, image_scenes, images_of, labelled_scenes,
    record, start, window_batches,
)
from jess_geo.adaptation.fewshot import finetune_steps, labelled_crops
from jess_geo.adaptation.pseudo import PSEUDO_KEEP, pseudo_labels, scene_probabilities
from jess_geo.classes import IGNORE
from jess_geo.data.scenes import Scene
from jess_geo.errors import InputError
from jess_geo.training.batchnorm import recalibrate

# Defaults measured in benchmarks/adapt_toolbox.py (camera split, default-recipe models, 3 seeds):
# 240 steps with the weights averaged over the second half +8.5 points, 120 steps of the last
# weights +7.3.
CAMSIM_STEPS = 240
CAMSIM_LR = 1e-3  # AdamW
SCHEDULES = ("constant", "cosine")  # of the learning rate over the steps


def noisy(batches: Iterator[dict[str, torch.Tensor]], std: np.ndarray, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """``batches`` with Gaussian noise of ``std`` per band (normalised units) added to every image."""
    gen = torch.Generator().manual_seed(seed)
    scale = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
    for batch in batches:
        if float(scale.max()) > 0:
            image = batch["image"]
            batch = dict(batch, image=image + scale * torch.randn(image.shape, generator=gen))
        yield batch


def self_training_batches(pseudo: list[Scene], rendered: list[Scene], meta: dict[str, Any], crops: Crops, steps: int,
                          std: np.ndarray) -> Iterator[dict[str, torch.Tensor]]:
    """``steps`` batches: half pseudo-labelled target crops, half rendered source crops (with fresh noise)."""
    n_source = max(crops.batch_size // 2, 1)
    t = labelled_crops(pseudo, meta, Crops(crops.crop_size, crops.batch_size - n_source, crops.seed + 2), steps)
    s = noisy(labelled_crops(rendered, meta, Crops(crops.crop_size, n_source, crops.seed + 3), steps), std, crops.seed + 3)
    for a, b in zip(t, s):
        yield {k: torch.cat([a[k], b[k]]) for k in ("image", "mask")}


def adapt_camsim(
    model: str | Path, images: str | Path, masks: str | Path, target_images: str | Path, output: str | Path, *,
    steps: int = CAMSIM_STEPS, lr: float = CAMSIM_LR, crop_size: int = 256, batch_size: int = 8, seed: int = 0,
    samples: int = ADABN_SAMPLES, label_field: str | None = None, target_masks: str | Path | None = None,
    schedule: str = "constant", average: bool = True, pseudo_steps: int = 0, pseudo_keep: float = PSEUDO_KEEP,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``output``: ``model`` fine-tuned on the labelled source ``images``/``masks`` rendered with the
    colours, blur and noise measured on ``target_images``, BatchNorm statistics of the target.

    ``pseudo_steps`` > 0 adds that many self-training steps on the target (``pseudo_keep`` of each
    predicted class's pixels as labels). ``target_masks`` (optional) only measure accuracy and mIoU
    before and after.
    """
    t0 = time.perf_counter()
    check_positive(steps=steps, lr=lr, crop_size=crop_size, batch_size=batch_size, samples=samples)
    if schedule not in SCHEDULES:
        raise InputError(f"The learning-rate schedule {schedule!r} is not known; choose one of {', '.join(SCHEDULES)}.")
    if pseudo_steps < 0 or not 0 < pseudo_keep <= 1:
        raise InputError(f"--pseudo-steps {pseudo_steps} / --pseudo-keep {pseudo_keep}: give steps >= 0 and a keep share in (0, 1].")
    model_path, out, base = start(model, output, overwrite)
    meta, crops, net = base.metadata, Crops(crop_size, batch_size, seed), base.model
    source = labelled_scenes(images, masks, meta, label_field=label_field, source=True)
    target = image_scenes(target_images, meta)
    src_q = band_quantiles([s.image for s in source], [s.valid for s in source], LEVELS, "source images")
    tgt_q = band_quantiles([s.image for s in target], [s.valid for s in target], LEVELS, "target images")
    tables = tuple(matching_table(s, t) for s, t in zip(src_q, tgt_q))  # source colours -> target colours
    coloured = [apply_tables(s.image, tables) for s in source]
    freqs, p_source = power_spectrum(coloured, [s.valid for s in source], "source images")
    _, p_target = power_spectrum([s.image for s in target], [s.valid for s in target], "target images")
    camera = fit_degradation(freqs, p_source, p_target)
    rendered = [dataclasses.replace(s, image=blur(img, camera.sigma)) for s, img in zip(source, coloured)]

    measured = labelled_scenes(target_images, target_masks, meta) if target_masks else target
    windows, k = window_batches(measured, meta, crops), len(meta["classes"])
    before = figures(net, windows, k)
    torch.manual_seed(seed)
    std = camera.noise / np.asarray(meta["normalization"]["std"], dtype=np.float64)
    cosine = steps if schedule == "cosine" else None
    history = finetune_steps(net, noisy(labelled_crops(rendered, meta, crops, steps), std, seed), lr, cosine_steps=cosine,
                             average_from=steps // 2 if average else None)
    stats = Crops(crop_size, batch_size, seed + 1)
    recalibrate(net, images_of(crop_batches(target, meta, stats, samples)))
    pseudo = None
    if pseudo_steps:
        labelled = [dataclasses.replace(s, target=pseudo_labels(scene_probabilities(net, s.image, meta, tile=crop_size),
                                                                s.valid, pseudo_keep)) for s in target]
        history += finetune_steps(net, self_training_batches(labelled, rendered, meta, Crops(crop_size, batch_size, seed),
                                                             pseudo_steps, std), lr,
                                  cosine_steps=pseudo_steps if cosine else None)
        recalibrate(net, images_of(crop_batches(target, meta, Crops(crop_size, batch_size, seed + 4), samples)))
        pseudo = {"steps": pseudo_steps, "keep": pseudo_keep,
                  "labelled_pixels": int(sum(int((s.target != IGNORE).sum()) for s in labelled))}
    settings = {"steps": steps, "lr": lr, "schedule": schedule,
                "weights": "mean over the second half of the steps" if average else "last step",
                "crop_size": crop_size, "batch_size": batch_size, "seed": seed,
                "samples": samples, "label_field": label_field, "source_images": [s.info.path.name for s in source],
                "camera": {k2: round(v, 4) for k2, v in camera.as_dict().items()},
                "colour": "per-band histogram matching of the source toward the target",
                "batchnorm": f"trained on the rendered source; running statistics re-estimated on {samples} target crops",
                "self_training": pseudo, "loss_first_step": history[0], "loss_last_step": history[-1]}
    rec = record("camsim", model_path, meta, target_images, settings)
    rec.update(before=before, after=figures(net, windows, k))
    return finish(out, net, adapted_metadata(meta, rec), time.perf_counter() - t0)
