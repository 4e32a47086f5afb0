"""`jess-geo adapt --method camsim`: the target camera's blur and noise measured from unlabelled images,
the labelled source images rendered that way, the model fine-tuned on them.

On the sample data: the fit finds a blur and noise put into a real scene and finds none where
there is none; the command writes a model whose record states the measured camera, trains more
than BatchNorm, and refuses bad input in one line without writing anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import rasterio
from PIL import Image

from jess_geo.adaptation.appearance import blur, fit_degradation, power_spectrum
from jess_geo.models.modelfile import bundled_demo_model, load_model_file, read_metadata

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
DEMO = bundled_demo_model()
CHEAP = ["--crop-size", "64", "--batch-size", "4", "--samples", "4"]


def _scene() -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(SAMPLE / "scene.tif") as src:
        image = src.read().astype(np.float32)
    return image, ~(image == 0).all(0)


def _camera(image: np.ndarray, sigma: float, noise: float, seed: int = 0) -> np.ndarray:
    return blur(image, sigma) + np.random.default_rng(seed).normal(0.0, noise, image.shape).astype(np.float32)


def test_the_fit_finds_the_blur_and_noise_put_into_a_real_scene() -> None:
    image, valid = _scene()
    freqs, source = power_spectrum([image], [valid])
    _, target = power_spectrum([_camera(image, 1.2, 4.0)], [valid])
    camera = fit_degradation(freqs, source, target)
    assert camera.sigma == pytest.approx(1.2, abs=0.25)
    assert camera.noise == pytest.approx(4.0, rel=0.35)
    assert camera.gain == pytest.approx(1.0, abs=0.2)


def test_the_same_camera_and_a_sharper_one_get_no_blur() -> None:
    image, valid = _scene()
    freqs, source = power_spectrum([image], [valid])
    same = fit_degradation(freqs, source, source)
    assert same.sigma == 0 and same.noise < 0.1 and same.gain == pytest.approx(1.0, abs=1e-6)
    _, soft = power_spectrum([blur(image, 1.5)], [valid])
    sharper = fit_degradation(freqs, soft, source)  # the target is sharper than the source: nothing to blur
    assert sharper.sigma == 0


def test_nodata_pixels_do_not_change_the_spectrum() -> None:
    """Only windows without nodata are measured: whatever the nodata pixels hold, the spectrum is the same."""
    image, valid = _scene()
    assert not valid.all()  # the sample scene has a nodata corner and strip
    _, a = power_spectrum([image], [valid])
    _, b = power_spectrum([np.where(valid, image, 255.0)], [valid])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(Exception, match="no 128 x 128 window without nodata"):
        power_spectrum([image], [np.zeros_like(valid)], "target images")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample photo as a softer, noisier, warmer camera sees it (a PNG), and a too-small one."""
    root = tmp_path_factory.mktemp("camsim")
    (root / "soft").mkdir()
    (root / "tiny").mkdir()
    rgb = np.asarray(Image.open(SAMPLE / "photo.jpg").convert("RGB")).astype(np.float32).transpose(2, 0, 1)
    soft = _camera(rgb, 2.0, 5.0) * np.array([1.1, 1.0, 0.8], dtype=np.float32)[:, None, None]
    Image.fromarray(np.clip(soft, 1, 255).astype(np.uint8).transpose(1, 2, 0)).save(root / "soft" / "photo.png")
    Image.fromarray(np.clip(rgb[:, :100, :100], 1, 255).astype(np.uint8).transpose(1, 2, 0)).save(root / "tiny" / "photo.png")
    return {"root": root, "soft": root / "soft", "tiny": root / "tiny"}


def _source() -> list[Any]:
    return ["--images", SAMPLE / "train" / "images", "--masks", SAMPLE / "train" / "masks"]


