"""`lstm-edge import` on hand-built ONNX files: constant subgraphs fold, plumbing is
looked through, and every kind of file that cannot stream is refused by name (one line,
exit 2, nothing written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from lstm_edge.exporters.import_check import SourceModel
from lstm_edge.exporters.import_onnx import analyze
from lstm_edge.runtime import load
from lstm_edge.toolchain.cli import app

F, H, OUT = 3, 4, 2  # features, hidden, outputs


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def build(
    layers: int = 1,
    lstm_attrs: dict | None = None,
    between: str | None = None,  # an op put between layer 0 and 1
    after_head: str | None = None,  # an op put after the head Add
    fold: bool = False,  # layer 0's W computed by Constant -> Reshape, the head by Transpose
    w_from_input: bool = False,
    nan: bool = False,
    peephole: bool = False,
    seq_lens_input: bool = False,
    recurrent_op: str = "LSTM",
    unrelated: bool = False,
    layout1: bool = False,  # LSTM layout=1: X [batch, time, in], no Transposes around it
    full_lens: bool = False,  # sequence_lens computed from the input's shape (all full)
) -> onnx.ModelProto:
    """x [batch, time, F] -> Transpose -> LSTM layers (Squeeze between) -> Transpose ->
    MatMul -> Add -> y [batch, time, OUT], batch-major, no state inputs."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Transpose", ["x"], ["x_t"], perm=[1, 0, 2], name="to_time")]
    inits = [_init("axes1", np.array([2 if layout1 else 1], np.int64))]
    if layout1:
        nodes = [helper.make_node("Identity", ["x"], ["x_t"], name="to_time")]
    if full_lens:  # lens[b] = time for every b, from Shape(x) (batch-major x)
        inits += [_init("i0", np.array([0], np.int64)), _init("i1", np.array([1], np.int64))]
        nodes += [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "i1"], ["time"], axis=0),
            helper.make_node("Gather", ["shape", "i0"], ["batch"], axis=0),
            helper.make_node("Expand", ["time", "batch"], ["lens64"]),
            helper.make_node("Cast", ["lens64"], ["lens_full"], to=TensorProto.INT32),
        ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", F])]
    x, width = "x_t", F
    for layer in range(layers):
        w = rng.normal(0, 0.5, (1, 4 * H, width)).astype(np.float32)
        if nan and layer == 0:
            w[0, 1, 0] = np.nan
        if fold and layer == 0:
            nodes.append(
                helper.make_node(
                    "Constant", [], ["w_flat"], value=_init("w_flat_v", w.reshape(-1)), name="c"
                )
            )
            inits.append(_init("w_shape", np.array(w.shape, np.int64)))
            nodes.append(helper.make_node("Reshape", ["w_flat", "w_shape"], ["W0"], name="rs"))
        elif w_from_input and layer == 0:
            inputs.append(helper.make_tensor_value_info("W0", TensorProto.FLOAT, list(w.shape)))
        else:
            inits.append(_init(f"W{layer}", w))
        gates = 3 if recurrent_op == "GRU" else 4
        inits.append(_init(f"R{layer}", rng.normal(0, 0.5, (1, gates * H, H)).astype(np.float32)))
        inits.append(_init(f"B{layer}", rng.normal(0, 0.1, (1, 2 * gates * H)).astype(np.float32)))
        ins = [x, f"W{layer}", f"R{layer}", f"B{layer}"]
        if full_lens:
            ins.append("lens_full")
        if seq_lens_input:
            inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["batch"]))
            ins.append("lens")
        if peephole:
            inits.append(_init("P", np.zeros((1, 3 * H), np.float32)))
            ins += ["", "", "", "P"][len(ins) - 4 :]
        attrs = {"hidden_size": H, "layout": int(layout1), **(lstm_attrs or {})}
        y = f"y{layer}"
        nodes.append(helper.make_node(recurrent_op, ins, [y], name=f"rnn{layer}", **attrs))
        nodes.append(helper.make_node("Squeeze", [y, "axes1"], [f"s{layer}"], name=f"sq{layer}"))
        x, width = f"s{layer}", H
        if between and layer == 0:
            nodes.append(helper.make_node(between, [x], ["mid"], name="between"))
            x = "mid"
    if unrelated:  # a second LSTM reading the input too, added to the first one's output
        inits += [_init(n, np.ones(s, np.float32)) for n, s in (("W9", (1, 4 * H, F)),
                  ("R9", (1, 4 * H, H)))]  # fmt: skip
        nodes.append(helper.make_node("LSTM", ["x_t", "W9", "R9"], ["y9"], name="other",
                                      hidden_size=H))  # fmt: skip
        nodes.append(helper.make_node("Squeeze", ["y9", "axes1"], ["s9"], name="sq9"))
        nodes.append(helper.make_node("Add", [x, "s9"], ["sum"], name="sum"))
        x = "sum"
    to_batch = ("Identity", {}) if layout1 else ("Transpose", {"perm": [1, 0, 2]})
    nodes.append(helper.make_node(to_batch[0], [x], ["y_b"], name="to_batch", **to_batch[1]))
    head = rng.normal(0, 0.5, (H, OUT)).astype(np.float32)
    if fold:
        inits.append(_init("head_t", head.T.copy()))
        nodes.append(helper.make_node("Transpose", ["head_t"], ["head"], perm=[1, 0], name="ht"))
    else:
        inits.append(_init("head", head))
    inits.append(_init("bias", rng.normal(0, 0.1, OUT).astype(np.float32)))
    nodes.append(helper.make_node("MatMul", ["y_b", "head"], ["mm"], name="head_mm"))
    nodes.append(helper.make_node("Add", ["mm", "bias"], ["out" if after_head else "y"]))
    if after_head:
        nodes.append(helper.make_node(after_head, ["out"], ["y"], name="after"))
    graph = helper.make_graph(
        nodes,
        "src",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "time", OUT])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def run_import(tmp_path: Path, proto: onnx.ModelProto | bytes):
    src, out = tmp_path / "src.onnx", tmp_path / "out.onnx"
    src.write_bytes(proto if isinstance(proto, bytes) else proto.SerializeToString())
    r = CliRunner().invoke(app, ["import", str(src), "-o", str(out)])
    return r, out


