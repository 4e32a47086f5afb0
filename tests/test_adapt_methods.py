"""`jess-geo adapt --method adabn|tent|histmatch|fewshot` on the demo model and the sample data.

What a user sees: which weights each method changes, what the model file records and `info`
shows, that predict applies a histogram-matching model's colour table, that few-shot labels
outside the labelled pixels change nothing, and one-line refusals of bad input.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.windows import Window

from jess_geo.adaptation.fewshot import adapt_fewshot
from jess_geo.adaptation.tent import adapt_tent
from jess_geo.errors import ModelFileError
from jess_geo.models.metadata import validate_metadata
from jess_geo.models.modelfile import bundled_demo_model, load_model_file, read_metadata
from jess_geo.training.adapt import sha256

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
DEMO = bundled_demo_model()
SHIFT = np.array([0.8, 0.9, 1.15])  # a camera with other colours: per-band gain, then an offset of -10
CHEAP = ["--crop-size", "64", "--batch-size", "4"]


def _shifted(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (..., 3 bands on axis ``-1``) through the colour shift, kept >= 1 (0 is the scene's nodata)."""
    return np.clip(rgb.astype(np.float32) * SHIFT - 10, 1, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Target folders: the sample photo colour-shifted; a 256 px window of the sample scene, plain
    and colour-shifted (same grid); a grey photo (1 band); labels for few-shot training."""
    root = tmp_path_factory.mktemp("adapt_methods")
    for name in ("photo", "scene", "plain", "grey", "labels", "labels7", "nolabels"):
        (root / name).mkdir()
    rgb = np.asarray(Image.open(SAMPLE / "photo.jpg").convert("RGB"))[:160, :160]  # 80 x 80 working px: cheap
    Image.fromarray(_shifted(rgb)).save(root / "photo" / "photo.png")
    Image.fromarray(rgb[..., 0]).save(root / "grey" / "photo.png")
    with rasterio.open(SAMPLE / "scene.tif") as src:
        window = Window(256, 128, 256, 256)
        pixels = src.read(window=window)
        profile = dict(src.profile, width=256, height=256, transform=src.window_transform(window))
    nodata = (pixels == 0).all(0)
    shifted = np.moveaxis(_shifted(np.moveaxis(pixels, 0, -1)), -1, 0)
    shifted[:, nodata] = 0
    for folder, arr in (("plain", pixels), ("scene", shifted)):
        with rasterio.open(root / folder / "scene.tif", "w", **profile) as dst:
            dst.write(arr)
    # few-shot labels of the shifted photo: its true classes in the top-left quarter only; the
    # rest 255 (labels/) or 7, a value the class table does not have (labels7/, --unlabelled-value 7)
    truth = np.asarray(Image.open(SAMPLE / "photo_labels.png"))[:160, :160]
    part = np.full_like(truth, 255)
    part[:80, :80] = truth[:80, :80]
    Image.fromarray(part).save(root / "labels" / "photo.png")
    Image.fromarray(np.where(part == 255, 7, part).astype(np.uint8)).save(root / "labels7" / "photo.png")
    Image.fromarray(np.full_like(truth, 255)).save(root / "nolabels" / "photo.png")
    return {"root": root, **{n: root / n for n in ("photo", "scene", "plain", "grey", "labels", "labels7", "nolabels")}}


def _changed(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a if not np.array_equal(a[k].numpy(), b[k].numpy())}


def _batchnorm_names(model: Any) -> tuple[set[str], set[str]]:
    """State-dict names of the BatchNorm layers' running statistics, and of their affine parameters."""
    from jess_geo.training.batchnorm import batchnorm_layers

    layers = {id(m) for m in batchnorm_layers(model)}
    stats, affine = set(), set()
    for name, m in model.named_modules():
        if id(m) in layers:
            stats |= {f"{name}.running_mean", f"{name}.running_var", f"{name}.num_batches_tracked"}
            affine |= {f"{name}.weight", f"{name}.bias"}
    return stats, affine


def test_adabn_changes_the_batchnorm_statistics_only_and_info_shows_it(data: dict[str, Path], run_cli: Callable) -> None:
    out = data["root"] / "adabn"
    res = run_cli("adapt", DEMO, "--method", "adabn", "--target-images", data["photo"], "--output-dir", out,
                  "--samples", "4", *CHEAP, "--json")
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["method"] == "adabn" and summary["model"] == str(out / "model.pt")
    assert summary["base_model"]["sha256"] == sha256(DEMO) and summary["settings"]["samples"] == 4
    assert set(summary["before"]) == {"entropy", "energy"} == set(summary["after"])
    base, adapted = load_model_file(DEMO), load_model_file(out / "model.pt")
    stats, _ = _batchnorm_names(base.model)
    changed = _changed(base.model.state_dict(), adapted.model.state_dict())
    assert changed and changed <= stats, sorted(changed - stats)[:5]
    meta = adapted.metadata
    assert meta["adaptation"]["method"] == "adabn" and meta["adaptation"]["base_model"]["name"] == "demo_model.pt"
    assert {k: meta[k] for k in ("classes", "bands", "normalization", "resolution")} == {
        k: base.metadata[k] for k in ("classes", "bands", "normalization", "resolution")}
    shown = run_cli("info", out / "model.pt").stdout
    assert f"adaptation:   adabn of demo_model.pt (sha256 {sha256(DEMO)[:12]})" in shown and "samples 4" in shown


def test_tent_changes_batchnorm_affine_parameters_and_statistics_only(data: dict[str, Path]) -> None:
    out = data["root"] / "tent" / "model.pt"
    summary = adapt_tent(DEMO, data["photo"], out, steps=2, samples=4, crop_size=64, batch_size=4)
    assert summary["settings"]["steps"] == 2 and "re-estimated" in summary["settings"]["running_statistics"]
    base, adapted = load_model_file(DEMO), load_model_file(out)
    stats, affine = _batchnorm_names(base.model)
    changed = _changed(base.model.state_dict(), adapted.model.state_dict())
    assert changed <= stats | affine, sorted(changed - stats - affine)[:5]
    assert changed & affine and changed & stats  # both moved: trained scales/shifts, target statistics
    assert adapted.metadata["adaptation"]["method"] == "tent"


def _classes(run_cli: Callable, model: Path, scene: Path, out: Path) -> np.ndarray:
    res = run_cli("predict", scene, "--model", model, "-o", out, "--no-vector", "--quiet")
    assert res.exit_code == 0, res.stderr
    with rasterio.open(out) as src:
        return src.read(1)


def test_histmatch_maps_a_colour_shifted_scene_back(data: dict[str, Path], run_cli: Callable) -> None:
    """Predicting the colour-shifted scene with the histmatch model agrees with the unshifted
    predict far better than the base model does (the weights are the same: only the table differs)."""
    out = data["root"] / "histmatch"
    res = run_cli("adapt", DEMO, "--method", "histmatch", "--images", SAMPLE / "train" / "images",
                  "--target-images", data["scene"], "--output-dir", out, *CHEAP, "--json")
    assert res.exit_code == 0, res.stderr
    meta = read_metadata(out / "model.pt")
    assert meta["colour_alignment"]["kind"] == "histogram_matching" and len(meta["colour_alignment"]["bands"]) == 3
    pred = data["root"] / "pred"
    pred.mkdir()
    reference = _classes(run_cli, DEMO, data["plain"] / "scene.tif", pred / "plain.tif")
    base = _classes(run_cli, DEMO, data["scene"] / "scene.tif", pred / "base.tif")
    matched = _classes(run_cli, out / "model.pt", data["scene"] / "scene.tif", pred / "matched.tif")
    valid = reference != 255
    agree_base, agree_matched = (base[valid] == reference[valid]).mean(), (matched[valid] == reference[valid]).mean()
    assert agree_matched > 0.9 and agree_matched > agree_base + 0.2, (agree_base, agree_matched)
    assert "colour:       histogram_matching of 3 band(s)" in run_cli("info", out / "model.pt").stdout


def test_fewshot_ignores_unlabelled_pixels(data: dict[str, Path]) -> None:
    """Unlabelled as 255 or as a named value: the same training (identical weights); the pixel count
    is that of the labelled quarter only."""
    kw: dict[str, Any] = {"steps": 1, "samples": 4, "crop_size": 64, "batch_size": 4}
    a = adapt_fewshot(DEMO, data["photo"], data["labels"], data["root"] / "fs255" / "model.pt", **kw)
    b = adapt_fewshot(DEMO, data["photo"], data["labels7"], data["root"] / "fs7" / "model.pt", unlabelled_value=7, **kw)
    quarter = int((np.asarray(Image.open(data["labels"] / "photo.png"))[::2, ::2] != 255).sum())
    assert abs(a["settings"]["labelled_pixels"] - quarter) <= 0.02 * quarter
    assert a["settings"]["labelled_pixels"] == b["settings"]["labelled_pixels"]
    wa, wb = (load_model_file(d / "model.pt").model.state_dict() for d in (data["root"] / "fs255", data["root"] / "fs7"))
    assert not _changed(wa, wb)
    assert _changed(load_model_file(DEMO).model.state_dict(), wa)
    assert {"accuracy", "miou"} <= set(a["after"])


def test_fewshot_replays_the_labelled_source_data(data: dict[str, Path], run_cli: Callable) -> None:
    """--images/--masks: half of each batch from the source data; the record names it, and the
    weights differ from the same run without replay (same seed, same target crops)."""
    common = ["adapt", DEMO, "--method", "fewshot", "--target-images", data["photo"], "--target-masks", data["labels"],
              "--steps", "2", "--samples", "4", *CHEAP, "--json"]
    res = run_cli(*common, "--images", SAMPLE / "train" / "images", "--masks", SAMPLE / "train" / "masks",
                  "--output-dir", data["root"] / "replay")
    assert res.exit_code == 0, res.stderr
    settings = json.loads(res.stdout)["settings"]
    assert settings["source_share"] == 0.5
    assert settings["source_images"] == ["plot_a.tif", "plot_b.tif", "plot_c.tif"]
    assert run_cli(*common, "--output-dir", data["root"] / "no_replay").exit_code == 0
    plain = read_metadata(data["root"] / "no_replay" / "model.pt")["adaptation"]["settings"]
    assert plain["source_share"] == 0.0 and plain["source_images"] == []
    wa, wb = (load_model_file(data["root"] / d / "model.pt").model.state_dict() for d in ("replay", "no_replay"))
    assert _changed(wa, wb)


def test_an_old_model_file_without_the_new_keys_still_loads() -> None:
    meta = read_metadata(DEMO)
    assert "colour_alignment" not in meta and meta.get("adaptation") is None
    old_jess = dict(meta, adaptation={"lambda": 0.01, "epochs": 10, "target_images": []})  # before `method` existed
    assert validate_metadata(old_jess, "old")["adaptation"]["lambda"] == 0.01


@pytest.mark.parametrize("change, field", [
    ({"adaptation": {"method": "magic"}}, "adaptation.method"),
    ({"colour_alignment": {"kind": "histogram_matching", "bands": [{"input": [0, 1], "output": [0, 1]}]}},
     "colour_alignment.bands"),
    ({"colour_alignment": {"kind": "histogram_matching", "bands": [{"input": [2, 1], "output": [0, 1]}] * 3}},
     "colour_alignment.bands[0].input"),
])
def test_bad_new_keys_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelFileError, match=re.escape(f"field {field} ")):
        validate_metadata(dict(read_metadata(DEMO), **change), "Model file m.pt")


