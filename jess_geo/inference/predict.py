"""Windowed inference: a scene of any size to class / probability / energy GeoTIFFs, flat memory.

How it works
------------
- Tiles are laid out in *input* pixels (:mod:`jess_geo.inference.tiling`). When the model works
  at another resolution (``preprocess.working_scale`` != 1), the tile size and overlap given
  in working pixels are converted to input pixels, every tile is resampled to the working size
  before the network (bilinear, antialiased when shrinking) and its logits are resampled back
  to the tile's input size before blending. Blending, outputs and areas stay on the input grid.
- Three stages overlap: a reader thread reads full-width strips of the tile rows (every input
  row is decoded once; overlap rows are carried over), normalises tiles and queues batches; the
  calling thread runs the network and blends; a writer thread turns finished cells into
  classes, probabilities and energy and writes them in block-aligned strips. On a GPU the three
  run at the same time. On the CPU the network already keeps every core busy, and work in the
  other threads during a network call stalls torch's threads at every barrier (the network then
  loses more time than that work takes), so there the reader and writer take turns with the
  network calls (one lock) and run beside the blending and while the network waits for data.
- The network call also multiplies the logits by the tile's blending weights (torch's threads,
  or the GPU), so blending is one addition per tile.
- Flat memory: no array spans the scene. Tiles are blended in row-major order; the scene is cut
  into *cells* (rows from one tile row start to the next x columns from one tile column start
  to the next); a cell is final as soon as its tile is blended, so only a window one tile wide
  plus the overlap band below the current tile row (full width, ``overlap`` rows) is kept.
- Nodata (nodata value, alpha band, internal mask; ``io.raster.read_valid``) is 255 in the class
  and probability rasters and NaN in the energy raster, is zeroed (the band mean) in the network
  input, is left out of the cover table, and a tile without a valid pixel is never run.
- All outputs are written under temporary names (``io.atomic``) and renamed only when everything
  is complete; an error, ``cancel()`` returning True or a ``Cancelled`` raised by a signal
  handler removes them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from jess_geo import preprocess
from jess_geo.cover import CoverCounter, format_cover, write_cover_csv, write_cover_json
from jess_geo.errors import Cancelled, InputError, JessGeoError, OutputError
from jess_geo.inference.tiling import Tile, TileGrid, network_size, tile_weights, valid_tile_size
from jess_geo.io import geotiff
from jess_geo.io.atomic import atomic_output, check_output, remove_quietly, temp_name
from jess_geo.io.raster import RasterInfo, info_from_dataset, open_raster, read_valid
from jess_geo.models.factory import size_multiple
from jess_geo.models.modelfile import LoadedModel, load_model_file
from jess_geo.models.layout import fast_input, to_fast_layout
from jess_geo.progress import ProgressCallback

__all__ = ["predict_raster", "resolve_device", "prepare_network", "default_outputs", "cover_paths", "format_cover"]

_POLL = 0.1
_SERIAL_CPU = True  # see _run: on the CPU, reader / writer work never runs during a network call


# ----------------------------------------------------------------------------- options


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an unavailable device is an InputError."""
    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device auto or cpu.")
        return torch.device(device)
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError("--device mps was asked for but this PyTorch has no Apple MPS support here; use --device auto or cpu.")
        return torch.device("mps")
    raise InputError(f"Unknown device {device!r}; choose auto, cpu, cuda or mps.")


