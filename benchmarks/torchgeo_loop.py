"""jess-geo predict against the loop users write today with torchgeo, same model/tile/overlap/batch.

The torchgeo loop: RasterDataset + GridGeoSampler + DataLoader(stack_samples) + model, logits
argmax'd per tile and pasted into a full-scene array with a hard crop of half the overlap on
inner tile sides, then one GeoTIFF written. (In torchgeo 0.8.1 GridGeoSampler places the last
row/column of chips partly outside the scene; those parts are read as zeros and cropped away.)
Both write a class GeoTIFF; jess-geo also writes its cover table (no polygons in either).
Two scenes: one without nodata (both loops run every tile) and one with a nodata frame around a
rotated footprint, as Landsat scenes have (jess-geo skips tiles without a valid pixel; the
torchgeo loop runs them). Each loop is warmed up once, then both are timed in alternating order
and the median is reported. Target (issue 3): jess-geo at least 1.5x faster end to end.

    .venv/bin/python benchmarks/torchgeo_loop.py [--size 2048] [--tile 256] [--overlap 32]
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
from predict_common import bench_model, common_args, make_scene, median, peak_rss_mb  # noqa: E402

from jess_geo.inference.predict import predict_raster  # noqa: E402
from jess_geo.models.modelfile import load_model_file  # noqa: E402


def torchgeo_loop(scene: Path, loaded, out: Path, tile: int, overlap: int, batch: int, workers: int) -> int:
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler, Units

    class Scene(RasterDataset):
        filename_glob = scene.name
        is_image = True

    ds = Scene(paths=str(scene.parent))
    sampler = GridGeoSampler(ds, size=tile, stride=tile - overlap, units=Units.PIXELS)
    loader = DataLoader(ds, sampler=sampler, batch_size=batch, collate_fn=stack_samples, num_workers=workers)
    meta = loaded.metadata
    mean = torch.tensor(meta["normalization"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["normalization"]["std"]).view(1, -1, 1, 1)
    with rasterio.open(scene) as src:
        height, width, profile = src.height, src.width, src.profile
        x0, y0, res = src.transform.c, src.transform.f, src.transform.a
    full = np.zeros((height, width), dtype=np.uint8)  # the full-scene array users allocate
    half = overlap // 2
    n = 0
    net = loaded.model.eval()
    with torch.inference_mode():
        for batch_ in loader:
            x = (batch_["image"].float() - mean) / std
            pred = net(x).argmax(1).numpy().astype(np.uint8)
            for k, bounds in enumerate(batch_["bounds"]):
                xs, ys = bounds[0], bounds[1]
                col = int(round((xs.start - x0) / res))
                row = int(round((y0 - ys.stop) / res))
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


def compare(scene: Path, model_path: Path, args, label: str) -> None:
    """Time both loops on ``scene``: one warm-up each, then alternating order, median of ``--repeats``."""
    out_jg, out_tg = args.workdir / "jg_classes.tif", args.workdir / "tg_classes.tif"
    info: dict = {}
    # The same model file, loaded once for each loop: predict_raster prepares its copy for inference
    # (channels-last layout); the torchgeo loop runs the model as loaded, as users do.
    loaded_jg, loaded_tg = load_model_file(model_path), load_model_file(model_path)

    def run_jg() -> float:
        t0 = time.perf_counter()
        info["res"] = predict_raster(scene, loaded_jg, out_jg, tile_size=args.tile, overlap=args.overlap,
                                     batch_size=args.batch_size, device="cpu", overwrite=True)
        return time.perf_counter() - t0

    def run_tg() -> float:
        t0 = time.perf_counter()
        info["n_tg"] = torchgeo_loop(scene, loaded_tg, out_tg, args.tile, args.overlap, args.batch_size, args.workers)
        return time.perf_counter() - t0

    run_jg(), run_tg()  # warm-up (GDAL, torchgeo's index, the network)
    t_jg: list[float] = []
    t_tg: list[float] = []
    for i in range(args.repeats):
        if i % 2 == 0:
            t_jg.append(run_jg()); t_tg.append(run_tg())  # noqa: E702
        else:
            t_tg.append(run_tg()); t_jg.append(run_jg())  # noqa: E702
    res = info["res"]
    with rasterio.open(out_jg) as a, rasterio.open(out_tg) as b:
        ca, cb = a.read(1), b.read(1)
    valid = ca != 255
    agree = float((ca[valid] == cb[valid]).mean()) if valid.any() else float("nan")
    mj, mt = median(t_jg), median(t_tg)
    print(f"[{label}] valid pixels {100 * valid.mean():.1f} %")
    print(f"  runs jess-geo {[round(t, 2) for t in t_jg]}  torchgeo {[round(t, 2) for t in t_tg]}")
    print(f"  jess-geo predict_raster   {mj:8.2f} s  ({res['tiles']} tiles, {res['tiles_run']} run through the network)")
    print(f"  torchgeo loop             {mt:8.2f} s  ({info['n_tg']} tiles, full-scene array)")
    print(f"  speed-up                  {mt / mj:8.2f} x   (target >= 1.5 x)")
    print(f"  class agreement on valid pixels {100 * agree:.2f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers in the torchgeo loop")
    ap.add_argument("--nodata-margin", type=float, default=0.15,
                    help="second scene: nodata frame (rotated footprint inset by this fraction); 0 skips it")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "jess_geo_bench")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    model_path, model_desc = bench_model(args.model, args.workdir, args.tile, args.overlap)
    print(f"scene {args.size}x{args.size}x3, tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}, DataLoader workers {args.workers}, model: {model_desc} "
          f"(the same file in both loops), "
          f"median of {args.repeats} alternating runs after a warm-up of each")
    scenes = [("full scene, no nodata", args.workdir / f"tg_{args.size}", 0.0)]
    if args.nodata_margin > 0:
        scenes.append((f"scene with a nodata frame (margin {args.nodata_margin:g})", args.workdir / f"tg_{args.size}_nd", args.nodata_margin))
    for label, folder, margin in scenes:
        folder.mkdir(exist_ok=True)
        scene = make_scene(folder / f"scene_{args.size}.tif", args.size, args.size, nodata_margin=margin)
        compare(scene, model_path, args, label)
    print(f"peak RSS of this process {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
