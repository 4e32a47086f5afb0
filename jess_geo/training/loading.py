"""The scenes of a training run: labelled source images split by file, and target images (JESS).

Every image goes through the one band policy (:func:`jess_geo.bands.resolve_bands`); notices
(an image with more bands than the run reads) are passed to ``notice``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

from jess_geo.classes import ClassTable
from jess_geo.data.scenes import Scene, load_scene, pair_files, split_files
from jess_geo.errors import ConfigError, InputError
from jess_geo.io.raster import inspect_raster, list_rasters
from jess_geo.training.config import DataConfig

Notice = Callable[[str], None]


@dataclass
class RunScenes:
    """Source training and validation scenes, target scenes (may be empty), and the bands read."""

    train: list[Scene]
    val: list[Scene]
    target: list[Scene]
    bands: list[int]


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=2)


def _resolution(data: DataConfig) -> dict:
    return {"gsd": data.gsd, "photo_scale": data.photo_scale}


def _emit(scenes: list[Scene], notice: Notice) -> None:
    for text in dict.fromkeys(s.notice for s in scenes if s.notice):
        notice(text)


def _same_band_count(images: list) -> list[int]:
    """Every image band of the first image, once all images are known to have as many."""
    infos = [inspect_raster(p) for p in images]
    first = infos[0]
    for info in infos[1:]:
        if len(info.data_bands) != len(first.data_bands):
            raise InputError(
                f"{info.path.name} has {len(info.data_bands)} image band(s) but {first.path.name} has {len(first.data_bands)}; "
                f"set `bands` in the config (e.g. {list(range(1, min(len(info.data_bands), len(first.data_bands)) + 1))}) "
                f"or use images that all have the same bands."
            )
    return first.data_bands


def load_source_scenes(data: DataConfig, classes: ClassTable, seed: int, notice: Notice = _warn) -> tuple[list[Scene], list[Scene], list[int]]:
    """Read, pair and split the labelled images; every image is read with the same bands.

    The bands are ``data.bands``, else every image band when all images have the same count.
    """
    if not data.images or not data.masks:
        raise ConfigError("Training needs --images and --masks (folders of images and their labels, paired by file stem).")
    pairs = pair_files(data.images, data.masks)
    if data.val_images:
        train_pairs, val_pairs = pairs, pair_files(data.val_images, data.val_masks or data.masks)
    else:
        train_pairs, val_pairs = split_files(pairs, data.val_fraction, seed)
    bands = list(data.bands) if data.bands else _same_band_count([i for i, _ in train_pairs + val_pairs])
    res = _resolution(data)
    train = [load_scene(i, lab, classes, bands, res, data.label_field) for i, lab in train_pairs]
    val = [load_scene(i, lab, classes, bands, res, data.label_field) for i, lab in val_pairs]
    _emit(train + val, notice)
    if not val:
        notice("Only one labelled image: validating on the training image (metrics will be optimistic).")
        val = train
    return train, val, bands


def load_target_scenes(data: DataConfig, classes: ClassTable, bands: list[int], notice: Notice = _warn) -> list[Scene]:
    """The target-domain images, read with the source's bands (labelled when --target-masks is given, for metrics only)."""
    if not data.target_images:
        raise ConfigError("method jess needs --target-images, a folder of unlabelled images from the new camera.")
    res = _resolution(data)
    if data.target_masks:
        pairs = pair_files(data.target_images, data.target_masks)
        scenes = [load_scene(i, lab, classes, bands, res, data.label_field) for i, lab in pairs]
    else:
        files = list_rasters(data.target_images, "target images")
        scenes = [load_scene(p, None, None, bands, res) for p in files]
    _emit(scenes, notice)
    return scenes


def load_run_scenes(data: DataConfig, classes: ClassTable, *, seed: int, jess: bool, notice: Notice = _warn) -> RunScenes:
    """All scenes of a run; target scenes when the method is JESS or target images are given."""
    train, val, bands = load_source_scenes(data, classes, seed, notice)
    target = load_target_scenes(data, classes, bands, notice) if (jess or data.target_images) else []
    return RunScenes(train, val, target, bands)