def prepare_network(net: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """The network on ``dev`` in evaluation mode and in its fast memory layout (channels-last on
    CPU and CUDA: the same arithmetic, logits equal to about 1e-6). Changes ``net`` in place."""
    return to_fast_layout(net.to(dev).eval(), dev)


def default_outputs(scene: str | Path) -> dict[str, Path]:
    """Default output paths beside ``scene``: ``<stem>_classes.tif`` and ``<stem>_classes.gpkg``."""
    scene = Path(scene)
    return {"classes": scene.with_name(f"{scene.stem}_classes.tif"), "vector": scene.with_name(f"{scene.stem}_classes.gpkg")}


def cover_paths(out_classes: str | Path) -> tuple[Path, Path]:
    """Cover-table paths beside the class raster: ``X_classes.tif`` -> ``X_cover.csv`` / ``X_cover.json``."""
    out = Path(out_classes)
    stem = out.stem[: -len("_classes")] if out.stem.endswith("_classes") and len(out.stem) > 8 else out.stem
    return out.with_name(f"{stem}_cover.csv"), out.with_name(f"{stem}_cover.json")


@dataclass
class _Plan:
    info: RasterInfo
    meta: dict[str, Any]
    classes: list[dict[str, Any]]
    bands: list[int]
    scale: float
    tile: int  # working pixels (network tile)
    overlap: int  # working pixels
    grid: TileGrid  # input pixels
    net_shape: tuple[int, int]  # padded network input (H, W)
    work_shape: tuple[int, int]  # tile at working resolution before padding
    notices: list[str] = field(default_factory=list)


def _plan(info: RasterInfo, meta: dict[str, Any], tile_size: int | None, overlap: int | None) -> _Plan:
    notices: list[str] = []
    multiple = size_multiple(meta["architecture"])
    tile = int(tile_size if tile_size is not None else meta.get("tile_size", 512))
    ov = int(overlap if overlap is not None else meta.get("overlap", 64))
    if tile < 1:
        raise InputError(f"Tile size {tile} is not positive; pass --tile-size with a multiple of {multiple} such as 512.")
    tile, note = valid_tile_size(tile, multiple)
    if note:
        notices.append(note)
    if ov < 0 or ov >= tile:
        raise InputError(f"Overlap {ov} does not fit tile size {tile}; pass --overlap between 0 and {tile // 2}.")
    if ov > tile // 2:
        notices.append(f"Overlap {ov} is more than half the tile size {tile}; blending uses ramps of {tile // 2} pixels.")
    scale = preprocess.working_scale(info, meta["resolution"])
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"{info.path.name}: the working scale {scale} is not usable; check the model's resolution metadata.")
    tile_in = max(1, int(round(tile / scale)))
    ov_in = min(int(round(ov / scale)), tile_in - 1)
    grid = TileGrid(info.height, info.width, tile_in, ov_in)
    th, tw = grid.tile_height, grid.tile_width
    if th == tile_in and tw == tile_in:
        work = (tile, tile)
    else:
        work = preprocess.scaled_shape(th, tw, scale) if scale != 1.0 else (th, tw)
        work = (tile if th == tile_in else work[0], tile if tw == tile_in else work[1])
    net = (network_size(work[0], multiple), network_size(work[1], multiple))
    return _Plan(info, meta, list(meta["classes"]), [int(b) for b in meta["bands"]], scale, tile, ov, grid, net, work, notices)


# ----------------------------------------------------------------------------- threads


