"""`jess-geo export`: a model file to one self-describing ONNX file (fp32, or int8 on request).

The graph
---------
- Input ``input``: ``(batch, bands, tile, tile)`` float32, the bands already normalised with the
  model's mean and std (stated in the metadata, not folded in: the jess-geo pipeline normalises
  before every runtime, and QGIS Deepness standardises with the mean and std it reads from the
  metadata; see :mod:`jess_geo.export.onnx_meta`).
- Output ``probabilities``: ``(batch, classes, tile, tile)``, a softmax over the logits (Deepness
  takes the argmax of probabilities and may threshold them; logits would be thresholded wrongly).
  The softmax is written out as ReduceMax, Sub, Exp, ReduceSum and Div over the class axis, not
  as one ``Softmax`` node: ONNX Runtime runs a ``Softmax`` over axis 1 of an NCHW tensor by
  transposing it, which took 83 ms of a 4 x 512² batch on the demo network (25 % of the whole
  graph's time) against 5 ms for the five nodes. The softmax's input is the value named
  ``logits``; the jess-geo runtimes cut the graph there (the energy output needs the logits).
- Size: **fixed** height and width (the tile size) by default, dynamic batch. Deepness reads its
  tile size from the input shape and needs it fixed and square; fixed shapes also let ONNX Runtime
  and OpenVINO plan memory once. Tiles smaller than that (scenes smaller than a tile) are padded
  by the runtime. ``--dynamic`` exports any multiple of 32 instead (not loadable in Deepness).
- Upsampling by constant factors (:mod:`jess_geo.export.onnx_graph`), so ONNX Runtime keeps the
  decoder in its blocked layout.
- Exported with torch's TorchScript-based exporter at opset 17 by default: one file (no external
  weights), loadable by ONNX Runtime 1.12 and later (Deepness users often have an older one).

Every export is checked by running it: ONNX Runtime's logits on a fixed batch of inputs are
compared with PyTorch's; an export that differs by more than ``TOLERANCE`` is refused.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from jess_geo.errors import InputError, JessGeoError
from jess_geo.export.extras import require
from jess_geo.export.onnx_graph import LOGITS, constant_upsampling, name_softmax_input
from jess_geo.export.onnx_meta import onnx_properties
from jess_geo.inference.onnx_runtime import OnnxRuntime, logits_graph
from jess_geo.io.atomic import atomic_output, check_output
from jess_geo.models.factory import size_multiple
from jess_geo.models.modelfile import LoadedModel, load_model_file

DEFAULT_OPSET = 17
OPSETS = range(13, 21)  # Softmax over one axis needs 13; the TorchScript exporter stops at 20
TOLERANCE = 1e-3  # largest |logit difference| accepted by the export check (fp32 runs agree to ~1e-5)


class ExportError(JessGeoError, ValueError):
    """An export that cannot be made or that fails its check."""


@dataclass(frozen=True)
class ExportResult:
    """What `jess-geo export` wrote and how it was checked."""

    path: Path
    tile_size: int | None  # None: dynamic height and width
    opset: int
    precision: str  # "fp32" | "int8"
    max_abs_diff: float  # fp32 graph against PyTorch, logits
    agreement: float | None  # int8 only: class agreement with the fp32 graph
    size_bytes: int


class _Probabilities(torch.nn.Module):
    """The network followed by a softmax over the class axis, as the five nodes ONNX Runtime runs fast."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
        return e / e.sum(dim=1, keepdim=True)


def graph_bytes(net: torch.nn.Module, bands: int, tile: int, opset: int = DEFAULT_OPSET, dynamic: bool = False,
                constant_scales: bool = True) -> bytes:
    """The ONNX graph of ``net`` (in eval mode, float32) with a softmax output, as bytes.

    ``constant_scales=False`` keeps the exporter's upsampling to computed sizes (for comparison).
    """
    example = torch.zeros(1, bands, tile, tile)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
    wrapped = _Probabilities(net.float().eval()).eval()  # the exporter restores this mode on ``net`` afterwards
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapped, (example,), buf,
            input_names=["input"], output_names=["probabilities"], opset_version=opset,
            dynamic_axes={"input": dict(axes), "probabilities": dict(axes)},
            do_constant_folding=True, dynamo=False,
        )
    model = constant_upsampling(buf.getvalue(), tile)[0] if constant_scales else buf.getvalue()
    return _named_output_shape(name_softmax_input(model), None if dynamic else tile)


