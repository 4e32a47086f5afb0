"""GeoTIFF writers for prediction outputs: class, probability and energy rasters.

Every output is tiled (256 x 256 blocks), deflate-compressed, has its nodata value set and
carries the input's size, CRS and transform (photos: no CRS, the pixel transform). Rows are
written in block-aligned windows: :class:`RowWriter` buffers finished rows until a whole row
of blocks is complete, so GDAL never re-compresses a half-written block and memory stays flat.

- class raster: uint8, nodata 255, an embedded colour table, band description ``class``, class
  names in GDAL metadata (``CLASS_<id>=<name>`` and ``CLASS_NAMES`` as JSON); beside
  it the category names and a raster attribute table (``.aux.xml``) and a QGIS style
  (``.qml``) that lists only the model's classes (:mod:`jess_geo.io.raster_sidecars`);
- probability raster: one uint8 band per class (softmax x 254), nodata 255, grey bands
  (``PHOTOMETRIC=MINISBLACK``: no band is taken for alpha) named ``p(<class>)``;
- energy raster: float32 free energy ``-logsumexp(logits)``, nodata NaN.

``cog=True`` copies the finished file into a Cloud-Optimized GeoTIFF with overviews.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from jess_geo.classes import IGNORE, color_rgb
from jess_geo.io.atomic import remove_quietly
from jess_geo.io.raster_sidecars import copy_sidecars, sidecars, write_class_sidecars

BLOCK = 256
CLASS_NODATA = IGNORE
PROB_NODATA = IGNORE
ENERGY_NODATA = float("nan")


class RowWriter:
    """Writes a raster top to bottom in row strips, flushing whole rows of blocks at a time."""

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        count: int,
        dtype: str,
        crs_wkt: str | None,
        transform: Affine,
        nodata: float,
        descriptions: Sequence[str] = (),
        tags: dict[str, str] | None = None,
        colormap: dict[int, tuple[int, int, int, int]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.width, self.height, self.count, self.dtype = width, height, count, np.dtype(dtype)
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": count,
            "dtype": dtype,
            "nodata": nodata,
            "transform": transform,
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "compress": "deflate",
            "predictor": 3 if self.dtype.kind == "f" else 1,
            "interleave": "band" if count > 1 else "pixel",
            "BIGTIFF": "IF_SAFER",
        }
        if not colormap:
            # grey bands: without it GDAL tags a 3- or 4-band byte raster RGB(A), and QGIS then
            # hides the 4th band as transparency
            profile["photometric"] = "MINISBLACK"
        if crs_wkt:
            profile["crs"] = CRS.from_wkt(crs_wkt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # photos: pixel transform, no CRS
            self._ds = rasterio.open(self.path, "w", **profile)
        for i, d in enumerate(descriptions, start=1):
            self._ds.set_band_description(i, d)
        if tags:
            self._ds.update_tags(**tags)
        if colormap:
            self._ds.write_colormap(1, colormap)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._next_row = 0  # first row not yet written to the file

    def write_rows(self, rows: np.ndarray) -> None:
        """Append the next rows (``(count, h, width)`` or ``(h, width)``) below those already given."""
        if rows.ndim == 2:
            rows = rows[None]
        if rows.shape[0] != self.count or rows.shape[2] != self.width:
            raise ValueError(f"rows of shape {rows.shape} do not fit a {self.count}-band raster {self.width} wide")
        self._pending.append(rows.astype(self.dtype, copy=False))
        self._pending_rows += rows.shape[1]
        end = self._next_row + self._pending_rows
        if end >= self.height:
            self._flush(self._pending_rows)
        elif self._pending_rows >= BLOCK:
            aligned = (end // BLOCK) * BLOCK - self._next_row
            self._flush(aligned)

    def _flush(self, n: int) -> None:
        if n <= 0:
            return
        data = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, axis=1)
        head, tail = data[:, :n], data[:, n:]
        self._ds.write(head, window=Window(0, self._next_row, self.width, n))
        self._next_row += n
        self._pending = [tail.copy()] if tail.shape[1] else []
        self._pending_rows = tail.shape[1]

    def close(self) -> None:
        """Flush what is left and close the file."""
        if self._ds.closed:
            return
        try:
            self._flush(self._pending_rows)
        finally:
            self._ds.close()

    def abort(self) -> None:
        """Close without flushing (the caller deletes the file)."""
        if not self._ds.closed:
            self._ds.close()


class ClassRowWriter(RowWriter):
    """A class raster writer that adds the category names, attribute table and QGIS style on close."""

    classes: Sequence[dict[str, Any]] = ()

    def close(self) -> None:
        """Flush, close, then write the side-cars (:func:`write_class_sidecars`)."""
        if self._ds.closed:
            return
        super().close()
        write_class_sidecars(self.path, self.classes)


def class_writer(path: Path, *, width: int, height: int, crs_wkt: str | None, transform: Affine,
                 classes: Sequence[dict[str, Any]], source: str = "", model: str = "") -> RowWriter:
    """Open a uint8 class raster (nodata IGNORE) with a colour table and class names.

    On close the category names and raster attribute table go in ``<file>.aux.xml`` and a
    QGIS default style in ``<stem>.qml`` (see :func:`write_class_sidecars`).
    """
    colormap = {int(c["id"]): (*color_rgb(c["color"]), 255) for c in classes}
    colormap[CLASS_NODATA] = (0, 0, 0, 0)
    tags = {f"CLASS_{int(c['id'])}": str(c["name"]) for c in classes}
    tags["CLASS_NAMES"] = json.dumps({str(c["id"]): c["name"] for c in classes})
    tags["CLASS_COLORS"] = json.dumps({str(c["id"]): c["color"] for c in classes})
    tags["NODATA_MEANING"] = "255 = no data (nodata in the input, never classified)"
    if source:
        tags["SOURCE"] = source
    if model:
        tags["MODEL"] = model
    desc = "class"  # QGIS prints it above the legend; the names are the categories, the RAT and the tags
    writer = ClassRowWriter(path, width=width, height=height, count=1, dtype="uint8", crs_wkt=crs_wkt, transform=transform,
                            nodata=CLASS_NODATA, descriptions=[desc], tags=tags, colormap=colormap)
    writer.classes = [dict(c) for c in classes]
    return writer


def probability_writer(path: Path, *, width: int, height: int, crs_wkt: str | None, transform: Affine,
                       classes: Sequence[dict[str, Any]]) -> RowWriter:
    """Open a per-class probability raster: band i is P(classes[i]) x 254 as uint8, nodata 255.

    A probability of exactly 1 is stored as 254 so that 255 always means nodata.
    """
    tags = {"SCALE_MEANING": "probability = value / 254 (254 = certain), 255 = no data"}
    return RowWriter(path, width=width, height=height, count=len(classes), dtype="uint8", crs_wkt=crs_wkt,
                     transform=transform, nodata=PROB_NODATA, descriptions=[f"p({c['name']})" for c in classes], tags=tags)


def energy_writer(path: Path, *, width: int, height: int, crs_wkt: str | None, transform: Affine) -> RowWriter:
    """Open a float32 free-energy raster (``-logsumexp`` of the logits; higher = less like training data)."""
    tags = {"ENERGY_MEANING": "free energy -logsumexp(logits); higher means less like the training data"}
    return RowWriter(path, width=width, height=height, count=1, dtype="float32", crs_wkt=crs_wkt, transform=transform,
                     nodata=ENERGY_NODATA, descriptions=["free energy"], tags=tags)


def to_cog(src: Path, dst: Path, *, resampling: str = "nearest") -> None:
    """Copy GeoTIFF ``src`` to a Cloud-Optimized GeoTIFF ``dst`` with internal overviews; side-cars follow."""
    from rasterio.shutil import copy as rio_copy

    try:
        rio_copy(
            str(src), str(dst), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=BLOCK,
            OVERVIEW_RESAMPLING=resampling.upper(), RESAMPLING=resampling.upper(), BIGTIFF="IF_SAFER",
        )
        copy_sidecars(src, dst)
    except BaseException:
        remove_quietly(dst)
        for side in sidecars(dst):
            side.unlink(missing_ok=True)
        raise