def test_camsim_records_the_measured_camera_and_fine_tunes_the_network(target: dict[str, Path], run_cli: Callable) -> None:
    out = target["root"] / "adapted"
    res = run_cli("adapt", DEMO, "--method", "camsim", *_source(), "--target-images", target["soft"], "--steps", "3",
                  "--output-dir", out, *CHEAP, "--json")
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    camera = summary["settings"]["camera"]
    assert camera["blur_sigma_px"] >= 0.4  # the photo was blurred by 2 px at native resolution
    assert camera["noise_std"] > 0
    assert summary["settings"]["source_images"] == ["plot_a.tif", "plot_b.tif", "plot_c.tif"]
    assert summary["settings"]["weights"] == "mean over the second half of the steps"  # the default
    meta = read_metadata(out / "model.pt")
    assert meta["adaptation"]["method"] == "camsim" and "colour_alignment" not in meta  # predict reads the target as it is
    before, after = load_model_file(DEMO).model.state_dict(), load_model_file(out / "model.pt").model.state_dict()
    changed = {k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy())}
    assert any(k.endswith("weight") and "conv" in k for k in changed)  # convolutions trained, not only BatchNorm
    info = run_cli("info", out / "model.pt")
    assert info.exit_code == 0 and "camsim of" in info.stdout and "camera blur_sigma_px" in info.stdout
    assert sorted(p.name for p in out.iterdir()) == ["model.pt"]


def test_a_blurred_target_measures_a_larger_blur(target: dict[str, Path], tmp_path: Path) -> None:
    """The same photo, unblurred, measures a smaller blur than the soft one."""
    from jess_geo.adaptation.camsim import adapt_camsim

    plain = tmp_path / "plain"
    plain.mkdir()
    Image.open(SAMPLE / "photo.jpg").convert("RGB").save(plain / "photo.png")
    kw = {"crop_size": 64, "batch_size": 4, "samples": 4, "steps": 1}
    images, masks = SAMPLE / "train" / "images", SAMPLE / "train" / "masks"
    a = adapt_camsim(DEMO, images, masks, plain, tmp_path / "a.pt", **kw)["settings"]["camera"]
    b = adapt_camsim(DEMO, images, masks, target["soft"], tmp_path / "b.pt", **kw)["settings"]["camera"]
    assert b["blur_sigma_px"] > a["blur_sigma_px"] + 0.3


@pytest.mark.parametrize("case, args, words", [
    ("no source masks", ["--images", "{sample}/train/images", "--target-images", "{soft}"], "needs --masks"),
    ("no source", ["--target-images", "{soft}"], "needs --images"),
    ("target too small", ["--images", "{sample}/train/images", "--masks", "{sample}/train/masks", "--target-images", "{tiny}"],
     "no 128 x 128 window"),
    ("flag of another method", ["--images", "{sample}/train/images", "--masks", "{sample}/train/masks",
                                "--target-images", "{soft}", "--source-share", "0.5"], "does not take --source-share"),
    ("negative pseudo steps", ["--images", "{sample}/train/images", "--masks", "{sample}/train/masks",
                               "--target-images", "{soft}", "--pseudo-steps", "-1"], "give steps >= 0"),
    ("pseudo keep above 1", ["--images", "{sample}/train/images", "--masks", "{sample}/train/masks",
                             "--target-images", "{soft}", "--pseudo-steps", "2", "--pseudo-keep", "1.5"], "keep share in (0, 1]"),
])
def test_bad_input_is_one_line_and_writes_nothing(case: str, args: list[str], words: str, target: dict[str, Path],
                                                  run_cli: Callable, assert_cli_error: Callable) -> None:
    out = target["root"] / "refused" / case.replace(" ", "_")
    args = [a.format(sample=SAMPLE, **{k: str(v) for k, v in target.items()}) for a in args]
    message = assert_cli_error(run_cli("adapt", DEMO, "--method", "camsim", *args, "--output-dir", out, *CHEAP))
    assert words in message, message
    assert not out.exists()


