"""ONNX export and the ONNX Runtime / OpenVINO runtimes: what a user sees, on the shipped model and sample scene."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "jess_geo" / "assets" / "demo_model.pt"
SCENE = ROOT / "sample_data" / "scene.tif"


@pytest.fixture(scope="module")
def exported(demo_onnx: Path) -> Path:
    """The demo model exported once with the real command line (fp32, fixed 256 x 256 tiles)."""
    report = demo_onnx.with_suffix(".export.txt").read_text(encoding="utf-8")
    assert "match PyTorch to" in report
    assert f"wrote {demo_onnx}" in report
    return demo_onnx


def _props(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _scene_tiles(meta: dict[str, Any]) -> np.ndarray:
    """Two 256 x 256 tiles of the sample scene at the model's working resolution, normalised."""
    import rasterio
    import torch
    import torch.nn.functional as F

    with rasterio.open(SCENE) as src:
        raw = src.read([1, 2, 3]).astype(np.float32)
        scale = src.res[0] / meta["resolution"]["gsd"]
    size = (round(raw.shape[1] * scale), round(raw.shape[2] * scale))
    x = F.interpolate(torch.from_numpy(raw)[None], size=size, mode="bilinear", antialias=True)[0].numpy()
    mean = np.asarray(meta["normalization"]["mean"], np.float32)[:, None, None]
    std = np.asarray(meta["normalization"]["std"], np.float32)[:, None, None]
    x = (x - mean) / std
    return np.ascontiguousarray(np.stack([x[:, :256, :256], x[:, -256:, -256:]]))


def test_info_prints_the_exported_metadata(exported: Path, run_cli: Any) -> None:
    pt = json.loads(run_cli("info", DEMO, "--json").stdout)
    ox = json.loads(run_cli("info", exported, "--json").stdout)
    assert set(pt) <= set(ox) and set(ox) - set(pt) == {"onnx"}
    assert {k: ox[k] for k in pt} == pt
    assert ox["onnx"]["input"]["height"] == 256 and ox["onnx"]["precision"] == "fp32"
    assert ox["onnx"]["check_max_abs_logit_diff"] < 1e-4
    text = run_cli("info", exported)
    assert text.exit_code == 0 and "cyanobacteria crust" in text.stdout and "256 / 32" in text.stdout
    assert "onnx:         fp32, opset 17, input (batch, 3, 256 x 256) normalised" in text.stdout


def test_deepness_reads_what_it_needs(exported: Path) -> None:
    """The keys and shapes QGIS Deepness reads, and its preprocessing gives our normalised input."""
    import onnxruntime as ort

    props = _props(exported)
    meta = json.loads(props["jess_geo"])
    assert json.loads(props["model_type"]) == "Segmentor"
    names = json.loads(props["class_names"])
    assert [int(k) for k in names] == list(range(4)) and names["1"] == "cyanobacteria crust"
    assert json.loads(props["resolution"]) == pytest.approx(2.0)  # 0.02 m = 2 cm/px
    assert json.loads(props["tile_size"]) == json.loads(props["tiles_size"]) == 256
    assert json.loads(props["tiles_overlap"]) == 12  # 32 px of 256, in percent
    assert json.loads(props["seg_thresh"]) == 0.0
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.shape[1:] == [3, 256, 256] and isinstance(inp.shape[0], str)  # fixed square tiles, any batch
    assert out.shape[1:] == [4, 256, 256]
    raw = np.random.default_rng(1).integers(0, 256, (1, 3, 8, 8)).astype(np.float32)
    m = np.asarray(json.loads(props["standardization_mean"]), np.float32)[:, None, None]
    s = np.asarray(json.loads(props["standardization_std"]), np.float32)[:, None, None]
    deepness = (raw / 255.0 - m) / s
    ours = (raw - np.asarray(meta["normalization"]["mean"])[:, None, None]) / np.asarray(meta["normalization"]["std"])[:, None, None]
    np.testing.assert_allclose(deepness, ours, atol=1e-4)
    probs = session.run(None, {inp.name: np.zeros((2, 3, 256, 256), np.float32)})[0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)  # Deepness wants probabilities


