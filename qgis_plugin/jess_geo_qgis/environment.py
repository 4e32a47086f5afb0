"""Find and check the jess-geo command line that the plugin runs (no QGIS, no Qt).

The plugin never imports the engine: jess-geo lives in its own Python environment and is
reached only through its executable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

from .protocol import error_from_stderr
from .runner import clean_environment, popen_options

EXECUTABLE_NAME = "jess-geo"
ENV_VARIABLE = "JESS_GEO_EXE"
CHECK_TIMEOUT_S = 120.0
INFO_TIMEOUT_S = 600.0

INSTALL_HELP = (
    "Install jess-geo in its own Python environment (Python 3.11 or newer, not QGIS's Python): "
    "python3 -m venv ~/jess-geo-env, then ~/jess-geo-env/bin/pip install jess-geo "
    "(on Windows: py -m venv %USERPROFILE%\\jess-geo-env, then "
    "%USERPROFILE%\\jess-geo-env\\Scripts\\pip install jess-geo), "
    "and set the path of its jess-geo executable "
    "(~/jess-geo-env/bin/jess-geo or ...\\Scripts\\jess-geo.exe) in the plugin dialog's "
    "Executable field or in the JESS_GEO_EXE environment variable "
    "(do not put that environment's bin folder first on PATH: QGIS would run its Python)."
)


@dataclass(frozen=True)
class EngineCheck:
    """The result of checking a jess-geo executable; ``message`` explains a failure."""

    ok: bool
    executable: str
    version: str = ""
    message: str = ""


class EngineError(Exception):
    """jess-geo could not answer a question (info, version); the text is for the user."""


def find_executable(configured: str = "", environ: Optional[Mapping[str, str]] = None) -> str:
    """Where jess-geo is: the configured path, else ``$JESS_GEO_EXE``, else on PATH; '' if none."""
    source = os.environ if environ is None else environ
    if configured:
        return configured
    from_env = source.get(ENV_VARIABLE, "")
    if from_env:
        return from_env
    return shutil.which(EXECUTABLE_NAME, path=source.get("PATH")) or ""


def missing_message(executable: str) -> str:
    """The message for an executable that is not set, absent or not runnable."""
    if not executable:
        return f"jess-geo was not found on PATH. {INSTALL_HELP}"
    return f"jess-geo was not found at {executable}. {INSTALL_HELP}"


def interpret_version(executable: str, returncode: int, stdout: str, stderr: str) -> EngineCheck:
    """Turn the result of ``jess-geo --version`` into an EngineCheck."""
    output = (stdout or "") + "\n" + (stderr or "")
    match = re.search(r"version\s+v?(\d+\.\d+[^\s,]*)", output, re.IGNORECASE)
    if returncode == 0 and match:
        return EngineCheck(True, executable, version=match.group(1))
    detail = error_from_stderr(stderr or "") or _last_line(stderr) or _last_line(stdout)
    reason = f" ({detail})" if detail else ""
    return EngineCheck(
        False,
        executable,
        message=(
            f"jess-geo at {executable} does not work: `jess-geo --version` "
            f"exited with code {returncode}{reason}. Reinstall it. {INSTALL_HELP}"
        ),
    )


def _last_line(text: Optional[str]) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _run_quick(command: List[str], timeout: float) -> "subprocess.CompletedProcess[str]":
    """Run a short engine command (no stdin, text output, the clean environment, no console window)."""
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=clean_environment(),
        timeout=timeout,
        **popen_options(),
    )


def check_executable(executable: str, timeout: float = CHECK_TIMEOUT_S) -> EngineCheck:
    """Run ``jess-geo --version`` and say whether this executable can be used."""
    if not executable or not os.path.isfile(executable):
        return EngineCheck(False, executable, message=missing_message(executable))
    try:
        completed = _run_quick([executable, "--version"], timeout)
    except subprocess.TimeoutExpired:
        return EngineCheck(
            False,
            executable,
            message=f"jess-geo at {executable} did not answer `--version` within "
            f"{timeout:.0f} s. Reinstall it. {INSTALL_HELP}",
        )
    except OSError as error:
        return EngineCheck(
            False,
            executable,
            message=f"jess-geo at {executable} cannot be started ({error.strerror or error}). "
            f"{INSTALL_HELP}",
        )
    return interpret_version(executable, completed.returncode, completed.stdout, completed.stderr)


def info_command(executable: str, model: str) -> List[str]:
    """The command line that prints a model file's metadata as JSON ('' = demo model)."""
    return [executable, "info", model, "--json"] if model else [executable, "info", "--json"]


def interpret_info(returncode: int, stdout: str, stderr: str) -> Dict[str, object]:
    """Parse the output of ``jess-geo info MODEL --json``.

    Raises:
        EngineError: with the engine's own sentence when it failed.
    """
    if returncode != 0:
        message = error_from_stderr(stderr) or _last_line(stderr) or "jess-geo info failed"
        raise EngineError(message)
    text = (stdout or "").strip()
    start = text.find("{")
    try:
        data = json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise EngineError("jess-geo info did not print the model's metadata as JSON.")
    return data


def read_model_info(executable: str, model: str, timeout: float = INFO_TIMEOUT_S) -> Dict[str, object]:
    """The model file's metadata (``jess-geo info MODEL --json``); '' = the demo model.

    Raises:
        EngineError: when jess-geo cannot read the model file.
    """
    try:
        completed = _run_quick(info_command(executable, model), timeout)
    except subprocess.TimeoutExpired as error:
        raise EngineError(f"jess-geo info did not answer within {timeout:.0f} s.") from error
    except OSError as error:
        raise EngineError(f"Could not start jess-geo ({error.strerror or error}).") from error
    return interpret_info(completed.returncode, completed.stdout, completed.stderr)


@dataclass(frozen=True)
class ModelDefaults:
    """The options a model file suggests for inference, and what it predicts."""

    tile_size: Optional[int] = None
    overlap: Optional[int] = None
    bands: Optional[List[int]] = None
    class_names: Optional[List[str]] = None


def model_defaults(info: Mapping[str, object]) -> ModelDefaults:
    """Pick the inference defaults out of a model's metadata (missing keys give None)."""
    metadata = info.get("metadata") if isinstance(info.get("metadata"), dict) else info

    def integer(key: str) -> Optional[int]:
        value = metadata.get(key)  # type: ignore[union-attr]
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    bands = metadata.get("bands")  # type: ignore[union-attr]
    classes = metadata.get("classes")  # type: ignore[union-attr]
    names = None
    if isinstance(classes, list):
        names = [str(c.get("name", "")) for c in classes if isinstance(c, dict)]
    return ModelDefaults(
        tile_size=integer("tile_size"),
        overlap=integer("overlap"),
        bands=[int(b) for b in bands] if isinstance(bands, list) else None,
        class_names=names,
    )
