"""Helpers for the issue-11 must-show on a real biocrust photo (see benchmarks/measure_real_scene.sh).

``zones OUT.gpkg``: three plots drawn over the photo in its pixel coordinates (x = column,
y = -row), the third partly outside the 1474 px wide photo.
``label SAMPLES.gpkg MASK.png``: fill the sample points' ``class`` field from the ground-truth
mask (what a person labelling the points would enter), in place.
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


if __name__ == "__main__":
    {"zones": zones, "label": label}[sys.argv[1]](*sys.argv[2:])