def _named_output_shape(model: bytes, tile: int | None) -> bytes:
    """State the output's shape as the input's: ``(batch, classes, tile, tile)`` or ``(batch, classes, height, width)``.

    The TorchScript exporter's shape inference leaves odd symbolic names there after the softmax.
    """
    onnx = require("onnx")
    proto = onnx.load_from_string(model)
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    for d, value in zip(dims, ("batch", None, tile or "height", tile or "width")):
        if isinstance(value, int):
            d.dim_value = value
        elif isinstance(value, str):
            d.dim_param = value
    return proto.SerializeToString()


def model_file_graph(model_path: str | Path, opset: int = DEFAULT_OPSET) -> bytes:
    """A ``.pt`` model file's graph (dynamic height and width), in memory, for ``predict --runtime onnxruntime``."""
    require("onnx")
    loaded = _load(Path(model_path))
    multiple = size_multiple(loaded.metadata["architecture"])
    return graph_bytes(loaded.model, int(loaded.metadata["architecture"]["in_channels"]), 4 * multiple, opset, dynamic=True)


def check_batch(bands: int, tile: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    """A fixed batch of normalised-looking inputs (standard normal) for the export check."""
    return np.random.default_rng(seed).standard_normal((batch, bands, tile, tile), dtype=np.float32)


def torch_logits(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """PyTorch's logits for ``x`` (the reference every export is checked against)."""
    with torch.inference_mode():
        return net(torch.from_numpy(x)).float().numpy()


def max_logit_difference(net: torch.nn.Module, model: bytes, x: np.ndarray) -> float:
    """Largest |logit difference| between PyTorch and ONNX Runtime on ``x``."""
    ort_logits = OnnxRuntime(logits_graph(model), device="cpu").logits(x)
    return float(np.max(np.abs(ort_logits - torch_logits(net, x))))


def _runs_any_size(net: torch.nn.Module, model: bytes, bands: int, tile: int, multiple: int) -> bool:
    """Whether the fixed-size graph, its size opened up, gives PyTorch's logits on another size too."""
    onnx = require("onnx")
    proto = onnx.load_from_string(model)
    for value in (proto.graph.input[0], proto.graph.output[0]):
        for d, sym in zip(value.type.tensor_type.shape.dim[2:], ("height", "width")):
            d.dim_param = sym
    h, w = max(multiple, tile // 2 // multiple * multiple), tile + multiple
    x = np.random.default_rng(1).standard_normal((1, bands, h, w), dtype=np.float32)
    try:
        diff = max_logit_difference(net, proto.SerializeToString(), x)
    except Exception:  # noqa: BLE001 - shapes baked into the graph: ONNX Runtime refuses the other size
        return False
    return bool(np.isfinite(diff) and diff <= TOLERANCE)


def with_metadata(model: bytes, props: dict[str, str], doc: str) -> bytes:
    """``model`` with ``props`` as its metadata_props (replacing any) and a producer name."""
    onnx = require("onnx")
    import jess_geo

    proto = onnx.load_from_string(model)
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "jess-geo", jess_geo.__version__
    proto.doc_string = doc
    return proto.SerializeToString()


def _tile(meta: dict[str, Any], tile_size: int | None) -> int:
    multiple = size_multiple(meta["architecture"])
    tile = int(tile_size if tile_size is not None else meta["tile_size"])
    if tile < multiple or tile % multiple:
        raise InputError(f"--tile-size {tile} is not a positive multiple of {multiple}; pass one such as {max(multiple, tile // multiple * multiple) or 256}.")
    if int(meta["overlap"]) >= tile:
        raise InputError(f"The model's overlap {meta['overlap']} does not fit tile size {tile}; pass a larger --tile-size.")
    return tile


def _load(model_path: Path) -> LoadedModel:
    if model_path.suffix.lower() == ".onnx":
        raise InputError(f"{model_path.name} is already an ONNX model; export the .pt model file it came from.")
    return load_model_file(model_path)


def export_model(
    model_path: str | Path,
    out_path: str | Path,
    *,
    tile_size: int | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = False,
    int8: bool = False,
    calibration: str | Path | None = None,
    min_agreement: float = 0.98,
    overwrite: bool = False,
    notice: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``model_path`` to ``out_path`` (``.onnx``), check it, write it atomically.

    Raises:
        InputError, ModelFileError, OutputError, ExportError (an export check or int8 agreement failed).
    """
    say = notice or (lambda _m: None)
    model_path, out_path = Path(model_path), Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise InputError(f"Output {out_path.name} does not end in .onnx; name the file OUT.onnx.")
    if opset not in OPSETS:
        raise InputError(f"--opset {opset} is not supported; choose {OPSETS.start} to {OPSETS.stop - 1} (default {DEFAULT_OPSET}).")
    if int8 and calibration is None:
        raise InputError("--int8 needs --calibration IMAGES_DIR (a few images like the ones you will predict).")
    if calibration is not None and not int8:
        raise InputError("--calibration is only used with --int8; add --int8 or drop --calibration.")
    check_output(out_path, overwrite=overwrite, inputs=[model_path])
    require("onnx"), require("onnxruntime")
    loaded = _load(model_path)
    meta = dict(loaded.metadata)
    tile = _tile(meta, tile_size)
    meta["tile_size"] = tile
    bands = int(meta["architecture"]["in_channels"])
    net = loaded.model.eval()

    say(f"exporting {model_path.name} (opset {opset}, {'dynamic size' if dynamic else f'{tile} x {tile} tiles'})")
    model = graph_bytes(net, bands, tile, opset, dynamic)
    diff = max_logit_difference(net, model, check_batch(bands, tile))
    if not np.isfinite(diff) or diff > TOLERANCE:
        raise ExportError(f"The ONNX graph's logits differ from PyTorch's by {diff:.2g} (> {TOLERANCE:g}); please report this with the model file.")
    say(f"check: ONNX Runtime logits match PyTorch to {diff:.1e} (fp32)")
    if meta.get("colour_alignment"):
        say("notice: the colour alignment (adapt --method histmatch) is stored in the metadata and applied by "
            "jess-geo predict; other ONNX clients, QGIS Deepness among them, ignore it")
    # int8 graphs keep their declared size (the check below covers fp32 only)
    any_size = dynamic or (not int8 and _runs_any_size(net, model, bands, tile, size_multiple(meta["architecture"])))

    agreement = None
    if int8:
        from jess_geo.export.quantize import quantize_int8

        model, agreement = quantize_int8(model, meta, Path(calibration), tile, min_agreement=min_agreement, notice=say)

    graph = {
        "input": {"name": "input", "layout": "NCHW", "dtype": "float32", "bands": meta["bands"],
                  "normalised": "(x - normalization.mean) / normalization.std per band, by the caller",
                  "height": None if dynamic else tile, "width": None if dynamic else tile, "multiple": size_multiple(meta["architecture"]),
                  "any_size": any_size},
        "output": {"name": "probabilities", "softmax_axis": 1, "logits": LOGITS},
        "opset": opset,
        "precision": "int8" if int8 else "fp32",
        "int8_agreement": agreement,
        "check_max_abs_logit_diff": diff,
        "source_model": model_path.name,
        "exported": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    doc = f"jess-geo segmentation model exported from {model_path.name}; metadata key 'jess_geo' holds its description."
    model = with_metadata(model, onnx_properties(meta, graph, tile), doc)
    with atomic_output(out_path) as tmp:
        tmp.write_bytes(model)
    return ExportResult(out_path, None if dynamic else tile, opset, graph["precision"], diff, agreement, len(model))


def describe(result: ExportResult) -> str:
    """A few lines saying what was written."""
    size = "dynamic height and width" if result.tile_size is None else f"{result.tile_size} x {result.tile_size} tiles"
    lines = [f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.precision}, opset {result.opset}, {size}, any batch)"]
    if result.agreement is not None:
        lines.append(f"int8 class agreement with fp32 on the calibration images: {100 * result.agreement:.2f} %")
    return "\n".join(lines)


def as_json(result: ExportResult) -> str:
    """The result as one JSON line."""
    return json.dumps({"path": str(result.path), "tile_size": result.tile_size, "opset": result.opset,
                       "precision": result.precision, "max_abs_diff": result.max_abs_diff,
                       "agreement": result.agreement, "size_bytes": result.size_bytes})


__all__ = ["export_model", "graph_bytes", "ExportError", "ExportResult", "describe", "as_json"]
