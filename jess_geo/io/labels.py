"""Labels for training: class-mask rasters aligned with their image, or vector polygons rasterized onto it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from affine import Affine

from jess_geo.classes import IGNORE, ClassTable
from jess_geo.errors import InputError
from jess_geo.io.raster import RASTER_SUFFIXES, RasterInfo, open_raster, read_label

VECTOR_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp"}
LABEL_FIELDS = ("class_id", "class", "label", "value")


def read_mask_raster(info: RasterInfo, path: Path, out_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Read a class-mask raster aligned with ``info`` at ``out_shape``; returns (values, labelled mask)."""
    with open_raster(path) as src:
        if (src.width, src.height) != (info.width, info.height):
            raise InputError(
                f"Mask {path.name} is {src.width}x{src.height} px but its image {info.path.name} is "
                f"{info.width}x{info.height} px; masks must be aligned with their images, pixel for pixel."
            )
        values = read_label(src, out_shape=out_shape)
        labelled = np.ones(out_shape, dtype=bool)
        if src.nodata is not None:
            labelled &= values != int(src.nodata)
    return values, labelled


def rasterize_vector(
    info: RasterInfo, path: Path, out_shape: tuple[int, int], field: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Burn polygons with a class field onto the image grid at ``out_shape``; unlabelled pixels are marked."""
    import geopandas as gpd
    from rasterio.features import rasterize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            gdf = gpd.read_file(path)
        except Exception:  # noqa: BLE001 - any driver failure means an unreadable file
            raise InputError(f"Vector labels {path} cannot be read; pass a GeoPackage or GeoJSON with polygons.") from None
    fields = [field] if field else [f for f in LABEL_FIELDS if f in gdf.columns]
    if not fields or fields[0] not in gdf.columns:
        raise InputError(
            f"Vector labels {path.name} have no class field (looked for {field or ', '.join(LABEL_FIELDS)}); "
            f"add an integer field class_id to the polygons."
        )
    col = fields[0]
    if info.georeferenced and gdf.crs is not None:
        from rasterio.crs import CRS

        gdf = gdf.to_crs(CRS.from_wkt(info.crs_wkt).to_string() if info.crs_wkt else None)
    h, w = out_shape
    t: Affine = info.transform @ Affine.scale(info.width / w, info.height / h)
    shapes = []
    for geom, v in zip(gdf.geometry, gdf[col]):
        if geom is None or geom.is_empty:
            continue
        try:
            value = int(v)
            if isinstance(v, float) and value != v:
                raise ValueError(v)
        except (TypeError, ValueError):
            raise InputError(
                f"Vector labels {path.name} have a polygon whose {col} is {v!r}, not an integer class id; fill in {col} for every polygon."
            ) from None
        shapes.append((geom, value))
    bad = sorted({v for _, v in shapes if not 0 <= v <= 254})
    if bad:
        raise InputError(f"Vector labels {path.name} have class value(s) {bad} outside 0-254; use the ids of the class table in field {col}.")
    values = rasterize(shapes, out_shape=out_shape, transform=t, fill=255, dtype="uint8").astype(np.int64)
    labelled = values != 255
    if shapes and not labelled.any():
        where = "its CRS" if info.georeferenced else "pixel coordinates (x = column, y = -row)"
        raise InputError(
            f"Vector labels {path.name} do not overlap image {info.path.name}; check that the polygons are in {where}."
        )
    return values, labelled


def find_label(image: Path, masks_dir: Path) -> Path | None:
    """The label file for ``image``: same stem in ``masks_dir``, raster or vector."""
    for p in sorted(masks_dir.iterdir()):
        if p.stem == image.stem and p.suffix.lower() in RASTER_SUFFIXES | VECTOR_SUFFIXES:
            return p
    return None


def read_labels(
    info: RasterInfo, path: Path, out_shape: tuple[int, int], field: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Class values and labelled-pixel mask for an image, from a raster mask or vector polygons."""
    if path.suffix.lower() in VECTOR_SUFFIXES:
        return rasterize_vector(info, path, out_shape, field)
    return read_mask_raster(info, path, out_shape)


def class_lookup(classes: ClassTable) -> np.ndarray:
    """A 256-entry table: label value -> model channel index; IGNORE stays IGNORE, other values -1."""
    lut = np.full(256, -1, dtype=np.int64)
    lut[classes.ids] = np.arange(len(classes))
    lut[IGNORE] = IGNORE
    return lut


def labels_to_target(
    values: np.ndarray, classes: ClassTable, *, labelled: np.ndarray | None = None,
    valid: np.ndarray | None = None, name: str = "label",
) -> np.ndarray:
    """Class ids of a label mask -> model channel indexes (int64), IGNORE where nothing is learned.

    A pixel is IGNORE when it is unlabelled (``labelled`` False, or the value IGNORE itself)
    or nodata in the image (``valid`` False). A labelled pixel whose value is not in ``classes``
    is an InputError naming the values, since a silently ignored typo would skew training and scores.
    """
    lut = class_lookup(classes)
    values = np.asarray(values)
    keep = np.ones(values.shape, dtype=bool) if labelled is None else np.asarray(labelled, dtype=bool)
    present = np.unique(values[keep])
    unknown = [int(v) for v in present if not 0 <= v <= 255 or lut[int(v)] < 0]
    if unknown:
        raise InputError(
            f"{name} has value(s) {unknown} that are not in the class table (ids {classes.ids}); "
            f"add them to the class table or fix the mask."
        )
    target = lut[np.clip(values, 0, 255).astype(np.int64)]
    if valid is not None:
        keep = keep & np.asarray(valid, dtype=bool)
    target[~keep] = IGNORE
    return target
