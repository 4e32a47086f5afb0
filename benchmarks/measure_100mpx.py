"""Run time and peak memory of `jess-geo stats` and `jess-geo change` on a generated class raster.

    .venv/bin/python benchmarks/measure_100mpx.py [--size 10000] [--height H] [--workdir DIR] [--keep]

Writes two SIZE x SIZE (or SIZE wide, H high) uint8 class rasters (8 classes in 32 px blocks, UTM, 0.5 m pixels;
the second with about 10 % of the blocks changed to another class), strip by strip, then runs
each command in its own process and reports wall time and peak resident memory
(``ru_maxrss`` of the child). Memory should stay flat: it follows the raster's width (a few
strips), not its height; compare ``--height 2500`` with the full 10000.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [{"id": i, "name": n, "color": c} for i, (n, c) in enumerate([
    ("soil", "#8c6d4f"), ("Toninia", "#c8000a"), ("Psora", "#bbcf4a"), ("Fulgensia", "#ffd400"),
    ("Placidium", "#006c84"), ("Syntrichia", "#2e7d32"), ("Collema", "#1a1a1a"), ("Cyano", "#aed6dc")])]
BLOCK = 32


def generate(path: Path, size: int, height: int, coarse: np.ndarray) -> None:
    from jess_geo.io.geotiff import class_writer

    w = class_writer(path, width=size, height=height, crs_wkt=CRS.from_epsg(32612).to_wkt(), transform=Affine(0.5, 0, 500000, 0, -0.5, 4100000),
                     classes=CLASSES)
    try:
        for r in range(0, height, 256):
            h = min(256, height - r)
            rows = np.arange(r, r + h) // BLOCK
            strip = np.repeat(coarse[rows], BLOCK, axis=1)[:, :size]
            w.write_rows(strip.astype(np.uint8))
    finally:
        w.close()


def timed(args: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{err}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "stdout": out[-2000:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--height", type=int, default=None, help="rows (default: --size)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    opts = ap.parse_args()
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="measure_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = opts.size // BLOCK + 1
    coarse = rng.integers(0, len(CLASSES), (n, n))
    changed = coarse.copy()
    flip = rng.random(coarse.shape) < 0.10
    changed[flip] = (coarse[flip] + rng.integers(1, len(CLASSES), int(flip.sum()))) % len(CLASSES)
    t0 = time.perf_counter()
    before, after = work / "before.tif", work / "after.tif"
    height = opts.height or opts.size
    generate(before, opts.size, height, coarse)
    generate(after, opts.size, height, changed)
    gen = time.perf_counter() - t0
    exe = [sys.executable, "-m", "jess_geo.cli.main"]
    results = {
        "size": f"{opts.size} x {height} = {opts.size * height / 1e6:.0f} Mpx", "generate_s": round(gen, 1),
        "stats": timed(exe + ["stats", str(before), "-o", str(work / "s"), "--overwrite", "-q"]),
        "change": timed(exe + ["change", str(before), str(after), "-o", str(work / "c"), "--overwrite", "-q"]),
        "cpu_count": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    for k in ("stats", "change"):
        results[k].pop("stdout")
    with open(work / "c_classes.csv", encoding="utf-8") as f:
        results["change_classes_csv_head"] = f.read().splitlines()[:3]
    print(json.dumps(results, indent=2))
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
