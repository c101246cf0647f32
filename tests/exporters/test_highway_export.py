"""Exporting and quantizing a forecast model with a linear highway (ar_lags > 0): the
session helpers carry its history, the export check compares it, quantize keeps the
config tensors (and the nodes reading them) float, and refuses a float file whose highway
tensors were changed. Runtime values are tested in tests/runtime/test_forecast_highway_runtime.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from test_forecast_export import config, model_for, raw

import lstm_edge.runtime as rt
from lstm_edge.exporters.onnx_export import (
    CHECK_TOLERANCE,
    ReferenceStream,
    compare_with_reference,
    ort_session,
    run_session,
    run_steps,
    stamp_digest,
)
from lstm_edge.exporters.quantize import quantize_file
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InvalidArtifactError
from lstm_edge.runtime.format import HIGHWAY_WEIGHT
from lstm_edge.toolchain.export import build_onnx

# int8-dynamic quantizes activations per call: 3.5e-3 to 7.5e-3 measured on these tiny
# models (test_forecast_runtime.DYNAMIC_VS_TORCH); the last value of a change target is
# added in float, so the bound is the same as for levels.
DYNAMIC_VS_TORCH = 1e-1


def highway(cfg: ModelConfig, lags: int = 3) -> ModelConfig:
    rng = np.random.default_rng(0)
    coef = tuple(float(v) for v in rng.normal(0, 0.3, cfg.output_size * (1 + lags)))
    return dataclasses.replace(cfg, ar_lags=lags, ar_coef=coef)


def torch_run(model, x, state=None):
    with torch.no_grad():
        state = None if state is None else tuple(torch.from_numpy(a) for a in state)
        y, out = model(torch.from_numpy(x), state)
    return y.numpy(), *(a.numpy() for a in out)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = model_for(highway(config(layers=1)))
    path = tmp_path_factory.mktemp("hw") / "m.onnx"
    onnx.save(build_onnx(model, source_sha256="0" * 64), path)
    return model, path


def test_run_session_and_run_steps_carry_the_history(exported):
    model, path = exported
    cfg = model.config
    sess = ort_session(path)
    x = raw(cfg, 2, 9)
    h0 = np.zeros((cfg.num_layers, 2, cfg.hidden_size), np.float32)
    want, want_h, _, want_hist = torch_run(model, x)
    # No history given: a reset one, and (as for a model without highway) three values.
    y, hn, _ = run_session(sess, x, h0, h0)
    assert np.abs(y - want).max() / min(cfg.target_std) <= CHECK_TOLERANCE
    np.testing.assert_allclose(hn, want_h, rtol=0, atol=1e-5)
    y_steps, _, _ = run_steps(sess, x, h0, h0)
    np.testing.assert_allclose(y_steps, y, rtol=0, atol=1e-4)
    # Given one, it is carried and returned: two calls == one.
    reset = np.zeros((2, cfg.spec.history_size(cfg)), np.float32)
    y1, h1, c1, hist1 = run_session(sess, x[:, :4], h0, h0, reset)
    y2, h2, _, hist2 = run_steps(sess, x[:, 4:], h1, c1, hist1)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(hist2, want_hist)
    np.testing.assert_allclose(h2, want_h, rtol=0, atol=1e-5)


def test_the_export_check_compares_the_history(exported):
    model, path = exported
    cfg = model.config
    x = raw(cfg, 1, 12)
    y, h, c, history = torch_run(model, x)
    good = ReferenceStream(x[0], y, h, c, "test stream", history=history)
    for result in compare_with_reference(path, cfg, good):
        assert result.passed and result.state_err <= 1e-5
    # A history off by 0.5 shows in the state error (the outputs still pass).
    bad = dataclasses.replace(good, history=history + np.float32(0.5))
    for result in compare_with_reference(path, cfg, bad):
        assert result.passed and result.state_err == pytest.approx(0.5, abs=1e-5)
    # A reference without a history (as before the highway) compares h and c only.
    plain = dataclasses.replace(good, history=None)
    for result in compare_with_reference(path, cfg, plain):
        assert result.passed and result.state_err <= 1e-5


@pytest.mark.parametrize("ar_lags", [0, 3], ids=["plain", "highway"])
def test_int8_dynamic_of_change_targets_keeps_the_last_value_float(tmp_path, ar_lags):
    """quantize_dynamic used to turn the last-value MatMul (raw features @ NORM_LAST_SELECT)
    into a MatMulInteger on a quantized NORM_LAST_SELECT: the loader then refused the file
    (its config tensor missing). Every node reading a config tensor now stays float."""
    base = config(layers=1)
    n = base.output_size
    cfg = dataclasses.replace(
        base, target_kind="change", change_mean=(0.5,) * n, change_std=(2.0,) * n
    )
    if ar_lags:
        cfg = highway(cfg, ar_lags)
    model = model_for(cfg)
    src, out = tmp_path / "m.onnx", tmp_path / "m.int8-dynamic.onnx"
    onnx.save(build_onnx(model, source_sha256="0" * 64), src)
    quantize_file(src, out, "int8-dynamic")
    ops = {node.name: node.op_type for node in onnx.load(out).graph.node}
    assert ops["last_value"] == "MatMul"
    assert ops.get("hw_conv", "Conv") == "Conv" and ops.get("hw_select", "MatMul") == "MatMul"
    m = rt.load(out, "ort")
    x = raw(cfg, 2, 10)
    got, _ = m.step(x, m.initial_state(2))
    want = torch_run(model, x)[0]
    err = np.abs(got.astype(np.float64) - want) / np.asarray(cfg.target_std)
    assert 0 < err.max() <= DYNAMIC_VS_TORCH


def test_quantize_refuses_a_float_file_with_a_changed_highway_tensor(exported, tmp_path):
    _, path = exported
    proto = onnx.load(path)
    (t,) = [t for t in proto.graph.initializer if t.name == HIGHWAY_WEIGHT]
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(2), t.name))
    stamp_digest(proto)  # as someone editing the file would: the digest is not what fails
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, bad)
    match = rf"highway tensor '{HIGHWAY_WEIGHT}' is different from the config's ar_coef"
    for scheme in ("int8", "fp16", "int8-dynamic"):
        with pytest.raises(InvalidArtifactError, match=match):
            quantize_file(bad, tmp_path / f"q.{scheme}.onnx", scheme)
        assert not (tmp_path / f"q.{scheme}.onnx").exists()
