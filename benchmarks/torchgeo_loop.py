"""jess-geo predict against the loop users write with torchgeo, each in its own interpreter, end to end.

Contenders, same model file, tile, overlap and batch, one scene (default 4000 x 4000 x 3):

- ``jess-geo torch``: the real command, ``jess-geo predict SCENE --model M.pt --no-vector``
  (class GeoTIFF and cover table);
- ``jess-geo onnxruntime``: the same command with the model exported by ``jess-geo export``;
- ``torchgeo NCHW``: the loop as a user writes it: RasterDataset + GridGeoSampler +
  DataLoader(stack_samples), normalise, model, argmax per tile, tiles pasted into a full-scene
  array with a hard crop of half the overlap on inner sides, one GeoTIFF written;
- ``torchgeo channels-last``: that loop with the network and its input in channels-last.

Every run is a fresh process (start-up included in "process s"); the loops' own time ("loop s":
predict's reported seconds; for torchgeo from building the dataset to the GeoTIFF written) is
printed too. Rounds rotate the order; medians. Class agreement of each output against
``jess-geo torch`` on valid pixels (the torchgeo loops crop seams instead of blending them, so
they differ along tile edges; the fp32 ONNX runtime should agree to >= 99.9 %).
Targets (issue 13): jess-geo torch >= 1.5x the NCHW loop and no slower than channels-last;
onnxruntime >= 1.5x jess-geo torch.

    .venv/bin/python benchmarks/torchgeo_loop.py [--size 4000] [--rounds 3] [--cpus 0]

``--cpus 0`` pins every contender to CPU 0 (``taskset``) with one thread: for a shared machine;
leave it out on a quiet one (all cores, each runtime's default threads).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXE = ROOT / ".venv" / "bin" / "jess-geo"
CONTENDERS = ("jess-geo torch", "jess-geo onnxruntime", "torchgeo NCHW", "torchgeo channels-last")


def torchgeo_loop(scene: Path, loaded, out: Path, tile: int, overlap: int, batch: int, channels_last: bool) -> int:
    """The user's loop (see the module docstring) with a loaded model file; returns the number of tiles run."""
    import rasterio
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler, Units

    class Scene(RasterDataset):
        filename_glob = scene.name
        is_image = True

    ds = Scene(paths=str(scene.parent))
    sampler = GridGeoSampler(ds, size=tile, stride=tile - overlap, units=Units.PIXELS)
    loader = DataLoader(ds, sampler=sampler, batch_size=batch, collate_fn=stack_samples)
    meta = loaded.metadata
    mean = torch.tensor(meta["normalization"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["normalization"]["std"]).view(1, -1, 1, 1)
    with rasterio.open(scene) as src:
        height, width, profile = src.height, src.width, src.profile
        x0, y0, res = src.transform.c, src.transform.f, src.transform.a
    full = np.zeros((height, width), dtype=np.uint8)  # the full-scene array users allocate
    half, n = overlap // 2, 0
    net = loaded.model.eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        for batch_ in loader:
            x = (batch_["image"].float() - mean) / std
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            pred = net(x).argmax(1).numpy().astype(np.uint8)
            for k, bounds in enumerate(batch_["bounds"]):
                col = int(round((bounds[0].start - x0) / res))
                row = int(round((y0 - bounds[1].stop) / res))
                # keep the chip minus half the overlap on inner sides; chips may start outside the scene
                a = 0 if row <= 0 else row + half
                b = height if row + tile >= height else row + tile - half
                c = 0 if col <= 0 else col + half
                d = width if col + tile >= width else col + tile - half
                full[a:b, c:d] = pred[k, a - row : b - row, c - col : d - col]
                n += 1
    profile.update(count=1, dtype="uint8", nodata=255, compress="deflate", tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(full, 1)
    return n


def child(args: argparse.Namespace) -> None:
    """One torchgeo loop in this (fresh) process: prints its loop seconds and tiles as JSON.

    The imports and the model file's loading come before the clock starts, as in `jess-geo
    predict`'s own seconds; building the dataset and sampler is part of the loop."""
    import torchgeo.datasets  # noqa: F401

    from jess_geo.models.modelfile import load_model_file

    loaded = load_model_file(args.pt)
    t = time.perf_counter()
    n = torchgeo_loop(args.scene, loaded, args.out, args.tile, args.overlap, args.batch_size, args.child == "cl")
    print(json.dumps({"loop": time.perf_counter() - t, "tiles": n}))


def run(name: str, args: argparse.Namespace, work: Path) -> dict:
    """One contender in its own process: whole-process and loop seconds, and its output raster."""
    out = work / f"{name.replace(' ', '_')}_classes.tif"
    if name.startswith("jess-geo"):
        model = args.onnx if name.endswith("onnxruntime") else args.pt
        cmd = [str(EXE), "predict", str(args.scene), "--model", str(model), "--runtime", name.split()[1], "-o", str(out),
               "--batch-size", str(args.batch_size), "--tile-size", str(args.tile), "--overlap", str(args.overlap),
               "--no-vector", "--overwrite"]
    else:
        cmd = [sys.executable, __file__, "--child", "cl" if "channels" in name else "nchw", "--scene", str(args.scene),
               "--pt", str(args.pt), "--out", str(out), "--tile", str(args.tile), "--overlap", str(args.overlap),
               "--batch-size", str(args.batch_size)]
    env = dict(os.environ)
    if args.cpus:
        cmd = ["taskset", "-c", args.cpus, *cmd]
        env["OMP_NUM_THREADS"] = str(len(args.cpus.split(",")))
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{name}: {proc.stderr.strip()[-2000:]}")
    if name.startswith("jess-geo"):
        m = re.search(r"(\d+) tiles in ([0-9.]+) s", proc.stdout)
        loop, tiles = (float(m.group(2)), int(m.group(1))) if m else (float("nan"), 0)
    else:
        record = json.loads(proc.stdout.strip().splitlines()[-1])
        loop, tiles = record["loop"], record["tiles"]
    return {"process": wall, "loop": loop, "tiles": tiles, "out": out}


def agreement(a: Path, b: Path) -> float:
    """Share of pixels valid in both class rasters where they agree."""
    import rasterio

    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        x, y = ra.read(1), rb.read(1)
    valid = (x != 255) & (y != 255)
    return float((x[valid] == y[valid]).mean())


def prepare(args: argparse.Namespace, work: Path) -> str:
    """The scene, the model file at native resolution and its ONNX export; returns the model's description."""
    sys.path.insert(0, str(HERE))
    from predict_common import bench_model, make_scene

    from jess_geo.export.onnx_export import export_model

    args.scene = make_scene(work / f"scene_{args.size}.tif", args.size, args.size)
    args.pt, desc = bench_model(args.model, work, args.tile, args.overlap)
    args.onnx = work / "model.onnx"
    export_model(args.pt, args.onnx, overwrite=True)
    return desc


def report(times: dict[str, list[dict]]) -> None:
    """Medians, speed-ups against the torchgeo loops and torch, agreement with jess-geo torch."""
    med = {c: {k: float(np.median([r[k] for r in rs])) for k in ("process", "loop")} for c, rs in times.items()}
    ref = times["jess-geo torch"][-1]["out"]
    print(f"{'contender':<24} {'tiles':>6} {'process s':>10} {'loop s':>8} {'agreement':>10}")
    for c, rs in times.items():
        agree = 1.0 if c == "jess-geo torch" else agreement(ref, rs[-1]["out"])
        print(f"{c:<24} {rs[-1]['tiles']:6d} {med[c]['process']:10.2f} {med[c]['loop']:8.2f} {100 * agree:9.3f}%")
    jt = med["jess-geo torch"]
    for label, key in (("process", "process"), ("loop", "loop")):
        nchw = med["torchgeo NCHW"][key] / jt[key]
        cl = med["torchgeo channels-last"][key] / jt[key]
        ort = jt[key] / med["jess-geo onnxruntime"][key]
        print(f"{label:>7}: jess-geo torch vs torchgeo NCHW {nchw:.2f}x (target >= 1.5x), vs channels-last {cl:.2f}x "
              f"(target >= 1.0x); onnxruntime vs jess-geo torch {ort:.2f}x (target >= 1.5x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="demo", help="demo (the shipped, trained network) or random (random weights)")
    ap.add_argument("--cpus", default="", help="pin every contender to these CPUs (taskset -c), threads = their number")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the scene, model and outputs here (default: a temporary folder)")
    for hidden in ("--child", "--scene", "--pt", "--out"):
        ap.add_argument(hidden, default=None, type=None if hidden == "--child" else Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="jess-geo-tgloop-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        desc = prepare(args, work)
        where = f"pinned to CPUs {args.cpus}, {len(args.cpus.split(','))} thread(s)" if args.cpus else f"{os.cpu_count()} cores, default threads"
        print(f"scene {args.size} x {args.size} x 3 (0.5 m, no nodata), tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}; "
              f"model: {desc}; {where}; each run its own process, {args.rounds} rounds in rotating order, medians")
        times: dict[str, list[dict]] = {c: [] for c in CONTENDERS}
        for r in range(args.rounds):
            order = CONTENDERS[r % len(CONTENDERS):] + CONTENDERS[: r % len(CONTENDERS)]
            for c in order:
                times[c].append(run(c, args, work))
                print(f"  round {r + 1} {c:<24} process {times[c][-1]['process']:7.2f} s  loop {times[c][-1]['loop']:7.2f} s", flush=True)
        report(times)


if __name__ == "__main__":
    main()
