"""Class agreement between a CPU run and a GPU run of `predict_raster` on the sample scene (issue 16).

The shipped demo model classifies ``sample_data/scene.tif`` once on the CPU (float32) and once
on ``--device`` (float16 autocast on CUDA); the class rasters are compared pixel by pixel over
the pixels both call valid, and the nodata masks must be identical. ``--reference`` adds a
comparison with a class raster made elsewhere (e.g. the CPU result of the development machine,
``benchmarks/results/gpu_sample_classes_cpu.tif``, another torch version). Target: >= 99.5 %.

    python benchmarks/gpu_agree.py [--device auto] [--reference FILE] [--save-cpu FILE] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_common import device_info, pick_device  # noqa: E402

from jess_geo.classes import IGNORE  # noqa: E402
from jess_geo.inference.predict import predict_raster  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.995


def read_classes(path: Path) -> np.ndarray:
    """Band 1 of a class GeoTIFF."""
    with rasterio.open(path) as src:
        return src.read(1)


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Share of equal classes where both are valid; whether both have the same nodata pixels."""
    valid = (a != IGNORE) & (b != IGNORE)
    n = int(valid.sum())
    same = int((a[valid] == b[valid]).sum())
    return {"pixels": n, "differing": n - same, "agreement": same / n if n else float("nan"),
            "same_nodata": bool(np.array_equal(a == IGNORE, b == IGNORE))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--scene", type=Path, default=REPO / "sample_data" / "scene.tif")
    ap.add_argument("--model", type=Path, default=REPO / "jess_geo" / "assets" / "demo_model.pt")
    ap.add_argument("--reference", type=Path, default=None, help="another CPU class raster to compare with")
    ap.add_argument("--save-cpu", type=Path, default=None, help="keep this machine's CPU class raster here")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    dev = pick_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="jess_geo_agree_"))
    runs = {}
    for name, device in (("cpu", "cpu"), ("device", str(dev))):
        out = work / f"{name}_classes.tif"
        res = predict_raster(args.scene, args.model, out, cover=False, device=device, overwrite=True)
        runs[name] = read_classes(out)
        print(f"  {args.scene.name} on {res['device']}: {res['tiles']} tiles in {res['seconds']:.2f} s")
    if args.save_cpu:
        shutil.copyfile(work / "cpu_classes.tif", args.save_cpu)
    report: dict[str, Any] = {"device": device_info(dev), "scene": args.scene.name, "target": TARGET,
                              "device_vs_cpu": agreement(runs["device"], runs["cpu"])}
    if args.reference:
        ref = read_classes(args.reference)
        report["device_vs_reference"] = agreement(runs["device"], ref)
        report["cpu_vs_reference"] = agreement(runs["cpu"], ref)
    ok = True
    for key, a in report.items():
        if isinstance(a, dict):
            met = a["agreement"] >= TARGET and a["same_nodata"]
            ok &= met
            print(f"  {key:<20} {100 * a['agreement']:8.3f} % of {a['pixels']} valid pixels agree ({a['differing']} differ), "
                  f"nodata {'identical' if a['same_nodata'] else 'DIFFERS'}  (target >= {100 * TARGET:.1f} %: {'met' if met else 'NOT met'})")
    report["met"] = ok
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
