"""JESS: the energy term's sign and gradient, its squared-energy guard, `jess-geo adapt`, bad input."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from jess_geo.training.energy import free_energy, jess_energy_loss, masked_mean
from jess_geo.training.task import SegmentationTask

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
TINY = {"photo_scale": 1.0, "crop_size": 64, "batch_size": 4, "epochs": 1, "samples_per_epoch": 8,
        "decoder_channels": [16, 16, 16, 16, 16], "encoder_weights": "none", "val_crop": 128}


class TinyNet(torch.nn.Module):
    """Two convolutions: enough to tell two input distributions apart, fast to train."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _domains(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source images with labels from the first band's sign; target = the same kind, shifted and dimmer."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n, 3, 16, 16, generator=g)
    ys = (xs[:, 0] > 0).long() + (xs[:, 1] > 1).long()
    xt = 0.6 * torch.randn(n, 3, 16, 16, generator=g) + torch.tensor([1.0, -0.5, 0.5]).view(1, 3, 1, 1)
    return xs, ys, xt


def _gap(net: torch.nn.Module, xs: torch.Tensor, xt: torch.Tensor) -> float:
    with torch.no_grad():
        return float(free_energy(net(xt)).mean() - free_energy(net(xs)).mean())


def test_free_energy_and_gap_gradient_sign() -> None:
    logits = torch.tensor([[[[0.0]], [[0.0]]]])  # two classes, equal logits: E = -log 2
    assert torch.allclose(free_energy(logits), torch.tensor([[[-np.log(2.0)]]], dtype=torch.float32))
    et = torch.zeros(2, 4, 4, requires_grad=True)
    es = torch.zeros(2, 4, 4, requires_grad=True)
    valid = torch.ones(2, 4, 4, dtype=torch.bool)
    valid[1] = False  # invalid pixels get no gradient and do not count in the mean
    loss, _, _ = jess_energy_loss(et, es, valid, None, reg=0.0)
    loss.backward()
    assert float(et.grad[0].sum()) == pytest.approx(1.0) and float(et.grad[1].abs().sum()) == 0.0
    assert float(es.grad.sum()) == pytest.approx(-1.0)  # minimising raises the source energy
    assert float(masked_mean(torch.arange(4.0), torch.tensor([True, False, True, False]))) == pytest.approx(1.0)


def test_jess_steps_lower_target_energy_relative_to_source(one_torch_thread: None) -> None:
    """Through SegmentationTask.training_step: with the energy term the target/source gap falls;
    the same steps without it (lambda 0, same shared forward pass) do not move it as far."""
    xs, ys, xt = _domains(64, 1)
    hold_s, _, hold_t = _domains(16, 2)
    gaps = {}
    for lam in (0.0, 1.0):
        net = TinyNet()
        before = _gap(net, hold_s, hold_t)
        target_batches = [{"image": xt[i : i + 4], "valid": torch.ones(4, 16, 16, dtype=torch.bool)} for i in range(0, 64, 4)]
        task = SegmentationTask(net, ["a", "b", "c"], lr=1e-2, target_loader=target_batches, energy_weight=lam)  # type: ignore[arg-type]
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # self.log outside a Trainer
            for step in range(25):
                i = (step * 8) % 64
                batch = {"image": xs[i : i + 8], "mask": ys[i : i + 8], "valid": torch.ones(8, 16, 16, dtype=torch.bool)}
                loss = task.training_step(batch, step)
                opt.zero_grad()
                loss.backward()
                opt.step()
        gaps[lam] = (before, _gap(net, hold_s, hold_t))
    before, after = gaps[1.0]
    assert after < before - 1.0, gaps
    assert after < 0.0, gaps  # target energy now below source energy
    assert after < gaps[0.0][1] - 1.0, gaps


