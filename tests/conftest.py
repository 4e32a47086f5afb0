"""Shared fixtures for the engine tests: paths, small raster writers, the real CLI, a tiny config.

Only the standard library and pytest are imported at module level, so this file also loads
under the QGIS test environment (tests/qgis has its own conftest.py on top of this one).
Helpers are handed out as fixtures (functions), never imported from this module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
SHARED_DATA = ROOT.parent / "shared" / "data"
BIOCRUST = SHARED_DATA / "biocrust_usa"
LANDSAT = SHARED_DATA / "landsat" / "l7_etm_olinda.tif"
ERROR_PREFIX = "jess-geo: error: "

# `make test` runs the engine suite in pytest-xdist workers (one per core). Each worker, and every
# jess-geo child it starts, keeps to one OpenMP/torch thread: two workers of two threads each on a
# 2-core machine spin-wait on each other (a 300-step tiny-net loop took 166 s with 2 threads and
# 7 s with 1 on a loaded 2-core machine). Set before any test module imports torch; a value the
# user exported wins.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_threads, "1")

# Small enough that one CPU epoch takes seconds: 4 steps of 4 crops of 64 px, a slim decoder.
TINY_SETTINGS: dict[str, Any] = {
    "samples_per_epoch": 16,
    "batch_size": 4,
    "crop_size": 64,
    "val_crop": 128,
    "photo_scale": 1.0,
    "decoder_channels": [16, 16, 16, 16, 16],
    "encoder_weights": "none",
    "warmup_epochs": 0,
    "seed": 0,
}


@pytest.fixture
def one_torch_thread() -> Any:
    """Run the test with one torch thread (restored afterwards): for many steps on tiny tensors,
    where a second thread only adds synchronisation. The figures do not depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture(scope="session")
def sample_train() -> dict[str, Path]:
    """The bundled training layout: three small GeoTIFF scenes, their masks and the class table."""
    paths = {
        "images": SAMPLE / "train" / "images",
        "masks": SAMPLE / "train" / "masks",
        "classes": SAMPLE / "classes.json",
    }
    for p in paths.values():
        if not p.exists():
            pytest.skip(f"sample data {p} is missing; run `make sample-data`")
    return paths


@pytest.fixture(scope="session")
def biocrust_dir() -> Path:
    """The real biocrust photos (skips when the shared data set is not on this machine)."""
    if not (BIOCRUST / "images").is_dir() or not (BIOCRUST / "classes.json").is_file():
        pytest.skip(f"real data {BIOCRUST} is not available on this machine")
    return BIOCRUST


@pytest.fixture(scope="session")
def landsat_tif() -> Path:
    """The real 6-band Landsat 7 scene (skips when absent)."""
    if not LANDSAT.is_file():
        pytest.skip(f"real data {LANDSAT} is not available on this machine")
    return LANDSAT


def _cli_command() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "jess-geo"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jess-geo")
    if found:
        return [found]
    return [sys.executable, "-m", "jess_geo.cli.main"]


@pytest.fixture(scope="session")
def jess_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run the installed `jess-geo` command: ``jess_cli("info", path, cwd=..., timeout=...)``."""

    def run(*args: Any, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        env = dict(os.environ, COLUMNS="200")
        env.pop("PYTHONWARNINGS", None)
        return subprocess.run(
            [*_cli_command(), *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


class CliResult:
    """What an in-process CLI run printed: same fields as ``subprocess.CompletedProcess``."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    @property
    def exit_code(self) -> int:
        return self.returncode


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """Run the `jess-geo` command line in this process: ``run_cli("info", path)`` -> CliResult.

    Same error mapping as the console script (``jess_geo.cli.main.run``), stdout and stderr
    captured separately; no interpreter start-up per call.
    """
    from click.testing import CliRunner

    from jess_geo.cli.main import run

    def invoke(*args: Any, cwd: Path | None = None) -> CliResult:
        runner = CliRunner()
        old, environ = Path.cwd(), dict(os.environ)
        with runner.isolation(env={"COLUMNS": "200"}) as (out, err, _):
            try:
                if cwd is not None:
                    os.chdir(cwd)
                code = run([str(a) for a in args])
            finally:
                os.chdir(old)
                # A command may set variables (Lightning's PL_GLOBAL_SEED...): none leak into later tests.
                os.environ.clear()
                os.environ.update(environ)
            return CliResult(code, out.getvalue().decode(), err.getvalue().decode())

    return invoke


@pytest.fixture(scope="session")
def cli_command() -> list[str]:
    """The argv prefix that starts the real `jess-geo` command (for Popen-based tests)."""
    return _cli_command()


@pytest.fixture(scope="session")
def assert_cli_error() -> Callable[..., str]:
    """Check a failed CLI run (``run_cli`` or ``jess_cli`` result): non-zero exit, exactly one stderr
    line `jess-geo: error: ...`, no traceback; returns the message after the prefix."""

    def check(proc: CliResult | subprocess.CompletedProcess, code: int | None = 2) -> str:
        assert proc.returncode != 0, f"expected a failure, got exit 0\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        if code is not None:
            assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{proc.stderr}"
        assert lines[0].startswith(ERROR_PREFIX), lines[0]
        message = lines[0][len(ERROR_PREFIX):]
        # One sentence that says what is wrong and how to fix it: "<problem>; <remedy>."
        assert message.rstrip().endswith((".", ")")), message
        return message

    return check