class _Stage(threading.Thread):
    """A daemon thread that records its exception instead of printing it."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc


def _put(q: "queue.Queue[Any]", item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


@dataclass
class _Batch:
    tiles: list[tuple[Tile, np.ndarray]]  # (tile, valid strip of its tile row)
    run: list[int]  # positions in ``tiles`` that go through the network
    x: np.ndarray | None  # (len(run), C, H, W) float32 network input


def _read_rows(src: Any, bands: list[int], row0: int, row1: int, width: int) -> np.ndarray:
    try:
        return src.read(bands, window=Window(0, row0, width, row1 - row0))
    except RasterioIOError:
        raise InputError(f"{src.name} could not be read near row {row0} (corrupt or truncated image?); re-export or replace the file.") from None


def _reader(plan: _Plan, out: "queue.Queue[Any]", stop: threading.Event, batch_size: int,
            gate: "threading.Lock | contextlib.nullcontext[None]") -> None:
    info, grid = plan.info, plan.grid
    norm = plan.meta["normalization"]
    mean = np.asarray(norm["mean"], dtype=np.float32).reshape(-1, 1, 1)
    inv_std = (1.0 / np.asarray(norm["std"], dtype=np.float32)).reshape(-1, 1, 1).astype(np.float32)
    nh, nw = plan.net_shape
    wh, ww = plan.work_shape
    th = grid.tile_height
    pending: list[tuple[Tile, np.ndarray]] = []
    run: list[int] = []
    nb = len(plan.bands)
    padded = (nh, nw) != (wh, ww)
    buf = np.empty((batch_size, nb, nh, nw), dtype=np.float32)  # the next batch, filled tile by tile

    def flush() -> bool:
        nonlocal pending, run, buf
        if not pending:
            return True
        x = buf[: len(run)] if run else None
        ok = _put(out, _Batch(pending, run, x), stop)
        if run:
            buf = np.empty_like(buf)  # the batch just queued keeps its own buffer
        pending, run = [], []
        return ok

    def fill(i: int, x: np.ndarray, v: np.ndarray) -> None:
        """Normalise tile ``x`` (C, h, w) into slot ``i`` of the batch buffer; nodata and padding are 0."""
        dst = buf[i]
        if padded:
            dst.fill(0.0)
        d = dst[:, : x.shape[1], : x.shape[2]]
        np.subtract(x, mean, out=d, casting="unsafe")
        d *= inv_std
        if not v.all():
            d[:, ~v] = 0.0

    with open_raster(info.path) as src:
        # one strip buffer, reused: the rows shared with the next tile row move up, new rows are read below
        raw = np.empty((len(plan.bands), th, info.width), dtype=np.dtype(info.dtype))
        # no nodata, alpha or mask: one read-only all-valid strip for every tile row (no memory)
        all_valid = src.nodata is None and all(MaskFlags.all_valid in f for f in src.mask_flag_enums)
        valid_all = np.broadcast_to(np.True_, (th, info.width))
        valid: np.ndarray = valid_all
        carry_end = 0
        for tile_row in grid.rows():
            if stop.is_set():
                return
            r0, r1 = tile_row[0].row, tile_row[0].row + th
            new0 = max(r0, carry_end)
            keep = new0 - r0  # rows of the previous strip that this one starts with
            with gate:
                raw_new = _read_rows(src, plan.bands, new0, r1, info.width)
                if keep:
                    raw[:, :keep] = raw[:, th - keep :]
                raw[:, keep:] = raw_new
                del raw_new
                if not all_valid:
                    valid_new = read_valid(src, window=Window(0, new0, info.width, r1 - new0))
                    # a new array each tile row: queued batches and cells still refer to the previous one
                    valid = np.concatenate([valid[th - keep :], valid_new], axis=0) if keep else valid_new
                    del valid_new
            carry_end = r1
            for t in tile_row:
                with gate:
                    v = valid[:, t.col : t.col + t.width]
                    pending.append((t, valid))
                    if v.any():
                        x = raw[:, :, t.col : t.col + t.width]
                        if plan.scale != 1.0:
                            xt = torch.from_numpy(x.astype(np.float32))[None]
                            shrink = wh < t.height or ww < t.width
                            x = F.interpolate(xt, size=(wh, ww), mode="bilinear", align_corners=False, antialias=shrink)[0].numpy()
                            vt = torch.from_numpy(v.astype(np.float32))[None, None]
                            v = F.interpolate(vt, size=(wh, ww), mode="nearest")[0, 0].numpy() > 0.5
                        fill(len(run), x, v)
                        run.append(len(pending) - 1)
                if len(run) >= batch_size or len(pending) >= 4 * batch_size:
                    if not flush():
                        return
        flush()
    _put(out, None, stop)


@dataclass
class _Cell:
    row_index: int
    col_index: int
    row0: int
    col0: int
    acc: np.ndarray  # (C + 1, h, w): logit sums, then the weight sum
    valid: np.ndarray  # (h, w) bool


class _Finisher:
    """Turns blended cells into output rows; runs in the writer thread."""

    def __init__(self, plan: _Plan, writers: dict[str, geotiff.RowWriter], cover: CoverCounter) -> None:
        self.plan, self.writers, self.cover = plan, writers, cover
        self.lut = np.array([int(c["id"]) for c in plan.classes], dtype=np.uint8)
        self.ncols = len(plan.grid.col_starts)
        self.band: dict[str, np.ndarray] = {}

    def add(self, cell: _Cell) -> None:
        C = len(self.plan.classes)
        h, w = cell.valid.shape
        width = self.plan.info.width
        if cell.col_index == 0:
            self.band = {"classes": np.empty((h, width), np.uint8)}
            if "probabilities" in self.writers:
                self.band["probabilities"] = np.empty((C, h, width), np.uint8)
            if "energy" in self.writers:
                self.band["energy"] = np.empty((h, width), np.float32)
        invalid = ~cell.valid
        cols = slice(cell.col0, cell.col0 + w)
        # the weight sum is positive wherever a pixel is valid, so the class is the argmax of the sums
        cls = self.lut[np.argmax(cell.acc[:C], axis=0)]
        cls[invalid] = geotiff.CLASS_NODATA
        self.band["classes"][:, cols] = cls
        if "probabilities" in self.band or "energy" in self.band:
            weight = cell.acc[C]
            logits = cell.acc[:C] / np.where(weight > 0, weight, 1.0)[None]
            m = logits.max(axis=0)
            ex = np.exp(logits - m[None])
            s = ex.sum(axis=0)
            if "energy" in self.band:
                e = -(m + np.log(s))
                e[invalid] = np.nan
                self.band["energy"][:, cols] = e
            if "probabilities" in self.band:
                p = np.rint(ex * (254.0 / s)[None]).astype(np.uint8)
                p[:, invalid] = geotiff.PROB_NODATA
                self.band["probabilities"][:, :, cols] = p
        if cell.col_index == self.ncols - 1:
            for key, data in self.band.items():
                self.writers[key].write_rows(data)
            self.cover.add(self.band["classes"], cell.row0)
            self.band = {}


def _writer(finisher: _Finisher, inbox: "queue.Queue[Any]", stop: threading.Event,
            gate: "threading.Lock | contextlib.nullcontext[None]") -> None:
    while not stop.is_set():
        try:
            cell = inbox.get(timeout=_POLL)
        except queue.Empty:
            continue
        if cell is None:
            return
        with gate:
            finisher.add(cell)


class _Blender:
    """Row-major blending with a one-tile-wide window and a full-width overlap band (see module doc)."""

    def __init__(self, plan: _Plan, emit: Callable[[_Cell], None]) -> None:
        self.plan, self.emit = plan, emit
        self.C = len(plan.classes)
        self.rows = plan.grid.row_starts
        self.cols = plan.grid.col_starts
        self.th, self.tw = plan.grid.tile_height, plan.grid.tile_width
        self.W = plan.info.width
        self.carry: np.ndarray | None = None  # (C+1, rows, W) sums for rows below the last tile row's final rows
        self.next_carry: np.ndarray | None = None
        self.win: np.ndarray | None = None

    def _carry_into(self, win: np.ndarray, c0: int, c1: int, at: int) -> None:
        """Add carried sums of columns [c0, c1) to ``win`` columns starting at ``at``."""
        if self.carry is not None and c1 > c0:
            n = self.carry.shape[1]
            win[:, :n, at : at + (c1 - c0)] += self.carry[:, :, c0:c1]

    def add(self, tile: Tile, logits: np.ndarray | None, valid_strip: np.ndarray) -> None:
        C, th, tw = self.C, self.th, self.tw
        k, j = tile.row_index, tile.index - tile.row_index * len(self.cols)
        if j == 0:
            self.win = np.zeros((C + 1, th, tw), np.float32)
            self._carry_into(self.win, 0, tw, 0)
            final_rows = (self.rows[k + 1] if k + 1 < len(self.rows) else self.plan.info.height) - tile.row
            self.final_rows = final_rows
            self.next_carry = np.zeros((C + 1, th - final_rows, self.W), np.float32) if th > final_rows else None
        win = self.win
        assert win is not None
        if logits is not None:  # (C + 1, h, w): logits x blending weight, then the weight (see _forward)
            win += logits
        c_next = self.cols[j + 1] if j + 1 < len(self.cols) else self.W
        n = c_next - tile.col
        fr = self.final_rows
        self.emit(_Cell(k, j, tile.row, tile.col, win[:, :fr, :n], valid_strip[:fr, tile.col : c_next]))
        if self.next_carry is not None:
            self.next_carry[:, :, tile.col : c_next] = win[:, fr:, :n]
        if j + 1 < len(self.cols):
            new = np.zeros_like(win)
            new[:, :, : tw - n] = win[:, :, n:]
            self._carry_into(new, tile.col + tw, c_next + tw, tw - n)
            self.win = new
        else:
            self.win = None
            self.carry = self.next_carry
            self.next_carry = None


# ----------------------------------------------------------------------------- main entry


_MMAP_THRESHOLD_SET = False


def _fix_mmap_threshold(nbytes: int = 1 << 20) -> None:
    """glibc only: serve every allocation of ``nbytes`` or more with its own mmap, freed at once.

    By default glibc raises its mmap threshold each time a large block is freed (up to 32 MiB);
    after that, strips, tile batches and blend windows come from per-thread heaps (reader, writer,
    network threads) that are seldom given back, so the resident size creeps up during a run and
    with the scene width. A fixed threshold turns that adjustment off. Process-wide, done once,
    nothing on other C libraries.
    """
    global _MMAP_THRESHOLD_SET
    if _MMAP_THRESHOLD_SET:
        return
    _MMAP_THRESHOLD_SET = True
    try:
        import ctypes
        import platform

        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            ctypes.CDLL(None).mallopt(-3, int(nbytes))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError, ValueError):
        pass


def _cache_bytes(info: RasterInfo, plan: _Plan) -> int:
    """GDAL block cache: two rows of input blocks (a strip read touches up to three) plus a fixed 64 MiB.

    Outputs are written as whole rows of blocks, so their blocks can be flushed as soon as GDAL
    needs the room; keeping the cache small keeps memory flat on wide scenes.
    """
    in_bytes = np.dtype(info.dtype).itemsize * max(1, info.count)
    return int(min((64 << 20) + 2 * geotiff.BLOCK * info.width * in_bytes, 1 << 30))


def _load(model: str | Path | LoadedModel) -> tuple[LoadedModel, str]:
    if isinstance(model, LoadedModel):
        return model, str(model.metadata.get("name", "in-memory model"))
    return load_model_file(model), str(model)


def predict_raster(
    scene: str | Path,
    model: str | Path | LoadedModel,
    out_classes: str | Path,
    *,
    vector: str | Path | None = None,
    probabilities: str | Path | None = None,
    energy: str | Path | None = None,
    cover: bool = True,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    cog: bool = False,
    overwrite: bool = False,
    min_area: float = 0.0,
    simplify: float = 0.0,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    notice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Classify ``scene`` tile by tile and write the class raster (and optional outputs).

    Args:
        scene: GeoTIFF or photo to classify.
        model: model file path or an already loaded :class:`LoadedModel`.
        out_classes: class GeoTIFF to write (uint8, nodata 255, colour table).
        vector: GeoPackage of class polygons (``None``: none).
        probabilities: per-class probability GeoTIFF (uint8, p x 254, nodata 255).
        energy: free-energy GeoTIFF (float32 ``-logsumexp(logits)``, nodata NaN).
        cover: write the cover table (``<stem>_cover.csv`` / ``.json`` beside ``out_classes``).
        tile_size, overlap: in working pixels; default from the model file.
        batch_size: tiles per network call.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        cog: write Cloud-Optimized GeoTIFFs with overviews.
        overwrite: replace existing outputs.
        min_area, simplify: passed to the vectorizer.
        progress: ``callback(stage, done, total, message)``.
        cancel: polled once per batch; returning True stops the run (``Cancelled``).
        notice: receives one-line notices (tile size adjusted, all-nodata scene, ...).

    Returns:
        ``{"scene", "model", "outputs": {...}, "classes", "cover", "tiles", "tiles_run",
        "seconds", "device", "notices", "vector_summary"}``.

    Raises:
        InputError, ModelFileError, OutputError, Cancelled.
    """
    t_start = time.perf_counter()
    scene = Path(scene)
    say = notice or (lambda _msg: None)
    info = _inspect(scene)
    loaded, model_name = _load(model)
    meta = loaded.metadata
    preprocess.check_bands(info, meta["bands"])
    plan = _plan(info, meta, tile_size, overlap)
    if int(meta["architecture"]["num_classes"]) != len(plan.classes):
        raise InputError(f"Model {model_name} lists {len(plan.classes)} classes but outputs {meta['architecture']['num_classes']}; retrain it.")
    for n in plan.notices:
        say(n)

    outputs: dict[str, Path | None] = {
        "classes": Path(out_classes),
        "vector": Path(vector) if vector else None,
        "probabilities": Path(probabilities) if probabilities else None,
        "energy": Path(energy) if energy else None,
        "cover_csv": None,
        "cover_json": None,
    }
    if cover:
        outputs["cover_csv"], outputs["cover_json"] = cover_paths(out_classes)
    inputs = [scene] + ([] if isinstance(model, LoadedModel) else [Path(model)])
    seen: set[Path] = set()
    for key, p in outputs.items():
        if p is None:
            continue
        check_output(p, overwrite=overwrite, inputs=inputs)
        if p.resolve() in seen:
            raise OutputError(f"Output {p} is given for two outputs; give each output its own name.")
        seen.add(p.resolve())

    vectorize = None
    if outputs["vector"] is not None:
        try:
            from jess_geo.io.vectorize import vectorize_raster as vectorize
        except ImportError:
            say("Polygons are not available in this build (jess_geo.io.vectorize is missing); skipping the GeoPackage.")
            outputs["vector"] = None

    dev = resolve_device(device)
    net = prepare_network(loaded.model, dev)
    _fix_mmap_threshold()
    if batch_size < 1:
        raise InputError(f"Batch size {batch_size} is not positive; pass --batch-size 1 or more.")

    with contextlib.ExitStack() as stack:
        tmp = {k: stack.enter_context(atomic_output(p)) for k, p in outputs.items() if p is not None}
        plain = {k: (temp_name(tmp[k]) if cog else tmp[k]) for k in ("classes", "probabilities", "energy") if k in tmp}
        if cog:
            for p in plain.values():
                stack.callback(remove_quietly, p)
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=_cache_bytes(info, plan)))
        common = {"width": info.width, "height": info.height, "crs_wkt": info.crs_wkt, "transform": info.transform}
        writers: dict[str, geotiff.RowWriter] = {}
        try:
            writers["classes"] = geotiff.class_writer(plain["classes"], classes=plan.classes, source=scene.name, model=Path(model_name).name, **common)
            if "probabilities" in plain:
                writers["probabilities"] = geotiff.probability_writer(plain["probabilities"], classes=plan.classes, **common)
            if "energy" in plain:
                writers["energy"] = geotiff.energy_writer(plain["energy"], **common)
        except (RasterioIOError, OSError) as exc:
            for w in writers.values():
                w.abort()
            raise OutputError(f"Outputs for {scene.name} cannot be created ({exc}); choose a folder you can write to.") from None
        counter = CoverCounter(plan.classes, info.crs_wkt, info.transform)
        try:
            stats = _run(plan, net, dev, writers, counter, batch_size, progress, cancel)
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        for w in writers.values():
            w.close()
        table = counter.table(source=scene.name, model=Path(model_name).name)
        if table["valid_pixels"] == 0:
            say(f"{scene.name} has no valid pixel (all nodata); wrote empty outputs (every pixel nodata).")
        if cog:
            for key in plain:
                geotiff.to_cog(plain[key], tmp[key], resampling="nearest" if key == "classes" else "average")
                remove_quietly(plain[key])
        vector_summary = None
        if vectorize is not None:
            _check_cancel(cancel)
            vector_summary = vectorize(
                tmp["classes"], tmp["vector"], plan.classes, min_area=min_area, simplify=simplify,
                source=scene.name, model=Path(model_name).name, progress=progress,
            )
        if cover:
            write_cover_csv(table, tmp["cover_csv"])
            write_cover_json(table, tmp["cover_json"])
        _check_cancel(cancel)

    return {
        "scene": str(scene),
        "model": model_name,
        "outputs": {k: (str(v) if v is not None else None) for k, v in outputs.items()},
        "classes": [{"id": int(c["id"]), "name": c["name"], "color": c["color"]} for c in plan.classes],
        "cover": table,
        "tiles": len(plan.grid),
        "tiles_run": stats["tiles_run"],
        "tile_size": plan.tile,
        "overlap": plan.overlap,
        "scale": plan.scale,
        "device": str(dev),
        "seconds": round(time.perf_counter() - t_start, 3),
        "notices": plan.notices + ([f"{scene.name} has no valid pixel (all nodata)."] if table["valid_pixels"] == 0 else []),
        "vector_summary": vector_summary,
    }


