"""Class raster to polygons (GeoPackage, FlatGeobuf, GeoJSON, Shapefile), strip by strip.

How it works
------------
The uint8 class raster is read in strips of ``strip_rows`` rows. Each strip is polygonized with
``rasterio.features.shapes`` (GDAL polygonize) in *pixel coordinates* (x = column, y = row), so
every vertex is an exact integer pixel corner and edges shared by two strips match exactly.
Pieces that touch the strip's bottom edge are *open*: they are carried to the next strip, where
each column of the seam says which carried region lies above and which new piece lies below;
same class on both sides joins them (:mod:`jess_geo.io.seams`, a union-find over pieces, so
regions can fork and merge through any number of strips). A region with no piece on the latest
seam is *closed*: its parts are unioned once (never re-unioned strip after strip), moved to CRS
coordinates with the raster's affine transform, measured (:mod:`jess_geo.io.areas`) and appended
to the output layer in batches (:mod:`jess_geo.io.vector_writer`). The output format follows the
extension, and the file is written atomically (:mod:`jess_geo.io.vector_output`): an existing
GeoPackage keeps its other layers and their styles.

Connectivity is 4 (edge neighbours), the default of ``rasterio.features.shapes`` and of GDAL:
two pixels of a class that touch only at a corner belong to different polygons. Polygons lie
exactly on pixel edges: unsimplified, a polygon's area is its pixel count times the pixel area.
Nodata pixels (the raster's nodata value, else ``nodata``; also an internal mask) are never
vectorized.

Fields: ``class_id``, ``class_name``, ``area_m2``, ``perimeter_m``, ``area_px``,
``perimeter_px``, ``source``, ``model`` (Shapefile: ``perim_m``, ``perim_px``, 10 characters at
most). ``area_m2``/``perimeter_m`` are geodesic (WGS84 or the
CRS's ellipsoid, ``pyproj.Geod``) for a geographic CRS and planar times the CRS unit in metres
(squared) for a projected CRS. Plain photos have no real-world units: there ``area_m2`` and
``perimeter_m`` are NULL and ``area_px``/``perimeter_px`` (pixel units, present for every raster)
carry the figures; ``min_area`` is then in px² and ``simplify`` in pixels.

``min_area`` (m², px² for photos): regions smaller than it are merged into a neighbour, not
removed, so no holes open between neighbours. This is done on the pixels before polygonizing
(GDAL sieve, 4-connectivity: a small region takes the class of its largest neighbour) on each
strip read with a halo of ``ceil(min_area / pixel area)`` rows (at most ``MAX_SIEVE_HALO``), so a
small region is always seen whole (the neighbour it joins can differ from a whole-raster sieve
when a neighbour's size is cut by the window: a few pixels change class, never a gap). A small
region with no valid neighbour (an island in nodata) is removed. For a geographic CRS the pixel area is taken at each strip's centre latitude.
Thresholds larger than ``MAX_SIEVE_HALO`` pixels are exact except for regions taller than the
halo whose part inside the read window is below the threshold (long thin features).

``simplify`` (CRS units; converted to pixels with the mean pixel size) is topology-preserving:
``shapely.coverage_simplify`` is run on all pieces of a strip together, with the strip's outer
boundary (seams, raster edge, nodata edge) held fixed. Edges shared by neighbours are therefore
simplified once and identically for both, seams still match exactly for the merge, and no
polygon grows over nodata. The limit: a boundary line that crosses a seam keeps its vertex on
the seam (each half is simplified on its own side).

Memory: one strip (plus the sieve halo) and the regions still open on the current seam. The
worst case is one region that spans the whole raster (background around everything): its parts
are kept until it closes, so memory grows with that region's boundary length (the size of the
polygon that is finally written, which has to exist in memory once anyway), never with its
pixel count; it is unioned once, when it closes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes as _shapes
from rasterio.features import sieve as _sieve
from rasterio.windows import Window

from jess_geo.classes import IGNORE
from jess_geo.errors import Cancelled, InputError, OutputError
from jess_geo.io.areas import Measure
from jess_geo.io.raster import info_from_dataset, open_raster, read_valid
from jess_geo.io.seams import SeamMerger
from jess_geo.io.vector_output import staged_vector, vector_conflict, vector_driver
from jess_geo.io.vector_writer import FIELDS, PolygonWriter
from jess_geo.progress import ProgressCallback

__all__ = ["FIELDS", "MAX_SIEVE_HALO", "vector_conflict", "vectorize_raster"]

MAX_SIEVE_HALO = 1024
"""Most rows read above and below a strip for the ``min_area`` sieve."""


def vectorize_raster(
    classes_tif: str | Path,
    out_path: str | Path,
    classes: list[dict],
    *,
    layer: str = "classes",
    overwrite: bool = False,
    min_area: float = 0.0,
    simplify: float = 0.0,
    source: str = "",
    model: str = "",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    nodata: int = IGNORE,
    strip_rows: int = 1024,
) -> dict:
    """Write one polygon per connected class region of ``classes_tif`` to ``out_path``.

    Args:
        classes_tif: single-band integer class GeoTIFF (or photo-sized PNG) holding class ids.
        out_path: the vector file; its extension picks the format (.gpkg, .fgb, .geojson/.json,
            .shp). Written atomically; an existing GeoPackage keeps its other layers.
        classes: the model's class table, ``[{"id": int, "name": str, "color": "#rrggbb"}]``.
        layer: layer name (GeoPackage; the file name is the layer for the other formats).
        overwrite: replace an existing file, or in a GeoPackage the layer ``layer`` only.
        min_area: regions smaller than this (m², px² for photos) are merged into their largest
            neighbour (see the module docstring).
        simplify: topology-preserving simplification tolerance in CRS units (pixels for photos).
        source, model: written into every feature (input scene name, model file name).
        progress: ``callback("vectorize", done, total, message)`` once per strip.
        cancel: polled once per strip; True stops the work and leaves no file.
        nodata: class value never vectorized when the raster declares no nodata value.
        strip_rows: rows read and polygonized at a time.

    Returns:
        ``{"layer", "polygons", "area_unit" ("m2" or "px2"), "classes": {id: {"name", "count",
        "area"}}}``: polygons and summed polygon area per class id (zeros included).

    Raises:
        InputError: unreadable raster, more than one band, non-integer data, negative options.
        OutputError: unsupported extension, output exists (or holds ``layer``) without
            ``overwrite``, equals the input, or cannot be written.
        Cancelled: ``cancel()`` returned True (or ``progress`` raised it).
    """
    classes_tif, out_path = Path(classes_tif), Path(out_path)
    _check_options(min_area, simplify, strip_rows)
    driver = vector_driver(out_path)
    if out_path.absolute() == classes_tif.absolute() or (out_path.exists() and out_path.resolve() == classes_tif.resolve()):
        raise OutputError(f"Output {out_path} is the same file as an input; choose another output name.")
    names = {int(c["id"]): str(c["name"]) for c in classes}
    with open_raster(classes_tif) as src:
        info = info_from_dataset(src)
        if info.count != 1 or not np.issubdtype(np.dtype(info.dtype), np.integer):
            raise InputError(
                f"{classes_tif} is not a class raster ({info.count} band(s) of {info.dtype}); pass the single-band integer class GeoTIFF."
            )
        nd = int(info.nodata) if info.nodata is not None and float(info.nodata).is_integer() else int(nodata)
        measure = Measure(info.transform, info.crs_wkt)
        strips = _Strips(src, nd, info.has_internal_mask or info.alpha_band is not None, measure, min_area, simplify)
        merger = SeamMerger(info.width, info.height)
        n_strips = max(1, math.ceil(info.height / strip_rows))
        with staged_vector(out_path, layer, overwrite) as tmp:
            writer = PolygonWriter(tmp, driver, layer, measure, names, source, model, label=str(out_path))
            for k in range(n_strips):
                if cancel is not None and cancel():
                    raise Cancelled(f"Vectorizing was cancelled; {out_path.name} was not written.")
                r0, r1 = k * strip_rows, min(info.height, (k + 1) * strip_rows)
                pieces, pcls, ppix = strips.pieces(r0, r1)
                writer.add_many(merger.add_strip(pieces, pcls, ppix, r0, r1, strips.min_pixels(r0, r1)))
                if progress is not None:
                    progress("vectorize", k + 1, n_strips, f"rows {r1}/{info.height}, {writer.pending} polygons")
            writer.add_many(merger.finish())
            writer.flush(final=True)
            writer.write_style(classes)
    return {"layer": layer, "polygons": sum(writer.count.values()), "area_unit": measure.area_unit, "classes": writer.summary()}


def _check_options(min_area: float, simplify: float, strip_rows: int) -> None:
    if min_area < 0 or not math.isfinite(min_area):
        raise InputError(f"The minimum polygon area must be 0 or more (got {min_area}); pass --min-area 0 or a positive area.")
    if simplify < 0 or not math.isfinite(simplify):
        raise InputError(f"The simplification tolerance must be 0 or more (got {simplify}); pass --simplify 0 or a positive distance.")
    if strip_rows < 1:
        raise InputError(f"strip_rows must be at least 1 (got {strip_rows}).")


class _Strips:
    """Reads strips of the class raster, sieves them (``min_area``) and polygonizes them."""

    def __init__(self, src: Any, nodata: int, use_mask: bool, measure: Measure, min_area: float, simplify: float) -> None:
        self.src, self.nodata, self.use_mask, self.measure = src, nodata, use_mask, measure
        self.min_area = min_area
        self.width, self.height = src.width, src.height
        self.tol_px = simplify / measure.pixel_size if simplify > 0 else 0.0
        self.halo = 0
        if min_area > 0:
            self.halo = min(max(self.sieve_size(0), self.sieve_size(self.height - 1)), MAX_SIEVE_HALO)

    def sieve_size(self, row: float) -> int:
        """Pixels in ``min_area`` at raster row ``row`` (0 when there is no minimum)."""
        if self.min_area <= 0:
            return 0
        return int(math.ceil(self.min_area / self.measure.pixel_area(row, self.width / 2.0) - 1e-9))

    def min_pixels(self, r0: int, r1: int) -> int:
        """The smallest region kept in rows [r0, r1)."""
        return self.sieve_size((r0 + r1) / 2.0)

    def read(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Class values and valid mask of rows [r0, r1), sieved (with a halo) for ``min_area``."""
        halo = self.halo
        a0, a1 = (max(0, r0 - halo), min(self.height, r1 + halo)) if halo else (r0, r1)
        win = Window(0, a0, self.width, a1 - a0)
        try:
            data = self.src.read(1, window=win)
        except Exception as exc:  # rasterio.errors.RasterioIOError on a corrupt block
            raise InputError(f"{self.src.name} could not be read (corrupt or truncated image?); re-export or replace the file.") from exc
        valid = data != self.nodata
        if self.use_mask:
            valid &= read_valid(self.src, window=win)
        if halo:
            size = self.min_pixels(r0, r1)
            if size > 1:
                data = data.astype(np.int32) if data.dtype.itemsize > 4 or data.dtype == np.uint32 else data
                data = _sieve(data, size, mask=valid, connectivity=4)
            data, valid = data[r0 - a0 : r1 - a0], valid[r0 - a0 : r1 - a0]
        return data, valid

    def pieces(self, r0: int, r1: int) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """Polygons of rows [r0, r1) in pixel coordinates, their classes and pixel counts."""
        data, valid = self.read(r0, r1)
        return _polygonize(data, valid, r0, self.tol_px)


