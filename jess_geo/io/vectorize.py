"""Class raster to GeoPackage polygons, strip by strip, merged across strip seams.

How it works
------------
The uint8 class raster is read in strips of ``strip_rows`` rows. Each strip is polygonized with
``rasterio.features.shapes`` (GDAL polygonize) in *pixel coordinates* (x = column, y = row), so
every vertex is an exact integer pixel corner and edges shared by two strips match exactly.
Pieces that touch the strip's bottom edge are *open*: they are carried to the next strip, where
each column of the seam says which carried region lies above and which new piece lies below;
same class on both sides joins them (a union-find over pieces, so regions can fork and merge
through any number of strips). A region with no piece on the latest seam is *closed*: its parts
are unioned once (never re-unioned strip after strip), moved to CRS coordinates with the
raster's affine transform, measured and appended to the GeoPackage in batches.

Connectivity is 4 (edge neighbours), the default of ``rasterio.features.shapes`` and of GDAL:
two pixels of a class that touch only at a corner belong to different polygons. Polygons lie
exactly on pixel edges: unsimplified, a polygon's area is its pixel count times the pixel area.
Nodata pixels (the raster's nodata value, else ``nodata``; also an internal mask) are never
vectorized.

Fields: ``class_id``, ``class_name``, ``area_m2``, ``perimeter_m``, ``area_px``,
``perimeter_px``, ``source``, ``model``. ``area_m2``/``perimeter_m`` are geodesic (WGS84 or the
CRS's ellipsoid, ``pyproj.Geod``) for a geographic CRS and planar times the CRS unit in metres
(squared) for a projected CRS. Plain photos have no real-world units: there ``area_m2`` and
``perimeter_m`` are NULL and ``area_px``/``perimeter_px`` (pixel units, present for every raster)
carry the figures; ``min_area`` is then in px² and ``simplify`` in pixels.

``min_area`` (m², px² for photos): regions smaller than it are merged into a neighbour, not
removed, so no holes open between neighbours. This is done on the pixels before polygonizing
(GDAL sieve, 4-connectivity: a small region takes the class of its largest neighbour) on each
strip read with a halo of ``ceil(min_area / pixel area)`` rows (at most ``MAX_SIEVE_HALO``), so a
small region is always seen whole (the neighbour it joins can differ from a whole-raster sieve
when a neighbour's size is cut by the window: a few pixels change class, never a gap). A small region with no valid neighbour (an island in nodata)
is removed. For a geographic CRS the pixel area is taken at each strip's centre latitude.
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
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes as _shapes
from rasterio.features import sieve as _sieve
from rasterio.windows import Window

from jess_geo.errors import Cancelled, InputError, OutputError
from jess_geo.io.atomic import atomic_output, check_output, remove_quietly
from jess_geo.io.gpkg_style import write_layer_style
from jess_geo.io.raster import info_from_dataset, open_raster, read_valid
from jess_geo.progress import ProgressCallback

MAX_SIEVE_HALO = 1024
"""Most rows read above and below a strip for the ``min_area`` sieve."""

WRITE_BATCH = 20000
"""Closed polygons buffered before they are appended to the GeoPackage."""

FIELDS = ["class_id", "class_name", "area_m2", "perimeter_m", "area_px", "perimeter_px", "source", "model"]


@dataclass
class _Region:
    """An open region: the class and the pixel-space parts collected so far."""

    class_id: int
    parts: list[Any] = field(default_factory=list)
    pixels: float = 0.0


class _Measure:
    """Moves pixel-space polygons to CRS coordinates and measures them in m (or px)."""

    def __init__(self, transform: Affine, crs_wkt: str | None) -> None:
        self.transform = transform
        self.crs_wkt = crs_wkt
        self.geod = None
        self.unit = 1.0
        self.georeferenced = crs_wkt is not None
        if crs_wkt is not None:
            from pyproj import CRS, Geod

            crs = CRS.from_wkt(crs_wkt)
            if crs.is_geographic:
                self.geod = crs.get_geod() or Geod(ellps="WGS84")
            else:
                try:
                    self.unit = float(crs.axis_info[0].unit_conversion_factor)
                except (IndexError, AttributeError, TypeError):
                    self.unit = 1.0

    def to_crs(self, geoms: np.ndarray) -> np.ndarray:
        """Apply the raster's affine transform to pixel-space (col, row) geometries."""
        t = self.transform

        def apply(xy: np.ndarray) -> np.ndarray:
            out = np.empty_like(xy)
            x, y = xy[:, 0], xy[:, 1]
            out[:, 0] = t.a * x + t.b * y + t.c if t.b else t.a * x + t.c
            out[:, 1] = t.d * x + t.e * y + t.f if t.d else t.e * y + t.f
            return out

        return shapely.transform(geoms, apply)

    def measure(self, crs_geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(area m², perimeter m) of CRS geometries; NaN for photos."""
        n = len(crs_geoms)
        if not self.georeferenced:
            return np.full(n, np.nan), np.full(n, np.nan)
        if self.geod is None:
            return shapely.area(crs_geoms) * self.unit**2, shapely.length(crs_geoms) * self.unit
        area = np.empty(n)
        perim = np.empty(n)
        for i, g in enumerate(crs_geoms):
            a, p = self.geod.geometry_area_perimeter(g)
            area[i], perim[i] = abs(a), p
        return area, perim

    def pixel_area_m2(self, row: float, width: int) -> float:
        """Area of one pixel in m² (px² = 1 for photos) at raster row ``row``, centre column."""
        t = self.transform
        if not self.georeferenced:
            return 1.0
        if self.geod is None:
            return abs(t.a * t.e - t.b * t.d) * self.unit**2
        col = width / 2.0
        cols = np.array([col, col + 1, col + 1, col])
        rows = np.array([row, row, row + 1, row + 1])
        xs, ys = t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f
        a, _ = self.geod.polygon_area_perimeter(xs, ys)
        return abs(a)


class _Writer:
    """Buffers closed polygons and appends them to a GeoPackage layer in batches."""

    def __init__(self, path: Path, layer: str, measure: _Measure, names: dict[int, str], source: str, model: str) -> None:
        self.path, self.layer, self.m = path, layer, measure
        self.names, self.source, self.model = names, source, model
        self.geoms: list[Any] = []
        self.cls: list[int] = []
        self.created = False
        self.count: dict[int, int] = {}
        self.area: dict[int, float] = {}

    def add(self, geom: Any, class_id: int) -> None:
        self.geoms.append(geom)
        self.cls.append(class_id)
        if len(self.geoms) >= WRITE_BATCH:
            self.flush()

    def add_many(self, geoms: Sequence[Any], class_ids: Sequence[int]) -> None:
        self.geoms.extend(geoms)
        self.cls.extend(class_ids)
        if len(self.geoms) >= WRITE_BATCH:
            self.flush()

    def flush(self, final: bool = False) -> None:
        px = np.array(self.geoms, dtype=object)
        cls = np.array(self.cls, dtype=np.int32)
        self.geoms, self.cls = [], []
        if len(px) == 0 and (self.created or not final):
            return
        area_px = shapely.area(px) if len(px) else np.zeros(0)
        crs_geoms = self.m.to_crs(px) if len(px) else px
        area_m2, perim_m = self.m.measure(crs_geoms)
        perim_px = shapely.length(px) if len(px) else np.zeros(0)
        n = len(px)
        names = np.array([self.names.get(int(c), f"class {int(c)}") for c in cls], dtype=object)
        field_data = [
            cls,
            names,
            area_m2.astype(np.float64),
            perim_m.astype(np.float64),
            np.asarray(area_px, dtype=np.float64),
            np.asarray(perim_px, dtype=np.float64),
            np.full(n, self.source, dtype=object),
            np.full(n, self.model, dtype=object),
        ]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)  # photos
            self._write(crs_geoms, field_data, n)
        self.created = True
        summary_area = area_m2 if self.m.georeferenced else area_px
        for c, a in zip(cls.tolist(), summary_area.tolist()):
            self.count[c] = self.count.get(c, 0) + 1
            self.area[c] = self.area.get(c, 0.0) + a

    def _write(self, crs_geoms: np.ndarray, field_data: list[np.ndarray], n: int) -> None:
        import pyogrio.raw

        pyogrio.raw.write(
            str(self.path),
            geometry=shapely.to_wkb(crs_geoms) if n else np.empty(0, dtype=object),
            field_data=field_data,
            fields=FIELDS,
            layer=self.layer,
            driver="GPKG",
            geometry_type="Polygon",
            crs=self.m.crs_wkt,
            append=self.created,
            encoding="UTF-8",
            # GeoPackage 1.2: read without a warning by the GDAL of every QGIS from 3.22 on
            # (the GDAL inside pyogrio would write 1.4, which GDAL < 3.7 warns about).
            **({} if self.created else {"dataset_options": {"VERSION": "1.2"}}),
        )


def _seam_owner(geoms: Sequence[Any], y: float, x_offset: float, width: int) -> np.ndarray:
    """For each column, the index of the polygon whose exterior has an edge on the line ``y``.

    Edges on a strip's top or bottom line belong to exterior rings only (a hole is enclosed by
    the strip's own pixels), and the pieces on a line partition it, so each column has at most
    one owner; -1 where nodata is.
    """
    owner = np.full(width, -1, dtype=np.int64)
    if len(geoms) == 0:
        return owner
    coords, idx = shapely.get_coordinates(shapely.get_exterior_ring(np.asarray(geoms, dtype=object)), return_index=True)
    on = coords[:, 1] == y
    seg = on[:-1] & on[1:] & (idx[:-1] == idx[1:])
    if not seg.any():
        return owner
    x0 = coords[:-1, 0][seg]
    x1 = coords[1:, 0][seg]
    lo = (np.minimum(x0, x1) - x_offset).astype(np.int64)
    hi = (np.maximum(x0, x1) - x_offset).astype(np.int64)
    who = idx[:-1][seg]
    lengths = hi - lo
    total = int(lengths.sum())
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    owner[starts + np.arange(total)] = np.repeat(who, lengths)
    return owner


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _close(parts: list[Any]) -> list[Any]:
    """Union the parts of a finished region once; one polygon (pieces join along seam edges).

    Only the exteriors go through the union: a piece's holes lie inside its own strip, away
    from every seam, so no other piece reaches them; they are put back unchanged afterwards.
    This keeps the union cheap for a big region with thousands of holes.
    """
    if len(parts) == 1:
        return [parts[0]]
    arr = np.asarray(parts, dtype=object)
    geom = shapely.union_all(shapely.polygons(shapely.get_exterior_ring(arr)))
    if geom.geom_type == "Polygon":
        n_int = shapely.get_num_interior_rings(arr)
        if n_int.sum():
            rings, idx = shapely.get_rings(arr, return_index=True)
            first = np.r_[True, idx[1:] != idx[:-1]]
            holes = np.concatenate([shapely.get_interior_ring(geom, np.arange(len(geom.interiors))), rings[~first]])
            geom = shapely.polygons(geom.exterior, holes=holes)
        return [geom]
    # cannot happen for parts joined along seam edges; never write a multipolygon regardless
    return [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]


def vectorize_raster(
    class_raster: Path,
    out_gpkg: Path,
    classes: list[dict],
    *,
    min_area: float = 0.0,
    simplify: float = 0.0,
    source: str = "",
    model: str = "",
    nodata: int = 255,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    layer: str = "classes",
    strip_rows: int = 1024,
) -> dict:
    """Write one polygon per connected class region of ``class_raster`` to ``out_gpkg``.

    Args:
        class_raster: single-band integer class GeoTIFF (or photo-sized PNG) holding class ids.
        out_gpkg: GeoPackage to write (through a temporary name; replaced if it exists).
        classes: the model's class table, ``[{"id": int, "name": str, "color": "#rrggbb"}]``;
            the raster stores the ``id`` values.
        min_area: regions smaller than this (m², px² for photos) are merged into their largest
            neighbour (see the module docstring).
        simplify: topology-preserving simplification tolerance in CRS units (pixels for photos).
        source, model: written into every feature (input scene name, model file name).
        nodata: class value never vectorized when the raster declares no nodata value.
        progress: ``callback("vectorize", done, total, message)`` once per strip.
        cancel: polled once per strip; True stops the work and leaves no file.
        layer: layer name in the GeoPackage.
        strip_rows: rows read and polygonized at a time.

    Returns:
        ``{"layer", "polygons", "area_unit" ("m2" or "px2"), "classes": {id: {"name", "count",
        "area"}}}``: polygons and summed polygon area per class id (classes with no polygon
        included with zeros).

    Raises:
        InputError: unreadable raster, more than one band, non-integer data, negative options.
        OutputError: output equals the input or cannot be written.
        Cancelled: ``cancel()`` returned True (or ``progress`` raised it).
    """
    class_raster, out_gpkg = Path(class_raster), Path(out_gpkg)
    if min_area < 0 or not math.isfinite(min_area):
        raise InputError(f"The minimum polygon area must be 0 or more (got {min_area}); pass --min-area 0 or a positive area.")
    if simplify < 0 or not math.isfinite(simplify):
        raise InputError(f"The simplification tolerance must be 0 or more (got {simplify}); pass --simplify 0 or a positive distance.")
    if strip_rows < 1:
        raise InputError(f"strip_rows must be at least 1 (got {strip_rows}).")
    check_output(out_gpkg, overwrite=True, inputs=[class_raster])
    names = {int(c["id"]): str(c["name"]) for c in classes}

    with open_raster(class_raster) as src:
        info = info_from_dataset(src)
        if info.count != 1 or not np.issubdtype(np.dtype(info.dtype), np.integer):
            raise InputError(
                f"{class_raster} is not a class raster ({info.count} band(s) of {info.dtype}); pass the single-band integer class GeoTIFF."
            )
        nd = int(info.nodata) if info.nodata is not None and float(info.nodata).is_integer() else int(nodata)
        use_mask = info.has_internal_mask or info.alpha_band is not None
        measure = _Measure(info.transform, info.crs_wkt)
        W, H = info.width, info.height
        det_px = math.sqrt(abs(info.transform.a * info.transform.e - info.transform.b * info.transform.d))
        tol_px = simplify / det_px if simplify > 0 else 0.0

        sieve_at: Callable[[float], int] = lambda row: 0  # noqa: E731
        halo = 0
        if min_area > 0:
            def sieve_at(row: float) -> int:
                return int(math.ceil(min_area / measure.pixel_area_m2(row, W) - 1e-9))

            halo = min(max(sieve_at(0), sieve_at(H - 1)), MAX_SIEVE_HALO)

        n_strips = max(1, math.ceil(H / strip_rows))
        with atomic_output(out_gpkg) as tmp:
            remove_quietly(tmp)
            writer = _Writer(tmp, layer, measure, names, source, model)
            carried: list[_Region] = []
            seam = np.full(W, -1, dtype=np.int64)  # carried region index per column above the seam
            for k in range(n_strips):
                if cancel is not None and cancel():
                    raise Cancelled("Vectorizing was cancelled; no GeoPackage was written.")
                r0, r1 = k * strip_rows, min(H, (k + 1) * strip_rows)
                data, valid = _read_strip(src, r0, r1, W, H, nd, use_mask, halo, sieve_at)
                pieces, pcls, ppix = _polygonize(data, valid, r0, tol_px)
                min_px = sieve_at((r0 + r1) / 2.0) if min_area > 0 else 0
                carried, seam = _merge(pieces, pcls, ppix, carried, seam, r0, r1, H, W, writer, min_px)
                if progress is not None:
                    progress("vectorize", k + 1, n_strips, f"rows {r1}/{H}, {sum(writer.count.values()) + len(writer.geoms)} polygons")
            for reg in carried:  # nothing is open after the last strip; kept for safety
                for g in _close(reg.parts):
                    writer.add(g, reg.class_id)
            writer.flush(final=True)
            try:
                write_layer_style(tmp, layer, classes)
            except Exception as exc:  # sqlite3.Error and OSError
                raise OutputError(f"The layer style could not be written into {out_gpkg} ({exc}); check the disk and the folder permissions.") from None
            for side in ("-wal", "-shm", "-journal"):
                if os.path.exists(str(tmp) + side):
                    remove_quietly(Path(str(tmp) + side))

    ids = sorted(set(names) | set(writer.count))
    summary_classes = {
        i: {"name": names.get(i, f"class {i}"), "count": writer.count.get(i, 0), "area": writer.area.get(i, 0.0)} for i in ids
    }
    return {
        "layer": layer,
        "polygons": sum(writer.count.values()),
        "area_unit": "m2" if measure.georeferenced else "px2",
        "classes": summary_classes,
    }


def _read_strip(src, r0, r1, W, H, nd, use_mask, halo, sieve_at):  # type: ignore[no-untyped-def]
    """Class values and valid mask of rows [r0, r1), sieved (with a halo) when ``halo`` > 0."""
    a0, a1 = (max(0, r0 - halo), min(H, r1 + halo)) if halo else (r0, r1)
    win = Window(0, a0, W, a1 - a0)
    try:
        data = src.read(1, window=win)
    except Exception as exc:  # rasterio.errors.RasterioIOError on a corrupt block
        raise InputError(f"{src.name} could not be read (corrupt or truncated image?); re-export or replace the file.") from exc
    valid = data != nd
    if use_mask:
        valid &= read_valid(src, window=win)
    if halo:
        size = sieve_at((r0 + r1) / 2.0)
        if size > 1:
            data = data.astype(np.int32) if data.dtype.itemsize > 4 or data.dtype == np.uint32 else data
            data = _sieve(data, size, mask=valid, connectivity=4)
        data, valid = data[r0 - a0 : r1 - a0], valid[r0 - a0 : r1 - a0]
    return data, valid


def _polygonize(data: np.ndarray, valid: np.ndarray, r0: int, tol_px: float) -> tuple[list[Any], np.ndarray]:
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


def _merge(pieces, pcls, ppix, carried, seam, r0, r1, H, W, writer, min_px):  # type: ignore[no-untyped-def]
    """Join this strip's pieces to the regions open on the seam above; close finished regions.

    A closed region of fewer than ``min_px`` pixels survived the sieve only because it has no
    valid neighbour to merge into (an island in nodata): it is left out.
    """
    P, C = len(pieces), len(carried)
    top = _seam_owner(pieces, float(r0), 0.0, W) if C else np.full(W, -1, dtype=np.int64)
    bottom = _seam_owner(pieces, float(r1), 0.0, W) if r1 < H else np.full(W, -1, dtype=np.int64)
    opens_down = np.zeros(P, dtype=bool)
    opens_down[bottom[bottom >= 0]] = True

    touching = np.zeros(P, dtype=bool)
    uf = None
    if C:
        ccls = np.array([r.class_id for r in carried], dtype=np.int64)
        both = (seam >= 0) & (top >= 0)
        a, b = seam[both], top[both]
        same = ccls[a] == pcls[b]
        pairs = np.unique(np.stack([a[same], b[same]], axis=1), axis=0) if same.any() else np.zeros((0, 2), np.int64)
        uf = _UnionFind(C + P)
        for ca, pb in pairs.tolist():
            uf.union(ca, C + pb)
        touching[pairs[:, 1]] = True

    # pieces on their own (no carried region above): closed now unless they continue downwards
    simple = ~touching & ~opens_down
    idx = np.flatnonzero(simple & (ppix >= min_px))
    if len(idx):
        writer.add_many([pieces[i] for i in idx], pcls[idx].tolist())

    # everything else goes through the groups
    groups: dict[int, list[int]] = {}
    node_of_piece = lambda i: C + i  # noqa: E731
    for i in np.flatnonzero(~simple).tolist():
        root = uf.find(node_of_piece(i)) if uf is not None else node_of_piece(i)
        groups.setdefault(root, []).append(node_of_piece(i))
    for c in range(C):
        root = uf.find(c) if uf is not None else c
        groups.setdefault(root, []).append(c)

    new_carried: list[_Region] = []
    region_of_piece = np.full(P, -1, dtype=np.int64)
    for members in groups.values():
        parts: list[Any] = []
        pixels = 0.0
        class_id = -1
        is_open = False
        piece_ids = []
        for m in members:
            if m < C:
                parts.extend(carried[m].parts)
                pixels += carried[m].pixels
                class_id = carried[m].class_id
            else:
                i = m - C
                parts.append(pieces[i])
                pixels += float(ppix[i])
                class_id = int(pcls[i])
                is_open |= bool(opens_down[i])
                piece_ids.append(i)
        if is_open:
            region_of_piece[piece_ids] = len(new_carried)
            new_carried.append(_Region(class_id, parts, pixels))
        elif pixels >= min_px:
            for g in _close(parts):
                writer.add(g, class_id)
    if P == 0:
        return new_carried, np.full(W, -1, dtype=np.int64)
    new_seam = np.where(bottom >= 0, region_of_piece[np.maximum(bottom, 0)], -1)
    return new_carried, new_seam
