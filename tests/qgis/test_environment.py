"""Finding and checking the jess-geo executable (real processes, no QGIS)."""

from __future__ import annotations

import os
import stat

import pytest

from jess_geo_qgis.environment import (
    INSTALL_HELP,
    check_executable,
    find_executable,
    info_command,
    interpret_info,
    interpret_version,
    model_defaults,
    EngineError,
)

from plugin_testing import find_jess_geo


def _script(path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_configured_path_wins_then_env_variable_then_path(tmp_path):
    exe = _script(tmp_path / "jess-geo", "exit 0")
    assert find_executable("/opt/x/jess-geo", {"PATH": str(tmp_path), "JESS_GEO_EXE": "/e"}) == "/opt/x/jess-geo"
    assert find_executable("", {"PATH": str(tmp_path), "JESS_GEO_EXE": "/e/jess-geo"}) == "/e/jess-geo"
    assert find_executable("", {"PATH": str(tmp_path)}) == exe
    assert find_executable("", {"PATH": str(tmp_path / "nowhere")}) == ""


def test_missing_executable_says_how_to_install(tmp_path):
    check = check_executable(str(tmp_path / "absent" / "jess-geo"))
    assert not check.ok
    assert "was not found" in check.message and "pip install jess-geo" in check.message
    assert "Traceback" not in check.message
    nothing = check_executable("")
    assert not nothing.ok and "not found on PATH" in nothing.message


@pytest.mark.skipif(os.name == "nt", reason="uses a POSIX shell script as a broken executable")
def test_broken_executable_is_reported_with_its_last_words(tmp_path):
    broken = _script(
        tmp_path / "jess-geo",
        "echo 'Traceback (most recent call last):' >&2\n"
        "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1",
    )
    check = check_executable(broken)
    assert not check.ok
    assert "does not work" in check.message and "No module named 'torch'" in check.message
    assert INSTALL_HELP in check.message


@pytest.mark.skipif(os.name == "nt", reason="uses a POSIX shell script as a broken executable")
def test_executable_that_is_not_jess_geo_is_refused(tmp_path):
    impostor = _script(tmp_path / "jess-geo", "echo hello")
    assert not check_executable(impostor).ok


def test_version_output_is_understood():
    assert interpret_version("x", 0, "jess-geo, version 0.1.0\n", "").version == "0.1.0"
    assert not interpret_version("x", 2, "", "jess-geo: error: bad\n").ok


def test_info_command_and_output():
    assert info_command("jg", "") == ["jg", "info", "--json"]
    assert info_command("jg", "/m.pt") == ["jg", "info", "/m.pt", "--json"]
    data = interpret_info(0, '{"tile_size": 256, "overlap": 32, "bands": [1, 2, 3], '
                             '"classes": [{"id": 0, "name": "soil", "color": "#000000"}]}', "")
    defaults = model_defaults(data)
    assert (defaults.tile_size, defaults.overlap, defaults.bands, defaults.class_names) == (256, 32, [1, 2, 3], ["soil"])
    with pytest.raises(EngineError, match="is truncated"):
        interpret_info(2, "", "jess-geo: error: The model file m.pt is truncated; re-export it.\n")
    with pytest.raises(EngineError):
        interpret_info(0, "not json", "")


def test_the_real_jess_geo_passes_the_check():
    exe = find_jess_geo()
    if not exe:
        pytest.skip("jess-geo is not installed: set JESS_GEO_EXE or create <repo>/.venv")
    check = check_executable(exe)
    assert check.ok, check.message
    assert check.version