@pytest.mark.parametrize(
    "kwargs", [{"fold": True}, {"layout1": True}, {"full_lens": True}], ids=str
)
def test_hand_built_file_imports_and_agrees(tmp_path: Path, kwargs: dict) -> None:
    proto = build(layers=2, **kwargs)
    onnx.checker.check_model(proto)
    r, out = run_import(tmp_path, proto)
    assert r.exit_code == 0, r.output
    config = load(out).config
    assert (config.task, config.features, config.targets) == ("forecast", ("x0", "x1", "x2"),
                                                             ("y0", "y1"))  # fmt: skip
    imp = analyze(proto, "src")
    src = SourceModel(proto, imp, "src")
    x = np.random.default_rng(0).normal(size=(400, F)).astype(np.float32)
    want = src.call(x, [])[0]
    for backend in ("numpy", "ort"):
        got, _ = load(out, backend=backend).step(x[None], load(out).initial_state(1))
        assert float(np.abs(got[0] - want).max()) <= 1e-5


def test_feature_statistics_given_by_the_user_are_kept(tmp_path: Path) -> None:
    """A source that computes in standard units: with --stats the artifact takes raw values
    and returns raw forecasts, and agrees with the source on the normalized stream."""
    stats = tmp_path / "stats.json"
    stats.write_text(
        '{"features": ["a", "b", "c"], "feature_mean": [10, -2, 0.5], "feature_std": [2, 0.1, 1],'
        ' "targets": ["p", "q"], "target_mean": [100, 0], "target_std": [5, 0.01]}'
    )
    proto = build()
    src, out = tmp_path / "src.onnx", tmp_path / "out.onnx"
    src.write_bytes(proto.SerializeToString())
    r = CliRunner().invoke(app, ["import", str(src), "-o", str(out), "--stats", str(stats)])
    assert r.exit_code == 0, r.output
    model = load(out)
    assert model.config.features == ("a", "b", "c") and model.config.target_mean == (100, 0)
    raw = np.random.default_rng(1).normal([10, -2, 0.5], [2, 0.1, 1], (200, 3)).astype(np.float32)
    imp = analyze(proto, "src")
    standard = SourceModel(proto, imp, "src").call((raw - [10, -2, 0.5]) / [2, 0.1, 1], [])[0]
    got, _ = model.step(raw[None], model.initial_state(1))
    want = standard * [5, 0.01] + [100, 0]
    assert float((np.abs(got[0] - want) / [5, 0.01]).max()) <= 1e-5


