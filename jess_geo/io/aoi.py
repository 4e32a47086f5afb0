"""Areas of interest as users give them: polygons of a vector file or a bounding box (no torch).

An :class:`AreaSpec` is the area in its own coordinates (a CRS, or none); :func:`area_in_scene`
brings it into a scene's coordinates: reprojected with pyproj (edges densified first, so a
straight edge in one CRS follows its curve in the other), or taken as it is for a photo, whose
coordinates are pixels (x = column, y = -row, the convention of :mod:`jess_geo.io.raster`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from jess_geo.errors import InputError

DENSIFY = 64  # reprojected edges: at least this many vertices across the area's larger side


@dataclass(frozen=True)
class AreaSpec:
    """An area in its own coordinates: a polygonal geometry, its CRS (None: none), how it was given."""

    geometry: BaseGeometry
    crs_wkt: str | None
    label: str  # for messages: "AOI x.gpkg" or "bbox 1 2 3 4"
    source: Path | None = None  # the vector file (an input no output may replace)


def _layer(path: Path, layer: str | None) -> str | int:
    import pyogrio

    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:  # noqa: BLE001 - any OGR failure is one user-facing line
        raise InputError(f"AOI file {path} is not a readable vector file ({str(exc).splitlines()[0]}); pass a GeoPackage, GeoJSON, FlatGeobuf or Shapefile.") from None
    if layer is not None:
        if layer not in layers:
            raise InputError(f"AOI file {path} has no layer {layer!r} (it has {', '.join(layers) or 'none'}); pass one of those with --aoi-layer.")
        return layer
    if len(layers) != 1:
        raise InputError(f"AOI file {path} has {len(layers)} layers ({', '.join(layers)}); choose one with --aoi-layer.")
    return 0


def read_aoi(path: str | Path, layer: str | None = None) -> AreaSpec:
    """The union of the polygons in ``layer`` of ``path`` (other geometry types are ignored)."""
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise InputError(f"AOI file {path} does not exist; check the path.")
    which = _layer(path, layer)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta, _, wkb, _ = pyogrio.raw.read(path, layer=which, columns=[], force_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"AOI file {path} cannot be read ({str(exc).splitlines()[0]}); check the file.") from None
    geoms = shapely.from_wkb(wkb) if wkb is not None else []
    polys = [g for g in geoms if g is not None and not g.is_empty and g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise InputError(f"AOI file {path} holds no polygon; pass a layer of polygons (points and lines have no area).")
    union = shapely.union_all([shapely.make_valid(g) for g in polys])
    area = shapely.union_all([g for g in shapely.get_parts(union) if g.geom_type in ("Polygon", "MultiPolygon")])
    crs = meta.get("crs")
    return AreaSpec(area, _crs_wkt(crs, f"AOI file {path}") if crs else None, f"AOI {path.name}", path)


def bbox_area(xmin: float, ymin: float, xmax: float, ymax: float, crs: str | None = None) -> AreaSpec:
    """A rectangle; ``crs`` (e.g. ``EPSG:4326``) None means the scene's coordinates."""
    values = (xmin, ymin, xmax, ymax)
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"--bbox {' '.join(map(str, values))} has a non-finite value; give four numbers XMIN YMIN XMAX YMAX.")
    if xmin >= xmax or ymin >= ymax:
        raise InputError(f"--bbox {xmin:.10g} {ymin:.10g} {xmax:.10g} {ymax:.10g} is empty (it needs XMIN < XMAX and YMIN < YMAX); give the corners in the order XMIN YMIN XMAX YMAX.")
    wkt = _crs_wkt(crs, "--bbox-crs") if crs else None
    return AreaSpec(shapely.box(xmin, ymin, xmax, ymax), wkt, f"bbox {xmin:.10g} {ymin:.10g} {xmax:.10g} {ymax:.10g}")


def _crs_wkt(crs: str, what: str) -> str:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(crs).to_wkt()
    except CRSError:
        raise InputError(f"{what}: {crs!r} is not a coordinate reference system; give one such as EPSG:4326.") from None


def area_in_scene(spec: AreaSpec, scene_crs_wkt: str | None, scene_name: str) -> tuple[BaseGeometry, str | None]:
    """``(geometry in the scene's coordinates, notice or None)``; a CRS area on a photo is refused."""
    if scene_crs_wkt is None:
        if spec.crs_wkt is not None:
            raise InputError(f"{scene_name} is a photo without a CRS but the {spec.label} has one; give the area in the photo's pixel coordinates (x = column, y = -row), e.g. --bbox without --bbox-crs.")
        return spec.geometry, None
    if spec.crs_wkt is None:
        note = None if spec.source is None else f"The {spec.label} has no CRS; it is taken to be in the CRS of {scene_name}."
        return spec.geometry, note
    from pyproj import CRS, Transformer

    src, dst = CRS.from_wkt(spec.crs_wkt), CRS.from_wkt(scene_crs_wkt)
    if src == dst:
        return spec.geometry, None
    minx, miny, maxx, maxy = spec.geometry.bounds
    step = max(maxx - minx, maxy - miny) / DENSIFY
    dense = shapely.segmentize(spec.geometry, step) if step > 0 else spec.geometry
    fwd = Transformer.from_crs(src, dst, always_xy=True)
    moved = shapely.transform(dense, lambda xy: _project(fwd, xy))
    if moved.is_empty or not all(math.isfinite(v) for v in moved.bounds):
        raise InputError(f"The {spec.label} cannot be projected into the CRS of {scene_name}; give it in the scene's CRS.")
    return shapely.make_valid(moved), None


def _project(fwd: object, xy: np.ndarray) -> np.ndarray:
    x, y = fwd.transform(xy[:, 0], xy[:, 1])  # type: ignore[attr-defined]
    return np.column_stack([x, y])
