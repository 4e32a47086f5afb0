"""jess-geo predict against the loop users write today with torchgeo, same model/tile/overlap/batch.

The torchgeo loop: RasterDataset + GridGeoSampler + DataLoader(stack_samples) + model, logits
argmax'd per tile and pasted into a full-scene array with a hard crop of half the overlap on
inner tile sides, then one GeoTIFF written. (In torchgeo 0.8.1 GridGeoSampler places the last
row/column of chips partly outside the scene; those parts are read as zeros and cropped away.)
Both write a class GeoTIFF; jess-geo also writes its cover table (no polygons in either).
Target (issue 3): jess-geo at least 1.5x faster end to end.

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
from predict_common import make_model, make_scene, peak_rss_mb  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers in the torchgeo loop")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "jess_geo_bench")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    scene_dir = args.workdir / f"tg_{args.size}"
    scene_dir.mkdir(exist_ok=True)
    scene = make_scene(scene_dir / f"scene_{args.size}.tif", args.size, args.size)
    loaded = load_model_file(make_model(args.workdir / "bench_model.pt", tile=args.tile, overlap=args.overlap))
    print(f"scene {args.size}x{args.size}x3, tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}, DataLoader workers {args.workers}")
    # warm-up of the network (both loops benefit)
    with torch.inference_mode():
        loaded.model(torch.zeros(args.batch_size, 3, args.tile, args.tile))
    # alternate the two loops and keep the best of each: the machine may be shared
    t_jg, t_tg = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = predict_raster(scene, loaded, args.workdir / "jg_classes.tif", tile_size=args.tile, overlap=args.overlap,
                             batch_size=args.batch_size, device="cpu", overwrite=True)
        t_jg.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n_tg = torchgeo_loop(scene, loaded, args.workdir / "tg_classes.tif", args.tile, args.overlap, args.batch_size, args.workers)
        t_tg.append(time.perf_counter() - t0)
    print("runs jess-geo", [round(t, 2) for t in t_jg], "torchgeo", [round(t, 2) for t in t_tg])
    t_jg, t_tg = min(t_jg), min(t_tg)
    with rasterio.open(args.workdir / "jg_classes.tif") as a, rasterio.open(args.workdir / "tg_classes.tif") as b:
        agree = float((a.read(1) == b.read(1)).mean())
    print(f"jess-geo predict_raster   {t_jg:8.2f} s  ({res['tiles']} tiles)")
    print(f"torchgeo loop             {t_tg:8.2f} s  ({n_tg} tiles, full-scene array)")
    print(f"speed-up                  {t_tg / t_jg:8.2f} x   (target >= 1.5 x)")
    print(f"class agreement           {100 * agree:8.2f} %   peak RSS of this process {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
