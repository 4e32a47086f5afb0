"""Block input and output on disk: a window of a scene as a VRT, block results into the final rasters.

A block task reads its window through a small VRT (no pixel is copied): same bands, data type,
nodata values, colour interpretation (an alpha band stays the alpha band) and internal mask as
the scene, georeferenced at the window. The assembler copies each block's core (its window less
the margin) into full-width strips, one row of blocks at a time, and hands them to the sinks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.windows import Window

from jess_geo.io.raster import RasterInfo

GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "uint64": "UInt64", "int64": "Int64", "float32": "Float32", "float64": "Float64"}


def _source(path: str, band: str, win: Window) -> str:
    return (f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
            f'<SrcRect xOff="{int(win.col_off)}" yOff="{int(win.row_off)}" xSize="{int(win.width)}" ySize="{int(win.height)}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{int(win.width)}" ySize="{int(win.height)}"/></SimpleSource>')


def _nodata(value: float | None) -> str:
    if value is None:
        return ""
    text = "nan" if math.isnan(value) else repr(float(value))
    return f"<NoDataValue>{text}</NoDataValue>"


def window_vrt(scene: str, info: RasterInfo, win: Window, out: Path) -> Path:
    """Write ``out``: a VRT of ``win`` of ``scene`` that GDAL reads exactly like that part of the scene."""
    with rasterio.open(scene) as src:
        interps = [ci.name.capitalize() for ci in src.colorinterp]
        nodatas = list(src.nodatavals)
        dtypes = list(src.dtypes)
    parts = [f'<VRTDataset rasterXSize="{int(win.width)}" rasterYSize="{int(win.height)}">']
    if info.crs_wkt:
        t = info.transform @ rasterio.Affine.translation(win.col_off, win.row_off)
        parts.append(f"<SRS>{escape(info.crs_wkt)}</SRS>")
        parts.append(f"<GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>")
    for b in range(1, info.count + 1):
        parts.append(f'<VRTRasterBand dataType="{GDAL_TYPES[dtypes[b - 1]]}" band="{b}">{_nodata(nodatas[b - 1])}'
                     f"<ColorInterp>{interps[b - 1]}</ColorInterp>{_source(scene, str(b), win)}</VRTRasterBand>")
    if info.has_internal_mask:
        parts.append(f'<MaskBand><VRTRasterBand dataType="Byte">{_source(scene, "mask,1", win)}</VRTRasterBand></MaskBand>')
    parts.append("</VRTDataset>")
    out.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return out


def assemble(blocks: Sequence[Any], results: dict[int, dict[str, str]], sinks: dict[str, Any], *, width: int,
             counts: dict[str, int], dtypes: dict[str, str], on_rows: Callable[[np.ndarray, int], None] | None = None) -> None:
    """Copy every block's core from ``results[block.index][key]`` into ``sinks[key]``, row of blocks by row of blocks.

    ``on_rows(class_rows, row0)`` sees each full-width strip of the class raster (the cover counter).
    """
    rows: dict[int, list[Any]] = {}
    for blk in blocks:
        rows.setdefault(blk.core.row_off, []).append(blk)
    for row0 in sorted(rows):
        line = sorted(rows[row0], key=lambda b: b.core.col_off)
        h = int(line[0].core.height)
        for key, sink in sinks.items():
            strip = np.empty((counts[key], h, width), dtype=dtypes[key])
            for blk in line:
                inner = Window(blk.core.col_off - blk.read.col_off, blk.core.row_off - blk.read.row_off,
                               blk.core.width, blk.core.height)
                c0 = int(blk.core.col_off)
                with rasterio.open(results[blk.index][key]) as src:
                    strip[:, :, c0 : c0 + int(blk.core.width)] = src.read(window=inner)
            sink.write_rows(strip)
            if key == "classes" and on_rows is not None:
                on_rows(strip[0], int(row0))
