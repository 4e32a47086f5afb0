"""The plugin loads and unloads through QGIS's own plugin machinery (qgis.utils)."""

from __future__ import annotations

import configparser
import re
import sys

import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction, QToolBar

from conftest import PLUGIN_DIR, PLUGIN_NAME

TOOLBAR = "JessGeoToolbar"
ACTION = "JessGeoSegmentAction"


def test_metadata_declares_minimum_version_and_processing_provider():
    metadata = configparser.ConfigParser()
    metadata.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")
    general = metadata["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert (PLUGIN_DIR / general["icon"]).is_file()
    for key in ("name", "description", "about", "version", "author", "email", "repository"):
        assert general.get(key), key


def test_plugin_sources_never_import_the_engine_or_pyqt_directly():
    forbidden = re.compile(r"^\s*(from|import)\s+(torch|rasterio|jess_geo\b|PyQt5|PyQt6)", re.MULTILINE)
    for source in PLUGIN_DIR.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not forbidden.search(text), source.name
        assert "exec_(" not in text, source.name


def test_plugin_loads_and_unloads_cleanly(qgis_iface, qgis_new_project):
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
        archive.extractall(tmp_path / "plugins")
    found = dict(qgis.utils.findPlugins(str(tmp_path / "plugins")))
    assert found[PLUGIN_NAME].get("general", "hasProcessingProvider") == "yes"