@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_squared_energy_guard_bounds_the_energies(reg: float, one_torch_thread: None) -> None:
    """Energy-only optimisation: without the guard the target energy runs away; with it, it
    settles near the analytic optimum -1 / (2 reg) and the logits stay bounded."""
    xs, _, xt = _domains(16, 3)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    history = []
    for _ in range(300):
        loss, et, es = jess_energy_loss(free_energy(net(xt)), free_energy(net(xs)), reg=reg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((float(et), float(es)))
    et_end, es_end = history[-1]
    if reg == 0.0:
        assert et_end < -40.0 and history[-1][0] < history[-50][0] - 5.0  # still falling: diverges
    else:
        bound = 1 / (2 * reg)
        assert abs(et_end + bound) < 0.25 * bound and abs(es_end - bound) < 0.25 * bound
        assert abs(history[-1][0] - history[-50][0]) < 0.5  # converged
        with torch.no_grad():  # the top logit is what blows up; logsumexp (-E) caps it
            logits = net(torch.cat([xs, xt]))
            assert float(logits.max()) < 2 * bound and float(free_energy(logits).abs().max()) < 3 * bound


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny-recipe config, a target folder (the sample photo, darker and bluer), a 1-band folder, an empty one."""
    root = tmp_path_factory.mktemp("jess")
    cfg = root / "tiny.yaml"
    cfg.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in TINY.items()))
    (root / "target").mkdir()
    rgb = np.asarray(Image.open(SAMPLE / "photo.jpg").convert("RGB")).astype(np.float32)
    shifted = np.clip(rgb * np.array([0.8, 0.9, 1.15]) - 10, 0, 255).astype(np.uint8)
    Image.fromarray(shifted).save(root / "target" / "photo.png")
    (root / "grey").mkdir()
    Image.open(SAMPLE / "photo.jpg").convert("L").save(root / "grey" / "photo.png")
    (root / "empty").mkdir()
    return {"root": root, "config": cfg, "target": root / "target", "grey": root / "grey", "empty": root / "empty"}


@pytest.fixture(scope="module")
def base_model(folders: dict[str, Path], run_cli: Callable) -> Path:
    out = folders["root"] / "base"
    res = run_cli("train", "--config", folders["config"], "--images", SAMPLE / "train" / "images",
                  "--masks", SAMPLE / "train" / "masks", "--classes", SAMPLE / "classes.json", "--output-dir", out, "--quiet")
    assert res.exit_code == 0, res.stderr
    return out / "model.pt"


def _adapt(base_model: Path, folders: dict[str, Path], out: Path, extra: list[str], run_cli: Callable) -> str:
    """`jess-geo adapt` of the base model to the shifted sample photo; must succeed; returns stdout."""
    res = run_cli("adapt", base_model, "--method", "jess", "--images", SAMPLE / "train" / "images", "--masks", SAMPLE / "train" / "masks",
                  "--target-images", folders["target"], "--output-dir", out, "--quiet", *extra)
    assert res.exit_code == 0, res.stderr
    return res.stdout


def test_adapt_records_the_adaptation(base_model: Path, folders: dict[str, Path], run_cli: Callable) -> None:
    out = folders["root"] / "adapted"
    printed = _adapt(base_model, folders, out, ["--epochs", "1", "--lambda", "0.05"], run_cli)
    assert f"adapted:  to 1 target image(s) in {folders['target']}, lambda 0.05, 1 epochs" in printed
    info = run_cli("info", out / "model.pt", "--json")
    assert info.exit_code == 0, info.stderr
    meta = json.loads(info.stdout)
    a = meta["adaptation"]
    assert a["method"] == "jess" and a["lambda"] == 0.05 and a["epochs"] == 1
    assert [Path(p).name for p in a["target_images"]] == ["photo.png"]
    assert a["base_model"]["name"] == "model.pt" and a["base_model"]["sha256"] == hashlib.sha256(base_model.read_bytes()).hexdigest()
    assert meta["training"]["optim"]["lr"] == pytest.approx(2e-4)  # fine-tuning default
    assert meta["training"]["data"]["crop_size"] == 64  # the base model's recipe is kept
    base_meta = json.loads(run_cli("info", base_model, "--json").stdout)
    assert meta["classes"] == base_meta["classes"] and meta["normalization"] == base_meta["normalization"]
    assert "adaptation:" in run_cli("info", out / "model.pt").stdout
    # Before: the base model's figures on the same source validation and target data, before any
    # step; after: the adapted model's (its metrics). The summary line shows both.
    before, after = a["before"], meta["metrics"]
    assert set(before) >= {"source_energy", "target_energy", "energy_gap", "val_miou"}
    assert before["energy_gap"] == pytest.approx(before["target_energy"] - before["source_energy"])
    base_energies = base_meta["metrics"]
    assert before["source_energy"] == pytest.approx(base_energies["source_energy"], rel=1e-4)  # the base run's own figure
    line = next(x for x in printed.splitlines() if x.startswith("energy:"))
    print(line)
    assert f"target {before['target_energy']:.3f} -> {after['target_energy']:.3f}" in line
    assert f"gap {before['energy_gap']:.3f} -> {after['target_energy'] - after['source_energy']:.3f}" in line


def test_adapt_split_batchnorm_saves_target_statistics(base_model: Path, folders: dict[str, Path], run_cli: Callable) -> None:
    """With ``--jess-batchnorm split`` the adapted model carries BatchNorm statistics that moved from
    the source's towards the target camera's: its first BatchNorm's running mean is closer to the
    mean the target images produce at that layer than the base model's is."""
    from jess_geo.data.scenes import load_unlabelled
    from jess_geo.models.modelfile import load_model_file
    from jess_geo.preprocess import normalize
    from jess_geo.training.batchnorm import batchnorm_layers

    out = folders["root"] / "adapted_split"
    _adapt(base_model, folders, out, ["--epochs", "3", "--jess-batchnorm", "split"], run_cli)
    base, adapted = load_model_file(base_model), load_model_file(out / "model.pt")
    assert adapted.metadata["adaptation"]["batchnorm"] == "split"
    meta = adapted.metadata
    scene = load_unlabelled(folders["target"], meta["bands"], meta["resolution"])[0]
    x = torch.from_numpy(normalize(scene.image, meta["normalization"]).astype(np.float32))[None]
    seen: list[torch.Tensor] = []
    first = batchnorm_layers(adapted.model)[0]
    hook = first.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().mean((0, 2, 3))))
    with torch.no_grad():
        adapted.model.eval()(x)
    hook.remove()
    target_mean = seen[0]
    base_first = batchnorm_layers(base.model)[0]
    assert float((first.running_mean - target_mean).norm()) < 0.8 * float((base_first.running_mean - target_mean).norm())


