"""Helpers shared by the QGIS plugin tests (importable without QGIS)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN_PARENT = REPO / "qgis_plugin"
PLUGIN_NAME = "jess_geo_qgis"
PLUGIN_DIR = PLUGIN_PARENT / PLUGIN_NAME


def find_jess_geo() -> str:
    """The real jess-geo executable: $JESS_GEO_EXE or <repo>/.venv/bin/jess-geo ('' if absent)."""
    candidates = [os.environ.get("JESS_GEO_EXE", ""), str(REPO / ".venv" / "bin" / "jess-geo")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return ""


def write_scene(
    path: Path, width: int = 96, height: int = 80, bands: int = 3, epsg: int = 32612, pixel_size: float = 2.0
) -> Path:
    """Write a small real GeoTIFF (uint8, UTM) with smooth fields and sharp patches."""
    import numpy as np
    from osgeo import gdal, osr

    rows, cols = np.mgrid[0:height, 0:width]
    driver = gdal.GetDriverByName("GTiff")
    dataset = driver.Create(str(path), width, height, bands, gdal.GDT_Byte, ["TILED=YES", "COMPRESS=DEFLATE"])
    dataset.SetGeoTransform((400000.0, pixel_size, 0.0, 4200000.0, 0.0, -pixel_size))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    patches = ((rows // 16 + cols // 24) % 3) * 70
    for band in range(1, bands + 1):
        field = (np.sin(cols / (7.0 + band)) * 40 + np.cos(rows / (5.0 + band)) * 40 + 100 + patches / band)
        dataset.GetRasterBand(band).WriteArray(np.clip(field, 0, 255).astype("uint8"))
    dataset.FlushCache()
    dataset = None
    return path


def model_pixel_size(info: dict) -> float:
    """A pixel size that the model will not resample (its working GSD when it has one)."""
    gsd = (info.get("resolution") or {}).get("gsd")
    return float(gsd) if gsd else 2.0


def model_band_count(info: dict) -> int:
    return max([3] + [int(b) for b in info.get("bands", [])])


SAMPLE_TRAIN = REPO / "sample_data" / "train"

# A recipe small enough that one CPU epoch takes seconds (4 steps of 4 crops of 64 px, slim decoder).
TINY_RECIPE = """\
samples_per_epoch: 16
batch_size: 4
crop_size: 64
val_crop: 128
photo_scale: 1.0
decoder_channels: [16, 16, 16, 16, 16]
encoder_weights: none
warmup_epochs: 0
seed: 0
"""


def write_tiny_recipe(path: Path) -> Path:
    path.write_text(TINY_RECIPE, encoding="utf-8")
    return path


def polygon_labels(masks: list, path: Path, field: str = "class_id") -> Path:
    """Polygonize class masks (uint8 GeoTIFFs, 255 = unlabelled) into one GeoPackage layer."""
    from osgeo import gdal, ogr, osr

    driver = ogr.GetDriverByName("GPKG")
    source = driver.CreateDataSource(str(path))
    layer = None
    for mask in masks:
        raster = gdal.Open(str(mask))
        if layer is None:
            srs = osr.SpatialReference(wkt=raster.GetProjection())
            layer = source.CreateLayer("labels", srs, ogr.wkbPolygon)
            layer.CreateField(ogr.FieldDefn(field, ogr.OFTInteger))
        band = raster.GetRasterBand(1)
        gdal.Polygonize(band, band.GetMaskBand(), layer, 0)
        raster = None
    layer = None
    source = None
    return path
