"""Real `jess-geo train` / `evaluate` / `info` runs on the sample data (tiny model, seconds per epoch).

Everything runs in-process through ``run_cli`` except the SIGTERM case, which needs a real
process to signal.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from jess_geo.classes import IGNORE, load_class_table
from jess_geo.data.normalization import compute_stats
from jess_geo.data.scenes import load_scene, pair_files, split_files
from jess_geo.io.raster import open_raster, read_label, read_valid
from jess_geo.models.modelfile import load_model_file, read_metadata


def _curves(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, sample_train: dict[str, Path], tiny_config: Callable,
                run_cli: Callable) -> dict[str, Any]:
    """One real `jess-geo train --epochs 1 --json` on the sample data, in-process; its config
    writes `lr: 1e-3`, which YAML 1.1 reads as a string."""
    base = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(base / "config")
    cfg.write_text(cfg.read_text() + "lr: 1e-3\n")
    out = base / "run"
    proc = run_cli("train", "--images", sample_train["images"], "--masks", sample_train["masks"],
                   "--classes", sample_train["classes"], "--config", cfg, "--output-dir", out,
                   "--epochs", 1, "--quiet", "--json")
    assert proc.exit_code == 0, proc.stderr
    return {"out": out, "model": out / "model.pt", "config": cfg, "stdout": proc.stdout, "stderr": proc.stderr}


def _validation_pixels(sample_train: dict[str, Path], meta: dict[str, Any]) -> int:
    """Labelled, valid pixels of the validation images at the working resolution."""
    classes = load_class_table(sample_train["classes"])
    _, val_pairs = split_files(pair_files(sample_train["images"], sample_train["masks"]), 0.2, seed=0)
    scenes = [load_scene(i, m, classes, None, meta["resolution"]) for i, m in val_pairs]
    return sum(int((s.target != IGNORE).sum()) for s in scenes)


def test_train_writes_model_metrics_curves_and_plots(trained_run: dict[str, Any], sample_train: dict[str, Path]) -> None:
    out: Path = trained_run["out"]
    for name in ("model.pt", "metrics.json", "curves.csv", "curves.png", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    for png in ("curves.png", "confusion_matrix.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.size[0] > 100
    assert not [p.name for p in out.rglob("*") if ".part-" in p.name]  # no temporaries left
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["best_epoch"] == 1
    val = metrics["validation"]
    assert set(val["per_class"]) == {"bare soil", "cyanobacteria crust", "lichen", "moss"}
    cm = np.array(val["confusion_matrix"])
    # Every labelled pixel of the validation image is scored exactly once (no window twice, none left out).
    assert cm.shape == (4, 4) and cm.sum() == val["pixels"] == _validation_pixels(sample_train, read_metadata(out / "model.pt"))
    assert metrics["val_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert metrics["config"]["optim"]["lr"] == 0.001  # `lr: 1e-3` (a YAML 1.1 string) read as a number
    rows = _curves(out / "curves.csv")
    assert [r["epoch"] for r in rows] == ["1"] and float(rows[0]["val_accuracy"]) == pytest.approx(metrics["val_accuracy"])
    printed = json.loads(trained_run["stdout"])  # --json: one JSON object on stdout
    assert printed["val_miou"] == pytest.approx(metrics["val_miou"])
    assert "Traceback" not in trained_run["stderr"]


def test_model_file_carries_training_statistics(trained_run: dict[str, Any], sample_train: dict[str, Path]) -> None:
    meta = read_metadata(trained_run["model"])
    classes = load_class_table(sample_train["classes"])
    assert meta["classes"] == classes.to_list() and meta["bands"] == [1, 2, 3] and meta["ignore_index"] == 255
    assert meta["architecture"]["in_channels"] == 3 and meta["architecture"]["num_classes"] == 4
    # The normalisation is the statistics of the training files (not of the validation file).
    train_pairs, val_pairs = split_files(pair_files(sample_train["images"], sample_train["masks"]), 0.2, seed=0)
    resolution = meta["resolution"]
    train = [load_scene(i, m, classes, None, resolution) for i, m in train_pairs]
    expected = compute_stats(train, seed=0)
    np.testing.assert_allclose(meta["normalization"]["mean"], expected["mean"], rtol=1e-6)
    np.testing.assert_allclose(meta["normalization"]["std"], expected["std"], rtol=1e-6)
    assert sorted(Path(p).name for p in meta["provenance"]["train_images"]) == sorted(i.name for i, _ in train_pairs)
    assert [Path(p).name for p in meta["provenance"]["val_images"]] == [i.name for i, _ in val_pairs]
    assert meta["metrics"]["val_accuracy"] == pytest.approx(json.loads((trained_run["out"] / "metrics.json").read_text())["val_accuracy"])
    assert load_model_file(trained_run["model"]).model.training is False


def test_info_shows_the_metadata(trained_run: dict[str, Any], run_cli: Callable) -> None:
    model = trained_run["model"]
    as_json = run_cli("info", model, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    meta = json.loads(as_json.stdout)
    assert meta == read_metadata(model)
    assert meta["training"]["trainer"]["epochs"] == 1 and meta["training"]["data"]["crop_size"] == 64  # nested record
    text = run_cli("info", model)
    assert text.exit_code == 0, text.stderr
    assert "normalisation mean" in text.stdout and f"{meta['normalization']['mean'][0]}" in text.stdout
    assert "cyanobacteria crust" in text.stdout and "#5b4a3f" in text.stdout


def _labelled_pixels(images: Path, masks: Path) -> int:
    total = 0
    for img, msk in pair_files(images, masks):
        with open_raster(img) as src:
            valid = read_valid(src)
        with open_raster(msk) as src:
            labels = read_label(src)
            nodata = src.nodata
        total += int((valid & (labels != (255 if nodata is None else int(nodata)))).sum())
    return total


def test_evaluate_prints_all_metrics(trained_run: dict[str, Any], sample_train: dict[str, Path], run_cli: Callable, tmp_path: Path) -> None:
    png = tmp_path / "cm.png"
    proc = run_cli("evaluate", trained_run["model"], "--images", sample_train["images"], "--masks", sample_train["masks"],
                    "--json", "--confusion-png", png)
    assert proc.exit_code == 0, proc.stderr
    m = json.loads(proc.stdout)
    for key in ("accuracy", "miou", "precision_macro", "recall_macro", "f1_macro", "per_class", "confusion_matrix"):
        assert key in m, key
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == m["pixels"]
    # Scored at native resolution on every labelled, valid pixel -- nodata is left out.
    assert m["pixels"] == _labelled_pixels(sample_train["images"], sample_train["masks"])
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    ious = [c["iou"] for c in m["per_class"].values() if c["iou"] is not None]
    assert m["miou"] == pytest.approx(sum(ious) / len(ious))
    for i, (name, c) in enumerate(m["per_class"].items()):
        tp, truth, pred = cm[i, i], cm[i].sum(), cm[:, i].sum()
        if truth:
            assert c["iou"] == pytest.approx(tp / (truth + pred - tp)) and c["support"] == truth
    assert set(m["images"]) == {"plot_a.tif", "plot_b.tif", "plot_c.tif"}
    with Image.open(png) as im:
        assert im.format == "PNG"
    text = run_cli("evaluate", trained_run["model"], "--images", sample_train["images"], "--masks", sample_train["masks"])
    assert text.exit_code == 0, text.stderr
    assert "overall accuracy" in text.stdout and "macro P / R / F1" in text.stdout and "confusion matrix" in text.stdout


@pytest.mark.slow
def test_same_seed_gives_the_same_metrics(trained_run: dict[str, Any], sample_train: dict[str, Path], run_cli: Callable, tmp_path: Path) -> None:
    out = tmp_path / "again"
    proc = run_cli("train", "--images", sample_train["images"], "--masks", sample_train["masks"],
                    "--classes", sample_train["classes"], "--config", trained_run["config"], "--output-dir", out,
                    "--epochs", 1, "--quiet")
    assert proc.exit_code == 0, proc.stderr
    first = json.loads((trained_run["out"] / "metrics.json").read_text())
    second = json.loads((out / "metrics.json").read_text())
    assert second["validation"]["confusion_matrix"] == first["validation"]["confusion_matrix"]
    assert second["val_miou"] == first["val_miou"]
    assert read_metadata(out / "model.pt")["normalization"] == read_metadata(trained_run["model"])["normalization"]


def _wait_for_epoch(proc: subprocess.Popen, curves: Path, beyond: int, timeout: float = 900) -> int:
    """Poll curves.csv until it records an epoch above ``beyond``; returns the highest epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        epochs = [int(r["epoch"]) for r in _curves(curves)]
        if epochs and max(epochs) > beyond:
            return max(epochs)
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"training ended early (exit {proc.returncode}): {err}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no epoch finished in time")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("jess-geo: error: ") and "SIGTERM" in lines[0], err
    return lines[0]


