"""Pipeline overhead: end-to-end `predict_raster` against the bare forward pass over the same tiles.

Same process, same model, same tiles, same batch size. "Bare forward" is only the network called
on batches already in memory (no reading, normalising, blending, writing or vectorizing).
Target (issue 3): end to end at most 15 % slower than the bare forward pass on CPU.

    .venv/bin/python benchmarks/predict_overhead.py [--size 2048] [--tile 256] [--overlap 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_common import make_model, make_scene  # noqa: E402

from jess_geo.inference.predict import predict_raster, resolve_device  # noqa: E402
from jess_geo.inference.tiling import TileGrid  # noqa: E402
from jess_geo.models.modelfile import load_model_file  # noqa: E402


def bare_forward(scene: Path, loaded, tile: int, overlap: int, batch: int, device: torch.device) -> tuple[float, int]:
    """Seconds for the network alone over the tiles predict_raster runs (inputs prepared beforehand)."""
    with rasterio.open(scene) as src:
        grid = TileGrid(src.height, src.width, tile, overlap)
        tiles = [t for row in grid.rows() for t in row]
        data = src.read()
    x = np.stack([data[:, t.row : t.row + t.height, t.col : t.col + t.width] for t in tiles]).astype(np.float32)
    x = (x - 128.0) / 50.0
    batches = [torch.from_numpy(x[i : i + batch]).to(device) for i in range(0, len(x), batch)]
    net = loaded.model.to(device).eval()
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), amp:
        net(batches[0])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for b in batches:
            y = net(b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        del y
    return time.perf_counter() - t0, len(tiles)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-vector", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "jess_geo_bench")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    scene = make_scene(args.workdir / f"scene_{args.size}.tif", args.size, args.size)
    model_path = make_model(args.workdir / "bench_model.pt", tile=args.tile, overlap=args.overlap)
    loaded = load_model_file(model_path)
    device = resolve_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, scene {args.size}x{args.size}x3, "
          f"tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}")

    # warm-up run (first-call costs of the network and GDAL)
    predict_raster(scene, loaded, args.workdir / "warm.tif", tile_size=args.tile, overlap=args.overlap, batch_size=args.batch_size,
                   device=str(device), overwrite=True, cover=False)
    bare, e2e, e2e_nv = [], [], []
    for _ in range(args.repeats):
        t, n = bare_forward(scene, loaded, args.tile, args.overlap, args.batch_size, device)
        bare.append(t)
        t0 = time.perf_counter()
        res = predict_raster(scene, loaded, args.workdir / "out_classes.tif", tile_size=args.tile, overlap=args.overlap,
                             batch_size=args.batch_size, device=str(device), overwrite=True, cover=False)
        e2e_nv.append(time.perf_counter() - t0)
        if not args.no_vector:
            t0 = time.perf_counter()
            res = predict_raster(scene, loaded, args.workdir / "out_classes.tif", vector=args.workdir / "out_classes.gpkg",
                                 tile_size=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=str(device),
                                 overwrite=True)
            e2e.append(time.perf_counter() - t0)
    b = min(bare)
    print("runs: bare", [round(t, 2) for t in bare], "predict", [round(t, 2) for t in e2e_nv], "predict+vector", [round(t, 2) for t in e2e])
    print(f"tiles {n} (run {res['tiles_run']})")
    print(f"bare forward                          {b:8.2f} s")
    print(f"predict (read/infer/blend/write)      {min(e2e_nv):8.2f} s   overhead {100 * (min(e2e_nv) / b - 1):+.1f} %")
    if e2e:
        print(f"predict + cover + vectorize           {min(e2e):8.2f} s   overhead {100 * (min(e2e) / b - 1):+.1f} %")
    print(f"target: at most +15 % on CPU (end-to-end within 70 % of bare throughput on GPU)")


if __name__ == "__main__":
    main()
