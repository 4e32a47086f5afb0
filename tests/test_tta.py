"""Test-time augmentation (`predict --tta`, `evaluate --tta`): transforms, averaging, and what a user gets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from jess_geo.errors import Cancelled, InputError
from jess_geo.inference.tta import MODES, apply, augmented_scores, invert

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "jess_geo" / "assets" / "demo_model.pt"
SCENE = ROOT / "sample_data" / "scene.tif"
LABELS = ROOT / "sample_data" / "scene_labels.tif"
# 256 x 352 input pixels: 128 x 176 working pixels at the demo model's scale 0.5, padded to a
# 128 x 192 network input, so the d4 views of this tile are non-square and carry padding.
WINDOW = Window(160, 128, 352, 256)


def _crop(src_path: Path, dst: Path, window: Window = WINDOW) -> Path:
    with rasterio.open(src_path) as src:
        profile = {**src.profile, "width": window.width, "height": window.height,
                   "transform": src.window_transform(window)}
        for key in ("blockxsize", "blockysize", "tiled"):
            profile.pop(key, None)
        data = src.read(window=window)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One torch thread for this module's runs (restored after): on a busy machine two threads
    spin at every barrier and these few-tile runs take ten times longer; results are the same."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-square crop of the sample scene (its georeferencing kept), with its labels beside it."""
    folder = tmp_path_factory.mktemp("tta_scene")
    for sub in ("images", "masks"):
        (folder / sub).mkdir()
    _crop(LABELS, folder / "masks" / "plot.tif")
    return _crop(SCENE, folder / "images" / "plot.tif")


@pytest.fixture(scope="module")
def pointwise() -> Any:
    """The demo model's metadata on a network of 1 x 1 convolutions: exactly equivariant under D4."""
    import torch

    from jess_geo.models.modelfile import LoadedModel, read_metadata

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    return LoadedModel(net, read_metadata(DEMO))


@pytest.fixture(scope="module")
def demo() -> Any:
    """The shipped demo model, loaded once for this module's library calls."""
    from jess_geo.models.modelfile import load_model_file

    return load_model_file(DEMO)


def _read(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    with rasterio.open(path) as src:
        return src.read(), {"crs": src.crs, "transform": src.transform, "shape": src.shape, "nodata": src.nodata,
                            "dtype": src.dtypes[0]}


# ------------------------------------------------------------------------------ pure functions
@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_every_view_is_inverted_on_a_non_square_batch(mode: str) -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 6)).astype(np.float32)
    views = [apply(x, t) for t in MODES[mode]]
    for t, v in zip(MODES[mode], views):
        np.testing.assert_array_equal(invert(v, t), x)
    distinct = {v.tobytes() + bytes(v.shape) for v in views}
    assert len(distinct) == len(MODES[mode]) == {"flips": 4, "d4": 8}[mode]
    shapes = sorted({v.shape[-2:] for v in views})
    assert shapes == ([(4, 6)] if mode == "flips" else [(4, 6), (6, 4)])


def test_scores_are_averaged_over_the_views_put_back() -> None:
    """A 'network' answering each pixel's row index: put back and averaged, that is the centre row
    (flips) or the mean of the centre row and column (d4: half the views see columns as rows)."""
    x = np.zeros((1, 1, 4, 6), np.float32)
    row_index = lambda v: np.broadcast_to(np.arange(v.shape[-2], dtype=np.float32)[:, None], v.shape).copy()  # noqa: E731
    np.testing.assert_array_equal(augmented_scores(row_index, x, "none"), row_index(x))
    np.testing.assert_allclose(augmented_scores(row_index, x, "flips"), np.full(x.shape, 1.5))
    np.testing.assert_allclose(augmented_scores(row_index, x, "d4"), np.full(x.shape, (1.5 + 2.5) / 2))


def test_unknown_mode_is_refused_in_the_library() -> None:
    from jess_geo.inference.prepare import Options

    with pytest.raises(InputError, match="Unknown test-time augmentation 'd8'; choose one of none, flips, d4."):
        Options(tta="d8").check()


# ------------------------------------------------------------------------------ the pipeline
def test_d4_of_an_equivariant_network_gives_the_same_map(scene: Path, pointwise: Any, tmp_path: Path) -> None:
    from jess_geo.inference.predict import predict_raster

    out = {}
    for mode in ("none", "d4"):
        res = predict_raster(scene, pointwise, tmp_path / f"{mode}.tif", probabilities=tmp_path / f"{mode}_p.tif",
                             cover=False, tta=mode, device="cpu")
        assert res["tta"] == mode
        out[mode] = (_read(tmp_path / f"{mode}.tif")[0], _read(tmp_path / f"{mode}_p.tif")[0].astype(int))
    np.testing.assert_array_equal(out["d4"][0], out["none"][0])
    assert np.abs(out["d4"][1] - out["none"][1]).max() <= 1  # uint8 p x 254: rounding only
    assert len(np.unique(out["none"][0])) > 1  # a map, not one class everywhere


