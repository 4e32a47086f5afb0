"""Few-shot fine-tuning: a few partly labelled target images, every unlabelled pixel ignored.

Labels are raster masks (IGNORE 255, or a value the user names, marks an unlabelled pixel) or
polygons (pixels outside every polygon are unlabelled). Each crop is placed around a labelled
pixel, so sparse labels are all used; the loss is cross-entropy over labelled pixels only. The
whole network trains with BatchNorm in training mode (target batch statistics); the saved model's
BatchNorm running statistics are then re-estimated on all target images, labelled or not.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from jess_geo.adaptation.adabn import ADABN_SAMPLES
from jess_geo.adaptation.common import (
    Crops, adapted_metadata, check_positive, crop_batches, figures, finish, image_scenes, images_of, labelled_scenes,
    record, start, window_batches,
)
from jess_geo.classes import IGNORE
from jess_geo.data.scenes import Scene
from jess_geo.errors import InputError
from jess_geo.preprocess import normalize
from jess_geo.training.batchnorm import recalibrate

FEWSHOT_STEPS = 40
FEWSHOT_LR = 2e-4  # AdamW, the fine-tuning rate of `adapt --method jess` and `train --init`
SOURCE_SHARE = 0.5  # of each batch, when source images are given


def _crop(img: np.ndarray, target: np.ndarray, r0: int, c0: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` crop at (r0, c0), padded with 0 (the normalised mean) and IGNORE beyond the scene."""
    out_i = np.zeros((img.shape[0], size, size), np.float32)
    out_t = np.full((size, size), IGNORE, np.int64)
    h, w = target.shape
    r1, c1 = min(r0 + size, h), min(c0 + size, w)
    out_i[:, : r1 - r0, : c1 - c0] = img[:, r0:r1, c0:c1]
    out_t[: r1 - r0, : c1 - c0] = target[r0:r1, c0:c1]
    return out_i, out_t


def labelled_crops(scenes: Sequence[Scene], meta: dict[str, Any], crops: Crops, steps: int) -> Iterator[dict[str, torch.Tensor]]:
    """``steps`` batches of crops, each containing a labelled pixel drawn uniformly from all labelled
    pixels (at a random place in the crop), randomly flipped and rotated; seeded."""
    rng = np.random.default_rng(crops.seed)
    images = [normalize(s.image, meta["normalization"]).astype(np.float32) for s in scenes]
    where = [np.flatnonzero(s.target != IGNORE) for s in scenes]
    counts = np.array([len(w) for w in where], dtype=np.float64)
    size = crops.crop_size
    for _ in range(steps):
        xs, ys = [], []
        for i in rng.choice(len(scenes), size=crops.batch_size, p=counts / counts.sum()):
            h, w = scenes[i].target.shape
            r, c = divmod(int(where[i][rng.integers(len(where[i]))]), w)
            r0 = int(np.clip(r - rng.integers(size), 0, max(h - size, 0)))
            c0 = int(np.clip(c - rng.integers(size), 0, max(w - size, 0)))
            x, y = _crop(images[i], scenes[i].target, r0, c0, size)
            k = int(rng.integers(4))
            x, y = np.rot90(x, k, (1, 2)), np.rot90(y, k)
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        yield {"image": torch.from_numpy(np.stack(xs)), "mask": torch.from_numpy(np.stack(ys))}


def mixed_crops(target: Sequence[Scene], source: Sequence[Scene], meta: dict[str, Any], crops: Crops, steps: int,
                share: float) -> Iterator[dict[str, torch.Tensor]]:
    """``steps`` batches of ``crops.batch_size``: round(share x batch) source crops (at least one,
    at most batch - 1) after the target crops, each part drawn as by :func:`labelled_crops`."""
    n_source = min(max(round(share * crops.batch_size), 1), crops.batch_size - 1)
    t = labelled_crops(target, meta, Crops(crops.crop_size, crops.batch_size - n_source, crops.seed), steps)
    s = labelled_crops(source, meta, Crops(crops.crop_size, n_source, crops.seed + 1000), steps)
    for a, b in zip(t, s):
        yield {k: torch.cat([a[k], b[k]]) for k in a}


