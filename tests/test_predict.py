"""Windowed prediction: outputs, blending, nodata, photos, atomic outputs and the `predict` command."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from jess_geo.errors import Cancelled, InputError, OutputError
from jess_geo.inference.outputs import cover_paths
from jess_geo.inference.predict import predict_raster
from jess_geo.io.raster import PHOTO_TRANSFORM
from jess_geo.models.factory import architecture_dict, build_model
from jess_geo.models.modelfile import LoadedModel, save_model_file

ROOT = Path(__file__).resolve().parents[1]
LANDSAT = ROOT.parent / "shared" / "data" / "landsat" / "l7_etm_olinda.tif"
CLASSES = [
    {"id": 0, "name": "soil", "color": "#c9a87c"},
    {"id": 1, "name": "crust", "color": "#5b4a3f"},
    {"id": 4, "name": "moss", "color": "#3f7a2e"},
]
TRANSFORM = Affine(2.0, 0, 500000, 0, -2.0, 4000000)


def _meta(bands: int = 3, tile: int = 64, overlap: int = 16, gsd: float | None = None) -> dict:
    return {
        "architecture": architecture_dict("timm-tf_efficientnet_lite0", bands, len(CLASSES), (16, 16, 16, 16, 16)),
        "bands": list(range(1, bands + 1)),
        "normalization": {"mean": [120.0] * bands, "std": [40.0] * bands},
        "classes": CLASSES,
        "resolution": {"gsd": gsd, "photo_scale": 1.0},
        "tile_size": tile,
        "overlap": overlap,
    }


class PointwiseNet(torch.nn.Module):
    """A 1x1 convolution: every output pixel depends on its own input pixel only."""

    def __init__(self, bands: int = 3) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(bands, len(CLASSES), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4.0 * self.conv(x)


def pointwise(bands: int = 3, **kw) -> LoadedModel:  # type: ignore[no-untyped-def]
    return LoadedModel(PointwiseNet(bands).eval(), _meta(bands, **kw))


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    meta = _meta()
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model_file(path, build_model(meta["architecture"]), meta)
    return path


def make_tif(path: Path, h: int, w: int, *, bands: int = 3, nodata: float | None = None, border: int = 0,
             alpha: bool = False, crs: str | None = "EPSG:32633", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    data = np.stack([120 + 60 * np.sin(x / (9.0 + b) + b) * np.cos(y / 13.0) for b in range(bands)])
    data = np.clip(data + rng.normal(0, 5, data.shape), 1, 254).astype(np.uint8)
    count = bands + (1 if alpha else 0)
    profile = {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": "uint8", "transform": TRANSFORM}
    if crs:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    if border:
        data[:, :border] = nodata if nodata is not None else 0
        data[:, :, :border] = nodata if nodata is not None else 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, indexes=list(range(1, bands + 1)))
        if alpha:
            a = np.full((h, w), 255, np.uint8)
            a[:, w - border :] = 0
            dst.write(a, count)
            dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                               rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha][-count:]
    return path


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


# --------------------------------------------------------------------------- library


@pytest.mark.parametrize("h,w", [(40, 50), (131, 77), (200, 333)])
def test_outputs_carry_the_input_grid(tmp_path: Path, model_file: Path, h: int, w: int) -> None:
    scene = make_tif(tmp_path / "scene.tif", h, w)
    out = tmp_path / "scene_classes.tif"
    res = predict_raster(scene, model_file, out, probabilities=tmp_path / "p.tif", energy=tmp_path / "e.tif", device="cpu")
    for p in (out, tmp_path / "p.tif", tmp_path / "e.tif"):
        with rasterio.open(p) as src, rasterio.open(scene) as ref:
            assert (src.width, src.height) == (ref.width, ref.height)
            assert src.crs == ref.crs and src.transform == ref.transform
            assert src.nodata is not None
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 255 and src.profile["tiled"]
        assert src.compression.value.lower() == "deflate"
        assert src.colormap(1)[4][:3] == (0x3F, 0x7A, 0x2E)
        assert src.tags()["CLASS_4"] == "moss"
        classes = src.read(1)
    assert set(np.unique(classes)) <= {0, 1, 4}
    probs = read(tmp_path / "p.tif")
    assert probs.shape == (3, h, w) and np.all(np.abs(probs.astype(int).sum(0) - 254) <= 2)
    csv_path, json_path = cover_paths(out)
    assert csv_path.name == "scene_cover.csv" and csv_path.exists() and json_path.exists()
    table = json.loads(json_path.read_text())
    assert table["area_unit"] == "m2" and table["valid_pixels"] == h * w
    assert sum(c["pixels"] for c in table["classes"]) == h * w
    assert abs(sum(c["percent"] for c in table["classes"]) - 100) < 1e-6
    assert abs(table["valid_area"] - h * w * 4.0) < 1e-6
    for c in table["classes"]:
        assert c["pixels"] == int((classes == c["id"]).sum())
    assert res["outputs"]["classes"] == str(out)
    assert not [p for p in tmp_path.iterdir() if ".part-" in p.name]


@pytest.mark.parametrize("h,w,tile,overlap", [(131, 77, 32, 8), (200, 333, 64, 16), (97, 300, 96, 40), (300, 437, 100, 10)])
def test_tiled_prediction_equals_one_whole_pass(tmp_path: Path, h: int, w: int, tile: int, overlap: int) -> None:
    """With a pointwise network, blending must reproduce the single pass exactly: no seams, no offsets."""
    scene = make_tif(tmp_path / "s.tif", h, w, nodata=0, border=5)
    model = pointwise()
    notes: list[str] = []
    predict_raster(scene, model, tmp_path / "tiled.tif", energy=tmp_path / "te.tif", tile_size=tile, overlap=overlap,
                   batch_size=3, device="cpu", cover=False, notice=notes.append)
    predict_raster(scene, model, tmp_path / "whole.tif", energy=tmp_path / "we.tif", tile_size=512, overlap=0,
                   device="cpu", cover=False)
    a, b = read(tmp_path / "tiled.tif")[0], read(tmp_path / "whole.tif")[0]
    assert (a == b).mean() == 1.0
    np.testing.assert_allclose(read(tmp_path / "te.tif"), read(tmp_path / "we.tif"), atol=1e-4)
    assert (tile % 32 != 0) == any("multiple of 32" in n for n in notes)


def test_working_scale_keeps_the_input_grid(tmp_path: Path) -> None:
    scene = make_tif(tmp_path / "s.tif", 150, 170)  # 2 m pixels, model works at 4 m
    model = pointwise(gsd=4.0)
    res = predict_raster(scene, model, tmp_path / "a.tif", tile_size=32, overlap=8, device="cpu", cover=False)
    predict_raster(scene, model, tmp_path / "b.tif", tile_size=128, overlap=0, device="cpu", cover=False)
    a, b = read(tmp_path / "a.tif")[0], read(tmp_path / "b.tif")[0]
    assert a.shape == (150, 170) and res["scale"] == 0.5
    assert (a == b).mean() > 0.995


@pytest.mark.parametrize("kind", ["nodata", "alpha"])
def test_nodata_value_and_alpha_are_nodata_everywhere(tmp_path: Path, model_file: Path, kind: str) -> None:
    if kind == "nodata":
        scene = make_tif(tmp_path / "s.tif", 180, 200, nodata=0, border=70)
    else:
        scene = make_tif(tmp_path / "s.tif", 180, 200, border=70, alpha=True)
    with rasterio.open(scene) as src:
        valid = src.dataset_mask() > 0
    assert 0 < valid.mean() < 1
    res = predict_raster(scene, model_file, tmp_path / "c.tif", probabilities=tmp_path / "p.tif",
                         energy=tmp_path / "e.tif", tile_size=64, overlap=16, device="cpu")
    classes, probs, energy = read(tmp_path / "c.tif")[0], read(tmp_path / "p.tif"), read(tmp_path / "e.tif")[0]
    assert np.all(classes[~valid] == 255) and np.all(classes[valid] != 255)
    assert np.all(probs[:, ~valid] == 255) and np.all(np.isnan(energy[~valid])) and np.all(np.isfinite(energy[valid]))
    assert res["cover"]["valid_pixels"] == int(valid.sum())
    assert res["cover"]["nodata_pixels"] == int((~valid).sum())
    if kind == "nodata":
        assert res["tiles_run"] < res["tiles"]  # the all-nodata corner tile cost no network call


def test_all_nodata_scene_gives_empty_outputs_and_a_notice(tmp_path: Path, model_file: Path) -> None:
    scene = tmp_path / "empty.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=90, height=70, count=3, dtype="uint8", nodata=0,
                       crs="EPSG:32633", transform=TRANSFORM) as dst:
        dst.write(np.zeros((3, 70, 90), np.uint8))
    notes: list[str] = []
    res = predict_raster(scene, model_file, tmp_path / "c.tif", device="cpu", notice=notes.append)
    assert np.all(read(tmp_path / "c.tif") == 255)
    assert res["tiles_run"] == 0 and res["cover"]["valid_pixels"] == 0
    assert any("no valid pixel" in n for n in notes)


def test_photo_outputs_in_pixel_units(tmp_path: Path, model_file: Path) -> None:
    photo = tmp_path / "photo.png"
    data = read(make_tif(tmp_path / "tmp.tif", 90, 120, crs=None))
    with rasterio.open(photo, "w", driver="PNG", width=120, height=90, count=3, dtype="uint8") as dst:
        dst.write(data)
    res = predict_raster(photo, model_file, tmp_path / "photo_classes.tif", device="cpu")
    with rasterio.open(tmp_path / "photo_classes.tif") as src:
        assert src.crs is None and src.transform == PHOTO_TRANSFORM and src.shape == (90, 120)
    assert res["cover"]["area_unit"] == "px2" and res["cover"]["valid_area"] == 90 * 120


def test_cog_output_has_overviews_and_colours(tmp_path: Path) -> None:
    scene = make_tif(tmp_path / "s.tif", 600, 520)
    predict_raster(scene, pointwise(), tmp_path / "c.tif", energy=tmp_path / "e.tif", cog=True, device="cpu")
    with rasterio.open(tmp_path / "c.tif") as src:
        assert src.overviews(1) and src.colormap(1)[1][:3] == (0x5B, 0x4A, 0x3F)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    # the class raster carries its QGIS style (c.qml) and category names + attribute table (c.tif.aux.xml)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.qml", "c.tif", "c.tif.aux.xml", "c_cover.csv", "c_cover.json", "e.tif", "s.tif"]


def test_existing_output_refused_and_inputs_protected(tmp_path: Path, model_file: Path) -> None:
    scene = make_tif(tmp_path / "s.tif", 40, 40)
    out = tmp_path / "c.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        predict_raster(scene, model_file, out, device="cpu")
    assert out.read_bytes() == b"keep me"
    with pytest.raises(OutputError, match="same file as an input"):
        predict_raster(scene, model_file, scene, overwrite=True, device="cpu")
    predict_raster(scene, model_file, out, overwrite=True, device="cpu")
    assert read(out).shape == (1, 40, 40)


def test_band_check_and_cancel_leave_nothing(tmp_path: Path, model_file: Path) -> None:
    one_band = make_tif(tmp_path / "one.tif", 50, 50, bands=1)
    with pytest.raises(InputError, match="band"):
        predict_raster(one_band, model_file, tmp_path / "o.tif", device="cpu")
    scene = make_tif(tmp_path / "s.tif", 300, 300)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        predict_raster(scene, model_file, tmp_path / "c.tif", probabilities=tmp_path / "p.tif", tile_size=32,
                       overlap=8, batch_size=1, cancel=cancel, device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.tif", "s.tif"]


# --------------------------------------------------------------------------- command line


def test_cli_json_progress_and_outputs(tmp_path: Path, model_file: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    make_tif(tmp_path / "scene.tif", 100, 130, nodata=0, border=10)
    r = run_cli("predict", "scene.tif", "--model", model_file, "--json-progress", "--no-vector", "--tile-size", "64",
                "--energy", "energy.tif", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["stage"] for x in lines[:2]] == ["plan", "message"] and lines[-1]["stage"] == "done"
    assert lines[0]["tiles"] == 6 and lines[0]["working_size"] == [130, 100]
    assert any(x["stage"] == "predict" for x in lines)
    done = lines[-1]
    assert done["outputs"]["classes"] == "scene_classes.tif" and done["outputs"]["energy"] == "energy.tif"
    assert done["outputs"]["vector"] is None and done["classes"] == CLASSES
    for key in ("classes", "energy", "cover_csv", "cover_json"):
        assert (tmp_path / done["outputs"][key]).exists()


@pytest.mark.parametrize("case", ["missing", "not_raster", "bands", "exists", "no_folder", "corrupt_model", "both_vector"])
def test_cli_bad_input_one_line_exit_2_writes_nothing(tmp_path: Path, model_file: Path, case: str, run_cli) -> None:  # type: ignore[no-untyped-def]
    make_tif(tmp_path / "scene.tif", 60, 60)
    model = str(model_file)
    args = ["scene.tif"]
    if case == "missing":
        args = ["nope.tif"]
    elif case == "not_raster":
        (tmp_path / "text.tif").write_text("not an image")
        args = ["text.tif"]
    elif case == "bands":
        make_tif(tmp_path / "one.tif", 60, 60, bands=1)
        args = ["one.tif"]
    elif case == "exists":
        (tmp_path / "scene_classes.tif").write_bytes(b"old")
    elif case == "no_folder":
        args += ["-o", "missing_dir/out.tif"]
    elif case == "corrupt_model":
        data = model_file.read_bytes()
        (tmp_path / "bad.pt").write_bytes(data[: len(data) // 2])
        model = "bad.pt"
    elif case == "both_vector":
        args += ["--vector", "v.gpkg", "--no-vector"]
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_cli("predict", *args, "--model", model, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jess-geo: error: "), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "exists":
        assert (tmp_path / "scene_classes.tif").read_bytes() == b"old"


def test_cli_sigterm_leaves_no_partial_file(tmp_path: Path, model_file: Path, cli_command: list[str]) -> None:
    """The one subprocess smoke test of predict: the real console script, stopped by SIGTERM."""
    make_tif(tmp_path / "big.tif", 1200, 1200)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.Popen([*cli_command, "predict", "big.tif", "--model", str(model_file), "--json-progress",
                             "--tile-size", "64", "--overlap", "16", "--batch-size", "2", "--probabilities", "p.tif"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line).get("done", 0) > 0:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "SIGTERM" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --------------------------------------------------------------------------- real scene


@pytest.mark.skipif(not LANDSAT.exists(), reason="../shared/data/landsat/l7_etm_olinda.tif is not present")
def test_landsat_grid_blending_and_areas(tmp_path: Path) -> None:
    model = pointwise(bands=6, tile=256, overlap=64)
    model.metadata["normalization"] = {"mean": [80.0] * 6, "std": [30.0] * 6}
    res = predict_raster(LANDSAT, model, tmp_path / "l_classes.tif", tile_size=256, overlap=64, device="cpu")
    predict_raster(LANDSAT, model, tmp_path / "whole.tif", tile_size=384, overlap=0, device="cpu", cover=False)
    with rasterio.open(LANDSAT) as ref, rasterio.open(tmp_path / "l_classes.tif") as out:
        assert out.crs == ref.crs and out.crs.to_epsg() == 31985
        assert out.transform == ref.transform and out.shape == ref.shape
        px_area = abs(ref.transform.a * ref.transform.e)
    a, b = read(tmp_path / "l_classes.tif")[0], read(tmp_path / "whole.tif")[0]
    assert (a == b).mean() >= 0.995
    for c in res["cover"]["classes"]:
        assert c["area"] == pytest.approx(c["pixels"] * px_area)


@pytest.mark.skipif(not LANDSAT.exists(), reason="../shared/data/landsat/l7_etm_olinda.tif is not present")
def test_landsat_cli_with_a_real_network(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    meta = _meta(bands=6, tile=256, overlap=64)
    save_model_file(tmp_path / "m6.pt", build_model(meta["architecture"]), meta)
    r = run_cli("predict", LANDSAT, "--model", "m6.pt", "-o", "olinda.tif", "--no-vector", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with rasterio.open(LANDSAT) as ref, rasterio.open(tmp_path / "olinda.tif") as out:
        assert out.crs == ref.crs and out.transform == ref.transform and out.shape == ref.shape
    assert (tmp_path / "olinda_cover.csv").exists()


def test_evaluate_scores_exactly_what_predict_writes(tmp_path: Path) -> None:
    """evaluate runs the predict pipeline: the class raster predict writes, used as the labels, scores 100 %."""
    from jess_geo.training.evaluate import evaluate_model

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    scene = make_tif(tmp_path / "images" / "s.tif", 150, 170, nodata=0, border=12)
    model = pointwise(gsd=4.0, tile=64, overlap=16)  # 2 m pixels, model at 4 m: resampled both ways
    predict_raster(scene, model, tmp_path / "c.tif", cover=False, device="cpu")
    classes = read(tmp_path / "c.tif")
    with rasterio.open(scene) as src:
        profile = dict(src.profile, count=1, nodata=None)
    with rasterio.open(tmp_path / "masks" / "s.tif", "w", **profile) as dst:
        dst.write(np.where(classes == 255, 0, classes).astype(np.uint8))
    m = evaluate_model(model, tmp_path / "images", tmp_path / "masks", device="cpu")
    assert m["accuracy"] == 1.0 and m["pixels"] == int((classes != 255).sum())


def test_predict_path_imports_no_training_code_and_no_network_library() -> None:
    """Start-up diet (issue 13): the predict command's modules load without Lightning, torchgeo,
    training code, smp/timm/torchvision, and without torch until a .pt network is loaded."""
    import sys

    code = ("import sys, jess_geo.cli.main, jess_geo.cli.predict, jess_geo.inference.predict, jess_geo.inference.products;"
            "print(sorted({m.split('.')[0] if not m.startswith('jess_geo.') else m for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("lightning", "pytorch_lightning", "torchgeo", "segmentation_models_pytorch", "timm", "torchvision", "torch",
                 "jess_geo.training"):
        assert f"'{name}" not in out, name
