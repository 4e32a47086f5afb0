"""Shared fixtures for the QGIS plugin tests (real QGIS, real jess-geo, nothing mocked).

Run with:
    QT_QPA_PLATFORM=offscreen HOME=$(mktemp -d) .venv-qgis/bin/python -m pytest tests/qgis

Without QGIS (e.g. under the main .venv) only the pure tests (test_runner.py,
test_environment.py) are collected; every other file here is ignored.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN_PARENT = REPO / "qgis_plugin"
PLUGIN_NAME = "jess_geo_qgis"
PLUGIN_DIR = PLUGIN_PARENT / PLUGIN_NAME

if str(PLUGIN_PARENT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_PARENT))


def _qgis_available() -> bool:
    try:
        return importlib.util.find_spec("qgis") is not None and importlib.util.find_spec("qgis.core") is not None
    except (ImportError, ValueError):
        return False


def _pytest_qgis_available() -> bool:
    return importlib.util.find_spec("pytest_qgis") is not None and importlib.util.find_spec("pytestqt") is not None


QGIS_AVAILABLE = _qgis_available() and _pytest_qgis_available()
PURE_TESTS = {"test_runner.py", "test_environment.py"}

if not QGIS_AVAILABLE:
    collect_ignore = [
        p.name for p in Path(__file__).parent.glob("*.py") if p.name.startswith("test_") and p.name not in PURE_TESTS
    ]


def pytest_report_header(config):
    if not QGIS_AVAILABLE:
        return (
            "tests/qgis: QGIS (or pytest-qgis/pytest-qt) is not importable here; only the pure "
            "plugin tests run. Use .ci/qgis_setup.sh and .venv-qgis for the rest."
        )
    return None


def find_jess_geo() -> str:
    """The real jess-geo executable: $JESS_GEO_EXE or <repo>/.venv/bin/jess-geo ('' if absent)."""
    candidates = [os.environ.get("JESS_GEO_EXE", ""), str(REPO / ".venv" / "bin" / "jess-geo")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return ""


def _clean_env():
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "GDAL_DATA") and not k.startswith("PROJ_")}


_PREDICT_STATE = {}


@pytest.fixture(scope="session")
def jess_geo_exe() -> str:
    """The jess-geo executable; skips when it is not installed."""
    exe = find_jess_geo()
    if not exe:
        pytest.skip("jess-geo is not installed: set JESS_GEO_EXE or create <repo>/.venv (pip install -e .)")
    return exe


@pytest.fixture(scope="session")
def jess_geo_predict(jess_geo_exe) -> str:
    """The jess-geo executable, once its `predict` command exists; skips otherwise."""
    if "ok" not in _PREDICT_STATE:
        result = subprocess.run(
            [jess_geo_exe, "predict", "--help"], capture_output=True, text=True, env=_clean_env(), timeout=300
        )
        _PREDICT_STATE["ok"] = result.returncode == 0 and "--json-progress" in result.stdout
        _PREDICT_STATE["why"] = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
    if not _PREDICT_STATE["ok"]:
        pytest.skip(f"`jess-geo predict --json-progress` is not available yet: {_PREDICT_STATE['why'][0]}")
    return jess_geo_exe


@pytest.fixture(scope="session")
def model_path() -> str:
    """The model the run tests use: $JESS_GEO_TEST_MODEL, else '' (the demo model)."""
    return os.environ.get("JESS_GEO_TEST_MODEL", "")


@pytest.fixture(scope="session")
def demo_model_info(jess_geo_exe, model_path) -> dict:
    """The test model's metadata (the demo model's by default), from `jess-geo info --json`."""
    import json

    command = [jess_geo_exe, "info", model_path, "--json"] if model_path else [jess_geo_exe, "info", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), timeout=300)
    if result.returncode != 0:
        pytest.skip(f"`jess-geo info --json` failed: {result.stderr.strip()[-300:]}")
    return json.loads(result.stdout)


def write_scene(path: Path, width: int = 96, height: int = 80, bands: int = 3, epsg: int = 32612) -> Path:
    """Write a small real GeoTIFF (uint8, UTM) with smooth fields and sharp patches."""
    import numpy as np
    from osgeo import gdal, osr

    rows, cols = np.mgrid[0:height, 0:width]
    driver = gdal.GetDriverByName("GTiff")
    dataset = driver.Create(str(path), width, height, bands, gdal.GDT_Byte, ["TILED=YES", "COMPRESS=DEFLATE"])
    dataset.SetGeoTransform((400000.0, 2.0, 0.0, 4200000.0, 0.0, -2.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    patches = ((rows // 16 + cols // 24) % 3) * 70
    for band in range(1, bands + 1):
        field = (np.sin(cols / (7.0 + band)) * 40 + np.cos(rows / (5.0 + band)) * 40 + 100 + patches / band)
        dataset.GetRasterBand(band).WriteArray(np.clip(field, 0, 255).astype("uint8"))
    dataset.FlushCache()
    dataset = None
    return path


@pytest.fixture
def scene(tmp_path, demo_model_info) -> Path:
    """A 96 x 80 px GeoTIFF in EPSG:32612 with as many bands as the demo model reads."""
    bands = max([3] + [int(b) for b in demo_model_info.get("bands", [])])
    folder = tmp_path / "scene"
    folder.mkdir()
    return write_scene(folder / "small_scene.tif", bands=bands)


@pytest.fixture
def plugin_settings():
    """Set QgsSettings for the plugin for one test and restore them afterwards."""
    from qgis.core import QgsSettings

    keys = ("jess_geo/executable", "jess_geo/model", "jess_geo/device")
    saved = {key: QgsSettings().value(key, None) for key in keys}

    def apply(**values):
        for name, value in values.items():
            QgsSettings().setValue(f"jess_geo/{name}", value)

    yield apply
    for key, value in saved.items():
        if value is None:
            QgsSettings().remove(key)
        else:
            QgsSettings().setValue(key, value)


@pytest.fixture
def loaded_plugin(qgis_iface, qgis_new_project):
    """The plugin, loaded and started through QGIS's own plugin machinery (qgis.utils)."""
    import qgis.utils

    if str(PLUGIN_PARENT) not in qgis.utils.plugin_paths:
        qgis.utils.plugin_paths.append(str(PLUGIN_PARENT))
    qgis.utils.updateAvailablePlugins()
    assert PLUGIN_NAME in qgis.utils.available_plugins
    assert qgis.utils.loadPlugin(PLUGIN_NAME)
    assert qgis.utils.startPlugin(PLUGIN_NAME)
    plugin = qgis.utils.plugins[PLUGIN_NAME]
    yield plugin
    if PLUGIN_NAME in qgis.utils.active_plugins:
        dialog = plugin.dialog
        if dialog is not None and dialog.task is not None:
            dialog.task.cancel()
        assert qgis.utils.unloadPlugin(PLUGIN_NAME)