def finetune_steps(model: torch.nn.Module, batches: Iterator[dict[str, torch.Tensor]], lr: float,
                   weight_decay: float = 1e-4, cosine_steps: int | None = None, average_from: int | None = None) -> list[float]:
    """One AdamW step per batch on cross-entropy over labelled pixels; returns the losses.

    ``cosine_steps``: the rate falls from ``lr`` to 0 over that many steps (half a cosine); else
    constant. ``average_from``: the model ends with the mean of its weights after every step from
    that one on (stochastic weight averaging, Izmailov et al. 2018; BatchNorm statistics are the
    caller's to re-estimate).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    params = [p for p in model.parameters() if p.requires_grad]
    mean: list[torch.Tensor] | None = None
    averaged = 0
    model.train()
    history = []
    for step, batch in enumerate(batches):
        if cosine_steps:
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(step / cosine_steps, 1.0)))
        loss = F.cross_entropy(model(batch["image"]), batch["mask"], ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        if average_from is not None and step >= average_from:
            averaged += 1
            with torch.no_grad():
                if mean is None:
                    mean = [p.detach().clone() for p in params]
                else:
                    for m, p in zip(mean, params):
                        m.add_(p.detach() - m, alpha=1.0 / averaged)
    if mean is not None:
        with torch.no_grad():
            for m, p in zip(mean, params):
                p.copy_(m)
    model.eval()
    return history


def check_replay(images: str | Path | None, masks: str | Path | None, share: float | None, batch_size: int) -> float:
    """The share of source crops per batch (0: no replay); one-line InputError for a half-given source."""
    if (images is None) != (masks is None):
        raise InputError("Few-shot replay needs both --images and --masks (the labelled source data); give both or neither.")
    if images is None:
        if share is not None:
            raise InputError("--source-share needs --images and --masks (the labelled source data to replay).")
        return 0.0
    share = SOURCE_SHARE if share is None else share
    if not share < 1:
        raise InputError(f"--source-share is {share}; give a fraction below 1 (the rest of each batch is target crops).")
    if batch_size < 2:
        raise InputError(f"--batch-size {batch_size} leaves no room for source and target crops together; give 2 or more.")
    return float(share)


def adapt_fewshot(
    model: str | Path, target_images: str | Path, target_masks: str | Path, output: str | Path, *,
    steps: int = FEWSHOT_STEPS, lr: float = FEWSHOT_LR, crop_size: int = 256, batch_size: int = 8, seed: int = 0,
    samples: int = ADABN_SAMPLES, unlabelled_value: int | None = None, label_field: str | None = None,
    images: str | Path | None = None, masks: str | Path | None = None, source_share: float | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``output``: ``model`` fine-tuned ``steps`` steps on the labelled pixels of the target
    images that have a label in ``target_masks`` (with ``source_share`` of each batch from the
    labelled source ``images``/``masks`` when given), BatchNorm statistics re-estimated on all target images.

    ``before``/``after`` are measured on the same labels it trains on (optimistic: no held-out labels).
    """
    t0 = time.perf_counter()
    check_positive(steps=steps, lr=lr, crop_size=crop_size, batch_size=batch_size, samples=samples, source_share=source_share)
    share = check_replay(images, masks, source_share, batch_size)
    model_path, out, base = start(model, output, overwrite)
    meta, crops, net = base.metadata, Crops(crop_size, batch_size, seed), base.model
    labelled = labelled_scenes(target_images, target_masks, meta, unlabelled_value=unlabelled_value, label_field=label_field)
    source = labelled_scenes(images, masks, meta, label_field=label_field, source=True) if share else []
    torch.manual_seed(seed)
    windows, k = window_batches(labelled, meta, crops), len(meta["classes"])
    before = figures(net, windows, k)
    batches = mixed_crops(labelled, source, meta, crops, steps, share) if share else labelled_crops(labelled, meta, crops, steps)
    history = finetune_steps(net, batches, lr)
    stats = Crops(crop_size, batch_size, seed + 1)  # other crops, from every target image
    recalibrate(net, images_of(crop_batches(image_scenes(target_images, meta), meta, stats, samples)))
    settings = {"steps": steps, "lr": lr, "crop_size": crop_size, "batch_size": batch_size, "seed": seed,
                "labelled_images": [s.info.path.name for s in labelled],
                "labelled_pixels": int(sum(int((s.target != IGNORE).sum()) for s in labelled)),
                "unlabelled_value": unlabelled_value, "label_field": label_field,
                "source_share": share, "source_images": [s.info.path.name for s in source],
                "batchnorm": f"trained with target batch statistics; running statistics re-estimated on {samples} target crops",
                "loss_first_step": history[0], "loss_last_step": history[-1],
                "figures_on": "the training labels (no held-out target labels)"}
    rec = record("fewshot", model_path, meta, target_images, settings)
    rec.update(before=before, after=figures(net, windows, k), target_masks=str(Path(target_masks).resolve()))
    return finish(out, net, adapted_metadata(meta, rec), time.perf_counter() - t0)