REFUSED = [
    ("bidirectional", dict(lstm_attrs={"direction": "bidirectional"}), "direction 'bidirectional'"),
    ("reverse", dict(lstm_attrs={"direction": "reverse"}), "direction 'reverse'"),
    ("clip", dict(lstm_attrs={"clip": 3.0}), "attribute clip=3.0"),
    (
        "activations",
        dict(lstm_attrs={"activations": ["Sigmoid", "Relu", "Tanh"]}),
        "custom activations ['sigmoid', 'relu', 'tanh']",
    ),
    ("input_forget", dict(lstm_attrs={"input_forget": 1}), "input_forget=1"),
    ("peephole", dict(peephole=True), "peephole weights P 'P'"),
    ("sequence_lens", dict(seq_lens_input=True), "sequence_lens from graph input 'lens'"),
    ("gru", dict(recurrent_op="GRU"), "node 'rnn0' (GRU) is a recurrent op"),
    ("between", dict(layers=2, between="Relu"), "node 'between' (Relu) between LSTM layers"),
    ("head", dict(after_head="Softmax"), "node 'after' (Softmax) after the last LSTM"),
    ("weights input", dict(w_from_input=True), "comes from graph input 'W0'"),
    ("nan", dict(nan=True), "tensor 'W0' has 1 NaN/Inf value(s)"),
    ("huge", dict(lstm_attrs={"hidden_size": 10**9}), "hidden_size 1000000000"),
    ("unrelated", dict(unrelated=True), "node 'rnn0' (LSTM) and node 'other' (LSTM) are unrelated"),
]


@pytest.mark.parametrize(("kind", "kwargs", "message"), REFUSED, ids=[k for k, *_ in REFUSED])
def test_what_cannot_stream_is_refused_by_name(tmp_path, kind, kwargs, message) -> None:
    r, out = run_import(tmp_path, build(**kwargs))
    assert r.exit_code == 2, r.output
    assert message in r.output, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("error: ")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src.onnx"]


def test_not_onnx_no_lstm_and_huge_tensor_dims_are_refused(tmp_path: Path) -> None:
    r, out = run_import(tmp_path, b"\x00\xffnot a model at all")
    assert r.exit_code == 2 and "src.onnx is not a valid ONNX model" in r.output
    no_lstm = build()
    no_lstm.graph.node[1].op_type = "MatMul"  # the LSTM node becomes something else
    r, out = run_import(tmp_path, no_lstm)
    assert r.exit_code == 2 and "has no LSTM node" in r.output, r.output
    huge = build()
    w = next(t for t in huge.graph.initializer if t.name == "R0")
    w.dims[1] = 10**7  # declared far beyond the data it holds
    r, out = run_import(tmp_path, huge)
    assert r.exit_code == 2 and "'R0' declares dims [1, 10000000, 4]" in r.output, r.output
    assert not out.exists()


def test_layers_of_different_hidden_sizes_are_refused(tmp_path: Path) -> None:
    proto = build(layers=2)
    inits = {t.name: t for t in proto.graph.initializer}
    for name, shape in (("W1", (1, 20, H)), ("R1", (1, 20, 5)), ("B1", (1, 40))):
        inits[name].CopyFrom(_init(name, np.zeros(shape, np.float32)))
    lstm1 = next(n for n in proto.graph.node if n.name == "rnn1")
    lstm1.attribute[0].CopyFrom(helper.make_attribute("hidden_size", 5))
    r, out = run_import(tmp_path, proto)
    assert r.exit_code == 2 and "the LSTM layers have hidden sizes [4, 5]" in r.output, r.output
    assert not out.exists()
