"""Issue 10, training side: typed config values, range checks before any work, no lost models.

Each case runs `jess-geo train` / `adapt` in-process (``run_cli``) and checks what a user sees:
one `jess-geo: error:` line naming the setting or the folder, exit 2, nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import typing
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from jess_geo.errors import ConfigError
from jess_geo.models.modelfile import bundled_demo_model, read_metadata
from jess_geo.training.config import SECTIONS, TOP_LEVEL, TrainConfig, load_config

pytestmark = pytest.mark.trust


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _train(sample_train: dict[str, Path], config: Path, out: Path, *extra: Any) -> list[Any]:
    return ["train", "--images", sample_train["images"], "--masks", sample_train["masks"],
            "--classes", sample_train["classes"], "--config", config, "--output-dir", out, "--quiet", *extra]


# --------------------------------------------------------------------------- config types


@pytest.mark.parametrize(
    ("yaml_line", "expected"),
    [
        ("val_fraction: half", "Invalid training setting val_fraction: expected a number, got 'half'"),
        ("decoder_channels: 16", "Invalid training setting decoder_channels: expected a list of integers such as [1, 2, 3], got 16"),
        ("epochs: 2.5", "Invalid training setting epochs: expected an integer, got 2.5"),
        ("flips: maybe", "Invalid training setting flips: expected true or false, got 'maybe'"),
        ("optim: {lr: fast}", "Invalid training setting optim.lr: expected a number, got 'fast'"),
        ("encoder: 5", "Invalid training setting encoder: expected a string, got 5"),
        ("bands: [1, two, 3]", "Invalid training setting bands: expected a list of integers such as [1, 2, 3] or null"),
    ],
)
def test_wrongly_typed_config_value_is_one_line_naming_field_and_type(
    yaml_line: str, expected: str, sample_train: dict[str, Path], run_cli: Callable, assert_cli_error: Callable, tmp_path: Path,
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_line + "\n")
    before = _files(tmp_path)
    message = assert_cli_error(run_cli(*_train(sample_train, config, tmp_path / "run")))
    assert message.startswith(expected), message
    assert _files(tmp_path) == before


def test_every_setting_is_type_checked() -> None:
    """A mapping where a value should be, for every field of every section: refused, naming it."""
    names = list(TOP_LEVEL) + [f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)]
    for name in names:
        with pytest.raises(ConfigError) as exc:
            load_config(None, {name: ["not", {"a": "value"}]} if name != "decoder_channels" else {name: "16"})
        msg = str(exc.value)
        assert f"setting {name}:" in msg and "expected" in msg and "\n" not in msg, msg
    hints = typing.get_type_hints(TrainConfig)
    assert set(hints) == set(TOP_LEVEL) | set(SECTIONS)


def test_yaml_1_1_exponent_floats_are_read_as_numbers(tmp_path: Path) -> None:
    """PyYAML reads `lr: 1e-3` as the string "1e-3"; float settings accept numeric strings."""
    config = tmp_path / "c.yaml"
    config.write_text("lr: 1e-3\nenergy_weight: 5e-2\noptim: {weight_decay: 1e-5}\n")
    cfg = load_config(config, {})
    assert (cfg.optim.lr, cfg.jess.energy_weight, cfg.optim.weight_decay) == (0.001, 0.05, 1e-05)


def test_flat_and_nested_configs_are_the_same_run(tmp_path: Path, repo_root: Path) -> None:
    flat = tmp_path / "flat.yaml"
    flat.write_text("crop_size: 128\nlr: 2.0e-3\njess_batchnorm: mixed\nepochs: 3\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("data: {crop_size: 128}\noptim: {lr: 2.0e-3}\njess: {batchnorm: mixed}\ntrainer: {epochs: 3}\n")
    assert load_config(flat, {}) == load_config(nested, {})
    for shipped in sorted((repo_root / "configs").glob("*.yaml")):
        load_config(shipped, {})  # every shipped config loads


# --------------------------------------------------------------------------- ranges, before any work


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--max-minutes", "0", "max_minutes: must be a positive number of minutes, got 0.0"),
        ("--max-minutes", "-5", "max_minutes: must be a positive number of minutes"),
        ("--max-minutes", "nan", "max_minutes: expected a number or null, got nan"),
        ("--epochs", "0", "epochs: must be at least 1, got 0"),
        ("--batch-size", "0", "batch_size: must be at least 1"),
        ("--crop-size", "100", "crop_size: must be a multiple of 32"),
        ("--lr", "-1", "lr: must be positive"),
        ("--lr", "inf", "lr: expected a number, got inf"),
        ("--lambda", "-0.01", "energy_weight: must be 0 or more (lambda)"),
        ("--seed", "-1", "seed: must be an integer from 0 to 4294967295"),
        ("--num-nodes", "0", "num_nodes: must be at least 1"),
        ("--devices", "0", "devices: must be auto, a number of devices"),
        ("--strategy", "horovod", "strategy: must be auto, ddp or ddp_spawn"),
        ("--photo-scale", "0", "photo_scale: must be in (0, 4]"),
        ("--gsd", "-1", "gsd: must be positive"),
    ],
)
def test_numeric_options_are_range_checked_before_any_work(
    flag: str, value: str, expected: str, tiny_config: Callable, run_cli: Callable, assert_cli_error: Callable, tmp_path: Path,
) -> None:
    # The images folder does not exist: a range error first proves nothing was read before the check.
    missing = {"images": tmp_path / "no_images", "masks": tmp_path / "no_masks", "classes": tmp_path / "no.json"}
    config = tiny_config(tmp_path / "cfg")
    message = assert_cli_error(run_cli(*_train(missing, config, tmp_path / "run", flag, value)))
    assert f"Invalid training setting {expected}" in message, message
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- output folders


def test_train_into_a_folder_holding_a_model_refuses_unless_overwrite(
    sample_train: dict[str, Path], tiny_config: Callable, run_cli: Callable, assert_cli_error: Callable, tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(bundled_demo_model(), out / "model.pt")
    before = (out / "model.pt").read_bytes()
    config = tiny_config(tmp_path / "cfg")
    message = assert_cli_error(run_cli(*_train(sample_train, config, out, "--epochs", 1)))
    assert message == (f"{out} already holds model.pt from another run (or one that cannot resume); "
                       f"pass --overwrite to replace it or choose another --output-dir.")
    assert (out / "model.pt").read_bytes() == before and _files(out) == ["model.pt"]
    done = run_cli(*_train(sample_train, config, out, "--epochs", 1, "--overwrite"))
    assert done.exit_code == 0, done.stderr
    meta = read_metadata(out / "model.pt")
    assert meta["architecture"]["decoder_channels"] == [16, 16, 16, 16, 16]  # the new model, not the demo's
    assert meta["training"]["data"]["crop_size"] == 64


@pytest.mark.parametrize("where", ["base_folder", "images_folder"])
def test_adapt_refuses_an_output_folder_that_is_an_input(
    where: str, sample_train: dict[str, Path], run_cli: Callable, assert_cli_error: Callable, tmp_path: Path,
) -> None:
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(bundled_demo_model(), base / "model.pt")
    images = tmp_path / "images"
    shutil.copytree(sample_train["images"], images)
    out = {"base_folder": base, "images_folder": images}[where]
    before = _files(tmp_path)
    for extra in ([], ["--overwrite"]):  # --overwrite never allows replacing an input
        proc = run_cli("adapt", base / "model.pt", "--method", "jess", "--images", images, "--masks", sample_train["masks"],
                       "--target-images", images, "--output-dir", out, "--quiet", *extra)
        message = assert_cli_error(proc)
        what = "the base model" if where == "base_folder" else "an input folder"
        assert message.startswith(f"Output folder {out} holds {what}"), message
    assert _files(tmp_path) == before


# --------------------------------------------------------------------------- band policy


def test_train_reads_three_bands_of_rgbn_and_rgba_images_with_alpha_as_the_mask(
    write_raster: Callable, tiny_config: Callable, run_cli: Callable, tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros((64, 64), np.uint8)
    labels[:, 32:] = 1
    for name in ("train", "val"):
        (tmp_path / name / "images").mkdir(parents=True)
        (tmp_path / name / "masks").mkdir(parents=True)
        write_raster(tmp_path / name / "masks" / f"{name}.tif", labels, crs=None)
    write_raster(tmp_path / "train" / "images" / "train.tif", rng.integers(1, 250, (4, 64, 64), dtype=np.uint8), crs=None)
    rgba = np.dstack([rng.integers(1, 250, (64, 64, 3), dtype=np.uint8), np.full((64, 64), 255, np.uint8)])
    rgba[:16, :, 3] = 0  # the top quarter is outside the photo
    Image.fromarray(rgba, "RGBA").save(tmp_path / "val" / "images" / "val.png")
    classes = tmp_path / "classes.json"
    classes.write_text('{"0": {"name": "soil", "color": "#c9a87c"}, "1": {"name": "crust", "color": "#5b4a3f"}}')
    config = tiny_config(tmp_path / "cfg", bands=[1, 2, 3], val_images=str(tmp_path / "val" / "images"),
                         val_masks=str(tmp_path / "val" / "masks"), val_crop=64)
    out = tmp_path / "run"
    proc = run_cli("train", "--images", tmp_path / "train" / "images", "--masks", tmp_path / "train" / "masks",
                   "--classes", classes, "--config", config, "--output-dir", out, "--epochs", 1, "--quiet")
    assert proc.exit_code == 0, proc.stderr
    notices = [ln for ln in proc.stderr.splitlines() if ln.startswith("notice: ")]
    assert notices == ["notice: train.tif has 4 image bands; the model uses band(s) 1,2,3, `bands` in the config chooses others."]
    meta = read_metadata(out / "model.pt")
    assert meta["bands"] == [1, 2, 3] and meta["architecture"]["in_channels"] == 3
    validation = json.loads((out / "metrics.json").read_text())["validation"]
    assert validation["pixels"] == 48 * 64  # the alpha band masked the top quarter; it was never data
