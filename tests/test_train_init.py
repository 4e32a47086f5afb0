"""`jess-geo train --init MODEL`: fine-tune a model file's weights, classes and normalisation on new labels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch

from jess_geo.models.modelfile import read_metadata


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_fine_tunes_the_model_file(
    tmp_path: Path, trained_run: dict[str, Any], sample_train: dict[str, Path], run_cli: Callable[..., Any]
) -> None:
    base = trained_run["model"]
    out = tmp_path / "tuned"
    proc = run_cli("train", "--init", base, "--images", sample_train["images"], "--masks", sample_train["masks"],
                   "--config", trained_run["config"], "--output-dir", out, "--epochs", 1, "--quiet", cwd=tmp_path)
    assert proc.exit_code == 0, proc.stderr
    assert f"init:     model.pt (sha256 {_sha256(base)[:12]})" in proc.stdout
    old, new = read_metadata(base), read_metadata(out / "model.pt")
    assert new["init_model"] == {"name": "model.pt", "path": str(base.resolve()), "sha256": _sha256(base)}
    assert new["adaptation"] is None
    for key in ("classes", "normalization", "bands", "architecture", "resolution"):
        assert new[key] == old[key], key
    assert new["training"]["optim"]["lr"] == 2e-4  # fine-tuning default, not the from-scratch one
    w0 = torch.load(base, weights_only=True)["state_dict"]
    w1 = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    moved = [k for k in w0 if w0[k].is_floating_point() and not torch.equal(w0[k].float(), w1[k].float())]
    assert moved, "fine-tuning changed no weight"


def test_init_refuses_what_the_model_fixes(
    tmp_path: Path, trained_run: dict[str, Any], sample_train: dict[str, Path], run_cli: Callable[..., Any],
    assert_cli_error: Callable[..., str],
) -> None:
    base = trained_run["model"]
    common = ["--images", sample_train["images"], "--masks", sample_train["masks"], "--quiet"]
    msg = assert_cli_error(run_cli("train", "--init", base, *common, "--classes", sample_train["classes"],
                                   "--output-dir", tmp_path / "a"))
    assert "--init keeps the model's class table; drop --classes." in msg
    msg = assert_cli_error(run_cli("train", "--init", base, *common, "--output-dir", base.parent))
    assert "base model" in msg and not (tmp_path / "a").exists()
    proc = run_cli("train", "--init", tmp_path / "missing.pt", *common, "--output-dir", tmp_path / "b")
    assert proc.exit_code != 0 and "Traceback" not in proc.stderr and not (tmp_path / "b").exists()
