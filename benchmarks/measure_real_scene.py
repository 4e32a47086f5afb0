"""Helpers for the issue-11 must-show on a real biocrust photo (see benchmarks/measure_real_scene.sh).

``zones OUT.gpkg``: three plots drawn over the photo in its pixel coordinates (x = column,
y = -row), the third partly outside the 1474 px wide photo.
``label SAMPLES.gpkg MASK.png``: fill the sample points' ``class`` field from the ground-truth
mask (what a person labelling the points would enter), in place.
``coverage MAP.tif MASK.png [N] [REPEATS]``: how often the 95 % interval of the error-adjusted
cover holds the mask's true cover, over REPEATS stratified samples of N points (proportional,
at least 20 per class), drawn in memory: a check of the estimator on real errors.
"""

from __future__ import annotations

import sys

import numpy as np


def zones(out: str) -> None:
    import geopandas as gpd
    import shapely

    boxes = {"plot_A": (100, 100, 500, 500), "plot_B": (700, 600, 1100, 1000), "plot_C_edge": (1300, 0, 1600, 300)}
    geoms = [shapely.box(c0, -r1, c1, -r0) for c0, r0, c1, r1 in boxes.values()]
    gpd.GeoDataFrame({"plot": list(boxes)}, geometry=geoms, crs=None).to_file(out, layer="plots")


def label(samples: str, mask: str) -> None:
    import pyogrio
    import rasterio

    frame = pyogrio.read_dataframe(samples, layer="samples")
    with rasterio.open(mask) as src:
        truth = src.read(1)
    frame["class"] = truth[frame["row"].to_numpy(), frame["col"].to_numpy()].astype(np.int64)
    pyogrio.write_dataframe(frame, samples, layer="samples")
    print(f"labelled {len(frame)} points from {mask}")


def coverage(map_tif: str, mask: str, n: str = "400", repeats: str = "300") -> None:
    import rasterio

    from jess_geo.measure.accuracy import stratified_estimate
    from jess_geo.measure.sampling import allocate

    with rasterio.open(map_tif) as src:
        k = len(__import__("json").loads(src.tags()["CLASS_NAMES"]))
        m = src.read(1).ravel()
    with rasterio.open(mask) as src:
        t = src.read(1).ravel()
    truth = np.bincount(t, minlength=k)[:k] / t.size
    pixels = np.bincount(m, minlength=k)[:k]
    sizes = allocate(pixels, int(n), "proportional", 20)
    where = [np.flatnonzero(m == c) for c in range(k)]
    rng = np.random.default_rng(1)
    hits = np.zeros(k)
    for _ in range(int(repeats)):
        counts = np.zeros((k, k))
        for c in range(k):
            if sizes[c]:
                np.add.at(counts, (c, t[rng.choice(where[c], sizes[c], replace=False)]), 1)
        est = stratified_estimate(counts, pixels.astype(float))
        hits += np.abs(est.area / est.total_area - truth) <= 1.96 * est.area_se / est.total_area
    print("true cover %      ", (100 * truth).round(2).tolist())
    print(f"95% CI coverage ({repeats} samples of {n}):", (hits / int(repeats)).round(3).tolist())


if __name__ == "__main__":
    {"zones": zones, "label": label, "coverage": coverage}[sys.argv[1]](*sys.argv[2:])
