"""Issue 10, predict side: guards against silent nonsense and lost data, all before any work.

Every case runs the real command line in-process on real files (the sample scene and the demo
model, or scenes derived from them) and checks what a user sees: one line, the exit code, the
files left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_data" / "scene.tif"

pytestmark = pytest.mark.trust


def sample() -> tuple[np.ndarray, dict[str, Any]]:
    with rasterio.open(SCENE) as src:
        return src.read(), src.profile


def write(path: Path, data: np.ndarray, **changes: Any) -> Path:
    _, profile = sample()
    profile.update(count=data.shape[0], dtype=data.dtype.name, **changes)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def one_error(r: Any, code: int = 2) -> str:
    assert r.exit_code == code, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("jess-geo: error: "), r.stderr
    return lines[0]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def classes_of(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


# ----------------------------------------------------------------------------- resolution and CRS


def test_300_m_scene_refused_in_one_line_fast(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    data, profile = sample()
    t = profile["transform"]
    scene = write(tmp_path / "landsat300.tif", data, transform=Affine(300.0, 0, t.c, 0, -300.0, t.f))
    t0 = time.perf_counter()
    line = one_error(run_cli("predict", scene))
    seconds = time.perf_counter() - t0
    print(f"300 m scene refused in {seconds:.2f} s: {line}")
    assert "300 m pixels" in line and "2 cm" in line and "1.5e+04x coarser" in line
    assert "--allow-resolution-mismatch" in line
    assert names(tmp_path) == ["landsat300.tif"]


def test_degrees_are_converted_to_metres(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    """EPSG:4326 at 1e-4 degrees is about 11 m a pixel: refused, not read as 1e-4 m."""
    data, _ = sample()
    scene = write(tmp_path / "geo.tif", data, crs="EPSG:4326", transform=Affine(1e-4, 0, -111.0, 0, -1e-4, 38.5))
    line = one_error(run_cli("predict", scene))
    assert "8.715 m pixels" in line and "436x coarser" in line


def test_override_runs_a_mismatched_scene_with_a_notice(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    data, profile = sample()
    t = profile["transform"]
    scene = write(tmp_path / "fine.tif", data, transform=Affine(0.002, 0, t.c, 0, -0.002, t.f))  # 10x finer
    assert "10x finer" in one_error(run_cli("predict", scene, "--no-vector"))
    r = run_cli("predict", scene, "--no-vector", "--allow-resolution-mismatch", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert "running anyway" in r.stderr and (tmp_path / "fine_classes.tif").exists()


def test_the_plan_comes_first_in_json_and_on_stderr(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    shutil.copy(SCENE, tmp_path / "s.tif")
    r = run_cli("predict", tmp_path / "s.tif", "--json-progress", "--no-vector")
    first = json.loads(r.stdout.splitlines()[0])
    assert first["stage"] == "plan" and first["tiles"] == 2 and first["working_size"] == [320, 256]
    r = run_cli("predict", tmp_path / "s.tif", "--no-vector", "--overwrite")
    assert r.exit_code == 0 and r.stderr.splitlines()[0].startswith("s.tif: 2 tile(s) of 256 px")


# ----------------------------------------------------------------------------- numbers and data types


def _float_scene(tmp_path: Path, name: str, fill: float, nodata: float | None) -> Path:
    data, _ = sample()
    x = data.astype(np.float32)
    x[:, 100:220, 150:400] = fill  # a block of nodata that resampling would smear
    x[:, 300, 300] = fill
    return write(tmp_path / name, x, nodata=nodata)


def test_nan_nodata_equals_minus_9999_nodata_and_bare_nan_is_nodata(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    scenes = {"nan": _float_scene(tmp_path, "nan.tif", np.nan, np.nan),
              "m9999": _float_scene(tmp_path, "m9999.tif", -9999.0, -9999.0),
              "bare": _float_scene(tmp_path, "bare.tif", np.nan, None),
              "inf": _float_scene(tmp_path, "inf.tif", np.inf, None)}
    out = {}
    for key, scene in scenes.items():
        r = run_cli("predict", scene, "--no-vector", "--quiet")
        assert r.exit_code == 0, r.stderr
        out[key] = classes_of(tmp_path / f"{key}_classes.tif")
    assert (out["nan"] == out["m9999"]).all()
    assert (out["bare"] == out["nan"]).all() and (out["inf"] == out["nan"]).all()
    assert (out["nan"][100:220, 150:400] == 255).all() and out["nan"][300, 300] == 255
    assert (out["nan"] != 255).mean() > 0.8


def test_values_far_outside_the_normalisation_give_a_notice(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    data, _ = sample()
    scene = write(tmp_path / "u16.tif", data.astype(np.uint16) * 200 + 10000, nodata=None)
    r = run_cli("predict", scene, "--no-vector", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert "far outside what the model was trained on" in r.stderr
    plain = run_cli("predict", SCENE, "--no-vector", "--quiet", "-o", tmp_path / "plain.tif")
    assert "far outside" not in plain.stderr


def test_complex_pixels_refused(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    data, _ = sample()
    scene = write(tmp_path / "c.tif", data.astype(np.complex64), nodata=None)
    line = one_error(run_cli("predict", scene))
    assert "complex" in line and "complex64" in line and names(tmp_path) == ["c.tif"]


@pytest.mark.parametrize("args,expect", [
    (["--min-area", "-1"], "--min-area -1 is out of range"),
    (["--simplify", "-1"], "--simplify -1 is out of range"),
    (["--simplify", "nan"], "--simplify nan is out of range"),
    (["--tile-size", "0"], "--tile-size 0 is out of range"),
    (["--tile-size", "256", "--overlap", "256"], "--overlap 256 is not smaller than --tile-size 256"),
    (["--overlap", "-3"], "--overlap -3 is out of range"),
    (["--batch-size", "0"], "--batch-size 0 is out of range"),
])
def test_numeric_options_checked_before_any_work(tmp_path: Path, run_cli: Callable[..., Any], args: list[str], expect: str) -> None:
    shutil.copy(SCENE, tmp_path / "s.tif")
    t0 = time.perf_counter()
    line = one_error(run_cli("predict", tmp_path / "s.tif", *args))
    assert expect in line, line
    assert names(tmp_path) == ["s.tif"]
    assert time.perf_counter() - t0 < 60  # sanity only: no model was loaded, no tile was run


# ----------------------------------------------------------------------------- bands


def test_bands_option_maps_scene_bands_to_model_inputs(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    data, _ = sample()
    swapped = write(tmp_path / "bgr.tif", data[::-1].copy())
    assert run_cli("predict", SCENE, "--no-vector", "--quiet", "-o", tmp_path / "ref.tif").exit_code == 0
    r = run_cli("predict", swapped, "--no-vector", "--quiet", "--bands", "3,2,1")
    assert r.exit_code == 0, r.stderr
    assert (classes_of(tmp_path / "bgr_classes.tif") == classes_of(tmp_path / "ref.tif")).all()
    assert "names 2 band(s) but the model takes 3" in one_error(run_cli("predict", swapped, "--bands", "1,2"))
    assert "has bands 1-3" in one_error(run_cli("predict", swapped, "--bands", "1,2,7"))


def test_rgba_alpha_is_the_mask_never_data(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    data, _ = sample()
    alpha = np.full(data.shape[1:], 255, np.uint8)
    alpha[:, :200] = 0
    scene = write(tmp_path / "rgba.tif", np.concatenate([data, alpha[None]]), photometric="RGB", alpha="YES", nodata=None)
    r = run_cli("predict", scene, "--no-vector", "--quiet")
    assert r.exit_code == 0, r.stderr
    c = classes_of(tmp_path / "rgba_classes.tif")
    assert (c[:, :200] == 255).all() and (c[:, 200:] != 255).mean() > 0.9
    assert "alpha (mask) band" in one_error(run_cli("predict", scene, "--bands", "1,2,4"))


# ----------------------------------------------------------------------------- outputs never destroy data


def test_a_second_run_on_the_same_outputs_refuses(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    """A lock held by a live process (here: this test's parent) marks outputs being written."""
    shutil.copy(SCENE, tmp_path / "s.tif")
    (tmp_path / "s_classes.tif").write_bytes(b"first run's output")
    (tmp_path / ".s_classes.tif.jess-lock").write_text(f"{os.getppid()} othertoken\n")
    line = one_error(run_cli("predict", tmp_path / "s.tif", "--overwrite", "--no-vector"))
    assert "being written by another jess-geo run" in line and f"process {os.getppid()}" in line
    assert (tmp_path / "s_classes.tif").read_bytes() == b"first run's output"
    assert not [n for n in names(tmp_path) if ".part-" in n]


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    shutil.copy(SCENE, tmp_path / "s.tif")
    stale = [f".s_classes.part-{dead.pid}.tif", f".s_classes.part-{dead.pid}.tif.aux.xml", f".s_cover.part-{dead.pid}.csv",
             f".s_classes.part-{dead.pid}.gpkg", ".s_classes.tif.jess-lock"]
    for n in stale:
        (tmp_path / n).write_text(f"{dead.pid} token\n")
    r = run_cli("predict", tmp_path / "s.tif", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert names(tmp_path) == sorted(["s.tif", "s_classes.tif", "s_classes.tif.aux.xml", "s_classes.qml",
                                      "s_classes.gpkg", "s_cover.csv", "s_cover.json"])


# ----------------------------------------------------------------------------- inputs GDAL opens


def test_vsizip_and_vrt_inputs(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    with zipfile.ZipFile(tmp_path / "scenes.zip", "w") as z:
        z.write(SCENE, "inner/scene.tif")
    r = run_cli("predict", f"/vsizip/{tmp_path}/scenes.zip/inner/scene.tif", "-o", tmp_path / "z.tif", "--no-vector", "--quiet")
    assert r.exit_code == 0, r.stderr
    vrt = tmp_path / "scene.vrt"
    subprocess.run(["gdal_translate", "-q", "-of", "VRT", str(SCENE), str(vrt)], check=True) if shutil.which("gdal_translate") \
        else rasterio.shutil.copy(SCENE, vrt, driver="VRT")
    r = run_cli("predict", vrt, "--no-vector", "--quiet")
    assert r.exit_code == 0, r.stderr
    ref = tmp_path / "ref.tif"
    run_cli("predict", SCENE, "-o", ref, "--no-vector", "--quiet")
    assert (classes_of(tmp_path / "z.tif") == classes_of(ref)).all()
    assert (classes_of(tmp_path / "scene_classes.tif") == classes_of(ref)).all()
    line = one_error(run_cli("predict", f"/vsizip/{tmp_path}/scenes.zip/missing.tif", "-o", tmp_path / "m.tif"))
    assert "not a readable raster" in line


# ----------------------------------------------------------------------------- several scenes


def test_every_scene_checked_before_any_work(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    shutil.copy(SCENE, tmp_path / "a.tif")
    (tmp_path / "b.tif").write_text("not a raster")
    r = run_cli("predict", tmp_path / "a.tif", tmp_path / "b.tif", "--no-vector")
    line = one_error(r)
    assert "b.tif" in line and "nothing was written" in line
    assert names(tmp_path) == ["a.tif", "b.tif"]


def _truncated_scene(path: Path) -> Path:
    """Readable header and first rows, unreadable last rows: fails only when the reader gets there."""
    data, _ = sample()
    write(path, data, tiled=False, blockysize=16, compress=None, interleave="pixel")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.95)])
    return path


def test_a_failing_scene_does_not_stop_the_others_unless_fail_fast(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    _truncated_scene(tmp_path / "a.tif")
    shutil.copy(SCENE, tmp_path / "b.tif")
    r = run_cli("predict", tmp_path / "a.tif", tmp_path / "b.tif", "--no-vector", "--quiet")
    assert r.exit_code == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("jess-geo: error: ")]
    assert len(errors) == 2 and "a.tif: " in errors[0] and "could not be read" in errors[0], r.stderr
    assert "1 of 2 scenes failed" in errors[1]
    assert (tmp_path / "b_classes.tif").exists() and not (tmp_path / "a_classes.tif").exists()
    assert not [n for n in names(tmp_path) if ".part-" in n or "lock" in n]
    for p in tmp_path.glob("b_*"):
        p.unlink()
    r = run_cli("predict", tmp_path / "a.tif", tmp_path / "b.tif", "--no-vector", "--quiet", "--fail-fast")
    assert "could not be read" in one_error(r) and not (tmp_path / "b_classes.tif").exists()
