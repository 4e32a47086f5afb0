"""The plugin's remembered settings (QgsSettings), kept in one place."""

from __future__ import annotations

import os

from qgis.core import QgsSettings

from .environment import EngineCheck, check_executable, find_executable

_PREFIX = "jess_geo/"
EXECUTABLE_KEY = _PREFIX + "executable"
MODEL_KEY = _PREFIX + "model"
DEVICE_KEY = _PREFIX + "device"

# (path, modification time) -> EngineCheck: `jess-geo --version` is run once per install.
_CHECKS = {}


def _read(key: str) -> str:
    value = QgsSettings().value(key, "")
    return str(value) if value else ""


def _write(key: str, value: str) -> None:
    QgsSettings().setValue(key, value or "")


def configured_executable() -> str:
    """The executable path the user set ('' when none)."""
    return _read(EXECUTABLE_KEY)


def set_configured_executable(path: str) -> None:
    _write(EXECUTABLE_KEY, path)


def executable() -> str:
    """The jess-geo executable to run: the configured one, $JESS_GEO_EXE, or PATH."""
    return find_executable(configured_executable())


def remembered_model() -> str:
    """The last model file used ('' = the demo model)."""
    return _read(MODEL_KEY)


def remember_model(path: str) -> None:
    _write(MODEL_KEY, path)


def remembered_device() -> str:
    return _read(DEVICE_KEY) or "auto"


def remember_device(device: str) -> None:
    _write(DEVICE_KEY, device)


def cache_key(path: str):
    """Identify an installed executable by path and modification time."""
    try:
        return (path, os.stat(path).st_mtime_ns)
    except OSError:
        return None


def cached_check(path: str):
    """A previous successful check of this executable, or None."""
    key = cache_key(path)
    return _CHECKS.get(key) if key else None


def store_check(check: EngineCheck) -> None:
    key = cache_key(check.executable)
    if key and check.ok:
        _CHECKS[key] = check


def check_engine() -> EngineCheck:
    """Check the jess-geo executable now (cached per installed file)."""
    path = executable()
    cached = cached_check(path)
    if cached is not None:
        return cached
    check = check_executable(path)
    store_check(check)
    return check
