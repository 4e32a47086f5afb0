"""The engine's layering rules, checked on the code itself.

- ``jess_geo.io`` never imports torch (it is the rasterio/OGR layer, usable without a GPU stack);
- nothing in ``jess_geo`` imports QGIS or Qt (the plugin drives the engine, never the reverse);
- ``jess-geo predict`` loads neither Lightning, torchgeo nor ``jess_geo.training``
  (start-up time, and a predict-only install can leave training's stack out).

The static checks read every import statement (also those inside functions); the run-time
checks look at ``sys.modules`` of one fresh interpreter that imports every io module and
then runs a real predict.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jess_geo"
TRAINING_STACK = ("lightning", "pytorch_lightning", "torchgeo", "jess_geo.training")
GUI = ("qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "sip")

# Runs in a fresh interpreter: import every io module, snapshot sys.modules, run predict,
# snapshot again; prints one JSON object.
PROBE = r"""
import importlib, json, pkgutil, sys
import jess_geo.io

def loaded():
    return sorted(sys.modules)

io_modules = [m.name for m in pkgutil.iter_modules(jess_geo.io.__path__, "jess_geo.io.")]
for name in io_modules:
    importlib.import_module(name)
after_io = loaded()

from jess_geo.cli.main import run
code = run(sys.argv[1:])
print(json.dumps({"io_modules": io_modules, "after_io": after_io, "after_predict": loaded(), "exit": code}))
"""


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            else:
                names.add(node.module or "")
    return names


def _offenders(files: list[Path], banned: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in files:
        bad = sorted(n for n in _imports(path) if any(n == b or n.startswith(b + ".") for b in banned))
        if bad:
            found[str(path.relative_to(PACKAGE.parent))] = bad
    return found


def _top(modules: list[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == b or m.startswith(b + ".") for b in banned))


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, write_raster: Callable) -> dict[str, Any]:
    """One fresh interpreter: io imports, then `jess-geo predict` of a small scene with the demo model."""
    root = tmp_path_factory.mktemp("contract")
    rgb = np.random.default_rng(0).integers(1, 250, (3, 96, 96), dtype=np.uint8)
    from affine import Affine

    scene = write_raster(root / "scene.tif", rgb, transform=Affine(0.02, 0, 500000.0, 0, -0.02, 4100000.0))
    args = ["predict", str(scene), "-o", str(root / "out" / "scene_classes.tif"), "--quiet"]
    (root / "out").mkdir()
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["outputs"] = sorted(p.name for p in (root / "out").iterdir())
    result["stderr"] = proc.stderr
    return result


def test_io_never_imports_torch_statically() -> None:
    files = sorted((PACKAGE / "io").rglob("*.py"))
    assert files
    assert _offenders(files, ("torch", "torchvision", "lightning", "torchgeo")) == {}


def test_io_modules_load_without_torch(probe: dict[str, Any]) -> None:
    assert "jess_geo.io.raster" in probe["io_modules"]
    assert _top(probe["after_io"], ("torch",)) == []


def test_engine_never_imports_qgis_or_qt() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    assert _offenders(files, GUI) == {}


def test_predict_runs_and_loads_no_gui(probe: dict[str, Any]) -> None:
    assert probe["exit"] == 0, probe["stderr"]
    assert "scene_classes.tif" in probe["outputs"], probe["outputs"]
    assert _top(probe["after_predict"], GUI) == []


def test_predict_does_not_load_the_training_stack(probe: dict[str, Any]) -> None:
    assert probe["exit"] == 0, probe["stderr"]
    assert _top(probe["after_predict"], TRAINING_STACK) == []
