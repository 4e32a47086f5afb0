"""Static int8 quantisation (QDQ) of an exported graph, calibrated on crops of the user's images.

Calibration tiles are cut from each image at the model's working resolution (the same scale,
bands and normalisation as `predict`), on a regular grid, at most ``PER_IMAGE`` per image.
Activations are unsigned 8-bit with ranges from the min/max seen on those tiles, weights signed
8-bit per output channel (ONNX Runtime's advice for x86 CPUs). The final softmax stays in float.

The int8 graph is accepted only if its classes agree with the fp32 graph's on at least
``min_agreement`` of the valid pixels of the calibration tiles.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from jess_geo import preprocess
from jess_geo.bands import resolve_bands
from jess_geo.errors import InputError, JessGeoError
from jess_geo.export.extras import require
from jess_geo.export.onnx_graph import LOGITS, after
from jess_geo.inference.onnx_runtime import OnnxRuntime, logits_graph
from jess_geo.io.raster import info_from_dataset, list_rasters, open_raster, read_bands, read_valid

PER_IMAGE = 8
MAX_TILES = 32


class QuantizationError(JessGeoError, ValueError):
    """An int8 graph that fails the agreement check (or cannot be built)."""


def _crops(height: int, width: int, tile: int, count: int) -> list[tuple[int, int]]:
    """Up to ``count`` tile origins on a regular grid covering a ``height`` x ``width`` image."""
    rows = np.unique(np.linspace(0, max(0, height - tile), max(1, int(np.ceil(height / tile)))).round().astype(int))
    cols = np.unique(np.linspace(0, max(0, width - tile), max(1, int(np.ceil(width / tile)))).round().astype(int))
    grid = [(int(r), int(c)) for r in rows for c in cols]
    if len(grid) <= count:
        return grid
    pick = np.linspace(0, len(grid) - 1, count).round().astype(int)
    return [grid[i] for i in pick]


def _image_tiles(path: Path, meta: dict[str, Any], tile: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Normalised ``(C, tile, tile)`` crops of one image and their valid masks (nodata zeroed, padded)."""
    with open_raster(path) as src:
        info = info_from_dataset(src)
        plan = resolve_bands(info.count, [int(b) for b in meta["bands"]], alpha_band=info.alpha_band, name=info.name)
        bands = list(plan.data)
        scale = preprocess.working_scale(info, meta["resolution"])
        shape = preprocess.scaled_shape(info.height, info.width, scale)
        x = read_bands(src, bands, out_shape=shape)
        valid = read_valid(src, out_shape=shape)
    x = preprocess.normalize(x, meta["normalization"])
    x[:, ~valid] = 0.0
    for r, c in _crops(shape[0], shape[1], tile, PER_IMAGE):
        xt = np.zeros((len(bands), tile, tile), np.float32)
        vt = np.zeros((tile, tile), bool)
        part = x[:, r : r + tile, c : c + tile]
        xt[:, : part.shape[1], : part.shape[2]] = part
        vt[: part.shape[1], : part.shape[2]] = valid[r : r + tile, c : c + tile]
        if vt.any():
            yield xt, vt


def calibration_tiles(folder: Path, meta: dict[str, Any], tile: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, C, tile, tile)`` normalised crops of the images in ``folder`` and ``(N, tile, tile)`` valid masks."""
    xs, vs = [], []
    for path in list_rasters(folder, what="calibration images"):
        for x, v in _image_tiles(path, meta, tile):
            xs.append(x)
            vs.append(v)
    if not xs:
        raise InputError(f"The calibration images in {folder} have no valid pixel; use images like the ones you will predict.")
    pick = np.linspace(0, len(xs) - 1, min(len(xs), MAX_TILES)).round().astype(int)
    return np.stack([xs[i] for i in pick]), np.stack([vs[i] for i in pick])


def _reader(tiles: np.ndarray) -> Any:
    quant = require("onnxruntime.quantization")

    class Reader(quant.CalibrationDataReader):
        """One tile per call; ``set_range`` lets the calibrator fold ranges chunk by chunk (flat memory)."""

        def __init__(self) -> None:
            self.set_range(0, len(tiles))

        def __len__(self) -> int:
            return len(tiles)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._items = iter(tiles[i : i + 1] for i in range(start_index, min(end_index, len(tiles))))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._items, None)
            return None if x is None else {"input": x}

    return Reader()


def quantize_graph(model: bytes, tiles: np.ndarray) -> bytes:
    """Static QDQ int8 quantisation of ``model`` (an exported fp32 graph) calibrated on ``tiles``."""
    onnx = require("onnx")
    quant = require("onnxruntime.quantization")
    proto = onnx.load_from_string(model)
    softmax = after(proto, LOGITS) + [n.name for n in proto.graph.node if n.op_type == "Softmax"]
    with tempfile.TemporaryDirectory(prefix="jess-geo-int8-") as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "fp32-pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model)
        quant.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quant.quantize_static(
            str(pre), str(out), _reader(tiles), quant_format=quant.QuantFormat.QDQ,
            activation_type=quant.QuantType.QUInt8, weight_type=quant.QuantType.QInt8, per_channel=True,
            nodes_to_exclude=softmax, calibrate_method=quant.CalibrationMethod.MinMax,
            extra_options={"CalibStridedMinMax": 1},  # ranges folded tile by tile: memory stays flat
        )
        return out.read_bytes()


def class_agreement(fp32: bytes, int8: bytes, tiles: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of valid pixels where the int8 graph's class equals the fp32 graph's."""
    a, b = OnnxRuntime(logits_graph(fp32), device="cpu"), OnnxRuntime(logits_graph(int8), device="cpu")
    same = total = 0
    for i in range(0, len(tiles), 4):
        x, v = tiles[i : i + 4], valid[i : i + 4]
        eq = np.argmax(a.logits(x), axis=1) == np.argmax(b.logits(x), axis=1)
        same += int(eq[v].sum())
        total += int(v.sum())
    return same / max(total, 1)


def quantize_int8(model: bytes, meta: dict[str, Any], calibration: Path, tile: int, *, min_agreement: float = 0.98,
                  notice: Callable[[str], None] | None = None) -> tuple[bytes, float]:
    """The int8 graph and its class agreement with ``model``; QuantizationError below ``min_agreement``."""
    say = notice or (lambda _m: None)
    tiles, valid = calibration_tiles(calibration, meta, tile)
    say(f"int8: calibrating on {len(tiles)} tiles of {tile} px from {calibration}")
    int8 = quantize_graph(model, tiles)
    agreement = class_agreement(model, int8, tiles, valid)
    say(f"int8: class agreement with fp32 on the calibration tiles: {100 * agreement:.2f} %")
    if agreement < min_agreement:
        raise QuantizationError(
            f"The int8 model agrees with fp32 on {100 * agreement:.2f} % of the calibration pixels, below "
            f"{100 * min_agreement:.1f} %; nothing written: keep the fp32 export or calibrate on other images."
        )
    return int8, agreement
