"""`jess-geo predict --aoi FILE | --bbox ...` (issue 15): only the area is classified.

Real runs on the bundled sample scene with the demo model, in-process through ``run_cli``. The
outputs cover the area's bounding window (whole pixels); outside the polygon every output is
nodata, inside the classes match a full-scene run, the polygons stay inside the area, the cover
table counts only the area, and tiles without a pixel in the area never reach the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
shapely = pytest.importorskip("shapely")
pyogrio = pytest.importorskip("pyogrio")
from affine import Affine  # noqa: E402
from pyproj import Transformer  # noqa: E402
from rasterio.features import geometry_mask  # noqa: E402

from jess_geo.preprocess import scaled_shape  # noqa: E402

SCENE_CRS = "EPSG:32612"
TILE = ["--tile-size", "64", "--overlap", "16"]  # 128 scene pixels: a grid of tiles over the area, some outside it


@pytest.fixture(scope="module")
def scene(repo_root: Path) -> Path:
    path = repo_root / "sample_data" / "scene.tif"
    if not path.is_file():
        pytest.skip("sample_data/scene.tif is missing; run `make sample-data`")
    return path


@pytest.fixture(scope="module")
def grid(scene: Path) -> dict[str, Any]:
    with rasterio.open(scene) as src:
        return {"transform": src.transform, "width": src.width, "height": src.height, "bounds": src.bounds}


def _write_polygons(path: Path, geoms: list[Any], crs: str, geometry_type: str = "Polygon") -> Path:
    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    pyogrio.raw.write(path, wkb, field_data=[], fields=[], crs=crs, geometry_type=geometry_type, driver="GPKG", layer="area")
    return path


def _triangle(grid: dict[str, Any]) -> Any:
    """A triangle over most of the scene, in the scene's CRS (its vertices off the pixel grid)."""
    b = grid["bounds"]
    w, h = b.right - b.left, b.top - b.bottom
    pts = [(0.12, 0.18), (0.93, 0.30), (0.41, 0.91)]
    return shapely.Polygon([(b.left + fx * w + 0.0031, b.bottom + fy * h + 0.0047) for fx, fy in pts])


def _predict(run_cli: Callable[..., Any], scene: Path, out: Path, *extra: Any) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    args = ["predict", scene, "-o", out / "s_classes.tif", "--probabilities", out / "s_prob.tif",
            "--energy", out / "s_energy.tif", *TILE, "--json-progress", *extra]
    proc = run_cli(*args)
    assert proc.exit_code == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    plan = next(ln for ln in lines if ln["stage"] == "plan")
    done = next(ln for ln in lines if ln["stage"] == "done")
    return {"plan": plan, "done": done, "dir": out}


def _read(path: Path) -> tuple[np.ndarray, Any, Any]:
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.nodata


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory, run_cli: Callable[..., Any], scene: Path) -> np.ndarray:
    """The class raster of a whole-scene run with the same tiles."""
    run = _predict(run_cli, scene, tmp_path_factory.mktemp("full"))
    return _read(run["dir"] / "s_classes.tif")[0][0]


@pytest.fixture(scope="module")
def triangle_run(tmp_path_factory: pytest.TempPathFactory, run_cli: Callable[..., Any], scene: Path,
                 grid: dict[str, Any]) -> dict[str, Any]:
    """A run with a triangle AOI written in EPSG:4326 (the scene is in UTM 12N)."""
    base = tmp_path_factory.mktemp("triangle")
    tri = _triangle(grid)
    to_wgs84 = Transformer.from_crs(SCENE_CRS, "EPSG:4326", always_xy=True)
    wgs = shapely.Polygon([to_wgs84.transform(x, y) for x, y in tri.exterior.coords])
    aoi = _write_polygons(base / "aoi.gpkg", [wgs], "EPSG:4326")
    run = _predict(run_cli, scene, base / "out", "--aoi", aoi)
    return {**run, "area": tri, "aoi": aoi}


