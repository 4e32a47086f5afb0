"""Tests for jess_geo.io.vectorize: polygons built strip by strip, merged across seams."""

from __future__ import annotations

import math
import sqlite3
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Geod
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes, sieve

from jess_geo.errors import Cancelled, InputError, OutputError
from jess_geo.io.vectorize import vector_conflict, vectorize_raster

CLASSES = [
    {"id": 0, "name": "bare soil", "color": "#8c6d4f"},
    {"id": 1, "name": "lichen", "color": "#ffd400"},
    {"id": 2, "name": "moss", "color": "#2e7d32"},
]
UTM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 9100000.0)
LANDSAT = Path("/work/shared/data/landsat/l7_etm_olinda.tif")


def patchy(height: int, width: int, seed: int = 0, n_classes: int = 3) -> np.ndarray:
    """Blocky blobs with speckle: regions that cross many strips, fork and merge."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, n_classes, (height // 6 + 1, width // 6 + 1))
    a = np.kron(coarse, np.ones((6, 6), dtype=np.int64))[:height, :width]
    speck = rng.random((height, width)) < 0.08
    a[speck] = rng.integers(0, n_classes, int(speck.sum()))
    return a.astype(np.uint8)


def write_raster(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:32725", transform: Affine = UTM,
                 nodata: int | None = 255, driver: str = "GTiff") -> Path:
    profile = dict(driver=driver, width=data.shape[-1], height=data.shape[-2], count=1 if data.ndim == 2 else data.shape[0],
                   dtype=str(data.dtype))
    if driver == "GTiff":
        profile.update(crs=crs, transform=transform, nodata=nodata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data if data.ndim == 3 else data[None])
    return path


def read_layer(path: Path):  # type: ignore[no-untyped-def]
    return pyogrio.read_dataframe(path, layer="classes")


def reference_regions(data: np.ndarray, valid: np.ndarray) -> list[tuple[int, float]]:
    """(class, pixel count) of every 4-connected region, from one whole-raster polygonize."""
    return sorted((int(v), shapely.geometry.shape(g).area) for g, v in shapes(data, mask=valid, connectivity=4))


def pixel_boxes(mask: np.ndarray, t: Affine):  # type: ignore[no-untyped-def]
    rows, cols = np.nonzero(mask)
    x0, y0 = t.a * cols + t.c, t.e * rows + t.f
    x1, y1 = t.a * (cols + 1) + t.c, t.e * (rows + 1) + t.f
    return shapely.union_all(shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)))


def assert_coverage(df, valid_area: float, rel: float = 1e-9) -> None:  # type: ignore[no-untyped-def]
    """Valid polygons, no overlaps (sum of areas == union area), no gaps (union == valid area)."""
    geoms = df.geometry.values
    assert shapely.is_valid(geoms).all()
    assert (shapely.get_type_id(geoms) == 3).all()  # Polygon
    total = float(shapely.area(geoms).sum())
    union = shapely.union_all(geoms).area
    assert total == pytest.approx(union, rel=rel)
    assert union == pytest.approx(valid_area, rel=rel)


@pytest.mark.parametrize("strip_rows", [1, 7, 64, 10000])
def test_polygons_match_whole_raster_regions_across_seams(tmp_path: Path, strip_rows: int) -> None:
    data = patchy(71, 53, seed=strip_rows)
    data[10:30, 0:9] = 255  # nodata block crossing seams
    data[-1, -1] = 255
    valid = data != 255
    src = write_raster(tmp_path / "classes.tif", data)
    out = tmp_path / "classes.gpkg"
    summary = vectorize_raster(src, out, CLASSES, source="scene.tif", model="m.jessgeo", strip_rows=strip_rows)
    df = read_layer(out)

    ref = reference_regions(data, valid)
    assert len(df) == len(ref) == summary["polygons"]
    # every region is there, each with its exact pixel count
    got = sorted(zip(df["class_id"].astype(int), np.round(df["area_px"].to_numpy(), 9)))
    assert got == [(c, float(a)) for c, a in ref]
    pix_area = 0.25
    for c in range(3):
        n = int((data == c).sum())
        sel = df[df["class_id"] == c]
        assert sel["area_m2"].sum() == pytest.approx(n * pix_area, rel=1e-9)
        assert sel.geometry.area.sum() == pytest.approx(n * pix_area, rel=1e-9)
        assert summary["classes"][c]["count"] == len(sel)
        assert summary["classes"][c]["area"] == pytest.approx(n * pix_area, rel=1e-9)
        assert (sel["class_name"] == CLASSES[c]["name"]).all()
    assert summary["area_unit"] == "m2"
    assert_coverage(df, valid.sum() * pix_area)
    # exactly on pixel edges: vertices on the pixel grid
    xy = shapely.get_coordinates(df.geometry.values)
    col, row = (xy[:, 0] - UTM.c) / UTM.a, (xy[:, 1] - UTM.f) / UTM.e
    assert np.allclose(col, np.round(col), atol=1e-6) and np.allclose(row, np.round(row), atol=1e-6)
    assert (df["source"] == "scene.tif").all() and (df["model"] == "m.jessgeo").all()
    assert df["perimeter_m"].to_numpy() == pytest.approx(df.geometry.length.to_numpy())
    assert pyogrio.read_info(out, layer="classes")["crs"] == "EPSG:32725"


def test_regions_that_fork_and_merge_through_many_strips(tmp_path: Path) -> None:
    # a comb: teeth of class 1 joined at the bottom, a ring with a hole, a diagonal touch
    data = np.zeros((40, 30), dtype=np.uint8)
    data[2:35, 2:4] = data[2:35, 8:10] = data[2:35, 14:16] = 1
    data[33:36, 2:16] = 1
    data[5:25, 20:28] = 2
    data[9:20, 22:25] = 0  # hole in the ring (its own region of class 0)
    data[37, 20] = data[38, 21] = 2  # touch at a corner only: two regions (4-connectivity)
    src = write_raster(tmp_path / "comb.tif", data)
    out = tmp_path / "comb.gpkg"
    vectorize_raster(src, out, CLASSES, strip_rows=3)
    df = read_layer(out)
    ref = reference_regions(data, np.ones_like(data, dtype=bool))
    assert len(df) == len(ref)
    comb = df[df["class_id"] == 1]
    assert len(comb) == 1 and comb["area_px"].iloc[0] == (data == 1).sum()
    ring = df[(df["class_id"] == 2) & (df["area_px"] > 2)].geometry.iloc[0]
    assert len(ring.interiors) == 1
    assert ((df["class_id"] == 2) & (df["area_px"] == 1)).sum() == 2
    assert_coverage(df, data.size * 0.25)


def test_nodata_never_vectorized(tmp_path: Path) -> None:
    data = patchy(50, 40, seed=3)
    data[:, :5] = 7  # the raster's declared nodata value
    data[20:25, 10:30] = 7
    src = write_raster(tmp_path / "nd.tif", data, nodata=7)
    out = tmp_path / "nd.gpkg"
    vectorize_raster(src, out, CLASSES, strip_rows=6)
    df = read_layer(out)
    assert set(df["class_id"]) <= {0, 1, 2}
    nodata_area = pixel_boxes(data == 7, UTM)
    assert shapely.intersection(shapely.union_all(df.geometry.values), nodata_area).area == pytest.approx(0.0, abs=1e-9)
    assert_coverage(df, (data != 7).sum() * 0.25)


def test_all_nodata_gives_an_empty_valid_layer(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "empty.tif", np.full((20, 20), 255, dtype=np.uint8))
    out = tmp_path / "empty.gpkg"
    summary = vectorize_raster(src, out, CLASSES, strip_rows=7)
    assert summary["polygons"] == 0
    assert pyogrio.read_info(out, layer="classes")["features"] == 0
    assert summary["classes"][1] == {"name": "lichen", "count": 0, "area": 0.0}


def test_geographic_crs_areas_are_geodesic(tmp_path: Path) -> None:
    data = patchy(60, 45, seed=5)
    t = Affine(0.001, 0.0, -35.0, 0.0, -0.001, -7.9)  # about 110 m pixels near Olinda
    src = write_raster(tmp_path / "geo.tif", data, crs="EPSG:4326", transform=t)
    out = tmp_path / "geo.gpkg"
    summary = vectorize_raster(src, out, CLASSES, strip_rows=8)
    df = read_layer(out)
    geod = Geod(ellps="WGS84")
    row_area = []
    for r in range(data.shape[0]):
        lat0, lat1 = t.f + t.e * r, t.f + t.e * (r + 1)
        a, _ = geod.polygon_area_perimeter([-35.0, -34.999, -34.999, -35.0], [lat0, lat0, lat1, lat1])
        row_area.append(abs(a))
    row_area = np.array(row_area)
    assert 1.2e4 < row_area.mean() < 1.25e4  # ~110.6 m x 110.2 m
    for c in range(3):
        expected = float(((data == c) * row_area[:, None]).sum())
        got = df.loc[df["class_id"] == c, "area_m2"].sum()
        assert got == pytest.approx(expected, rel=1e-4)
        assert summary["classes"][c]["area"] == pytest.approx(expected, rel=1e-4)
    # perimeter of a single pixel-sized polygon is about 4 x 110 m
    assert df["perimeter_m"].min() == pytest.approx(2 * (110.6 + 110.2), rel=0.01)


def test_photo_is_in_pixel_units(tmp_path: Path) -> None:
    data = patchy(30, 40, seed=7)
    src = write_raster(tmp_path / "photo.png", data, driver="PNG")
    out = tmp_path / "photo.gpkg"
    summary = vectorize_raster(src, out, CLASSES, strip_rows=4)
    df = read_layer(out)
    assert summary["area_unit"] == "px2"
    assert df["area_m2"].isna().all() and df["perimeter_m"].isna().all()
    for c in range(3):
        assert df.loc[df["class_id"] == c, "area_px"].sum() == (data == c).sum()
        assert summary["classes"][c]["area"] == (data == c).sum()
    minx, miny, maxx, maxy = shapely.union_all(df.geometry.values).bounds
    assert (minx, miny, maxx, maxy) == (0.0, -30.0, 40.0, 0.0)  # x = column, y = -row


def test_layer_style_stored_as_default(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(20, 20))
    out = tmp_path / "c.gpkg"
    vectorize_raster(src, out, CLASSES)
    con = sqlite3.connect(out)
    cols = [r[1] for r in con.execute("PRAGMA table_info(layer_styles)")]
    for c in ("f_table_catalog", "f_table_schema", "f_table_name", "f_geometry_column", "styleName", "styleQML",
              "styleSLD", "useAsDefault", "description", "owner", "ui", "update_time"):
        assert c in cols
    geom_col = con.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name='classes'").fetchone()[0]
    rows = con.execute("SELECT f_table_name, f_geometry_column, useAsDefault, styleQML, styleSLD FROM layer_styles").fetchall()
    con.close()
    assert len(rows) == 1
    name, gcol, default, qml, sld = rows[0]
    assert (name, gcol, default) == ("classes", geom_col, 1)
    root = ET.fromstring(qml.split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer is not None and renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class_id"
    cats = {c.get("value"): c.get("label") for c in renderer.iter("category")}
    assert cats == {"0": "bare soil", "1": "lichen", "2": "moss"}
    for colour in ("140,109,79,255", "255,212,0,255", "46,125,50,255"):
        assert colour in qml
    assert "#ffd400" in sld
    ET.fromstring(sld.split("\n", 1)[1])


@pytest.mark.parametrize("strip_rows", [5, 10000])
def test_min_area_merges_small_regions_without_gaps(tmp_path: Path, strip_rows: int) -> None:
    data = patchy(64, 48, seed=11)
    data[30:34, 0:48] = 255
    data[50, 40] = 255  # nodata around an island pixel
    data[0:3, 0:3] = 255
    data[1, 1] = 2  # an island of 1 px inside nodata: removed (nothing to merge into)
    valid = data != 255
    src = write_raster(tmp_path / "s.tif", data)
    out = tmp_path / "s.gpkg"
    vectorize_raster(src, out, CLASSES, min_area=3.0, strip_rows=strip_rows)  # 12 px of 0.25 m²
    df = read_layer(out)
    assert df["area_m2"].min() >= 3.0
    assert len(df) < len(reference_regions(data, valid))
    assert_coverage(df, (valid.sum() - 1) * 0.25)
    # as sieving the whole raster at once; strips may pick another neighbour for a few pixels
    whole = sieve(data, 12, mask=valid, connectivity=4)
    ref = [r for r in reference_regions(whole, valid) if r[1] >= 12]
    got = sorted(zip(df["class_id"].astype(int), df["area_px"].astype(float)))
    if strip_rows >= data.shape[0]:
        assert got == ref
    else:
        assert abs(len(got) - len(ref)) <= 2
        for c in range(3):
            assert sum(a for k, a in got if k == c) == pytest.approx(sum(a for k, a in ref if k == c), rel=0.02)


@pytest.mark.parametrize("strip_rows", [6, 10000])
def test_simplify_keeps_shared_boundaries(tmp_path: Path, strip_rows: int) -> None:
    yy, xx = np.mgrid[0:80, 0:70]
    data = ((np.sin(xx / 7.0) + np.cos(yy / 5.0) + xx / 40.0) * 1.3).astype(np.int64) % 3
    data = data.astype(np.uint8)
    data[40:45, 10:20] = 255
    valid = data != 255
    src = write_raster(tmp_path / "s.tif", data)
    out0, out1 = tmp_path / "raw.gpkg", tmp_path / "simple.gpkg"
    vectorize_raster(src, out0, CLASSES, strip_rows=strip_rows)
    vectorize_raster(src, out1, CLASSES, simplify=1.5, strip_rows=strip_rows)
    raw, simple = read_layer(out0), read_layer(out1)
    assert len(simple) == len(raw)
    assert shapely.get_num_coordinates(simple.geometry.values).sum() < 0.7 * shapely.get_num_coordinates(raw.geometry.values).sum()
    assert_coverage(simple, valid.sum() * 0.25, rel=1e-9)
    nodata_area = pixel_boxes(~valid, UTM)
    assert shapely.intersection(shapely.union_all(simple.geometry.values), nodata_area).area == pytest.approx(0.0, abs=1e-9)


def test_cancel_leaves_no_file(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(60, 30))
    out = tmp_path / "c.gpkg"
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        vectorize_raster(src, out, CLASSES, strip_rows=5, cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]


def test_progress_reports_each_strip(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(25, 30))
    seen = []
    vectorize_raster(src, tmp_path / "c.gpkg", CLASSES, strip_rows=10, progress=lambda *a: seen.append(a))
    assert [(s, d, t) for s, d, t, _ in seen] == [("vectorize", 1, 3), ("vectorize", 2, 3), ("vectorize", 3, 3)]


def test_existing_output_replaced_and_bad_inputs_refused(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(20, 20))
    out = tmp_path / "c.gpkg"
    out.write_text("old")
    with pytest.raises(OutputError, match="exists already"):
        vectorize_raster(src, out, CLASSES)
    assert out.read_text() == "old"
    vectorize_raster(src, out, CLASSES, overwrite=True)
    assert pyogrio.read_info(out, layer="classes")["features"] > 0
    with pytest.raises(OutputError):
        vectorize_raster(src, src, CLASSES)
    multi = write_raster(tmp_path / "m.tif", np.zeros((2, 5, 5), dtype=np.uint8))
    with pytest.raises(InputError, match="not a class raster"):
        vectorize_raster(multi, tmp_path / "m.gpkg", CLASSES)
    with pytest.raises(InputError):
        vectorize_raster(src, tmp_path / "x.gpkg", CLASSES, min_area=-1)
    with pytest.raises(InputError):
        vectorize_raster(tmp_path / "missing.tif", tmp_path / "x.gpkg", CLASSES)
    assert not (tmp_path / "x.gpkg").exists() and not (tmp_path / "m.gpkg").exists()


@pytest.mark.skipif(not LANDSAT.exists(), reason="shared Landsat scene not present")
def test_landsat_thresholded_classes(tmp_path: Path) -> None:
    with rasterio.open(LANDSAT) as ds:
        nir = ds.read(4).astype(np.float64)
        profile = ds.profile
    cuts = np.quantile(nir, [0.3, 0.7])
    data = np.digitize(nir, cuts).astype(np.uint8)
    data[:3, :] = 255  # a nodata band along the top
    src = write_raster(tmp_path / "olinda_classes.tif", data, crs=profile["crs"].to_wkt(), transform=profile["transform"])
    out = tmp_path / "olinda_classes.gpkg"
    summary = vectorize_raster(src, out, CLASSES, source=LANDSAT.name, model="threshold", strip_rows=32)
    df = read_layer(out)
    valid = data != 255
    assert len(df) == len(reference_regions(data, valid))
    px = abs(profile["transform"].a * profile["transform"].e)
    for c in range(3):
        n = int((data == c).sum())
        assert df.loc[df["class_id"] == c, "area_m2"].sum() == pytest.approx(n * px, rel=1e-6)
        assert summary["classes"][c]["area"] == pytest.approx(n * px, rel=1e-6)
    assert_coverage(df, valid.sum() * px, rel=1e-6)
    assert math.isclose(df["area_m2"].min(), px, rel_tol=1e-6)


# ---------------------------------------------------------------- formats and data safety (issue 10)

FORMATS = [(".gpkg", "GPKG"), (".fgb", "FlatGeobuf"), (".geojson", "GeoJSON"), (".json", "GeoJSON"), (".shp", "ESRI Shapefile")]


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def data_layers(path: Path) -> list[str]:
    """Layers of a GeoPackage other than the `layer_styles` table."""
    return sorted(name for name in pyogrio.list_layers(path)[:, 0] if name != "layer_styles")


@pytest.mark.trust
@pytest.mark.parametrize("ext, driver", FORMATS)
def test_format_follows_the_extension(tmp_path: Path, ext: str, driver: str) -> None:
    data = patchy(30, 25, seed=2)
    src = write_raster(tmp_path / "c.tif", data)
    out = tmp_path / f"field{ext}"
    summary = vectorize_raster(src, out, CLASSES, strip_rows=7)
    layer = "classes" if driver == "GPKG" else None
    info = pyogrio.read_info(out, layer=layer)
    assert info["driver"] == driver
    assert info["features"] == summary["polygons"] == len(reference_regions(data, np.ones_like(data, dtype=bool)))
    assert info["crs"] == "EPSG:32725"
    df = pyogrio.read_dataframe(out, layer=layer)
    if driver == "ESRI Shapefile":
        assert max(len(f) for f in info["fields"]) <= 10
        assert list(info["fields"]) == ["class_id", "class_name", "area_m2", "perim_m", "area_px", "perim_px", "source", "model"]
        assert visible_files(tmp_path) == ["c.tif", "field.cpg", "field.dbf", "field.prj", "field.qml", "field.shp", "field.shx"]
    else:
        assert list(info["fields"]) == ["class_id", "class_name", "area_m2", "perimeter_m", "area_px", "perimeter_px", "source", "model"]
        sidecar = [] if driver == "GPKG" else ["field.qml"]
        assert visible_files(tmp_path) == sorted(["c.tif", out.name, *sidecar])
    assert df["area_m2"].sum() == pytest.approx(data.size * 0.25)
    assert set(df["class_name"]) == {"bare soil", "lichen", "moss"}
    if driver != "GPKG":  # QGIS loads <name>.qml beside a file layer as its default style
        qml = out.with_suffix(".qml").read_text(encoding="utf-8")
        cats = ET.fromstring(qml.split("\n", 1)[1]).find("renderer-v2")
        assert {c.get("label") for c in cats.iter("category")} == {"bare soil", "lichen", "moss"}


@pytest.mark.trust
@pytest.mark.parametrize("name", ["field.kml", "field.txt", "field", "field.gpkg.zip"])
def test_unsupported_vector_extension_is_refused_naming_the_formats(tmp_path: Path, name: str) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(10, 10))
    with pytest.raises(OutputError) as exc:
        vectorize_raster(src, tmp_path / name, CLASSES)
    msg = str(exc.value)
    assert "\n" not in msg and ".gpkg" in msg and ".fgb" in msg and ".geojson" in msg and ".shp" in msg
    assert visible_files(tmp_path) == ["c.tif"]


def plots_state(path: Path) -> tuple:
    df = pyogrio.read_dataframe(path, layer="plots")
    con = sqlite3.connect(path)
    style = con.execute("SELECT styleName, styleQML, useAsDefault FROM layer_styles WHERE f_table_name = 'plots'").fetchall()
    con.close()
    return list(df["plot"]), [tuple(p.coords)[0] for p in df.geometry], style


@pytest.mark.trust
def test_overwrite_replaces_only_our_layer_and_keeps_other_layers_and_styles(tmp_path: Path, write_user_gpkg: Any) -> None:
    out = tmp_path / "field.gpkg"
    write_user_gpkg(out)
    before = plots_state(out)
    assert before[2] == [("my plots", "<qgis>my red dots</qgis>", 1)]
    src = write_raster(tmp_path / "c.tif", patchy(20, 20, seed=1))
    first = vectorize_raster(src, out, CLASSES)  # a new layer beside `plots`: no --overwrite needed
    assert data_layers(out) == ["classes", "plots"]
    with pytest.raises(OutputError, match="already holds a layer 'classes'.*--overwrite"):
        vectorize_raster(src, out, CLASSES)
    src2 = write_raster(tmp_path / "c2.tif", patchy(20, 20, seed=9))
    second = vectorize_raster(src2, out, CLASSES, overwrite=True)
    assert second["polygons"] != first["polygons"]
    assert pyogrio.read_info(out, layer="classes")["features"] == second["polygons"]
    assert data_layers(out) == ["classes", "plots"]
    assert plots_state(out) == before
    con = sqlite3.connect(out)
    ours = con.execute("SELECT styleName, useAsDefault FROM layer_styles WHERE f_table_name = 'classes'").fetchall()
    con.close()
    assert ours == [("jess-geo classes", 1)]  # one style row for our layer, not one per run
    assert visible_files(tmp_path) == ["c.tif", "c2.tif", "field.gpkg"]


@pytest.mark.trust
def test_second_layer_name_and_reserved_names(tmp_path: Path) -> None:
    out = tmp_path / "field.gpkg"
    src = write_raster(tmp_path / "c.tif", patchy(20, 20))
    vectorize_raster(src, out, CLASSES)
    vectorize_raster(src, out, CLASSES, layer="classes_2026")
    assert data_layers(out) == ["classes", "classes_2026"]
    for bad in ("", "gpkg_contents", "layer_styles", "a\nb"):
        assert vector_conflict(out, bad, overwrite=True) is not None
        with pytest.raises(OutputError):
            vectorize_raster(src, out, CLASSES, layer=bad, overwrite=True)
    assert data_layers(out) == ["classes", "classes_2026"]


@pytest.mark.trust
def test_failure_mid_way_leaves_the_existing_geopackage_untouched(tmp_path: Path, write_user_gpkg: Any) -> None:
    out = tmp_path / "field.gpkg"
    write_user_gpkg(out)
    src = write_raster(tmp_path / "c.tif", patchy(40, 20))
    vectorize_raster(src, out, CLASSES)
    before_bytes = out.read_bytes()
    with pytest.raises(Cancelled):
        vectorize_raster(src, out, CLASSES, overwrite=True, strip_rows=5, cancel=iter([False, False, True]).__next__)
    assert out.read_bytes() == before_bytes
    assert visible_files(tmp_path) == ["c.tif", "field.gpkg"]


@pytest.mark.trust
def test_a_file_that_appears_during_the_run_is_not_replaced(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(40, 20))
    out = tmp_path / "field.fgb"

    def interloper(*_: object) -> None:
        if not out.exists():
            out.write_text("written by another run")

    with pytest.raises(OutputError, match="created by another program"):
        vectorize_raster(src, out, CLASSES, strip_rows=10, progress=interloper)
    assert out.read_text() == "written by another run"
    assert visible_files(tmp_path) == ["c.tif", "field.fgb"]


@pytest.mark.trust
def test_vector_conflict_reasons(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(10, 10))
    assert vector_conflict(tmp_path / "new.gpkg", "classes", False) is None
    assert "folder" in vector_conflict(tmp_path, "classes", True)
    assert "does not exist" in vector_conflict(tmp_path / "no" / "x.gpkg", "classes", False)
    vectorize_raster(src, tmp_path / "x.shp", CLASSES)
    assert "exists already" in vector_conflict(tmp_path / "x.shp", "classes", False)
    assert vector_conflict(tmp_path / "x.shp", "classes", True) is None
    (tmp_path / "old.gpkg").write_text("not a geopackage")
    assert "exists already" in vector_conflict(tmp_path / "old.gpkg", "classes", False)
    assert vector_conflict(tmp_path / "old.gpkg", "classes", True) is None
    for reason in [vector_conflict(tmp_path / "x.kml", "classes", True), vector_conflict(tmp_path, "classes", True)]:
        assert reason is not None and "\n" not in reason and reason.endswith(".")


@pytest.mark.trust
def test_overwriting_a_shapefile_removes_its_stale_parts(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(10, 10))
    out = tmp_path / "x.shp"
    vectorize_raster(src, out, CLASSES)
    (tmp_path / "x.qix").write_bytes(b"old spatial index")
    vectorize_raster(src, out, CLASSES, overwrite=True)
    assert not (tmp_path / "x.qix").exists()
    assert pyogrio.read_info(out)["features"] > 0


def sample_crop(repo_root: Path, path: Path) -> Path:
    """The top-left 128 x 160 pixels of the bundled sample scene (a few seconds of predict)."""
    with rasterio.open(repo_root / "sample_data" / "scene.tif") as src:
        profile = dict(src.profile, width=160, height=128)  # same origin: the transform is unchanged
        data = src.read(window=((0, 128), (0, 160)))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.mark.trust
def test_predict_overwrite_into_a_geopackage_keeps_the_users_layer_and_style(tmp_path: Path, repo_root: Path, run_cli, write_user_gpkg: Any) -> None:
    scene = sample_crop(repo_root, tmp_path / "scene.tif")
    field = tmp_path / "field.gpkg"
    write_user_gpkg(field)
    before = plots_state(field)
    first = run_cli("predict", scene, "-o", "x_classes.tif", "--vector", field, "--quiet", cwd=tmp_path)
    assert first.exit_code == 0, first.stderr
    assert data_layers(field) == ["classes", "plots"] and plots_state(field) == before
    again = run_cli("predict", scene, "-o", "x_classes.tif", "--vector", field, "--quiet", cwd=tmp_path)
    assert again.exit_code != 0 and "--overwrite" in again.stderr and plots_state(field) == before
    proc = run_cli("predict", scene, "-o", "x_classes.tif", "--vector", field, "--overwrite", "--quiet", cwd=tmp_path)
    assert proc.exit_code == 0, proc.stderr
    assert data_layers(field) == ["classes", "plots"]
    assert plots_state(field) == before  # the user's points and their style, untouched
    assert pyogrio.read_info(field, layer="classes")["features"] > 0
    assert not [p for p in tmp_path.iterdir() if ".part-" in p.name or p.name.endswith(("-wal", "-journal"))]


@pytest.mark.trust
@pytest.mark.parametrize("name", ["field.kml", "field.shp.txt"])
def test_predict_refuses_an_unknown_vector_extension_before_any_work(tmp_path: Path, repo_root: Path, run_cli,
                                                                      assert_cli_error, name: str) -> None:
    scene = sample_crop(repo_root, tmp_path / "scene.tif")
    proc = run_cli("predict", scene, "-o", "x_classes.tif", "--vector", name, cwd=tmp_path)
    message = assert_cli_error(proc)
    assert ".gpkg" in message and ".shp" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


@pytest.mark.trust
def test_a_geopackage_open_in_another_program_is_not_replaced(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(10, 10))
    out = tmp_path / "field.gpkg"
    vectorize_raster(src, out, CLASSES)
    Path(f"{out}-wal").write_bytes(b"\0" * 64)  # as QGIS holds it open in WAL mode
    before = out.read_bytes()
    with pytest.raises(OutputError, match="open in another program"):
        vectorize_raster(src, out, CLASSES, layer="more")
    assert out.read_bytes() == before


QGIS_VECTOR = """
import sys
from qgis.core import QgsApplication, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
out = []
for path in sys.argv[1:]:
    layer = QgsVectorLayer(path, "x", "ogr")
    r = layer.renderer()
    out.append([layer.featureCount(), r.type(), [c.label() for c in r.categories()] if r.type() == "categorizedSymbol" else []])
    del layer, r
