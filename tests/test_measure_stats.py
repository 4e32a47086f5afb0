"""`jess-geo stats` and jess_geo.measure: cover, patches, adjacency, zones, geographic areas."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from scipy import ndimage

from jess_geo.measure.grid import open_class_raster
from jess_geo.measure.stats import raster_stats

NAMES = {"0": "soil", "1": "moss"}
COLOURS = {"0": "#8c6d4f", "1": "#2e7d32"}
UTM2 = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4100000.0)  # 2 m pixels: 4 m² each
# Hand-checked 2-class raster (see test_two_class_raster_by_hand for the sums).
TWO = np.array([[0, 0, 1, 1],
                [0, 0, 1, 1],
                [0, 0, 0, 0],
                [1, 0, 0, 1]], dtype=np.uint8)


def class_tif(path: Path, data: np.ndarray, crs: str | None = "EPSG:32612", transform: Affine = UTM2,
              names: dict | None = NAMES, nodata: int = 255) -> Path:
    """A class GeoTIFF the way `jess-geo predict` writes it (class names and colours in tags)."""
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1, "dtype": "uint8",
               "nodata": nodata, "transform": transform}
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if names:
            dst.update_tags(CLASS_NAMES=json.dumps(names), CLASS_COLORS=json.dumps({k: COLOURS.get(k, "#777777") for k in names}))
    return path


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_two_class_raster_by_hand(tmp_path: Path, run_cli) -> None:
    """Soil: 10 px = 40 m², one patch; moss: 6 px = 24 m², 3 patches (the 2x2 block and two corners).

    4-neighbour pairs: 24 (12 across, 12 down); soil-soil 12, moss-moss 4, soil-moss 8, each 2 m long.
    Aggregation index: soil 12 / max(10 px)=13, moss 4 / max(6 px)=7 (He et al. 2000).
    """
    tif = class_tif(tmp_path / "two.tif", TWO)
    res = run_cli("stats", tif)
    assert res.exit_code == 0, res.stderr
    rows = {r["class_name"]: r for r in rows_of(tmp_path / "two_stats.csv")}
    soil, moss = rows["soil"], rows["moss"]
    assert (soil["pixels"], soil["area_m2"], soil["patches"], soil["largest_patch_area_m2"]) == ("10", "40", "1", "40")
    assert (moss["pixels"], moss["area_m2"], moss["patches"], moss["largest_patch_area_m2"]) == ("6", "24", "3", "16")
    assert float(moss["mean_patch_area_m2"]) == pytest.approx(8.0)
    assert float(soil["percent"]) == pytest.approx(62.5)
    assert float(soil["aggregation_index"]) == pytest.approx(100 * 12 / 13)
    assert float(moss["aggregation_index"]) == pytest.approx(100 * 4 / 7)
    # 8 soil-moss edges of 2 m = 16 m over 64 m² = 0.0064 ha -> 2500 m/ha
    assert float(soil["edge_length_m"]) == pytest.approx(16.0)
    assert float(moss["edge_density"]) == pytest.approx(16.0 / 64.0 * 1e4)
    doc = json.loads((tmp_path / "two_stats.json").read_text())
    adj = doc["results"][0]["adjacency"]
    assert adj["length"] == [[24.0, 16.0], [16.0, 8.0]]
    # soil pixel edges: 12 inside counted from both sides + 8 to moss = 32 -> 24/32 soil, 8/32 moss
    assert adj["normalised"][0] == pytest.approx([0.75, 0.25])
    assert adj["normalised"][1] == pytest.approx([0.5, 0.5])
    adj_rows = rows_of(tmp_path / "two_stats_adjacency.csv")
    assert {(r["class"], r["neighbour"]): float(r["edge_length_m"]) for r in adj_rows}[("moss", "soil")] == 16.0
    assert "soil" in res.stdout and "62.50%" in res.stdout


def test_connectivity_four_and_eight(tmp_path: Path, run_cli) -> None:
    diag = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.uint8)
    tif = class_tif(tmp_path / "diag.tif", diag)
    for conn, patches in (("8", "1"), ("4", "3")):
        res = run_cli("stats", tif, "--connectivity", conn, "--overwrite", "-q")
        assert res.exit_code == 0, res.stderr
        moss = [r for r in rows_of(tmp_path / "diag_stats.csv") if r["class_name"] == "moss"][0]
        assert moss["patches"] == patches


@pytest.mark.parametrize("connectivity", [4, 8])
def test_patches_across_strips_match_whole_raster_labelling(tmp_path: Path, connectivity: int) -> None:
    """Patches joined across 7-row strips equal scipy's labelling of the whole array."""
    rng = np.random.default_rng(3)
    data = np.kron(rng.integers(0, 2, (20, 25)), np.ones((3, 3), dtype=np.int64))[:57, :70].astype(np.uint8)
    data[rng.random(data.shape) < 0.1] ^= 1
    data[rng.random(data.shape) < 0.02] = 255
    tif = class_tif(tmp_path / "noise.tif", data)
    with open_class_raster(tif) as (src, grid):
        res = raster_stats(src, grid, connectivity=connectivity, rows=7)
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    for c in (0, 1):
        labels, n = ndimage.label(data == c, structure=structure)
        sizes = np.bincount(labels.ravel())[1:]
        row = res["classes"][c]
        assert row["patches"] == n
        assert row["largest_patch_area"] == pytest.approx(4.0 * sizes.max())
        assert row["pixels"] == int((data == c).sum())
    assert res["nodata_pixels"] == int((data == 255).sum())