def _window_of(plan: dict[str, Any], grid: dict[str, Any]) -> tuple[int, int, int, int]:
    col, row, w, h = plan["aoi"]["window"]
    assert 0 <= col and 0 <= row and col + w <= grid["width"] and row + h <= grid["height"]
    return col, row, w, h


def _centres_in(area: Any, transform: Affine, shape: tuple[int, int], grow: float) -> np.ndarray:
    return geometry_mask([area.buffer(grow)], out_shape=shape, transform=transform, invert=True)


def _check_area_outputs(run: dict[str, Any], area: Any, grid: dict[str, Any], full: np.ndarray) -> float:
    """Assert what a user sees in the outputs of an area run; returns the agreement with ``full``."""
    col, row, w, h = _window_of(run["plan"], grid)
    expected = grid["transform"] @ Affine.translation(col, row)
    pixel = grid["transform"].a
    classes, t, nodata = _read(run["dir"] / "s_classes.tif")
    assert classes.shape == (1, h, w) and t.almost_equals(expected) and nodata == 255
    work_h, work_w = scaled_shape(h, w, run["plan"]["scale"])  # the working size is the window's
    assert run["plan"]["working_size"] == [work_w, work_h]
    outside = ~_centres_in(area, t, (h, w), 1e-6)  # centre outside the area: nodata everywhere
    inside = _centres_in(area, t, (h, w), -1e-6)
    prob, _, _ = _read(run["dir"] / "s_prob.tif")
    energy, _, _ = _read(run["dir"] / "s_energy.tif")
    assert outside.any() and inside.any()
    assert (classes[0][outside] == 255).all() and (prob[:, outside] == 255).all() and np.isnan(energy[0][outside]).all()
    crop = full[row : row + h, col : col + w]
    scored = inside & (crop != 255)
    assert (classes[0][scored] != 255).all() and np.isfinite(energy[0][scored]).all() and (prob[:, scored] != 255).all()
    agreement = float(np.mean(classes[0][scored] == crop[scored]))
    print(f"{run['plan']['aoi']['label']}: {scored.sum()} pixels inside, agreement with the full-scene run {100 * agreement:.3f} %")
    assert agreement >= 0.99
    cover = json.loads((run["dir"] / "s_cover.json").read_text())
    counts = np.bincount(classes[0].ravel(), minlength=256)
    assert {c["id"]: c["pixels"] for c in cover["classes"]} == {c["id"]: int(counts[c["id"]]) for c in cover["classes"]}
    assert cover["valid_pixels"] == int((classes[0] != 255).sum())
    _, _, wkb, _ = pyogrio.raw.read(run["dir"] / "s_classes.gpkg", layer="classes")
    polys = shapely.from_wkb(wkb)
    assert len(polys) > 0
    assert all(area.buffer(pixel).covers(p) for p in polys)
    return agreement


def test_polygon_aoi_in_another_crs(triangle_run: dict[str, Any], grid: dict[str, Any], full: np.ndarray) -> None:
    _check_area_outputs(triangle_run, triangle_run["area"], grid, full)
    plan, done = triangle_run["plan"], triangle_run["done"]
    bounds = plan["aoi"]["bounds"]  # in the scene's CRS
    assert np.allclose(bounds, triangle_run["area"].bounds, atol=1e-6)
    # tiles without a pixel in the triangle never reach the network
    assert plan["tiles"] == done["tiles"] > plan["aoi"]["tiles_in_area"] >= done["tiles_run"] > 0
    print(f"tiles: plan {plan['tiles']}, in the area {plan['aoi']['tiles_in_area']}, run {done['tiles_run']}")


def test_bbox(tmp_path: Path, run_cli: Callable[..., Any], scene: Path, grid: dict[str, Any], full: np.ndarray) -> None:
    b = grid["bounds"]
    box = (b.left + 1.2345, b.bottom + 0.8765, b.left + 4.4321, b.top - 0.5555)
    run = _predict(run_cli, scene, tmp_path, "--bbox", *box)
    _check_area_outputs(run, shapely.box(*box), grid, full)
    col, row, w, h = run["plan"]["aoi"]["window"]
    assert (col, row, w, h) == (90, 22, 386, 435)  # the box in whole pixels, 32 px of context (even start)


