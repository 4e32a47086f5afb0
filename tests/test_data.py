"""The data layer on real files: labels (rasters and polygons), scenes, splits, samplers, statistics."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pytest
import shapely
import torch
from affine import Affine
from PIL import Image
from shapely.ops import transform as shp_transform

from jess_geo.classes import IGNORE as IGNORE_INDEX
from jess_geo.classes import ClassTable
from jess_geo.data.augment import AugmentConfig, augment_batch
from jess_geo.data.dataset import SceneDataset, grid_loader, train_loader
from jess_geo.data.normalization import compute_stats
from jess_geo.data.scenes import load_scene, pair_files, split_files
from jess_geo.errors import InputError
from jess_geo.io.labels import labels_to_target

CLASSES = ClassTable.from_mapping({"0": "soil", "1": "crust", "4": "moss"})  # channels 0, 1, 2
UTM = "EPSG:32612"
GRID = Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)  # 0.5 m pixels
NATIVE = {"gsd": None, "photo_scale": 1.0}
UNIT = {"mean": [0.0], "std": [1.0]}


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 250, (3, h, w), dtype=np.uint8)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.endswith("."), msg
    return msg


# --------------------------------------------------------------------------- raster labels


def test_pairing_by_stem_across_formats(tmp_path: Path, write_raster: Callable) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    write_raster(images / "plot_a.tif", _rgb(8, 8))
    Image.fromarray(_rgb(8, 8).transpose(1, 2, 0)).save(images / "photo_b.png")
    write_raster(masks / "plot_a.tif", np.zeros((8, 8), np.uint8))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / "photo_b.png")
    (masks / "notes.txt").write_text("ignored")
    pairs = pair_files(images, masks)
    assert [(i.name, m.name) for i, m in pairs] == [("photo_b.png", "photo_b.png"), ("plot_a.tif", "plot_a.tif")]
    write_raster(images / "plot_c.tif", _rgb(8, 8))
    with pytest.raises(InputError) as exc:
        pair_files(images, masks)
    assert "plot_c" in _one_line(exc)
    with pytest.raises(InputError, match="does not exist"):
        pair_files(images, tmp_path / "no_masks")
    with pytest.raises(InputError, match="does not exist"):
        pair_files(tmp_path / "no_images", masks)


def test_mask_values_map_to_channels_and_nodata_is_ignored(tmp_path: Path, write_raster: Callable) -> None:
    image = _rgb(10, 12)
    image[:, :, :3] = 0  # image nodata on the left
    labels = np.zeros((10, 12), np.uint8)
    labels[:, 6:] = 1
    labels[5:, 9:] = 4
    labels[0, 11] = 255  # unlabelled pixel (the mask's nodata value)
    img = write_raster(tmp_path / "a.tif", image, transform=GRID, nodata=0)
    msk = write_raster(tmp_path / "a_mask.tif", labels, transform=GRID, nodata=255)
    scene = load_scene(img, msk, CLASSES, None, NATIVE)
    assert scene.image.shape == (3, 10, 12) and scene.image.dtype == np.float32
    t = scene.target
    assert t is not None and t.dtype == np.int64
    assert (t[:, :3] == IGNORE_INDEX).all()  # image nodata is never learned or scored
    assert (t[:, 3:6] == 0).all() and (t[:5, 6:9] == 1).all()
    assert (t[5:, 9:] == 2).all()  # mask value 4 -> channel 2
    assert t[0, 11] == IGNORE_INDEX
    assert set(np.unique(t).tolist()) == {0, 1, 2, IGNORE_INDEX}


def test_mask_value_missing_from_the_class_table_is_refused(tmp_path: Path, write_raster: Callable) -> None:
    labels = np.zeros((8, 8), np.uint8)
    labels[2, 2] = 7
    img = write_raster(tmp_path / "a.tif", _rgb(8, 8))
    msk = write_raster(tmp_path / "a_mask.tif", labels)
    with pytest.raises(InputError) as exc:
        load_scene(img, msk, CLASSES, None, NATIVE)
    msg = _one_line(exc)
    assert "[7]" in msg and "class table" in msg


def test_labels_to_target_maps_ids_to_channels_and_ignores_unlabelled_and_nodata() -> None:
    values = np.array([[0, 4, 255], [1, 1, 4]])
    labelled = np.array([[True, True, True], [False, True, True]])
    valid = np.array([[True, True, True], [True, True, False]])
    target = labels_to_target(values, CLASSES, labelled=labelled, valid=valid)
    assert target.dtype == np.int64
    assert target.tolist() == [[0, 2, IGNORE_INDEX], [IGNORE_INDEX, 1, IGNORE_INDEX]]


def test_labels_to_target_refuses_ids_missing_from_the_class_table_only_where_labelled() -> None:
    values = np.array([[0, 7], [9, 1]])
    assert labels_to_target(values, CLASSES, labelled=values < 2).tolist() == [[0, IGNORE_INDEX], [IGNORE_INDEX, 1]]
    with pytest.raises(InputError) as exc:
        labels_to_target(values, CLASSES, name="Label m.tif")
    assert _one_line(exc).startswith("Label m.tif has value(s) [7, 9] that are not in the class table (ids [0, 1, 4])")


def test_mask_of_another_size_is_refused(tmp_path: Path, write_raster: Callable) -> None:
    img = write_raster(tmp_path / "a.tif", _rgb(8, 8))
    msk = write_raster(tmp_path / "a_mask.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(InputError) as exc:
        load_scene(img, msk, CLASSES, None, NATIVE)
    assert "9x8" in _one_line(exc)


def test_photo_with_png_mask_at_half_scale(tmp_path: Path) -> None:
    rgb = _rgb(40, 60).transpose(1, 2, 0)
    labels = np.zeros((40, 60), np.uint8)
    labels[:, 30:] = 4
    Image.fromarray(rgb).save(tmp_path / "p.jpg")
    Image.fromarray(labels, "L").save(tmp_path / "p.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = load_scene(tmp_path / "p.jpg", tmp_path / "p.png", CLASSES, None, {"gsd": 0.25, "photo_scale": 0.5})
    assert [str(w.message) for w in caught] == []
    assert scene.scale == 0.5 and scene.image.shape == (3, 20, 30) and scene.valid.all()
    assert scene.target is not None and (scene.target[:, :15] == 0).all() and (scene.target[:, 15:] == 2).all()


def test_georeferenced_scene_resampled_to_the_working_gsd(tmp_path: Path, write_raster: Callable) -> None:
    img = write_raster(tmp_path / "a.tif", _rgb(40, 20), transform=GRID)
    msk = write_raster(tmp_path / "m.tif", np.ones((40, 20), np.uint8), transform=GRID)
    scene = load_scene(img, msk, CLASSES, None, {"gsd": 1.0, "photo_scale": 0.5})
    assert scene.scale == 0.5 and scene.image.shape == (3, 20, 10) and (scene.target == 1).all()


# --------------------------------------------------------------------------- bands


def _four_band(tmp_path: Path, write_raster: Callable) -> Path:
    data = np.concatenate([_rgb(8, 8), np.full((1, 8, 8), 77, np.uint8)])
    return write_raster(tmp_path / "rgbn.tif", data)


def test_four_band_image_where_three_bands_are_configured_uses_1_to_3_with_a_notice(tmp_path: Path, write_raster: Callable) -> None:
    img = _four_band(tmp_path, write_raster)
    scene = load_scene(img, None, None, [1, 2, 3], NATIVE)
    assert scene.image.shape[0] == 3 and not (scene.image == 77).any()  # band 4 is not read
    assert scene.notice == "rgbn.tif has 4 image bands; the model uses band(s) 1,2,3, `bands` in the config chooses others."


def test_three_band_image_where_four_bands_are_configured_is_refused(tmp_path: Path, write_raster: Callable) -> None:
    img = write_raster(tmp_path / "rgb.tif", _rgb(8, 8))
    with pytest.raises(InputError) as exc:
        load_scene(img, None, None, [1, 2, 3, 4], NATIVE)
    assert _one_line(exc).startswith("rgb.tif has 3 image band(s) but the model reads band(s) [1, 2, 3, 4]")


def test_band_lists_that_fit_are_read_in_their_order(tmp_path: Path, write_raster: Callable) -> None:
    img = _four_band(tmp_path, write_raster)
    assert load_scene(img, None, None, None, NATIVE).image.shape[0] == 4
    scene = load_scene(img, None, None, [4, 3, 2, 1], NATIVE)
    assert (scene.image[0] == 77).all()  # band 4 first, as listed


@pytest.mark.parametrize("bands", [3, [1, 2, 9], ["r", "g", "b"]])
def test_malformed_band_lists_are_input_errors(tmp_path: Path, write_raster: Callable, bands: object) -> None:
    img = write_raster(tmp_path / "rgb.tif", _rgb(8, 8))
    with pytest.raises(InputError) as exc:
        load_scene(img, None, None, bands, NATIVE)  # type: ignore[arg-type]
    assert "bands" in _one_line(exc)


def test_rgba_photo_counts_three_image_bands(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb(8, 8).transpose(1, 2, 0), np.full((8, 8), 255, np.uint8)])
    rgba[:2, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    scene = load_scene(tmp_path / "cut.png", None, None, [1, 2, 3], NATIVE)
    assert scene.image.shape[0] == 3 and not scene.valid[:2].any() and scene.valid[2:].all()
    assert scene.notice is None  # the alpha band is the mask: nothing was left out
    with pytest.raises(InputError) as exc:
        load_scene(tmp_path / "cut.png", None, None, [1, 2, 3, 4], NATIVE)
    assert "alpha band (band 4)" in _one_line(exc)


# --------------------------------------------------------------------------- vector labels


def _utm_to_lonlat(geom: shapely.Geometry) -> shapely.Geometry:
    from pyproj import Transformer

    tr = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    return shp_transform(lambda x, y, z=None: tr.transform(x, y), geom)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_polygons_in_another_crs_are_rasterized_onto_the_grid(tmp_path: Path, write_raster: Callable, suffix: str) -> None:
    img = write_raster(tmp_path / "plot.tif", _rgb(20, 20), transform=GRID)
    x0, y0 = 500000.0, 4100000.0
    # Left half (columns 0-9) is crust (id 1); a 4 x 4 px square of moss (id 4) at rows 2-5, cols 12-15.
    crust = shapely.box(x0, y0 - 10, x0 + 5, y0)
    moss = shapely.box(x0 + 6, y0 - 3, x0 + 8, y0 - 1)
    gdf = gpd.GeoDataFrame({"class_id": [1, 4]}, geometry=[_utm_to_lonlat(crust), _utm_to_lonlat(moss)], crs="EPSG:4326")
    path = tmp_path / f"plot{suffix}"
    gdf.to_file(path)
    scene = load_scene(img, path, CLASSES, None, NATIVE)
    t = scene.target
    assert t is not None
    assert (t[1:-1, 1:9] == 1).all()
    assert (t[3:5, 13:15] == 2).all()
    assert (t[12:, 12:] == IGNORE_INDEX).all()  # outside every polygon: unlabelled, ignored
    assert (t == 0).sum() == 0  # nothing became "soil" by accident


def test_polygons_on_a_photo_use_pixel_coordinates(tmp_path: Path) -> None:
    Image.fromarray(_rgb(10, 16).transpose(1, 2, 0)).save(tmp_path / "p.png")
    # x = column, y = -row: rows 0-4, columns 8-15.
    gdf = gpd.GeoDataFrame({"class": [0]}, geometry=[shapely.box(8, -5, 16, 0)], crs=None)
    (tmp_path / "labels").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyogrio: "'crs' was not provided" -- on purpose here
        gdf.to_file(tmp_path / "labels" / "p.gpkg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = load_scene(tmp_path / "p.png", tmp_path / "labels" / "p.gpkg", CLASSES, None, NATIVE)
    assert [str(w.message) for w in caught] == []
    t = scene.target
    assert t is not None
    assert (t[:5, 8:] == 0).all() and (t[5:] == IGNORE_INDEX).all() and (t[:, :8] == IGNORE_INDEX).all()


def test_polygons_without_a_class_field_are_refused(tmp_path: Path, write_raster: Callable) -> None:
    img = write_raster(tmp_path / "plot.tif", _rgb(8, 8), transform=GRID)
    gpd.GeoDataFrame({"kind": ["x"]}, geometry=[shapely.box(500000, 4099996, 500002, 4100000)], crs=UTM).to_file(tmp_path / "plot.gpkg")
    with pytest.raises(InputError) as exc:
        load_scene(img, tmp_path / "plot.gpkg", CLASSES, None, NATIVE)
    assert "class_id" in _one_line(exc)


def test_polygons_off_the_image_are_refused(tmp_path: Path, write_raster: Callable) -> None:
    img = write_raster(tmp_path / "plot.tif", _rgb(8, 8), transform=GRID)
    far = shapely.box(600000, 4000000, 600010, 4000010)  # 100 km away: wrong CRS or wrong file
    gpd.GeoDataFrame({"class_id": [1]}, geometry=[far], crs=UTM).to_file(tmp_path / "plot.gpkg")
    with pytest.raises(InputError) as exc:
        load_scene(img, tmp_path / "plot.gpkg", CLASSES, None, NATIVE)
    assert "do not overlap" in _one_line(exc)


def test_polygon_class_missing_from_the_table_is_refused(tmp_path: Path, write_raster: Callable) -> None:
    img = write_raster(tmp_path / "plot.tif", _rgb(8, 8), transform=GRID)
    gpd.GeoDataFrame({"class_id": [9]}, geometry=[shapely.box(500000, 4099996, 500002, 4100000)], crs=UTM).to_file(tmp_path / "plot.gpkg")
    with pytest.raises(InputError) as exc:
        load_scene(img, tmp_path / "plot.gpkg", CLASSES, None, NATIVE)
    assert "[9]" in _one_line(exc)


# --------------------------------------------------------------------------- split


def test_split_by_whole_files_is_disjoint_and_repeatable() -> None:
    files = [f"img_{i:02d}.tif" for i in range(10)]
    train, val = split_files(files, 0.2, seed=3)
    assert len(val) == 2 and len(train) == 8
    assert not set(train) & set(val) and sorted(train + val) == files
    assert split_files(files, 0.2, seed=3) == (train, val)
    assert any(split_files(files, 0.2, seed=s)[1] != val for s in range(4, 10))  # the seed matters
    assert split_files(files[:2], 0.01, seed=0)[1] != []  # at least one file validates
    assert split_files(files[:1], 0.5, seed=0) == (files[:1], [])


def test_split_of_the_sample_pairs(sample_train: dict[str, Path]) -> None:
    pairs = pair_files(sample_train["images"], sample_train["masks"])
    train, val = split_files(pairs, 0.2, seed=0)
    assert {i for i, _ in train}.isdisjoint({i for i, _ in val}) and len(train) + len(val) == 3


# --------------------------------------------------------------------------- dataset and samplers


def _constant_scenes(tmp_path: Path, write_raster: Callable, sizes: list[tuple[int, int]]) -> list:
    scenes = []
    for k, (h, w) in enumerate(sizes):
        img = write_raster(tmp_path / f"s{k}.tif", np.full((1, h, w), 10 * (k + 1), np.uint16))
        msk = write_raster(tmp_path / f"s{k}_mask.tif", np.zeros((h, w), np.uint8))
        scenes.append(load_scene(img, msk, CLASSES, None, NATIVE))
    return scenes


def test_random_crops_come_from_exactly_one_file(tmp_path: Path, write_raster: Callable) -> None:
    scenes = _constant_scenes(tmp_path, write_raster, [(50, 70), (90, 40), (20, 24)])
    ds = SceneDataset(scenes, UNIT, min_extent=32)
    seen = set()
    for batch in train_loader(ds, crop=32, batch_size=4, samples=60, seed=1):
        assert batch["image"].shape[1:] == (1, 32, 32)
        for img, valid, mask, k in zip(batch["image"], batch["valid"], batch["mask"], batch["scene"]):
            values = img[0][valid]
            assert values.numel() > 0
            assert (values == 10 * (int(k) + 1)).all()  # one file only, and the one named
            assert (mask[~valid] == IGNORE_INDEX).all() and (mask[valid] == 0).all()
            seen.add(int(k))
    assert seen == {0, 1, 2}  # the small scene (20 x 24 < 32) still yields samples


def test_random_crops_repeat_with_the_seed(tmp_path: Path, write_raster: Callable) -> None:
    img = write_raster(tmp_path / "r.tif", np.arange(60 * 60, dtype=np.uint16).reshape(1, 60, 60))
    ds = SceneDataset([load_scene(img, None, None, None, NATIVE)], UNIT, min_extent=16)
    a = torch.cat([b["image"] for b in train_loader(ds, 16, 4, 8, seed=5)])
    b = torch.cat([b["image"] for b in train_loader(ds, 16, 4, 8, seed=5)])
    c = torch.cat([b["image"] for b in train_loader(ds, 16, 4, 8, seed=6)])
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_small_scene_is_padded_and_the_padding_ignored(tmp_path: Path, write_raster: Callable) -> None:
    scenes = _constant_scenes(tmp_path, write_raster, [(20, 24)])
    ds = SceneDataset(scenes, UNIT, min_extent=64)
    batches = list(train_loader(ds, crop=64, batch_size=2, samples=4, seed=0))
    assert sum(len(b["scene"]) for b in batches) == 4
    for b in batches:
        assert b["image"].shape[-2:] == (64, 64)
        assert int(b["valid"][0].sum()) == 20 * 24  # the whole scene, once, rest is padding
        assert int((b["mask"][0] != IGNORE_INDEX).sum()) == 20 * 24


def test_grid_windows_cover_every_pixel_of_every_scene(tmp_path: Path, write_raster: Callable) -> None:
    sizes = [(70, 50), (20, 24), (64, 96)]
    scenes = []
    for k, (h, w) in enumerate(sizes):
        ids = (np.arange(h * w, dtype=np.float32) + 1).reshape(1, h, w)  # every pixel its own value
        scenes.append(load_scene(write_raster(tmp_path / f"g{k}.tif", ids), None, None, None, NATIVE))
    ds = SceneDataset(scenes, UNIT, min_extent=32)
    seen: dict[int, set] = {k: set() for k in range(len(sizes))}
    for batch in grid_loader(ds, crop=32, stride=32, batch_size=3):
        for img, valid, k in zip(batch["image"], batch["valid"], batch["scene"]):
            seen[int(k)].update(img[0][valid].long().tolist())
    for k, (h, w) in enumerate(sizes):
        assert seen[k] == set(range(1, h * w + 1)), f"scene {k} not fully covered"


def test_normalised_samples_use_the_given_statistics(tmp_path: Path, write_raster: Callable) -> None:
    scenes = _constant_scenes(tmp_path, write_raster, [(32, 32)])
    ds = SceneDataset(scenes, {"mean": [4.0], "std": [2.0]}, min_extent=32)
    batch = next(iter(grid_loader(ds, 32, 32, 1)))
    assert torch.allclose(batch["image"], torch.full((1, 1, 32, 32), 3.0))  # (10 - 4) / 2


def test_statistics_from_valid_training_pixels_only(tmp_path: Path, write_raster: Callable) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(1, 200, (2, 30, 30), dtype=np.uint16)
    a[:, :10] = 0  # nodata rows must not pull the mean down
    b = rng.integers(100, 1000, (2, 20, 40), dtype=np.uint16)
    sa = load_scene(write_raster(tmp_path / "a.tif", a, nodata=0), None, None, None, NATIVE)
    sb = load_scene(write_raster(tmp_path / "b.tif", b, nodata=0), None, None, None, NATIVE)
    stats = compute_stats([sa, sb])
    px = np.concatenate([a[:, 10:].reshape(2, -1), b.reshape(2, -1)], axis=1).astype(np.float64)
    np.testing.assert_allclose(stats["mean"], px.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], px.std(axis=1), rtol=1e-6)


def test_augmentation_moves_image_and_mask_together() -> None:
    g = torch.Generator().manual_seed(0)
    mask = torch.randint(0, 3, (8, 16, 16))
    mask[:, 0, 0] = IGNORE_INDEX
    image = mask[:, None].float().repeat(1, 2, 1, 1)
    cfg = AugmentConfig(flips=True, rotations=True, color_noise=0.0)
    out_i, out_m = augment_batch(image, mask, cfg, g)
    assert torch.equal(out_i[:, 0].long(), out_m) and torch.equal(out_i[:, 1].long(), out_m)
    assert not torch.equal(out_m, mask)  # something did move
    noisy, same = augment_batch(image, mask, AugmentConfig(flips=False, rotations=False, color_noise=0.05), g)
    assert torch.equal(same, mask) and 0.02 < float((noisy - image).std()) < 0.08


def test_polygon_without_a_class_value_is_refused(tmp_path: Path, write_raster: Callable) -> None:
    img = write_raster(tmp_path / "plot.tif", _rgb(8, 8), transform=GRID)
    boxes = [shapely.box(500000, 4099998, 500002, 4100000), shapely.box(500002, 4099998, 500004, 4100000)]
    gpd.GeoDataFrame({"class_id": [1.0, float("nan")]}, geometry=boxes, crs=UTM).to_file(tmp_path / "plot.geojson")
    with pytest.raises(InputError) as exc:
        load_scene(img, tmp_path / "plot.geojson", CLASSES, None, NATIVE)
    assert "not an integer" in _one_line(exc)


def test_statistics_of_all_nodata_images_is_an_input_error(tmp_path: Path, write_raster: Callable) -> None:
    scene = load_scene(write_raster(tmp_path / "void.tif", np.zeros((3, 8, 8), np.uint8), nodata=0), None, None, None, NATIVE)
    with pytest.raises(InputError) as exc:
        compute_stats([scene])
    assert "void" in _one_line(exc)


def test_real_biocrust_photos_pair_and_load(biocrust_dir: Path) -> None:
    from jess_geo.classes import load_class_table

    classes = load_class_table(biocrust_dir / "classes.json")
    pairs = pair_files(biocrust_dir / "images", biocrust_dir / "masks")
    assert len(pairs) >= 2 and all(i.stem == m.stem for i, m in pairs)
    image, mask = pairs[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = load_scene(image, mask, classes, None, {"gsd": None, "photo_scale": 0.125})
    assert [str(w.message) for w in caught] == []
    assert scene.image.shape[0] == 3 and not scene.info.georeferenced
    assert scene.target is not None and scene.target.shape == scene.image.shape[1:]
    assert set(np.unique(scene.target).tolist()) <= set(range(len(classes))) | {IGNORE_INDEX}


def test_scale_jitter_keeps_size_aligns_mask_and_ignores_uncovered_border() -> None:
    """Zooming out pads with ignored labels; zooming in keeps image and mask aligned."""
    import torch

    from jess_geo.data.augment import AugmentConfig, augment_batch, scale_jitter

    mask = torch.zeros((1, 64, 64), dtype=torch.long)
    mask[:, 16:48, 16:48] = 3
    image = (mask[:, None].float() * 10).repeat(1, 3, 1, 1)
    out_i, out_m = scale_jitter(image, mask, 0.5)
    assert out_i.shape == image.shape and out_m.shape == mask.shape
    assert (out_m[:, :16, :] == 255).all() and (out_m[:, 24:40, 24:40] == 3).all()
    assert (out_i[:, 0][out_m == 3] == 30).all()
    zi, zm = scale_jitter(image, mask, 2.0)
    assert (zm == 3).all() and torch.allclose(zi[:, 0, 2:-2, 2:-2], torch.full((1, 60, 60), 30.0))
    cfg = AugmentConfig(flips=False, rotations=False, color_noise=0.0, scale_jitter=0.5)
    g = torch.Generator().manual_seed(0)
    ai, am = augment_batch(image, mask, cfg, g, pad_label=0)
    assert ai.shape == image.shape and set(am.unique().tolist()) <= {0, 3}


def test_validation_windows_are_split_between_ranks_without_repeats(tmp_path: Path, write_raster: Callable) -> None:
    """Under DDP each rank scores every world-th grid window: together exactly one process's windows."""
    from jess_geo.data.datamodule import ShardSampler
    from jess_geo.data.dataset import grid_sampler

    ds = SceneDataset(_constant_scenes(tmp_path, write_raster, [(70, 50), (20, 24), (64, 96)]), UNIT, min_extent=32)
    whole = [tuple((s.start, s.stop) for s in q) for q in grid_sampler(ds, 32, 32)]
    for world in (2, 3):
        shards = [[tuple((s.start, s.stop) for s in q) for q in ShardSampler(grid_sampler(ds, 32, 32), r, world)]
                  for r in range(world)]
        assert sorted(sum(shards, [])) == sorted(whole) and len(set(whole)) == len(whole)
        assert [len(ShardSampler(grid_sampler(ds, 32, 32), r, world)) for r in range(world)] == [len(s) for s in shards]
