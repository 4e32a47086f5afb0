"""Olofsson et al. (2014) estimators, `jess-geo sample` and `jess-geo assess`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine

from jess_geo.measure.accuracy import stratified_estimate
from jess_geo.measure.sampling import allocate

# Olofsson et al. (2014), Remote Sensing of Environment 148: 42-57, the worked example:
# classes deforestation, forest gain, stable forest, stable non-forest; mapped area in 30 m
# pixels (0.09 ha) and the error matrix of sample counts (rows map, columns reference).
OLOFSSON_PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]
OLOFSSON_COUNTS = [[66, 0, 5, 4],
                   [0, 55, 8, 12],
                   [1, 0, 153, 11],
                   [2, 1, 9, 313]]


def test_olofsson_2014_worked_example() -> None:
    """The paper's estimates: areas (ha) with 95 % CIs, user's / producer's / overall accuracy."""
    est = stratified_estimate(OLOFSSON_COUNTS, np.array(OLOFSSON_PIXELS) * 0.09)
    assert est.weights.round(3).tolist() == [0.02, 0.015, 0.32, 0.645]
    assert est.area.round(0).tolist() == [21158, 11686, 285770, 581386]
    assert (1.96 * est.area_se).round(0).tolist() == [6158, 3756, 15510, 16282]
    assert est.users.round(2).tolist() == [0.88, 0.73, 0.93, 0.96]
    assert (1.96 * est.users_se).round(2).tolist() == [0.07, 0.10, 0.04, 0.02]
    assert est.producers.round(2).tolist() == [0.75, 0.85, 0.93, 0.96]
    assert (1.96 * est.producers_se).round(2).tolist() == [0.21, 0.25, 0.03, 0.02]
    assert round(est.overall, 2) == 0.95 and round(1.96 * est.overall_se, 2) == 0.02
    assert est.proportions[0].round(4).tolist() == [0.0176, 0.0, 0.0013, 0.0011]
    assert est.area.sum() == pytest.approx(900_000.0)


def test_stratum_with_one_sample_has_no_interval() -> None:
    est = stratified_estimate([[1, 0], [2, 8]], [50.0, 50.0])
    assert np.isnan(est.users_se[0]) and np.isnan(est.area_se).all()
    assert est.to_dict(["a", "b"])["classes"][0]["users_accuracy_ci95"] is None


def test_allocation() -> None:
    assert allocate(np.array([700, 200, 100, 0]), 10, "proportional").tolist() == [7, 2, 1, 0]
    assert allocate(np.array([700, 200, 100, 0]), 9, "equal").tolist() == [3, 3, 3, 0]
    assert allocate(np.array([900, 95, 5]), 20, "proportional", min_per_class=4).tolist() == [18, 4, 4]
    assert allocate(np.array([900, 95, 2]), 20, "proportional", min_per_class=4).tolist() == [18, 4, 2]


def class_tif(path: Path, data: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="uint8",
                       nodata=255, crs="EPSG:32612", transform=Affine(1.0, 0, 500000.0, 0, -1.0, 4100000.0)) as dst:
        dst.write(data, 1)
        dst.update_tags(CLASS_NAMES=json.dumps({"0": "soil", "1": "moss", "2": "lichen"}))
    return path