def _polygonize(data: np.ndarray, valid: np.ndarray, r0: int, tol_px: float) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Pieces of one strip in pixel coordinates (x = column, y = row), optionally simplified."""
    if not valid.any():
        return [], np.zeros(0, dtype=np.int64), np.zeros(0)
    if data.dtype == np.int8 or data.dtype.itemsize > 4 or data.dtype == np.uint32:
        data = data.astype(np.int32)
    # collect all rings flat and build the polygons in one vectorized call (much faster than
    # one shapely.Polygon per GeoJSON dict)
    coords: list[tuple[float, float]] = []
    ring_len: list[int] = []
    ring_poly: list[int] = []
    vals: list[int] = []
    for i, (g, v) in enumerate(_shapes(data, mask=valid, connectivity=4, transform=Affine(1, 0, 0, 0, 1, r0))):
        for ring in g["coordinates"]:
            coords.extend(ring)
            ring_len.append(len(ring))
            ring_poly.append(i)
        vals.append(int(v))
    if not vals:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0)
    xy = np.array(coords, dtype=np.float64)
    rings = shapely.linearrings(xy, indices=np.repeat(np.arange(len(ring_len)), ring_len))
    geoms = list(shapely.polygons(rings, indices=np.array(ring_poly)))
    pixels = shapely.area(np.array(geoms, dtype=object))
    if tol_px > 0 and geoms:
        geoms = list(shapely.coverage_simplify(np.array(geoms, dtype=object), tol_px, simplify_boundary=False))
    return geoms, np.array(vals, dtype=np.int64), pixels
