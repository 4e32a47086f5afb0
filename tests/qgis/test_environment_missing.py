"""A missing or broken jess-geo gives a clear message in QGIS, never a traceback."""

from __future__ import annotations

import os
import stat

import pytest
from qgis.core import Qgis, QgsProcessingException, QgsProject, QgsRasterLayer

from plugin_testing import write_scene

pytestmark = pytest.mark.skipif(os.name == "nt", reason="uses a POSIX shell script as a broken executable")


def _broken_executable(folder) -> str:
    path = folder / "jess-geo"
    path.write_text(
        "#!/bin/sh\n"
        "echo 'Traceback (most recent call last):' >&2\n"
        "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\n"
        "exit 1\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _open_dialog(qtbot, plugin):
    plugin.action.trigger()
    dialog = plugin.dialog
    qtbot.waitUntil(lambda: dialog.isVisible() and dialog.engine is not None, timeout=30000)
    return dialog


def _assert_clear_message(dialog, qgis_iface, expected: str):
    assert not dialog.engine.ok
    text = dialog.environment_label.text()
    assert expected in text
    assert "pip install jess-geo" in text and "Traceback" not in text
    assert not dialog.run_button.isEnabled()
    assert dialog.start_run() is None and dialog.task is None
    warnings = qgis_iface.messageBar().get_messages(Qgis.Warning)
    assert any(expected in w and "pip install jess-geo" in w for w in warnings), warnings


def test_configured_path_that_does_not_exist(qtbot, qgis_iface, loaded_plugin, plugin_settings, tmp_path):
    qgis_iface.messageBar().clear_messages()
    plugin_settings(executable=str(tmp_path / "gone" / "bin" / "jess-geo"))
    dialog = _open_dialog(qtbot, loaded_plugin)
    _assert_clear_message(dialog, qgis_iface, "was not found at")


def test_broken_environment(qtbot, qgis_iface, loaded_plugin, plugin_settings, tmp_path):
    qgis_iface.messageBar().clear_messages()
    plugin_settings(executable=_broken_executable(tmp_path))
    dialog = _open_dialog(qtbot, loaded_plugin)
    _assert_clear_message(dialog, qgis_iface, "does not work")
    assert "No module named 'torch'" in dialog.environment_label.text()


def test_nothing_configured_and_nothing_on_path(qtbot, qgis_iface, loaded_plugin, plugin_settings, tmp_path, monkeypatch):
    qgis_iface.messageBar().clear_messages()
    plugin_settings(executable="")
    monkeypatch.delenv("JESS_GEO_EXE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    dialog = _open_dialog(qtbot, loaded_plugin)
    _assert_clear_message(dialog, qgis_iface, "not found on PATH")


def test_fixing_the_path_in_the_dialog_enables_run(
    qtbot, qgis_iface, loaded_plugin, plugin_settings, jess_geo_exe, tmp_path
):
    from qgis.core import QgsSettings

    plugin_settings(executable=str(tmp_path / "nothing"))
    dialog = _open_dialog(qtbot, loaded_plugin)
    assert not dialog.engine.ok
    dialog.engine_panel.executable_widget.setFilePath(jess_geo_exe)
    qtbot.waitUntil(lambda: dialog.engine is not None and dialog.engine.ok, timeout=300_000)
    assert QgsSettings().value("jess_geo/executable") == jess_geo_exe


def test_processing_algorithm_reports_the_message(qgis_processing, loaded_plugin, plugin_settings, tmp_path):
    import processing

    plugin_settings(executable=_broken_executable(tmp_path))
    scene = write_scene(tmp_path / "scene.tif")
    layer = QgsRasterLayer(str(scene), "scene", "gdal")
    QgsProject.instance().addMapLayer(layer)
    with pytest.raises(QgsProcessingException) as error:
        processing.run("jessgeo:segmentraster", {"INPUT": layer, "OUTPUT": str(tmp_path / "out.tif")})
    assert "pip install jess-geo" in str(error.value) and "does not work" in str(error.value)
    assert not (tmp_path / "out.tif").exists()