def test_bbox_in_another_crs_is_reprojected(run_cli: Callable[..., Any], scene: Path, grid: dict[str, Any], tmp_path: Path) -> None:
    b = grid["bounds"]
    to_wgs84 = Transformer.from_crs(SCENE_CRS, "EPSG:4326", always_xy=True)
    x0, y0 = to_wgs84.transform(b.left + 1, b.bottom + 1)
    x1, y1 = to_wgs84.transform(b.left + 3, b.bottom + 3)
    proc = run_cli("predict", scene, "-o", tmp_path / "x.tif", "--bbox", x0, y0, x1, y1, "--bbox-crs", "EPSG:4326", "--dry-run", "--json")
    assert proc.exit_code == 0, proc.stderr
    bounds = json.loads(proc.stdout)["aoi"]["bounds"]
    # a geographic box is a slightly rotated quadrilateral in UTM: its bounds are its corners' bounds
    to_utm = Transformer.from_crs("EPSG:4326", SCENE_CRS, always_xy=True)
    xs, ys = zip(*(to_utm.transform(x, y) for x in (x0, x1) for y in (y0, y1)))
    assert np.allclose(bounds, [min(xs), min(ys), max(xs), max(ys)], atol=1e-3)
    assert abs(bounds[0] - (b.left + 1)) > 0.01  # rotated: not the UTM box it was made from
    assert list(tmp_path.iterdir()) == []


def test_photo_bbox_in_pixel_coordinates(run_cli: Callable[..., Any], repo_root: Path, tmp_path: Path) -> None:
    photo = repo_root / "sample_data" / "photo.jpg"
    proc = run_cli("predict", photo, "-o", tmp_path / "p.tif", "--bbox", 10, -90, 110, -20, "--dry-run", "--json")
    assert proc.exit_code == 0, proc.stderr
    aoi = json.loads(proc.stdout)["aoi"]
    assert aoi["bounds"] == [10, -90, 110, -20]  # x = column, y = -row
    col, row, w, h = aoi["window"]  # columns 10-110 and rows 20-90 with context around them
    assert col <= 10 and row <= 20 and col + w >= 110 and row + h >= 90 and w < 480 and h < 360


def _bad_cases(tmp: Path, grid: dict[str, Any]) -> dict[str, tuple[list[Any], str]]:
    b = grid["bounds"]
    (tmp / "not_vector.gpkg").write_text("this is not a GeoPackage\n")
    _write_polygons(tmp / "points.gpkg", [shapely.Point(b.left + 1, b.bottom + 1)], SCENE_CRS, "Point")
    far = shapely.box(b.left + 1000, b.bottom, b.left + 1010, b.bottom + 10)
    _write_polygons(tmp / "far.gpkg", [far], SCENE_CRS)
    _write_polygons(tmp / "wgs.gpkg", [shapely.box(-111.0, 38.0, -110.9, 38.1)], "EPSG:4326")
    return {
        "missing": (["--aoi", tmp / "nope.gpkg"], "does not exist"),
        "unreadable": (["--aoi", tmp / "not_vector.gpkg"], "not a readable vector file"),
        "no polygon": (["--aoi", tmp / "points.gpkg"], "holds no polygon"),
        "no overlap": (["--aoi", tmp / "far.gpkg"], "does not overlap"),
        "no overlap bbox": (["--bbox", b.left - 50, b.bottom - 50, b.left - 40, b.bottom - 40], "does not overlap"),
        "aoi and bbox": (["--aoi", tmp / "far.gpkg", "--bbox", 0, 0, 1, 1], "pass only one of them"),
        "empty bbox": (["--bbox", b.left + 3, b.bottom, b.left + 3, b.top], "is empty"),
        "bad crs": (["--bbox", 0, 0, 1, 1, "--bbox-crs", "EPSG:999999"], "not a coordinate reference system"),
        "bad layer": (["--aoi", tmp / "far.gpkg", "--aoi-layer", "roads"], "has no layer 'roads'"),
    }