def test_onnx_logits_match_pytorch_on_the_sample_scene(exported: Path) -> None:
    from jess_geo.export.onnx_export import torch_logits
    from jess_geo.inference.onnx_runtime import open_onnx_runtime
    from jess_geo.models.modelfile import load_model_file

    loaded = load_model_file(DEMO)
    x = _scene_tiles(loaded.metadata)
    ref = torch_logits(loaded.model, x)
    ort_runtime = open_onnx_runtime(exported, "onnxruntime", "cpu")
    assert (ort_runtime.name, ort_runtime.device) == ("onnxruntime", "cpu")
    got = ort_runtime.logits(x)
    assert got.shape == ref.shape == (2, 4, 256, 256) and got.dtype == np.float32
    assert np.max(np.abs(got - ref)) < 1e-4
    if importlib.util.find_spec("openvino") is not None:
        ov = open_onnx_runtime(exported, "openvino", "cpu")
        assert np.max(np.abs(ov.logits(x) - ref)) < 1e-4
    from_pt = open_onnx_runtime(DEMO, "onnxruntime", "cpu")  # a .pt model, exported in memory
    assert from_pt.graph.height is None and np.max(np.abs(from_pt.logits(x) - ref)) < 1e-4


def test_fixed_size_graph_runs_other_sizes_when_checked(exported: Path, tmp_path: Path) -> None:
    """Our fp32 export declares 256 x 256 (for Deepness) and, checked at export, runs other multiples of 32;
    a graph without that check takes smaller tiles (padded) and refuses larger ones."""
    import onnx

    from jess_geo.errors import InputError
    from jess_geo.inference.onnx_runtime import open_onnx_runtime

    assert json.loads(_props(exported)["jess_geo"])["onnx"]["input"]["any_size"] is True
    assert open_onnx_runtime(exported, "onnxruntime", "cpu").logits(np.zeros((1, 3, 512, 320), np.float32)).shape == (1, 4, 512, 320)
    proto = onnx.load(str(exported))
    entry = next(p for p in proto.metadata_props if p.key == "jess_geo")
    meta = json.loads(entry.value)
    meta["onnx"]["input"]["any_size"] = False
    entry.value = json.dumps(meta)
    strict = tmp_path / "strict.onnx"
    onnx.save(proto, str(strict))
    runtime = open_onnx_runtime(strict, "onnxruntime", "cpu")
    assert runtime.logits(np.zeros((3, 3, 128, 192), np.float32)).shape == (3, 4, 128, 192)
    with pytest.raises(InputError, match="exported for 256 x 256 tiles"):
        runtime.logits(np.zeros((1, 3, 512, 512), np.float32))


def test_dynamic_export_runs_any_multiple_of_32(tmp_path: Path, run_cli: Any) -> None:
    from jess_geo.export.onnx_export import torch_logits
    from jess_geo.inference.onnx_runtime import open_onnx_runtime
    from jess_geo.models.modelfile import load_model_file

    out = tmp_path / "dynamic.onnx"
    assert run_cli("export", DEMO, out, "--dynamic").exit_code == 0
    meta = json.loads(_props(out)["jess_geo"])
    assert meta["onnx"]["input"]["height"] is None
    x = np.random.default_rng(2).standard_normal((1, 3, 192, 320), dtype=np.float32)
    got = open_onnx_runtime(out, "onnxruntime", "cpu").logits(x)
    assert np.max(np.abs(got - torch_logits(load_model_file(DEMO).model, x))) < 1e-4


def test_int8_export_reports_agreement(tmp_path: Path, run_cli: Any) -> None:
    out = tmp_path / "demo_int8.onnx"
    result = run_cli("export", DEMO, out, "--int8", "--calibration", ROOT / "sample_data" / "train" / "images")
    assert result.exit_code == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if "int8 class agreement" in ln)
    assert float(line.split(":")[-1].strip(" %")) >= 98.0
    meta = json.loads(_props(out)["jess_geo"])
    assert meta["onnx"]["precision"] == "int8" and meta["onnx"]["int8_agreement"] >= 0.98


