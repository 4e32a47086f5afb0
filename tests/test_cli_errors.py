"""Bad inputs through the `jess-geo` command line: one error line, a non-zero exit, nothing written.

Every case runs the command line in-process (``run_cli``: the console script's own error
mapping) and checks: exit code 2, exactly one stderr line starting `jess-geo: error:`, no
traceback, and that the output folder was not created (nor anything else written). One case
also runs the real console script in a subprocess, as a user (or the QGIS plugin) would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from jess_geo.models.factory import architecture_dict, build_model
from jess_geo.models.modelfile import save_model_file

CLASSES_JSON = '{"0": {"name": "soil", "color": "#c9a87c"}, "1": {"name": "crust", "color": "#5b4a3f"}}'


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 250, (3, h, w), dtype=np.uint8)


def _labels(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[:, w // 2 :] = 1
    return m


@pytest.fixture
def dataset(tmp_path: Path, write_raster: Callable) -> dict[str, Path]:
    """Two small labelled GeoTIFFs, a class table, a tiny config; cases then break one thing."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for k in range(2):
        write_raster(images / f"plot_{k}.tif", _rgb(64, 64, k))
        write_raster(masks / f"plot_{k}.tif", _labels(64, 64))
    classes = tmp_path / "classes.json"
    classes.write_text(CLASSES_JSON)
    return {"root": tmp_path, "images": images, "masks": masks, "classes": classes}


def _train_args(d: dict[str, Path], config: Path, out: Path) -> list:
    return ["train", "--images", d["images"], "--masks", d["masks"], "--classes", d["classes"],
            "--config", config, "--output-dir", out, "--epochs", 1, "--quiet"]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


