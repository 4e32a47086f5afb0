"""Shift detection: `jess-geo check`, predict's shift notice, feature_stats in the model file (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_data" / "scene.tif"
DEMO = ROOT / "jess_geo" / "assets" / "demo_model.pt"
NOTICE = "looks unlike the model's training data"


def _shifted_copy(dst: Path, gain: tuple[float, float, float] = (1.3, 1.0, 0.6), contrast: float = 0.6,
                  blur: float = 2.5) -> Path:
    """The sample scene as another camera would see it: warmer, flatter, blurred (same grid and CRS)."""
    import rasterio
    from PIL import Image, ImageFilter

    with rasterio.open(SCENE) as src:
        profile, a = src.profile, src.read().astype(np.float32)
    a = (a * np.asarray(gain, np.float32)[:, None, None] - 128.0) * contrast + 128.0
    bands = [Image.fromarray(np.clip(b, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur)) for b in a]
    with rasterio.open(dst, "w", **profile) as out:
        out.write(np.stack([np.asarray(b) for b in bands]))
    return dst


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _shifted_copy(tmp_path_factory.mktemp("shift") / "shifted.tif")


def test_check_json_scores_the_shifted_copy_higher(run_cli: Callable[..., Any], shifted: Path) -> None:
    proc = run_cli("check", DEMO, SCENE, shifted, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["reference"] == "fallback"  # the demo model predates feature_stats
    assert {"model", "metric", "threshold", "suggested_method", "scenes"} <= set(out)
    same, moved = out["scenes"]
    assert set(same) == {"scene", "score", "entropy", "energy", "tiles", "tiles_total", "shifted"}
    assert (same["scene"], moved["scene"]) == ("scene.tif", "shifted.tif")
    assert moved["score"] > 2 * same["score"]
    assert same["shifted"] is False and moved["shifted"] is True
    assert 1 <= same["tiles"] <= same["tiles_total"]


def test_check_text_suggests_adapt_and_fail_on_shift(run_cli: Callable[..., Any], shifted: Path) -> None:
    proc = run_cli("check", DEMO, SCENE, shifted, "--max-tiles", 1, "--fail-on-shift")
    assert proc.returncode == 3, proc.stderr  # 0 without --fail-on-shift (test above)
    lines = proc.stdout.splitlines()
    assert "BatchNorm running statistics" in lines[0]
    assert lines[1].startswith("scene.tif: shift score") and lines[1].endswith("looks like the training data")
    assert "1/2 tiles" in lines[1]
    assert "new camera or season" in lines[2] and "jess-geo adapt" in lines[2] and "--target-images" in lines[2]
    assert run_cli("check", DEMO, SCENE, "--max-tiles", 1, "--fail-on-shift").returncode == 0


def test_check_bad_input_is_one_line(run_cli: Callable[..., Any], assert_cli_error: Callable[..., str], tmp_path: Path) -> None:
    assert "does not exist" in assert_cli_error(run_cli("check", DEMO, tmp_path / "nothere.tif"))
    assert "ONNX" in assert_cli_error(run_cli("check", tmp_path / "m.onnx", SCENE))
    assert "--max-tiles" in assert_cli_error(run_cli("check", DEMO, SCENE, "--max-tiles", 0))


def test_predict_notice_only_for_the_shifted_scene(run_cli: Callable[..., Any], shifted: Path, tmp_path: Path) -> None:
    moved = run_cli("predict", shifted, "--model", DEMO, "-o", tmp_path / "s_classes.tif", "--no-vector", "--quiet")
    assert moved.returncode == 0, moved.stderr
    assert NOTICE in moved.stderr and "jess-geo check" in moved.stderr
    same = run_cli("predict", SCENE, "--model", DEMO, "-o", tmp_path / "c_classes.tif", "--no-vector", "--quiet")
    assert same.returncode == 0, same.stderr
    assert NOTICE not in same.stderr + same.stdout


def test_trained_model_carries_feature_stats(trained_run: dict[str, Any], run_cli: Callable[..., Any]) -> None:
    from jess_geo.models.modelfile import read_metadata

    stats = read_metadata(trained_run["model"])["feature_stats"]
    assert stats["kind"] == "batchnorm_inputs" and stats["source"] == "training crops" and stats["crops"] >= 1
    assert len(stats["layers"]) >= 2
    assert all(len(layer["mean"]) == len(layer["var"]) > 0 for layer in stats["layers"])
    proc = run_cli("check", trained_run["model"], SCENE, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["reference"] == "stored"


def test_old_model_loads_and_bad_feature_stats_are_refused(tmp_path: Path, run_cli: Callable[..., Any],
                                                           assert_cli_error: Callable[..., str]) -> None:
    import torch

    from jess_geo.models.modelfile import read_metadata

    assert "feature_stats" not in read_metadata(DEMO)  # an old file: still loads
    payload = torch.load(DEMO, map_location="cpu", weights_only=True)
    meta = json.loads(payload["metadata"])
    meta["feature_stats"] = {"kind": "batchnorm_inputs", "layers": [{"name": "encoder.bn1", "mean": [0.0, 1.0], "var": [1.0, -2.0]}]}
    payload["metadata"] = json.dumps(meta)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    message = assert_cli_error(run_cli("check", bad, SCENE))
    assert "feature_stats.layers[0].var" in message