@pytest.fixture(scope="session")
def write_raster() -> Callable[..., Path]:
    """Write a small raster with rasterio.

    ``write_raster(path, data, crs="EPSG:32612", transform=None, nodata=None, alpha=False,
    mask=None, driver=None)``: ``data`` is ``(bands, H, W)`` or ``(H, W)``; ``crs=None`` writes an
    ungeoreferenced file; ``alpha`` marks the last band as alpha; ``mask`` (bool ``(H, W)``, True =
    valid) is written as an internal GDAL mask.
    """
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.enums import ColorInterp

    def write(
        path: Path,
        data: Any,
        crs: str | None = "EPSG:32612",
        transform: Affine | None = None,
        nodata: float | None = None,
        alpha: bool = False,
        mask: Any = None,
        driver: str | None = None,
    ) -> Path:
        path = Path(path)
        arr = np.asarray(data)
        if arr.ndim == 2:
            arr = arr[None]
        count, height, width = arr.shape
        if driver is None:
            driver = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "GTiff")
        profile: dict[str, Any] = {"driver": driver, "width": width, "height": height, "count": count, "dtype": arr.dtype.name}
        if crs is not None:
            profile["crs"] = crs
            profile["transform"] = transform or Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)
        elif transform is not None:
            profile["transform"] = transform
        if nodata is not None:
            profile["nodata"] = nodata
        if driver == "GTiff":
            # GDAL would take the 4th band of a 4-band byte GeoTIFF for alpha; say what it is.
            profile["photometric"] = "RGB" if (alpha and count == 4) else "MINISBLACK"
            if alpha:
                profile["alpha"] = "YES"
        import warnings

        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(arr)
                if alpha and driver != "GTiff":
                    dst.colorinterp = [*dst.colorinterp[:-1], ColorInterp.alpha]
                if mask is not None:
                    dst.write_mask(np.where(np.asarray(mask, dtype=bool), 255, 0).astype("uint8"))
        for side in (Path(str(path) + ".aux.xml"),):
            side.unlink(missing_ok=True)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., Path]:
    """Write a YAML training config for a seconds-long CPU run: ``tiny_config(folder, **overrides)``."""

    def write(folder: Path, **overrides: Any) -> Path:
        import yaml

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "tiny.yaml"
        path.write_text(yaml.safe_dump({**TINY_SETTINGS, **overrides}, sort_keys=True), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def write_user_gpkg() -> Callable[..., Path]:
    """Write a user's GeoPackage: a point layer ``plots`` (plots A1, B2) with its own default style.

    ``write_user_gpkg(path, origin=(x, y), crs="EPSG:32725", qml="<qgis>my red dots</qgis>",
    version=None)``; ``version="1.2"`` writes GeoPackage 1.2, as the GDAL of QGIS 3.22 does.
    """
    import sqlite3

    def write(path: Path, origin: tuple[float, float] = (500010, 9099990), crs: str = "EPSG:32725",
              qml: str = "<qgis>my red dots</qgis>", version: str | None = None) -> Path:
        import numpy as np
        import pyogrio.raw
        import shapely

        x, y = origin
        pts = shapely.to_wkb(np.array([shapely.Point(x, y), shapely.Point(x + 10, y - 10)], dtype=object))
        options = {"dataset_options": {"VERSION": version}} if version else {}
        pyogrio.raw.write(str(path), geometry=pts, field_data=[np.array(["A1", "B2"], dtype=object)], fields=["plot"],
                          layer="plots", driver="GPKG", geometry_type="Point", crs=crs, **options)
        con = sqlite3.connect(path)
        with con:
            con.execute("CREATE TABLE layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT, "
                        "f_table_schema TEXT, f_table_name TEXT, f_geometry_column TEXT, styleName TEXT, styleQML TEXT, "
                        "styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT, ui TEXT, update_time DATETIME)")
            con.execute("INSERT INTO layer_styles (f_table_name, f_geometry_column, styleName, styleQML, useAsDefault)"
                        " VALUES ('plots', 'geom', 'my plots', ?, 1)", (qml,))
        con.close()
        return path

    return write


@pytest.fixture(scope="session")
def demo_onnx(tmp_path_factory: pytest.TempPathFactory, run_cli: Callable[..., CliResult]) -> Path:
    """The bundled demo model exported to ONNX with the real command line, once per test run.

    The export (about 10 s) is shared by the xdist workers of one run through a lock file in the
    run's own base folder; its printed report is kept beside it (``demo_model.export.txt``).
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's folder, shared by its workers (pytest-N/popen-gwK -> pytest-N)
    out = base / "demo_model.onnx"
    with FileLock(str(out) + ".lock"):
        if not out.is_file():
            result = run_cli("export", ROOT / "jess_geo" / "assets" / "demo_model.pt", out)
            assert result.returncode == 0, result.stderr
            out.with_suffix(".export.txt").write_text(result.stdout, encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def trained_run(
    tmp_path_factory: pytest.TempPathFactory,
    sample_train: dict[str, Path],
    tiny_config: Callable[..., Path],
    run_cli: Callable[..., CliResult],
) -> dict[str, Any]:
    """One real, seconds-long `jess-geo train --epochs 1` on the sample data (in-process), shared by the tests."""
    base = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(base / "config")
    out = base / "run"
    proc = run_cli(
        "train", "--images", sample_train["images"], "--masks", sample_train["masks"],
        "--classes", sample_train["classes"], "--config", cfg, "--output-dir", out,
        "--epochs", 1, "--quiet", "--json", cwd=base,
    )
    assert proc.returncode == 0, proc.stderr
    return {"out": out, "model": out / "model.pt", "config": cfg, "stdout": proc.stdout, "stderr": proc.stderr}