def test_zones_partly_outside_and_on_nodata(tmp_path: Path, run_cli) -> None:
    data = TWO.copy()
    data[3, :] = 255  # bottom row nodata
    tif = class_tif(tmp_path / "z.tif", data)
    zones = tmp_path / "plots.gpkg"
    x0, y0 = 500000.0, 4100000.0
    geoms = [shapely.box(x0, y0 - 4, x0 + 4, y0),  # top-left 2x2: all soil
             shapely.box(x0 + 4, y0 - 4, x0 + 12, y0),  # half of it east of the raster: moss block
             shapely.box(x0, y0 - 8, x0 + 8, y0 - 6),  # the nodata row
             shapely.box(x0 + 100, y0, x0 + 110, y0 + 10)]  # far outside
    pyogrio.write_dataframe(__import__("geopandas").GeoDataFrame({"plot": ["A", "B", "C", "D"]}, geometry=geoms, crs="EPSG:32612"), zones)
    res = run_cli("stats", tif, "--zones", zones, "--zone-field", "plot")
    assert res.exit_code == 0, res.stderr
    by = {}
    for r in rows_of(tmp_path / "z_stats.csv"):
        by[(r["zone"], r["class_name"])] = r
    assert by[("A", "soil")]["percent"] == "100" and by[("A", "soil")]["status"] == "ok"
    assert by[("B", "moss")]["percent"] == "100" and by[("B", "moss")]["status"] == "partly outside"
    assert float(by[("B", "moss")]["outside_fraction"]) == pytest.approx(0.5)
    assert by[("C", "soil")]["status"] == "no valid pixels" and by[("C", "soil")]["nodata_fraction"] == "1"
    assert by[("D", "soil")]["status"] == "outside"
    copy = pyogrio.read_dataframe(tmp_path / "z_stats.gpkg")
    assert list(copy["plot"]) == ["A", "B", "C", "D"]
    assert list(copy["pct_soil"][:2]) == [100.0, 0.0] and copy["m2_moss"][1] == 16.0
    assert list(copy["status"]) == ["ok", "partly outside", "no valid pixels", "outside"]
    assert "partly outside (50.0% outside)" in res.stdout


