"""Metadata of exported ONNX models: the model file's JSON plus the keys QGIS Deepness reads.

An exported ``.onnx`` file carries, as ONNX ``metadata_props`` (string key -> string value):

- ``jess_geo``: the model file's metadata as JSON (the keys ``jess-geo info --json`` prints)
  plus an ``onnx`` entry describing the graph (input layout and normalisation, output, size,
  opset, precision, the export check).
- The keys Deepness reads for a segmentation model, each a JSON value (Deepness ``json.loads``
  them): ``model_type`` ("Segmentor"), ``class_names`` ({output channel: name}, consecutive
  from 0 as Deepness requires), ``resolution`` (cm/px, only for models with a ground sampling
  distance), ``tile_size`` (the key Deepness's code reads) and ``tiles_size`` (the spelling of
  its documentation), ``tiles_overlap`` (percent of the tile), ``standardization_mean`` /
  ``standardization_std`` and ``seg_thresh`` / ``seg_small_segment`` (0: plain argmax).

Normalisation is *stated, not folded in*: the graph takes ``(x - mean) / std`` per band, which
is what the jess-geo pipeline hands every runtime (``Runtime.logits``). Deepness divides the raw
values by 255 and then standardises with the given mean and std, so it gets the same input when
those are ``mean / 255`` and ``std / 255``: ``(x / 255 - m / 255) / (s / 255) = (x - m) / s``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from jess_geo.errors import ModelFileError
from jess_geo.export.onnx_wire import FIELD, WireError, fields, strings

META_KEY = "jess_geo"
ONNX_FORMAT_VERSION = 1
# the keys every jess-geo model file has (the same as models.modelfile.REQUIRED_KEYS; a test checks)
REQUIRED_KEYS = ("architecture", "bands", "normalization", "classes", "resolution", "tile_size", "overlap")
DEEPNESS_KEYS = (
    "model_type", "class_names", "resolution", "tile_size", "tiles_size", "tiles_overlap",
    "standardization_mean", "standardization_std", "seg_thresh", "seg_small_segment",
)


def deepness_properties(meta: Mapping[str, Any], tile_size: int) -> dict[str, str]:
    """The Deepness segmentation keys for a model with metadata ``meta`` exported at ``tile_size``."""
    norm = meta["normalization"]
    props: dict[str, Any] = {
        "model_type": "Segmentor",
        "class_names": {str(k): str(c["name"]) for k, c in enumerate(meta["classes"])},
        "tile_size": int(tile_size),
        "tiles_size": int(tile_size),
        "tiles_overlap": int(round(100 * int(meta["overlap"]) / int(tile_size))),
        "standardization_mean": [float(m) / 255.0 for m in norm["mean"]],
        "standardization_std": [float(s) / 255.0 for s in norm["std"]],
        "seg_thresh": 0.0,
        "seg_small_segment": 0,
    }
    gsd = (meta.get("resolution") or {}).get("gsd")
    if gsd:
        props["resolution"] = round(float(gsd) * 100.0, 6)
    return {k: json.dumps(v) for k, v in props.items()}


def onnx_properties(meta: Mapping[str, Any], graph: Mapping[str, Any], tile_size: int) -> dict[str, str]:
    """Every metadata property of an exported file: our JSON (``meta`` + ``onnx``: ``graph``) and Deepness's."""
    ours = {**dict(meta), "onnx": {"format_version": ONNX_FORMAT_VERSION, **dict(graph)}}
    return {META_KEY: json.dumps(ours, sort_keys=True), **deepness_properties(meta, tile_size)}


def read_onnx_properties(path: str | Path) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file, read at the protobuf wire level (no ``onnx`` import;
    the weights are skipped over, not decoded)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model file {path} does not exist; pass an .onnx file written by `jess-geo export`.")
    if not path.is_file():
        raise ModelFileError(f"Model file {path} is a folder, not a file; pass an .onnx file written by `jess-geo export`.")
    try:
        data = path.read_bytes()
        props, graph = model_properties(data)
    except (WireError, OSError):
        raise ModelFileError(f"Model file {path} is not a readable ONNX file (corrupt or truncated); export it again with `jess-geo export`.") from None
    if graph is None or not any(f.number == FIELD["graph.node"] for f in fields(data, *graph)):
        raise ModelFileError(f"Model file {path} holds no ONNX graph (corrupt or not an ONNX file); export it again with `jess-geo export`.")
    return props


def model_properties(data: bytes) -> tuple[dict[str, str], tuple[int, int] | None]:
    """A serialised ModelProto's ``metadata_props`` and the span of its graph (None: no graph).

    Raises :class:`~jess_geo.export.onnx_wire.WireError` for a damaged or truncated message.
    """
    props: dict[str, str] = {}
    graph = None
    for f in fields(data):
        if f.wire != 2:
            continue
        if f.number == FIELD["model.metadata_props"]:
            key = strings(data, FIELD["entry.key"], f.value, f.end)
            value = strings(data, FIELD["entry.value"], f.value, f.end)
            props[key[-1] if key else ""] = value[-1] if value else ""
        elif f.number == FIELD["model.graph"]:
            graph = (f.value, f.end)
    return props, graph


def metadata_from_properties(props: Mapping[str, str], path: str | Path) -> dict[str, Any]:
    """Our metadata from an ONNX file's properties; a file without it is a one-line ModelFileError."""
    if META_KEY not in props:
        raise ModelFileError(
            f"{Path(path).name} is an ONNX model without jess-geo metadata (classes, bands, normalisation); "
            "export it with `jess-geo export MODEL.pt OUT.onnx`."
        )
    try:
        meta = json.loads(props[META_KEY])
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{Path(path).name} has unreadable jess-geo metadata; export it again with `jess-geo export`.")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{Path(path).name} lacks metadata {missing}; export it again with `jess-geo export`.")
    version = (meta.get("onnx") or {}).get("format_version", 0)
    if isinstance(version, int) and version > ONNX_FORMAT_VERSION:
        raise ModelFileError(f"{Path(path).name} needs a newer jess-geo (ONNX format {version}); upgrade jess-geo.")
    return meta


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported ``.onnx`` model: the same keys as a ``.pt`` model file, plus ``onnx``."""
    return metadata_from_properties(read_onnx_properties(path), path)
