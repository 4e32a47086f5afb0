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


def load_scene(
    image: Path,
    label: Path | None,
    classes: ClassTable | None,
    bands: Sequence[int] | None,
    resolution: dict,
    label_field: str | None = None,
) -> Scene:
    """Read an image (and its labels) at the working resolution given by ``resolution``."""
    with open_raster(image) as src:
        info = info_from_dataset(src)
        use = list(bands) if bands else info.data_bands
        if len(info.data_bands) < len(use) or max(use) > info.count:
            raise InputError(
                f"{image.name} has {len(info.data_bands)} image band(s) but {len(use)} are configured (bands {use}); "
                f"set `bands` in the config to match your images or use images with {len(use)} bands."
            )
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
