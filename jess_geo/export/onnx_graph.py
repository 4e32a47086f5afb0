"""Graph rewrites made at export time, after torch's exporter and before the export check.

smp's U-Net decoder upsamples each feature map to its skip connection's size
(``F.interpolate(x, size=skip.shape[-2:], mode="nearest")``), so the exported ``Resize`` nodes
read their output size from a chain of ``Shape``/``Gather``/``Concat`` nodes. ONNX Runtime's
blocked-layout (NCHWc) convolutions cannot take such a ``Resize`` in their layout: every
upsampling then reorders its input out of the blocked layout and the next convolution's back in
(measured on the demo network: 8 % of a batch's time in reorders). A U-Net's upsampling factors
are fixed by the encoder's strides (2 at every level for a size that is a multiple of the
network's), so :func:`constant_upsampling` states them as constant ``scales``; the graph computes
the same values and the export check compares it with PyTorch as before.

The exported softmax (ReduceMax, Sub, Exp, ReduceSum, Div; see :mod:`jess_geo.export.onnx_export`)
has its input renamed ``logits`` by :func:`name_softmax_input`, so a runtime finds the logits by
name (:func:`jess_geo.inference.onnx_runtime.logits_graph`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jess_geo.export.extras import require

LOGITS = "logits"
"""The name of the exported softmax's input (the network's logits)."""


def _static_shapes(proto: Any, tile: int) -> dict[str, list[int | None]]:
    """Every value's shape for one ``tile x tile`` input (batch 1), by ONNX shape inference."""
    onnx = require("onnx")
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for d, value in zip(dims, (1, None, tile, tile)):
        if value is not None:
            d.Clear()
            d.dim_value = value
    inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim] for v in values}


def upsampling_factors(shapes: dict[str, list[int | None]], source: str, result: str) -> tuple[int, int] | None:
    """Integer (height, width) factors from ``source``'s shape to ``result``'s (batch and bands kept), else None."""
    a, b = shapes.get(source), shapes.get(result)
    if not a or not b or len(a) != 4 or len(b) != 4 or None in a[1:] or None in b[1:] or a[1] != b[1]:
        return None
    if b[2] % a[2] or b[3] % a[3]:
        return None
    return b[2] // a[2], b[3] // a[3]


def _prune(graph: Any) -> int:
    """Drop nodes that no graph output depends on, and initializers no node reads; the nodes dropped."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(name in needed for name in node.output):
            keep.append(node)
            needed.update(name for name in node.input if name)
    dropped = len(graph.node) - len(keep)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    used = {name for node in graph.node for name in node.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return dropped


def constant_upsampling(model: bytes, tile: int) -> tuple[bytes, int]:
    """``model`` with every nearest ``Resize`` by a whole factor given constant scales; (bytes, nodes rewritten).

    The factors are read from shape inference at ``tile x tile``; a ``Resize`` that is not nearest,
    not by whole factors, or that already has constant scales is left as it is.
    """
    onnx = require("onnx")
    proto = onnx.load_from_string(model)
    shapes = _static_shapes(proto, tile)
    constants = {t.name for t in proto.graph.initializer}
    done = 0
    for node in proto.graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("mode", b"nearest") != b"nearest" or node.input[3] in constants:
            continue
        factors = upsampling_factors(shapes, node.input[0], node.output[0])
        if factors is None:
            continue
        name = f"{node.name or node.output[0]}/constant_scales"
        proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 1, *factors], dtype=np.float32), name))
        x, roi = node.input[0], node.input[1]
        del node.input[:]
        node.input.extend([x, roi, name])
        done += 1
    if done:
        _prune(proto.graph)
    return proto.SerializeToString(), done


SOFTMAX_CHAIN = ("Div", "Exp", "Sub")
"""The nodes from the graph's output back to the logits in the exported softmax ``e / sum(e)``,
``e = exp(logits - max(logits))``: each one's first input is made by the next."""


def name_softmax_input(model: bytes, name: str = LOGITS) -> bytes:
    """``model`` with the input of its final softmax (``SOFTMAX_CHAIN``, or one ``Softmax``) renamed ``name``.

    Raises:
        ValueError: the graph's output is not made by such a softmax.
    """
    onnx = require("onnx")
    proto = onnx.load_from_string(model)
    producer = {out: node for node in proto.graph.node for out in node.output}
    value = proto.graph.output[0].name
    node = producer.get(value)
    chain = ("Softmax",) if node is not None and node.op_type == "Softmax" else SOFTMAX_CHAIN
    for op in chain:
        node = producer.get(value)
        if node is None or node.op_type != op:
            raise ValueError(f"the graph's output is not a softmax over the logits (expected {op} before {value!r})")
        value = node.input[0]
    if value == name:
        return model
    for node in proto.graph.node:
        node.input[:] = [name if v == value else v for v in node.input]
        node.output[:] = [name if v == value else v for v in node.output]
    for info in proto.graph.value_info:
        if info.name == value:
            info.name = name
    return proto.SerializeToString()


def after(proto: Any, value: str) -> list[str]:
    """Names of the nodes that read ``value``, directly or through other nodes (its consumers downstream)."""
    reached, names = {value}, []
    for node in proto.graph.node:  # ONNX nodes are in topological order
        if any(v in reached for v in node.input):
            reached.update(node.output)
            names.append(node.name)
    return names
