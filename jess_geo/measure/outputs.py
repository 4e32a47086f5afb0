"""Writing measurement tables: CSV, JSON and GeoPackage, each through a temporary name.

CSV cells that start with ``=``, ``+``, ``-`` or ``@`` and are text (class or zone names) get a
leading apostrophe so a spreadsheet shows them instead of running them as formulas; numbers
are written as numbers.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from jess_geo.errors import OutputError
from jess_geo.io.atomic import atomic_output, check_output
from jess_geo.progress import Reporter

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def progress_reporter(as_json: bool, quiet: bool) -> Reporter:
    """JSON progress lines with ``--json``, a bar on an interactive terminal, else nothing."""
    if as_json:
        return Reporter("json")
    return Reporter("bar" if not quiet and sys.stderr.isatty() else "quiet")


def output_paths(stem: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """``{suffix: <stem><suffix>}``, e.g. ``{"_stats.csv": ...}``."""
    return {s: stem.with_name(stem.name + s) for s in suffixes}


def check_outputs(paths: Iterable[Path], overwrite: bool, inputs: Iterable[str | Path]) -> None:
    """Refuse outputs that exist (without ``overwrite``), equal an input, or are named twice."""
    paths = list(paths)
    seen: set[Path] = set()
    inputs = list(inputs)
    for p in paths:
        r = Path(p).resolve()
        if r in seen:
            raise OutputError(f"Output {p} is named twice; choose distinct output names.")
        seen.add(r)
        check_output(p, overwrite=overwrite, inputs=inputs)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}" if abs(value) < 1e-3 and value else f"{value:.6f}".rstrip("0").rstrip(".")
    return "" if value is None else value


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV file atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for row in rows:
                w.writerow([_cell(v) for v in row])


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (NaN and infinities become null)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(_clean(data), f, indent=2)
            f.write("\n")


def write_frame(path: Path, frame: Any, layer: str) -> None:
    """Write a GeoDataFrame as a GeoPackage layer atomically (a new file)."""
    with atomic_output(path) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)  # photos
                frame.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio")
        except Exception as exc:  # pyogrio errors, OSError
            raise OutputError(f"{path} could not be written ({str(exc).splitlines()[0]}); check the disk and the folder permissions.") from None
        for side in ("-wal", "-shm", "-journal"):
            if os.path.exists(str(tmp) + side):
                os.remove(str(tmp) + side)
