"""An int8-full artifact's integer metadata as the reader checks it: every malformed field
is refused at load with InvalidArtifactError naming the field.

Each bad file is a real int8-full artifact with its metadata edited and its content
digest stamped again (as someone crafting a file would), so the digest check passes and
the metadata parser is what refuses it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from integer_models import int8_full
from rt_helpers import save, set_meta

import lstm_edge.runtime as rt
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import META_QUANTIZATION
from lstm_edge.runtime.errors import InvalidArtifactError, UnsupportedModelError
from lstm_edge.runtime.integer import META_INTEGER


@pytest.fixture(scope="module")
def full(artifacts, tmp_path_factory):
    """(path, proto, metadata JSON as a dict) of the tiny 2 x 16 model in int8-full."""
    path = int8_full(artifacts["none"], tmp_path_factory.mktemp("full") / "m.int8-full.onnx")
    proto = onnx.load(str(path))
    doc = json.loads({p.key: p.value for p in proto.metadata_props}[META_INTEGER])
    return path, proto, doc


def test_the_untouched_file_loads_with_its_parameters(full, tmp_path):
    path, _, doc = full
    art = read_artifact(path)
    assert art.scheme == "int8-full" and art.integrity == "verified"
    scheme = art.integer
    assert len(scheme.layers) == 2 and scheme.embedding_q.shape == (12, 8)
    lay = scheme.layers[1]
    np.testing.assert_array_equal(lay.x_mult, doc["layers"][1]["x_mult"])
    np.testing.assert_array_equal(lay.cell_frac, doc["layers"][1]["cell_frac"])
    assert lay.out_shift == doc["layers"][1]["out_shift"]
    np.testing.assert_array_equal(scheme.tanh_table, doc["tanh_table"])
    # re-written through the same edit path as the bad files, unchanged, it loads the same
    again = read_artifact(_write(full, tmp_path, scheme_json(full, lambda d: None))).integer
    np.testing.assert_array_equal(again.layers[0].h_mult, scheme.layers[0].h_mult)


def scheme_json(full, edit) -> str:
    _, _, doc = full
    doc = json.loads(json.dumps(doc))  # a deep copy
    edit(doc)
    return json.dumps(doc)


def _write(full, tmp_path, text: str | None):
    _, proto, _ = full
    return save(set_meta(proto, META_INTEGER, text), tmp_path / "bad.onnx")


def _set(*keys_and_value):
    """An edit setting doc[k0][k1]... = value (the last argument)."""
    *keys, value = keys_and_value

    def edit(doc):
        node = doc
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value

    return edit


def _delete(*keys):
    def edit(doc):
        node = doc
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return edit


def _entry(index, value):
    """Replace one entry of a list."""
    return lambda v: [*v[:index], value, *v[index + 1 :]]


H4 = 64  # 4 x hidden: gate rows

CASES = {
    # case: (edit, text the message must contain)
    "wrong spec_version": (_set("spec_version", 2), r"'spec_version' is 2 \(expected 1\)"),
    "no spec_version": (_delete("spec_version"), r"'spec_version' is None \(expected 1\)"),
    "sigmoid table too short": (
        _set("sigmoid_table", lambda v: v[:256]),
        r"'sigmoid_table' must be 257 integers in \[0, 32767\] \(found 256\)",
    ),
    "sigmoid entry below 0": (
        _set("sigmoid_table", _entry(0, -1)),
        r"'sigmoid_table' must be 257 integers in \[0, 32767\] \(entry 0 is -1\)",
    ),
    "tanh entry -32768": (
        _set("tanh_table", _entry(5, -32768)),
        r"'tanh_table' must be 257 integers in \[-32767, 32767\] \(entry 5 is -32768\)",
    ),
    "tanh table missing": (_delete("tanh_table"), r"'tanh_table' must be .*the key is missing"),
    "table entry a float": (
        _set("sigmoid_table", _entry(7, 12.0)),
        r"'sigmoid_table' .* \(entry 7 is 12\.0\)",
    ),
    "one layer of two": (
        _set("layers", lambda v: v[:1]),
        r"'layers' must list 2 layers \(found 1\)",
    ),
    "layer not an object": (_set("layers", 1, []), r"layer 1 is not an object"),
    "x_mult too short": (
        _set("layers", 0, "x_mult", lambda v: v[:-1]),
        rf"layer 0: 'x_mult' must be {H4} integers in \[1073741824, 2147483647\] \(found 63\)",
    ),
    "x_mult below 2^30": (
        _set("layers", 0, "x_mult", _entry(3, 2**30 - 1)),
        r"layer 0: 'x_mult' .* \(entry 3 is 1073741823\)",
    ),
    "h_mult at 2^31": (
        _set("layers", 1, "h_mult", _entry(0, 2**31)),
        r"layer 1: 'h_mult' .* \(entry 0 is 2147483648\)",
    ),
    "x_shift 0": (
        _set("layers", 1, "x_shift", _entry(2, 0)),
        r"layer 1: 'x_shift' must be 64 integers in \[1, 62\] \(entry 2 is 0\)",
    ),
    "h_shift 63": (
        _set("layers", 0, "h_shift", _entry(9, 63)),
        r"layer 0: 'h_shift' must be 64 integers in \[1, 62\] \(entry 9 is 63\)",
    ),
    "bias beyond int32": (
        _set("layers", 0, "bias", _entry(1, 2**31)),
        r"layer 0: 'bias' must be 64 integers in \[-2147483648, 2147483647\] \(entry 1 is",
    ),
    "bias missing": (_delete("layers", 1, "bias"), r"layer 1: 'bias' .*the key is missing"),
    "cell_frac 16": (
        _set("layers", 0, "cell_frac", _entry(4, 16)),
        r"layer 0: 'cell_frac' must be 16 integers in \[0, 15\] \(entry 4 is 16\)",
    ),
    "cell_frac too long": (
        _set("layers", 0, "cell_frac", lambda v: [*v, 3]),
        r"layer 0: 'cell_frac' .* \(found 17\)",
    ),
    "out_mult out of range": (
        _set("layers", 1, "out_mult", 5),
        r"layer 1: 'out_mult' must be an integer in \[1073741824, 2147483647\] \(found 5\)",
    ),
    "out_mult a bool": (_set("layers", 1, "out_mult", True), r"layer 1: 'out_mult' .*found True"),
    "out_shift 0": (
        _set("layers", 0, "out_shift", 0),
        r"layer 0: 'out_shift' must be an integer in \[1, 62\] \(found 0\)",
    ),
    "out_shift missing": (_delete("layers", 0, "out_shift"), r"'out_shift' .*the key is missing"),
    "negative x_scale": (
        _set("layers", 0, "x_scale", -0.5),
        r"layer 0: 'x_scale' must be a positive finite number \(found -0\.5\)",
    ),
    "zero h_scale": (_set("layers", 1, "h_scale", 0), r"layer 1: 'h_scale' .*\(found 0\)"),
    "negative input_scale": (
        _set("input_scale", -1.0),
        r"'input_scale' must be a positive finite number \(found -1\.0\)",
    ),
    "input_scale missing": (_delete("input_scale"), r"'input_scale' .*the key is missing"),
    "negative head scale": (
        _set("head_scale", _entry(2, -0.01)),
        r"'head_scale' must be 12 positive finite numbers \(entry 2 is -0\.01\)",
    ),
    "head scale too short": (
        _set("head_scale", lambda v: v[:3]),
        r"'head_scale' must be 12 .* \(found 3\)",
    ),
    "embedding code 128": (
        _set("embedding_q", _entry(0, 128)),
        r"'embedding_q' must be 96 integers in \[-127, 127\] \(entry 0 is 128\)",
    ),
    "embedding of another vocabulary": (
        _set("embedding_q", lambda v: v[:-8]),
        r"'embedding_q' must be 96 integers .* \(found 88\)",
    ),
    "calibration missing": (_delete("calibration"), r"'calibration' must be an object"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_field_is_refused_naming_it(full, tmp_path, case):
    edit, message = CASES[case]
    path = _write(full, tmp_path, scheme_json(full, edit))
    with pytest.raises(InvalidArtifactError, match=message) as e:
        read_artifact(path)
    text = str(e.value)
    # the file and the metadata key come first; never the digest check
    assert text.startswith(f"{path}: metadata 'lstm_edge.quant.integer': "), text
    assert "digest" not in text


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", r"not JSON"),
        ("", r"not JSON"),
        ("[1, 2]", r"expected a JSON object \(found list\)"),
        ("null", r"expected a JSON object \(found NoneType\)"),
    ],
)
def test_metadata_that_is_not_a_json_object(full, tmp_path, text, message):
    with pytest.raises(InvalidArtifactError, match=message):
        read_artifact(_write(full, tmp_path, text))


def test_int8_full_without_its_key_is_refused(full, tmp_path):
    path = _write(full, tmp_path, None)
    with pytest.raises(InvalidArtifactError) as e:
        rt.load(path, backend="numpy")
    assert str(e.value) == (
        f"{path}: scheme 'int8-full' needs metadata 'lstm_edge.quant.integer' (its integer "
        f"parameters); the file has none"
    )


def test_the_key_without_the_scheme_is_not_read(full, artifacts, tmp_path):
    """An int8 file carrying the key (e.g. renamed by hand) is the int8 scheme: the key is
    ignored, and onnxruntime runs the graph it is."""
    _, proto, _ = full
    path = save(set_meta(proto, META_QUANTIZATION, "int8"), tmp_path / "as-int8.onnx")
    art = read_artifact(path)
    assert art.scheme == "int8" and art.integer is None
    assert rt.load(path, backend="ort").scheme == "int8"


def test_ort_refuses_the_scheme_naming_the_backends_that_run_it(full):
    path, _, _ = full
    with pytest.raises(UnsupportedModelError) as e:
        rt.load(path, backend="ort")
    assert str(e.value) == (
        f"{path}: scheme 'int8-full' is integer arithmetic that onnxruntime does not "
        f"compute; run it with backend 'numpy' or 'c'"
    )
