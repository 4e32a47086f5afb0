"""The network as an ONNX graph, run by ONNX Runtime or OpenVINO (the pipeline's ``Runtime`` interface).

Each runtime has ``logits(x)``: ``x`` is ``(B, C, H, W)`` float32, already normalised by the
pipeline; it returns ``(B, K, H, W)`` float32 logits. Exported files end in a softmax (QGIS
Deepness wants probabilities); :func:`logits_graph` cuts it off, so the runtimes return the
logits the energy output needs. Neither torch, the model code nor the ``onnx`` package
is imported here (the graph is edited at the protobuf wire level).

Settings for throughput on the CPU, the case these runtimes are for:

- ONNX Runtime: one intra-op thread per core this process may use, no inter-op parallelism
  (one graph, run sequentially), every graph optimisation (the convolutions then run in the
  CPU provider's blocked NCHWc layout, so an NHWC input would only add a transpose), the
  memory arena and memory-pattern planning on (tile shapes repeat).
- OpenVINO: the same thread count, latency hint (one request at a time, all cores on it) and
  f32 inference precision: on CPUs with bf16 support OpenVINO would otherwise run in bf16.

A graph exported with a fixed tile size declares that size (for QGIS Deepness); `jess-geo export`
checks that it runs other multiples of 32 just as well and says so in its metadata
(``onnx.input.any_size``), and then the size is opened up here. A graph of truly fixed size
takes smaller inputs by zero-padding (zero is the band mean after normalisation) and cropping.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jess_geo.errors import InputError, ModelFileError
from jess_geo.export.extras import require
from jess_geo.export.onnx_graph import LOGITS
from jess_geo.export.onnx_meta import model_properties
from jess_geo.export.onnx_wire import FIELD, WireError, fields, length_delimited, replace, strings

RUNTIMES = ("onnxruntime", "openvino")
DEFAULT_STREAMS = 1
"""Concurrent runs per batch when neither ``streams`` nor the batch size is given. ``streams=N``
runs a batch over N concurrent runs (ONNX Runtime: one tile per ``run`` call, N at once, each on
threads / N intra-op threads; OpenVINO: the throughput hint with N streams, the batch in N parts).
ONNX Runtime given the batch size (``batch=``, as predict does) runs one stream per thread up to
the batch: on the quiet 2-core machine two such streams ran 4 x 512² tiles at 73.5 / 75.9 % of the
sgemm peak against 69.8 / 68.7 % for one (results/issue13_s13.txt; 76.6 against 72.9 % in
session 14), and `predict` on a 4000² scene (256² tiles) 1.00-1.08x faster with identical rasters
(results/issue13_s14.txt). OpenVINO stays at one stream:
two gave 0.96x and 0.90x (results/issue13_s11.txt). Only 2-core machines were measured."""


@dataclass(frozen=True)
class Graph:
    """An ONNX graph whose one output is the logits, with its input's size (None: any)."""

    model: bytes
    channels: int | None
    height: int | None
    width: int | None
    batch: int | None


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def logits_graph(source: str | Path | bytes) -> Graph:
    """Read an ONNX model (a path or its bytes) and make its logits the output (drop the softmax after them).

    The logits are the value named ``logits`` (jess-geo exports its softmax as five nodes after
    it), else the input of a final ``Softmax`` (earlier exports), else the graph's output as it is.

    Edited at the protobuf wire level (:mod:`jess_geo.export.onnx_wire`): the ``onnx`` package
    is not imported and the weights are copied, never decoded.
    """
    name = "the ONNX model" if isinstance(source, bytes) else Path(source).name
    damaged = f"{name} is not a readable ONNX file (corrupt or truncated); export it again with `jess-geo export`."
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        props, span = model_properties(data)
        if span is None:
            raise WireError("no graph")
        graph, dims = _logits_graph_message(data, span, name, _any_size(props))
    except (WireError, OSError):
        raise ModelFileError(damaged) from None
    model = replace(data, {FIELD["model.graph"]: lambda _: graph})
    batch, channels, height, width = dims
    return Graph(model, channels, height, width, batch)


