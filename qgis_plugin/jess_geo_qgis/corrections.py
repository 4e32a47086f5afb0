"""Retrain with corrections: the edited prediction polygons become labels for `train --init`.

After a prediction the user fixes the polygons layer (changes ``class_id`` of wrong polygons,
draws missing ones, optionally ticks a ``verified`` field). The polygons are written as labels
on the GUI thread (QGIS layers are not for worker threads); the fine-tuning of the current
model then runs as a :class:`TrainTask` (or :func:`run_train`), and the new model is predicted
again by the caller.
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence

from qgis.core import QgsVectorLayer

from .labels_export import export_labels
from .protocol import ClassEntry
from .training import LABEL_FIELD, TrainRequest

VERIFIED_FIELD = "verified"


def corrected_model_path(current_model: str, folder: str) -> str:
    """A new model file in ``folder`` (beside the corrected polygons): ``<model stem>_corrected.pt``, ``..._corrected2.pt``."""
    stem = os.path.join(folder, os.path.splitext(os.path.basename(current_model))[0])
    stem = stem[: -len("_corrected")] if stem.endswith("_corrected") else stem
    candidate, number = f"{stem}_corrected.pt", 2
    while os.path.exists(candidate) or os.path.exists(candidate[:-3] + "_training"):
        candidate, number = f"{stem}_corrected{number}.pt", number + 1
    return candidate


def corrections_request(
    layer: QgsVectorLayer, scene: str, current_model: str, classes: Sequence[ClassEntry], *,
    model_path: str = "", verified_only: bool = False, field: str = LABEL_FIELD, recipe: str = "",
    epochs: Optional[int] = None, device: str = "auto", labels_dir: str = "",
) -> TrainRequest:
    """Write the layer's polygons as labels and return the `train --init` request that fine-tunes on them.

    Raises:
        ValueError: the layer is not a polygon layer, lacks ``field`` (or ``verified``), or no
            polygon has a class of the model (with ``verified_only``: none is verified).
    """
    if not current_model or not os.path.isfile(current_model):
        raise ValueError("Choose the model that made the prediction (a .pt file) before retraining.")
    labels_dir = labels_dir or tempfile.mkdtemp(prefix="jess-geo-corrections-")
    labels = os.path.join(labels_dir, "corrections.gpkg")
    export_labels(layer, field, labels, classes, only_field=VERIFIED_FIELD if verified_only else "")
    folder = os.path.dirname(os.path.abspath(layer.source().split("|")[0]))
    return TrainRequest(model_path=model_path or corrected_model_path(current_model, folder), images=[scene],
                        labels_path=labels, classes=tuple(classes), init_model=current_model, recipe=recipe,
                        epochs=epochs, device=device)
