"""Placing a block-parallel scene's outputs: assembled rasters, COG, cover table, polygons, one commit.

The same order and the same writers as a one-process run (:mod:`jess_geo.inference.products`):
rasters under temporary names, the polygons written last from the temporary class raster, then
every other output renamed in one step; any error removes every temporary file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rasterio

from jess_geo.cover import CoverCounter, write_cover_csv, write_cover_json
from jess_geo.distributed.block_io import assemble
from jess_geo.inference.outputs import OutputPlan
from jess_geo.inference.prepare import Options, Prepared
from jess_geo.inference.products import _cog_temp, _sink_opener, cache_bytes
from jess_geo.io import geotiff
from jess_geo.io.atomic import commit, remove_quietly, temp_name


def _vectorize(prep: Prepared, plan: OutputPlan, classes_tif: Path, opts: Options, name: str) -> None:
    from jess_geo.io.vectorize import vectorize_raster

    vectorize_raster(classes_tif, plan.vector, list(prep.job.classes), layer=plan.vector_layer, overwrite=opts.overwrite,
                     min_area=opts.min_area, simplify=opts.simplify, source=prep.job.info.name, model=name)


def place_blocks(prep: Prepared, plan: OutputPlan, opts: Options, name: str, blocks: list[Any],
                 results: dict[int, dict[str, str]]) -> dict[str, Any]:
    """Assemble ``results`` (block index -> {key: block GeoTIFF}) into ``plan``'s outputs; returns the cover table."""
    info, classes = prep.job.info, list(prep.job.classes)
    files = plan.files()
    tmp = {k: temp_name(p) for k, p in files.items() if k != "vector"}
    rasters = [k for k in ("classes", "probabilities", "energy") if k in tmp]
    plain = {k: (_cog_temp(tmp[k]) if opts.cog else tmp[k]) for k in rasters}
    counter = CoverCounter(classes, info.crs_wkt, info.transform)
    counts = {"classes": 1, "probabilities": len(classes), "energy": 1}
    dtypes = {"classes": "uint8", "probabilities": "uint8", "energy": "float32"}
    try:
        sinks = _sink_opener(prep, plain, name)()
        try:
            with rasterio.Env(GDAL_CACHEMAX=cache_bytes(info.width, 1, "float32")):
                assemble(blocks, results, sinks, width=info.width, counts=counts, dtypes=dtypes, on_rows=counter.add)
        except BaseException:
            for s in sinks.values():
                s.abort()
            raise
        for s in sinks.values():
            s.close()
        if opts.cog:
            for k in rasters:
                geotiff.to_cog(plain[k], tmp[k], resampling="nearest" if k == "classes" else "average")
        table = counter.table(source=info.name, model=name)
        if "cover_csv" in tmp:
            write_cover_csv(table, tmp["cover_csv"])
            write_cover_json(table, tmp["cover_json"])
        if plan.vector is not None:
            _vectorize(prep, plan, tmp["classes"], opts, name)
        commit([(tmp[k], files[k]) for k in tmp], overwrite=opts.overwrite)
    finally:
        for p in list(tmp.values()) + ([plain[k] for k in rasters] if opts.cog else []):
            remove_quietly(p)
    return table
