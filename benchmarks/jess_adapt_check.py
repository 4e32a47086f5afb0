"""Issue 3/4 must-shows on ../shared/data/biocrust_usa with a model trained by `jess-geo train`.

Uses the camera split of benchmarks/domain_shift.py (source: four dated photos; target:
stop_2_repaired_a through the documented CAMERA transform, its labels only score):

1. [photo]  `jess-geo predict` on a plain photo: class raster, polygons and cover table in pixel units.
2. [adapt]  `jess-geo adapt BASE --target-images ...` and `jess-geo info` showing the adaptation record.
3. [energy] `jess-geo predict --energy` on the source validation photo and the target photo under
            the base and the adapted model: mean free energy and target - source gap.
4. [score]  `jess-geo evaluate` of both models on the target (its labels only score) and on the source
            validation photo.

    .venv/bin/python benchmarks/jess_adapt_check.py --base RUN/model.pt [--work DIR] [--epochs 6]

BASE: a model trained with `jess-geo train` on the camera split's source photos (domain_shift.py
keeps one per run in its work folder: runs/camera_baseline_s0/model.pt). Without --base the script
trains one first with the domain-shift recipe (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from domain_shift import DATA, prepare  # noqa: E402

CLI = Path(sys.executable).parent / "jess-geo"
RECIPE = ["--photo-scale", "0.5", "--crop-size", "192", "--batch-size", "8", "--lr", "0.001", "--seed", "0"]


def run(cmd: list[str], cwd: Path, show: bool = True) -> str:
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {r.stderr.strip()}")
    if show and r.stdout.strip():
        print("\n".join("  " + line for line in r.stdout.rstrip().splitlines()))
    print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    return r.stdout


def mean_energy(model: Path, image: Path, out: Path, cwd: Path) -> float:
    run([CLI, "predict", image, "--model", model, "-o", out.with_suffix(".classes.tif"), "--no-vector", "--energy", out,
         "--overwrite", "--quiet", "--device", "cpu"], cwd, show=False)
    with rasterio.open(out) as src:
        return float(np.nanmean(src.read(1)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--base", type=Path, help="model trained on the camera split's source photos")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--epochs", type=int, default=6, help="adapt epochs (of 12 steps of 8 crops)")
    args = ap.parse_args(argv)
    if not DATA.exists():
        sys.exit(f"{DATA} is not present")
    work = args.work or Path(tempfile.mkdtemp(prefix="jess_adapt_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}")
    cam = prepare(work)["camera"]
    base = args.base.resolve() if args.base else None
    cfg = work / "split.yaml"  # validation on the split's own validation photo, as in domain_shift.py
    cfg.write_text(f"val_images: {cam['val'] / 'images'}\nval_masks: {cam['val'] / 'masks'}\nsamples_per_epoch: 96\n"
                   f"val_crop: 512\n")
    if base is None:
        run([CLI, "train", "--config", cfg, "--images", cam["train"] / "images", "--masks", cam["train"] / "masks",
             "--classes", DATA / "classes.json", "--output-dir", "base", "--epochs", "12", *RECIPE, "--quiet"], work)
        base = work / "base" / "model.pt"

    photo = DATA / "images" / "stop_2_repaired_a.png"
    print("\n[photo] a plain photo (no georeferencing) with the model trained by `jess-geo train`")
    run([CLI, "predict", photo, "--model", base, "-o", "photo_classes.tif", "--vector", "photo_classes.gpkg",
         "--overwrite", "--device", "cpu"], work)
    import pyogrio

    with rasterio.open(work / "photo_classes.tif") as src:
        print(f"  photo_classes.tif: {src.width} x {src.height} px, CRS {src.crs}, transform {tuple(src.transform)[:6]}, "
              f"nodata {src.nodata}")
    info = pyogrio.read_info(work / "photo_classes.gpkg", layer="classes")
    df = pyogrio.read_dataframe(work / "photo_classes.gpkg", layer="classes")
    print(f"  photo_classes.gpkg: {info['features']} polygons, CRS {info['crs']}, fields {list(info['fields'])}; "
          f"area_m2 all NULL: {bool(df['area_m2'].isna().all())}; sum of area_px {df['area_px'].sum():.0f} "
          f"= {src.width} x {src.height} = {src.width * src.height} px: {bool(abs(df['area_px'].sum() - src.width * src.height) < 0.5)}")
    cover = json.loads((work / "photo_cover.json").read_text())
    print(f"  photo_cover.json: area unit {cover.get('area_unit')!r}, valid pixels {cover['valid_pixels']}")

    print("\n[adapt] fine-tune the base model to the target camera with JESS (target labels only score)")
    run([CLI, "adapt", base, "--method", "jess", "--config", cfg, "--images", cam["train"] / "images", "--masks", cam["train"] / "masks",
         "--target-images", cam["target"] / "images", "--target-masks", cam["target"] / "masks",
         "--output-dir", "adapted", "--epochs", str(args.epochs), "--lr", "5e-4", "--jess-batchnorm", "split", "--quiet"], work)
    out = run([CLI, "info", "adapted/model.pt"], work, show=False)
    print("\n".join("  " + line for line in out.splitlines() if line.startswith(("model:", "adaptation:", "metrics:"))))

    print("\n[energy] mean free energy from `jess-geo predict --energy` (lower = more familiar to the model)")
    src_img = next((cam["val"] / "images").iterdir())
    tgt_img = next((cam["target"] / "images").iterdir())
    rows = {}
    for name, model in (("base", base), ("adapted", work / "adapted" / "model.pt")):
        es = mean_energy(model, src_img, work / f"e_{name}_source.tif", work)
        et = mean_energy(model, tgt_img, work / f"e_{name}_target.tif", work)
        rows[name] = (es, et)
        print(f"  {name:<8} source ({src_img.name}) {es:7.3f}   target ({tgt_img.name}) {et:7.3f}   gap {et - es:+.3f}")

    print("\n[score] `jess-geo evaluate` at native resolution")
    for name, model in (("base", base), ("adapted", work / "adapted" / "model.pt")):
        for dom in ("target", "val"):
            m = json.loads(run([CLI, "evaluate", model, "--images", cam[dom] / "images", "--masks", cam[dom] / "masks", "--json"],
                               work, show=False))
            print(f"  {name:<8} {'target' if dom == 'target' else 'source val'}: accuracy {100 * m['accuracy']:.1f} %, mIoU {100 * m['miou']:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
