"""`jess-geo train --init MODEL`: fine-tune a model file on new labels (corrections, more plots).

The new model starts from MODEL's weights and keeps its architecture, class table, bands,
normalisation and working resolution; its metadata records ``init_model`` (name, path, sha256).
Unlike `adapt`, no target domain is involved: it is ordinary supervised training from a
pretrained start, with fine-tuning defaults (lr 2e-4, 5 epochs, no warm-up) unless a config
file or a flag says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from jess_geo.errors import ConfigError
from jess_geo.models.modelfile import LoadedModel, load_model_file
from jess_geo.training.adapt import inherited_config, sha256
from jess_geo.training.config import TrainConfig

FINETUNE_DEFAULTS: dict[str, Any] = {"lr": 2e-4, "epochs": 5, "warmup_epochs": 0}
# Flags that would contradict what the model file fixes.
KEPT_BY_MODEL = {"classes": "class table", "encoder": "architecture", "encoder_weights": "weights",
                 "gsd": "working resolution", "photo_scale": "working resolution"}


def finetune_config(base: dict[str, Any], config: str | Path | None, flags: dict[str, Any]) -> TrainConfig:
    """The config of a fine-tuning: base recipe < fine-tuning defaults < config file < flags."""
    for key, what in KEPT_BY_MODEL.items():
        if flags.get(key) is not None:
            option = "--" + key.replace("_", "-")
            raise ConfigError(f"--init keeps the model's {what}; drop {option}.")
    cfg = inherited_config(base, config, flags, FINETUNE_DEFAULTS, dropped=KEPT_BY_MODEL)
    cfg.data.classes = None
    cfg.data.bands = list(base["bands"])
    cfg.data.gsd = base["resolution"].get("gsd")
    cfg.data.photo_scale = base["resolution"].get("photo_scale", cfg.data.photo_scale)
    return cfg


def init_record(model_path: Path) -> dict[str, str]:
    """What the fine-tuned model records about the model it started from."""
    return {"name": model_path.name, "path": str(model_path.resolve()), "sha256": sha256(model_path)}


def run_finetune(
    model: str | Path, config: str | Path | None, flags: dict[str, Any], *, overwrite: bool = False,
    progress_bar: bool = True, notice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` on ``flags``' images and labels; returns run_training's result plus ``init_model``."""
    from jess_geo.training.train import run_training

    model_path = Path(model)
    base: LoadedModel = load_model_file(model_path)
    cfg = finetune_config(base.metadata, config, flags)
    record = init_record(model_path)
    result = run_training(cfg, progress_bar=progress_bar, init=base, overwrite=overwrite, inputs=[model_path],
                          notice=notice, init_model=record)
    result["init_model"] = record
    return result
