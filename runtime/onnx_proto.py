"""A small, strict reader for the parts of an ONNX ModelProto the runtime needs.

The runtime must not depend on the `onnx` package, and malformed protobufs have crashed
onnxruntime, so the bytes are parsed here first: every varint, length and tag is
bounds-checked and any defect raises `InvalidArtifactError` naming the file. Fields we do
not need are skipped (still bounds-checked); tensor payloads stay zero-copy memoryviews.
Field numbers follow onnx/onnx.proto.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstm_edge.runtime.errors import InvalidArtifactError

# TensorProto.DataType values and their storage.
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64 = 1, 2, 3, 4, 5, 6, 7
STRING, BOOL, FLOAT16, DOUBLE, UINT32, UINT64, BFLOAT16 = 8, 9, 10, 11, 12, 13, 16
DTYPES: dict[int, np.dtype] = {
    FLOAT: np.dtype("<f4"),
    UINT8: np.dtype("u1"),
    INT8: np.dtype("i1"),
    UINT16: np.dtype("<u2"),
    INT16: np.dtype("<i2"),
    INT32: np.dtype("<i4"),
    INT64: np.dtype("<i8"),
    BOOL: np.dtype("?"),
    FLOAT16: np.dtype("<f2"),
    DOUBLE: np.dtype("<f8"),
    UINT32: np.dtype("<u4"),
    UINT64: np.dtype("<u8"),
}
# Types whose non-raw values live in int32_data (float16 as its bit pattern).
_INT32_DATA_TYPES = (UINT8, INT8, UINT16, INT16, INT32, BOOL, FLOAT16)

# AttributeProto.AttributeType values.
ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_GRAPH = 1, 2, 3, 4, 5
ATTR_FLOATS, ATTR_INTS, ATTR_STRINGS = 6, 7, 8

DATA_LOCATION_EXTERNAL = 1

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class ProtoError(InvalidArtifactError):
    """The bytes are not a well-formed protobuf of the expected message."""


# ---- messages ----------------------------------------------------------------------------


@dataclass
class Tensor:
    """TensorProto: payload fields are kept as found, decoded by `to_numpy`."""

    name: str = ""
    dims: tuple[int, ...] = ()
    data_type: int = 0
    raw_data: memoryview | None = None
    float_data: list[float] | np.ndarray = field(default_factory=list)
    int32_data: list[int] = field(default_factory=list)
    int64_data: list[int] = field(default_factory=list)
    double_data: list[float] | np.ndarray = field(default_factory=list)
    uint64_data: list[int] = field(default_factory=list)
    has_segment: bool = False
    external_data: list[tuple[str, str]] = field(default_factory=list)
    data_location: int = 0

    @property
    def is_external(self) -> bool:
        return self.data_location == DATA_LOCATION_EXTERNAL or bool(self.external_data)

    def _typed_values(self) -> list | np.ndarray:
        """The one non-raw field that holds values of this data type (per onnx.proto)."""
        if self.data_type == FLOAT:
            return self.float_data
        if self.data_type in _INT32_DATA_TYPES:
            return self.int32_data
        if self.data_type == INT64:
            return self.int64_data
        if self.data_type == DOUBLE:
            return self.double_data
        return self.uint64_data  # UINT32, UINT64

    def stored_count(self) -> int:
        """How many elements the payload holds (for checking against dims).

        Values in a field that does not belong to the data type (e.g. int64_data of a
        FLOAT tensor) do not count: `to_numpy` would not read them.
        """
        if self.raw_data is not None:
            itemsize = DTYPES[self.data_type].itemsize
            return -1 if len(self.raw_data) % itemsize else len(self.raw_data) // itemsize
        return len(self._typed_values())

    def to_numpy(self) -> np.ndarray:
        """Decode the payload. The caller has already checked dtype and element count."""
        dtype = DTYPES[self.data_type]
        if self.raw_data is not None:
            arr = np.frombuffer(self.raw_data, dtype=dtype)
        elif self.data_type == FLOAT16:
            arr = np.asarray(self.int32_data, dtype=np.int64).astype("<u2").view(dtype)
        elif self.data_type in _INT32_DATA_TYPES:
            arr = np.asarray(self.int32_data, dtype=np.int64).astype(dtype)
        elif self.data_type in (UINT32, UINT64):
            arr = np.asarray(self.uint64_data, dtype=np.uint64).astype(dtype)
        else:  # FLOAT, INT64, DOUBLE: stored as the dtype itself
            arr = np.asarray(self._typed_values(), dtype=dtype)
        return arr.reshape(self.dims)


@dataclass
class Attribute:
    name: str = ""
    type: int = 0
    f: float = 0.0
    i: int = 0
    s: bytes = b""
    t: Tensor | None = None
    floats: list[float] = field(default_factory=list)
    ints: list[int] = field(default_factory=list)
    strings: list[bytes] = field(default_factory=list)
    has_graph: bool = False  # subgraphs are never needed; we only note their presence


@dataclass
class Node:
    op_type: str = ""
    domain: str = ""
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)


@dataclass
class ValueInfo:
    """A graph input/output: elem_type 0 and shape None when the file does not say."""

    name: str = ""
    elem_type: int = 0
    shape: tuple[int | str | None, ...] | None = None  # dim_value, dim_param or unknown
    is_tensor: bool = False


@dataclass
class Graph:
    name: str = ""
    nodes: list[Node] = field(default_factory=list)
    initializers: list[Tensor] = field(default_factory=list)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    sparse_initializer_count: int = 0


@dataclass
class Model:
    ir_version: int = 0
    opset_import: list[tuple[str, int]] = field(default_factory=list)
    metadata_props: list[tuple[str, str]] = field(default_factory=list)
    graph: Graph | None = None
    function_count: int = 0


# ---- wire format -------------------------------------------------------------------------


class _Reader:
    """Walks the fields of one message in buf[start:end]."""

    def __init__(self, buf: memoryview, start: int, end: int, what: str) -> None:
        self.buf, self.pos, self.end, self.what = buf, start, end, what

    def fail(self, detail: str) -> ProtoError:
        return ProtoError(f"{detail} (in {self.what} at byte {self.pos})")

    def varint(self) -> int:
        result, shift, buf = 0, 0, self.buf
        while True:
            if self.pos >= self.end:
                raise self.fail("truncated varint")
            byte = buf[self.pos]
            self.pos += 1
            if shift == 63 and byte > 1:  # the 10th byte may only carry the top bit
                raise self.fail("varint longer than 64 bits")
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    def take(self, n: int) -> int:
        """Advance n bytes, returning where they start."""
        if n > self.end - self.pos:
            raise self.fail(f"length {n} runs past the end of the data")
        start = self.pos
        self.pos += n
        return start

    def fields(self):
        """Yield (field_number, wire_type, value): int for scalars, (start, end) for LEN."""
        while self.pos < self.end:
            tag = self.varint()
            number, wire = tag >> 3, tag & 7
            if number == 0 or number > 0x1FFFFFFF:
                raise self.fail(f"invalid field number {number}")
            if wire == _VARINT:
                yield number, wire, self.varint()
            elif wire == _I64:
                start = self.take(8)
                yield number, wire, int.from_bytes(self.buf[start : start + 8], "little")
            elif wire == _LEN:
                n = self.varint()
                start = self.take(n)
                yield number, wire, (start, start + n)
            elif wire == _I32:
                start = self.take(4)
                yield number, wire, int.from_bytes(self.buf[start : start + 4], "little")
            else:  # groups (3, 4) are not used by ONNX; 6 and 7 do not exist
                raise self.fail(f"unsupported wire type {wire} for field {number}")

    def expect(self, number: int, wire: int, expected: int) -> None:
        if wire != expected:
            raise self.fail(f"field {number} has wire type {wire} (expected {expected})")

    def sub(self, span: tuple[int, int], what: str) -> _Reader:
        return _Reader(self.buf, span[0], span[1], f"{self.what}.{what}")

    def string(self, span: tuple[int, int]) -> str:
        try:
            return bytes(self.buf[span[0] : span[1]]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("string is not valid UTF-8") from None

    def repeated_ints(self, wire: int, value, out: list[int], bits: int) -> None:
        """Append a repeated int field's value(s): packed (LEN) or one varint."""
        if wire == _VARINT:
            out.append(_signed(value, bits, self))
        elif wire == _LEN:
            sub = _Reader(self.buf, value[0], value[1], self.what)
            while sub.pos < sub.end:
                out.append(_signed(sub.varint(), bits, sub))
        else:
            raise self.fail(f"repeated integer field has wire type {wire}")

    def repeated_fixed(self, wire: int, value, out: list, fixed: int, dtype: str) -> None:
        """Append a repeated float/double field's value(s): packed or one fixed-size value."""
        if wire == (_I32 if fixed == 4 else _I64):
            out.append(float(np.frombuffer(value.to_bytes(fixed, "little"), dtype=dtype)[0]))
        elif wire == _LEN:
            start, end = value
            if (end - start) % fixed:
                raise self.fail(f"packed field length {end - start} is not a multiple of {fixed}")
            out.extend(np.frombuffer(self.buf[start:end], dtype=dtype).tolist())
        else:
            raise self.fail(f"repeated float field has wire type {wire}")


