"""read_artifact / load refuse every bad model before anything runs (bad-inputs rows 10-14),
and extract the same weights the exporter wrote."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from rt_helpers import copy, initializer, save, set_meta

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize import symmetric_int8
from lstm_edge.runtime import artifact as artifact_mod
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import (
    EMBEDDING,
    HEAD_BIAS,
    HEAD_WEIGHT,
    META_CONFIG,
    META_FORMAT_VERSION,
    META_QUANTIZATION,
    META_SOURCE_SHA256,
    SCALE_SUFFIX,
    ModelConfig,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.errors import (
    FormatVersionError,
    InvalidArtifactError,
    UnsupportedModelError,
)


@pytest.fixture(scope="module")
def float_proto(artifacts):
    return onnx.load(artifacts["none"])


# ---- what a good artifact yields --------------------------------------------------------


def test_float_weights_are_the_initializers(artifacts, float_proto):
    art = read_artifact(artifacts["none"])
    assert art.scheme == "none" and art.quantized == {}
    for name, value in art.weights.items():
        np.testing.assert_array_equal(value, numpy_helper.to_array(initializer(float_proto, name)))
        assert not value.flags.writeable
    assert len(art.sha256) == 64 and art.config.num_layers == 2


def test_int8_weights_are_dequantized_and_payload_kept(artifacts, float_proto):
    art = read_artifact(artifacts["int8"])
    w = numpy_helper.to_array(initializer(float_proto, lstm_r(1)))
    q, scale = symmetric_int8(w, 1)  # the exporter's own quantizer, independent of ours
    np.testing.assert_array_equal(art.quantized[lstm_r(1)].q, q)
    np.testing.assert_array_equal(art.quantized[lstm_r(1)].scale, scale)
    assert art.quantized[lstm_r(1)].axis == 1 and art.quantized[EMBEDDING].axis == 0
    np.testing.assert_array_equal(art.weights[lstm_r(1)], q.astype(np.float32) * scale[:, None])


def test_fp16_weights_are_cast(artifacts, float_proto):
    art = read_artifact(artifacts["fp16"])
    w = numpy_helper.to_array(initializer(float_proto, HEAD_WEIGHT))
    np.testing.assert_array_equal(art.weights[HEAD_WEIGHT], w.astype(np.float16).astype(np.float32))


def test_int8_dynamic_is_read_but_only_ort_runs_it(artifacts):
    art = read_artifact(artifacts["int8-dynamic"])
    assert art.scheme == "int8-dynamic" and art.weights == {}
    assert "DynamicQuantizeLSTM" in art.ops
    with pytest.raises(UnsupportedModelError, match=r"'numpy' backend cannot run ops \[.*Dyn"):
        rt.load(artifacts["int8-dynamic"], "numpy")


# ---- row 10: not ONNX, empty, truncated, too big ----------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is text\n", bytes(range(256)) * 4, b"\x00" * 1000],
    ids=["empty", "text", "binary", "zeros"],
)
def test_not_onnx_is_refused(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(InvalidArtifactError, match="not a valid ONNX model") as e:
        rt.load(path)
    assert str(path) in str(e.value)


def test_truncated_model_is_refused(tmp_path, artifacts):
    data = artifacts["none"].read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])  # cuts through the graph's initializers
    with pytest.raises(InvalidArtifactError, match=r"not a valid ONNX model: .*cut\.onnx"):
        rt.load(path)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(0, 10**9), junk=st.binary(max_size=64))
def test_any_prefix_or_random_bytes_are_refused(tmp_path, artifacts, cut, junk):
    data = artifacts["int8"].read_bytes()
    path = tmp_path / "fuzz.onnx"
    for content in (data[: cut % len(data)], junk):
        path.write_bytes(content)
        with pytest.raises(InvalidArtifactError, match=r"fuzz\.onnx"):
            read_artifact(path)


@pytest.mark.parametrize("scheme", ["none", "int8"])
def test_every_cut_through_the_metadata_is_refused(tmp_path, artifacts, scheme):
    """Metadata is the end of the file: a cut at any byte of it, entry boundaries included,
    is refused; it never leaves a complete file that only lacks its digest (which would
    load as one written before digests)."""
    data = artifacts[scheme].read_bytes()
    meta = sum(len(p.SerializeToString()) + 3 for p in onnx.load_from_string(data).metadata_props)
    path = tmp_path / "cut.onnx"
    for end in range(len(data) - meta - 8, len(data)):
        path.write_bytes(data[:end])
        with pytest.raises(InvalidArtifactError, match=r"cut\.onnx"):
            read_artifact(path)


def test_file_over_the_size_cap_is_refused_before_reading(tmp_path, artifacts):
    size = artifacts["none"].stat().st_size
    with pytest.raises(InvalidArtifactError, match=f"{size} bytes, over the 1000-byte limit"):
        read_artifact(artifacts["none"], max_bytes=1000)


def test_folder_and_missing_file_are_refused(tmp_path):
    with pytest.raises(InvalidArtifactError, match="not a regular file"):
        rt.load(tmp_path)
    with pytest.raises(InvalidArtifactError, match="cannot read model"):
        rt.load(tmp_path / "absent.onnx")


# ---- row 11: foreign ONNX, missing metadata, unknown version -----------------------------


def test_foreign_onnx_without_metadata_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "a"], ["b"])],
        "foreign",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = save(model, tmp_path / "foreign.onnx")
    with pytest.raises(InvalidArtifactError, match="has no lstm-edge metadata: missing keys"):
        rt.load(path)


def test_missing_metadata_key_is_named(tmp_path, float_proto):
    path = save(set_meta(float_proto, META_SOURCE_SHA256, None), tmp_path / "m.onnx")
    with pytest.raises(InvalidArtifactError, match=f"missing keys \\['{META_SOURCE_SHA256}'\\]"):
        rt.load(path)


def test_unknown_format_version_names_expected_and_found(tmp_path, float_proto):
    path = save(set_meta(float_proto, META_FORMAT_VERSION, "2"), tmp_path / "m.onnx")
    with pytest.raises(FormatVersionError, match=r"format version '2' .*expected 1\)"):
        rt.load(path)


def test_config_with_unknown_version_or_garbage_is_refused(tmp_path, float_proto):
    bad = {**_config(float_proto).to_dict(), "format_version": 7}
    path = save(set_meta(float_proto, META_CONFIG, json.dumps(bad)), tmp_path / "a.onnx")
    with pytest.raises(FormatVersionError, match=r"lstm_edge.config.*7.*expected 1"):
        rt.load(path)
    path = save(set_meta(float_proto, META_CONFIG, "{not json"), tmp_path / "b.onnx")
    with pytest.raises(InvalidArtifactError, match="not valid JSON"):
        rt.load(path)


def test_unknown_scheme_is_refused(tmp_path, float_proto):
    path = save(set_meta(float_proto, META_QUANTIZATION, "int3"), tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError, match=r"scheme 'int3' is unknown"):
        rt.load(path)


def _config(proto: onnx.ModelProto) -> ModelConfig:
    return ModelConfig.from_json({p.key: p.value for p in proto.metadata_props}[META_CONFIG])


# ---- row 12: external data ---------------------------------------------------------------


def _external(proto: onnx.ModelProto, name: str, location: str) -> tuple[onnx.ModelProto, bytes]:
    """`proto` with initializer `name` moved to external file `location`; its bytes."""
    out = copy(proto)
    t = initializer(out, name)
    payload = numpy_helper.to_array(t).tobytes()
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(payload)))):
        t.external_data.add(key=key, value=value)
    return out, payload


def test_external_data_is_refused_by_default(tmp_path, float_proto):
    proto, payload = _external(float_proto, EMBEDDING, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(payload)
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError, match=r"external file 'weights.bin'.*refused"):
        rt.load(path)


def test_external_data_beside_the_model_loads_when_allowed(tmp_path, artifacts, float_proto):
    proto, payload = _external(float_proto, EMBEDDING, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(payload)
    path = save(proto, tmp_path / "m.onnx")
    got = read_artifact(path, allow_external_data=True)
    want = read_artifact(artifacts["none"])
    np.testing.assert_array_equal(got.weights[EMBEDDING], want.weights[EMBEDDING])
    # onnxruntime would resolve the location itself, unchecked: the ort backend refuses.
    with pytest.raises(UnsupportedModelError, match="self-contained"):
        rt.load(path, "ort", allow_external_data=True)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "symlinked-folder"])
def test_external_data_outside_the_folder_is_refused_before_any_open(
    tmp_path, float_proto, monkeypatch, kind
):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    secret = tmp_path / "secret.bin"
    proto, payload = _external(float_proto, EMBEDDING, "x")
    secret.write_bytes(payload)  # a file the model must never be able to read
    location = {
        "dotdot": "../secret.bin",
        "absolute": str(secret),
        "symlink": "link.bin",
        "symlinked-folder": "sub/secret.bin",
    }[kind]
    if kind == "symlink":
        (model_dir / "link.bin").symlink_to(secret)
    if kind == "symlinked-folder":
        (model_dir / "sub").symlink_to(tmp_path)
    proto, _ = _external(float_proto, EMBEDDING, location)
    path = save(proto, model_dir / "m.onnx")
    opened = []
    real_open = os.open
    monkeypatch.setattr(
        artifact_mod.os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k)
    )
    with pytest.raises(InvalidArtifactError, match="refused") as e:
        read_artifact(path, allow_external_data=True)
    assert repr(location) in str(e.value)
    assert opened == []  # refused before any external file was opened


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_external_data_that_is_not_a_regular_file_is_refused_without_hanging(tmp_path, float_proto):
    proto, _ = _external(float_proto, EMBEDDING, "weights.bin")
    os.mkfifo(tmp_path / "weights.bin")  # a blocking open would wait for a writer forever
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(InvalidArtifactError, match=r"'weights.bin'\): not a regular file"):
        read_artifact(path, allow_external_data=True)


# ---- row 13: ops, opsets, attributes -----------------------------------------------------


def test_unsupported_op_is_listed(tmp_path, float_proto):
    proto = copy(float_proto)
    add = next(n for n in proto.graph.node if n.op_type == "Add")
    add.op_type = "Sum"  # same inputs, different op
    proto.graph.node.append(helper.make_node("Relu", ["logits"], ["unused"]))
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError, match=r"unsupported ops \['Relu', 'Sum'\]"):
        rt.load(path)


def test_contrib_ops_are_refused_outside_int8_dynamic(tmp_path, artifacts):
    proto = set_meta(onnx.load(artifacts["int8-dynamic"]), META_QUANTIZATION, "int8")
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError, match=r"'com\.microsoft'"):
        rt.load(path, "ort")


def test_unsupported_opset_is_refused(tmp_path, float_proto):
    proto = copy(float_proto)
    proto.opset_import[0].version = 9
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError, match=r"opset 9 is not supported \(expected 13"):
        rt.load(path)


@pytest.mark.parametrize(
    ("attr", "value"),
    [("direction", "bidirectional"), ("clip", 3.0), ("activations", ["Relu", "Tanh", "Tanh"])],
)
def test_lstm_variants_the_backends_do_not_implement_are_refused(
    tmp_path, float_proto, attr, value
):
    proto = copy(float_proto)
    lstm = next(n for n in proto.graph.node if n.op_type == "LSTM")
    lstm.attribute.append(helper.make_attribute(attr, value))
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError, match=f"attribute {attr}="):
        rt.load(path)


# ---- row 14: sizes vs dims, overflowing dims, config vs weights --------------------------


def test_tensor_whose_payload_does_not_match_its_dims_is_refused(tmp_path, float_proto):
    proto = copy(float_proto)
    t = initializer(proto, EMBEDDING)
    t.dims[1] += 1
    path = save(proto, tmp_path / "m.onnx")
    v, e = t.dims[0], t.dims[1]
    with pytest.raises(InvalidArtifactError, match=rf"'{EMBEDDING}' has dims \[{v}, {e}\].*holds"):
        rt.load(path)


def test_values_in_a_field_of_another_type_are_refused(tmp_path, float_proto):
    # A FLOAT tensor whose values sit in int64_data: the right count in the wrong field,
    # which would otherwise decode as an empty array (a ValueError, not a typed error).
    proto = copy(float_proto)
    t = initializer(proto, HEAD_BIAS)
    size = numpy_helper.to_array(t).size
    t.ClearField("raw_data")
    t.int64_data.extend([1] * size)
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(InvalidArtifactError, match=rf"'{HEAD_BIAS}' has dims \[{size}\].*holds 0"):
        rt.load(path)


def test_overflowing_dims_are_refused(tmp_path, float_proto):
    proto = copy(float_proto)
    t = initializer(proto, EMBEDDING)
    t.dims[:] = [2**40, 2**40]
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(InvalidArtifactError, match="elements, over the"):
        rt.load(path)


def test_config_that_disagrees_with_the_graph_is_refused(tmp_path, float_proto):
    config = _config(float_proto)
    bigger = ModelConfig(**{**config.to_dict(), "vocab": config.vocab, "hidden_size": 32})
    proto = set_meta(float_proto, META_CONFIG, bigger.to_json())
    path = save(proto, tmp_path / "a.onnx")
    with pytest.raises(InvalidArtifactError, match=r"'h0' has shape \[2, 'batch', 16\]"):
        rt.load(path)
    # Without declared input/output shapes the weights themselves disagree.
    for v in (*proto.graph.input, *proto.graph.output):
        v.type.tensor_type.ClearField("shape")
    path = save(proto, tmp_path / "b.onnx")
    with pytest.raises(
        InvalidArtifactError,
        match=r"'lstm\.0\.W' is float32 \[1, 64, 8\] \(expected float32 \[1, 128, 8\] from",
    ):
        rt.load(path)


def test_weight_of_the_wrong_shape_is_named(tmp_path, float_proto):
    proto = copy(float_proto)
    old = initializer(proto, lstm_w(0))
    w = numpy_helper.to_array(old)[:, :, :-1]  # one input column short
    old.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w), lstm_w(0)))
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(InvalidArtifactError, match=rf"'{lstm_w(0)}' is float32 \[1, 64, 7\]"):
        rt.load(path)


def test_nan_weights_are_refused(tmp_path, float_proto):
    proto = copy(float_proto)
    t = initializer(proto, HEAD_WEIGHT)
    w = numpy_helper.to_array(t).copy()
    w[0, 0] = np.nan
    t.CopyFrom(numpy_helper.from_array(w, HEAD_WEIGHT))
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(InvalidArtifactError, match=f"'{HEAD_WEIGHT}' contains NaN"):
        rt.load(path)


@pytest.mark.parametrize("bad", [0.0, -0.5, np.inf, np.nan])
def test_zero_negative_or_non_finite_scale_is_refused(tmp_path, artifacts, bad):
    # Row 19 on the reading side: a scale that would zero or poison a channel.
    proto = onnx.load(artifacts["int8"])
    t = initializer(proto, lstm_r(0) + SCALE_SUFFIX)
    scale = numpy_helper.to_array(t).copy()
    scale[5] = bad
    t.CopyFrom(numpy_helper.from_array(scale, t.name))
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(InvalidArtifactError, match=rf"'{lstm_r(0)}'.scale: scale\[5\] is {bad}"):
        rt.load(path)
