"""One huge scene in blocks: block windows with a margin on the scene's tile grid, one task per block.

:func:`block_windows` is pure window arithmetic. :func:`predict_blocks` checks the scene and its
outputs once, runs every block (:func:`run_block`: the normal pipeline on a VRT of the block's
window, in this process or as Dask tasks), copies the block cores into the final class GeoTIFF
(and probability / energy rasters) under temporary names, vectorizes that assembled class raster
with the strip-wise vectorizer (which merges polygons across strip seams, so also across block
seams: no polygon is cut at a block edge), writes the cover table and renames everything at once.

One GeoTIFF rather than a tiled set plus a VRT: every consumer (QGIS, the vectorizer, the cover
table, COG conversion) then sees the same single file a one-process run writes, and the copy is
one sequential pass that costs little next to the network.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rasterio.windows import Window

from jess_geo.errors import InputError, JessGeoError
from jess_geo.inference.batch import SceneRecord, _worker_name, cover_percent
from jess_geo.inference.outputs import OutputPlan
from jess_geo.inference.prepare import Options

__all__ = ["Block", "block_windows", "run_block", "predict_blocks"]


@dataclass(frozen=True)
class Block:
    """A block: ``core`` (the pixels it contributes) inside ``read`` (core plus margin, clipped to the scene)."""

    index: int
    core: Window
    read: Window


def _span(a: int, b: int, starts: list[int], tile: int) -> tuple[int, int]:
    """The read span of core ``[a, b)``: from the tile before the first tile touching the core to the
    end of the tile after the last one. The block's own tile grid then holds the scene's tiles at the
    scene's positions, and every tile that touches the core keeps its blending ramps (it is not at
    the block's border unless it is at the scene's), so the core gets the one-process logits."""
    touching = [i for i, s in enumerate(starts) if s < b and s + tile > a]
    i0, i1 = max(0, touching[0] - 1), min(len(starts) - 1, touching[-1] + 1)
    return starts[i0], starts[i1] + tile


def block_windows(height: int, width: int, size: int, row_starts: list[int], col_starts: list[int],
                  tile: int) -> list[Block]:
    """Blocks of ``size`` x ``size`` pixels (the last row / column shorter) covering the scene, row-major,
    each read with a margin aligned to the scene's tile grid (``*_starts``, ``tile``: scene pixels)."""
    if size < 1 or tile < 1:
        raise ValueError(f"need size >= 1 and tile >= 1, got {size}, {tile}")
    blocks = []
    for r in range(0, height, size):
        h = min(size, height - r)
        r0, r1 = _span(r, r + h, row_starts, min(tile, height))
        for c in range(0, width, size):
            w = min(size, width - c)
            c0, c1 = _span(c, c + w, col_starts, min(tile, width))
            blocks.append(Block(len(blocks), Window(c, r, w, h), Window(c0, r0, c1 - c0, r1 - r0)))
    return blocks


def _block_opts(opts: Options) -> Options:
    return replace(opts, overwrite=True, cog=False)  # block files are private, plain GeoTIFFs


def run_block(scene: str, model: str, block: Block, work: str, opts: Options, keys: tuple[str, ...],
              threads: int | None = None) -> dict[str, Any]:
    """Predict the block's window of ``scene`` into ``work``; ``{"paths": {key: tif}, "tiles": n}``."""
    from jess_geo.distributed.block_io import window_vrt
    from jess_geo.distributed.worker import cached_model, set_threads
    from jess_geo.inference.outputs import plan_outputs
    from jess_geo.inference.prepare import prepare_scene
    from jess_geo.inference.products import write_scene
    from jess_geo.io.raster import inspect_raster

    set_threads(threads)
    meta, name, rt = cached_model(model, opts.runtime, opts.device, opts.batch_size, opts.streams)
    folder = Path(work)
    vrt = window_vrt(scene, inspect_raster(scene), block.read, folder / f"b{block.index}.vrt")
    paths = {k: folder / f"b{block.index}_{k}.tif" for k in keys}
    plan = plan_outputs(vrt, output=paths["classes"], vector=None, cover=False,
                        probabilities=paths.get("probabilities"), energy=paths.get("energy"))
    prep = prepare_scene(str(vrt), meta, plan, _block_opts(opts), name)
    res = write_scene(prep, rt, _block_opts(opts), model_name=name)
    return {"paths": {k: str(p) for k, p in paths.items()}, "tiles": int(res["tiles"]), "worker": _worker_name()}