@pytest.mark.parametrize("case", ["empty", "bands", "lambda"])
@pytest.mark.parametrize("command", ["train", "adapt"])
def test_bad_jess_input_is_one_line(
    command: str, case: str, base_model: Path, folders: dict[str, Path], run_cli: Callable, assert_cli_error: Callable,
) -> None:
    target = {"empty": folders["empty"], "bands": folders["grey"], "lambda": folders["target"]}[case]
    out = folders["root"] / f"bad_{command}_{case}"
    args = ["--images", str(SAMPLE / "train" / "images"), "--masks", str(SAMPLE / "train" / "masks"),
            "--target-images", str(target), "--output-dir", str(out), "--quiet"]
    if case == "lambda":
        args += ["--lambda", "-0.01"]
    if command == "train":
        args = ["train", "--config", str(folders["config"]), "--classes", str(SAMPLE / "classes.json"), "--method", "jess", *args]
    else:
        args = ["adapt", str(base_model), "--method", "jess", *args]
    message = assert_cli_error(run_cli(*args))
    expected = {"empty": "holds no raster files", "bands": "photo.png has 1 image band(s) but the model reads band(s) [1, 2, 3]",
                "lambda": "energy_weight: must be 0 or more (lambda)"}[case]
    assert expected in message
    assert not out.exists()  # nothing written


