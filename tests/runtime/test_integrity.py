"""Issue 16 point 2: the content digest (META_DIGEST) written by export and quantize and
verified by every load. A file changed after export (a weight bit-flipped in transit or in
flash, a node rewired, a metadata value edited) is refused with its own message on every
backend; a file written before digests loads as "absent"; the digest follows the content,
not the protobuf encoding. The digest check runs before the config, op, wiring and weight
checks, so a tampered file that was not restamped gets the digest message."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from rt_helpers import SCHEMES, copy, initializer, save, set_meta
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize import quantize_file
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import META_PRODUCER_VERSION, META_SOURCE_SHA256, lstm_w
from lstm_edge.runtime.digest import model_digest
from lstm_edge.runtime.errors import IntegrityError, InvalidArtifactError
from lstm_edge.runtime.format import META_DIGEST
from lstm_edge.toolchain.cli import app

runner = CliRunner()
MISMATCH = "content digest mismatch: the file was changed or corrupted after export"


def _meta(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def _tampered(src, edit, tmp_path, name="tampered.onnx"):
    """A copy of `src` changed by `edit`, written as is (the old digest kept)."""
    proto = onnx.load(str(src))
    edit(proto)
    return save(proto, tmp_path / name, restamp=False)


def _flip_bit(proto: onnx.ModelProto) -> None:
    """One bit of the largest initializer flipped (the top exponent bit for floats)."""
    t = max(proto.graph.initializer, key=lambda t: numpy_helper.to_array(t).nbytes)
    a = numpy_helper.to_array(t).copy()
    raw = a.reshape(-1).view(np.uint8)
    raw[a.itemsize - 1] ^= 0x40
    t.CopyFrom(numpy_helper.from_array(a, t.name))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_carries_a_digest_that_verifies(artifacts, scheme):
    path = artifacts[scheme]
    meta = _meta(onnx.load(str(path)))
    assert meta[META_DIGEST] == model_digest(path.read_bytes())
    assert len(meta[META_DIGEST]) == 64
    assert read_artifact(path).integrity == "verified"
    r = runner.invoke(app, ["info", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["integrity"] == "verified (content digest matches)"


@pytest.mark.parametrize("backend", ["numpy", "ort", "c"])
def test_a_weight_flipped_to_2_6e10_is_refused_on_every_backend(artifacts, tmp_path, backend):
    def edit(proto):
        t = initializer(proto, lstm_w(0))
        a = numpy_helper.to_array(t).copy()
        a[0, 0, 0] = 2.6e10
        t.CopyFrom(numpy_helper.from_array(a, t.name))

    path = _tampered(artifacts["none"], edit, tmp_path)
    with pytest.raises(IntegrityError) as info:
        rt.load(path, backend)
    message = str(info.value)
    assert message.startswith(f"{path}: {MISMATCH} (expected '")
    expected = _meta(onnx.load(str(artifacts["none"])))[META_DIGEST]
    assert f"expected {expected!r}, found {model_digest(path.read_bytes())!r}" in message


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_bit_flip_is_refused_in_every_scheme(artifacts, tmp_path, scheme):
    path = _tampered(artifacts[scheme], _flip_bit, tmp_path)
    with pytest.raises(IntegrityError, match=MISMATCH):
        read_artifact(path)
    r = runner.invoke(app, ["info", str(path)])
    assert r.exit_code == 2
    assert MISMATCH in r.output and str(path.name) in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("scheme", ["none", "int8", "fp16"])
def test_a_rewired_node_gets_the_digest_message_first(artifacts, tmp_path, scheme):
    def edit(proto):
        (node,) = [n for n in proto.graph.node if n.name == "slice_h0_l0"]
        node.input[0] = "c0"

    path = _tampered(artifacts[scheme], edit, tmp_path)
    with pytest.raises(IntegrityError, match=MISMATCH):
        read_artifact(path)
    # Restamped (crafted on purpose), the wiring check still refuses it.
    proto = onnx.load(str(path))
    restamped = save(proto, tmp_path / "restamped.onnx")
    with pytest.raises(InvalidArtifactError, match="not the canonical graph") as info:
        read_artifact(restamped)
    assert not isinstance(info.value, IntegrityError)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (META_SOURCE_SHA256, "f" * 64),
        (META_PRODUCER_VERSION, "9.9.9"),
        ("someone.else", "added"),
        (META_DIGEST, "0" * 64),
    ],
)
def test_a_changed_metadata_value_is_refused(artifacts, tmp_path, key, value):
    proto = set_meta(onnx.load(str(artifacts["int8"])), key, value)
    path = save(proto, tmp_path / "m.onnx", restamp=False)
    with pytest.raises(IntegrityError, match=MISMATCH):
        read_artifact(path)


def test_a_file_without_a_digest_loads_as_absent(artifacts, tmp_path):
    proto = set_meta(onnx.load(str(artifacts["none"])), META_DIGEST, None)
    path = save(proto, tmp_path / "old.onnx")
    assert read_artifact(path).integrity == "absent"
    r = runner.invoke(app, ["info", str(path)])
    assert r.exit_code == 0, r.output
    assert "absent (written before digests)" in r.output


def test_the_digest_follows_content_not_encoding(artifacts, tmp_path):
    """float_data instead of raw_data, metadata in another order, another graph-level
    field order: the same content, the same digest."""
    proto = onnx.load(str(artifacts["none"]))
    original = _meta(proto)[META_DIGEST]
    other = copy(proto)
    for t in other.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            values = numpy_helper.to_array(t).reshape(-1).tolist()
            t.ClearField("raw_data")
            t.float_data.extend(values)
    props = [(p.key, p.value) for p in other.metadata_props][::-1]
    del other.metadata_props[:]
    for k, v in props:
        other.metadata_props.add(key=k, value=v)
    data = other.SerializeToString()
    assert data != proto.SerializeToString()
    path = tmp_path / "reencoded.onnx"
    path.write_bytes(data)
    assert model_digest(data) == original
    assert read_artifact(path).integrity == "verified"


@pytest.mark.parametrize("scheme", ["int8", "fp16", "int8-dynamic"])
def test_quantize_refuses_a_corrupted_float_file(artifacts, tmp_path, scheme):
    """Quantizing must not launder a corrupted float file into one with a fresh digest."""
    src = _tampered(artifacts["none"], _flip_bit, tmp_path, "m.onnx")
    out = tmp_path / f"m.{scheme}.onnx"
    with pytest.raises(IntegrityError) as info:
        quantize_file(src, out, scheme)
    assert str(info.value).startswith(f"{src}: {MISMATCH}")
    assert not out.exists()
