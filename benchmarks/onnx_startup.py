"""Start-up: the whole `jess-geo predict` process on the 2-tile sample scene with a .onnx model and with the .pt.

Each run is its own process (the installed console script); .onnx and .pt alternate; medians.
Also lists which heavy packages the .onnx run imports (``python -X importtime``).

    .venv/bin/python benchmarks/onnx_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
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
HEAVY = ("torch", "segmentation_models_pytorch", "timm", "torchvision", "lightning", "torchgeo", "onnx", "onnxruntime", "openvino")


def once(model: Path, out: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run([str(EXE), "predict", str(SCENE), "--model", str(model), "-o", str(out), "--overwrite", "--quiet"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.strip())
    return time.perf_counter() - t


def heavy_imports(model: Path, out: Path) -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "jess_geo.cli.main", "predict", str(SCENE), "--model", str(model),
                           "-o", str(out), "--overwrite", "--quiet"], capture_output=True, text=True)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return [h for h in HEAVY if any(n == h or n.startswith(h + ".") for n in names)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from jess_geo.export.onnx_export import export_model

    with tempfile.TemporaryDirectory(prefix="jess-geo-startup-") as tmp:
        work = Path(tmp)
        onnx_model = work / "demo.onnx"
        export_model(DEMO, onnx_model)
        once(onnx_model, work / "warm_classes.tif")  # page cache warm for both
        once(DEMO, work / "warm_classes.tif")
        times: dict[str, list[float]] = {"onnx": [], "pt": []}
        for r in range(args.rounds):
            order = [("onnx", onnx_model), ("pt", DEMO)] if r % 2 == 0 else [("pt", DEMO), ("onnx", onnx_model)]
            for name, model in order:
                times[name].append(once(model, work / f"{name}_classes.tif"))
        print("machine: shared with other work (2 cores): figures are indicative")
        for name in ("onnx", "pt"):
            print(f"predict sample scene (2 tiles, polygons and cover table), .{name} model: median {np.median(times[name]):.2f} s "
                  f"whole process (runs: {', '.join(f'{t:.2f}' for t in times[name])})")
        print(f"heavy packages imported with the .onnx model: {', '.join(heavy_imports(onnx_model, work / 'imp_classes.tif')) or 'none'}")


if __name__ == "__main__":
    main()
