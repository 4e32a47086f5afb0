"""Shared helpers for the benchmarks: synthetic scenes and small models (not part of the package)."""

from __future__ import annotations

import argparse
import os
import resource
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

from jess_geo.models.factory import architecture_dict, build_model
from jess_geo.models.modelfile import save_model_file

CLASSES = [
    {"id": 0, "name": "bare soil", "color": "#c9a87c"},
    {"id": 1, "name": "cyanobacteria crust", "color": "#5b4a3f"},
    {"id": 2, "name": "lichen", "color": "#e3d55a"},
    {"id": 3, "name": "moss", "color": "#3f7a2e"},
]


def make_scene(path: Path, height: int, width: int, *, bands: int = 3, block_rows: int = 1024, seed: int = 0,
               nodata_margin: float = 0.0) -> Path:
    """A smooth, compressible uint8 scene written strip by strip (tiled, deflate, EPSG:32633, 0.5 m).

    ``nodata_margin`` > 0: nodata value 0 and the image framed like a Landsat scene: only a
    rotated square (13 degrees) inset by that fraction of the size on each side is valid;
    valid pixels are 1..255.
    """
    path = Path(path)
    if path.exists():
        return path
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": "uint8",
        "crs": "EPSG:32633", "transform": Affine(0.5, 0, 500000, 0, -0.5, 4000000),
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }
    if nodata_margin > 0:
        profile["nodata"] = 0
    ang = np.deg2rad(13.0)
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    half_h, half_w = (0.5 - nodata_margin) * height, (0.5 - nodata_margin) * width
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6.28, size=bands)
    tmp = path.with_name(path.name + ".part")
    with rasterio.open(tmp, "w", **profile) as dst:
        x = np.arange(width, dtype=np.float32)[None, :]
        for r0 in range(0, height, block_rows):
            r1 = min(height, r0 + block_rows)
            y = np.arange(r0, r1, dtype=np.float32)[:, None]
            data = np.empty((bands, r1 - r0, width), np.uint8)
            for b in range(bands):
                v = 128 + 60 * np.sin(x / 37.0 + phase[b]) * np.cos(y / 53.0) + 40 * np.sin((x + y) / 211.0 + b)
                data[b] = np.clip(v, 1 if nodata_margin > 0 else 0, 255).astype(np.uint8)
            if nodata_margin > 0:
                u = (x - cx) * np.cos(ang) + (y - cy) * np.sin(ang)
                w = -(x - cx) * np.sin(ang) + (y - cy) * np.cos(ang)
                data[:, (np.abs(u) > half_w) | (np.abs(w) > half_h)] = 0
            dst.write(data, window=rasterio.windows.Window(0, r0, width, r1 - r0))
    os.replace(tmp, path)
    return path


def make_model(path: Path, *, decoder=(16, 16, 16, 16, 16), tile: int = 256, overlap: int = 32, seed: int = 0) -> Path:
    """A random-initialised U-Net (efficientnet-lite0, slim decoder) saved as a jess-geo model file."""
    torch.manual_seed(seed)
    arch = architecture_dict("timm-tf_efficientnet_lite0", 3, len(CLASSES), decoder)
    model = build_model(arch)
    meta = {
        "architecture": arch, "bands": [1, 2, 3],
        "normalization": {"mean": [128.0] * 3, "std": [50.0] * 3},
        "classes": CLASSES, "resolution": {"gsd": None, "photo_scale": 1.0},
        "tile_size": tile, "overlap": overlap,
    }
    save_model_file(path, model, meta)
    return Path(path)


DEMO_MODEL = Path(__file__).resolve().parents[1] / "jess_geo" / "assets" / "demo_model.pt"


def bench_model(choice: str, workdir: Path, tile: int, overlap: int) -> tuple[Path, str]:
    """The model file a benchmark runs: ``demo`` (the shipped model, trained on sample_data: the
    class maps a real model makes) or ``random`` (random weights: speckled maps, the worst case
    for the vectorizer). Both are the same EfficientNet-Lite0 U-Net family."""
    if choice == "demo":
        from jess_geo.models.modelfile import load_model_file

        path = Path(workdir) / f"demo_native_{tile}_{overlap}.pt"
        if not path.exists():
            # The shipped network, run at the scene's own resolution (the demo model works at
            # 2 cm; the synthetic scenes are 0.5 m) with the benchmark's tile size and overlap.
            demo = load_model_file(DEMO_MODEL)
            meta = dict(demo.metadata, resolution={"gsd": None, "photo_scale": 1.0}, tile_size=tile, overlap=overlap)
            save_model_file(path, demo.model, meta)
        return path, "the shipped demo network (trained; EfficientNet-Lite0 U-Net, decoder 64-32-16-16-16) at native resolution"
    if choice == "random":
        return make_model(workdir / "bench_model.pt", tile=tile, overlap=overlap), "random-weight EfficientNet-Lite0 U-Net (decoder 16)"
    raise SystemExit(f"--model must be demo or random, not {choice!r}")


def common_args(ap: "argparse.ArgumentParser") -> None:
    """The options the predict benchmarks share: scene size, tiling, batch, threads, model."""
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--model", default="demo", help="demo (the shipped, trained model) or random (random weights)")
    ap.add_argument("--repeats", type=int, default=3)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    Linux: VmHWM from /proc/self/status (ru_maxrss would include the parent's RSS at fork time
    when run in a subprocess); elsewhere getrusage's ru_maxrss.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return float(np.median(np.asarray(values, dtype=np.float64)))
