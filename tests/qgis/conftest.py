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

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from plugin_testing import (  # noqa: E402
    PLUGIN_NAME,
    PLUGIN_PARENT,
    find_jess_geo,
    model_band_count,
    model_pixel_size,
    write_scene,
)

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
PURE_TESTS = {"test_runner.py", "test_environment.py"}  # no QGIS needed (they run real jess-geo processes)

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
    """The jess-geo executable, once its `predict` plans outputs (--dry-run); skips otherwise."""
    if "ok" not in _PREDICT_STATE:
        result = subprocess.run(
            [jess_geo_exe, "predict", "--help"], capture_output=True, text=True, env=_clean_env(), timeout=900
        )
        _PREDICT_STATE["ok"] = result.returncode == 0 and "--dry-run" in result.stdout
        _PREDICT_STATE["why"] = (result.stderr.strip().splitlines()[-1:] if result.returncode
                                 else ["this jess-geo's predict has no --dry-run"]) or [""]
    if not _PREDICT_STATE["ok"]:
        pytest.skip(f"`jess-geo predict --dry-run` (the output plan) is not available yet: {_PREDICT_STATE['why'][0]}")
    return jess_geo_exe


DEMO_MODEL = PLUGIN_PARENT.parent / "jess_geo" / "assets" / "demo_model.pt"


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> str:
    """The model the plugin tests run: $JESS_GEO_TEST_MODEL, else the demo model exported to ONNX.

    These tests are about the plugin (dialog, task, Processing, styling), not the network: the
    demo model's ONNX export (`jess-geo export`, checked against PyTorch there) gives the same
    classes, bands and tile size, and each `jess-geo info` / `predict` child starts without
    importing torch (about 1 s instead of 7). The .pt model itself still runs end to end through
    the plugin in test_corrections.py (segment, retrain, segment again in the dialog) and
    test_train.py (train and adapt).
    Falls back to '' (the demo .pt) with a warning when this jess-geo cannot export.
    """
    if os.environ.get("JESS_GEO_TEST_MODEL") is not None:
        return os.environ["JESS_GEO_TEST_MODEL"]
    exe = find_jess_geo()
    if not exe or not DEMO_MODEL.is_file():
        return ""
    target = tmp_path_factory.mktemp("onnx_model") / "demo_model.onnx"
    done = subprocess.run([exe, "export", str(DEMO_MODEL), str(target)], capture_output=True, text=True,
                          env=_clean_env(), timeout=900)
    if done.returncode != 0 or not target.is_file():
        import warnings

        warnings.warn(f"plugin tests use the demo .pt model: `jess-geo export` failed: {done.stderr.strip()[-300:]}")
        return ""
    return str(target)


@pytest.fixture(scope="session")
def demo_model_info(jess_geo_exe, model_path) -> dict:
    """The test model's metadata (the demo model's by default), from `jess-geo info --json`."""
    import json

    command = [jess_geo_exe, "info", model_path, "--json"] if model_path else [jess_geo_exe, "info", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), timeout=900)
    if result.returncode != 0:
        pytest.skip(f"`jess-geo info --json` failed: {result.stderr.strip()[-300:]}")
    return json.loads(result.stdout)


@pytest.fixture
def scene(tmp_path, demo_model_info) -> Path:
    """A 96 x 80 px GeoTIFF in EPSG:32612 with as many bands as the demo model reads."""
    folder = tmp_path / "scene"
    folder.mkdir()
    return write_scene(folder / "small_scene.tif", bands=model_band_count(demo_model_info),
                       pixel_size=model_pixel_size(demo_model_info))


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


def pytest_sessionfinish(session, exitstatus):
    session.config._jess_geo_exitstatus = int(exitstatus)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    """End the QGIS test process right after pytest's report, before QGIS's own teardown.

    The results are printed by then. Tearing down QgsApplication after ~50 tests that opened
    layers, tasks and GDAL datasets (through QGIS and through osgeo) aborted once in CI with
    "double free or corruption" *after* a green report, which turned a passing run into exit
    134. That teardown belongs to the test harness, not to the plugin (a user's QGIS never runs
    it); skipping it keeps the exit code equal to the test result.
    """
    status = getattr(config, "_jess_geo_exitstatus", None)
    if status is None or os.environ.get("JESS_GEO_QGIS_FULL_TEARDOWN"):
        return
    import gc

    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