@pytest.mark.parametrize("case, args, words", [
    ("missing folder", ["--method", "adabn", "--target-images", "{root}/nowhere"], "does not exist"),
    ("wrong band count", ["--method", "adabn", "--target-images", "{grey}"], "band"),
    ("flag of another method", ["--method", "adabn", "--target-images", "{photo}", "--lambda", "0.1"], "does not take --energy-weight"),
    ("no labelled pixel", ["--method", "fewshot", "--target-images", "{photo}", "--target-masks", "{nolabels}"], "no labelled pixel"),
    ("replay without masks", ["--method", "fewshot", "--target-images", "{photo}", "--target-masks", "{labels}",
                              "--images", "{photo}"], "needs both --images and --masks"),
    ("replay share of one", ["--method", "fewshot", "--target-images", "{photo}", "--target-masks", "{labels}",
                             "--images", "{photo}", "--masks", "{labels}", "--source-share", "1"], "below 1"),
    ("histmatch without source", ["--method", "histmatch", "--target-images", "{photo}"], "needs --images"),
    ("steps for jess", ["--method", "jess", "--steps", "3"], "does not take --steps"),
])
def test_bad_input_is_one_line_and_writes_nothing(case: str, args: list[str], words: str, data: dict[str, Path],
                                                  run_cli: Callable, assert_cli_error: Callable) -> None:
    out = data["root"] / "refused" / case.replace(" ", "_")
    args = [a.format(**{k: str(v) for k, v in data.items()}) for a in args]
    message = assert_cli_error(run_cli("adapt", DEMO, *args, "--output-dir", out, *CHEAP))
    assert words in message, message
    assert not out.exists()


