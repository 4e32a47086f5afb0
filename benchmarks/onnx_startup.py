"""Start-up: the whole `jess-geo predict` process on the 2-tile sample scene with a .onnx model and with the .pt.

Each run is its own process (the installed console script); contenders rotate; medians. The
.onnx model runs twice: with polygons (the default: a GeoPackage, written through pyogrio, whose
import loads geopandas and pandas) and with ``--no-vector``. Then ``python -X importtime`` of
the real command: which heavy packages each run imports and what they cost (cumulative ms of
the top-level imports; one run, indicative). Two references run in the same rotation: the `.pt`
run with ``JESS_GEO_FULL_EXIT=1`` (the interpreter's ordinary teardown, which the console script
skips once its outputs are closed) and ``python -c "import torch"`` alone (the floor of any `.pt`
run on this machine).

    .venv/bin/python benchmarks/onnx_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "jess_geo" / "assets" / "demo_model.pt"
SCENE = ROOT / "sample_data" / "scene.tif"
EXE = ROOT / ".venv" / "bin" / "jess-geo"
HEAVY = ("torch", "segmentation_models_pytorch", "timm", "torchvision", "lightning", "torchgeo", "onnx", "onnxruntime", "openvino",
         "pyogrio", "geopandas", "pandas", "rasterio", "numpy")


def once(model: Path | None, out: Path, *extra: str, env: dict[str, str] | None = None) -> float:
    """Seconds for one whole process: ``jess-geo predict`` with ``model``, or ``import torch`` when it is None."""
    cmd = ([sys.executable, "-c", "import torch"] if model is None else
           [str(EXE), "predict", str(SCENE), "--model", str(model), "-o", str(out), "--overwrite", "--quiet", *extra])
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.strip())
    return time.perf_counter() - t


def heavy_imports(model: Path, out: Path, *extra: str) -> str:
    """``name ms`` for each heavy package the command imports (the largest cumulative time among its entries)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "jess_geo.cli.main", "predict", str(SCENE), "--model", str(model),
                           "-o", str(out), "--overwrite", "--quiet", *extra], capture_output=True, text=True)
    cost: dict[str, float] = {}
    total = 0.0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith("  ") and cumulative.strip().isdigit():  # a top-level import
            total += int(cumulative) / 1000
        top = name.strip().split(".")[0]
        if top in HEAVY and cumulative.strip().isdigit():
            cost[top] = max(cost.get(top, 0.0), int(cumulative) / 1000)
    listed = ", ".join(f"{h} {cost[h]:.0f} ms" for h in HEAVY if h in cost) or "none"
    return f"{listed} (all top-level imports {total:.0f} ms)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    from jess_geo.export.onnx_export import export_model

    with tempfile.TemporaryDirectory(prefix="jess-geo-startup-") as tmp:
        work = Path(tmp)
        onnx_model = work / "demo.onnx"
        export_model(DEMO, onnx_model)
        full = {"JESS_GEO_FULL_EXIT": "1"}
        runs: dict[str, tuple[Path | None, tuple[str, ...], dict[str, str] | None]] = {
            ".onnx": (onnx_model, (), None), ".onnx --no-vector": (onnx_model, ("--no-vector",), None), ".pt": (DEMO, (), None),
            ".pt, full exit": (DEMO, (), full), "import torch": (None, (), None)}
        for model, extra, env in runs.values():
            once(model, work / "warm_classes.tif", *extra, env=env)  # page cache warm for all
        times: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                model, extra, env = runs[name]
                times[name].append(once(model, work / f"run{len(times[name])}_classes.tif", *extra, env=env))
        print(f"machine: {os.cpu_count()} cores; load average before the runs {load}")
        for name in names:
            what = ("python -c 'import torch' (reference)" if runs[name][0] is None else
                    f"predict sample scene (2 tiles, cover table{'' if 'no-vector' in name else ', polygons'}), {name.replace(', ', ' model, ')}"
                    f"{'' if ',' in name else ' model'}")
            print(f"{what}: median {np.median(times[name]):.2f} s whole process (runs: {', '.join(f'{t:.2f}' for t in times[name])})")
        for name in names[:3]:
            model, extra, _ = runs[name]
            print(f"imports with {name}: {heavy_imports(model, work / 'imp_classes.tif', *extra)}")

if __name__ == "__main__":
    main()
