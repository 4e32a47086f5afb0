"""ONNX files read and edited at the protobuf wire level, so predicting with one never imports ``onnx``.

Importing the ``onnx`` package costs about 0.35 s of a predict's start-up; an ``.onnx`` model
needs only two things from it: the ``metadata_props`` (string pairs) and one small edit of the
graph (drop the final Softmax, open the spatial size). Both touch a few short fields of the
``ModelProto`` and ``GraphProto`` messages; the weights (``initializer``, most of the file) are
skipped over by length, never decoded. Field numbers are those of ``onnx/onnx.proto`` (stable
since ONNX 1.0): the parts used here are listed in :data:`FIELD`.

Every malformed or truncated message raises :class:`WireError`; callers turn it into their
one-line "corrupt or truncated" message.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

__all__ = ["FIELD", "Field", "WireError", "fields", "strings", "replace", "length_delimited", "varint"]

FIELD = {
    "model.graph": 7, "model.metadata_props": 14, "entry.key": 1, "entry.value": 2,
    "graph.node": 1, "graph.initializer": 5, "graph.input": 11, "graph.output": 12,
    "node.input": 1, "node.output": 2, "node.op_type": 4, "tensor.name": 8,
    "value_info.name": 1, "value_info.type": 2, "type.tensor_type": 1, "tensor_type.shape": 2,
    "shape.dim": 1, "dim.value": 1, "dim.param": 2,
}


class WireError(ValueError):
    """A protobuf message that cannot be decoded (damaged or truncated)."""


class Field(NamedTuple):
    """One field of a message: its number, wire type, value (ints) or payload span (bytes), raw span."""

    number: int
    wire: int
    value: int  # varint value; for length-delimited fields the payload start
    end: int  # payload end (length-delimited) or the end of the field
    start: int  # where the field's tag begins


def _read_varint(buf: bytes | memoryview, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end or shift > 63:
            raise WireError("varint runs past the end of the message")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def fields(buf: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """The fields of the message in ``buf[start:end]``, in file order (groups are refused)."""
    end = len(buf) if end is None else end
    i = start
    while i < end:
        first = i
        tag, i = _read_varint(buf, i, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, i = _read_varint(buf, i, end)
            yield Field(number, wire, value, i, first)
            continue
        if wire == 2:
            size, i = _read_varint(buf, i, end)
            if i + size > end:
                raise WireError("a length-delimited field runs past the end of the message")
            yield Field(number, wire, i, i + size, first)
            i += size
            continue
        width = {1: 8, 5: 4}.get(wire)
        if width is None or i + width > end:
            raise WireError(f"wire type {wire} is not decodable here")
        yield Field(number, wire, i, i + width, first)
        i += width


def strings(buf: bytes | memoryview, number: int, start: int = 0, end: int | None = None) -> list[str]:
    """The UTF-8 values of the length-delimited field ``number`` of a message."""
    out = []
    for f in fields(buf, start, end):
        if f.number == number and f.wire == 2:
            try:
                out.append(bytes(buf[f.value : f.end]).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise WireError("a string field is not UTF-8") from exc
    return out


def varint(n: int) -> bytes:
    """``n`` (>= 0) as a protobuf varint."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """One length-delimited field: tag, length, payload."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def replace(buf: bytes | memoryview, edits: dict[int, Callable[[bytes], bytes | None]],
            start: int = 0, end: int | None = None) -> bytes:
    """The message ``buf[start:end]`` with each length-delimited field whose number is in ``edits``
    passed through its function (the payload in, the new payload out, None drops the field); every
    other field is kept byte for byte (copied once, never decoded)."""
    view = memoryview(buf)
    out: list[bytes | memoryview] = []
    kept = None  # start of the current run of unedited fields (copied as one slice)
    last = start
    for f in fields(view, start, end):
        last = f.end
        edit = edits.get(f.number) if f.wire == 2 else None
        if edit is None:
            kept = f.start if kept is None else kept
            continue
        if kept is not None:
            out.append(view[kept : f.start])
            kept = None
        new = edit(bytes(view[f.value : f.end]))
        if new is not None:
            out.append(length_delimited(f.number, new))
    if kept is not None:
        out.append(view[kept:last])
    return b"".join(out)
