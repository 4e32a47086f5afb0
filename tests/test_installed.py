"""The package as a user installs it: a wheel in a fresh virtual environment, used through its console script.

CI builds the wheel and installs it (``.ci/wheel_venv.sh``), then runs these tests with
``JESS_GEO_INSTALLED_EXE`` set to that install's ``jess-geo``. Every command runs in a
subprocess from an empty folder, so nothing of the source tree can stand in for the install.
Without the variable the tests are skipped (the editable dev install is covered by the rest).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import jess_geo

INSTALLED = os.environ.get("JESS_GEO_INSTALLED_EXE", "")
ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_data" / "scene.tif"

pytestmark = [
    pytest.mark.trust,
    pytest.mark.skipif(
        not INSTALLED,
        reason="JESS_GEO_INSTALLED_EXE is not set (no wheel install to test; .ci/wheel_venv.sh makes one)",
    ),
]


def _run(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([*map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def exe() -> Path:
    path = Path(INSTALLED)
    assert path.is_file() and os.access(path, os.X_OK), f"JESS_GEO_INSTALLED_EXE={INSTALLED} is not an executable"
    return path


@pytest.fixture(scope="module")
def site_packages(exe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the install's interpreter imports jess_geo from (checked to be outside the source tree)."""
    proc = _run(exe.parent / "python", "-c", "import jess_geo; print(jess_geo.__file__)", cwd=tmp_path_factory.mktemp("empty"))
    assert proc.returncode == 0, proc.stderr
    package = Path(proc.stdout.strip()).parent
    assert ROOT not in package.parents, f"the install imports jess_geo from the source tree: {package}"
    assert package.parent.name == "site-packages", package
    return package


def _package_files(package: Path) -> set[str]:
    return {
        str(p.relative_to(package)) for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_install_holds_every_file_of_the_package(site_packages: Path) -> None:
    """Modules and data (the demo model, py.typed) all reach the wheel, not only the editable tree."""
    missing = _package_files(ROOT / "jess_geo") - _package_files(site_packages)
    assert missing == set(), f"in the source tree but not in the installed package: {sorted(missing)}"


def test_version_is_the_source_version(exe: Path, tmp_path: Path) -> None:
    proc = _run(exe, "--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"jess-geo, version {jess_geo.__version__}"


def test_info_describes_the_bundled_demo_model(exe: Path, site_packages: Path, tmp_path: Path) -> None:
    proc = _run(exe, "info", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line and not line.startswith(" "))
    assert Path(lines["model"].strip()) == site_packages / "assets" / "demo_model.pt"
    assert lines["jess-geo"].strip() == jess_geo.__version__
    assert "moss" in proc.stdout and "bare soil" in proc.stdout


def test_predict_the_sample_scene(exe: Path, tmp_path: Path) -> None:
    import rasterio

    out = tmp_path / "out"
    out.mkdir()
    proc = _run(exe, "predict", SCENE, "-o", out / "scene_classes.tif", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    written = {p.name for p in out.iterdir()}
    assert {"scene_classes.tif", "scene_classes.gpkg", "scene_cover.csv", "scene_cover.json"} <= written, written
    assert all(name.startswith("scene_") and ".part" not in name for name in written), written
    with rasterio.open(SCENE) as src, rasterio.open(out / "scene_classes.tif") as dst:
        assert (dst.width, dst.height, dst.crs, dst.transform) == (src.width, src.height, src.crs, src.transform)
        classes = dst.read(1)
    found = set(np.unique(classes).tolist()) - {255}
    assert found and found <= {0, 1, 2, 3}, found
    cover = (out / "scene_cover.csv").read_text(encoding="utf-8")
    assert "bare soil" in cover and "moss" in cover


def test_missing_scene_is_one_error_line(exe: Path, tmp_path: Path) -> None:
    proc = _run(exe, "predict", tmp_path / "no_such_scene.tif", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jess-geo: error: "), proc.stderr
    assert "no_such_scene.tif" in lines[0]
    assert list(tmp_path.iterdir()) == []
