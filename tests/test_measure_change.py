"""`jess-geo change`: transition matrix, gain/loss, change raster and polygons, alignment, class tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
from affine import Affine

NAMES = {"0": "soil", "1": "moss"}
UTM2 = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4100000.0)
BEFORE = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [0, 0, 0, 0],
                   [1, 0, 0, 1]], dtype=np.uint8)
AFTER = np.array([[0, 1, 1, 1],
                  [0, 0, 1, 0],
                  [0, 0, 0, 0],
                  [0, 0, 255, 1]], dtype=np.uint8)


def class_tif(path: Path, data: np.ndarray, names: dict = NAMES, transform: Affine = UTM2, crs: str = "EPSG:32612") -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="uint8",
                       nodata=255, crs=crs, transform=transform) as dst:
        dst.write(data, 1)
        dst.update_tags(CLASS_NAMES=json.dumps(names), CLASS_COLORS=json.dumps({k: "#2e7d32" if k == "1" else "#8c6d4f" for k in names}))
    return path


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_known_transition_matrix(tmp_path: Path, run_cli) -> None:
    """By hand: soil->soil 8, soil->moss 1 (row 0 col 1), moss->soil 2 (row 1 col 3, row 3 col 0),
    moss->moss 4; the pixel that is nodata AFTER is left out. 4 m² per pixel."""
    b, a = class_tif(tmp_path / "d1.tif", BEFORE), class_tif(tmp_path / "d2.tif", AFTER)
    res = run_cli("change", b, a)
    assert res.exit_code == 0, res.stderr
    stem = tmp_path / "d1_to_d2"
    pairs = {(r["from_class"], r["to_class"]): (int(r["pixels"]), float(r["area_m2"])) for r in rows_of(Path(f"{stem}_transitions.csv"))}
    assert pairs == {("soil", "soil"): (8, 32.0), ("soil", "moss"): (1, 4.0), ("moss", "soil"): (2, 8.0), ("moss", "moss"): (4, 16.0)}
    cls = {r["class"]: r for r in rows_of(Path(f"{stem}_classes.csv"))}
    assert (cls["soil"]["gain_m2"], cls["soil"]["loss_m2"], cls["soil"]["net_m2"], cls["soil"]["persistence_m2"]) == ("8", "4", "4", "32")
    assert cls["moss"]["net_m2"] == "-4"
    with rasterio.open(f"{stem}.tif") as src:
        change = src.read(1)
        tags = src.tags()
        assert src.colormap(1)[1][:3] == (0x2e, 0x7d, 0x32)  # soil -> moss drawn in moss's colour
    assert change[0, 1] == 1 and change[1, 3] == 2 and change[0, 0] == 0 and change[3, 2] == 255
    assert json.loads(tags["CLASS_NAMES"])["1"] == "soil -> moss"
    polys = pyogrio.read_dataframe(f"{stem}.gpkg", layer="change")
    got = sorted(zip(polys["from_class"], polys["to_class"], polys["area"]))
    assert got == [("moss", "soil", 4.0), ("moss", "soil", 4.0), ("soil", "moss", 4.0)]
    assert Path(f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(Path(f"{stem}.json").read_text())
    assert doc["pixels"] == [[8, 1], [2, 4]] and doc["changed_pixels"] == 3
    assert "changed pixels 3 of 15 (20.00%)" in res.stdout


def test_other_grid_is_resampled_with_a_notice(tmp_path: Path, run_cli) -> None:
    b = class_tif(tmp_path / "b.tif", BEFORE)
    fine = np.kron(AFTER, np.ones((2, 2), dtype=np.uint8))  # 1 m pixels, same extent
    a = class_tif(tmp_path / "a.tif", fine, transform=Affine(1.0, 0, 500000.0, 0, -1.0, 4100000.0))
    res = run_cli("change", b, a, "--no-vector")
    assert res.exit_code == 0, res.stderr
    assert "resampled onto the grid of b.tif" in res.stderr
    doc = json.loads((tmp_path / "b_to_a.json").read_text())
    assert doc["pixels"] == [[8, 1], [2, 4]]


def test_zones_give_transitions_per_plot(tmp_path: Path, run_cli) -> None:
    import geopandas as gpd
    import shapely

    b, a = class_tif(tmp_path / "d1.tif", BEFORE), class_tif(tmp_path / "d2.tif", AFTER)
    zones = tmp_path / "z.gpkg"
    gpd.GeoDataFrame({"plot": ["top"]}, geometry=[shapely.box(500000, 4099996, 500008, 4100000)], crs="EPSG:32612").to_file(zones)
    res = run_cli("change", b, a, "--zones", zones, "--zone-field", "plot", "--no-vector", "-q")
    assert res.exit_code == 0, res.stderr
    rows = {(r["from_class"], r["to_class"]): int(r["pixels"]) for r in rows_of(tmp_path / "d1_to_d2_zones.csv")}
    assert rows == {("soil", "soil"): 3, ("soil", "moss"): 1, ("moss", "soil"): 1, ("moss", "moss"): 3}


def test_different_class_tables_need_a_mapping(tmp_path: Path, run_cli, assert_cli_error) -> None:
    b = class_tif(tmp_path / "b.tif", BEFORE)
    swapped = np.where(AFTER == 255, 255, 1 - AFTER).astype(np.uint8)  # same classes, ids swapped
    a = class_tif(tmp_path / "a.tif", swapped, names={"0": "moss", "1": "soil"})
    msg = assert_cli_error(run_cli("change", b, a))
    assert "different class tables" in msg and "--mapping" in msg
    assert not list(tmp_path.glob("b_to_a*"))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"0": 1, "1": 0}))
    res = run_cli("change", b, a, "--mapping", mapping, "--no-vector", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "b_to_a.json").read_text())["pixels"] == [[8, 1], [2, 4]]
    mapping.write_text(json.dumps({"0": 1}))
    msg = assert_cli_error(run_cli("change", b, a, "--mapping", mapping, "--overwrite"))
    assert "does not map AFTER class id(s) [1]" in msg


def test_photos_of_other_sizes_are_refused(tmp_path: Path, run_cli, assert_cli_error) -> None:
    b = class_tif(tmp_path / "b.tif", BEFORE)
    a = class_tif(tmp_path / "a.tif", BEFORE[:3], crs=None, transform=Affine(1, 0, 0, 0, -1, 0))
    msg = assert_cli_error(run_cli("change", b, a))
    assert "not on one grid" in msg
    assert not list(tmp_path.glob("b_to_a*"))