def _logits_name(data: bytes, nodes: list[tuple[int, int]], out_name: str) -> str:
    """The logits value: one named ``LOGITS`` (jess-geo's exports), else a final Softmax's input, else the output."""
    made = {v for a, b in nodes for v in strings(data, FIELD["node.output"], a, b)}
    if LOGITS in made:
        return LOGITS
    for a, b in nodes:
        if out_name in strings(data, FIELD["node.output"], a, b):  # its producer (ONNX: one per value)
            if strings(data, FIELD["node.op_type"], a, b) == ["Softmax"]:
                return strings(data, FIELD["node.input"], a, b)[0]
            break
    return out_name


def _needed(data: bytes, nodes: list[tuple[int, int]], value: str) -> set[tuple[int, int]]:
    """The nodes ``value`` depends on (walked back through the topologically ordered nodes)."""
    wanted, keep = {value}, set()
    for a, b in reversed(nodes):
        if wanted.intersection(strings(data, FIELD["node.output"], a, b)):
            keep.add((a, b))
            wanted.update(strings(data, FIELD["node.input"], a, b))
    return keep


def _logits_graph_message(data: bytes, span: tuple[int, int], name: str, any_size: bool) -> tuple[bytes, list[int | None]]:
    """The GraphProto at ``span`` with the logits as its output (the softmax after them dropped;
    the size opened when ``any_size``), and the input's dimensions (None: symbolic)."""
    parts: dict[int, list[tuple[int, int]]] = {}
    for f in fields(data, *span):
        if f.wire == 2:
            parts.setdefault(f.number, []).append((f.value, f.end))
    initialised = {n for a, b in parts.get(FIELD["graph.initializer"], []) for n in strings(data, FIELD["tensor.name"], a, b)}
    inputs = [(a, b) for a, b in parts.get(FIELD["graph.input"], []) if _name(data[a:b]) not in initialised]
    outputs = parts.get(FIELD["graph.output"], [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(f"{name} has {len(inputs)} inputs and {len(outputs)} outputs; jess-geo runs graphs with one of each.")
    input_info, output_info = data[slice(*inputs[0])], data[slice(*outputs[0])]
    nodes = parts.get(FIELD["graph.node"], [])
    logits_name = _logits_name(data, nodes, _name(output_info))
    keep = _needed(data, nodes, logits_name)
    spans = {data[a:b]: (a, b) for a, b in nodes}
    output_info = replace(output_info, {FIELD["value_info.name"]: lambda _: logits_name.encode("utf-8")})
    dims = _dims(input_info)
    if len(dims) != 4:
        raise ModelFileError(f"{name} takes a {len(dims)}-d input; jess-geo runs graphs taking (batch, bands, height, width).")
    if any_size:
        input_info, output_info = _open_size(input_info), _open_size(output_info)
        dims[2:] = [None, None]
    new_input, new_output = iter([input_info]), iter([output_info])

    def node(payload: bytes) -> bytes | None:
        return payload if spans.get(payload) in keep else None

    graph = replace(data, {
        FIELD["graph.node"]: node,
        FIELD["graph.input"]: lambda p: next(new_input) if _name(p) not in initialised else p,
        FIELD["graph.output"]: lambda _: next(new_output),
    }, *span)
    return graph, dims


def _name(value_info: bytes) -> str:
    names = strings(value_info, FIELD["value_info.name"])
    return names[-1] if names else ""


def _shape_edit(value_info: bytes, edit: Callable[[bytes], bytes | None]) -> bytes:
    """``value_info`` with ``edit`` applied to its tensor type's shape."""
    def tensor(t: bytes) -> bytes:
        return replace(t, {FIELD["tensor_type.shape"]: edit})

    return replace(value_info, {FIELD["value_info.type"]: lambda ty: replace(ty, {FIELD["type.tensor_type"]: tensor})})


def _dims(value_info: bytes) -> list[int | None]:
    """A tensor's dimensions: their size, None where symbolic or unknown."""
    found: list[int | None] = []

    def shape(s: bytes) -> bytes:
        for d in fields(s):
            if d.number == FIELD["shape.dim"] and d.wire == 2:
                sizes = [f.value for f in fields(s, d.value, d.end) if f.number == FIELD["dim.value"] and f.wire == 0]
                found.append(sizes[-1] if sizes and 0 < sizes[-1] < 2**63 else None)
        return s

    _shape_edit(value_info, shape)
    return found


def _open_size(value_info: bytes) -> bytes:
    """``value_info`` with its last two dimensions made symbolic (``height``, ``width``)."""
    def shape(s: bytes) -> bytes:
        seen: list[bytes] = []

        def dim(d: bytes) -> bytes:
            seen.append(d)
            i = len(seen) - 1
            return length_delimited(FIELD["dim.param"], (b"height", b"width")[i - 2]) if i in (2, 3) else d

        return replace(s, {FIELD["shape.dim"]: dim})

    return _shape_edit(value_info, shape)


def _any_size(props: dict[str, str]) -> bool:
    """Whether `jess-geo export` checked that this fixed-size graph also runs other multiples of 32."""
    meta = props.get("jess_geo")
    try:
        return bool(json.loads(meta)["onnx"]["input"]["any_size"]) if meta else False
    except (ValueError, KeyError, TypeError):
        return False


def _fit(x: np.ndarray, graph: Graph, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run ``x`` through a graph of fixed size and batch: pad to its size, split into its batches, crop."""
    b, c, h, w = x.shape
    if graph.channels is not None and c != graph.channels:
        raise InputError(f"The ONNX model takes {graph.channels} bands but got {c}; check the model's bands.")
    gh, gw = graph.height or h, graph.width or w
    if h > gh or w > gw:
        raise InputError(
            f"The ONNX model was exported for {gh} x {gw} tiles but got {h} x {w}; "
            f"pass --tile-size {min(gh, gw)} (the model's) or export again with --tile-size {max(h, w)} or --dynamic."
        )
    if (gh, gw) != (h, w):
        padded = np.zeros((b, c, gh, gw), dtype=np.float32)
        padded[:, :, :h, :w] = x
        x = padded
    x = np.ascontiguousarray(x, dtype=np.float32)
    step = graph.batch or b
    parts = [run(x[i : i + step]) for i in range(0, b, step)]
    y = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return np.ascontiguousarray(y[:, :, :h, :w], dtype=np.float32)


class OnnxRuntime:
    """ONNX Runtime session (CPU provider; CUDA when asked for and installed)."""

    name = "onnxruntime"

    def __init__(self, graph: Graph, device: str = "auto", threads: int | None = None, streams: int | None = None,
                 batch: int | None = None) -> None:
        ort = require("onnxruntime")
        available = ort.get_available_providers()
        device = (device or "auto").lower()
        if device.startswith("cuda") and "CUDAExecutionProvider" not in available:
            raise InputError("--device cuda with --runtime onnxruntime needs onnxruntime-gpu; install it or use --device cpu.")
        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise InputError(f"--runtime onnxruntime runs on cpu or cuda, not {device}; use --device cpu.")
        gpu = "CUDAExecutionProvider" in available and device != "cpu"
        opts = ort.SessionOptions()
        self.threads = threads or cores()  # read by the pipeline: a runtime on every core runs alone
        self.streams = 1 if gpu else _streams(streams, self.threads, batch)
        opts.intra_op_num_threads = max(1, self.threads // self.streams)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_cpu_mem_arena = True
        opts.enable_mem_pattern = True
        opts.log_severity_level = 3  # errors only: no "removing initializer" chatter on stderr
        providers = (["CUDAExecutionProvider"] if gpu else []) + ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(graph.model, opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own classes for every kind of bad graph
            raise ModelFileError(f"ONNX Runtime cannot load the model ({str(exc).splitlines()[0][:160]}); export it again with `jess-geo export`.") from None
        self._input = self._session.get_inputs()[0].name
        self.graph = graph
        self.device = "cuda" if gpu else "cpu"

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.streams == 1 or len(x) == 1:
            return self._session.run(None, {self._input: x})[0]
        # Concurrent runs of one tile each, every stream taking the next tile when it is done (the
        # session is thread-safe). One tile's activations stay in the caches that a batch's overflow:
        # on the demo network 4 x 512² took 240-256 ms this way against 285-294 ms as two halves.
        tiles = [np.ascontiguousarray(x[i : i + 1]) for i in range(len(x))]
        return np.concatenate(list(_pool(self).map(lambda t: self._session.run(None, {self._input: t})[0], tiles)))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(B, C, H, W)`` normalised float32 -> ``(B, K, H, W)`` float32 logits."""
        return _fit(x, self.graph, self._run)


class OpenVinoRuntime:
    """OpenVINO on the CPU, compiled once per input shape (f32 precision, latency hint)."""

    name = "openvino"

    def __init__(self, graph: Graph, device: str = "auto", threads: int | None = None, streams: int | None = None,
                 batch: int | None = None) -> None:  # batch: accepted, unused (one stream unless streams is given)
        if (device or "auto").lower() not in ("auto", "cpu"):
            raise InputError(f"--runtime openvino runs on the cpu here, not {device}; use --device cpu.")
        ov = require("openvino")
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(graph.model, b"")
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for every kind of bad graph
            raise ModelFileError(f"OpenVINO cannot read the model ({str(exc).splitlines()[0][:160]}); export it again with `jess-geo export`.") from None
        self.threads = threads or cores()  # read by the pipeline: a runtime on every core runs alone
        self.streams = _streams(streams, self.threads)
        self._config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": "f32"}
        if self.streams > 1:
            self._config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=self.streams)
        self._compiled: dict[tuple[tuple[int, ...], int], Any] = {}  # (shape, -1): compiled model; (shape, k): request k
        self._lock = threading.Lock()
        # OpenVINO's Python binding sets up its NumPy bridge on first use, under a C++ static guard
        # taken while holding the GIL: two streams reaching it at once deadlock (4 of 12 fresh
        # processes hung on their first 2-stream batch). Set it up here, in one thread.
        ov.Tensor(np.zeros(1, dtype=np.float32)).data
        self.graph = graph
        self.device = "cpu"

    def _request(self, shape: tuple[int, ...], k: int = 0) -> Any:
        """The infer request ``k`` (one per stream) of the model compiled for ``shape``."""
        key = (shape, k)
        with self._lock:  # streams ask for their requests at once; reshape and compile one at a time
            if key not in self._compiled:
                compiled = self._compiled.get((shape, -1))
                if compiled is None:
                    self._model.reshape({0: list(shape)})
                    compiled = self._compiled[(shape, -1)] = self._core.compile_model(self._model, "CPU", self._config)
                self._compiled[key] = compiled.create_infer_request()
            return self._compiled[key]

    def _infer(self, x: np.ndarray, k: int = 0) -> np.ndarray:
        request = self._request(x.shape, k)
        request.infer({0: np.ascontiguousarray(x)})
        return request.get_output_tensor(0).data.copy()

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.streams == 1 or len(x) == 1:
            return self._infer(x)
        parts = np.array_split(x, min(self.streams, len(x)))  # one request per stream, run at once
        return np.concatenate(list(_pool(self).map(self._infer, parts, range(len(parts)))))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(B, C, H, W)`` normalised float32 -> ``(B, K, H, W)`` float32 logits."""
        return _fit(x, self.graph, self._run)


def _streams(streams: int | None, threads: int, batch: int | None = None) -> int:
    """Concurrent runs over a batch's tiles (1: one run on every thread), at most one per thread:
    ``streams`` if given, else one per tile of a ``batch``, else :data:`DEFAULT_STREAMS`."""
    return max(1, min(int(streams or batch or DEFAULT_STREAMS), threads))


def _pool(rt: Any) -> ThreadPoolExecutor:
    """The runtime's worker threads for concurrent runs (created on first use)."""
    pool = getattr(rt, "_workers", None)
    if pool is None:
        pool = rt._workers = ThreadPoolExecutor(rt.streams, thread_name_prefix=f"jess-geo-{rt.name}")
    return pool


def open_onnx_runtime(model: str | Path | bytes | Graph, runtime: str = "onnxruntime", device: str = "auto",
                      threads: int | None = None, streams: int | None = None, batch: int | None = None) -> OnnxRuntime | OpenVinoRuntime:
    """A runtime for an ONNX model: a ``.onnx`` path, its bytes or a :class:`Graph`.

    ``batch``: the tiles per call the caller will send (sets ONNX Runtime's default streams).

    A ``.pt`` model file is exported in memory first (any height and width; takes seconds and
    imports torch: export it once with `jess-geo export` to skip that).
    """
    if runtime not in RUNTIMES:
        raise InputError(f"Unknown runtime {runtime!r} for an ONNX model; choose one of {', '.join(RUNTIMES)}.")
    require(runtime)  # a missing runtime is reported before the graph is parsed
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() != ".onnx":
        from jess_geo.export.onnx_export import model_file_graph

        model = model_file_graph(model)
    graph = model if isinstance(model, Graph) else logits_graph(model)
    cls = OnnxRuntime if runtime == "onnxruntime" else OpenVinoRuntime
    return cls(graph, device=device, threads=threads, streams=streams, batch=batch)
