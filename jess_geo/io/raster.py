"""Reading rasters and plain photos with rasterio: metadata, windows, valid-pixel masks.

Photos (PNG/JPEG without georeferencing) follow one convention: pixel coordinates, no CRS,
transform ``Affine(1, 0, 0, 0, -1, 0)`` (x = column, y = -row), the way QGIS shows them.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from jess_geo.errors import InputError

PHOTO_TRANSFORM = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg"}
RASTER_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".vrt", ".img", ".jp2"}


@dataclass(frozen=True)
class RasterInfo:
    """What a raster file is: size, bands, georeferencing and how nodata is marked."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str | None
    transform: Affine
    nodata: float | None
    alpha_band: int | None
    has_internal_mask: bool

    @property
    def georeferenced(self) -> bool:
        """True when the raster has a CRS (otherwise pixel coordinates are used)."""
        return self.crs_wkt is not None

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, or (1, 1) for photos."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def data_bands(self) -> list[int]:
        """1-based indexes of the image bands, the alpha band left out."""
        return [b for b in range(1, self.count + 1) if b != self.alpha_band]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in CRS (or pixel) coordinates."""
        t = self.transform
        xs = (t.c, t.c + t.a * self.width)
        ys = (t.f, t.f + t.e * self.height)
        return (min(xs), min(ys), max(xs), max(ys))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_is_complete(path: Path) -> bool:
    """False when a PNG file ends before its IEND chunk (a truncated copy or download).

    GDAL's PNG driver does not report truncation: it hands back undefined pixels. Walking the
    chunk headers (length + type, then a seek past data and CRC) costs a few reads, no decoding.
    """
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return True  # not a PNG after all: GDAL decides
        size = path.stat().st_size
        while True:
            head = f.read(8)
            if len(head) < 8:
                return False
            length = int.from_bytes(head[:4], "big")
            if head[4:8] == b"IEND":
                return True
            f.seek(length + 4, 1)
            if f.tell() > size:
                return False


@contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster for reading; a missing or unreadable file is a one-line InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path.")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a raster file; pass a GeoTIFF, PNG or JPEG file.")
    try:
        complete = _png_is_complete(path)
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror}); check the file's permissions.") from None
    if not complete:
        raise InputError(f"{path} is a truncated PNG (it ends before its last chunk); copy or export the image again.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            src = rasterio.open(path)
        except RasterioIOError:
            raise InputError(f"{path} is not a readable raster; pass a GeoTIFF, PNG or JPEG image (is the file corrupt?).") from None
        try:
            yield src
        finally:
            src.close()


def info_from_dataset(src: rasterio.io.DatasetReader) -> RasterInfo:
    """Describe an open dataset, applying the photo convention when it has no CRS."""
    alpha = None
    for i, ci in enumerate(src.colorinterp, start=1):
        if ci == ColorInterp.alpha:
            alpha = i
    flags = src.mask_flag_enums[0] if src.count else []
    internal = MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags
    crs = src.crs.to_wkt() if src.crs else None
    transform = src.transform if crs else PHOTO_TRANSFORM
    return RasterInfo(
        path=Path(src.name),
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=src.dtypes[0],
        crs_wkt=crs,
        transform=transform,
        nodata=src.nodata,
        alpha_band=alpha,
        has_internal_mask=internal,
    )


def inspect_raster(path: str | Path) -> RasterInfo:
    """Open ``path`` and describe it."""
    with open_raster(path) as src:
        return info_from_dataset(src)


def _check_readable(path: Path, func):  # type: ignore[no-untyped-def]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return func()
    except RasterioIOError:
        raise InputError(f"{path} could not be read (corrupt or truncated image?); re-export or replace the file.") from None


def read_bands(
    src: rasterio.io.DatasetReader,
    bands: Sequence[int],
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
    resampling: Resampling = Resampling.bilinear,
    boundless: bool = False,
) -> np.ndarray:
    """Read ``bands`` (1-based) as float32 ``(C, H, W)``, optionally resampled to ``out_shape``."""
    bad = [b for b in bands if not 1 <= b <= src.count]
    if bad:
        raise InputError(
            f"{src.name} has {src.count} band(s) but band(s) {bad} were asked for; choose bands 1-{src.count} (--bands) or use a matching image."
        )
    shape = None if out_shape is None else (len(bands), *out_shape)
    arr = _check_readable(
        Path(src.name),
        lambda: src.read(list(bands), window=window, out_shape=shape, resampling=resampling, boundless=boundless, fill_value=0),
    )
    return arr.astype(np.float32, copy=False)


def read_valid(
    src: rasterio.io.DatasetReader,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
    boundless: bool = False,
) -> np.ndarray:
    """Boolean ``(H, W)`` mask of valid pixels: not nodata, not transparent, not masked.

    Pixels outside the raster (boundless reads) are invalid. Resampling uses nearest neighbour.
    """
    def _read() -> np.ndarray:
        if src.nodata is None and all(MaskFlags.all_valid in f for f in src.mask_flag_enums):
            if not boundless or window is None:
                h, w = out_shape or (
                    (int(window.height), int(window.width)) if window is not None else (src.height, src.width)
                )
                return np.ones((h, w), dtype=bool)
        shape = None if out_shape is None else out_shape
        m = src.dataset_mask(window=window, out_shape=shape, resampling=Resampling.nearest, boundless=boundless)
        return m > 0

    return _check_readable(Path(src.name), _read)


def read_label(
    src: rasterio.io.DatasetReader,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read band 1 of a label raster as int64 with nearest-neighbour resampling."""
    shape = None if out_shape is None else (1, *out_shape)
    arr = _check_readable(
        Path(src.name),
        lambda: src.read([1], window=window, out_shape=shape, resampling=Resampling.nearest),
    )
    return arr[0].astype(np.int64)


def list_rasters(folder: str | Path, what: str = "images") -> list[Path]:
    """All raster files in ``folder`` (not recursive), sorted; a missing or empty folder is an InputError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"The {what} folder {folder} does not exist; check the path.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
    if not files:
        raise InputError(
            f"The {what} folder {folder} holds no raster files; put GeoTIFF, PNG or JPEG files there."
        )
    return files