def _inspect(scene: Path) -> RasterInfo:
    with open_raster(scene) as src:
        info = info_from_dataset(src)
    if info.width < 1 or info.height < 1:
        raise InputError(f"{scene} has no pixels; pass a non-empty raster.")
    return info


def _check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("Cancelled; outputs were not written (partial files removed).")


def _forward(net: torch.nn.Module, x: np.ndarray, dev: torch.device, plan: _Plan, out_hw: tuple[int, int],
             weights: torch.Tensor) -> np.ndarray:
    """Network on batch ``x``; returns ``(B, C + 1, h, w)``: logits x blending weight, then the weight.

    Weighting here runs on the device (torch's threads on the CPU) instead of in the blending loop.
    ``weights``: ``(B, 1, h, w)`` float32 on ``dev``.
    """
    xt = torch.from_numpy(x)
    if dev.type != "cpu":
        xt = xt.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else xt.to(dev)
    amp = torch.autocast("cuda", dtype=torch.float16) if dev.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode():
        with amp:
            y = net(fast_input(xt, dev))
        wh, ww = plan.work_shape
        y = y[:, :, :wh, :ww].float()
        if (wh, ww) != out_hw:
            y = F.interpolate(y, size=out_hw, mode="bilinear", align_corners=False)
        y = torch.cat([y * weights, weights], dim=1).contiguous()
        return y.cpu().numpy()