def _signed(value: int, bits: int, reader: _Reader) -> int:
    """Protobuf int32/int64 are two's complement in a 64-bit varint."""
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32 and not -(1 << 31) <= value < 1 << 31:
        raise reader.fail(f"value {value} does not fit an int32 field")
    return value


def _int(r: _Reader, number: int, wire: int, value, bits: int = 64) -> int:
    r.expect(number, wire, _VARINT)
    return _signed(value, bits, r)


def _string_pair(r: _Reader, span, what: str) -> tuple[str, str]:
    """StringStringEntryProto: key = 1, value = 2."""
    sub = r.sub(span, what)
    key = val = ""
    for number, wire, value in sub.fields():
        if number in (1, 2):
            sub.expect(number, wire, _LEN)
            if number == 1:
                key = sub.string(value)
            else:
                val = sub.string(value)
    return key, val


def _tensor(r: _Reader) -> Tensor:
    t = Tensor()
    dims: list[int] = []
    for number, wire, value in r.fields():
        if number == 1:
            r.repeated_ints(wire, value, dims, 64)
        elif number == 2:
            t.data_type = _int(r, number, wire, value, 32)
        elif number == 3:
            t.has_segment = True
        elif number == 4:
            r.repeated_fixed(wire, value, t.float_data, 4, "<f4")
        elif number == 5:
            r.repeated_ints(wire, value, t.int32_data, 32)
        elif number == 7:
            r.repeated_ints(wire, value, t.int64_data, 64)
        elif number == 8:
            r.expect(number, wire, _LEN)
            t.name = r.string(value)
        elif number == 9:
            r.expect(number, wire, _LEN)
            t.raw_data = r.buf[value[0] : value[1]]
        elif number == 10:
            r.repeated_fixed(wire, value, t.double_data, 8, "<f8")
        elif number == 11:
            # uint64: no sign conversion, so collect raw varints.
            raw: list[int] = []
            r.repeated_ints(wire, value, raw, 64)
            t.uint64_data.extend(v % (1 << 64) for v in raw)
        elif number == 13:
            r.expect(number, wire, _LEN)
            t.external_data.append(_string_pair(r, value, "external_data"))
        elif number == 14:
            t.data_location = _int(r, number, wire, value, 32)
    t.dims = tuple(dims)
    return t


