"""Training on two processes with Lightning DDP (gloo, CPU): one set of files, exact metrics.

DDP starts one process per device by re-running the command line, so this case runs the real
console script in a subprocess (an in-process run would re-run pytest).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from jess_geo.classes import load_class_table
from jess_geo.data.datamodule import LoaderSettings, SceneDataModule
from jess_geo.data.scenes import load_scene, pair_files, split_files
from jess_geo.models.layout import fast_input, to_fast_layout
from jess_geo.models.modelfile import load_model_file
from jess_geo.training.metrics import confusion_matrix


def _single_process_confusion(model_path: Path, sample_train: dict[str, Path], val_crop: int) -> np.ndarray:
    """The validation confusion matrix of ``model_path`` computed here, in one process, on the
    same validation image and the same grid windows as training validates on."""
    loaded = load_model_file(model_path)
    meta = loaded.metadata
    classes = load_class_table(sample_train["classes"])
    _, val_pairs = split_files(pair_files(sample_train["images"], sample_train["masks"]), 0.2, seed=0)
    val = [load_scene(i, m, classes, None, meta["resolution"]) for i, m in val_pairs]
    dm = SceneDataModule([], val, [], meta["normalization"], LoaderSettings(64, val_crop, 4, 16, 0))
    net = to_fast_layout(loaded.model.eval(), torch.device("cpu"))
    cm = torch.zeros((len(classes), len(classes)), dtype=torch.long)
    with torch.no_grad():
        for batch in dm.val_dataloader()[0]:
            logits = net(fast_input(batch["image"], torch.device("cpu"))).float()
            cm += confusion_matrix(logits.argmax(1), batch["mask"], len(classes))
    return cm.numpy()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_model_and_exact_metrics_and_resumes(
    sample_train: dict[str, Path], tiny_config: Callable, cli_command: list[str], tmp_path: Path,
) -> None:
    config = tiny_config(tmp_path / "cfg", samples_per_epoch=8)
    out = tmp_path / "run"

    def train(epochs: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cli_command, "train", "--images", sample_train["images"], "--masks", sample_train["masks"],
             "--classes", sample_train["classes"], "--config", config, "--output-dir", out, "--epochs", str(epochs),
             "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--quiet", "--json"],
            cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=900,
        )

    proc = train(1)
    assert proc.returncode == 0, proc.stderr
    printed = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(printed) == 1  # rank zero reports, rank one does not
    assert sorted(p.name for p in tmp_path.rglob("model.pt")) == ["model.pt"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.pt", "metrics.json", "best_metrics.json", "curves.csv", "curves.png", "confusion_matrix.png",
         "run_config.json", "checkpoints"])
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["last.ckpt"]
    assert not [p for p in tmp_path.rglob("*") if ".part-" in p.name]
    metrics = json.loads((out / "metrics.json").read_text())
    ddp_cm = np.array(metrics["validation"]["confusion_matrix"])
    np.testing.assert_array_equal(ddp_cm, _single_process_confusion(out / "model.pt", sample_train, 128))
    assert metrics["val_accuracy"] == pytest.approx(np.trace(ddp_cm) / ddp_cm.sum())
    assert json.loads(printed[0])["val_miou"] == pytest.approx(metrics["val_miou"])

    # Resume under DDP: a larger --epochs continues from last.ckpt, still one set of files.
    again = train(2)
    assert again.returncode == 0, again.stderr
    assert [r.split(",")[0] for r in (out / "curves.csv").read_text().splitlines()[1:]] == ["1", "2"]
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
    assert sorted(p.name for p in tmp_path.rglob("model.pt")) == ["model.pt"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["last.ckpt"]