@pytest.mark.parametrize("case", ["missing", "unreadable", "no polygon", "no overlap", "no overlap bbox", "aoi and bbox",
                                  "empty bbox", "bad crs", "bad layer"])
def test_bad_area_is_one_line_and_writes_nothing(case: str, tmp_path: Path, run_cli: Callable[..., Any], scene: Path,
                                                 grid: dict[str, Any], assert_cli_error: Callable[..., str]) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    args, expected = _bad_cases(inputs, grid)[case]
    out = tmp_path / "out"
    out.mkdir()
    message = assert_cli_error(run_cli("predict", scene, "-o", out / "s_classes.tif", *args), code=2)
    assert expected in message
    assert list(out.iterdir()) == []


def test_photo_with_an_aoi_in_a_crs_is_refused(tmp_path: Path, run_cli: Callable[..., Any], repo_root: Path,
                                              grid: dict[str, Any], assert_cli_error: Callable[..., str]) -> None:
    aoi = _write_polygons(tmp_path / "wgs.gpkg", [shapely.box(-111.0, 38.0, -110.9, 38.1)], "EPSG:4326")
    photo = repo_root / "sample_data" / "photo.jpg"
    message = assert_cli_error(run_cli("predict", photo, "-o", tmp_path / "p_classes.tif", "--aoi", aoi), code=2)
    assert "photo without a CRS" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wgs.gpkg"]


def test_output_that_is_the_aoi_file_is_refused(tmp_path: Path, run_cli: Callable[..., Any], scene: Path,
                                                grid: dict[str, Any], assert_cli_error: Callable[..., str]) -> None:
    b = grid["bounds"]
    aoi = _write_polygons(tmp_path / "aoi.gpkg", [shapely.box(b.left + 1, b.bottom + 1, b.left + 2, b.bottom + 2)], SCENE_CRS)
    before = aoi.read_bytes()
    proc = run_cli("predict", scene, "-o", tmp_path / "s_classes.tif", "--vector", aoi, "--overwrite", "--aoi", aoi)
    assert "same file as an input" in assert_cli_error(proc, code=2)
    assert aoi.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["aoi.gpkg"]


def test_library_call_with_an_area(tmp_path: Path, scene: Path, grid: dict[str, Any]) -> None:
    from jess_geo.inference.predict import predict_raster
    from jess_geo.io.aoi import bbox_area
    from jess_geo.models.modelfile import bundled_demo_model

    b = grid["bounds"]
    area = bbox_area(b.left + 0.5, b.bottom + 0.5, b.left + 1.5, b.bottom + 1.5)
    result = predict_raster(scene, bundled_demo_model(), tmp_path / "s_classes.tif", area=area, cover=True)
    with rasterio.open(tmp_path / "s_classes.tif") as src:
        assert src.width < grid["width"] and src.height < grid["height"]
        data = src.read(1)
    assert result["cover"]["valid_pixels"] == int((data != 255).sum()) == 100 * 100  # 1 m x 1 m at 1 cm


def test_aoi_without_crs_is_taken_in_the_scene_crs(tmp_path: Path, run_cli: Callable[..., Any], scene: Path,
                                                   grid: dict[str, Any]) -> None:
    b = grid["bounds"]
    wkb = np.array([shapely.to_wkb(shapely.box(b.left + 1, b.bottom + 1, b.left + 2, b.bottom + 2))], dtype=object)
    aoi = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):  # pyogrio says the file will have no CRS: what this test wants
        pyogrio.raw.write(aoi, wkb, field_data=[], fields=[], geometry_type="Polygon", driver="GPKG", layer="area")
    proc = run_cli("predict", scene, "-o", tmp_path / "s_classes.tif", "--aoi", aoi, "--dry-run")
    assert proc.exit_code == 0, proc.stderr
    assert "notice: The AOI nocrs.gpkg has no CRS; it is taken to be in the CRS of scene.tif." in proc.stdout
    assert "in the AOI nocrs.gpkg (1 with a part inside it)" in proc.stdout