def _attribute(r: _Reader) -> Attribute:
    a = Attribute()
    for number, wire, value in r.fields():
        if number == 1:
            r.expect(number, wire, _LEN)
            a.name = r.string(value)
        elif number == 20:
            a.type = _int(r, number, wire, value, 32)
        elif number == 2:
            r.expect(number, wire, _I32)
            a.f = float(np.frombuffer(value.to_bytes(4, "little"), dtype="<f4")[0])
        elif number == 3:
            a.i = _int(r, number, wire, value)
        elif number == 4:
            r.expect(number, wire, _LEN)
            a.s = bytes(r.buf[value[0] : value[1]])
        elif number == 5:
            r.expect(number, wire, _LEN)
            a.t = _tensor(r.sub(value, f"attribute {a.name!r}"))
        elif number in (6, 11):
            a.has_graph = True
        elif number == 7:
            r.repeated_fixed(wire, value, a.floats, 4, "<f4")
        elif number == 8:
            r.repeated_ints(wire, value, a.ints, 64)
        elif number == 9:
            r.expect(number, wire, _LEN)
            a.strings.append(bytes(r.buf[value[0] : value[1]]))
    return a


def _node(r: _Reader) -> Node:
    n = Node()
    for number, wire, value in r.fields():
        if number in (1, 2, 3, 4, 7):
            r.expect(number, wire, _LEN)
            text = r.string(value)
            if number == 1:
                n.inputs.append(text)
            elif number == 2:
                n.outputs.append(text)
            elif number == 3:
                n.name = text
            elif number == 4:
                n.op_type = text
            else:
                n.domain = text
        elif number == 5:
            r.expect(number, wire, _LEN)
            n.attributes.append(_attribute(r.sub(value, f"node {n.op_type!r} attribute")))
    return n


