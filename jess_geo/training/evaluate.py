"""Evaluate a model file on labelled images at their native resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jess_geo.classes import ClassTable
from jess_geo.data.scenes import load_scene, pair_files
from jess_geo.io.labels import labels_to_target, read_labels
from jess_geo.io.raster import open_raster, read_valid
from jess_geo.models.factory import size_multiple
from jess_geo.models.modelfile import LoadedModel, load_model_file
from jess_geo.preprocess import normalize
from jess_geo.training.metrics import confusion_matrix, metrics_from_confusion


@torch.no_grad()
def scene_logits(model: torch.nn.Module, image: np.ndarray, multiple: int, tile: int = 1024) -> torch.Tensor:
    """Logits ``(K, H, W)`` of a normalised image, in tiles of ``tile`` px with 64 px context each side."""
    c, h, w = image.shape
    x = torch.from_numpy(image)
    out: torch.Tensor | None = None
    ctx = 64
    for r0 in range(0, h, tile):
        for c0 in range(0, w, tile):
            r1, c1 = min(r0 + tile, h), min(c0 + tile, w)
            a0, b0, a1, b1 = max(r0 - ctx, 0), max(c0 - ctx, 0), min(r1 + ctx, h), min(c1 + ctx, w)
            patch = x[:, a0:a1, b0:b1]
            ph, pw = -patch.shape[1] % multiple, -patch.shape[2] % multiple
            patch = F.pad(patch[None], (0, pw, 0, ph), mode="reflect" if min(patch.shape[1:]) > max(ph, pw) else "constant")
            logits = model(patch)[0, :, : a1 - a0, : b1 - b0]
            if out is None:
                out = torch.empty((logits.shape[0], h, w))
            out[:, r0:r1, c0:c1] = logits[:, r0 - a0 : r1 - a0, c0 - b0 : c1 - b0]
    assert out is not None
    return out


def evaluate_model(model: str | Path | LoadedModel, images: str | Path, masks: str | Path) -> dict[str, Any]:
    """Confusion matrix and metrics over all image/label pairs, scored on the labels' own pixels."""
    loaded = model if isinstance(model, LoadedModel) else load_model_file(model)
    meta = loaded.metadata
    classes = ClassTable.from_list(meta["classes"])
    multiple = size_multiple(meta["architecture"])
    cm = torch.zeros((len(classes), len(classes)), dtype=torch.long)
    per_image = {}
    for img, lab in pair_files(images, masks):
        scene = load_scene(img, None, None, meta["bands"], meta["resolution"], bands_from="the model's bands")
        logits = scene_logits(loaded.model, normalize(scene.image, meta["normalization"]).astype(np.float32), multiple)
        full = (scene.info.height, scene.info.width)
        if logits.shape[1:] != full:
            logits = F.interpolate(logits[None], size=full, mode="bilinear", align_corners=False)[0]
        pred = logits.argmax(0)
        values, labelled = read_labels(scene.info, lab, full)
        with open_raster(img) as src:
            valid = read_valid(src)
        target = labels_to_target(values, classes, labelled=labelled, valid=valid,
                                  name=f"Label {lab.name}")
        one = confusion_matrix(pred, torch.from_numpy(target), len(classes))
        cm += one
        m = metrics_from_confusion(one, classes.names)
        per_image[img.name] = {"accuracy": m["accuracy"], "miou": m["miou"]}
    result = metrics_from_confusion(cm, classes.names)
    result["images"] = per_image
    return result
