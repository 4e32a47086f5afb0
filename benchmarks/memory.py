"""Peak memory of predict_raster on a 5000 x 5000 and a 20000 x 20000 3-band scene.

Each run is a fresh subprocess (peak RSS from getrusage); scenes are compressed tiled GeoTIFFs
generated once under /tmp. A tiny network (3x3 conv -> 1x1 conv) keeps the runs quick so the
figure is about the pipeline's memory (strip buffers, queues, GDAL cache), not the network's.
Target (issue 3): 20000^2 at most 2 GB and within 20 % of the 5000^2 figure.

    .venv/bin/python benchmarks/memory.py [--sizes 5000 20000] [--probabilities]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def child(scene: str, out: str, probabilities: bool, energy: bool, vector: bool) -> None:
    import torch

    from predict_common import CLASSES, peak_rss_mb
    from jess_geo.inference.predict import predict_raster
    from jess_geo.models.modelfile import LoadedModel

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, len(CLASSES), 1)).eval()
    meta = {"architecture": {"arch": "unet", "encoder": "tiny", "decoder_channels": [16] * 5, "in_channels": 3,
                             "num_classes": len(CLASSES)},
            "bands": [1, 2, 3], "normalization": {"mean": [128.0] * 3, "std": [50.0] * 3}, "classes": CLASSES,
            "resolution": {"gsd": None, "photo_scale": 1.0}, "tile_size": 512, "overlap": 64}
    base = peak_rss_mb()
    t0 = time.perf_counter()
    o = Path(out)
    res = predict_raster(scene, LoadedModel(net, meta), o, probabilities=o.with_name("p.tif") if probabilities else None,
                         energy=o.with_name("e.tif") if energy else None, vector=o.with_suffix(".gpkg") if vector else None,
                         batch_size=4, device="cpu", overwrite=True)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": base, "seconds": time.perf_counter() - t0,
                      "tiles": res["tiles"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--probabilities", action="store_true")
    ap.add_argument("--energy", action="store_true")
    ap.add_argument("--vector", action="store_true")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "jess_geo_bench")
    ap.add_argument("--child", nargs=2, metavar=("SCENE", "OUT"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.probabilities, args.energy, args.vector)
        return
    from predict_common import make_scene

    args.workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    for size in args.sizes:
        t0 = time.perf_counter()
        scene = make_scene(args.workdir / f"scene_{size}.tif", size, size)
        gen = time.perf_counter() - t0
        cmd = [sys.executable, __file__, "--child", str(scene), str(args.workdir / f"mem_{size}_classes.tif")]
        cmd += [f for f, on in (("--probabilities", args.probabilities), ("--energy", args.energy), ("--vector", args.vector)) if on]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr)
            raise SystemExit(r.returncode)
        results[size] = json.loads(r.stdout.strip().splitlines()[-1])
        m = results[size]
        print(f"{size:>6} x {size:<6} peak RSS {m['peak_rss_mb']:7.0f} MiB (after imports {m['rss_after_imports_mb']:.0f} MiB), "
              f"{m['seconds']:7.1f} s, {m['tiles']} tiles  (scene generated in {gen:.0f} s)")
    if len(args.sizes) >= 2:
        small, big = results[min(args.sizes)]["peak_rss_mb"], results[max(args.sizes)]["peak_rss_mb"]
        print(f"largest / smallest peak RSS: {big / small:.3f} (target <= 1.20; largest <= 2048 MiB: {big <= 2048})")


if __name__ == "__main__":
    main()