def test_predict_with_the_onnx_model_gives_the_same_cover_table(exported: Path, tmp_path: Path, run_cli: Any) -> None:
    """`predict --model m.onnx` needs nothing else and writes what the .pt model writes."""
    tables = {}
    for name, model in (("pt", DEMO), ("onnx", exported), ("pt512", DEMO), ("onnx512", exported)):
        out = tmp_path / f"{name}_classes.tif"
        tile = ["--tile-size", "512"] if name.endswith("512") else []  # larger than the graph's declared 256
        result = run_cli("predict", SCENE, "--model", model, "-o", out, "--no-vector", "--quiet", *tile)
        assert result.exit_code == 0, result.stderr
        tables[name] = json.loads((tmp_path / f"{name}_cover.json").read_text())
    for onnx_run, pt_run in (("onnx", "pt"), ("onnx512", "pt512")):
        for key in ("valid_pixels", "nodata_pixels"):
            assert tables[onnx_run][key] == tables[pt_run][key]
        # the table a user reads: the same percentages to the printed two decimals
        percents = [[round(r["percent"], 2) for r in tables[k]["classes"]] for k in (onnx_run, pt_run)]
        assert percents[0] == percents[1]


# ----------------------------------------------------------------------------- bad input


def test_predict_pt_model_on_onnxruntime(tmp_path: Path, run_cli: Any) -> None:
    """`--runtime onnxruntime` also takes the .pt model (exported in memory) and says which runtime ran."""
    result = run_cli("predict", SCENE, "--runtime", "onnxruntime", "-o", tmp_path / "s_classes.tif", "--no-vector")
    assert result.exit_code == 0, result.stderr
    assert "on cpu (onnxruntime)" in result.stdout and "29.70%" in result.stdout  # bare soil, as with torch


def test_onnx_model_on_torch_is_refused(exported: Path, tmp_path: Path, run_cli: Any, assert_cli_error: Any) -> None:
    message = assert_cli_error(run_cli("predict", SCENE, "--model", exported, "--runtime", "torch", "-o", tmp_path / "t_classes.tif"))
    assert "is an ONNX model" in message and "--runtime onnxruntime" in message
    assert list(tmp_path.iterdir()) == []


def test_int8_failing_the_agreement_check_writes_nothing(tmp_path: Path, run_cli: Any, assert_cli_error: Any) -> None:
    out = tmp_path / "strict.onnx"
    result = run_cli("export", DEMO, out, "--int8", "--calibration", ROOT / "sample_data" / "train" / "images", "--min-agreement", "1.0")
    message = assert_cli_error(result)
    assert "agrees with fp32 on" in message and "nothing written" in message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_onnx_without_our_metadata(exported: Path, tmp_path: Path, run_cli: Any, assert_cli_error: Any) -> None:
    import onnx

    proto = onnx.load(str(exported))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    message = assert_cli_error(run_cli("info", foreign))
    assert "without jess-geo metadata" in message and "jess-geo export" in message
    out = tmp_path / "scene_classes.tif"
    message = assert_cli_error(run_cli("predict", SCENE, "--model", foreign, "-o", out, "--no-vector"))
    assert "without jess-geo metadata" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.onnx"]


def test_corrupt_onnx(exported: Path, tmp_path: Path, run_cli: Any, assert_cli_error: Any) -> None:
    broken = tmp_path / "broken.onnx"
    data = exported.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    assert "corrupt or truncated" in assert_cli_error(run_cli("info", broken))
    message = assert_cli_error(run_cli("predict", SCENE, "--model", broken, "-o", tmp_path / "x_classes.tif", "--no-vector"))
    assert "corrupt or truncated" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx"]


