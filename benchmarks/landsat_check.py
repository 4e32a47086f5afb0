"""Issue 3 must-show on the real Landsat 7 scene ../shared/data/landsat/l7_etm_olinda.tif.

1. A 6-band model is trained with the project's own ``jess-geo train`` on this scene. There are no
   hand labels for it, so the labels are spectral-index rules (documented below, printed): the
   check is about the prediction pipeline (grid, blending, areas, nodata), not about land cover.
   The scene is cut into 4 quadrant GeoTIFFs so training has files to split into train/validation.
2. ``jess-geo predict`` with tile 256 / overlap 64 and with one whole-image pass (tile 384, no
   overlap: the 349 x 352 scene fits in one padded tile); both outputs are compared pixel by pixel.
3. Outputs must carry the input's CRS, transform and size; per class, the summed polygon area in
   the GeoPackage must equal pixel count x pixel area within 0.5 %.
4. The scene has no nodata, so a copy is made with Landsat-7-like SLC-off gaps (slanted stripes)
   and a cut corner set to nodata 0: no polygon may cover a nodata pixel, and nodata stays nodata
   in the class raster.

    .venv/bin/python benchmarks/landsat_check.py [--epochs 15] [--work DIR]

Pseudo-labels (ETM+ bands 1,2,3,4,5,7 are file bands 1-6): water where MNDWI = (green - SWIR1) /
(green + SWIR1) > 0.3; vegetation where NDVI = (NIR - red) / (NIR + red) > 0.15; otherwise
built-up / bare.
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
import shapely
from rasterio.features import rasterize, shapes
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
LANDSAT = ROOT.parent / "shared" / "data" / "landsat" / "l7_etm_olinda.tif"
CLI = Path(sys.executable).parent / "jess-geo"
CLASSES = [
    {"id": 0, "name": "water", "color": "#2b6cb0"},
    {"id": 1, "name": "vegetation", "color": "#2f855a"},
    {"id": 2, "name": "built-up / bare", "color": "#c05621"},
]


def pseudo_labels(a: np.ndarray) -> np.ndarray:
    """Class ids from spectral indices (see the module docstring)."""
    a = a.astype(np.float64)
    green, red, nir, swir1 = a[1], a[2], a[3], a[4]
    mndwi = (green - swir1) / np.maximum(green + swir1, 1e-6)
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    out = np.full(a.shape[1:], 2, np.uint8)
    out[ndvi > 0.15] = 1
    out[mndwi > 0.3] = 0
    return out


def make_training_data(work: Path) -> None:
    """Quadrant GeoTIFFs of the scene and their pseudo-label masks."""
    (work / "images").mkdir(parents=True, exist_ok=True)
    (work / "masks").mkdir(exist_ok=True)
    (work / "classes.json").write_text(json.dumps(CLASSES))
    with rasterio.open(LANDSAT) as src:
        h, w = src.height, src.width
        for i, (r0, c0) in enumerate([(0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)]):
            win = Window(c0, r0, (w - w // 2) if c0 else w // 2, (h - h // 2) if r0 else h // 2)
            data = src.read(window=win)
            prof = dict(src.profile, width=win.width, height=win.height, transform=src.window_transform(win), tiled=False)
            prof.pop("blockysize", None), prof.pop("blockxsize", None)
            with rasterio.open(work / "images" / f"olinda_q{i}.tif", "w", **prof) as dst:
                dst.write(data)
            mprof = dict(prof, count=1, dtype="uint8")
            with rasterio.open(work / "masks" / f"olinda_q{i}.tif", "w", **mprof) as dst:
                dst.write(pseudo_labels(data)[None])


def make_gapped_copy(path: Path) -> np.ndarray:
    """The scene with SLC-off-like slanted stripes and a cut corner set to nodata 0; returns the gap mask."""
    with rasterio.open(LANDSAT) as src:
        data, prof = src.read(), dict(src.profile)
    h, w = data.shape[1:]
    rows, cols = np.mgrid[0:h, 0:w]
    gap = ((rows + cols // 9) % 37) < 3  # stripes 3 px wide, slanted, every 37 rows
    gap |= rows + cols < 60  # a cut corner
    data[:, gap] = 0
    prof.update(nodata=0)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
    return gap


def run(cmd: list[str], cwd: Path) -> str:
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {r.stderr.strip()}")
    print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    return r.stdout


def area_check(classes_tif: Path, gpkg: Path) -> list[str]:
    """Per class: summed polygon area against pixel count x pixel area."""
    import pyogrio

    with rasterio.open(classes_tif) as src:
        cls, nd = src.read(1), src.nodata
        px_area = abs(src.transform.a * src.transform.e - src.transform.b * src.transform.d)
    df = pyogrio.read_dataframe(gpkg, layer="classes")
    lines, worst = [], 0.0
    for c in CLASSES:
        pixels = int((cls == c["id"]).sum())
        poly = float(df.loc[df["class_id"] == c["id"], "area_m2"].sum())
        want = pixels * px_area
        rel = abs(poly - want) / want if want else (0.0 if poly == 0 else 1.0)
        worst = max(worst, rel)
        lines.append(f"  {c['name']:<16} pixels {pixels:>7}  x {px_area:.2f} m2 = {want / 1e6:10.4f} km2   "
                     f"polygons {int((df['class_id'] == c['id']).sum()):>5}, area {poly / 1e6:10.4f} km2   diff {100 * rel:.4f} %")
    lines.append(f"  largest difference {100 * worst:.4f} % (target <= 0.5 %): {'OK' if worst <= 0.005 else 'FAILED'}")
    lines.append(f"  nodata value of the class raster: {nd}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--work", help="work folder (default: a new temporary folder)")
    args = ap.parse_args(argv)
    if not LANDSAT.exists():
        sys.exit(f"{LANDSAT} is not present")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="jess_landsat_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}")
    make_training_data(work)
    model = work / "model" / "model.pt"
    if not model.exists():
        out = run([str(CLI), "train", "--images", "images", "--masks", "masks", "--classes", "classes.json",
                   "--output-dir", "model", "--epochs", str(args.epochs), "--crop-size", "96", "--batch-size", "8",
                   "--lr", "0.001", "--quiet", "--json"], work)
        m = json.loads(out[out.index("{"):])
        print(f"  trained: best epoch {m.get('best_epoch')}, validation accuracy {100 * m['val_accuracy']:.1f} %, "
              f"mIoU {100 * m['val_miou']:.1f} % (pseudo-labels)")
    common = ["--model", str(model), "--overwrite", "--quiet", "--device", "cpu"]
    run([str(CLI), "predict", str(LANDSAT), "-o", "tiled.tif", "--vector", "tiled.gpkg", "--tile-size", "256", "--overlap", "64", *common], work)
    run([str(CLI), "predict", str(LANDSAT), "-o", "whole.tif", "--no-vector", "--tile-size", "384", "--overlap", "0", *common], work)

    print("\n[grid] outputs against the input")
    with rasterio.open(LANDSAT) as ref, rasterio.open(work / "tiled.tif") as a, rasterio.open(work / "whole.tif") as b:
        for name, ds in (("tiled.tif", a), ("whole.tif", b)):
            same = ds.crs == ref.crs and ds.transform == ref.transform and ds.shape == ref.shape
            print(f"  {name}: CRS EPSG:{ds.crs.to_epsg()}, size {ds.width} x {ds.height}, transform "
                  f"{tuple(round(v, 4) for v in ds.transform[:6])}: {'same as the input' if same else 'DIFFERENT'}")
        ta, tb = a.read(1), b.read(1)
    agree = float((ta == tb).mean())
    print(f"\n[tiles] tile 256 / overlap 64 against one whole-image pass: {100 * agree:.3f} % of pixels agree "
          f"({int((ta != tb).sum())} of {ta.size} differ; target >= 99.5 %: {'OK' if agree >= 0.995 else 'FAILED'})")
    print("\n[areas] tile 256 / overlap 64, no nodata")
    print("\n".join(area_check(work / "tiled.tif", work / "tiled.gpkg")))

    gap = make_gapped_copy(work / "olinda_gaps.tif")
    run([str(CLI), "predict", "olinda_gaps.tif", "-o", "gaps.tif", "--vector", "gaps.gpkg", "--tile-size", "256", "--overlap", "64", *common], work)
    print(f"\n[nodata] copy with SLC-off-like gaps: {int(gap.sum())} nodata pixels ({100 * gap.mean():.1f} %)")
    with rasterio.open(work / "gaps.tif") as src:
        cls, nd, transform = src.read(1), src.nodata, src.transform
    print(f"  class raster: nodata pixels {int((cls == nd).sum())}, all gap pixels nodata: {bool((cls[gap] == nd).all())}, "
          f"no valid pixel nodata: {bool((cls[~gap] != nd).all())}")
    import pyogrio

    polys = pyogrio.read_dataframe(work / "gaps.gpkg", layer="classes")
    burned = rasterize(((g, 1) for g in polys.geometry), out_shape=cls.shape, transform=transform, fill=0, dtype="uint8", all_touched=False)
    gap_geoms = [shapely.geometry.shape(g) for g, v in shapes(gap.astype(np.uint8), mask=gap, transform=transform) if v == 1]
    overlap = shapely.area(shapely.intersection(shapely.union_all(polys.geometry.values), shapely.union_all(gap_geoms)))
    print(f"  {len(polys)} polygons; pixels covered by a polygon that are nodata: {int(burned[gap].sum())}; "
          f"area of polygons inside nodata: {overlap:.6f} m2 ({'OK' if overlap == 0 and burned[gap].sum() == 0 else 'FAILED'})")
    print("\n[areas] copy with gaps")
    print("\n".join(area_check(work / "gaps.tif", work / "gaps.gpkg")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