@pytest.fixture()
def map_and_truth(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 3-class map (60 x 50 m) and a 'truth' that differs from it in known places."""
    data = np.zeros((60, 50), dtype=np.uint8)
    data[:, 30:] = 1
    data[40:, :10] = 2
    data[0:2, 0:2] = 255
    truth = data.copy()
    truth[:, 25:30] = 1  # mapped soil that is really moss
    return class_tif(tmp_path / "map.tif", data), truth


def label_from(path: Path, truth: np.ndarray) -> None:
    frame = pyogrio.read_dataframe(path, layer="samples")
    frame["class"] = truth[frame["row"].to_numpy(), frame["col"].to_numpy()].astype(np.int64)
    pyogrio.write_dataframe(frame, path, layer="samples")


def test_sample_then_assess(tmp_path: Path, run_cli, map_and_truth) -> None:
    tif, truth = map_and_truth
    pts = tmp_path / "pts.gpkg"
    res = run_cli("sample", tif, "--n", 90, "--allocation", "equal", "-o", pts, "--seed", 4)
    assert res.exit_code == 0, res.stderr
    samples = pyogrio.read_dataframe(pts, layer="samples")
    assert len(samples) == 90 and samples["class"].isna().all()
    assert samples.groupby("map_name").size().to_dict() == {"lichen": 30, "moss": 30, "soil": 30}
    design = pyogrio.read_dataframe(pts, layer="sample_design")
    assert design["pixels"].tolist() == [60 * 30 - 200 - 4, 60 * 20, 200]
    assert design["allocation"].tolist() == ["equal"] * 3
    label_from(pts, truth)
    res = run_cli("assess", tif, "--reference", pts, "--field", "class")
    assert res.exit_code == 0, res.stderr
    rows = {r["class"]: r for r in csv.DictReader(open(tmp_path / "pts_assess.csv", encoding="utf-8"))}
    # moss and lichen are mapped without error; soil's user's accuracy is below 1
    assert float(rows["moss"]["users_accuracy"]) == 1.0 and float(rows["lichen"]["producers_accuracy"]) == 1.0
    assert float(rows["soil"]["users_accuracy"]) < 1.0
    assert float(rows["moss"]["adjusted_area_m2"]) > float(rows["moss"]["map_area_m2"])
    doc = json.loads((tmp_path / "pts_assess.json").read_text())
    assert doc["weights_from"].startswith("sampling design")
    assert doc["units"] == {"total": 90, "used": 90, "outside_raster": 0, "on_nodata": 0, "unlabelled": 0,
                            "map_class_differs_from_sampling": 0}
    assert "overall accuracy" in res.stdout and "± " in res.stdout


def test_assess_counts_points_outside_on_nodata_and_unlabelled(tmp_path: Path, run_cli, map_and_truth) -> None:
    import geopandas as gpd
    import shapely

    tif, _ = map_and_truth
    ref = tmp_path / "ref.gpkg"
    pts = [(500005.5, 4099990.5, "soil"), (500040.5, 4099990.5, "1"), (500005.5, 4099950.5, "lichen"),
           (500000.5, 4099999.5, "soil"),  # on the nodata corner
           (499990.0, 4099990.0, "soil"), (500010.0, 4100100.0, "moss"),  # outside
           (500020.5, 4099980.5, None)]  # unlabelled
    gpd.GeoDataFrame({"truth": [p[2] for p in pts]}, geometry=[shapely.Point(p[:2]) for p in pts], crs="EPSG:32612").to_file(ref, layer="ref")
    res = run_cli("assess", tif, "--reference", ref, "--field", "truth")
    assert res.exit_code == 0, res.stderr
    assert "7 read, 3 used, 2 outside the raster, 1 on nodata, 1 unlabelled" in res.stdout
    assert "no sampling design stored" in res.stdout


def test_assess_bad_input(tmp_path: Path, run_cli, assert_cli_error, map_and_truth) -> None:
    import geopandas as gpd
    import shapely

    tif, _ = map_and_truth
    ref = tmp_path / "ref.gpkg"
    gpd.GeoDataFrame({"truth": ["soil", "cactus", "cactus"]}, geometry=[shapely.Point(500005.5, 4099990.5)] * 3,
                     crs="EPSG:32612").to_file(ref)
    msg = assert_cli_error(run_cli("assess", tif, "--reference", ref, "--field", "truth"))
    assert "'cactus' (2 unit(s))" in msg and "class table" in msg
    msg = assert_cli_error(run_cli("assess", tif, "--reference", ref, "--field", "label"))
    assert "no field 'label'" in msg and "truth" in msg
    assert not list(tmp_path.glob("ref_assess*"))
    msg = assert_cli_error(run_cli("sample", tif, "--n", 10, "-o", tmp_path / "pts.shp"))
    assert ".gpkg" in msg
    msg = assert_cli_error(run_cli("sample", tif, "--n", 0, "-o", tmp_path / "pts.gpkg"))
    assert "not positive" in msg


def test_assess_takes_small_polygons_at_a_point_inside(tmp_path: Path, run_cli, map_and_truth) -> None:
    import geopandas as gpd
    import shapely

    tif, _ = map_and_truth
    ref = tmp_path / "plots.gpkg"
    polys = [shapely.box(500003, 4099985, 500006, 4099988), shapely.box(500040, 4099985, 500043, 4099988)]
    gpd.GeoDataFrame({"class": [0, 1]}, geometry=polys, crs="EPSG:32612").to_file(ref)
    res = run_cli("assess", tif, "--reference", ref, "--json")
    assert res.exit_code == 0, res.stderr
    done = json.loads(res.stdout.strip().splitlines()[-1])
    # both points right, but the lichen stratum (200 of 2996 mapped pixels) has no sample
    assert done["units"]["used"] == 2 and done["overall_accuracy"] == pytest.approx(1 - 200 / 2996)
    res = run_cli("assess", tif, "--reference", ref, "--overwrite")
    assert "no usable sample in mapped class(es) lichen" in res.stdout
