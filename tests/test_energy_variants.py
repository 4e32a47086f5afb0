"""Forms of the JESS energy term (per-image energies, a margin) and the reference code's BatchNorm passes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable

import pytest
import torch

from jess_geo.training.energy import energy_term, free_energy, image_energy, jess_energy_loss

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _logits(seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 4, 8, 8, generator=g) * 2.0 + shift


def test_pixel_form_without_margin_is_the_shipped_term() -> None:
    lt, ls = _logits(0), _logits(1)
    valid = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.3
    shipped = jess_energy_loss(free_energy(lt), free_energy(ls), valid, None, reg=1e-3)
    for a, b in zip(energy_term(lt, ls, valid, None, 1e-3, "pixel", None), shipped):
        assert torch.equal(a, b)


def test_image_energy_is_the_free_energy_of_the_mean_valid_logits() -> None:
    logits = _logits(3)
    valid = torch.zeros(3, 8, 8, dtype=torch.bool)
    valid[:, :4] = True
    expected = -torch.logsumexp(logits[:, :, :4].mean(dim=(2, 3)), dim=1)
    assert torch.allclose(image_energy(logits, valid), expected, atol=1e-6)
    changed = logits.clone()
    changed[:, :, 4:] += 50.0  # invalid pixels do not count
    assert torch.allclose(image_energy(changed, valid), expected, atol=1e-6)
    # and it is not the per-pixel mean: averaging logits before the logsumexp gives a higher energy
    assert (image_energy(logits, valid) > free_energy(logits)[:, :4].mean(dim=(1, 2))).all()


def test_margin_stops_pulling_once_the_target_is_that_far_below() -> None:
    ls = _logits(4)
    low = _logits(5, shift=4.0).requires_grad_()  # target logits high: its energy far below the source's
    loss, et, es = energy_term(low, ls, reg=0.0, margin=1.0)
    assert float(et - es) < -1.0 and float(loss) == 0.0
    loss.backward()
    assert low.grad is not None and float(low.grad.abs().sum()) == 0.0
    high = _logits(6, shift=-4.0)  # target energy above the source's: hinge = gap + margin
    loss, et, es = energy_term(high, ls, reg=0.0, margin=1.0)
    assert float(loss) == pytest.approx(float(et - es) + 1.0, rel=1e-6)
    for kind in ("pixel", "image"):  # the open-ended gap keeps pulling either way
        loss, et, es = energy_term(low, ls, reg=0.0, kind=kind)
        assert float(loss) == pytest.approx(float(et - es), rel=1e-6)


def test_unknown_form_is_refused() -> None:
    with pytest.raises(ValueError, match="energy must be one of"):
        energy_term(_logits(0), _logits(1), kind="voxel")


def test_separate_passes_normalise_each_batch_alone_and_update_the_statistics_in_turn() -> None:
    from jess_geo.training.batchnorm import batchnorm_layers, separate_passes

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1)).train()
    ref = copy.deepcopy(net)
    xs, xc, xt = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16) + 1.0, torch.randn(2, 3, 16, 16) * 0.3 + 2.0
    out_s, out_c, out_t = separate_passes(net, xs, xc, xt)
    alone_t, alone_c, alone_s = ref(xt), ref(xc), ref(xs)  # the same order, one batch at a time
    assert torch.allclose(out_t, alone_t) and torch.allclose(out_c, alone_c) and torch.allclose(out_s, alone_s)
    bn, bn_ref = batchnorm_layers(net)[0], batchnorm_layers(ref)[0]
    assert torch.allclose(bn.running_mean, bn_ref.running_mean) and int(bn.num_batches_tracked) == 3
    # the running statistics are a mix: neither a fresh source-only nor a target-only estimate
    only_s = copy.deepcopy(ref)
    batchnorm_layers(only_s)[0].reset_running_stats()
    only_s(xs)
    assert not torch.allclose(bn.running_mean, batchnorm_layers(only_s)[0].running_mean)


def test_settings_are_checked(tmp_path: Path, run_cli: Callable, assert_cli_error: Callable) -> None:
    from jess_geo.training.config import config_from_mapping

    cfg = config_from_mapping({"method": "jess", "energy": "image", "margin": 0.5, "jess_batchnorm": "passes"})
    assert (cfg.jess.energy, cfg.jess.margin, cfg.jess.batchnorm) == ("image", 0.5, "passes")
    bad = tmp_path / "bad.yaml"
    bad.write_text("jess:\n  energy: voxel\n")
    res = run_cli("train", "--config", bad, "--images", SAMPLE / "train" / "images", "--masks", SAMPLE / "train" / "masks",
                  "--classes", SAMPLE / "classes.json", "--output-dir", tmp_path / "out")
    message = assert_cli_error(res)
    assert "jess.energy: must be pixel or image, got 'voxel'" in message
    assert not (tmp_path / "out").exists()


def test_jess_run_with_image_energy_margin_and_three_passes(tmp_path: Path, run_cli: Callable, tiny_config: Callable) -> None:
    """A real (seconds-long) JESS training run in the reference code's BatchNorm passes with the
    per-image hinge; the model records the settings and its target energy was measured."""
    cfg = tiny_config(tmp_path / "cfg", method="jess", jess={"energy": "image", "margin": 0.5, "batchnorm": "passes"},
                      samples_per_epoch=8)
    out = tmp_path / "run"
    res = run_cli("train", "--config", cfg, "--images", SAMPLE / "train" / "images", "--masks", SAMPLE / "train" / "masks",
                  "--classes", SAMPLE / "classes.json", "--target-images", SAMPLE / "train" / "images",
                  "--output-dir", out, "--epochs", "1", "--quiet", "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(run_cli("info", out / "model.pt", "--json").stdout)
    jess = info["training"]["jess"]
    assert (jess["energy"], jess["margin"], jess["batchnorm"]) == ("image", 0.5, "passes")
    rows = (out / "curves.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert float(last[header.index("train_energy_target")]) < 0  # the term was computed on the target crops
