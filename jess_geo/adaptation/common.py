"""What the adaptation methods share: checks, target scenes and crops, figures, the adapted model file.

Every method starts from a model file and writes a new, complete model file (never its input),
atomically, refusing an existing one without ``overwrite``. Its ``adaptation`` record says what
was done: ``method``, its ``settings``, the ``base_model`` (name, path, sha256), the target
images, and the figures ``before`` and ``after`` measured on fixed windows of the target.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from jess_geo.adaptation.colour import apply_tables, lookup_tables
from jess_geo.classes import IGNORE, ClassTable
from jess_geo.data.dataset import SceneDataset, collate, grid_sampler, train_loader
from jess_geo.data.scenes import Scene, load_scene
from jess_geo.errors import InputError, OutputError
from jess_geo.io.atomic import check_dir_creatable, ensure_dir
from jess_geo.io.labels import find_label, labels_to_target, read_labels
from jess_geo.io.raster import list_rasters
from jess_geo.models.modelfile import LoadedModel, load_model_file, save_model_file

MEASURE_WINDOWS = 32  # evenly spread grid windows of the target, the same before and after


@dataclass(frozen=True)
class Crops:
    """Random target crops: size in working pixels, crops per batch, seed."""

    crop_size: int = 256
    batch_size: int = 8
    seed: int = 0


def check_positive(**values: float | int | None) -> None:
    """One-line InputError for the first setting that is not a positive number."""
    for name, v in values.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise InputError(f"--{name.replace('_', '-')} is {v!r}; give a positive number.")


def start(model: str | Path, output: str | Path, overwrite: bool) -> tuple[Path, Path, LoadedModel]:
    """Check the output before any work (not the model itself, not existing unless ``overwrite``,
    its folder creatable), then load the model; returns (model path, output path, loaded model)."""
    model_path, out = Path(model), Path(output)
    if out.resolve() == model_path.resolve():
        raise OutputError(f"Output {out} is the model being adapted; choose another --output-dir.")
    if out.exists() and not overwrite:
        raise OutputError(f"Output {out} exists already; pass --overwrite to replace it or choose another --output-dir.")
    check_dir_creatable(out.parent)
    return model_path, out, load_model_file(model_path)


def _aligned(scene: Scene, meta: dict[str, Any]) -> Scene:
    tables = lookup_tables(meta.get("colour_alignment"))
    return scene if tables is None else dataclasses.replace(scene, image=apply_tables(scene.image, tables))


def image_scenes(folder: str | Path, meta: dict[str, Any], what: str = "target images") -> list[Scene]:
    """Every image of ``folder`` read with the model's bands at its working resolution, through the
    model's colour alignment when it has one (as predict would see them)."""
    return [_aligned(load_scene(p, None, None, meta["bands"], meta["resolution"], bands_from="other images"), meta)
            for p in list_rasters(folder, what)]


def labelled_scenes(folder: str | Path, masks: str | Path, meta: dict[str, Any], *, unlabelled_value: int | None = None,
                    label_field: str | None = None, source: bool = False) -> list[Scene]:
    """The images of ``folder`` that have a label in ``masks`` (raster or polygons), labels as
    channel indexes; IGNORE where unlabelled (the IGNORE value, ``unlabelled_value``, outside polygons).

    Target images go through the model's colour alignment (as predict sees them); ``source``
    images (the labelled data the model was trained on) do not: the alignment maps toward them.
    """
    what, option = ("source", "--masks") if source else ("target", "--target-masks")
    masks = Path(masks)
    if not masks.is_dir():
        raise InputError(f"The {what} masks folder {masks} ({option}) does not exist; check the path.")
    classes = ClassTable.from_list(meta["classes"])
    scenes = []
    for image in list_rasters(folder, f"{what} images"):
        label = find_label(image, masks)
        if label is None:
            continue
        scene = load_scene(image, None, None, meta["bands"], meta["resolution"], bands_from="other images")
        values, labelled = read_labels(scene.info, label, scene.image.shape[1:], label_field)
        if unlabelled_value is not None:
            labelled &= values != unlabelled_value
        target = labels_to_target(values, classes, labelled=labelled, valid=scene.valid, name=f"Label {label.name}")
        scene = dataclasses.replace(scene, target=target)
        scenes.append(scene if source else _aligned(scene, meta))
    if not scenes:
        raise InputError(f"No {what} image in {folder} has a label in {masks} (same file stem); add labels or check the folders.")
    if not any((s.target != IGNORE).any() for s in scenes):
        raise InputError(f"The {what} labels in {masks} have no labelled pixel; label some pixels with class ids.")
    return scenes


