"""The JSON metadata a trained model file carries: what it reads, what it outputs, how it was made."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jess_geo
from jess_geo.classes import IGNORE, ClassTable
from jess_geo.training.config import TrainConfig
from jess_geo.training.loading import RunScenes


def jess_record(cfg: TrainConfig, scenes: RunScenes) -> dict[str, Any] | None:
    """The ``adaptation`` record of a `train --method jess` run (None for a baseline)."""
    if cfg.method != "jess":
        return None
    return {
        "method": "jess",
        "target_images": [str(s.info.path) for s in scenes.target],
        "lambda": cfg.jess.energy_weight,
        "batchnorm": cfg.jess.batchnorm,
        "epochs": cfg.trainer.epochs,
    }


def model_metadata(
    cfg: TrainConfig,
    scenes: RunScenes,
    *,
    architecture: dict[str, Any],
    normalization: dict[str, list[float]],
    classes: ClassTable,
    weights_note: str,
    adaptation: dict[str, Any] | None,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metadata of the model file; ``base`` is the metadata of the model a fine-tuning started from."""
    provenance: dict[str, Any] = {
        "train_images": [str(s.info.path) for s in scenes.train],
        "val_images": [str(s.info.path) for s in scenes.val],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if scenes.target:
        provenance["target_images"] = [str(s.info.path) for s in scenes.target]
    if base is not None and base.get("provenance"):
        provenance["base_model"] = base["provenance"]
    return {
        "jess_geo_version": jess_geo.__version__,
        "architecture": architecture,
        "bands": scenes.bands,
        "normalization": normalization,
        "classes": classes.to_list(),
        "ignore_index": IGNORE,
        "resolution": {"gsd": cfg.data.gsd, "photo_scale": cfg.data.photo_scale},
        "tile_size": cfg.model.tile_size,
        "overlap": cfg.model.overlap,
        "training": dict(cfg.to_dict(), encoder_weights_loaded=weights_note),
        "provenance": provenance,
        "adaptation": adaptation,
    }