def _tiny_unet_without_droppath() -> torch.nn.Module:
    from jess_geo.models.factory import architecture_dict, build_model

    net = build_model(architecture_dict(in_channels=3, num_classes=3, decoder_channels=(16, 16, 16, 16, 16)))
    net.train()
    for m in net.modules():  # stochastic depth would draw different masks for different batch sizes
        if type(m).__name__ == "DropPath":
            m.eval()
    return net


def _bn_pairs(a: torch.nn.Module, b: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    from jess_geo.training.batchnorm import batchnorm_layers

    return [(x.running_mean, y.running_mean, x.running_var, y.running_var) for x, y in zip(batchnorm_layers(a), batchnorm_layers(b))]


@pytest.mark.parametrize("mode", ["source", "split"])
def test_shared_pass_batchnorm_matches_separate_passes(mode: str, one_torch_thread: None) -> None:
    """In the shared pass, the source crops come out exactly as in a source-only training pass and
    BatchNorm's running statistics move exactly as they would. With "split", the target crops
    also come out as in a target-only pass, and the target statistics move as that pass's would."""
    import copy

    from jess_geo.training.batchnorm import DomainStatistics, shared_pass, using_statistics

    torch.manual_seed(0)
    net = _tiny_unet_without_droppath()
    twin, target_net = copy.deepcopy(net), copy.deepcopy(net)
    stats = DomainStatistics(twin)
    x, xt = torch.randn(3, 3, 64, 64), torch.randn(2, 3, 64, 64) * 0.3 + 1.0
    alone, alone_t = net(x), target_net(xt)
    with shared_pass(twin, 3, mode, stats):
        shared = twin(torch.cat([x, xt]))
    assert torch.allclose(shared[:3], alone, atol=1e-4)
    for m1, m2, v1, v2 in _bn_pairs(net, twin):
        assert torch.allclose(m1, m2, atol=1e-5) and torch.allclose(v1, v2, rtol=1e-4, atol=1e-5)
    assert all("forward" not in vars(m) for m in twin.modules())  # patch removed afterwards
    shared.sum().backward()  # and it is differentiable
    if mode == "split":
        assert torch.allclose(shared[3:], alone_t, atol=1e-4)
        assert not torch.allclose(shared[3:], alone_t * 0 + shared[:2].mean(), atol=1e-3)
        with using_statistics(twin, stats):  # the target statistics are the target-only pass's
            for m1, m2, v1, v2 in _bn_pairs(target_net, twin):
                assert torch.allclose(m1, m2, atol=1e-5) and torch.allclose(v1, v2, rtol=1e-4, atol=1e-5)
        for m1, m2, v1, v2 in _bn_pairs(net, twin):  # and the model's own come back
            assert torch.allclose(m1, m2, atol=1e-5) and torch.allclose(v1, v2, rtol=1e-4, atol=1e-5)
    else:
        assert not torch.allclose(shared[3:], alone_t, atol=1e-3)  # normalised with source statistics


def test_recalibrate_sets_running_statistics_to_the_data(one_torch_thread: None) -> None:
    """AdaBN recalibration: afterwards the first BatchNorm's running mean is the mean of its input
    over the batches given (cumulative, not a momentum blend), and the weights are untouched."""
    from jess_geo.training.batchnorm import batchnorm_layers, recalibrate

    torch.manual_seed(0)
    net = _tiny_unet_without_droppath()
    net.eval()
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    batches = [torch.randn(2, 3, 32, 32) * 2 + 5 for _ in range(3)]
    seen: list[torch.Tensor] = []
    first = batchnorm_layers(net)[0]
    hook = first.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().mean((0, 2, 3))))
    assert recalibrate(net, iter(batches)) == 3
    hook.remove()
    assert torch.allclose(first.running_mean, torch.stack(seen).mean(0), atol=1e-4)
    assert not net.training  # mode restored
    for k, v in net.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k
    with pytest.raises(ValueError, match="no images"):
        recalibrate(net, iter([]))
