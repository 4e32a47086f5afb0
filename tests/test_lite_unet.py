"""The smp-free EfficientNet-Lite U-Net that ``predict`` builds from a ``.pt`` model file.

It must be the network smp builds (same logits, same BatchNorm inputs for the shift score, same
maps) and must keep smp, timm and torchvision out of the predict process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from jess_geo.inference.predict import predict_raster
from jess_geo.models.factory import architecture_dict, build_model
from jess_geo.models.lite_unet import build_lite_unet, fold_batchnorm, supports
from jess_geo.models.modelfile import bundled_demo_model, load_model_file, read_metadata, save_model_file
from jess_geo.shift.stats import FeatureCollector, bn_layers

SCENE = Path(__file__).resolve().parents[1] / "sample_data" / "scene.tif"


def _randomised(net: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Weights with non-trivial BatchNorm statistics (fresh ones would hide a wrong eps or order)."""
    g = torch.Generator().manual_seed(seed)
    sd = net.state_dict()
    for k, v in sd.items():
        if k.endswith("running_mean"):
            v.copy_(torch.randn(v.shape, generator=g) * 0.5)
        elif k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=g) * 1.5 + 0.5)
        elif v.is_floating_point() and v.ndim == 1:
            v.copy_(torch.rand(v.shape, generator=g) + 0.5 if k.endswith("weight") else torch.randn(v.shape, generator=g) * 0.1)
    return sd


@pytest.mark.parametrize("encoder,bands,decoder", [
    ("timm-tf_efficientnet_lite0", 3, (64, 32, 16, 16, 16)),
    ("timm-tf_efficientnet_lite2", 5, (256, 128, 64, 32, 16)),
])
def test_logits_and_batchnorm_inputs_equal_smp(encoder: str, bands: int, decoder: tuple[int, ...]) -> None:
    arch = architecture_dict(encoder, bands, 6, decoder)
    ref = build_model(arch)
    sd = _randomised(ref, seed=bands)
    ref.load_state_dict(sd)
    net = build_lite_unet(arch, sd)
    net.load_state_dict(sd, strict=True)
    ref.eval(), net.eval()
    assert [n for n, _ in bn_layers(ref, None)] == [n for n, _ in bn_layers(net, None)]
    x = torch.randn(2, bands, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), FeatureCollector(ref) as fr, FeatureCollector(net) as fn:
        a, b = ref(x), net(x)
    assert a.shape == b.shape == (2, 6, 64, 96)
    assert torch.allclose(a, b, atol=1e-5, rtol=0), (a - b).abs().max()
    assert json.dumps(fr.statistics()) == json.dumps(fn.statistics())
    with pytest.raises(RuntimeError, match="multiples of 32"):
        net(torch.zeros(1, bands, 64, 80))


def test_folded_copy_gives_the_same_logits() -> None:
    """BatchNorm folded into the convolutions: no BatchNorm left, the same logits, the original untouched."""
    arch = architecture_dict("timm-tf_efficientnet_lite0", 3, 4, (64, 32, 16, 16, 16))
    sd = _randomised(build_model(arch), seed=7)
    net = build_lite_unet(arch, sd)
    net.load_state_dict(sd, strict=True)
    assert fold_batchnorm(net) is None  # training mode: statistics still move, nothing to fold
    net.eval()
    folded = fold_batchnorm(net)
    assert folded is not None and not bn_layers(folded, None) and len(bn_layers(net, None)) == 59  # the original keeps all 59
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        a, b = net(x), folded(x)
    assert torch.allclose(a, b, atol=1e-4, rtol=0), (a - b).abs().max()
    assert fold_batchnorm(build_model(arch).eval()) is None  # smp's networks run as they are


def test_torch_runtime_is_watched_on_the_network_then_runs_the_folded_copy() -> None:
    """predict's shift notice hooks the first batches on the network as loaded; after them the hooks
    are gone and the runtime runs the folded copy, with the same logits."""
    from jess_geo.inference.torch_runtime import TorchRuntime

    rt = TorchRuntime.open(bundled_demo_model(), "cpu")
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64), dtype=np.float32)
    with FeatureCollector(rt.net, limit=2) as fc:
        watched = [rt.logits(x) for _ in range(3)]
        assert fc.batches == 2
        assert not any(m._forward_pre_hooks for m in rt.net.modules())  # removed themselves at the limit
    assert rt._network() is not rt.net and not bn_layers(rt._network(), None)
    assert np.abs(rt.logits(x) - watched[0]).max() < 1e-4


def test_predict_map_is_the_one_smp_gives(tmp_path: Path) -> None:
    """``predict`` with the model file (the smp-free network) and with smp's network: one map, one cover table."""
    demo = bundled_demo_model()
    assert type(load_model_file(demo, inference=True).model).__name__ == "LiteUnet"
    smp_net = load_model_file(demo)
    assert type(smp_net.model).__module__.startswith("segmentation_models_pytorch")
    predict_raster(SCENE, demo, tmp_path / "fast.tif", device="cpu", probabilities=tmp_path / "fast_p.tif")
    predict_raster(SCENE, smp_net, tmp_path / "smp.tif", device="cpu", probabilities=tmp_path / "smp_p.tif")
    with rasterio.open(tmp_path / "fast.tif") as a, rasterio.open(tmp_path / "smp.tif") as b:
        assert np.array_equal(a.read(), b.read())
    with rasterio.open(tmp_path / "fast_p.tif") as a, rasterio.open(tmp_path / "smp_p.tif") as b:
        assert np.abs(a.read().astype(int) - b.read().astype(int)).max() <= 1  # stored as bytes: rounding at most


def test_other_encoders_still_load_through_smp(tmp_path: Path) -> None:
    meta = read_metadata(bundled_demo_model())
    meta["architecture"] = architecture_dict("resnet18", 3, 4, (32, 16, 16, 16, 16))
    assert not supports(meta["architecture"])
    save_model_file(tmp_path / "r.pt", build_model(meta["architecture"]), meta)
    loaded = load_model_file(tmp_path / "r.pt", inference=True)
    assert type(loaded.model).__module__.startswith("segmentation_models_pytorch")


# A fresh interpreter runs `jess-geo predict` with the bundled .pt model and prints which of the
# heavy packages it loaded: torch, and none of smp's chain.
PT_PROBE = r"""
import json, sys
from jess_geo.cli.main import run
code = run(sys.argv[1:])
heavy = ("torch", "segmentation_models_pytorch", "timm", "torchvision", "huggingface_hub", "lightning", "torchgeo")
print(json.dumps({"exit": code, "loaded": sorted({m.split(".")[0] for m in sys.modules} & set(heavy))}))
"""


def test_pt_predict_imports_torch_but_not_smp(tmp_path: Path) -> None:
    out = tmp_path / "scene_classes.tif"
    proc = subprocess.run([sys.executable, "-c", PT_PROBE, "predict", str(SCENE), "-o", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"exit": 0, "loaded": ["torch"]}
    assert out.exists() and out.with_suffix(".gpkg").exists()