def test_tta_flips_on_the_scene_writes_a_class_geotiff_on_its_grid(scene: Path, tmp_path: Path, run_cli: Any) -> None:
    plan = run_cli("predict", scene, "--tta", "flips", "-o", tmp_path / "f_classes.tif", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.stderr
    assert json.loads(plan.stdout)["tta"] == "flips"
    maps = {}
    for mode in ("none", "flips"):
        res = run_cli("predict", scene, "--tta", mode, "-o", tmp_path / f"{mode}_classes.tif", "--no-vector", "--device", "cpu")
        assert res.exit_code == 0, res.stderr
        maps[mode], grid = _read(tmp_path / f"{mode}_classes.tif")
    assert "test-time augmentation flips" in res.stdout
    _, src = _read(scene)
    assert (grid["crs"], grid["transform"], grid["shape"]) == (src["crs"], src["transform"], src["shape"])
    assert grid["dtype"] == "uint8" and grid["nodata"] == 255
    assert set(np.unique(maps["flips"])) <= {0, 1, 2, 3}
    agree = float((maps["flips"] == maps["none"]).mean())
    assert 0.9 < agree < 1.0, agree  # the demo network is not flip-invariant: averaging changes a few pixels


def test_progress_counts_tiles_and_cancel_stops_with_nothing_left(scene: Path, demo: Any, tmp_path: Path) -> None:
    from jess_geo.inference.predict import predict_raster

    seen: dict[str, list[tuple[int, int]]] = {}
    for mode in ("none", "d4"):
        calls: list[tuple[int, int]] = []
        predict_raster(scene, demo, tmp_path / f"{mode}.tif", cover=False, tta=mode, tile_size=128, overlap=16,
                       batch_size=1, device="cpu", progress=lambda stage, done, total, _m: calls.append((done, total)))
        seen[mode] = calls
    assert seen["d4"] == seen["none"] == [(0, 2), (1, 2), (2, 2)]  # tiles, not network views

    polls = iter(range(100))
    (tmp_path / "stopped").mkdir()
    with pytest.raises(Cancelled):
        predict_raster(scene, demo, tmp_path / "stopped" / "s.tif", cover=False, tta="d4", tile_size=128, overlap=16,
                       batch_size=1, device="cpu", cancel=lambda: next(polls) >= 2)
    assert not any((tmp_path / "stopped").iterdir())


def _pointwise_onnx(model: Any, path: Path) -> Path:
    import onnx
    import torch

    torch.onnx.export(model.model, (torch.zeros(1, 3, 64, 64),), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}},
                      opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    meta = proto.metadata_props.add()
    meta.key, meta.value = "jess_geo", json.dumps(model.metadata)
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_d4_with_an_onnx_model(runtime: str, scene: Path, pointwise: Any, tmp_path: Path, run_cli: Any) -> None:
    """The ONNX runtimes take the non-square rotated views too: d4 of the equivariant graph is its plain map."""
    for package in ("onnx", runtime):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed")
    from jess_geo.inference.predict import predict_raster

    onnx_file = _pointwise_onnx(pointwise, tmp_path / "pointwise.onnx")
    maps = {}
    for mode in ("none", "d4"):
        res = run_cli("predict", scene, "--model", onnx_file, "--runtime", runtime, "--tta", mode,
                      "-o", tmp_path / f"{mode}_classes.tif", "--no-vector")
        assert res.exit_code == 0, res.stderr
        maps[mode] = _read(tmp_path / f"{mode}_classes.tif")[0]
    predict_raster(scene, pointwise, tmp_path / "torch.tif", cover=False, device="cpu")
    np.testing.assert_array_equal(maps["d4"], maps["none"])
    np.testing.assert_array_equal(maps["d4"], _read(tmp_path / "torch.tif")[0])
    assert f"({runtime}), test-time augmentation d4" in res.stdout


# ------------------------------------------------------------------------------ command lines
def test_evaluate_with_tta_records_it(scene: Path, run_cli: Any) -> None:
    res = run_cli("evaluate", DEMO, "--images", scene.parent, "--masks", scene.parent.parent / "masks", "--tta", "flips", "--json")
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["tta"] == "flips" and m["pixels"] > 0 and 0.5 < m["accuracy"] <= 1.0


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_unknown_tta_is_a_one_line_error(command: str, scene: Path, tmp_path: Path, run_cli: Any, assert_cli_error: Any) -> None:
    args = [scene, "-o", tmp_path / "x.tif"] if command == "predict" else [DEMO, "--images", scene.parent, "--masks", scene.parent]
    message = assert_cli_error(run_cli(command, *args, "--tta", "d8"))
    assert "'--tta': 'd8' is not one of 'none', 'flips', 'd4'" in message
    assert not list(tmp_path.iterdir())
