"""The loader accepts only the canonical graph of the artifact's config (runtime/graph.py).

The numpy and C backends compute from the config and the logical weights; onnxruntime
computes from the graph. A file whose nodes are wired otherwise (state inputs swapped, a
stage skipped, an extra op) would make them disagree, so `read_artifact` refuses it for
every backend, naming the first node that differs. Each variant below is a change an
attacker or a broken tool could make that keeps every weight name and shape intact.
"""

from __future__ import annotations

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper
from rt_helpers import save

import lstm_edge.runtime as rt
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InvalidArtifactError, LstmEdgeError
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM


def _node(proto: onnx.ModelProto, name: str) -> onnx.NodeProto:
    (node,) = [n for n in proto.graph.node if n.name == name]
    return node


def _swap_inputs(name: str, i: int, j: int):
    def edit(proto):
        node = _node(proto, name)
        node.input[i], node.input[j] = node.input[j], node.input[i]

    return edit


def _set_input(name: str, i: int, value: str):
    def edit(proto):
        _node(proto, name).input[i] = value

    return edit


def _swap_state_outputs(proto):
    hn, cn = _node(proto, "hn"), _node(proto, "cn")
    hn.output[0], cn.output[0] = cn.output[0], hn.output[0]


def _state_passed_through(proto):
    _node(proto, "hn").input[:] = ["h0.l0", "h0.l1"]


def _negate_main_output(proto):
    """A Mul(-1) after the head: the graph's output is -logits."""
    out = proto.graph.output[0].name
    last = next(n for n in proto.graph.node if out in n.output)
    last.output[0] = "pre_" + out
    proto.graph.initializer.append(numpy_helper.from_array(_f32(-1.0), "evil.minus_one"))
    proto.graph.node.append(helper.make_node("Mul", ["pre_" + out, "evil.minus_one"], [out]))


def _f32(v):
    import numpy as np

    return np.array([v], np.float32)


def _second_embedding(proto):
    """Gather from another (float) table of the embedding's shape."""
    import numpy as np

    table = np.ones((12, 8), np.float32)  # the tiny model: vocab 12, embed 8
    proto.graph.initializer.append(numpy_helper.from_array(table, "evil.embedding"))
    _node(proto, "embed").input[0] = "evil.embedding"


def _changed_constant(proto):
    """Layer 1 slices layer 0's state (const.l1.start = 0)."""
    const = next(t for t in proto.graph.initializer if t.name == "const.l1.start")
    const.CopyFrom(numpy_helper.from_array(_i64(0), "const.l1.start"))


def _i64(v):
    import numpy as np

    return np.array([v], np.int64)


def _changed_attribute(proto):
    node = _node(proto, "to_batch_major")
    node.attribute[0].ints[:] = [0, 1, 2]


CHAR_LM_VARIANTS = {
    "h0 and c0 swapped into layer 0": _set_input("slice_h0_l0", 0, "c0"),
    "hn and cn swapped": _swap_state_outputs,
    "state passed through unchanged": _state_passed_through,
    "logits negated by an extra Mul": _negate_main_output,
    "Gather from a second embedding": _second_embedding,
    "layer 1 skips layer 0": _set_input("lstm_l1", 0, "x0"),
    "the head reads layer 0": _set_input("to_batch_major", 0, "x1"),
    "head bias and head output swapped": _swap_inputs("head_bias", 0, 1),
    "a canonical constant changed": _changed_constant,
    "a transpose's perm changed": _changed_attribute,
}

FORECAST_VARIANTS = {
    "normalization scale and shift swapped": lambda proto: _swap_norm_in(proto),
    "input normalization skipped": _set_input("to_time_major", 0, "features"),
    "output denormalization skipped": _set_input("norm_out_add", 0, "head_out"),
}


@pytest.fixture(scope="module")
def forecast_float(tmp_path_factory):
    cfg = ModelConfig(
        task="forecast",
        features=("a", "b"),
        targets=("b",),
        feature_mean=(1.0, 2.0),
        feature_std=(2.0, 3.0),
        target_mean=(2.0,),
        target_std=(3.0,),
        hidden_size=4,
        num_layers=2,
    )
    path = tmp_path_factory.mktemp("fc") / "m.onnx"
    onnx.save(build_onnx(EdgeLSTM(cfg)), path)
    return path


def _variant(src, edit, tmp_path):
    proto = onnx.load(str(src))
    edit(proto)
    path = tmp_path / "variant.onnx"
    save(proto, path)  # restamped: the wiring check, not the digest, must refuse it
    return path