def test_pseudo_labels_keep_the_most_confident_share_of_every_class() -> None:
    """A rare, unsure class keeps its most confident pixels: the threshold is per class, not global."""
    from jess_geo.adaptation.pseudo import pseudo_labels
    from jess_geo.classes import IGNORE

    rng = np.random.default_rng(0)
    probs = np.zeros((3, 40, 40), np.float32)
    probs[0] = rng.uniform(0.9, 1.0, (40, 40))  # a common, sure class
    probs[1] = 1 - probs[0]
    rare = np.zeros((40, 40), bool)
    rare[:4, :5] = True  # 20 pixels of an unsure rare class
    probs[:, rare] = np.stack([np.full(20, 0.3), np.full(20, 0.2), rng.uniform(0.4, 0.5, 20)])
    valid = np.ones((40, 40), bool)
    valid[-1] = False
    labels = pseudo_labels(probs, valid, keep=0.5)
    assert (labels[-1] == IGNORE).all()  # nodata stays unlabelled
    kept_rare = labels[rare] == 2
    assert kept_rare.sum() == 10  # half of the rare class, although every one is below the common class's threshold
    assert probs[2][rare][kept_rare].min() >= probs[2][rare][~kept_rare].max()
    common = (~rare) & valid
    assert abs(int((labels[common] == 0).sum()) - common.sum() // 2) <= 1
    assert set(np.unique(labels)) == {0, 2, IGNORE}


def test_scene_probabilities_blend_tiles_like_one_pass() -> None:
    """Small overlapping tiles give nearly the classes of one large tile, and probabilities sum to 1."""
    from jess_geo.adaptation.pseudo import scene_probabilities

    loaded = load_model_file(DEMO)
    rgb = np.asarray(Image.open(SAMPLE / "photo.jpg").convert("RGB")).astype(np.float32).transpose(2, 0, 1)[:, :200, :300]
    whole = scene_probabilities(loaded.model, rgb, loaded.metadata, tile=320, overlap=0)
    tiled = scene_probabilities(loaded.model, rgb, loaded.metadata, tile=96, overlap=32)
    assert whole.shape == tiled.shape == (len(loaded.metadata["classes"]), 200, 300)
    np.testing.assert_allclose(tiled.sum(0), 1.0, atol=1e-4)
    assert (whole.argmax(0) == tiled.argmax(0)).mean() > 0.9


def test_camsim_self_training_labels_the_target_and_is_recorded(target: dict[str, Path], run_cli: Callable) -> None:
    out = target["root"] / "pseudo"
    res = run_cli("adapt", DEMO, "--method", "camsim", *_source(), "--target-images", target["soft"], "--steps", "2",
                  "--pseudo-steps", "2", "--pseudo-keep", "0.4", "--output-dir", out, *CHEAP, "--json")
    assert res.exit_code == 0, res.stderr
    st = json.loads(res.stdout)["settings"]["self_training"]
    assert st["steps"] == 2 and st["keep"] == 0.4
    scale = read_metadata(DEMO)["resolution"]["photo_scale"]  # a photo is read at this scale
    with Image.open(target["soft"] / "photo.png") as im:
        pixels = round(im.width * scale) * round(im.height * scale)
    assert 0.3 * pixels < st["labelled_pixels"] <= 0.4 * pixels + 8  # 40 % of each predicted class's pixels
    assert read_metadata(out / "model.pt")["adaptation"]["settings"]["self_training"] == st
    info = run_cli("info", out / "model.pt")
    assert info.exit_code == 0 and "self-training keep 0.4, labelled_pixels" in info.stdout


def _tracked_batches(net: Any, snaps: list[list[Any]], n: int) -> Any:
    """``n`` random batches; before each later one (and at the end) a copy of ``net``'s weights,
    so ``snaps[k]`` holds the weights after step ``k``."""
    import torch

    gen = torch.Generator().manual_seed(0)
    for k in range(n):
        if k:
            snaps.append([p.detach().clone() for p in net.parameters()])
        yield {"image": torch.randn(2, 3, 8, 8, generator=gen), "mask": torch.randint(0, 2, (2, 8, 8), generator=gen)}
    snaps.append([p.detach().clone() for p in net.parameters()])


def test_weight_averaging_ends_with_the_mean_of_the_weights_it_passed() -> None:
    import torch

    from jess_geo.adaptation.fewshot import finetune_steps

    torch.manual_seed(0)
    net, snaps = torch.nn.Conv2d(3, 2, 1), []
    finetune_steps(net, _tracked_batches(net, snaps, 4), 0.1, average_from=2)
    assert len(snaps) == 4 and not torch.equal(snaps[2][0], snaps[3][0])
    for p, a, b in zip(net.parameters(), snaps[2], snaps[3]):
        torch.testing.assert_close(p.detach(), (a + b) / 2)


def test_the_cosine_schedule_reaches_a_zero_rate() -> None:
    """With the rate falling to 0 after one step, later steps leave the weights as they are."""
    import torch

    from jess_geo.adaptation.fewshot import finetune_steps

    torch.manual_seed(0)
    net, snaps = torch.nn.Conv2d(3, 2, 1), []
    before = [p.detach().clone() for p in net.parameters()]
    finetune_steps(net, _tracked_batches(net, snaps, 3), 0.1, cosine_steps=1)
    assert not torch.equal(before[0], snaps[0][0])  # the first step at the full rate moved them
    for p, s in zip(net.parameters(), snaps[0]):
        torch.testing.assert_close(p.detach(), s)