def test_geographic_areas_match_an_equal_area_projection(tmp_path: Path, run_cli) -> None:
    """Areas of an EPSG:4326 raster at 60° N agree with the raster reprojected to LAEA within 0.5 %."""
    from rasterio.warp import Resampling, reproject, transform_bounds

    data = np.zeros((100, 100), dtype=np.uint8)
    data[:60, :30] = 1
    data[70:, 40:] = 1
    geo = Affine(0.001, 0, 10.0, 0, -0.001, 60.05)
    tif = class_tif(tmp_path / "geo.tif", data, crs="EPSG:4326", transform=geo)
    laea = "+proj=laea +lat_0=60 +lon_0=10 +datum=WGS84 +units=m"
    x0, y0, x1, y1 = transform_bounds("EPSG:4326", laea, 10.0, 59.95, 10.1, 60.05, densify_pts=101)
    transform = Affine(5.0, 0, x0 - 50, 0, -5.0, y1 + 50)
    w, h = int((x1 - x0 + 100) // 5) + 1, int((y1 - y0 + 100) // 5) + 1
    out = np.full((h, w), 255, dtype=np.uint8)
    reproject(data, out, src_transform=geo, src_crs="EPSG:4326", dst_transform=transform, dst_crs=laea,
              resampling=Resampling.nearest, src_nodata=255, dst_nodata=255)
    eq = class_tif(tmp_path / "eq.tif", out, crs=laea, transform=transform)
    for f in (tif, eq):
        assert run_cli("stats", f, "-q").exit_code == 0
    a = {r["class_name"]: float(r["area_m2"]) for r in rows_of(tmp_path / "geo_stats.csv")}
    b = {r["class_name"]: float(r["area_m2"]) for r in rows_of(tmp_path / "eq_stats.csv")}
    for name in ("soil", "moss"):
        assert a[name] == pytest.approx(b[name], rel=0.005)
    assert a["moss"] > 1e6  # km², not square degrees


def test_photo_areas_are_pixels(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "photo.tif"
    class_tif(path, TWO, crs=None, transform=Affine(1, 0, 0, 0, -1, 0))
    res = run_cli("stats", path, "-q")
    assert res.exit_code == 0, res.stderr
    rows = rows_of(tmp_path / "photo_stats.csv")
    assert "area_px2" in rows[0] and rows[0]["area_px2"] == "10"


def test_stats_bad_input(tmp_path: Path, run_cli, assert_cli_error) -> None:
    bare = class_tif(tmp_path / "bare.tif", TWO, names=None)
    msg = assert_cli_error(run_cli("stats", bare))
    assert "has no class table" in msg and "--classes" in msg
    table = tmp_path / "classes.json"
    table.write_text(json.dumps({"0": {"name": "soil", "color": "#8c6d4f"}, "1": {"name": "moss", "color": "#2e7d32"}}))
    assert run_cli("stats", bare, "--classes", table, "-q").exit_code == 0

    tif = class_tif(tmp_path / "t.tif", TWO)
    zones = tmp_path / "z.gpkg"
    pyogrio.write_dataframe(__import__("geopandas").GeoDataFrame({"name": ["x"]}, geometry=[shapely.box(500000, 4099992, 500008, 4100000)], crs="EPSG:32612"), zones)
    msg = assert_cli_error(run_cli("stats", tif, "--zones", zones, "--zone-field", "plot"))
    assert "no field 'plot'" in msg and "name" in msg
    assert not (tmp_path / "t_stats.csv").exists()

    odd = TWO.copy()
    odd[0, 0] = 7
    msg = assert_cli_error(run_cli("stats", class_tif(tmp_path / "odd.tif", odd)))
    assert "[7]" in msg and "class table" in msg

    assert run_cli("stats", tif, "-q").exit_code == 0
    msg = assert_cli_error(run_cli("stats", tif))
    assert "exists already" in msg and "--overwrite" in msg
