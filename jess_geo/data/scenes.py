"""Labelled scenes held in memory at the working resolution, paired and split by whole files."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.enums import Resampling

from jess_geo.classes import ClassTable
from jess_geo.errors import InputError
from jess_geo.io.labels import find_label, read_labels
from jess_geo.io.raster import RasterInfo, info_from_dataset, list_rasters, open_raster, read_bands, read_valid
from jess_geo.preprocess import scaled_shape, working_scale

IGNORE_INDEX = 255


@dataclass
class Scene:
    """One image at working resolution: raw bands ``(C, H, W)`` float32, target ``(H, W)`` int64.

    ``target`` holds class channel indexes, IGNORE_INDEX where a pixel is nodata or unlabelled.
    """

    name: str
    image: np.ndarray
    target: np.ndarray | None
    valid: np.ndarray
    info: RasterInfo
    scale: float


def pair_files(images_dir: str | Path, masks_dir: str | Path) -> list[tuple[Path, Path]]:
    """Pair each image with its label by file stem; an image without label is an InputError."""
    images = list_rasters(images_dir, "images")
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise InputError(f"The masks folder {masks_dir} does not exist; check the path.")
    pairs = []
    for img in images:
        label = find_label(img, masks_dir)
        if label is None:
            raise InputError(f"Image {img.name} has no label in {masks_dir} (expected {img.stem}.tif/.png/.gpkg); add it or move the image out.")
        pairs.append((img, label))
    return pairs


def split_files(items: Sequence, val_fraction: float, seed: int) -> tuple[list, list]:
    """Split whole files into (train, validation) with a fixed seed; at least one on each side when possible."""
    items = list(items)
    if len(items) < 2:
        return items, []
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = min(len(items) - 1, max(1, int(round(len(items) * val_fraction))))
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [items[i] for i in train], [items[i] for i in val]


def class_lookup(classes: ClassTable) -> np.ndarray:
    """A 256-entry table mapping label values to channel indexes (IGNORE_INDEX for unknown)."""
    lut = np.full(256, -1, dtype=np.int64)
    for channel, c in enumerate(classes):
        lut[c.id] = channel
    lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def select_bands(info: RasterInfo, bands: Sequence[int] | None, source: str = "the config") -> list[int]:
    """The 1-based bands to read from an image, checked against what the image has.

    ``bands`` (from a training config or a model file) must name as many bands as the image
    has image bands (an alpha band does not count): a 4-band image where 3 bands are expected
    is refused rather than silently cut to 3 bands, since its band 4 would be lost and its
    bands 1-3 need not mean what they mean in the other images. ``None`` uses every image band.
    """
    available = info.data_bands
    if bands is None or (isinstance(bands, (list, tuple)) and len(bands) == 0):
        return list(available)
    if not isinstance(bands, (list, tuple)) or not all(isinstance(b, int) and not isinstance(b, bool) for b in bands):
        raise InputError(f"`bands` in {source} must be a list of 1-based band numbers such as [1, 2, 3], not {bands!r}; fix it.")
    use = list(bands)
    if len(use) != len(available):
        raise InputError(
            f"{info.path.name} has {len(available)} image band(s) but {source} expects {len(use)} (bands {use}); "
            f"use {len(use)}-band images or list all {len(available)} bands in `bands`."
        )
    bad = [b for b in use if b not in available]
    if bad:
        raise InputError(
            f"{info.path.name} has no image band(s) {bad} (its image bands are {available}); "
            f"list bands from {available} in `bands`."
        )
    return use


def load_scene(
    image: Path,
    label: Path | None,
    classes: ClassTable | None,
    bands: Sequence[int] | None,
    resolution: dict,
    label_field: str | None = None,
    bands_from: str = "the config",
) -> Scene:
    """Read an image (and its labels) at the working resolution given by ``resolution``.

    ``bands`` must match the image's band count (see :func:`select_bands`); ``bands_from`` names
    where they came from in error messages ("the config", "the model").
    """
    with open_raster(image) as src:
        info = info_from_dataset(src)
        use = select_bands(info, bands, bands_from)
        scale = working_scale(info, resolution)
        shape = scaled_shape(info.height, info.width, scale)
        pixels = read_bands(src, use, out_shape=shape, resampling=Resampling.bilinear if scale != 1 else Resampling.nearest)
        valid = read_valid(src, out_shape=shape)
    target = None
    if label is not None and classes is not None:
        values, labelled = read_labels(info, label, shape, label_field)
        lut = class_lookup(classes)
        present = np.unique(values[labelled])
        unknown = [int(v) for v in present if v < 0 or v > 255 or lut[v] < 0]
        if unknown:
            raise InputError(
                f"Label {label.name} has value(s) {unknown} that are not in the class table (ids {classes.ids}); "
                f"add them to the class table or fix the mask."
            )
        target = lut[np.clip(values, 0, 255)]
        target[~(labelled & valid)] = IGNORE_INDEX
    return Scene(name=image.stem, image=pixels, target=target, valid=valid, info=info, scale=scale)


def load_unlabelled(folder: str | Path, bands: Sequence[int] | None, resolution: dict) -> list[Scene]:
    """All images of a folder as unlabelled scenes (JESS target domain)."""
    return [load_scene(p, None, None, bands, resolution) for p in list_rasters(folder, "target images")]