@pytest.mark.parametrize("package", ["openvino", "onnxruntime"])
def test_runtime_not_installed(package: str, exported: Path, tmp_path: Path, run_cli: Any, assert_cli_error: Any,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # what `import openvino` does where it is not installed
    extra = "openvino" if package == "openvino" else "onnx"
    result = run_cli("predict", SCENE, "--model", exported, "--runtime", package, "-o", tmp_path / "s_classes.tif", "--no-vector")
    message = assert_cli_error(result)
    assert f"{package} is not installed" in message and f"jess-geo[{extra}]" in message
    assert list(tmp_path.iterdir()) == []


def test_export_without_onnx_installed(tmp_path: Path, run_cli: Any, assert_cli_error: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    message = assert_cli_error(run_cli("export", DEMO, tmp_path / "m.onnx"))
    assert "onnx is not installed" in message and "jess-geo[onnx]" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tile-size", "250"], "not a positive multiple of 32"),
        (["--opset", "9"], "--opset 9 is not supported"),
        (["--int8"], "--int8 needs --calibration"),
    ],
)
def test_export_refuses_bad_options(args: list[str], expected: str, tmp_path: Path, run_cli: Any, assert_cli_error: Any) -> None:
    assert expected in assert_cli_error(run_cli("export", DEMO, tmp_path / "m.onnx", *args))
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_an_onnx_source_and_a_wrong_suffix(exported: Path, tmp_path: Path, run_cli: Any, assert_cli_error: Any) -> None:
    assert "already an ONNX model" in assert_cli_error(run_cli("export", exported, tmp_path / "again.onnx"))
    assert "does not end in .onnx" in assert_cli_error(run_cli("export", DEMO, tmp_path / "m.pt"))
    assert list(tmp_path.iterdir()) == []


