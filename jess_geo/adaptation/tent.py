"""TENT (Wang et al. 2021): entropy minimisation of the BatchNorm affine parameters on target crops.

Only the BatchNorm scales and shifts are trained; during the steps every BatchNorm normalises
with the statistics of the current batch (as in the paper), everything else is frozen and in
eval mode. No labels are used. The saved model then has its BatchNorm running statistics
re-estimated on the target (AdaBN with the adapted affine parameters), because predict runs the
network in eval mode, which uses running statistics, not batch statistics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import torch

from jess_geo.adaptation.adabn import ADABN_SAMPLES
from jess_geo.adaptation.common import (
    Crops, adapted_metadata, check_positive, crop_batches, figures, finish, image_scenes, images_of, labelled_scenes,
    record, start, window_batches,
)
from jess_geo.training.batchnorm import batchnorm_layers, recalibrate

TENT_STEPS = 20
TENT_LR = 1e-3  # Adam, as the paper's CIFAR setting


def tent_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Prepare ``model`` for TENT and return what it trains: everything frozen and in eval mode
    except the BatchNorm layers (training mode: batch statistics) and their affine parameters."""
    model.eval()
    model.requires_grad_(False)
    params = []
    for m in batchnorm_layers(model):
        m.train()
        for p in (m.weight, m.bias):
            if p is not None:
                p.requires_grad_(True)
                params.append(p)
    if not params:
        raise ValueError("the model has no BatchNorm affine parameters to adapt")
    return params


def mean_entropy(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of the softmax over the ``valid`` pixels."""
    logp = torch.log_softmax(logits, 1)
    ent = -(logp.exp() * logp).sum(1)
    return ent[valid].mean() if bool(valid.any()) else ent.sum() * 0.0


def tent_steps(model: torch.nn.Module, batches: Iterable[dict[str, Any]], lr: float) -> list[float]:
    """One Adam step on the entropy of each batch; returns the entropy before each step."""
    opt = torch.optim.Adam(tent_parameters(model), lr=lr, betas=(0.9, 0.999))
    history = []
    for batch in batches:
        loss = mean_entropy(model(batch["image"]), batch["valid"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    model.requires_grad_(True)
    model.eval()
    return history


def adapt_tent(
    model: str | Path, target_images: str | Path, output: str | Path, *, steps: int = TENT_STEPS, lr: float = TENT_LR,
    crop_size: int = 256, batch_size: int = 8, seed: int = 0, samples: int = ADABN_SAMPLES,
    target_masks: str | Path | None = None, overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``output``: ``model`` after ``steps`` TENT steps on random target crops, saved with
    BatchNorm running statistics re-estimated on ``samples`` other target crops. ``target_masks`` only measure."""
    t0 = time.perf_counter()
    check_positive(steps=steps, lr=lr, crop_size=crop_size, batch_size=batch_size, samples=samples)
    model_path, out, base = start(model, output, overwrite)
    meta, crops, net = base.metadata, Crops(crop_size, batch_size, seed), base.model
    scenes = image_scenes(target_images, meta)
    windows = window_batches(labelled_scenes(target_images, target_masks, meta) if target_masks else scenes, meta, crops)
    k = len(meta["classes"])
    before = figures(net, windows, k)
    history = tent_steps(net, crop_batches(scenes, meta, crops, steps * batch_size), lr)
    stats = Crops(crop_size, batch_size, seed + 1)  # other crops than the steps saw
    recalibrate(net, images_of(crop_batches(scenes, meta, stats, samples)))
    settings = {"steps": len(history), "lr": lr, "crop_size": crop_size, "batch_size": batch_size, "seed": seed,
                "parameters": "batchnorm affine", "running_statistics": f"re-estimated on {samples} target crops",
                "entropy_first_step": history[0], "entropy_last_step": history[-1]}
    rec = record("tent", model_path, meta, target_images, settings)
    rec.update(before=before, after=figures(net, windows, k))
    return finish(out, net, adapted_metadata(meta, rec), time.perf_counter() - t0)