@pytest.mark.parametrize("scheme", ["none", "int8", "fp16"])
@pytest.mark.parametrize("what", sorted(CHAR_LM_VARIANTS))
def test_a_char_lm_graph_wired_otherwise_is_refused(artifacts, tmp_path, what, scheme):
    path = _variant(artifacts[scheme], CHAR_LM_VARIANTS[what], tmp_path)
    with pytest.raises(InvalidArtifactError, match=str(path)):
        read_artifact(path)


@pytest.mark.parametrize("what", sorted(FORECAST_VARIANTS))
def test_a_forecast_graph_wired_otherwise_is_refused(forecast_float, tmp_path, what):
    path = _variant(forecast_float, FORECAST_VARIANTS[what], tmp_path)
    with pytest.raises(InvalidArtifactError, match="not the canonical graph"):
        read_artifact(path)


def _swap_norm_in(proto):
    mul, add = _node(proto, "norm_in_mul"), _node(proto, "norm_in_add")
    mul.input[1], add.input[1] = add.input[1], mul.input[1]


@pytest.mark.parametrize("backend", ["numpy", "ort", "c"])
def test_every_backend_refuses_it_naming_the_first_difference(artifacts, tmp_path, backend):
    path = _variant(artifacts["int8"], _set_input("slice_h0_l0", 0, "c0"), tmp_path)
    with pytest.raises(InvalidArtifactError) as info:
        rt.load(path, backend)
    message = str(info.value)
    assert "node" in message and "Slice(c0," in message and "expected Slice(h0," in message


def test_canonical_files_of_every_scheme_load(artifacts, forecast_float):
    for scheme in ("none", "int8", "fp16"):
        assert read_artifact(artifacts[scheme]).scheme == scheme
    assert read_artifact(forecast_float).config.task == "forecast"


# ---- structure-aware fuzzing --------------------------------------------------------------


def _mutate(proto: onnx.ModelProto, data: st.DataObject) -> str:
    """One random structural edit of the graph (what a fuzzer aware of ONNX does); returns
    what it did."""
    graph = proto.graph
    nodes = list(graph.node)
    names = sorted(
        {v for n in nodes for v in (*n.input, *n.output) if v}
        | {t.name for t in graph.initializer}
        | {i.name for i in graph.input}
    )
    kind = data.draw(st.sampled_from(["input", "output", "drop", "dup", "swap", "attr", "op"]))
    k = data.draw(st.integers(0, len(nodes) - 1))
    node = graph.node[k]
    if kind == "input" and node.input:
        i = data.draw(st.integers(0, len(node.input) - 1))
        node.input[i] = data.draw(st.sampled_from(names))
    elif kind == "output":
        node.output[0] = data.draw(st.sampled_from(names))
    elif kind == "drop":
        del graph.node[k]
    elif kind == "dup":
        graph.node.insert(k, nodes[k])
    elif kind == "swap":
        j = data.draw(st.integers(0, len(nodes) - 1))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(graph.node[k])
        b.CopyFrom(graph.node[j])
        graph.node[k].CopyFrom(b)
        graph.node[j].CopyFrom(a)
    elif kind == "attr" and node.attribute:
        attr = node.attribute[0]
        if attr.ints:
            attr.ints[0] = data.draw(st.integers(-3, 3))
        else:
            attr.i = data.draw(st.integers(-3, 3))
    else:
        node.op_type = data.draw(st.sampled_from(["Add", "Mul", "Identity", "Sub"]))
    return f"{kind} at node {k}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_graphs_are_refused_or_compute_as_the_canonical_one(artifacts, data):
    """A mutated file either is refused with a typed error naming it, or (when the edit
    changed nothing that matters, e.g. a node swapped with itself) computes exactly what
    the canonical file computes, on numpy and on onnxruntime alike."""
    import tempfile
    from pathlib import Path

    import numpy as np

    proto = onnx.load(str(artifacts["int8"]))
    what = _mutate(proto, data)
    with tempfile.TemporaryDirectory() as tmp:
        # Restamped with a valid digest, as a forger would: the checks behind it must hold.
        path = save(proto, Path(tmp) / "fuzzed.onnx")
        try:
            read_artifact(path)
        except LstmEdgeError as e:
            assert str(path) in str(e), (what, str(e))
            return
        tokens = np.arange(6).reshape(2, 3) % 12
        want = rt.load(artifacts["int8"], "numpy")
        want_out, _ = want.step(tokens, want.initial_state(2))
        for backend in ("numpy", "ort"):
            m = rt.load(path, backend)
            out, _ = m.step(tokens, m.initial_state(2))
            np.testing.assert_allclose(out, want_out, rtol=0, atol=1e-5, err_msg=what)