TRAIN_CASES = [
    "missing_images_folder",
    "missing_masks_folder",
    "image_without_mask",
    "mask_of_another_size",
    "mask_value_not_in_class_table",
    "config_band_beyond_the_image",
    "truncated_png",
    "truncated_tif",
    "not_an_image",
    "output_folder_under_a_file",
    "missing_class_table",
    "unknown_config_setting",
]


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_bad_input(
    case: str,
    dataset: dict[str, Path],
    write_raster: Callable,
    tiny_config: Callable,
    run_cli: Callable,
    assert_cli_error: Callable,
) -> None:
    d = dataset
    root = d["root"]
    out = root / "run"
    settings: dict = {}
    if case == "missing_images_folder":
        d["images"] = root / "no_such_folder"
    elif case == "missing_masks_folder":
        d["masks"] = root / "no_such_masks"
    elif case == "image_without_mask":
        write_raster(d["images"] / "lonely.tif", _rgb(64, 64, 5))
    elif case == "mask_of_another_size":
        write_raster(d["masks"] / "plot_1.tif", _labels(64, 48))
    elif case == "mask_value_not_in_class_table":
        m = _labels(64, 64)
        m[10:12, 10:12] = 6
        write_raster(d["masks"] / "plot_1.tif", m)
    elif case == "config_band_beyond_the_image":
        settings["bands"] = [1, 2, 4]
    elif case == "truncated_png":
        (d["images"] / "plot_1.tif").unlink()  # the photo plot_1.png pairs with masks/plot_1.tif
        Image.fromarray(_rgb(64, 64, 1).transpose(1, 2, 0)).save(d["images"] / "plot_1.png")
        raw = (d["images"] / "plot_1.png").read_bytes()
        (d["images"] / "plot_1.png").write_bytes(raw[: len(raw) // 2])
    elif case == "truncated_tif":
        raw = (d["images"] / "plot_1.tif").read_bytes()
        (d["images"] / "plot_1.tif").write_bytes(raw[: len(raw) // 2])
    elif case == "not_an_image":
        (d["images"] / "plot_1.tif").write_text("this is a text file, not a GeoTIFF")
    elif case == "output_folder_under_a_file":
        (root / "a_file").write_text("x")
        out = root / "a_file" / "run"
    elif case == "missing_class_table":
        d["classes"] = root / "no_classes.json"
    elif case == "unknown_config_setting":
        settings["learning_rate"] = 0.1
    config = tiny_config(root / "config", **settings)
    before = _files(root)
    proc = run_cli(*_train_args(d, config, out), cwd=root)
    message = assert_cli_error(proc)
    assert not out.exists() or not any(out.iterdir()), f"{out} was written"
    assert _files(root) == before
    expected = {
        "missing_images_folder": "no_such_folder",
        "missing_masks_folder": "no_such_masks",
        "image_without_mask": "lonely",
        "mask_of_another_size": "48x64",
        "mask_value_not_in_class_table": "[6]",
        "config_band_beyond_the_image": "3 image band(s) but the model reads band(s) [1, 2, 4]",
        "truncated_png": "truncated",
        "truncated_tif": "plot_1.tif",
        "not_an_image": "plot_1.tif",
        "output_folder_under_a_file": "a_file",
        "missing_class_table": "no_classes.json",
        "unknown_config_setting": "learning_rate",
    }[case]
    assert expected in message, message


# --------------------------------------------------------------------------- model files


class _Marker:
    """Unpickling this would create a file, which proves execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.path), "w"))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A valid tiny model file, a truncated copy, and a copy carrying an armed pickled object."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    meta = {
        "architecture": architecture_dict("timm-tf_efficientnet_lite0", 3, 2, (16, 16, 16, 16, 16)),
        "bands": [1, 2, 3],
        "normalization": {"mean": [120.0] * 3, "std": [40.0] * 3},
        "classes": [{"id": 0, "name": "soil", "color": "#c9a87c"}, {"id": 1, "name": "crust", "color": "#5b4a3f"}],
        "resolution": {"gsd": None, "photo_scale": 1.0},
        "tile_size": 64,
        "overlap": 16,
    }
    good = root / "good.pt"
    save_model_file(good, build_model(meta["architecture"]), meta)
    raw = good.read_bytes()
    (root / "truncated.pt").write_bytes(raw[: len(raw) // 3])
    payload = torch.load(good, map_location="cpu", weights_only=True)
    payload["extra"] = _Marker(root / "EXECUTED")
    torch.save(payload, root / "pickled.pt")
    return {"good": good, "truncated": root / "truncated.pt", "pickled": root / "pickled.pt", "marker": root / "EXECUTED"}


@pytest.mark.parametrize("command", ["info --json", "evaluate"])
@pytest.mark.parametrize("kind", ["truncated", "pickled"])
def test_bad_model_file(
    command: str,
    kind: str,
    model_files: dict[str, Path],
    dataset: dict[str, Path],
    run_cli: Callable,
    assert_cli_error: Callable,
) -> None:
    args = command.split() + [model_files[kind]]
    if command == "evaluate":
        args += ["--images", dataset["images"], "--masks", dataset["masks"], "--json",
                 "--confusion-png", dataset["root"] / "cm.png"]
    before = _files(dataset["root"])
    proc = run_cli(*args, cwd=dataset["root"])
    message = assert_cli_error(proc)
    # --json (and --json-progress) also give the error as the one JSON line on stdout, for programs.
    assert proc.stdout == (json.dumps({"stage": "error", "error": message}) + "\n" if "--json" in args else "")
    assert _files(dataset["root"]) == before
    assert not model_files["marker"].exists(), "the pickled object was executed"
    assert ("truncated" if kind == "truncated" else "refused (not executed)") in message


def test_evaluate_bad_inputs(
    model_files: dict[str, Path],
    dataset: dict[str, Path],
    write_raster: Callable,
    run_cli: Callable,
    assert_cli_error: Callable,
) -> None:
    root = dataset["root"]
    write_raster(dataset["images"] / "plot_1.tif", _rgb(64, 64, 1)[:1])
    before = _files(root)
    proc = run_cli("evaluate", model_files["good"], "--images", dataset["images"], "--masks", dataset["masks"],
                   "--confusion-png", root / "cm.png", cwd=root)
    assert "plot_1.tif has 1 image band(s) but the model reads band(s) [1, 2, 3]" in assert_cli_error(proc)
    proc = run_cli("evaluate", model_files["good"], "--images", root / "nope", "--masks", dataset["masks"], cwd=root)
    assert "nope" in assert_cli_error(proc)
    assert _files(root) == before


def test_console_script_refuses_a_pickled_model(
    model_files: dict[str, Path], tmp_path: Path, jess_cli: Callable, assert_cli_error: Callable
) -> None:
    """The real console script in its own process: exit code, stderr and stdout as a user sees them."""
    proc = jess_cli("info", "--json", model_files["pickled"], cwd=tmp_path, timeout=300)
    message = assert_cli_error(proc)
    assert "refused (not executed)" in message
    assert proc.stdout.splitlines() == [json.dumps({"stage": "error", "error": message})]
    assert not model_files["marker"].exists(), "the pickled object was executed"
    assert list(tmp_path.iterdir()) == []