def test_export_upsamples_by_constant_factors_in_the_blocked_layout(exported: Path, tmp_path: Path) -> None:
    """Every decoder upsampling is a Resize by constant x2 scales (no shape arithmetic left), so ONNX
    Runtime runs it as its blocked-layout Upsample instead of leaving that layout around each one."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from jess_geo.inference.onnx_runtime import logits_graph

    proto = onnx.load(str(exported))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 5  # one per decoder block of the demo U-Net
    assert all(len(n.input) == 3 and inits[n.input[2]].tolist() == [1, 1, 2, 2] for n in resizes)
    assert not [n for n in proto.graph.node if n.op_type in ("Shape", "Gather")]

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(logits_graph(exported).model, opts, providers=["CPUExecutionProvider"])
    ops = [(n.domain, n.op_type) for n in onnx.load(opts.optimized_model_filepath).graph.node]
    if ("com.microsoft.nchwc", "Conv") not in ops:
        pytest.skip("ONNX Runtime does not use its blocked layout on this CPU")
    assert ops.count(("com.microsoft.nchwc", "Upsample")) == 5 and ("", "Resize") not in ops


def test_upsampling_factors_are_whole_and_keep_the_bands() -> None:
    from jess_geo.export.onnx_graph import upsampling_factors

    shapes = {"a": [1, 16, 64, 32], "b": [1, 16, 128, 64], "c": [1, 16, 96, 48], "d": [1, 8, 128, 64], "e": [1, 16, None, 64]}
    assert upsampling_factors(shapes, "a", "b") == (2, 2)
    assert upsampling_factors(shapes, "a", "c") is None  # x1.5
    assert upsampling_factors(shapes, "a", "d") is None  # bands change
    assert upsampling_factors(shapes, "a", "e") is None  # size unknown
    assert upsampling_factors(shapes, "a", "missing") is None


def test_metadata_keys_agree_with_the_model_file() -> None:
    from jess_geo.export.onnx_meta import REQUIRED_KEYS
    from jess_geo.models import modelfile

    assert set(REQUIRED_KEYS) == set(modelfile.REQUIRED_KEYS)


def test_graph_edit_without_the_onnx_package_matches_onnx(exported: Path) -> None:
    """The wire-level reader gives the props onnx reads, and a graph onnx accepts: softmax cut, size opened."""
    import onnx

    from jess_geo.export.onnx_meta import read_onnx_properties
    from jess_geo.inference.onnx_runtime import logits_graph

    original = onnx.load(str(exported))
    assert read_onnx_properties(exported) == _props(exported)
    graph = logits_graph(exported)
    edited = onnx.load_from_string(graph.model)
    onnx.checker.check_model(edited)
    # the exported softmax: five nodes after the value named "logits", no Softmax node; the cut
    # keeps every node up to the head's Conv, which makes "logits", and drops only the softmax's
    head = [i for i, n in enumerate(original.graph.node) if "logits" in n.output]
    assert len(head) == 1 and original.graph.node[head[0]].op_type == "Conv"
    assert [n.output for n in edited.graph.node] == [n.output for n in original.graph.node[:head[0] + 1]]
    dropped = sorted(n.op_type for n in original.graph.node[head[0] + 1:])
    assert dropped == sorted(["Constant", "Div", "Exp", "ReduceMax", "ReduceSum", "Sub"])
    assert edited.graph.node[-1].output == ["logits"] and [o.name for o in edited.graph.output] == ["logits"]
    assert [d.dim_param or d.dim_value for d in edited.graph.input[0].type.tensor_type.shape.dim] == ["batch", 3, "height", "width"]
    assert [d.dim_param or d.dim_value for d in edited.graph.output[0].type.tensor_type.shape.dim] == ["batch", 4, "height", "width"]
    assert (graph.batch, graph.channels, graph.height, graph.width) == (None, 3, None, None)
    assert edited.metadata_props == original.metadata_props


def test_graph_ending_in_one_softmax_node_is_cut_there_too() -> None:
    """Files exported before the five-node softmax end in one Softmax: its input is the logits."""
    import onnx
    from onnx import TensorProto, helper

    from jess_geo.inference.onnx_runtime import logits_graph

    w = onnx.numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv_out"], name="head"),
             helper.make_node("Softmax", ["conv_out"], ["probabilities"], axis=1, name="softmax")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 64, 64])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 4, 64, 64])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    edited = onnx.load_from_string(logits_graph(model.SerializeToString()).model)
    onnx.checker.check_model(edited)
    assert [n.name for n in edited.graph.node] == ["head"]
    assert [o.name for o in edited.graph.output] == ["conv_out"]


# A fresh interpreter runs `jess-geo predict` (polygons and cover table by default) with an .onnx
# model and prints which of the heavy packages it loaded.
ONNX_PROBE = r"""
import json, sys
from jess_geo.cli.main import run
code = run(sys.argv[1:])
heavy = ("onnx", "torch", "segmentation_models_pytorch", "timm", "torchvision", "lightning", "torchgeo")
print(json.dumps({"exit": code, "loaded": sorted({m.split(".")[0] for m in sys.modules} & set(heavy))}))
"""


def test_onnx_predict_imports_neither_onnx_nor_torch(exported: Path, tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / "scene_classes.tif"
    proc = subprocess.run([sys.executable, "-c", ONNX_PROBE, "predict", str(SCENE), "--model", str(exported), "-o", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"exit": 0, "loaded": []}
    assert out.exists() and out.with_suffix(".gpkg").exists()
    # The .gpkg goes through jess_geo.io.gpkg_writer (sqlite3): neither pyogrio nor pandas is imported.
    assert json.loads(subprocess.run(
        [sys.executable, "-c", ONNX_PROBE.replace('"torchgeo")', '"torchgeo", "pyogrio", "pandas")'), "predict", str(SCENE),
         "--model", str(exported), "-o", str(tmp_path / "gpkg_classes.tif"), "--quiet"],
        capture_output=True, text=True, timeout=300).stdout.strip().splitlines()[-1])["loaded"] == []


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_concurrent_streams_give_the_same_logits(runtime: str, exported: Path) -> None:
    """A batch split over two concurrent runs (``streams=2``) gives one run's logits, for odd batches too."""
    pytest.importorskip(runtime)
    from jess_geo.inference.onnx_runtime import open_onnx_runtime

    x = np.random.default_rng(1).standard_normal((3, 3, 64, 96), dtype=np.float32)
    one, two = open_onnx_runtime(exported, runtime, "cpu", threads=2), open_onnx_runtime(exported, runtime, "cpu", threads=2, streams=2)
    assert (one.streams, two.streams) == (1, 2)
    ref = one.logits(x)
    assert ref.shape == (3, 4, 64, 96)
    assert np.max(np.abs(two.logits(x) - ref)) < 1e-5
    assert np.max(np.abs(two.logits(x[:1]) - ref[:1])) < 1e-5