def crop_batches(scenes: Sequence[Scene], meta: dict[str, Any], crops: Crops, samples: int) -> DataLoader:
    """``samples`` random crops of ``scenes``, normalised as in training, in batches."""
    ds = SceneDataset(scenes, meta["normalization"], min_extent=crops.crop_size)
    return train_loader(ds, crops.crop_size, crops.batch_size, samples, crops.seed)


def window_batches(scenes: Sequence[Scene], meta: dict[str, Any], crops: Crops, count: int = MEASURE_WINDOWS) -> DataLoader:
    """Up to ``count`` grid windows spread evenly over ``scenes`` (a fixed set: the same every call)."""
    ds = SceneDataset(scenes, meta["normalization"], min_extent=crops.crop_size)
    windows = list(grid_sampler(ds, crops.crop_size, crops.crop_size))
    if len(windows) > count:
        windows = [windows[int(i)] for i in np.linspace(0, len(windows) - 1, count).round()]
    return DataLoader(ds, batch_size=crops.batch_size, sampler=windows, collate_fn=collate)


@torch.no_grad()
def figures(model: torch.nn.Module, batches: DataLoader, num_classes: int) -> dict[str, float]:
    """Mean prediction entropy and free energy over the valid pixels of ``batches`` (model in eval
    mode, as predict runs it), plus accuracy and mIoU where the windows carry labels."""
    from jess_geo.training.metrics import confusion_matrix, metrics_from_confusion

    was_training = model.training
    model.eval()
    entropy = energy = 0.0
    pixels = 0
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for batch in batches:
        logits = model(batch["image"])
        valid = batch["valid"]
        logp = torch.log_softmax(logits, 1)
        entropy += float(-(logp.exp() * logp).sum(1)[valid].sum())
        energy += float(-torch.logsumexp(logits, 1)[valid].sum())
        pixels += int(valid.sum())
        cm += confusion_matrix(logits.argmax(1), batch["mask"], num_classes, IGNORE)
    model.train(was_training)
    out = {"entropy": entropy / max(pixels, 1), "energy": energy / max(pixels, 1)}
    if int(cm.sum()):
        m = metrics_from_confusion(cm)
        out.update(accuracy=m["accuracy"], miou=m["miou"], labelled_pixels=int(cm.sum()))
    return out


def base_record(model_path: Path) -> dict[str, str]:
    """Name, path and sha256 of the model file an adaptation started from."""
    from jess_geo.training.adapt import sha256

    return {"name": model_path.name, "path": str(model_path.resolve()), "sha256": sha256(model_path)}


def record(method: str, model_path: Path, base: dict[str, Any], target_images: str | Path,
           settings: dict[str, Any]) -> dict[str, Any]:
    """The ``adaptation`` record (without figures) of ``method`` applied to ``model_path``."""
    folder = Path(target_images)
    return {"method": method, "settings": settings, "base_model": base_record(model_path),
            "target_folder": str(folder.resolve()),
            "target_images": [str(p.resolve()) for p in list_rasters(folder, "target images")],
            "previous": base.get("adaptation")}


def adapted_metadata(base: dict[str, Any], adaptation: dict[str, Any]) -> dict[str, Any]:
    """The base model's metadata with ``adaptation`` set; its source-validation ``metrics`` no
    longer describe the adapted weights and move to ``adaptation.base_metrics``."""
    meta = copy.deepcopy(base)
    meta.pop("feature_stats", None)  # measured through the base network: `check` falls back to the adapted BatchNorm statistics
    adaptation = dict(adaptation, base_metrics=meta.pop("metrics", None))
    meta["adaptation"] = adaptation
    return meta


def finish(out: Path, model: torch.nn.Module, meta: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Write the adapted model file (folder created now, file through a temporary name) and return
    the summary the CLI prints (``--json``)."""
    ensure_dir(out.parent)
    save_model_file(out, model, meta)
    a = meta["adaptation"]
    return {"method": a["method"], "model": str(out), "base_model": a["base_model"], "settings": a["settings"],
            "targets": len(a["target_images"]), "before": a.get("before"), "after": a.get("after"),
            "seconds": round(seconds, 2)}


def images_of(batches: DataLoader) -> Iterator[torch.Tensor]:
    """The images of ``batches`` (for BatchNorm recalibration)."""
    return (b["image"] for b in batches)
