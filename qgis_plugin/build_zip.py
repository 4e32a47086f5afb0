"""Build dist/jess_geo_qgis.zip: the folder jess_geo_qgis at the zip root ("Install from ZIP").

Usage: python qgis_plugin/build_zip.py [OUTPUT.zip]
Leaves out caches and compiled files; adds the project's LICENSE (MIT) as jess_geo_qgis/LICENSE.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "jess_geo_qgis"
REPO = HERE.parent
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
SKIPPED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}


def plugin_files():
    for path in sorted(PLUGIN.rglob("*")):
        relative = path.relative_to(PLUGIN)
        if not path.is_file() or SKIPPED_PARTS & set(relative.parts) or path.suffix in SKIPPED_SUFFIXES:
            continue
        if path.name.startswith("."):
            continue
        yield path, Path(PLUGIN.name) / relative


def build(output: Path) -> Path:
    licence = REPO / "LICENSE"
    if not licence.is_file():
        raise SystemExit(f"build_zip: {licence} is missing; the plugin zip must carry the licence.")
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(".zip.tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in plugin_files():
            archive.write(source, name.as_posix())
        archive.write(licence, f"{PLUGIN.name}/LICENSE")
    temporary.replace(output)
    return output


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "dist" / "jess_geo_qgis.zip"
    path = build(target)
    with zipfile.ZipFile(path) as archive:
        print(f"{path}: {len(archive.namelist())} files")