def test_batch_size_sets_onnxruntime_streams(exported: Path) -> None:
    """Predict passes its batch size: ONNX Runtime then runs one tile per core at once (never more
    streams than tiles or threads); OpenVINO stays at one stream (measured slower with two)."""
    pytest.importorskip("onnxruntime")
    from jess_geo.inference.onnx_runtime import open_onnx_runtime
    from jess_geo.inference.runtime import open_runtime

    streams = lambda **kw: open_onnx_runtime(exported, "onnxruntime", "cpu", **kw).streams  # noqa: E731
    assert streams(threads=2, batch=4) == 2
    assert streams(threads=4, batch=2) == 2
    assert streams(threads=2, batch=1) == 1
    assert streams(threads=2) == 1  # no batch given: one run on every thread
    assert streams(threads=2, batch=4, streams=1) == 1  # an explicit setting wins
    assert open_runtime(exported, "onnxruntime", "cpu", batch=1).streams == 1
    if importlib.util.find_spec("openvino"):
        assert open_onnx_runtime(exported, "openvino", "cpu", threads=2, batch=4).streams == 1


def test_predict_streams_option(exported: Path, tmp_path: Path, run_cli: Any, assert_cli_error: Any) -> None:
    """`--streams 1` (one run of the batch) and the default (one tile per core at once) write the
    same class raster; --streams with torch or out of range: one line, nothing written."""
    import rasterio

    rasters = []
    for name, extra in (("default", []), ("one", ["--streams", "1"]), ("two", ["--streams", "2"])):
        out = tmp_path / f"{name}_classes.tif"
        result = run_cli("predict", SCENE, "--model", exported, "-o", out, "--no-vector", "--quiet", *extra)
        assert result.exit_code == 0, result.stderr
        with rasterio.open(out) as src:
            rasters.append(src.read(1))
    assert all((r == rasters[0]).all() for r in rasters[1:])
    bad = tmp_path / "bad"
    bad.mkdir()
    message = assert_cli_error(run_cli("predict", SCENE, "--streams", "2", "-o", bad / "t_classes.tif"))
    assert "--streams" in message and "--runtime torch" in message
    message = assert_cli_error(run_cli("predict", SCENE, "--model", exported, "--streams", "0", "-o", bad / "z_classes.tif"))
    assert "--streams 0 is out of range" in message
    assert list(bad.iterdir()) == []


# A fresh process whose very first batch is split over two OpenVINO streams.
OV_FIRST_BATCH = r"""
import sys
import numpy as np
from jess_geo.inference.onnx_runtime import open_onnx_runtime
rt = open_onnx_runtime(sys.argv[1], "openvino", "cpu", threads=2, streams=2)
print(rt.logits(np.zeros((2, 3, 64, 64), dtype=np.float32)).shape)
"""


def test_openvino_first_two_stream_batch_does_not_hang(exported: Path) -> None:
    """Two streams meeting OpenVINO's NumPy bridge at once deadlocked the process: before the fix,
    2 of 8 fresh processes run one after another hung on their first batch. Eight in a row all finish."""
    pytest.importorskip("openvino")
    import subprocess

    outcomes = []
    for _ in range(8):  # one at a time: processes competing for the cores rarely meet the race
        try:
            p = subprocess.run([sys.executable, "-c", OV_FIRST_BATCH, str(exported)], capture_output=True, text=True, timeout=90)
            outcomes.append((p.returncode, p.stdout.strip(), p.stderr.strip()[-300:]))
        except subprocess.TimeoutExpired:
            outcomes.append(("hung", "", ""))
    assert [o[:2] for o in outcomes] == [(0, "(2, 4, 64, 64)")] * 8, outcomes
