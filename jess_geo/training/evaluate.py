"""Evaluate a model file on labelled images, through the same tiles and blending as ``predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from jess_geo.classes import IGNORE, ClassTable
from jess_geo.data.scenes import pair_files
from jess_geo.inference.arrays import predict_arrays
from jess_geo.inference.predict import model_metadata
from jess_geo.inference.prepare import Options
from jess_geo.inference.runtime import open_runtime
from jess_geo.io.labels import labels_to_target, read_labels
from jess_geo.io.raster import inspect_raster
from jess_geo.models.modelfile import LoadedModel
from jess_geo.training.metrics import confusion_matrix, metrics_from_confusion


def evaluate_model(model: str | Path | LoadedModel, images: str | Path, masks: str | Path,
                   device: str = "auto", tta: str = "none") -> dict[str, Any]:
    """Confusion matrix and metrics over all image/label pairs, scored on the labels' own pixels.

    Each image is classified by the predict pipeline (its tiles, working resolution, blending and
    nodata, and ``tta``: the test-time augmentation of ``predict --tta``); pixels that are nodata
    in the image or unlabelled in the mask are left out. The result records ``tta``.
    """
    opts = Options(tta=tta)
    opts.check()
    meta, _name = model_metadata(model)
    rt = open_runtime(model, "torch", device)
    classes = ClassTable.from_list(meta["classes"])
    index_of = np.zeros(256, dtype=np.int64)  # class id -> channel index (nodata -> 0, never scored)
    index_of[np.array(classes.ids, dtype=np.int64)] = np.arange(len(classes))
    cm = torch.zeros((len(classes), len(classes)), dtype=torch.long)
    per_image = {}
    for img, lab in pair_files(images, masks):
        ids = predict_arrays(img, rt, meta, opts=opts)["classes"]
        values, labelled = read_labels(inspect_raster(img), lab, ids.shape)
        target = labels_to_target(values, classes, labelled=labelled, valid=ids != IGNORE, name=f"Label {lab.name}")
        one = confusion_matrix(torch.from_numpy(index_of[ids]), torch.from_numpy(target), len(classes))
        cm += one
        m = metrics_from_confusion(one, classes.names)
        per_image[img.name] = {"accuracy": m["accuracy"], "miou": m["miou"]}
    result = metrics_from_confusion(cm, classes.names)
    result["images"] = per_image
    result["tta"] = opts.tta
    return result