def _shape(r: _Reader) -> tuple[int | str | None, ...]:
    """TensorShapeProto: dim = 1 (Dimension: dim_value = 1, dim_param = 2)."""
    dims: list[int | str | None] = []
    for number, wire, value in r.fields():
        if number != 1:
            continue
        r.expect(number, wire, _LEN)
        sub = r.sub(value, "dim")
        dim: int | str | None = None
        for dn, dw, dv in sub.fields():
            if dn == 1:
                dim = _int(sub, dn, dw, dv)
            elif dn == 2:
                sub.expect(dn, dw, _LEN)
                dim = sub.string(dv)
        dims.append(dim)
    return tuple(dims)


def _value_info(r: _Reader) -> ValueInfo:
    v = ValueInfo()
    for number, wire, value in r.fields():
        if number == 1:
            r.expect(number, wire, _LEN)
            v.name = r.string(value)
        elif number == 2:  # TypeProto: tensor_type = 1
            r.expect(number, wire, _LEN)
            tp = r.sub(value, f"type of {v.name!r}")
            for tn, tw, tv in tp.fields():
                if tn != 1:
                    continue
                tp.expect(tn, tw, _LEN)
                v.is_tensor = True
                tt = tp.sub(tv, "tensor_type")
                for n2, w2, v2 in tt.fields():
                    if n2 == 1:
                        v.elem_type = _int(tt, n2, w2, v2, 32)
                    elif n2 == 2:
                        tt.expect(n2, w2, _LEN)
                        v.shape = _shape(tt.sub(v2, "shape"))
    return v


def _graph(r: _Reader) -> Graph:
    g = Graph()
    for number, wire, value in r.fields():
        if number == 1:
            r.expect(number, wire, _LEN)
            g.nodes.append(_node(r.sub(value, f"node[{len(g.nodes)}]")))
        elif number == 2:
            r.expect(number, wire, _LEN)
            g.name = r.string(value)
        elif number == 5:
            r.expect(number, wire, _LEN)
            g.initializers.append(_tensor(r.sub(value, f"initializer[{len(g.initializers)}]")))
        elif number in (11, 12):
            r.expect(number, wire, _LEN)
            target = g.inputs if number == 11 else g.outputs
            target.append(_value_info(r.sub(value, "input" if number == 11 else "output")))
        elif number == 15:
            g.sparse_initializer_count += 1
    return g


def parse_model(data: bytes | memoryview, source: str) -> Model:
    """Parse serialized ModelProto bytes; `source` names the file in error messages."""
    buf = memoryview(data).cast("B")
    r = _Reader(buf, 0, len(buf), "model")
    m = Model()
    try:
        for number, wire, value in r.fields():
            if number == 1:
                m.ir_version = _int(r, number, wire, value)
            elif number == 7:
                r.expect(number, wire, _LEN)
                if m.graph is not None:
                    raise r.fail("more than one graph")
                m.graph = _graph(r.sub(value, "graph"))
            elif number == 8:
                r.expect(number, wire, _LEN)
                sub = r.sub(value, "opset_import")
                domain, version = "", 0
                for on, ow, ov in sub.fields():
                    if on == 1:
                        sub.expect(on, ow, _LEN)
                        domain = sub.string(ov)
                    elif on == 2:
                        version = _int(sub, on, ow, ov)
                m.opset_import.append((domain, version))
            elif number == 14:
                r.expect(number, wire, _LEN)
                m.metadata_props.append(_string_pair(r, value, "metadata_props"))
            elif number == 25:
                m.function_count += 1
    except ProtoError as e:
        raise ProtoError(f"not a valid ONNX model: {source}: {e}") from None
    return m