print(repr(out))
app.exitQgis()
"""


def _has_qgis() -> bool:
    import subprocess

    return Path("/usr/bin/python3").is_file() and subprocess.run(
        ["/usr/bin/python3", "-c", "import qgis.core"], capture_output=True).returncode == 0


@pytest.mark.trust
@pytest.mark.skipif(not _has_qgis(), reason="QGIS (qgis.core for /usr/bin/python3) is not installed")
def test_real_qgis_opens_every_format_with_the_class_style(tmp_path: Path) -> None:
    import subprocess

    src = write_raster(tmp_path / "c.tif", patchy(30, 25, seed=4))
    paths = [tmp_path / f"field.{ext}" for ext in ("gpkg", "fgb", "geojson", "shp")]
    counts = [vectorize_raster(src, p, CLASSES)["polygons"] for p in paths]
    env = {"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["/usr/bin/python3", "-c", QGIS_VECTOR, *map(str, paths)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr
    assert seen == [[n, "categorizedSymbol", ["bare soil", "lichen", "moss"]] for n in counts]


@pytest.mark.trust
def test_leftovers_of_a_killed_shapefile_run_are_cleaned(tmp_path: Path) -> None:
    src = write_raster(tmp_path / "c.tif", patchy(10, 10))
    dead = 2**22 + 12345  # above the default pid_max: no such process
    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qml"):
        (tmp_path / f".x.part-{dead}{ext}").write_bytes(b"partial")
    vectorize_raster(src, tmp_path / "x.shp", CLASSES)
    assert visible_files(tmp_path) == ["c.tif", "x.cpg", "x.dbf", "x.prj", "x.qml", "x.shp", "x.shx"]
