"""Command lines and results of `jess-geo stats/change/sample/assess` (pure Python: no QGIS).

The measure commands print one ``{"stage": "done", "outputs": {...}}`` line with ``--json``
(or ``{"stage": "error", "error": ...}``); the Processing algorithms in
:mod:`measure_algorithms` run them through :func:`runner.run_json_command`.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

from .protocol import Failed, failure_message
from .runner import RunResult, run_json_command

Option = Tuple[str, Optional[object]]


def stem_of(path: str, suffixes: Sequence[str] = (".csv", ".tif", ".gpkg", ".json")) -> str:
    """The output stem of a chosen file (``plots.csv`` -> ``plots``)."""
    root, ext = os.path.splitext(path)
    return root if ext.lower() in suffixes else path


def measure_command(executable: str, name: str, positional: Sequence[str], options: Sequence[Option],
                    flags: Sequence[str] = ()) -> List[str]:
    """``[exe, name, --opt value..., --flag..., --json, --overwrite, --, positional...]``; None values are left out."""
    if not positional or any(not p for p in positional):
        raise ValueError(f"jess-geo {name} needs its input file(s); choose them first.")
    command = [executable, name]
    for option, value in options:
        if value is None or value == "":
            continue
        command += [option, str(value)]
    command += list(flags) + ["--json", "--overwrite", "--"] + list(positional)
    return command


def run_measure(command: List[str], is_canceled=lambda: False, on_log=lambda line: None,
                on_percent=lambda percent, message: None) -> Dict[str, str]:
    """Run a measure command; its ``outputs`` on success. Raises RuntimeError with the one-line reason.

    ``on_percent(percent, message)`` gets the command's progress lines.
    """
    def event(e) -> None:
        if e.percent is not None:
            on_percent(e.percent, e.message)

    result = run_json_command(command, on_event=event, is_canceled=is_canceled, on_log=on_log)
    if isinstance(result, Failed):
        raise RuntimeError(result.message)
    assert isinstance(result, RunResult)
    if result.canceled:
        raise RuntimeError("Cancelled; no output files were written.")
    done = result.last("done")
    if result.returncode != 0 or done is None:
        raise RuntimeError(failure_message(result.returncode, result.events, result.stderr))
    return {key: str(value) for key, value in (done.outputs or {}).items() if value}
