"""Benchmark: vectorize a 100-megapixel class raster (10000 x 10000) to a GeoPackage (or --format).

Generates (once, cached in /tmp) a uint8 class GeoTIFF of smooth random blobs — five classes
from the argmax of smooth noise fields at two scales, a nodata border band — tiled and
deflate-compressed; then runs :func:`jess_geo.io.vectorize.vectorize_raster` on it and prints
wall time, peak RSS and the polygon count. Target (issue 3): at most 90 s on 2 cores, flat memory.

    python benchmarks/vectorize.py [--size 10000] [--strip-rows 1024] [--simplify 0] [--min-area 0]
                                   [--format gpkg|fgb|geojson|shp]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

CLASSES = [
    {"id": 0, "name": "bare soil", "color": "#8c6d4f"},
    {"id": 1, "name": "cyanobacteria", "color": "#bbcf4a"},
    {"id": 2, "name": "lichen", "color": "#ffd400"},
    {"id": 3, "name": "moss", "color": "#2e7d32"},
    {"id": 4, "name": "rock", "color": "#7f7f7f"},
]


def _lerp_index(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """For each fine position: the coarse index to its left and the weight of the right one."""
    pos = (np.arange(n_out) + 0.5) * (n_in - 1) / n_out
    i0 = np.clip(np.floor(pos).astype(np.intp), 0, n_in - 2)
    return i0, (pos - i0).astype(np.float32)


def make_class_raster(path: Path, size: int, seed: int = 0, strip: int = 1024) -> None:
    """Write a ``size`` x ``size`` uint8 class raster of smooth random blobs (EPSG:32724, 0.5 m)."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    # coarse blobs, a finer wiggle of their edges, and speckle (as a model's output has)
    octaves = [(size // 160 + 2, 1.0), (size // 40 + 2, 0.35), (size // 6 + 2, 0.2)]
    fields = [(rng.standard_normal((k, n, n)).astype(np.float32), w, _lerp_index(size, n)) for n, w in octaves]
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint8", nodata=255,
                   crs="EPSG:32724", transform=Affine(0.5, 0, 290000.0, 0, -0.5, 9120000.0),
                   tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    tmp = path.with_suffix(".part.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, strip):
            h = min(strip, size - r0)
            score = np.zeros((k, h, size), dtype=np.float32)
            for noise, w, (idx, frac) in fields:
                iy, fy = idx[r0 : r0 + h], frac[r0 : r0 + h, None]
                rows_lerp = noise[:, iy, :] * (1 - fy) + noise[:, iy + 1, :] * fy  # (k, h, n)
                score += w * (rows_lerp[:, :, idx] * (1 - frac) + rows_lerp[:, :, idx + 1] * frac)
            score[0] += 0.3  # a dominant background class
            cls = np.argmax(score, axis=0).astype(np.uint8)
            rows = np.arange(r0, r0 + h)[:, None]
            cols = np.arange(size)[None, :]
            border = (cols < 40 + 30 * np.sin(rows / 300.0)) | (rows > size - 25)  # nodata edge
            cls[border] = 255
            dst.write(cls, 1, window=Window(0, r0, size, h))
    tmp.replace(path)


def _rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--strip-rows", type=int, default=1024)
    ap.add_argument("--simplify", type=float, default=0.0)
    ap.add_argument("--min-area", type=float, default=0.0)
    ap.add_argument("--format", default="gpkg", choices=["gpkg", "fgb", "geojson", "shp"], help="output format (extension)")
    ap.add_argument("--keep", action="store_true", help="keep the output file")
    args = ap.parse_args(argv)

    from jess_geo.io.vectorize import vectorize_raster

    cache = Path(tempfile.gettempdir()) / f"jess_geo_bench_classes_{args.size}.tif"
    if not cache.exists():
        t = time.perf_counter()
        make_class_raster(cache, args.size)
        print(f"generated {cache} in {time.perf_counter() - t:.1f} s", flush=True)
    out = Path(tempfile.gettempdir()) / f"jess_geo_bench_{args.size}.{args.format}"
    parts = [out.with_suffix(e) for e in (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qml")] if args.format == "shp" else [out, out.with_suffix(".qml")]
    for p in parts:
        p.unlink(missing_ok=True)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trace: list[tuple[int, int, float]] = []

    def progress(stage: str, done: int, total: int, message: str) -> None:
        trace.append((done, total, _rss_mib()))

    t = time.perf_counter()
    summary = vectorize_raster(cache, out, CLASSES, min_area=args.min_area, simplify=args.simplify,
                               source=cache.name, model="benchmark", strip_rows=args.strip_rows, progress=progress)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"raster: {args.size} x {args.size} = {args.size * args.size / 1e6:.0f} Mpx, strip_rows={args.strip_rows}, "
          f"simplify={args.simplify}, min_area={args.min_area}")
    print(f"wall time: {wall:.1f} s (target <= 90 s)")
    print(f"peak RSS: {peak:.0f} MiB (before vectorizing: {rss0:.0f} MiB)")
    picks = sorted({0, len(trace) // 4, len(trace) // 2, 3 * len(trace) // 4, len(trace) - 1})
    print("RSS after strip: " + ", ".join(f"{trace[i][0]}/{trace[i][1]}: {trace[i][2]:.0f} MiB" for i in picks))
    size_mb = sum(p.stat().st_size for p in parts if p.exists()) / 1e6
    print(f"polygons: {summary['polygons']}  {args.format}: {size_mb:.1f} MB")
    for cid, c in summary["classes"].items():
        print(f"  class {cid} {c['name']:<14} polygons={c['count']:>7}  area={c['area']:.1f} {summary['area_unit']}")
    if not args.keep:
        for p in parts:
            p.unlink(missing_ok=True)
    return 0 if wall <= 90 else 1


if __name__ == "__main__":
    sys.exit(main())
