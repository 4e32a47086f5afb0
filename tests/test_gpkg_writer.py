"""Tests for jess_geo.io.gpkg_writer: the GeoPackage predict writes with sqlite3, checked by GDAL's tools."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from jess_geo.errors import OutputError
from jess_geo.io.areas import Measure
from jess_geo.io.gpkg_writer import finish_gpkg_layer, write_gpkg_batch
from jess_geo.io.vector_writer import PolygonWriter

SYSTEM_PYTHON = Path("/usr/bin/python3")
VALIDATOR = Path("/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py")
OGRINFO, OGR2OGR = shutil.which("ogrinfo", path="/usr/bin"), shutil.which("ogr2ogr", path="/usr/bin")
FIELDS = ["class_id", "class_name", "area_m2", "perimeter_m", "area_px", "perimeter_px", "source", "model"]
DTYPES = ["int32", "object", "float64", "float64", "float64", "float64", "object", "object"]
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # the system GDAL, not the venv's (no PYTHONPATH)


def assert_valid_geopackage(path: Path) -> None:
    """GDAL's validator for the GeoPackage standard prints nothing and exits 0 (skipped without it)."""
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import osgeo_utils"], env=CLEAN_ENV, capture_output=True) \
        if SYSTEM_PYTHON.is_file() and VALIDATOR.is_file() else None
    if probe is None or probe.returncode != 0:
        pytest.skip("the GDAL GeoPackage validator (python3-gdal) is not installed")
    proc = subprocess.run([str(SYSTEM_PYTHON), str(VALIDATOR), str(path)], env=CLEAN_ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


def ogrinfo(*args: Any) -> str:
    if OGRINFO is None:
        pytest.skip("GDAL's ogrinfo is not installed")
    proc = subprocess.run([OGRINFO, "-ro", *map(str, args)], env=CLEAN_ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def features(path: Path, layer: str | None = "classes") -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Geometries, attribute columns and layer info, read back by pyogrio (GDAL)."""
    meta, _, wkb, columns = pyogrio.raw.read(path, layer=layer)
    return shapely.from_wkb(wkb), dict(zip(meta["fields"], columns)), pyogrio.read_info(path, layer=layer)


def by_shape(geoms: np.ndarray) -> np.ndarray:
    """Indexes that sort polygons by their normalized WKB (regions of one raster are disjoint: unique)."""
    return np.argsort(np.array(shapely.to_wkb(shapely.normalize(geoms)).tolist(), dtype=object))


def assert_same_features(gpkg: Path, reference: Path) -> None:
    """The GeoPackage holds exactly the features pyogrio wrote to ``reference`` in another run."""
    geoms, cols, info = features(gpkg)
    ref_geoms, ref_cols, _ = features(reference, layer=None)
    assert len(geoms) == len(ref_geoms) > 0
    assert list(cols) == FIELDS and [str(d) for d in info["dtypes"]] == DTYPES
    order, ref_order = by_shape(geoms), by_shape(ref_geoms)  # FlatGeobuf stores features in its index's order
    geoms, ref_geoms = geoms[order], ref_geoms[ref_order]
    for name in FIELDS:
        a, b = cols[name][order], ref_cols[name][ref_order]
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b)  # NaN (NULL) where the reference has NULL
        else:
            assert a.tolist() == b.tolist(), name
    assert shapely.equals(geoms, ref_geoms).all()


@pytest.fixture(scope="module")
def scene_outputs(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> dict[str, Path]:
    """The sample scene predicted twice: polygons to a GeoPackage (sqlite3) and to FlatGeobuf (pyogrio)."""
    tmp = tmp_path_factory.mktemp("scene")
    from jess_geo.cli.main import run

    scene = repo_root / "sample_data" / "scene.tif"
    for name, vector in (("g", "g.gpkg"), ("f", "f.fgb")):
        cwd = Path.cwd()
        os.chdir(tmp)
        try:
            assert run(["predict", str(scene), "-o", f"{name}_classes.tif", "--vector", vector, "--quiet"]) == 0
        finally:
            os.chdir(cwd)
    return {"gpkg": tmp / "g.gpkg", "fgb": tmp / "f.fgb", "scene": scene}


def test_predict_geopackage_passes_the_validator_and_matches_pyogrio(scene_outputs: dict[str, Path]) -> None:
    assert_same_features(scene_outputs["gpkg"], scene_outputs["fgb"])
    assert_valid_geopackage(scene_outputs["gpkg"])
    con = sqlite3.connect(scene_outputs["gpkg"])
    ident = con.execute("PRAGMA application_id").fetchone()[0], con.execute("PRAGMA user_version").fetchone()[0]
    styles = con.execute("SELECT styleName, useAsDefault FROM layer_styles WHERE f_table_name = 'classes'").fetchall()
    con.close()
    assert ident == (0x47504B47, 10200) and styles == [("jess-geo classes", 1)]


def test_predict_geopackage_has_the_scene_crs_extent_and_a_working_spatial_index(scene_outputs: dict[str, Path]) -> None:
    with rasterio.open(scene_outputs["scene"]) as src:
        epsg = src.crs.to_epsg()
    gpkg = scene_outputs["gpkg"]
    info = ogrinfo("-so", gpkg, "classes")
    assert f'ID["EPSG",{epsg}]]' in info.replace("\n", "").replace(" ", "")
    geoms, _, meta = features(gpkg)
    assert meta["crs"] == f"EPSG:{epsg}"
    assert np.allclose(meta["total_bounds"], shapely.total_bounds(geoms))
    assert "HasSpatialIndex (Integer) = 1" in ogrinfo(gpkg, "-sql", "SELECT HasSpatialIndex('classes', 'geom')")
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    window = (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)  # the lower-left quarter
    expected = int(shapely.intersects(geoms, shapely.box(*window)).sum())
    assert 0 < expected < len(geoms)
    assert f"Feature Count: {expected}\n" in ogrinfo("-so", "-spat", *window, gpkg, "classes")
    con = sqlite3.connect(gpkg)
    assert con.execute("SELECT rtreecheck('rtree_classes_geom'), count(*) FROM rtree_classes_geom").fetchone() == ("ok", len(geoms))
    con.close()


def test_gdal_can_edit_the_layer_and_its_spatial_index_follows(scene_outputs: dict[str, Path], tmp_path: Path) -> None:
    if OGR2OGR is None:
        pytest.skip("GDAL's ogr2ogr is not installed")
    gpkg = tmp_path / "edited.gpkg"
    shutil.copy(scene_outputs["gpkg"], gpkg)
    geoms, _, meta = features(gpkg)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    far = shapely.box(x1 + 100, y1 + 100, x1 + 101, y1 + 101)  # away from every polygon
    extra = tmp_path / "extra.geojson"
    extra.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class_id": 1}, "geometry": shapely.geometry.mapping(far)}]}))
    proc = subprocess.run([OGR2OGR, "-append", "-nln", "classes", "-a_srs", meta["crs"], str(gpkg), str(extra)],
                          env=CLEAN_ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # the insert trigger runs GDAL's ST_* functions
    assert "Feature Count: 1\n" in ogrinfo("-so", "-spat", x1 + 99, y1 + 99, x1 + 102, y1 + 102, gpkg, "classes")
    assert_valid_geopackage(gpkg)


def test_a_photo_gives_a_valid_geopackage_in_pixel_units(repo_root: Path, tmp_path: Path, run_cli: Any) -> None:
    photo = tmp_path / "photo.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a photo: no CRS, no transform
        with rasterio.open(repo_root / "sample_data" / "photo.jpg") as src:
            data = src.read()
        with rasterio.open(photo, "w", driver="PNG", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype="uint8") as dst:
            dst.write(data)
    for vector in ("p.gpkg", "p.fgb"):
        proc = run_cli("predict", photo, "-o", "p_classes.tif", "--vector", vector, "--overwrite", "--quiet", cwd=tmp_path)
        assert proc.exit_code == 0, proc.stderr
    gpkg = tmp_path / "p.gpkg"
    assert_same_features(gpkg, tmp_path / "p.fgb")
    _, cols, meta = features(gpkg)
    assert meta["crs"] is None
    assert np.isnan(cols["area_m2"]).all() and np.isnan(cols["perimeter_m"]).all()
    assert (cols["area_px"] >= 1).all() and (cols["perimeter_px"] >= 4).all()
    assert_valid_geopackage(gpkg)
    assert "EPSG" not in ogrinfo("-so", gpkg, "classes")


def test_writing_into_a_users_geopackage_keeps_the_other_layers_and_styles(repo_root: Path, tmp_path: Path, run_cli: Any,
                                                                          write_user_gpkg: Any) -> None:
    field = write_user_gpkg(tmp_path / "field.gpkg", origin=(623411, 4268527), crs="EPSG:32612",
                            qml="<qgis>my dots</qgis>", version="1.2")  # as the GDAL of QGIS 3.22 writes it
    con = sqlite3.connect(field)
    version = con.execute("PRAGMA user_version").fetchone()[0]
    con.close()
    scene = repo_root / "sample_data" / "scene.tif"
    for extra in ([], ["--overwrite"]):
        proc = run_cli("predict", scene, "-o", "x_classes.tif", "--vector", field, "--layer", "Classes", *extra, "--quiet", cwd=tmp_path)
        assert proc.exit_code == 0, proc.stderr
    assert sorted(pyogrio.list_layers(field)[:, 0]) == ["Classes", "layer_styles", "plots"]
    assert pyogrio.raw.read(field, layer="plots")[3][0].tolist() == ["A1", "B2"]
    con = sqlite3.connect(field)
    styles = con.execute("SELECT f_table_name, styleName, styleQML, useAsDefault FROM layer_styles ORDER BY id").fetchall()
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%rtree%'")]
    after = con.execute("PRAGMA user_version").fetchone()[0]
    con.close()
    assert styles[0] == ("plots", "my plots", "<qgis>my dots</qgis>", 1)
    assert [(s[0], s[1], s[3]) for s in styles[1:]] == [("Classes", "jess-geo classes", 1)]
    assert sorted(tables) == ["rtree_Classes_geom", "rtree_plots_geom"] and after == version  # one index per layer
    assert pyogrio.read_info(field, layer="Classes")["features"] > 0
    assert_valid_geopackage(field)


def test_batches_custom_crs_and_empty_geometries(tmp_path: Path) -> None:
    out = tmp_path / "b.gpkg"
    wkt = rasterio.crs.CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=-111.5 +k=1 +x_0=20000 +y_0=0 +ellps=GRS80 +units=m").to_wkt()
    boxes = [shapely.box(i, 0, i + 1, 2) for i in range(5)]
    for k, batch in enumerate([boxes[:2], boxes[2:] + [shapely.Polygon()]]):
        n = len(batch)
        cols = [np.arange(n, dtype=np.int32), np.array(["a"] * n, dtype=object), np.full(n, np.nan)]
        write_gpkg_batch(out, "layer", np.array(batch, dtype=object), ["c", "name", "value"], cols, crs_wkt=wkt, append=k > 0)
    finish_gpkg_layer(out, "layer")
    geoms, cols, meta = features(out, layer="layer")
    assert len(geoms) == 6 and shapely.equals(geoms[:5], np.array(boxes, dtype=object)).all() and shapely.is_empty(geoms[5])
    assert cols["c"].tolist() == [0, 1, 0, 1, 2, 3] and np.isnan(cols["value"]).all()
    assert rasterio.crs.CRS.from_wkt(pyogrio.read_info(out, layer="layer")["crs"]) == rasterio.crs.CRS.from_wkt(wkt)
    assert meta["total_bounds"] == (0.0, 0.0, 5.0, 2.0)
    con = sqlite3.connect(out)
    srs = con.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name = 'layer'").fetchone()[0]
    indexed = con.execute("SELECT count(*) FROM rtree_layer_geom").fetchone()[0]
    empty_header = con.execute("SELECT substr(geom, 1, 4) FROM layer WHERE fid = 6").fetchone()[0]
    con.close()
    assert srs >= 100000 and indexed == 5  # the empty polygon has no index entry
    # Empty flag (bit 4) without envelope, as GDAL writes it; GDAL 3.6's validator reads bit 3 and
    # rejects GDAL's own empty geometries, so it is not run on this file.
    assert empty_header == b"GP\x00\x11"


def test_a_large_layer_gets_a_consistent_bulk_loaded_index(tmp_path: Path) -> None:
    out = tmp_path / "large.gpkg"
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 1000, 30000), rng.uniform(0, 500, 30000)
    boxes = shapely.box(x, y, x + rng.uniform(0.1, 5, x.size), y + rng.uniform(0.1, 5, x.size))
    for k in range(0, len(boxes), 7000):  # batches as the vectorizer writes them, then the index in one pass
        part = boxes[k:k + 7000]
        write_gpkg_batch(out, "classes", part, ["c"], [np.zeros(len(part), dtype=np.int32)], crs_wkt=None, append=k > 0)
    finish_gpkg_layer(out, "classes")
    con = sqlite3.connect(out)
    assert con.execute("SELECT rtreecheck('rtree_classes_geom'), count(*) FROM rtree_classes_geom").fetchone() == ("ok", len(boxes))
    con.close()
    window = (200.0, 100.0, 260.0, 130.0)
    expected = int(shapely.intersects(boxes, shapely.box(*window)).sum())
    assert expected > 0 and f"Feature Count: {expected}\n" in ogrinfo("-so", "-spat", *window, out, "classes")
    assert_valid_geopackage(out)


def test_an_unwritable_geopackage_is_one_output_error(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "x.gpkg"
    writer = PolygonWriter(target, "GPKG", "classes", Measure(Affine.identity(), None), {1: "a"}, label="x.gpkg")
    writer.add_many([(shapely.box(0, 0, 1, 1), 1)])
    with pytest.raises(OutputError, match=r"^Polygons could not be written to x\.gpkg \(.*\); check the disk"):
        writer.flush(final=True)
