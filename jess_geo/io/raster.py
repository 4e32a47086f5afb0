"""Reading rasters and plain photos with rasterio: metadata, windows, valid-pixel masks.

Photos (PNG/JPEG without georeferencing) follow one convention: pixel coordinates, no CRS,
transform ``Affine(1, 0, 0, 0, -1, 0)`` (x = column, y = -row), the way QGIS shows them.
"""

from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
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
    source: str = ""  # what to pass to GDAL to open it again (keeps /vsicurl/https://... intact)

    @property
    def name(self) -> str:
        """The file name for messages (the last part of a /vsi path)."""
        return (self.source or str(self.path)).rstrip("/").rsplit("/", 1)[-1]

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


_GDAL_PATH = re.compile(r"^(/vsi[a-z0-9_]+/|[A-Za-z][A-Za-z0-9+.-]+://|[A-Z][A-Z0-9_]+:)")


def is_gdal_path(path: str | Path) -> bool:
    """True for paths only GDAL resolves: ``/vsizip/...``, ``/vsicurl/...``, URLs, ``DRIVER:...`` strings."""
    return bool(_GDAL_PATH.match(str(path)))


def _check_local(path: Path) -> None:
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


@contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster for reading; a missing or unreadable file is a one-line InputError.

    Local files are checked first (exists, not a folder, PNG not truncated); GDAL paths
    (``/vsizip/``, ``/vsicurl/``, ``/vsis3/``, URLs) go to GDAL as they are.
    """
    target: str | Path = str(path) if is_gdal_path(path) else Path(path)
    if isinstance(target, Path):
        _check_local(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            src = rasterio.open(target)
        except RasterioIOError:
            raise InputError(f"{target} is not a readable raster; pass a GeoTIFF, PNG or JPEG image or any path GDAL opens (is the file corrupt?).") from None
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
        source=str(src.name),
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


def read_rows(src: rasterio.io.DatasetReader, bands: Sequence[int], row0: int, row1: int,
              cols: tuple[int, int] | None = None) -> np.ndarray:
    """Rows ``[row0, row1)`` of ``bands``, full width (or columns ``[c0, c1)``), in the file's own dtype ``(C, h, W)``."""
    c0, c1 = cols if cols is not None else (0, src.width)
    try:
        return src.read(list(bands), window=Window(c0, row0, c1 - c0, row1 - row0))
    except RasterioIOError:
        raise InputError(f"{src.name} could not be read near row {row0} (corrupt or truncated image?); re-export or replace the file.") from None


def finite_mask(data: np.ndarray) -> np.ndarray | None:
    """``(H, W)`` True where every band of ``(C, H, W)`` float data is finite; None for integers."""
    if data.dtype.kind not in "fc":
        return None
    return np.isfinite(data).all(axis=0)


def all_valid(src: rasterio.io.DatasetReader) -> bool:
    """True when no pixel can be nodata: integer data, no nodata value, no alpha band, no mask."""
    flags_ok = all(MaskFlags.all_valid in f for f in src.mask_flag_enums)
    return src.nodata is None and flags_ok and np.dtype(src.dtypes[0]).kind not in "fc"


def sample_values(src: rasterio.io.DatasetReader, bands: Sequence[int], windows: int = 4, size: int = 64) -> np.ndarray:
    """Valid values of ``bands`` from ``windows`` x ``windows`` small windows spread over the scene.

    Returns ``(C, N)`` float64 (N may be 0): a cheap look at the value range, a few blocks read.
    """
    out = []
    for fy in np.linspace(0.1, 0.9, windows):
        for fx in np.linspace(0.1, 0.9, windows):
            h, w = min(size, src.height), min(size, src.width)
            win = Window(int(fx * (src.width - w)), int(fy * (src.height - h)), w, h)
            data = _check_readable(Path(src.name), lambda win=win: src.read(list(bands), window=win))
            ok = read_valid(src, window=win)
            fin = finite_mask(data)
            if fin is not None:
                ok &= fin
            out.append(data[:, ok].astype(np.float64))
    return np.concatenate(out, axis=1) if out else np.zeros((len(bands), 0))


_M_PER_DEGREE = 111_320.0


def pixel_size_m(info: RasterInfo) -> float | None:
    """Pixel width in metres (degrees converted at the scene's centre latitude); None for photos."""
    if not info.crs_wkt:
        return None
    crs = CRS.from_wkt(info.crs_wkt)
    x = float(info.res[0])
    if crs.is_geographic:
        minx, miny, maxx, maxy = info.bounds
        lat = math.radians(max(-89.0, min(89.0, (miny + maxy) / 2.0)))
        return x * _M_PER_DEGREE * max(math.cos(lat), 1e-3)
    try:
        factor = float(crs.linear_units_factor[1])
    except Exception:  # a CRS without linear units: take metres
        factor = 1.0
    return x * factor


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
