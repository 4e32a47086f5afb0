"""Reference samples against a class raster: error matrix, accuracy and error-adjusted areas.

Reference units are points (polygons are taken at a point inside them, their representative
point). Each is looked up in the map; units outside the raster, on nodata or without a label
are counted and reported, never dropped silently. Labels may be class ids or class names of
the map's class table; any other label is an error. Stratum weights come from the sample's
stored design (``jess-geo sample``), otherwise from the map's own class areas (with a notice).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from jess_geo.errors import InputError
from jess_geo.measure.accuracy import stratified_estimate
from jess_geo.measure.grid import ClassGrid
from jess_geo.measure.sampling import SAMPLES_LAYER, class_totals, read_design


def read_reference(path: Path, field: str, grid: ClassGrid, layer: str | None = None) -> tuple[np.ndarray, np.ndarray, list[Any], Any]:
    """(x, y, labels, frame) of the reference units in the raster's CRS."""
    import pyogrio

    if not Path(path).is_file():
        raise InputError(f"Reference file {path} does not exist; check the path of --reference.")
    try:
        layers = [name for name, _ in pyogrio.list_layers(path)]
        if layer is None:
            layer = SAMPLES_LAYER if SAMPLES_LAYER in layers else layers[0]
        frame = pyogrio.read_dataframe(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, IndexError) as exc:
        raise InputError(f"Reference file {path} cannot be read as a vector layer ({str(exc).splitlines()[0] if str(exc) else 'no layer'}); pass a GeoPackage of points.") from None
    if field not in frame.columns:
        fields = ", ".join(c for c in frame.columns if c != "geometry") or "none"
        raise InputError(f"Reference layer {layer!r} of {path} has no field {field!r} (fields: {fields}); pass --field with the field holding the reference class.")
    geo = frame.geometry
    if grid.crs_wkt and frame.crs is not None:
        from pyproj import CRS

        target = CRS.from_wkt(grid.crs_wkt)
        if not frame.crs.equals(target):
            geo = geo.to_crs(target)
    pts = geo.representative_point()
    return pts.x.to_numpy(), pts.y.to_numpy(), frame[field].tolist(), frame


def label_index(labels: list[Any], grid: ClassGrid, source: str) -> np.ndarray:
    """Class index of each label (by id, else by name); -1 for an empty label."""
    by_id = {cid: i for i, cid in enumerate(grid.ids)}
    by_name = {name.lower(): i for i, name in enumerate(grid.names)}
    out = np.full(len(labels), -1, dtype=np.int64)
    unknown: dict[str, int] = {}
    for n, v in enumerate(labels):
        if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
            continue
        key = str(v).strip()
        try:
            cid = int(float(key))
            i = by_id.get(cid) if float(key) == cid else None
        except ValueError:
            i = by_name.get(key.lower())
        if i is None:
            unknown[key] = unknown.get(key, 0) + 1
        else:
            out[n] = i
    if unknown:
        listed = ", ".join(f"{k!r} ({c} unit(s))" for k, c in sorted(unknown.items()))
        raise InputError(f"{source} has reference class(es) {listed} that the map's class table does not list "
                         f"({', '.join(f'{i}={n}' for i, n in zip(grid.ids, grid.names))}); relabel them or use the matching map.")
    return out


def map_index(src: Any, grid: ClassGrid, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class index of the map at each point, ``grid.k`` on nodata; inside-raster mask)."""
    inv = ~grid.transform
    with np.errstate(invalid="ignore"):
        fc = np.nan_to_num(inv.a * xs + inv.b * ys + inv.c, nan=-1.0, posinf=-1.0, neginf=-1.0)
        fr = np.nan_to_num(inv.d * xs + inv.e * ys + inv.f, nan=-1.0, posinf=-1.0, neginf=-1.0)
    cols, rows = np.floor(fc).astype(np.int64), np.floor(fr).astype(np.int64)
    inside = (cols >= 0) & (rows >= 0) & (cols < grid.width) & (rows < grid.height) & np.isfinite(xs) & np.isfinite(ys)
    out = np.full(len(xs), grid.k, dtype=np.int64)
    if inside.any():
        t = grid.transform
        cx = t.a * (cols[inside] + 0.5) + t.b * (rows[inside] + 0.5) + t.c
        cy = t.d * (cols[inside] + 0.5) + t.e * (rows[inside] + 0.5) + t.f
        values = np.array([v[0] for v in src.sample(list(zip(cx, cy)), indexes=1)], dtype=np.int64)
        out[inside] = grid.to_index(np.clip(values, 0, 255).astype(np.uint8))
    return out, inside


def stratum_areas(src: Any, grid: ClassGrid, reference: Path) -> tuple[np.ndarray, str]:
    """Mapped area per class: from the sample's stored design, else from the map itself."""
    design = read_design(reference)
    key = f"area_{grid.area_unit}"
    if design is not None and key in design:
        ids = [int(i) for i in design["class_id"]]
        if ids == grid.ids:
            return np.asarray(design[key], dtype=float), "sampling design stored in the reference file"
        raise InputError(f"The sampling design in {reference} lists classes {ids}, the map {grid.ids}; assess the map that was sampled.")
    _, area = class_totals(src, grid)
    return area, "class areas of the map (no sampling design stored: the sample is taken to be stratified random by map class)"


def assess(src: Any, grid: ClassGrid, reference: Path, field: str, layer: str | None = None) -> dict[str, Any]:
    """The whole assessment as a JSON-able dict (see :mod:`jess_geo.measure.accuracy`)."""
    xs, ys, labels, frame = read_reference(reference, field, grid, layer)
    ref = label_index(labels, grid, str(reference))
    mapped, inside = map_index(src, grid, xs, ys)
    on_nodata = inside & (mapped == grid.k)
    unlabelled = ref < 0
    used = inside & ~on_nodata & ~unlabelled
    k = grid.k
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (mapped[used], ref[used]), 1)
    areas, weights_from = stratum_areas(src, grid, reference)
    mismatch = 0
    if "map_class" in frame.columns:
        stored = frame["map_class"].to_numpy()
        ids = np.asarray(grid.ids)
        mismatch = int(np.sum(used & (ids[np.minimum(mapped, k - 1)] != stored)))
    est = stratified_estimate(counts, areas)
    unsampled = [name for name, n, a in zip(grid.names, counts.sum(axis=1), areas) if n == 0 and a > 0]
    return {
        "reference": str(reference), "field": field, "area_unit": grid.area_unit, "weights_from": weights_from,
        "units": {"total": len(labels), "used": int(used.sum()), "outside_raster": int((~inside).sum()),
                  "on_nodata": int(on_nodata.sum()), "unlabelled": int((unlabelled & inside & ~on_nodata).sum()),
                  "map_class_differs_from_sampling": mismatch},
        "unsampled_strata": unsampled,
        **est.to_dict(grid.names),
    }
