"""Writing one prepared scene: temporary GeoTIFFs, the threaded run, COG, polygons, cover, commit.

All outputs are claimed first (a lock beside each final name, created exclusively) and written
under temporary names; the polygons are written last from the temporary class raster (the
vectorizer places its file itself), then every other output is renamed in one step. An error,
``cancel()`` or a stop request before that step removes every temporary file; after it, no
cancel is polled, so a run either places all its outputs or none.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from jess_geo.cover import CoverCounter, write_cover_csv, write_cover_json
from jess_geo.errors import OutputError
from jess_geo.inference.finish import Sink
from jess_geo.inference.pipeline import check_cancel, run_tiles
from jess_geo.inference.prepare import Options, Prepared
from jess_geo.inference.runtime import Runtime
from jess_geo.io import geotiff
from jess_geo.io.atomic import claim, commit, remove_quietly, temp_name
from jess_geo.progress import ProgressCallback
from jess_geo.shift.watch import shift_watch


def cache_bytes(width: int, count: int, dtype: str) -> int:
    """GDAL block cache for a run: two rows of input blocks (a strip read touches up to three)
    plus a fixed 64 MiB. Outputs are written in whole rows of blocks, so their blocks can be
    flushed as soon as GDAL needs the room; a small cache keeps memory flat on wide scenes."""
    in_bytes = np.dtype(dtype).itemsize * max(1, count)
    return int(min((64 << 20) + 2 * geotiff.BLOCK * width * in_bytes, 1 << 30))


def _cog_temp(path: Path) -> Path:
    return path.with_name(f"{path.stem}-cog{path.suffix}")


def _sink_opener(prep: Prepared, plain: dict[str, Path], model_name: str) -> Callable[[], dict[str, Sink]]:
    info, classes = prep.job.info, list(prep.job.classes)
    common = {"width": info.width, "height": info.height, "crs_wkt": info.crs_wkt, "transform": info.transform}

    def open_sinks() -> dict[str, Sink]:
        sinks: dict[str, Sink] = {}
        try:
            sinks["classes"] = geotiff.class_writer(plain["classes"], classes=classes, source=info.name, model=model_name, **common)
            if "probabilities" in plain:
                sinks["probabilities"] = geotiff.probability_writer(plain["probabilities"], classes=classes, **common)
            if "energy" in plain:
                sinks["energy"] = geotiff.energy_writer(plain["energy"], **common)
        except (RasterioIOError, OSError) as exc:
            for s in sinks.values():
                s.abort()
            raise OutputError(f"Outputs for {info.name} cannot be created ({exc}); choose a folder you can write to.") from None
        return sinks

    return open_sinks


def _vectorize(prep: Prepared, classes_tif: Path, opts: Options, model_name: str,
               progress: ProgressCallback | None, cancel: Callable[[], bool] | None) -> dict[str, Any]:
    from jess_geo.io.vectorize import vectorize_raster

    out = prep.outputs
    return vectorize_raster(classes_tif, out.vector, list(prep.job.classes), layer=out.vector_layer,
                            overwrite=opts.overwrite, min_area=opts.min_area, simplify=opts.simplify,
                            source=prep.job.info.name, model=model_name, progress=progress, cancel=cancel)


def _write(prep: Prepared, rt: Runtime, opts: Options, tmp: dict[str, Path], model_name: str,
           progress: ProgressCallback | None, cancel: Callable[[], bool] | None) -> dict[str, Any]:
    job, out = prep.job, prep.outputs
    rasters = [k for k in ("classes", "probabilities", "energy") if k in tmp]
    plain = {k: (_cog_temp(tmp[k]) if opts.cog else tmp[k]) for k in rasters}
    counter = CoverCounter(list(job.classes), job.info.crs_wkt, job.info.transform)
    cache = cache_bytes(job.info.width, job.info.count, job.info.dtype)
    try:
        with rasterio.Env(GDAL_CACHEMAX=cache):  # set by the calling thread, GDAL-wide, for this run only
            stats = run_tiles(job, rt, _sink_opener(prep, plain, model_name), counter, opts.batch_size, progress, cancel)
        if opts.cog:
            for k in rasters:
                check_cancel(cancel)
                geotiff.to_cog(plain[k], tmp[k], resampling="nearest" if k == "classes" else "average")
    finally:
        if opts.cog:
            for p in plain.values():
                remove_quietly(p)
    table = counter.table(source=job.info.name, model=model_name)
    if "cover_csv" in tmp:
        write_cover_csv(table, tmp["cover_csv"])
        write_cover_json(table, tmp["cover_json"])
    check_cancel(cancel)
    summary = _vectorize(prep, tmp["classes"], opts, model_name, progress, cancel) if out.vector is not None else None
    return {**stats, "cover": table, "vector_summary": summary}


def write_scene(prep: Prepared, rt: Runtime, opts: Options, *, model_name: str,
                progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run ``prep`` with ``rt`` and place its outputs; returns the result dict of ``predict_raster``."""
    t0 = time.perf_counter()
    files = prep.outputs.files()
    tmp = {k: temp_name(p) for k, p in files.items() if k != "vector"}
    with claim(list(files.values())), shift_watch(rt, prep.job.feature_stats) as watch:  # shift notice (jess_geo.shift)
        try:
            res = _write(prep, rt, opts, tmp, model_name, progress, cancel)
            commit([(tmp[k], files[k]) for k in tmp], overwrite=opts.overwrite)
        finally:
            for p in tmp.values():
                remove_quietly(p)
    t = prep.job.tiles
    empty = res["cover"]["valid_pixels"] == 0
    shift = watch.result(prep.job.info.name)
    return {
        "scene": prep.outputs.scene, "model": model_name,
        "outputs": {k: (str(v) if v is not None else None) for k, v in prep.outputs.paths().items()},
        "vector_layer": prep.outputs.vector_layer,
        "classes": [{"id": int(c["id"]), "name": c["name"], "color": c["color"]} for c in prep.job.classes],
        "cover": res["cover"], "tiles": res["tiles"], "tiles_run": res["tiles_run"],
        "tile_size": t.tile, "overlap": t.overlap, "scale": t.scale, "device": rt.device, "runtime": rt.name,
        "tta": prep.job.tta,
        "seconds": round(time.perf_counter() - t0, 3),
        "notices": list(prep.notices) + ([f"{prep.job.info.name} has no valid pixel (all nodata)."] if empty else [])
        + ([shift["notice"]] if shift and shift["notice"] else []),
        "shift": shift,
        "vector_summary": res["vector_summary"],
    }