def _gather(client: Any, scene: str, model: str, blocks: list[Block], work: Path, opts: Options,
            keys: tuple[str, ...], threads: int | None) -> dict[int, dict[str, Any]]:
    if client is None:
        return {b.index: run_block(scene, model, b, str(work), opts, keys, threads) for b in blocks}
    from distributed import as_completed

    tag = uuid.uuid4().hex[:8]
    futures = {client.submit(run_block, scene, model, b, str(work), opts, keys, threads, key=f"jess-geo-block-{tag}-{b.index}",
                             pure=False, retries=1): b.index for b in blocks}
    out: dict[int, dict[str, Any]] = {}
    try:
        for fut in as_completed(list(futures), loop=client.loop):
            out[futures[fut]] = fut.result()  # a block's error is the scene's error
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    return out


def _checked(plan: OutputPlan, model: str, opts: Options, size: int) -> Any:
    from jess_geo.inference.outputs import check_outputs
    from jess_geo.inference.predict import model_metadata
    from jess_geo.inference.prepare import prepare_scene

    meta, name = model_metadata(model)
    prep = prepare_scene(plan.scene, meta, plan, opts, name)
    check_outputs([plan], inputs=[model], overwrite=opts.overwrite)
    tile = prep.job.tiles.grid.tile  # scene pixels
    if size < tile:
        raise InputError(f"--block-size {size} is smaller than one tile ({tile} scene pixels); pass at least {tile}.")
    return prep, name


def predict_blocks(plan: OutputPlan, model: str, opts: Options, size: int, *, client: Any = None,
                   threads: int | None = None) -> SceneRecord:
    """Predict ``plan.scene`` in blocks of ``size`` pixels into ``plan``'s outputs; every error becomes a failed record."""
    from jess_geo.distributed.worker import set_threads

    t0 = time.perf_counter()
    paths = {k: (str(v) if v is not None else None) for k, v in plan.paths().items()}
    try:
        if client is None:
            set_threads(threads)
        prep, name = _checked(plan, model, opts, size)
        grid = prep.job.tiles.grid
        blocks = block_windows(grid.height, grid.width, size, grid.row_starts, grid.col_starts, grid.tile)
        table, tiles = _run_and_place(prep, plan, model, name, opts, blocks, client, threads)
    except JessGeoError as exc:
        return SceneRecord(plan.scene, "failed", round(time.perf_counter() - t0, 3), outputs=paths, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a lost worker, an unexpected error: this scene fails, the batch goes on
        msg = str(exc).splitlines()[0] if str(exc) else ""
        return SceneRecord(plan.scene, "failed", round(time.perf_counter() - t0, 3), outputs=paths,
                           error=f"{plan.scene}: {type(exc).__name__} {msg[:200]}; nothing was written for it.")
    return SceneRecord(plan.scene, "done", round(time.perf_counter() - t0, 3), tiles, int(table["valid_pixels"]),
                       cover_percent(table), paths)


def _run_and_place(prep: Any, plan: OutputPlan, model: str, name: str, opts: Options, blocks: list[Block],
                   client: Any, threads: int | None) -> tuple[dict[str, Any], int]:
    from jess_geo.distributed.block_place import place_blocks
    from jess_geo.io.atomic import claim

    keys = tuple(k for k in ("classes", "probabilities", "energy") if getattr(plan, k) is not None)
    work = plan.classes.parent / f".{plan.classes.stem}.blocks-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    with claim(list(plan.files().values())):
        work.mkdir()
        try:
            results = _gather(client, plan.scene, model, blocks, work, opts, keys, threads)
            table = place_blocks(prep, plan, opts, name, blocks, {i: r["paths"] for i, r in results.items()})
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return table, sum(r["tiles"] for r in results.values())