def _cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _run(plan: _Plan, net: torch.nn.Module, dev: torch.device, writers: dict[str, geotiff.RowWriter],
         counter: CoverCounter, batch_size: int, progress: ProgressCallback | None,
         cancel: Callable[[], bool] | None) -> dict[str, int]:
    stop = threading.Event()
    batches: "queue.Queue[Any]" = queue.Queue(maxsize=3)
    cells: "queue.Queue[Any]" = queue.Queue(maxsize=8)
    finisher = _Finisher(plan, writers, counter)
    # On the CPU the network already uses every core (torch's intra-op threads). Reader and writer
    # work running at the same time preempts one of those threads and stalls the others at each
    # parallel region's barrier, so the network slows down by more than the work done beside it.
    # There the stages take turns on the cores (a lock held around each network call and each
    # chunk of reader / writer work); they still run beside the single-threaded blending and
    # while the network waits for data. On a GPU the stages overlap freely.
    # When torch leaves a core free (torch.set_num_threads below the core count), they overlap.
    serial = dev.type == "cpu" and _SERIAL_CPU and torch.get_num_threads() >= _cores()
    gate: Any = threading.Lock() if serial else contextlib.nullcontext()
    reader = _Stage("jess-geo-reader", lambda: _reader(plan, batches, stop, batch_size, gate))
    writer = _Stage("jess-geo-writer", lambda: _writer(finisher, cells, stop, gate))

    def emit(cell: _Cell) -> None:
        if not _put(cells, cell, stop):
            raise Cancelled("Stopped.")
        if writer.error is not None:
            raise writer.error

    blender = _Blender(plan, emit)
    weight_cache: dict[tuple[bool, bool, bool, bool], torch.Tensor] = {}

    def weights_of(tiles: list[Tile]) -> torch.Tensor:
        out = []
        for t in tiles:
            key = (t.top, t.bottom, t.left, t.right)
            if key not in weight_cache:
                weight_cache[key] = torch.from_numpy(tile_weights(t, plan.grid.overlap).copy()).to(dev)
            out.append(weight_cache[key])
        return torch.stack(out)[:, None]
    total = len(plan.grid)
    done = run = 0
    out_hw = (plan.grid.tile_height, plan.grid.tile_width)
    reader.start()
    writer.start()
    try:
        if progress:
            progress("predict", 0, total, f"tile 0/{total}")
        while True:
            _check_cancel(cancel)
            try:
                batch = batches.get(timeout=_POLL)
            except queue.Empty:
                if reader.error is not None:
                    raise reader.error
                if not reader.is_alive() and batches.empty():
                    raise JessGeoError("The tile reader stopped unexpectedly; please report this.")
                continue
            if batch is None:
                break
            logits = None
            if batch.x is not None:
                wts = weights_of([batch.tiles[i][0] for i in batch.run])
                with gate:
                    logits = _forward(net, batch.x, dev, plan, out_hw, wts)
            k = 0
            for pos, (tile, valid) in enumerate(batch.tiles):
                if k < len(batch.run) and batch.run[k] == pos:
                    blender.add(tile, logits[k], valid)  # type: ignore[index]
                    k += 1
                else:
                    blender.add(tile, None, valid)
            done += len(batch.tiles)
            run += len(batch.run)
            if progress:
                progress("predict", done, total, f"tile {done}/{total}")
            if writer.error is not None:
                raise writer.error
        if reader.error is not None:
            raise reader.error
        if not _put(cells, None, stop):
            raise Cancelled("Stopped.")
        while writer.is_alive():
            writer.join(timeout=_POLL)
        if writer.error is not None:
            raise writer.error
    finally:
        stop.set()
        writer.join()  # it stops after its current cell; the caller closes the files afterwards
        reader.join(timeout=10)
    return {"tiles_run": run}


def iter_scenes(scenes: list[str | Path]) -> Iterator[Path]:
    """Paths of ``scenes`` in order (helper for callers that predict several scenes)."""
    for s in scenes:
        yield Path(s)