def test_an_existing_output_is_kept_without_overwrite(data: dict[str, Path], run_cli: Callable,
                                                      assert_cli_error: Callable) -> None:
    out = data["root"] / "kept"
    out.mkdir()
    (out / "model.pt").write_bytes(b"someone else's model")
    args = ["adapt", DEMO, "--method", "adabn", "--target-images", data["photo"], "--output-dir", out, "--samples", "4", *CHEAP]
    assert "--overwrite" in assert_cli_error(run_cli(*args))
    assert (out / "model.pt").read_bytes() == b"someone else's model"
    assert run_cli(*args, "--overwrite").exit_code == 0
    assert read_metadata(out / "model.pt")["adaptation"]["method"] == "adabn"
    assert sorted(p.name for p in out.iterdir()) == ["model.pt"]  # no temporary file left


def test_fewshot_reads_polygon_labels_and_outside_is_unlabelled(data: dict[str, Path]) -> None:
    """A GeoPackage of one lichen polygon (pixel coordinates of the photo): its pixels are the only labelled ones."""
    import geopandas as gpd
    import shapely

    from jess_geo.adaptation.common import labelled_scenes

    folder = data["root"] / "polygons"
    folder.mkdir()
    gpd.GeoDataFrame({"class_id": [2]}, geometry=[shapely.box(10, -90, 90, -10)], crs=None).to_file(folder / "photo.gpkg")
    (scene,) = labelled_scenes(data["photo"], folder, read_metadata(DEMO))
    lichen = read_metadata(DEMO)["classes"].index(next(c for c in read_metadata(DEMO)["classes"] if c["id"] == 2))
    assert set(np.unique(scene.target)) == {lichen, 255}
    assert int((scene.target == lichen).sum()) == 40 * 40  # 80 x 80 px at the model's photo scale 0.5
