"""Pipeline overhead: end-to-end `predict_raster` against the bare forward pass over the same tiles.

Same process, same model object, same tiles (the TileGrid predict_raster uses), same batch size,
same torch thread count. "Bare forward" is only the network called on batches already normalised
and in memory (no reading, blending, writing or vectorizing). Each variant is warmed up once;
then the variants are timed ``--repeats`` times in alternating order (A B C, C B A, ...) and the
median is reported. The scene has no nodata, so predict runs every tile the bare pass runs.
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
from predict_common import bench_model, common_args, make_scene, median  # noqa: E402

from jess_geo.inference.predict import predict_raster  # noqa: E402
from jess_geo.inference.torch_runtime import prepare_network, resolve_device  # noqa: E402
from jess_geo.models.layout import fast_input  # noqa: E402
from jess_geo.inference.tiling import TileGrid  # noqa: E402
from jess_geo.models.modelfile import load_model_file  # noqa: E402


def tile_batches(scene: Path, loaded, tile: int, overlap: int, batch: int, device: torch.device) -> list[torch.Tensor]:
    """The normalised network input of every tile predict_raster runs, in batches of ``batch``."""
    norm = loaded.metadata["normalization"]
    mean = np.asarray(norm["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(1, -1, 1, 1)
    with rasterio.open(scene) as src:
        grid = TileGrid(src.height, src.width, tile, overlap)
        tiles = [t for row in grid.rows() for t in row]
        data = src.read()
    x = np.stack([data[:, t.row : t.row + t.height, t.col : t.col + t.width] for t in tiles]).astype(np.float32)
    x = (x - mean) / std
    return [fast_input(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])).to(device), device) for i in range(0, len(x), batch)]


def bare_forward(net: torch.nn.Module, batches: list[torch.Tensor], device: torch.device) -> float:
    """Seconds for the network alone over ``batches`` (the same inference settings as predict_raster)."""
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    t0 = time.perf_counter()
    with torch.inference_mode(), amp:
        for b in batches:
            y = net(b)
            if device.type == "cpu":
                y.numpy()  # the logits exist on the host, as predict_raster needs them
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-vector", action="store_true")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "jess_geo_bench")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    scene = make_scene(args.workdir / f"scene_{args.size}.tif", args.size, args.size)
    model_path, model_desc = bench_model(args.model, args.workdir, args.tile, args.overlap)
    loaded = load_model_file(model_path)
    device = resolve_device(args.device)
    net = prepare_network(loaded.model, device)  # the inference settings predict_raster uses
    batches = tile_batches(scene, loaded, args.tile, args.overlap, args.batch_size, device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, scene {args.size}x{args.size}x3 (no nodata), "
          f"tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, model: {model_desc}, median of {args.repeats} alternating runs after a warm-up")
    kw = dict(tile_size=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=str(device), overwrite=True)
    out = args.workdir / "out_classes.tif"
    info: dict = {}

    def run_bare() -> float:
        return bare_forward(net, batches, device)

    def run_predict() -> float:
        t0 = time.perf_counter()
        info["res"] = predict_raster(scene, loaded, out, cover=False, **kw)
        return time.perf_counter() - t0

    def run_vector() -> float:
        t0 = time.perf_counter()
        predict_raster(scene, loaded, out, vector=args.workdir / "out_classes.gpkg", **kw)
        return time.perf_counter() - t0

    variants = {"bare": run_bare, "predict": run_predict}
    if not args.no_vector:
        variants["vector"] = run_vector
    for fn in variants.values():  # warm-up: first-call costs of the network, GDAL, the vectorizer
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(args.repeats):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for k in order:
            times[k].append(variants[k]())
    print("runs (s):", ", ".join(f"{k} {[round(t, 2) for t in v]}" for k, v in times.items()))
    res = info["res"]
    print(f"tiles {res['tiles']} (run {res['tiles_run']}), network batches {len(batches)}")
    b = median(times["bare"])
    p = median(times["predict"])
    print(f"bare forward                          {b:8.2f} s")
    print(f"predict (read/infer/blend/write)      {p:8.2f} s   overhead {100 * (p / b - 1):+.1f} %")
    if "vector" in times:
        v = median(times["vector"])
        print(f"predict + cover + vectorize           {v:8.2f} s   overhead {100 * (v / b - 1):+.1f} %")
    print("target: at most +15 % on CPU (end-to-end within 70 % of bare throughput on GPU)")


if __name__ == "__main__":
    main()
