"""The content digest of an lstm-edge artifact (metadata key META_DIGEST).

A SHA-256 over the artifact's content as the runtime's own reader (`onnx_proto`) parses
it, not over the file's bytes: the same content gives the same digest however protobuf
encodes it (field order, packed or unpacked repeated fields, raw_data or typed fields,
varint widths). The exporters compute it from their proto serialized and parsed by the
same reader (`model_digest`); every load recomputes it from what it checked
(`content_digest`), so a weight, node, graph input/output or metadata value that was
changed or corrupted after export (in transit, in flash) is refused with its own message.

It guards against corruption, not against an attacker, who can recompute it: the
loader's other checks (canonical wiring, shapes, finite weights) still run on every file.

The recipe (version tag "lstm-edge content digest 1"). Every item is framed as its type
letter, an 8-byte little-endian length and its bytes, so no two contents frame alike:
strings are UTF-8 ("s"), byte strings as they are ("b"), integers in decimal ("i"),
floats as their float32 little-endian bits ("f"); a list is its length ("i") then its items.
In this order:
1. the tag, the ModelProto's ir_version and its opset_import list (domain, version), in
   file order;
2. metadata: every key except META_DIGEST, sorted by key: key, value;
3. the graph's name; its nodes in order: op_type, domain, name, inputs, outputs,
   attributes in order (name, type, then f, i, s, the tensor t as in 4 or "-" if none,
   floats, ints, strings, and whether it has a subgraph);
4. the initializers sorted by name: name, data type, dims, then the little-endian bytes of
   their values (as decoded, wherever they were stored; external data included);
5. graph inputs, then graph outputs, in order: name, whether it is a tensor type, element
   type, and the shape ("-" if none, else each dim: a dim_value, a dim_param, or "?").
Not covered, since no reader uses them: doc strings, producer name/version fields (the
producer version is in the metadata), value_info, node and graph fields the reader skips.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import numpy as np

from lstm_edge.runtime import onnx_proto as op
from lstm_edge.runtime.format import META_DIGEST

DIGEST_TAG = "lstm-edge content digest 1"


class _Hasher:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def item(self, kind: bytes, data: bytes) -> None:
        self.h.update(kind + len(data).to_bytes(8, "little") + data)

    def s(self, text: str) -> None:
        self.item(b"s", text.encode("utf-8", "surrogatepass"))

    def b(self, data: bytes) -> None:
        self.item(b"b", bytes(data))

    def i(self, value: int) -> None:
        self.item(b"i", str(int(value)).encode())

    def f(self, value: float) -> None:
        self.item(b"f", np.float32(value).astype("<f4").tobytes())

    def strings(self, values) -> None:
        self.i(len(values))
        for v in values:
            self.s(v)


def _tensor_values(h: _Hasher, value: np.ndarray) -> None:
    a = np.ascontiguousarray(value)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    h.b(a.tobytes())


def _attribute_tensor(h: _Hasher, t: op.Tensor | None) -> None:
    if t is None:
        h.s("-")
        return
    h.s(t.name)
    h.i(t.data_type)
    h.i(len(t.dims))
    for d in t.dims:
        h.i(d)
    ok = (
        t.data_type in op.DTYPES
        and not t.is_external
        and all(d >= 0 for d in t.dims)
        and t.stored_count() == math.prod(t.dims)
    )
    if ok:
        _tensor_values(h, t.to_numpy())
    else:
        h.s("?")  # not decodable; such a tensor is refused where it would be used


def content_digest(model: op.Model, tensors: Mapping[str, np.ndarray]) -> str:
    """The hex digest of `model` (parsed by `onnx_proto`) whose initializers decode to
    `tensors` (name -> array, as the loader's checks decoded them)."""
    h = _Hasher()
    h.s(DIGEST_TAG)
    h.i(model.ir_version)
    h.i(len(model.opset_import))
    for domain, version in model.opset_import:
        h.s(domain)
        h.i(version)
    meta = sorted((k, v) for k, v in model.metadata_props if k != META_DIGEST)
    h.i(len(meta))
    for key, value in meta:
        h.s(key)
        h.s(value)
    graph = model.graph or op.Graph()
    h.s(graph.name)
    h.i(len(graph.nodes))
    for n in graph.nodes:
        h.s(n.op_type)
        h.s(n.domain)
        h.s(n.name)
        h.strings(n.inputs)
        h.strings(n.outputs)
        h.i(len(n.attributes))
        for a in n.attributes:
            h.s(a.name)
            h.i(a.type)
            h.f(a.f)
            h.i(a.i)
            h.b(a.s)
            _attribute_tensor(h, a.t)
            h.i(len(a.floats))
            h.b(np.asarray(a.floats, dtype="<f4").tobytes())
            h.i(len(a.ints))
            for v in a.ints:
                h.i(v)
            h.i(len(a.strings))
            for v in a.strings:
                h.b(v)
            h.i(int(a.has_graph))
    types = {t.name: t for t in graph.initializers}
    h.i(len(tensors))
    for name in sorted(tensors):
        value = tensors[name]
        t = types.get(name)
        h.s(name)
        h.i(t.data_type if t is not None else 0)
        h.i(value.ndim)
        for d in value.shape:
            h.i(d)
        _tensor_values(h, value)
    for values in (graph.inputs, graph.outputs):
        h.i(len(values))
        for v in values:
            h.s(v.name)
            h.i(int(v.is_tensor))
            h.i(v.elem_type)
            if v.shape is None:
                h.s("-")
                continue
            h.i(len(v.shape))
            for d in v.shape:
                if d is None:
                    h.s("?")
                elif isinstance(d, str):
                    h.s(d)
                else:
                    h.i(d)
    return h.h.hexdigest()


def mismatch_message(where: str, expected: str, found: str) -> str:
    """The one message for a digest that does not match (`expected` is from the file, so
    it is cut short in case it is something else entirely)."""
    return (
        f"{where}: content digest mismatch: the file was changed or corrupted after export "
        f"(expected {expected[:64]!r}, found {found!r})"
    )


def model_digest(data: bytes, source: str = "model") -> str:
    """The content digest of serialized ModelProto bytes with self-contained initializers
    (what the exporters write), parsed by the runtime's reader."""
    model = op.parse_model(data, source)
    graph = model.graph or op.Graph()
    tensors = {}
    for t in graph.initializers:
        if t.is_external or t.data_type not in op.DTYPES:
            raise ValueError(f"{source}: initializer {t.name!r} cannot be digested here")
        tensors[t.name] = t.to_numpy()
    return content_digest(model, tensors)
