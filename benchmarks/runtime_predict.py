"""End-to-end `jess-geo predict` on a 4000 x 4000 scene: torch (.pt) against ONNX Runtime / OpenVINO (.onnx).

The scene is the sample scene mirrored to 4000 x 4000 pixels at the demo model's own 2 cm
(working scale 1: 4000 x 4000 working pixels, 324 tiles of 256; ``--gsd 0.01``: scale 0.5, 81 tiles). Each run is its own
`jess-geo predict` process; contenders alternate; medians of the whole-process time and of the
time predict reports are printed, with the class agreement of each runtime's class raster
against torch's (valid pixels). A runtime named ``NAME:K`` runs with ``--streams K`` (e.g.
``onnxruntime:1``: one run per batch, against the default of one tile per core at once).

    .venv/bin/python benchmarks/runtime_predict.py [--rounds 2] [--size 4000] [--runtimes onnxruntime,onnxruntime:1,openvino]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "jess_geo" / "assets" / "demo_model.pt"
SAMPLE = ROOT / "sample_data" / "scene.tif"
EXE = ROOT / ".venv" / "bin" / "jess-geo"


def mirrored_scene(path: Path, size: int, gsd: float = 0.02) -> Path:
    """The sample scene mirrored (no seams) to ``size`` x ``size`` pixels of ``gsd`` metres."""
    with rasterio.open(SAMPLE) as src:
        data, profile = src.read(), src.profile
    reps = (1, -(-size // data.shape[1]), -(-size // data.shape[2]))
    tile = np.concatenate([data, data[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[:, :, ::-1]], axis=2)
    big = np.tile(tile, (1, -(-reps[1] // 2), -(-reps[2] // 2)))[:, :size, :size]
    t = profile["transform"]
    profile.update(width=size, height=size, transform=Affine(gsd, 0, t.c, 0, -gsd, t.f), tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(big)
    return path


def run(scene: Path, model: Path, runtime: str, out: Path) -> tuple[float, float | None]:
    """Whole-process seconds and the seconds predict reports (``runtime``: NAME or NAME:STREAMS)."""
    name, _, streams = runtime.partition(":")
    cmd = [str(EXE), "predict", str(scene), "--model", str(model), "--runtime", name, "-o", str(out),
           "--no-vector", "--overwrite"] + (["--streams", streams] if streams else [])
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{runtime}: {proc.stderr.strip()}")
    m = re.search(r"tiles in ([0-9.]+) s", proc.stdout)
    return wall, float(m.group(1)) if m else None


def agreement(a: Path, b: Path) -> float:
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        x, y = ra.read(1), rb.read(1)
    valid = (x != 255) & (y != 255)
    return float((x[valid] == y[valid]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--runtimes", default="onnxruntime,onnxruntime:1,openvino")
    ap.add_argument("--gsd", type=float, default=0.02, help="Pixel size of the scene in m (0.02: working scale 1; 0.01: 0.5).")
    args = ap.parse_args()
    from jess_geo.export.onnx_export import export_model

    with tempfile.TemporaryDirectory(prefix="jess-geo-e2e-") as tmp:
        work = Path(tmp)
        scene = mirrored_scene(work / "scene4000.tif", args.size, args.gsd)
        onnx_model = work / "demo.onnx"
        export_model(DEMO, onnx_model)
        contenders = [("torch", DEMO)] + [(r, onnx_model) for r in args.runtimes.split(",") if r]
        print(f"scene: sample scene mirrored to {args.size} x {args.size} px at {100 * args.gsd:g} cm "
              f"(working scale {args.gsd / 0.02:g}); demo model, tile 256, overlap 32")
        print("machine: shared with other work (2 cores): figures are indicative")
        times: dict[str, list[tuple[float, float | None]]] = {c: [] for c, _ in contenders}
        for r in range(args.rounds):
            order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
            for name, model in order:
                times[name].append(run(scene, model, name, work / f"{name.replace(':', '_')}_classes.tif"))
                print(f"  round {r + 1} {name:<12} whole process {times[name][-1][0]:6.1f} s, predict {times[name][-1][1]} s")
        base = float(np.median([t[0] for t in times["torch"]]))
        base_in = np.median([t[1] for t in times["torch"] if t[1] is not None])
        print(f"{'runtime':<12} {'process s':>9} {'predict s':>9} {'speed-up':>8} {'agreement':>10}")
        for name, _ in contenders:
            wall = float(np.median([t[0] for t in times[name]]))
            inner = np.median([t[1] for t in times[name] if t[1] is not None])
            agree = 1.0 if name == "torch" else agreement(work / "torch_classes.tif", work / f"{name.replace(':', '_')}_classes.tif")
            print(f"{name:<12} {wall:9.1f} {inner:9.1f} {base_in / inner:7.2f}x {100 * agree:9.3f}%")
        print(f"(speed-up: predict's own seconds against torch's; whole process torch {base:.1f} s)")


if __name__ == "__main__":
    main()
