"""The runtime's own protobuf reader agrees with the onnx package on the same bytes and
refuses malformed bytes with InvalidArtifactError, never another exception."""

from __future__ import annotations

import contextlib
import re

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lstm_edge.runtime import onnx_proto
from lstm_edge.runtime.errors import InvalidArtifactError


def _attr_value(a: onnx.AttributeProto):
    return helper.get_attribute_value(a)


def assert_same(ours: onnx_proto.Model, ref: onnx.ModelProto) -> None:
    """Every field the runtime reads equals what onnx parsed."""
    assert ours.ir_version == ref.ir_version
    assert ours.opset_import == [(o.domain, o.version) for o in ref.opset_import]
    assert ours.metadata_props == [(p.key, p.value) for p in ref.metadata_props]
    if ours.graph is None:
        assert not ref.HasField("graph")
        return
    g, rg = ours.graph, ref.graph
    assert len(g.nodes) == len(rg.node)
    for n, rn in zip(g.nodes, rg.node, strict=True):
        assert (n.op_type, n.domain, n.name) == (rn.op_type, rn.domain, rn.name)
        assert n.inputs == list(rn.input) and n.outputs == list(rn.output)
        assert [a.name for a in n.attributes] == [a.name for a in rn.attribute]
        for a, ra in zip(n.attributes, rn.attribute, strict=True):
            assert a.type == ra.type
            want = _attr_value(ra)
            got = {
                onnx_proto.ATTR_FLOAT: a.f,
                onnx_proto.ATTR_INT: a.i,
                onnx_proto.ATTR_STRING: a.s,
                onnx_proto.ATTR_FLOATS: a.floats,
                onnx_proto.ATTR_INTS: a.ints,
                onnx_proto.ATTR_STRINGS: a.strings,
            }.get(a.type)
            if a.type == onnx_proto.ATTR_TENSOR:
                np.testing.assert_array_equal(a.t.to_numpy(), numpy_helper.to_array(want))
            elif a.type in (onnx_proto.ATTR_FLOAT, onnx_proto.ATTR_FLOATS):
                np.testing.assert_array_equal(np.float32(got), np.float32(want))
            else:
                assert got == want
    assert [t.name for t in g.initializers] == [t.name for t in rg.initializer]
    for t, rt in zip(g.initializers, rg.initializer, strict=True):
        assert t.dims == tuple(rt.dims) and t.data_type == rt.data_type
        want = numpy_helper.to_array(rt)
        got = t.to_numpy()
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)  # bit-exact: it is the same stored data
    for ours_vi, ref_vi in ((g.inputs, rg.input), (g.outputs, rg.output)):
        assert [v.name for v in ours_vi] == [v.name for v in ref_vi]
        for v, rv in zip(ours_vi, ref_vi, strict=True):
            tt = rv.type.tensor_type
            assert v.elem_type == tt.elem_type
            dims = tuple(
                d.dim_value if d.HasField("dim_value") else d.dim_param or None
                for d in tt.shape.dim
            )
            assert v.shape == (dims if tt.HasField("shape") else None)


@pytest.mark.parametrize("scheme", ["none", "int8", "fp16", "int8-dynamic"])
def test_reader_matches_onnx_on_every_artifact(artifacts, scheme):
    data = artifacts[scheme].read_bytes()
    assert_same(onnx_proto.parse_model(data, "m.onnx"), onnx.load_from_string(data))


def _odd_encodings_model() -> onnx.ModelProto:
    """Tensors in the non-raw fields (float_data, int32_data, int64_data), negative ints,
    every attribute kind, and a shape with an unknown dim."""
    tensors = [
        helper.make_tensor("f", TensorProto.FLOAT, [2, 2], [1.5, -2.0, 3.25, -0.0]),
        helper.make_tensor("i8", TensorProto.INT8, [3], [-128, 0, 127]),
        helper.make_tensor("i64", TensorProto.INT64, [2], [-(2**62), 2**62]),
        helper.make_tensor("h", TensorProto.FLOAT16, [2], np.array([0.5, -7], np.float16)),
        helper.make_tensor("i32", TensorProto.INT32, [2], [-1, 2**31 - 1]),
        helper.make_tensor("u8", TensorProto.UINT8, [2], [0, 255]),
        helper.make_tensor("d", TensorProto.DOUBLE, [1], [1e300]),
    ]
    node = helper.make_node(
        "Foo",
        ["a", ""],
        ["b"],
        domain="x.y",
        name="n",
        fi=1.25,
        ii=-5,
        ss="é",
        tt=helper.make_tensor("t", TensorProto.FLOAT, [1], [4.0]),
        ff=[1.0, -1.0],
        iis=[-1, 0, 2**40],
        sss=["a", "b"],
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", None, 3])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
        initializer=tensors,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"k": "v", "ключ": "значение"})
    return model


def test_reader_matches_onnx_on_non_raw_fields():
    data = _odd_encodings_model().SerializeToString()
    assert_same(onnx_proto.parse_model(data, "odd.onnx"), onnx.load_from_string(data))


def test_unpacked_repeated_fields_are_read():
    # proto2 writers may emit repeated scalars unpacked: tag per element.
    dims = b"".join(b"\x08" + bytes([d]) for d in (2, 3))  # field 1 varint, twice
    tensor = dims + b"\x10\x07" + b"\x38\x05" * 3 + b"\x38\x7f" * 3  # int64_data unpacked
    t = onnx_proto._tensor(onnx_proto._Reader(memoryview(tensor), 0, len(tensor), "t"))
    ref = TensorProto()
    ref.ParseFromString(tensor)
    assert t.dims == tuple(ref.dims) == (2, 3)
    np.testing.assert_array_equal(t.to_numpy(), numpy_helper.to_array(ref))


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"\x08", "truncated varint"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "varint longer than 64 bits"),
        (b"\x3a\x05ab", "runs past the end"),  # graph (field 7) claims 5 bytes, has 2
        (b"\x3b", "unsupported wire type 3"),  # a group
        (b"\x00", "invalid field number 0"),
        (b"\x72\x04\x0a\x02\xff\xfe", "not valid UTF-8"),  # metadata key
        (b"\x39" + b"\x00" * 8, "wire type 1 (expected 2)"),  # graph as fixed64
    ],
)
def test_malformed_bytes_name_the_file_and_the_defect(data, detail):
    with pytest.raises(InvalidArtifactError, match=re.escape(detail)) as e:
        onnx_proto.parse_model(data, "bad.onnx")
    assert "not a valid ONNX model: bad.onnx" in str(e.value)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_every_truncation_is_refused_or_agrees_with_onnx(artifacts, cut):
    data = artifacts["int8"].read_bytes()
    prefix = data[: int(cut * len(data))]
    try:
        ref = onnx.load_from_string(prefix)
    except Exception:
        ref = None
    try:
        ours = onnx_proto.parse_model(prefix, "t.onnx")
    except InvalidArtifactError:
        # Never more lenient than protobuf itself, but may be stricter.
        return
    assert ref is not None, "onnx refused bytes the runtime reader accepted"
    assert_same(ours, ref)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_invalid_artifact(data):
    # Any other exception (IndexError, struct errors, recursion) fails the test.
    with contextlib.suppress(InvalidArtifactError):
        onnx_proto.parse_model(data, "r.onnx")
