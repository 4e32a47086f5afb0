"""Training losses for rare classes: what each one rewards, ignored pixels, the config and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from jess_geo.classes import IGNORE
from jess_geo.errors import ConfigError
from jess_geo.training.config import LossConfig, config_from_mapping, load_config
from jess_geo.training.losses import (
    LOSSES, class_weights, cross_entropy, dice_loss, focal_loss, lovasz_softmax, make_criterion,
)
from jess_geo.training.metrics import confusion_matrix, metrics_from_confusion


def _batch(seed: int = 0, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 16, 16, generator=g)
    target = torch.randint(0, classes, (2, 16, 16), generator=g)
    return logits, target


def test_class_weights_favour_rare_classes_and_are_clipped() -> None:
    w = class_weights([10_000, 1_000, 10, 0], max_ratio=10.0)
    assert w[2] > w[1] > w[0]
    assert float(w[0] / w[1]) == pytest.approx(0.1 ** 0.5, rel=1e-5)  # sqrt(median frequency / frequency)
    assert float(w[2] / w[1]) == pytest.approx(10.0, rel=1e-5)  # sqrt(100) = 10: at the clip
    # pixel-weighted mean is 1: the loss stays on plain cross-entropy's scale
    f = torch.tensor([10_000, 1_000, 10], dtype=torch.float64) / 11_010
    assert float((w[:3].double() * f).sum()) == pytest.approx(1.0, rel=1e-5)


def test_weighted_ce_gives_a_rare_class_a_larger_gradient() -> None:
    counts = [9_000, 900, 100]
    logits = torch.zeros(1, 3, 1, 2, requires_grad=True)
    target = torch.tensor([[[0, 2]]])  # one common pixel, one rare pixel
    grads = {}
    for name in ("ce", "wce"):
        logits.grad = None
        make_criterion(LossConfig(name=name), counts)(logits, target).backward()
        g = logits.grad[0].abs().sum(0)[0]
        grads[name] = float(g[1] / g[0])  # rare pixel's gradient relative to the common pixel's
    assert grads["ce"] == pytest.approx(1.0)
    assert grads["wce"] > 5.0


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_get_no_gradient(name: str) -> None:
    logits, target = _batch()
    target[:, :8] = IGNORE
    logits.requires_grad_(True)
    loss = make_criterion(LossConfig(name=name), [100, 50, 20, 5])(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert float(logits.grad[:, :, :8].abs().max()) == 0.0
    assert float(logits.grad[:, :, 8:].abs().max()) > 0.0


@pytest.mark.parametrize("name", LOSSES)
def test_a_crop_without_labels_gives_zero_loss(name: str) -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = make_criterion(LossConfig(name=name), [1, 1, 1])(logits, torch.full((1, 4, 4), IGNORE))
    loss.backward()
    assert float(loss.detach()) == 0.0


def test_focal_with_gamma_zero_is_cross_entropy_and_discounts_easy_pixels() -> None:
    logits, target = _batch(1)
    assert float(focal_loss(logits, target, gamma=0.0)) == pytest.approx(float(cross_entropy(logits, target)), rel=1e-5)
    assert float(focal_loss(logits, target, gamma=2.0)) < float(cross_entropy(logits, target))


def test_lovasz_softmax_of_hard_predictions_is_one_minus_iou() -> None:
    """On one-hot probabilities the Lovász extension equals the Jaccard loss: 1 - mean IoU (classes present)."""
    _, target = _batch(2)
    pred = target.clone()
    pred[0, :5] = (pred[0, :5] + 1) % 4  # some errors
    logits = 60.0 * torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float()
    miou = metrics_from_confusion(confusion_matrix(pred, target, 4), list("abcd"))["miou"]
    assert float(lovasz_softmax(logits, target)) == pytest.approx(1.0 - miou, abs=1e-4)
    perfect = 60.0 * torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float()
    assert float(lovasz_softmax(perfect, target)) == pytest.approx(0.0, abs=1e-4)
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-3)


def test_loss_setting_loads_flat_nested_and_from_flags() -> None:
    assert config_from_mapping({}).loss.name == "ce"  # old configs and model records: today's loss
    assert config_from_mapping({"loss": "focal", "focal_gamma": 1.5}).loss == LossConfig("focal", 1.5)
    assert config_from_mapping({"loss": {"name": "ce+dice", "region_weight": 0.5}}).loss.region_weight == 0.5
    assert load_config(None, {"loss": "wce", "balance": 0.5}).data.balance == 0.5
    with pytest.raises(ConfigError, match=r"^Invalid training setting loss: must be ce, wce"):
        load_config(None, {"loss": "dice"})  # named as the user wrote it
    with pytest.raises(ConfigError, match="data.balance: must be in"):
        config_from_mapping({"data": {"balance": 1.5}})


@pytest.mark.slow
def test_train_with_focal_loss_records_it_in_info(sample_train, tiny_config, run_cli, tmp_path) -> None:
    out = tmp_path / "run"
    proc = run_cli("train", "--images", sample_train["images"], "--masks", sample_train["masks"],
                   "--classes", sample_train["classes"], "--config", tiny_config(tmp_path / "cfg"),
                   "--output-dir", out, "--epochs", 1, "--loss", "focal", "--balance", 0.5, "--quiet")
    assert proc.returncode == 0, proc.stderr
    info = run_cli("info", out / "model.pt", "--json")
    assert info.returncode == 0, info.stderr
    training = json.loads(info.stdout)["training"]
    assert training["loss"]["name"] == "focal"
    assert training["data"]["balance"] == 0.5


def test_unknown_loss_flag_is_one_line(sample_train, run_cli, tmp_path) -> None:
    proc = run_cli("train", "--images", sample_train["images"], "--masks", sample_train["masks"],
                   "--output-dir", tmp_path / "run", "--loss", "dice")
    assert proc.returncode == 2
    assert "Invalid value for '--loss'" in proc.stderr
    assert not (tmp_path / "run").exists()
