"""Labelled scenes held in memory at the working resolution, paired and split by whole files."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.enums import Resampling

from jess_geo.bands import resolve_bands
from jess_geo.classes import ClassTable
from jess_geo.errors import InputError
from jess_geo.io.labels import find_label, labels_to_target, read_labels
from jess_geo.io.raster import RasterInfo, info_from_dataset, list_rasters, open_raster, read_bands, read_valid
from jess_geo.preprocess import scaled_shape, working_scale


@dataclass
class Scene:
    """One image at working resolution: raw bands ``(C, H, W)`` float32, target ``(H, W)`` int64.

    ``target`` holds class channel indexes, ``classes.IGNORE`` where a pixel is nodata or
    unlabelled; ``notice`` says which bands were used when the image has more than were asked for.
    """

    name: str
    image: np.ndarray
    target: np.ndarray | None
    valid: np.ndarray
    info: RasterInfo
    scale: float
    notice: str | None = None


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


def load_scene(
    image: Path,
    label: Path | None,
    classes: ClassTable | None,
    bands: Sequence[int] | None,
    resolution: dict,
    label_field: str | None = None,
    bands_from: str = "`bands` in the config",
) -> Scene:
    """Read an image (and its labels) at the working resolution given by ``resolution``.

    ``bands`` go through :func:`jess_geo.bands.resolve_bands` (``None``: every image band);
    an alpha band is the validity mask, never data. ``bands_from`` names how to choose other
    bands in messages.
    """
    with open_raster(image) as src:
        info = info_from_dataset(src)
        plan = resolve_bands(info.count, info.data_bands if bands is None else bands,
                             alpha_band=info.alpha_band, name=image.name, option=bands_from)
        scale = working_scale(info, resolution)
        shape = scaled_shape(info.height, info.width, scale)
        resampling = Resampling.bilinear if scale != 1 else Resampling.nearest
        pixels = read_bands(src, list(plan.data), out_shape=shape, resampling=resampling)
        valid = read_valid(src, out_shape=shape)
    target = None
    if label is not None and classes is not None:
        values, labelled = read_labels(info, label, shape, label_field)
        target = labels_to_target(values, classes, labelled=labelled, valid=valid, name=f"Label {label.name}")
    return Scene(name=image.stem, image=pixels, target=target, valid=valid, info=info, scale=scale, notice=plan.notice)


def load_unlabelled(folder: str | Path, bands: Sequence[int] | None, resolution: dict) -> list[Scene]:
    """All images of a folder as unlabelled scenes (JESS target domain)."""
    return [load_scene(p, None, None, bands, resolution) for p in list_rasters(folder, "target images")]
