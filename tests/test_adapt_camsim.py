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
])
def test_bad_input_is_one_line_and_writes_nothing(case: str, args: list[str], words: str, target: dict[str, Path],
                                                  run_cli: Callable, assert_cli_error: Callable) -> None:
    out = target["root"] / "refused" / case.replace(" ", "_")
    args = [a.format(sample=SAMPLE, **{k: str(v) for k, v in target.items()}) for a in args]
    message = assert_cli_error(run_cli("adapt", DEMO, "--method", "camsim", *args, "--output-dir", out, *CHEAP))
    assert words in message, message
    assert not out.exists()
