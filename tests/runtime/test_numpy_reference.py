"""The numpy backend against two independent references: onnx's ReferenceEvaluator running
the artifact's own graph (float, int8, fp16) and the torch model it was exported from."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator
from rt_helpers import tiny_config, tiny_model, torch_run, write_artifacts

import lstm_edge.runtime as rt
from lstm_edge.runtime.backends.numpy_ref import sigmoid
from lstm_edge.runtime.config import (
    INPUT_C0,
    INPUT_H0,
    INPUT_TOKENS,
    OUTPUT_CN,
    OUTPUT_HN,
    OUTPUT_LOGITS,
)

# Both sides compute in float32 with the same formulas but different summation orders and
# sigmoid forms; over <= 12 steps of the tiny model that differs by ~1e-7, so 1e-5 leaves
# room while a wrong gate order, bias half or activation is off by > 1e-2.
ATOL = 1e-5


def _stream(batch: int, time: int, vocab: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, (batch, time), dtype=np.int64)


def _random_state(model: rt.Model, batch: int, seed: int = 2) -> rt.State:
    rng = np.random.default_rng(seed)
    shape = (model.config.num_layers, batch, model.config.hidden_size)
    return rt.State(
        h=rng.uniform(-1, 1, shape).astype(np.float32),
        c=rng.uniform(-3, 3, shape).astype(np.float32),
    )


@pytest.mark.parametrize("scheme", ["none", "int8", "fp16"])
def test_numpy_matches_onnx_reference_evaluator(artifacts, scheme):
    model = rt.load(artifacts[scheme], "numpy")
    tokens = _stream(3, 12, model.config.vocab_size)
    state = _random_state(model, 3)
    logits, out = model.step(tokens, state)
    proto = onnx.load(artifacts[scheme])
    # onnx 1.23's evaluator implements DequantizeLinear only from opset 19 on; its int8
    # per-axis semantics are unchanged since 13, so evaluating at 19 is the same graph.
    proto.opset_import[0].version = max(proto.opset_import[0].version, 19)
    ref = ReferenceEvaluator(proto)
    want_logits, want_h, want_c = ref.run(
        [OUTPUT_LOGITS, OUTPUT_HN, OUTPUT_CN],
        {INPUT_TOKENS: tokens, INPUT_H0: state.h, INPUT_C0: state.c},
    )
    np.testing.assert_allclose(logits, want_logits, rtol=0, atol=ATOL)
    np.testing.assert_allclose(out.h, want_h, rtol=0, atol=ATOL)
    np.testing.assert_allclose(out.c, want_c, rtol=0, atol=ATOL)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_numpy_matches_torch(tmp_path, layers):
    torch_model = tiny_model(tiny_config(layers=layers), seed=layers)
    paths = write_artifacts(torch_model, tmp_path)
    model = rt.load(paths["none"], "numpy")
    tokens = _stream(2, 10, model.config.vocab_size, seed=layers)
    state = _random_state(model, 2)
    logits, out = model.step(tokens, state)
    want_logits, want_h, want_c = torch_run(torch_model, tokens, state.h, state.c)
    np.testing.assert_allclose(logits, want_logits, rtol=0, atol=ATOL)
    np.testing.assert_allclose(out.h, want_h, rtol=0, atol=ATOL)
    np.testing.assert_allclose(out.c, want_c, rtol=0, atol=ATOL)


def test_int8_numpy_is_close_to_torch_but_not_equal(artifacts, torch_model):
    """The int8 artifact runs the dequantized weights: a small, nonzero error vs torch."""
    model = rt.load(artifacts["int8"], "numpy")
    tokens = _stream(1, 20, model.config.vocab_size)
    logits, _ = model.step(tokens, model.initial_state(1))
    zero = np.zeros((2, 1, 16), np.float32)
    want, _, _ = torch_run(torch_model, tokens, zero, zero)
    err = np.abs(logits - want).max()
    # Per-channel int8 keeps each weight within scale/2 (~0.4% of the channel's max):
    # logits of the tiny model move by ~1e-3, never by 0.05; exactly 0 would mean the
    # quantized weights were never used.
    assert 1e-6 < err < 0.05


def test_sigmoid_is_finite_and_exact_at_extremes():
    x = np.array([-1e4, -100, -1, 0, 1, 100, 1e4], np.float32)
    with np.errstate(over="ignore"):  # exp(1e4) = inf in the float64 reference: 1/inf = 0
        want = 1 / (1 + np.exp(-x.astype(np.float64)))
    # float32 rounding of a value in [0, 1]: within 2 ulp of 1.0.
    np.testing.assert_allclose(sigmoid(x), want, rtol=0, atol=2.5e-7)
    assert sigmoid(x).dtype == np.float32
