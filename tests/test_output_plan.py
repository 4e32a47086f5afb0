"""The output plan: one place names and checks every output; ``--dry-run --json`` says what a run writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from jess_geo.errors import OutputError
from jess_geo.inference.outputs import AUTO, check_outputs, plan_outputs

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_data" / "scene.tif"


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """A scene in its own folder (``d/site.tif``) and an empty output folder ``o``."""
    (tmp_path / "d").mkdir()
    (tmp_path / "o").mkdir()
    shutil.copy(SCENE, tmp_path / "d" / "site.tif")
    return tmp_path


def one_error(r: Any) -> str:
    assert r.exit_code == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jess-geo: error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_named_output_drift_case_dry_run_says_what_the_run_writes(site: Path, run_cli: Callable[..., Any]) -> None:
    """Issue 9: with ``-o /o/x_classes.tif`` the engine writes /o/x_classes.gpkg and /o/x_cover.csv."""
    scene, out = site / "d" / "site.tif", site / "o" / "x_classes.tif"
    before = listing(site)
    dry = run_cli("predict", scene, "-o", out, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert listing(site) == before  # a dry run writes nothing
    (line,) = [json.loads(x) for x in dry.stdout.splitlines()]
    assert line["stage"] == "plan" and line["scene"] == str(scene)
    assert line["outputs"] == {
        "classes": str(out), "vector": str(site / "o" / "x_classes.gpkg"), "vector_layer": "classes",
        "probabilities": None, "energy": None,
        "cover_csv": str(site / "o" / "x_cover.csv"), "cover_json": str(site / "o" / "x_cover.json"),
    }
    assert line["tiles"] == 2 and line["working_size"] == [320, 256] and line["scale"] == 0.5
    assert (line["tile_size"], line["overlap"]) == (256, 32)
    real = run_cli("predict", scene, "-o", out, "--quiet")
    assert real.exit_code == 0, real.stderr
    written = {str(site / p) for p in set(listing(site)) - set(before)}
    planned = {v for k, v in line["outputs"].items() if v and k != "vector_layer"}
    sidecars = {str(out) + ".aux.xml", str(out.with_suffix(".qml"))}  # category names, QGIS style: part of the raster
    assert written == planned | sidecars


def test_default_names_and_human_dry_run(site: Path, run_cli: Callable[..., Any]) -> None:
    scene = site / "d" / "site.tif"
    r = run_cli("predict", scene, "--dry-run", "--probabilities", site / "o" / "p.tif")
    assert r.exit_code == 0, r.stderr
    assert "2 tile(s) of 256 px (overlap 32), working size 320 x 256 px" in r.stdout
    for name in ("site_classes.tif", "site_classes.gpkg (layer classes)", "site_cover.csv", "site_cover.json", "p.tif"):
        assert name in r.stdout
    assert listing(site) == ["d", "d/site.tif", "o"]


def test_plan_outputs_library() -> None:
    plan = plan_outputs("/d/site.tif")
    assert plan.files() == {"classes": Path("/d/site_classes.tif"), "vector": Path("/d/site_classes.gpkg"),
                            "cover_csv": Path("/d/site_cover.csv"), "cover_json": Path("/d/site_cover.json")}
    plan = plan_outputs("/d/site.tif", output="/o/x_classes.tif", vector=None, cover=False, energy="/o/e.tif")
    assert plan.files() == {"classes": Path("/o/x_classes.tif"), "energy": Path("/o/e.tif")}
    assert plan_outputs("/vsizip/a.zip/s.tif", vector=AUTO).classes == Path.cwd() / "s_classes.tif"


@pytest.mark.trust
@pytest.mark.parametrize("case", ["exists", "scene", "model", "twice", "folder", "img", "vector_ext", "two_scenes"])
def test_bad_output_refused_in_one_line_before_any_work(site: Path, run_cli: Callable[..., Any], case: str) -> None:
    scene, o = site / "d" / "site.tif", site / "o"
    model = o / "m.pt"
    shutil.copy(ROOT / "jess_geo" / "assets" / "demo_model.pt", model)
    args: list[Any] = [scene, "--model", model]
    expect = {
        "exists": "exists already; pass --overwrite", "scene": "same file as an input", "model": "same file as an input",
        "twice": "given for two outputs", "folder": "is a folder", "img": "name it .tif or .tiff",
        "vector_ext": ".gpkg (GeoPackage)", "two_scenes": "would both write",
    }[case]
    if case == "exists":
        (site / "d" / "site_classes.tif").write_bytes(b"keep me")
    elif case == "scene":
        args += ["-o", scene, "--overwrite"]
    elif case == "model":
        args += ["--vector", model, "--overwrite"]
    elif case == "twice":
        args += ["-o", o / "c.tif", "--probabilities", o / "c.tif"]
    elif case == "folder":
        (o / "c.tif").mkdir()
        args += ["-o", o / "c.tif", "--overwrite"]
    elif case == "img":
        args += ["-o", o / "c.img"]
    elif case == "vector_ext":
        args += ["--vector", o / "v.xyz"]
    elif case == "two_scenes":
        shutil.copy(scene, site / "d" / "site.tiff")
        args = [scene, site / "d" / "site.tiff", "--model", model]
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*")}
    line = one_error(run_cli("predict", *args))
    assert expect in line, line
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*")} == before  # nothing written, nothing touched
    if case == "exists":
        assert (site / "d" / "site_classes.tif").read_bytes() == b"keep me"


def test_check_outputs_library_refuses_an_input_and_a_duplicate(tmp_path: Path) -> None:
    a = plan_outputs(tmp_path / "a.tif", output=tmp_path / "x.tif")
    b = plan_outputs(tmp_path / "b.tif", output=tmp_path / "x.tif")
    with pytest.raises(OutputError, match="would both write"):
        check_outputs([a, b])
    with pytest.raises(OutputError, match="same file as an input"):
        check_outputs([plan_outputs(tmp_path / "a.tif", output=tmp_path / "m.pt")], inputs=[tmp_path / "m.pt"])


def test_layer_option_names_the_vector_layer(site: Path, run_cli: Callable[..., Any]) -> None:
    import pyogrio

    out = site / "o" / "x.tif"
    r = run_cli("predict", site / "d" / "site.tif", "-o", out, "--layer", "crust_map", "--quiet")
    assert r.exit_code == 0, r.stderr
    layers = [str(name) for name, _ in pyogrio.list_layers(site / "o" / "x.gpkg")]
    assert "crust_map" in layers and "classes" not in layers
