"""Reading rasters and photos: georeferencing, band counts, dtypes, and which pixels are valid."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.windows import Window

from jess_geo.errors import InputError
from jess_geo.io.raster import (
    PHOTO_TRANSFORM,
    inspect_raster,
    list_rasters,
    open_raster,
    read_bands,
    read_label,
    read_valid,
)

SIRGAS_UTM25S = "EPSG:31985"  # the CRS of the real Landsat scene
OLINDA = Affine(30.0, 0, 290000.0, 0, -30.0, 9120000.0)


def _pattern(bands: int, h: int, w: int, dtype: str) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    scale = {"uint8": 200, "uint16": 20000, "float32": 0.8}[dtype]
    data = np.stack([(1 + np.sin(x / (3.0 + b)) * np.cos(y / 4.0)) / 2 * scale + (1 if dtype != "float32" else 0.01) for b in range(bands)])
    return data.astype(dtype)


def _read_all(path: Path, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    with open_raster(path) as src:
        use = bands or list(range(1, src.count + 1))
        return read_bands(src, use), read_valid(src)


@pytest.mark.parametrize("bands", [1, 4, 6])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_geotiff_in_another_crs_nodata_marks_invalid(tmp_path: Path, write_raster: Callable, bands: int, dtype: str) -> None:
    data = _pattern(bands, 20, 30, dtype)
    nodata = 0
    data[:, :5, :7] = nodata  # every band nodata: an invalid corner
    data[0, 10, 10] = nodata  # only one band nodata: the pixel still carries data
    path = write_raster(tmp_path / "scene.tif", data, crs=SIRGAS_UTM25S, transform=OLINDA, nodata=nodata)
    info = inspect_raster(path)
    assert info.georeferenced and CRS.from_wkt(info.crs_wkt).to_epsg() == 31985
    assert info.res == (30.0, 30.0) and info.transform == OLINDA
    assert (info.width, info.height, info.count, info.dtype) == (30, 20, bands, dtype)
    assert info.data_bands == list(range(1, bands + 1)) and info.alpha_band is None
    assert info.bounds == (290000.0, 9120000.0 - 600, 290000.0 + 900, 9120000.0)
    pixels, valid = _read_all(path)
    assert pixels.dtype == np.float32 and pixels.shape == (bands, 20, 30)
    np.testing.assert_allclose(pixels, data.astype(np.float32))
    expected = np.ones((20, 30), bool)
    expected[:5, :7] = False
    if bands == 1:
        expected[10, 10] = False
    assert (valid == expected).all()


def test_float_nan_nodata_is_invalid(tmp_path: Path, write_raster: Callable) -> None:
    data = _pattern(3, 16, 16, "float32")
    data[:, 3:6, 3:6] = np.nan
    path = write_raster(tmp_path / "nan.tif", data, nodata=float("nan"))
    _, valid = _read_all(path)
    assert not valid[3:6, 3:6].any() and valid.sum() == 16 * 16 - 9


def test_no_nodata_means_every_pixel_valid(tmp_path: Path, write_raster: Callable) -> None:
    data = np.zeros((3, 12, 12), np.uint8)  # all zero, but zero is not declared nodata
    _, valid = _read_all(write_raster(tmp_path / "zeros.tif", data))
    assert valid.all()


def test_alpha_band_marks_transparent_pixels_and_is_not_an_image_band(tmp_path: Path, write_raster: Callable) -> None:
    rgb = _pattern(3, 16, 20, "uint8")
    alpha = np.full((1, 16, 20), 255, np.uint8)
    alpha[0, :, 15:] = 0
    path = write_raster(tmp_path / "rgba.tif", np.concatenate([rgb, alpha]), alpha=True)
    info = inspect_raster(path)
    assert info.alpha_band == 4 and info.data_bands == [1, 2, 3]
    _, valid = _read_all(path, [1, 2, 3])
    assert valid[:, :15].all() and not valid[:, 15:].any()


def test_internal_mask_marks_invalid_pixels(tmp_path: Path, write_raster: Callable) -> None:
    data = _pattern(3, 16, 16, "uint16")
    mask = np.ones((16, 16), bool)
    mask[8:, 8:] = False
    path = write_raster(tmp_path / "masked.tif", data, mask=mask)
    info = inspect_raster(path)
    assert info.has_internal_mask and info.nodata is None and info.alpha_band is None
    _, valid = _read_all(path)
    assert (valid == mask).all()


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rasterio.windows uses affine `*`
def test_valid_mask_resampled_and_windowed(tmp_path: Path, write_raster: Callable) -> None:
    data = _pattern(3, 40, 40, "uint8")
    data[:, :, :20] = 0
    path = write_raster(tmp_path / "half.tif", data, nodata=0)
    with open_raster(path) as src:
        small = read_valid(src, out_shape=(20, 20))
        window = read_valid(src, window=Window(10, 0, 20, 10))
        outside = read_valid(src, window=Window(30, 30, 20, 20), boundless=True)
        px = read_bands(src, [1, 2, 3], out_shape=(20, 20))
    assert small.shape == (20, 20) and not small[:, :10].any() and small[:, 10:].all()
    assert window.shape == (10, 20) and not window[:, :10].any() and window[:, 10:].all()
    assert outside[:10, :10].all() and not outside[10:, :].any() and not outside[:, 10:].any()
    assert px.shape == (3, 20, 20)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_photo_uses_pixel_coordinates_without_warnings(tmp_path: Path, suffix: str) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(rgb).save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = inspect_raster(path)
        pixels, valid = _read_all(path)
    assert [str(w.message) for w in caught] == []
    assert not info.georeferenced and info.crs_wkt is None
    assert info.transform == PHOTO_TRANSFORM == Affine(1, 0, 0, 0, -1, 0)
    assert info.res == (1.0, 1.0) and info.bounds == (0.0, -24.0, 32.0, 0.0)
    assert info.count == 3 and info.data_bands == [1, 2, 3]
    assert pixels.shape == (3, 24, 32) and valid.all()
    if suffix == ".png":  # lossless: the pixels are the photo's
        np.testing.assert_array_equal(pixels, rgb.transpose(2, 0, 1).astype(np.float32))


def test_rgba_png_photo_alpha_is_the_valid_mask(tmp_path: Path) -> None:
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[..., 3] = 255
    rgba[:4, :, 3] = 0
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    info = inspect_raster(path)
    assert info.alpha_band == 4 and info.data_bands == [1, 2, 3]
    with open_raster(path) as src:
        valid = read_valid(src)
    assert not valid[:4].any() and valid[4:].all()


def test_grey_png_label_reads_as_integers(tmp_path: Path) -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(labels, "L").save(tmp_path / "labels.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_raster(tmp_path / "labels.png") as src:
            values = read_label(src)
            half = read_label(src, out_shape=(6, 8))
    assert caught == []
    assert values.dtype == np.int64 and values.tolist() == labels.tolist()
    assert set(np.unique(half)) <= set(labels.ravel().tolist())  # nearest neighbour, no blends


def test_sample_scene_and_photo(repo_root: Path) -> None:
    scene = repo_root / "sample_data" / "scene.tif"
    photo = repo_root / "sample_data" / "photo.jpg"
    if not scene.is_file() or not photo.is_file():
        pytest.skip("sample data is missing; run `make sample-data`")
    info = inspect_raster(scene)
    assert info.georeferenced and info.count == 3 and (info.width, info.height) == (640, 512)
    with open_raster(scene) as src:
        valid = read_valid(src)
    assert 0 < (~valid).sum() < valid.size  # a cut corner and a strip along the right edge
    assert not valid[:, -1].any()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pinfo = inspect_raster(photo)
    assert caught == [] and not pinfo.georeferenced and pinfo.transform == PHOTO_TRANSFORM


def test_asking_for_a_band_the_file_lacks_is_an_input_error(tmp_path: Path, write_raster: Callable) -> None:
    path = write_raster(tmp_path / "two.tif", _pattern(2, 8, 8, "uint8"))
    with open_raster(path) as src, pytest.raises(InputError) as exc:
        read_bands(src, [1, 2, 3])
    msg = str(exc.value)
    assert "has 2 band(s)" in msg and "\n" not in msg


def test_missing_folder_and_not_a_raster(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        inspect_raster(tmp_path / "nope.tif")
    with pytest.raises(InputError, match="folder"):
        inspect_raster(tmp_path)
    (tmp_path / "notes.tif").write_text("this is not an image")
    with pytest.raises(InputError) as exc:
        inspect_raster(tmp_path / "notes.tif")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_truncated_image_is_an_input_error_when_read(tmp_path: Path, write_raster: Callable, suffix: str) -> None:
    data = np.random.default_rng(1).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    full = tmp_path / f"full{suffix}"
    if suffix == ".png":
        Image.fromarray(data.transpose(1, 2, 0)).save(full)
    else:
        write_raster(full, data)
    cut = tmp_path / f"cut{suffix}"
    raw = full.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError) as exc:
        with open_raster(cut) as src:
            read_bands(src, [1, 2, 3])
    msg = str(exc.value)
    assert "\n" not in msg and "cut" in msg


def test_list_rasters_sorted_and_filtered(tmp_path: Path, write_raster: Callable) -> None:
    for name in ("b.tif", "a.png", "c.jpeg"):
        if name.endswith(".tif"):
            write_raster(tmp_path / name, np.zeros((1, 4, 4), np.uint8))
        else:
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub.tif").mkdir()
    assert [p.name for p in list_rasters(tmp_path)] == ["a.png", "b.tif", "c.jpeg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no raster files"):
        list_rasters(empty)
    with pytest.raises(InputError, match="does not exist"):
        list_rasters(tmp_path / "missing")


def test_real_landsat_scene(landsat_tif: Path) -> None:
    info = inspect_raster(landsat_tif)
    assert info.count == 6 and CRS.from_wkt(info.crs_wkt).to_epsg() == 31985
    with open_raster(landsat_tif) as src:
        px = read_bands(src, [3, 2, 1], window=Window(0, 0, 64, 48))
        valid = read_valid(src, window=Window(0, 0, 64, 48))
    assert px.shape == (3, 48, 64) and valid.shape == (48, 64) and np.isfinite(px).all()


def test_gdal_paths_pixel_size_in_metres_and_finite_mask(tmp_path: Path, write_raster: Callable) -> None:
    from affine import Affine

    from jess_geo.io.raster import finite_mask, inspect_raster, is_gdal_path, pixel_size_m

    assert is_gdal_path("/vsizip/a.zip/b.tif") and is_gdal_path("/vsicurl/https://host/c.tif") and is_gdal_path("https://h/c.tif")
    assert not is_gdal_path("/data/scene.tif") and not is_gdal_path("C:/data/scene.tif")
    utm = write_raster(tmp_path / "utm.tif", np.zeros((1, 4, 4), np.uint8))
    assert pixel_size_m(inspect_raster(utm)) == 0.5
    geo = write_raster(tmp_path / "geo.tif", np.zeros((1, 4, 4), np.uint8), crs="EPSG:4326",
                       transform=Affine(1e-4, 0, 10.0, 0, -1e-4, 60.0))
    assert abs(pixel_size_m(inspect_raster(geo)) - 1e-4 * 111_320 * 0.5) < 0.01  # cos(60°) = 0.5
    feet = write_raster(tmp_path / "ft.tif", np.zeros((1, 4, 4), np.uint8), crs="EPSG:2227",
                        transform=Affine(10.0, 0, 6e6, 0, -10.0, 2e6))
    assert abs(pixel_size_m(inspect_raster(feet)) - 3.048) < 1e-3  # US survey feet
    photo = write_raster(tmp_path / "p.png", np.zeros((3, 4, 4), np.uint8), crs=None)
    assert pixel_size_m(inspect_raster(photo)) is None
    data = np.ones((2, 2, 3), np.float32)
    data[1, 0, 1] = np.nan
    data[0, 1, 2] = np.inf
    assert finite_mask(data).tolist() == [[True, False, True], [True, True, False]]
    assert finite_mask(np.ones((1, 2, 2), np.uint8)) is None