def _checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


@pytest.mark.slow
@pytest.mark.trust
def test_sigterm_then_the_same_command_resumes(sample_train: dict[str, Path], tiny_config: Callable, cli_command: list[str], tmp_path: Path) -> None:
    """The real console script, stopped with SIGTERM twice: the stop line says what was kept,
    one `last.ckpt` (never `last-v1.ckpt`), and a later larger `--epochs` continues from the
    newest checkpoint."""
    out = tmp_path / "run"
    cmd = [*cli_command, "train", "--images", str(sample_train["images"]), "--masks", str(sample_train["masks"]),
           "--classes", str(sample_train["classes"]), "--config", str(tiny_config(tmp_path / "cfg")),
           "--output-dir", str(out), "--epochs", "50", "--quiet"]

    def start() -> subprocess.Popen:
        return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start()
    _wait_for_epoch(first, out / "curves.csv", beyond=0)
    line = _stop(first)
    rows = _curves(out / "curves.csv")
    best = json.loads((out / "best_metrics.json").read_text())
    assert line == (f"jess-geo: error: Stopped by SIGTERM; kept {out / 'model.pt'} (best epoch {best['epoch']}, "
                    f"val mIoU {100 * best['val_miou']:.1f} %) and {out / 'checkpoints' / 'last.ckpt'}; "
                    f"run the same command to resume.")
    assert _checkpoints(out) == ["last.ckpt"] and (out / "model.pt").is_file()
    assert not (out / "metrics.json").exists()  # the run did not finish
    done = max(int(r["epoch"]) for r in rows)
    step = max(int(r["step"]) for r in rows)

    second = start()  # the very same command
    _wait_for_epoch(second, out / "curves.csv", beyond=done)
    _stop(second)
    assert _checkpoints(out) == ["last.ckpt"]  # the restart replaced it: no last-v1.ckpt
    resumed = _curves(out / "curves.csv")
    epochs = [int(r["epoch"]) for r in resumed]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > done  # continued, not restarted at 1
    assert resumed[: len(rows)] == rows  # the first run's rows are kept
    new = resumed[len(rows)]
    assert int(new["step"]) > step  # the optimiser step count carried over

    # A larger --epochs resumes from the newest checkpoint: one more epoch after the second stop.
    last = max(epochs)
    cmd[cmd.index("--epochs") + 1] = str(last + 1)
    third = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == last + 1
    assert metrics["best_epoch"] is not None and metrics["validation"]["pixels"] > 0
    assert [int(r["epoch"]) for r in _curves(out / "curves.csv")] == list(range(1, last + 2))
    assert read_metadata(out / "model.pt")["metrics"]["epoch"] == metrics["best_epoch"]
    assert (out / "confusion_matrix.png").is_file() and (out / "curves.png").is_file()
    assert _checkpoints(out) == ["last.ckpt"]


def test_evaluate_refuses_labels_the_model_does_not_know(trained_run: dict[str, Any], write_raster: Callable, tmp_path: Path) -> None:
    from jess_geo.errors import InputError
    from jess_geo.training.evaluate import evaluate_model

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_raster(tmp_path / "images" / "x.tif", np.full((3, 64, 64), 120, np.uint8))
    labels = np.zeros((64, 64), np.uint8)
    labels[0, 0] = 9
    write_raster(tmp_path / "masks" / "x.tif", labels)
    with pytest.raises(InputError) as exc:
        evaluate_model(trained_run["model"], tmp_path / "images", tmp_path / "masks")
    assert "[9]" in str(exc.value) and "\n" not in str(exc.value)
