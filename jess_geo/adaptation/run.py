"""`jess-geo adapt --method M`: which flags each method takes, and the one call that runs it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from jess_geo.adaptation import METHODS
from jess_geo.errors import ConfigError

# The flags each method reads (``jess`` reads every training flag and a config file).
TAKES: dict[str, set[str]] = {
    "adabn": {"target_images", "target_masks", "output_dir", "crop_size", "batch_size", "seed", "samples"},
    "tent": {"target_images", "target_masks", "output_dir", "crop_size", "batch_size", "seed", "steps", "lr", "samples"},
    "histmatch": {"images", "target_images", "target_masks", "output_dir", "crop_size", "batch_size"},
    "fewshot": {"target_images", "target_masks", "output_dir", "crop_size", "batch_size", "seed", "steps", "lr",
                "samples", "unlabelled_value", "label_field", "images", "masks", "source_share"},
    "camsim": {"images", "masks", "target_images", "target_masks", "output_dir", "crop_size", "batch_size", "seed",
               "steps", "lr", "samples", "label_field", "pseudo_steps", "pseudo_keep"},
}
NEEDS: dict[str, tuple[str, ...]] = {
    "adabn": ("target_images", "output_dir"),
    "tent": ("target_images", "output_dir"),
    "histmatch": ("images", "target_images", "output_dir"),
    "fewshot": ("target_images", "target_masks", "output_dir"),
    "camsim": ("images", "masks", "target_images", "output_dir"),
}
WHAT = {"images": "the source images MODEL was trained on", "masks": "the labels of those source images", "target_images": "a folder of images from the new camera",
        "target_masks": "labels of some target images", "output_dir": "the adapted model goes to DIR/model.pt"}
NOT_FOR_JESS = ("samples", "steps", "unlabelled_value", "source_share", "pseudo_steps", "pseudo_keep")


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def method_function(method: str) -> Callable[..., dict[str, Any]]:
    """The library function of ``method`` (``adapt_<method>``, or ``run_adaptation`` for jess)."""
    if method not in METHODS:
        raise ConfigError(f"Unknown adaptation method {method!r}; choose one of {', '.join(METHODS)}.")
    if method == "jess":
        from jess_geo.training.adapt import run_adaptation

        return run_adaptation
    return getattr(importlib.import_module(f"jess_geo.adaptation.{method}"), f"adapt_{method}")


def check_flags(method: str, config: str | None, flags: dict[str, Any]) -> dict[str, Any]:
    """The flags given (not None), once each is known to suit ``method`` (one-line ConfigError otherwise)."""
    given = {k: v for k, v in flags.items() if v is not None}
    if method == "jess":
        wrong = [k for k in NOT_FOR_JESS if k in given]
        if wrong:
            raise ConfigError(f"--method jess does not take {_option(wrong[0])}; drop it or choose another --method.")
        return given
    if config:
        raise ConfigError(f"--config is read by --method jess only; pass --method {method}'s settings as flags, or add --method jess.")
    wrong = sorted(set(given) - TAKES[method])
    if wrong:
        takes = ", ".join(sorted(_option(k) for k in TAKES[method]))
        jess_only = {"images", "masks", "epochs"} & set(wrong) and method != "histmatch" or "masks" in wrong
        hint = "; or add --method jess to fine-tune on labelled source images" if jess_only else ""
        raise ConfigError(f"--method {method} does not take {_option(wrong[0])}: drop it (it takes {takes}){hint}.")
    for key in NEEDS[method]:
        if key not in given:
            raise ConfigError(f"--method {method} needs {_option(key)} ({WHAT[key]}).")
    return given


def run_method(method: str, model: str | Path, config: str | None, flags: dict[str, Any], *, overwrite: bool = False,
               progress_bar: bool = True, notice: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``method`` on ``model`` with the command line's ``flags``; returns the method's summary."""
    given = check_flags(method, config, flags)
    if method == "jess":
        from jess_geo.training.adapt import run_adaptation

        result = run_adaptation(model, config, flags, overwrite=overwrite, progress_bar=progress_bar, notice=notice)
        return dict(result, method="jess")
    output = Path(given.pop("output_dir")) / "model.pt"
    positional = {"adabn": ("target_images",), "tent": ("target_images",), "histmatch": ("images", "target_images"),
                  "fewshot": ("target_images", "target_masks"), "camsim": ("images", "masks", "target_images")}[method]
    args = [given.pop(k) for k in positional]
    return method_function(method)(model, *args, output, overwrite=overwrite, **given)
