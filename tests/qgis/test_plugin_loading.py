"""The plugin loads and unloads through QGIS's own plugin machinery (qgis.utils)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction, QToolBar

from plugin_testing import PLUGIN_DIR, PLUGIN_NAME

TOOLBAR = "JessGeoToolbar"
ACTION = "JessGeoSegmentAction"


def test_metadata_declares_minimum_version_and_processing_provider():
    metadata = configparser.ConfigParser()
    metadata.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")
    general = metadata["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert (PLUGIN_DIR / general["icon"]).is_file()
    for key in ("name", "description", "about", "version", "author"):
        assert general.get(key), key
    placeholders = ("example.org", "example.com", "todo", "fixme", "your name", "xxx")
    for key, value in general.items():
        assert not any(p in value.lower() for p in placeholders), (key, value)


def test_plugin_sources_never_import_the_engine_or_pyqt_directly():
    forbidden = re.compile(r"^\s*(from|import)\s+(torch|rasterio|jess_geo\b|PyQt5|PyQt6)", re.MULTILINE)
    for source in PLUGIN_DIR.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not forbidden.search(text), source.name
        assert "exec_(" not in text, source.name


def test_plugin_loads_and_unloads_cleanly(qgis_iface, qgis_new_project):
    # Tests that ran before may have imported plugin modules directly (not through QGIS's
    # plugin loader, which would track them): forget those, so what is checked below is what
    # loadPlugin imports and unloadPlugin removes.
    for name in [m for m in sys.modules if m == PLUGIN_NAME or m.startswith(PLUGIN_NAME + ".")]:
        del sys.modules[name]
    main_window = qgis_iface.mainWindow()
    qgis.utils.plugin_paths.append(str(PLUGIN_DIR.parent))
    qgis.utils.updateAvailablePlugins()
    assert PLUGIN_NAME in qgis.utils.available_plugins

    assert qgis.utils.loadPlugin(PLUGIN_NAME)
    assert qgis.utils.startPlugin(PLUGIN_NAME)
    assert PLUGIN_NAME in qgis.utils.active_plugins

    toolbar = main_window.findChild(QToolBar, TOOLBAR)
    assert toolbar is not None
    actions = [a for a in toolbar.actions() if a.objectName() == ACTION]
    assert len(actions) == 1 and actions[0].text() == "Segment with jess-geo"
    assert not actions[0].icon().isNull()
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("jessgeo") is not None
    assert registry.providerById("jessgeo").name() == "jess-geo"
    algorithm = registry.algorithmById("jessgeo:segmentraster")
    assert algorithm is not None and algorithm.displayName() == "Segment raster"
    names = {p.name() for p in algorithm.parameterDefinitions()}
    assert {"INPUT", "MODEL", "OUTPUT", "VECTOR_OUTPUT", "TILE_SIZE", "OVERLAP", "DEVICE",
            "MIN_AREA", "SIMPLIFY"} <= names
    assert "torch" not in sys.modules and "rasterio" not in sys.modules

    assert qgis.utils.unloadPlugin(PLUGIN_NAME)
    assert PLUGIN_NAME not in qgis.utils.active_plugins
    assert main_window.findChild(QToolBar, TOOLBAR) is None
    assert main_window.findChild(QAction, ACTION) is None
    assert registry.providerById("jessgeo") is None
    assert not [m for m in sys.modules if m == PLUGIN_NAME or m.startswith(PLUGIN_NAME + ".")]

    # A second load (plugin reloader, upgrade) works as well.
    assert qgis.utils.loadPlugin(PLUGIN_NAME) and qgis.utils.startPlugin(PLUGIN_NAME)
    assert main_window.findChild(QToolBar, TOOLBAR) is not None
    assert qgis.utils.unloadPlugin(PLUGIN_NAME)
    assert main_window.findChild(QToolBar, TOOLBAR) is None


def test_zip_holds_an_installable_plugin(tmp_path):
    import zipfile

    sys.path.insert(0, str(PLUGIN_DIR.parent))
    import build_zip

    archive_path = build_zip.build(tmp_path / "jess_geo_qgis.zip")
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
        assert all(name.startswith(PLUGIN_NAME + "/") for name in names)
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        licence = archive.read(f"{PLUGIN_NAME}/LICENSE").decode("utf-8")
        assert licence.startswith("MIT License") and "jess-geo developers" in licence
        assert licence == (PLUGIN_DIR.parents[1] / "LICENSE").read_text(encoding="utf-8")
        archive.extractall(tmp_path / "plugins")
    found = dict(qgis.utils.findPlugins(str(tmp_path / "plugins")))
    assert found[PLUGIN_NAME].get("general", "hasProcessingProvider") == "yes"


DESKTOP_CHECK = '''
import json
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QDialog, QToolBar
import qgis.utils

def check():
    result = {}
    try:
        name = "jess_geo_qgis"
        if name not in qgis.utils.active_plugins:
            qgis.utils.loadPlugin(name)
            qgis.utils.startPlugin(name)
        window = qgis.utils.iface.mainWindow()
        result["toolbar"] = window.findChild(QToolBar, "JessGeoToolbar") is not None
        qgis.utils.plugins[name].action.trigger()
        dialog = window.findChild(QDialog, "JessGeoSegmentDialog")
        result["dialog"] = bool(dialog is not None and dialog.isVisible())
        result["menu"] = [a.text() for a in qgis.utils.iface.rasterMenu().actions() if "jess" in a.text()]
        result["unloaded"] = qgis.utils.unloadPlugin(name)
        result["toolbar_after"] = window.findChild(QToolBar, "JessGeoToolbar") is not None
        result["menu_after"] = [a.text() for a in qgis.utils.iface.rasterMenu().actions() if "jess" in a.text()]
    except Exception:
        import traceback
        result["error"] = traceback.format_exc()
    with open(RESULT, "w") as handle:
        json.dump(result, handle)
    QApplication.instance().exit(0)

QTimer.singleShot(2000, check)
'''


@pytest.mark.skipif(shutil.which("xvfb-run") is None or shutil.which("qgis") is None,
                    reason="the QGIS desktop application or xvfb-run is not installed")
def test_plugin_in_the_real_desktop_application(tmp_path):
    """Smoke test in the real QGIS application (real QgisInterface, under Xvfb)."""
    result_path = tmp_path / "result.json"
    script = tmp_path / "check.py"
    script.write_text(f"RESULT = {str(result_path)!r}\n" + DESKTOP_CHECK)
    home = tmp_path / "home"
    home.mkdir()
    dropped = ("PYTHONPATH", "PYTHONHOME", "QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(QGIS_PLUGINPATH=str(PLUGIN_DIR.parent), HOME=str(home))
    subprocess.run(
        ["xvfb-run", "-a", "qgis", "--noversioncheck", "--nologo", "--profiles-path", str(tmp_path / "profiles"),
         "--code", str(script)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert result_path.is_file(), "QGIS did not run the check script"
    result = json.loads(result_path.read_text())
    assert "error" not in result, result.get("error")
    assert result == {"toolbar": True, "dialog": True, "menu": ["&jess-geo"], "unloaded": True,
                      "toolbar_after": False, "menu_after": []}
