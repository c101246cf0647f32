"""The forecast linear highway (config ar_lags > 0, the history state) in the runtime:
artifacts of every scheme stepped by the numpy and ort backends, compared by value with
torch (EdgeLSTM.forward with (h, c, history)) and onnx.reference; with the LSTM head at
zero the artifact is the linear AR baseline (toolchain.forecast_eval); the history in
State and Model.step; the config and load checks of the highway.

The models are the tiny ones of test_forecast_runtime (statistics far from 0/1); the AR
coefficients are random (|a| ~ 0.3) or fitted, so a highway that is dropped, reversed in
time or fed the wrong target moves outputs by O(0.1..1) standard units.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator
from rt_helpers import copy, initializer, save, set_meta
from test_forecast_runtime import (
    DYNAMIC_VS_TORCH,
    FLOAT_ATOL,
    FP16_VS_TORCH,
    INT8_VS_TORCH,
    SAME_WEIGHTS_ATOL,
    forecast_config,
    forecast_model,
    random_state,
    raw_values,
)

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize import quantize_file, quantize_proto
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import (
    INPUT_C0,
    INPUT_FEATURES,
    INPUT_H0,
    META_CONFIG,
    ModelConfig,
    normalization_tensors,
)
from lstm_edge.runtime.errors import InputError, InvalidArtifactError, InvalidConfigError
from lstm_edge.runtime.format import (
    HIGHWAY_BIAS,
    HIGHWAY_SELECT,
    HIGHWAY_TENSORS,
    HIGHWAY_WEIGHT,
    INPUT_HISTORY,
    MAX_AR_LAGS,
    OUTPUT_HISTORY,
)
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.export import build_onnx

# The history holds normalized target values, x * NORM_IN_SCALE + NORM_IN_SHIFT picked by
# a one-hot product: the same float32 ops in torch, numpy, onnxruntime and the ONNX
# reference, in every scheme (never quantized), so it is compared exactly.
HISTORY_ATOL = 0.0


def std_units(config: ModelConfig, a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference of two forecasts in target standard units, per output (the
    outputs of horizon_outputs "each" repeat the targets once per step ahead)."""
    err = np.abs(a.astype(np.float64) - b.astype(np.float64)) / config.spec.error_scale(config)
    return float(err.max())


# ---- the models ---------------------------------------------------------------------------


def highway_config(
    kind: str = "level",
    horizon: int = 3,
    each: bool = False,
    layers: int = 1,
    lags: int = 4,
    coef: tuple[float, ...] | None = None,
    seed: int = 0,
) -> ModelConfig:
    """A test_forecast_runtime config with a highway of `lags` lags (random coefficients
    unless given); `kind` "change" with per-output change statistics."""
    cfg = dataclasses.replace(
        forecast_config(layers=layers),
        horizon=horizon,
        horizon_outputs="each" if each else "last",
    )
    n = cfg.output_size
    if kind == "change":
        cfg = dataclasses.replace(
            cfg,
            target_kind="change",
            change_mean=tuple(0.5 * (i + 1) for i in range(n)),
            change_std=tuple(2.0 + i for i in range(n)),
        )
    if coef is None:
        rng = np.random.default_rng(seed)
        coef = tuple(float(v) for v in rng.normal(0, 0.3, n * (1 + lags)))
    return dataclasses.replace(cfg, ar_lags=lags, ar_coef=coef)


CASES = {
    "level-h3-last-2layer": dict(kind="level", horizon=3, layers=2, lags=4),
    "change-h3-each": dict(kind="change", horizon=3, each=True, lags=3),
    "level-h1": dict(kind="level", horizon=1, lags=6),
    "change-h1": dict(kind="change", horizon=1, lags=2),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    """(torch model, scheme -> artifact path) of one highway config."""
    model = forecast_model(highway_config(**CASES[request.param]))
    folder = tmp_path_factory.mktemp(request.param)
    proto = build_onnx(model, source_sha256="0" * 64)
    paths = {"none": save(proto, folder / "m.onnx")}
    for scheme in ("int8", "fp16"):
        paths[scheme] = save(quantize_proto(proto, scheme), folder / f"m.{scheme}.onnx")
    paths["int8-dynamic"] = folder / "m.int8-dynamic.onnx"
    quantize_file(paths["none"], paths["int8-dynamic"], "int8-dynamic")
    return model, paths


def random_history(config: ModelConfig, batch: int, seen: float, seed: int = 3) -> np.ndarray:
    """A history as a stream would have left it: normalized values ~ N(0, 1) after the
    `seen` flag."""
    size = config.spec.history_size(config)
    history = np.random.default_rng(seed).standard_normal((batch, size)).astype(np.float32)
    history[:, 0] = seen
    return history


def torch_forecast(model, x, h, c, history):
    with torch.no_grad():
        state = tuple(torch.from_numpy(a) for a in (h, c, history))
        y, (hn, cn, hist) = model(torch.from_numpy(x), state)
    return y.numpy(), hn.numpy(), cn.numpy(), hist.numpy()


def onnx_reference(path, x, h, c, history) -> list[np.ndarray]:
    proto = onnx.load(path)
    # onnx's evaluator implements DequantizeLinear only from opset 19 on (as in
    # test_forecast_runtime); the per-axis int8 semantics are unchanged since 13.
    proto.opset_import[0].version = max(proto.opset_import[0].version, 19)
    feeds = {INPUT_FEATURES: x, INPUT_H0: h, INPUT_C0: c, INPUT_HISTORY: history}
    return ReferenceEvaluator(proto).run(None, feeds)


# ---- values against torch and the ONNX reference ----------------------------------------


@pytest.mark.parametrize("seen", [0.0, 1.0], ids=["reset", "carried"])
def test_float_artifact_matches_torch_reference_numpy_and_ort(case, seen):
    model, paths = case
    cfg = model.config
    x = raw_values(cfg, (3, 12))
    h, c = random_state(cfg, 3)
    history = random_history(cfg, 3, seen)
    want, want_h, want_c, want_hist = torch_forecast(model, x, h, c, history)
    y, hn, cn, hist = onnx_reference(paths["none"], x, h, c, history)
    assert std_units(cfg, y, want) <= FLOAT_ATOL
    np.testing.assert_allclose(hn, want_h, rtol=0, atol=FLOAT_ATOL)
    np.testing.assert_allclose(cn, want_c, rtol=0, atol=FLOAT_ATOL)
    np.testing.assert_allclose(hist, want_hist, rtol=0, atol=HISTORY_ATOL)
    for backend in ("numpy", "ort"):
        got, state = rt.load(paths["none"], backend).step(x, rt.State(h, c, history))
        assert std_units(cfg, got, want) <= FLOAT_ATOL, backend
        np.testing.assert_allclose(state.h, want_h, rtol=0, atol=FLOAT_ATOL)
        np.testing.assert_allclose(state.c, want_c, rtol=0, atol=FLOAT_ATOL)
        np.testing.assert_allclose(state.history, want_hist, rtol=0, atol=HISTORY_ATOL)
    # The highway is not a no-op: the same file without it (ar_coef of zeros) differs.
    no_highway = dataclasses.replace(cfg, ar_coef=(0.0,) * len(cfg.ar_coef))
    plain = forecast_model(no_highway)
    plain.load_state_dict(model.state_dict())
    other, *_ = torch_forecast(plain, x, h, c, history)
    assert std_units(cfg, other, want) > 0.05


def test_the_history_after_a_call_is_the_last_lags_target_values(case):
    model, paths = case
    cfg = model.config
    m = rt.load(paths["none"], "numpy")
    x = raw_values(cfg, (2, cfg.ar_lags + 2), seed=8)
    _, state = m.step(x, m.initial_state(2))
    z = (x * m.artifact.weights["norm.in.scale"] + m.artifact.weights["norm.in.shift"])[
        :, -cfg.ar_lags :
    ]
    rows = z @ m.artifact.weights[HIGHWAY_SELECT]  # [2, L, outputs], oldest first
    np.testing.assert_array_equal(state.history[:, 0], [1.0, 1.0])
    np.testing.assert_array_equal(state.history[:, 1:], rows.reshape(2, -1))


@pytest.mark.parametrize(("scheme", "vs_torch"), [("int8", INT8_VS_TORCH), ("fp16", FP16_VS_TORCH)])
def test_quantized_highway_agrees_with_numpy_reference_and_torch(case, scheme, vs_torch):
    model, paths = case
    cfg = model.config
    x = raw_values(cfg, (3, 12), seed=4)
    h, c = random_state(cfg, 3, seed=5)
    history = random_history(cfg, 3, 1.0, seed=6)
    want, state_ref = rt.load(paths[scheme], "numpy").step(x, rt.State(h, c, history))
    got, state = rt.load(paths[scheme], "ort").step(x, rt.State(h, c, history))
    assert std_units(cfg, got, want) <= SAME_WEIGHTS_ATOL
    np.testing.assert_allclose(state.h, state_ref.h, rtol=0, atol=SAME_WEIGHTS_ATOL)
    y, _, _, hist = onnx_reference(paths[scheme], x, h, c, history)
    assert std_units(cfg, y, want) <= SAME_WEIGHTS_ATOL
    torch_y, _, _, torch_hist = torch_forecast(model, x, h, c, history)
    err = std_units(cfg, want, torch_y)
    assert 0 < err <= vs_torch  # > 0: the weights really were quantized
    for found in (state_ref.history, state.history, hist):
        np.testing.assert_allclose(found, torch_hist, rtol=0, atol=HISTORY_ATOL)


def test_int8_dynamic_keeps_the_highway_float_and_runs_close_to_torch(case):
    model, paths = case
    cfg = model.config
    proto = onnx.load(paths["int8-dynamic"])
    ops = {n.name: n.op_type for n in proto.graph.node}
    # quantize_dynamic would turn these into MatMulInteger / ConvInteger on quantized
    # config tensors; they stay the float ops of the canonical graph.
    assert ops["hw_select"] == "MatMul" and ops["hw_conv"] == "Conv"
    if cfg.target_kind == "change":
        assert ops["last_value"] == "MatMul"
    x = raw_values(cfg, (3, 12), seed=5)
    h = np.zeros((cfg.num_layers, 3, cfg.hidden_size), np.float32)
    history = random_history(cfg, 3, 1.0, seed=7)
    want, _, _, want_hist = torch_forecast(model, x, h, h, history)
    m = rt.load(paths["int8-dynamic"], "ort")
    got, state = m.step(x, rt.State(h, h, history))
    assert 0 < std_units(cfg, got, want) <= DYNAMIC_VS_TORCH
    np.testing.assert_allclose(state.history, want_hist, rtol=0, atol=HISTORY_ATOL)


def test_every_scheme_keeps_the_config_tensors_float32_and_exact(case):
    model, paths = case
    tensors = normalization_tensors(model.config)
    assert set(HIGHWAY_TENSORS) <= set(tensors)
    for scheme, path in paths.items():
        proto = onnx.load(path)
        for name, want in tensors.items():
            t = initializer(proto, name)
            assert t.data_type == onnx.TensorProto.FLOAT, (scheme, name)
            np.testing.assert_array_equal(numpy_helper.to_array(t), want)
            assert not any(name in n.output for n in proto.graph.node), (scheme, name)
        read_artifact(path)  # and the loader accepts the file (canonical graph, tensors)


# ---- the linear AR it is built from -------------------------------------------------------


def _ar_series(steps: int, seed: int) -> np.ndarray:
    """Raw feature rows whose targets follow a noisy seasonal AR (something for least
    squares to fit), the other feature noise; around the configs' statistics."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    temp = 100 + 4 * np.sin(2 * np.pi * t / 7) + np.cumsum(rng.normal(0, 0.5, steps))
    flow = 120 + 30 * np.sin(2 * np.pi * t / 5 + 1) + rng.normal(0, 5, steps)
    pressure = 95 + 20 * rng.standard_normal(steps)
    return np.stack([temp, pressure, flow], axis=1)


def _fitted_case(kind: str, horizon: int, each: bool, lags: int):
    """(config, the LinearAR per output in output order, target columns): coefficients
    fitted by toolchain.forecast_eval.fit_linear_ar on a training series."""
    base = highway_config(kind, horizon, each, lags=lags)
    train = _ar_series(400, seed=11)
    cols = [base.features.index(t) for t in base.targets]
    aheads = range(1, horizon + 1) if each else [horizon]
    ars = []
    for ahead in aheads:  # step-major: all targets of one step ahead, then the next
        fit = fe.fit_linear_ar(train[:, cols], ahead, lags)
        ars += [fe.LinearAR(ahead, lags, fit.coef[k : k + 1]) for k in range(len(cols))]
    coef = tuple(float(v) for ar in ars for v in ar.coef[0])
    return dataclasses.replace(base, ar_coef=coef), ars, cols * len(aheads)


# Float32 normalized arithmetic (the artifact) vs the float64 AR on raw values: each window
# value is rounded to float32 (~6e-8 relative of values ~2 std units) and the sum of L + 1
# weighted terms is rounded once more; 2.7e-6 std units measured with these fits. 2e-5
# leaves room; a lag off by one or a missing intercept is off by > 1e-2.
AR_ATOL = 2e-5


@pytest.mark.parametrize(
    "params",
    [
        ("level", 3, False, 5),
        ("change", 3, True, 4),
        ("level", 1, False, 8),
        ("change", 2, False, 3),
    ],
    ids=["level-h3", "change-each", "level-h1", "change-h2"],
)
@pytest.mark.parametrize("scheme", ["none", "int8", "fp16"])
def test_with_the_lstm_head_at_zero_the_artifact_is_the_linear_ar(tmp_path, params, scheme):
    cfg, ars, cols = _fitted_case(*params)
    model = forecast_model(cfg)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    proto = build_onnx(model, source_sha256="0" * 64)
    if scheme != "none":
        proto = quantize_proto(proto, scheme)  # a zero head stays exactly zero
    path = save(proto, tmp_path / "ar.onnx")
    x = _ar_series(60, seed=12)
    lags = cfg.ar_lags
    for backend in ("numpy", "ort"):
        m = rt.load(path, backend)
        got, _ = m.step(x[None].astype(np.float32), m.initial_state(1))
        for o, (ar, col) in enumerate(zip(ars, cols, strict=True)):
            series = x[:, col].astype(np.float32).astype(np.float64)
            want = fe.linear_ar_forecast(ar, series[:, None])[:, 0]
            scale = cfg.target_std[cfg.targets.index(cfg.features[col])]
            # From step L on the AR has its whole history: the same forecast.
            err = np.abs(got[0, lags:, o] - want[lags:]) / scale
            assert err.max() <= AR_ATOL, (backend, o)
            # Before, the artifact reads a reset history as the first value standing still:
            # the AR over the series with L copies of that value in front.
            padded = np.concatenate([np.full(lags, series[0]), series])
            want_reset = fe.linear_ar_forecast(ar, padded[:, None])[lags:, 0]
            err = np.abs(got[0, :, o] - want_reset) / scale
            assert err.max() <= AR_ATOL, (backend, o)


# ---- streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "ort"])
@pytest.mark.parametrize("scheme", ["none", "int8"])
def test_one_call_equals_single_steps_and_chunks(case, backend, scheme):
    _, paths = case
    m = rt.load(paths[scheme], backend)
    cfg = m.config
    x = raw_values(cfg, (2, 13), seed=6)
    whole, final = m.step(x, m.initial_state(2))
    state, steps = m.initial_state(2), []
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)
        steps.append(y)
    # Same float32 math, GEMM vs GEMV summation order: FLOAT_ATOL (test_forecast_runtime).
    assert std_units(cfg, np.stack(steps, axis=1), whole) <= FLOAT_ATOL
    np.testing.assert_allclose(state.c, final.c, rtol=0, atol=FLOAT_ATOL)
    np.testing.assert_array_equal(state.history, final.history)
    state, chunks = m.initial_state(2), []
    for start, end in ((0, 1), (1, 5), (5, 6), (6, 13)):
        y, state = m.step(x[:, start:end], state)
        chunks.append(y)
    assert std_units(cfg, np.concatenate(chunks, axis=1), whole) <= FLOAT_ATOL
    np.testing.assert_array_equal(state.history, final.history)


@pytest.mark.parametrize("backend", ["numpy", "ort"])
def test_batch_of_three_equals_streams_one_by_one(case, backend):
    _, paths = case
    m = rt.load(paths["none"], backend)
    x = raw_values(m.config, (3, 9), seed=7)
    together, state = m.step(x, m.initial_state(3))
    for b in range(3):
        alone, s = m.step(x[b : b + 1], m.initial_state(1))
        assert std_units(m.config, alone[0], together[b]) <= FLOAT_ATOL
        np.testing.assert_array_equal(s.history[0], state.history[b])


@pytest.fixture(scope="module")
def property_model(tmp_path_factory):
    model = forecast_model(highway_config("change", horizon=2, each=True, lags=5))
    proto = build_onnx(model, source_sha256="0" * 64)
    return rt.load(save(proto, tmp_path_factory.mktemp("prop") / "m.onnx"), "numpy")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), time=st.integers(1, 16), batch=st.integers(1, 3), seed=st.integers(0, 99))
def test_prefill_equals_any_chunking_property(property_model, data, time, batch, seed):
    """Streaming with a history: one call == any chunking, the chunk boundaries inside
    or shorter than the lag window included."""
    m = property_model
    x = raw_values(m.config, (batch, time), seed=seed)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, time - 1)), max_size=time)))
    cuts = [c for c in cuts if c < time]
    whole, final = m.step(x, m.initial_state(batch))
    state, out = m.initial_state(batch), []
    for start, end in zip([0, *cuts], [*cuts, time], strict=True):
        y, state = m.step(x[:, start:end], state)
        out.append(y)
    assert std_units(m.config, np.concatenate(out, axis=1), whole) <= FLOAT_ATOL
    np.testing.assert_array_equal(state.history, final.history)


# ---- State with a history -----------------------------------------------------------------


@pytest.fixture(scope="module")
def numpy_model(case):
    return rt.load(case[1]["none"], "numpy")


def test_initial_state_holds_a_reset_history(numpy_model):
    cfg = numpy_model.config
    state = numpy_model.initial_state(3)
    assert state.history.shape == (3, 1 + cfg.ar_lags * cfg.output_size)
    assert state.history.dtype == np.float32 and not state.history.any()
    assert len(state.arrays) == 3 and state.arrays[2] is state.history
    assert not state.history.flags.writeable


def test_select_and_stack_carry_the_history_with_their_streams(numpy_model):
    m = numpy_model
    x = raw_values(m.config, (3, 7), seed=9)
    _, state = m.step(x, m.initial_state(3))
    picked = state.select([2, 0, 2])
    np.testing.assert_array_equal(picked.history, state.history[[2, 0, 2]])
    # Stepping the picked streams == stepping all, then picking (streams are independent;
    # another batch shape may sum in another order: FLOAT_ATOL).
    more = raw_values(m.config, (3, 4), seed=10)
    y_all, s_all = m.step(more, state)
    stacked = rt.State.stack([state.select([1]), state.select([0, 2])])
    for order, s in ((np.array([2, 0, 2]), picked), (np.array([1, 0, 2]), stacked)):
        np.testing.assert_array_equal(s.history, state.history[order])
        y, s_next = m.step(more[order], s)
        assert std_units(m.config, y, y_all[order]) <= FLOAT_ATOL
        np.testing.assert_array_equal(s_next.history, s_all.history[order])


def test_stack_refuses_states_with_and_without_a_history(numpy_model):
    with_history = numpy_model.initial_state(1)
    without = rt.State(with_history.h, with_history.c)
    with pytest.raises(InputError, match=r"states\[1\] has a history of None values"):
        rt.State.stack([with_history, without])
    shorter = rt.State(with_history.h, with_history.c, np.zeros((1, 3), np.float32))
    with pytest.raises(InputError, match=r"states\[1\] has a history of 3 values"):
        rt.State.stack([with_history, shorter])


def test_state_copies_the_callers_history(numpy_model):
    m = numpy_model
    h = np.zeros((m.config.num_layers, 1, m.config.hidden_size), np.float32)
    history = random_history(m.config, 1, 1.0)
    kept = history.copy()
    state = rt.State(h, h, history)
    history[0, 1] += 100.0
    np.testing.assert_array_equal(state.history, kept)


@pytest.mark.parametrize(
    ("history", "error", "match"),
    [
        (np.zeros((2, 5), np.float64), InputError, r"state.history is float64"),
        ([[0.0] * 5] * 2, InputError, r"state.history is list"),
        (np.zeros((3, 5), np.float32), InputError, r"shape \[3, 5\] \(expected \[batch, size\] "
         r"with batch 2"),
        (np.zeros(5, np.float32), InputError, r"shape \[5\]"),
    ],
    ids=["float64", "list", "batch", "rank1"],
)  # fmt: skip
def test_state_refuses_a_history_of_the_wrong_kind(history, error, match):
    h = np.zeros((1, 2, 6), np.float32)
    with pytest.raises(error, match=match):
        rt.State(h, h, history)


# ---- Model.step and the history ------------------------------------------------------------


def _bad_states(m: rt.Model) -> dict[str, tuple[rt.State, str]]:
    cfg = m.config
    h = np.zeros((cfg.num_layers, 2, cfg.hidden_size), np.float32)
    size = cfg.spec.history_size(cfg)
    good = random_history(cfg, 2, 1.0)
    nan, inf = good.copy(), good.copy()
    nan[1, 2] = np.nan
    inf[0, -1] = np.inf
    flag = good.copy()
    flag[1, 0] = 0.5
    return {
        "missing": (rt.State(h, h), rf"state has no history \(expected {size} values per stream"),
        "short": (
            rt.State(h, h, good[:, :-1]),
            rf"state has a history of {size - 1} values \(expected {size} values",
        ),
        "long": (
            rt.State(h, h, np.concatenate([good, good], axis=1)),
            rf"a history of {2 * size} values \(expected {size}",
        ),
        "nan": (rt.State(h, h, nan), r"state.history contains NaN or Inf"),
        "inf": (rt.State(h, h, inf), r"state.history contains NaN or Inf"),
        "flag": (rt.State(h, h, flag), r"state.history\[1, 0\] is 0.5 \(expected 0 after a reset"),
    }


@pytest.mark.parametrize("backend", ["numpy", "ort"])
@pytest.mark.parametrize("kind", ["missing", "short", "long", "nan", "inf", "flag"])
def test_step_refuses_a_bad_history_and_leaves_the_state_alone(case, backend, kind):
    m = rt.load(case[1]["none"], backend)
    state, match = _bad_states(m)[kind]
    before = [a.copy() for a in state.arrays]
    x = raw_values(m.config, (2, 3))
    with pytest.raises(InputError, match=match):
        m.step(x, state)
    for a, b in zip(state.arrays, before, strict=True):
        np.testing.assert_array_equal(a, b)
    # The stream goes on from a fresh state as if nothing had happened.
    got, _ = m.step(x, m.initial_state(2))
    want, _ = rt.load(case[1]["none"], "numpy").step(x, m.initial_state(2))
    assert std_units(m.config, got, want) <= FLOAT_ATOL


def test_a_history_on_a_model_without_highway_is_refused(tmp_path):
    cfg = forecast_config(layers=1)
    m = rt.load(save(build_onnx(forecast_model(cfg), source_sha256="0" * 64), tmp_path / "p"))
    h = np.zeros((1, 1, cfg.hidden_size), np.float32)
    state = rt.State(h, h, np.zeros((1, 9), np.float32))
    with pytest.raises(InputError, match=r"a history of 9 values, but this model keeps none"):
        m.step(raw_values(cfg, (1, 2)), state)
    assert m.initial_state(1).history is None


# ---- the config ----------------------------------------------------------------------------


def test_highway_config_round_trips_and_ar_lags_0_writes_no_keys():
    cfg = highway_config("change", 3, True, lags=3)
    d = cfg.to_dict()
    assert d["ar_lags"] == 3 and d["ar_coef"] == list(cfg.ar_coef)
    assert ModelConfig.from_dict(json.loads(cfg.to_json())) == cfg
    plain = forecast_config()
    assert "ar_lags" not in plain.to_dict() and "ar_coef" not in plain.to_dict()
    text = plain.to_json()
    assert ModelConfig.from_json(text).to_json() == text
    explicit = {**plain.to_dict(), "ar_lags": 0, "ar_coef": []}
    assert ModelConfig.from_dict(explicit) == plain


def test_a_model_without_highway_has_none_of_its_graph(tmp_path):
    """ar_lags 0 files are what they were before the highway existed: no history IO, no
    highway tensors or constants, no ar_* keys in the config metadata."""
    cfg = forecast_config(layers=1)
    proto = build_onnx(forecast_model(cfg), source_sha256="0" * 64)
    names = {t.name for t in proto.graph.initializer}
    assert not names & {*HIGHWAY_TENSORS} and not any(n.startswith("const.hw") for n in names)
    io = {v.name for v in [*proto.graph.input, *proto.graph.output]}
    assert not io & {INPUT_HISTORY, OUTPUT_HISTORY}
    assert not any(n.name.startswith("hw_") for n in proto.graph.node)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert "ar_" not in meta[META_CONFIG]


def _coef(cfg: ModelConfig, lags: int) -> tuple[float, ...]:
    return (0.1,) * (cfg.output_size * (1 + lags))


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"ar_lags": -1}, r"ar_lags is -1 \(expected an integer 0 to"),
        ({"ar_lags": True}, r"ar_lags is True \(expected an integer"),
        ({"ar_lags": 2.0}, r"ar_lags is 2.0 \(expected an integer"),
        ({"ar_lags": MAX_AR_LAGS + 1}, rf"ar_lags is {MAX_AR_LAGS + 1} \(expected an integer"),
        ({"ar_lags": 2, "ar_coef": (0.1,) * 5}, r"ar_coef has 5 values \(expected 6: per output"),
        ({"ar_lags": 2, "ar_coef": ()}, r"ar_coef has 0 values \(expected 6"),
        ({"ar_lags": 0, "ar_coef": (0.1, 0.2)}, r"ar_coef has 2 values \(expected 0.*none "
         r"without a highway"),
        ({"ar_lags": 2, "ar_coef": [0.1] * 6}, r"ar_coef has \[0.1, .*\(expected 6"),
        ({"ar_lags": 2, "ar_coef": (0.1, float("nan"), 0.1, 0.1, 0.1, 0.1)},
         r"ar_coef\[1\] is nan \(expected a finite number\)"),
        ({"ar_lags": 2, "ar_coef": (0.1, 0.1, float("inf"), 0.1, 0.1, 0.1)},
         r"ar_coef\[2\] is inf"),
        ({"ar_lags": 2, "ar_coef": (0.1, 0.1, 0.1, True, 0.1, 0.1)}, r"ar_coef\[3\] is True"),
        ({"ar_lags": 2, "ar_coef": (0.1, 0.1, 0.1, 0.1, "1", 0.1)}, r"ar_coef\[4\] is '1'"),
        ({"ar_lags": 2, "ar_coef": (0.1, 0.1, 0.1, 0.1, 0.1, 1e300)},
         r"highway.weight values that are not finite in float32"),
    ],
)  # fmt: skip
def test_bad_highway_configs_are_refused_naming_the_field(over, match):
    # 2 targets, horizon 3 "last": 2 outputs, so ar_lags 2 takes 2 x 3 coefficients.
    base = forecast_config(layers=1)
    with pytest.raises(InvalidConfigError, match=match):
        dataclasses.replace(base, **over)


def test_a_highway_needs_its_targets_among_the_features():
    cfg = forecast_config(layers=1)
    with pytest.raises(InvalidConfigError, match=r"needs each target among the features.*"
                       r"\['rain'\] are not features"):  # fmt: skip
        dataclasses.replace(cfg, targets=("temp", "rain"), ar_lags=1, ar_coef=_coef(cfg, 1))


def test_bad_highway_keys_in_a_json_config_are_refused():
    d = highway_config(lags=2).to_dict()
    with pytest.raises(InvalidConfigError, match="ar_coef must be a list"):
        ModelConfig.from_dict({**d, "ar_coef": "0.1, 0.2"})
    with pytest.raises(InvalidConfigError, match=r"ar_coef\[0\] is None"):
        ModelConfig.from_dict({**d, "ar_coef": [None] * len(d["ar_coef"])})
    with pytest.raises(InvalidConfigError, match="ar_lags is '2'"):
        ModelConfig.from_dict({**d, "ar_lags": "2"})


# ---- load checks ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def float_proto(case):
    return onnx.load(case[1]["none"])


def _drop_io(proto: onnx.ModelProto, name: str) -> onnx.ModelProto:
    out = copy(proto)
    for values in (out.graph.input, out.graph.output):
        kept = [v for v in values if v.name != name]
        del values[:]
        values.extend(kept)
    return out


@pytest.mark.parametrize(("name", "kind"), [(INPUT_HISTORY, "inputs"), (OUTPUT_HISTORY, "outputs")])
def test_a_graph_without_the_history_io_is_refused(float_proto, tmp_path, name, kind):
    path = save(_drop_io(float_proto, name), tmp_path / "noio.onnx")
    with pytest.raises(InvalidArtifactError, match=rf"graph {kind} are .*expected .*'{name}'"):
        read_artifact(path)


def test_a_history_io_of_the_wrong_size_is_refused(float_proto, tmp_path):
    proto = copy(float_proto)
    (v,) = [v for v in proto.graph.input if v.name == INPUT_HISTORY]
    v.type.tensor_type.shape.dim[1].dim_value += 1
    with pytest.raises(InvalidArtifactError, match=r"'history' has shape .*expected \['\?', "):
        read_artifact(save(proto, tmp_path / "size.onnx"))


@pytest.mark.parametrize("name", list(HIGHWAY_TENSORS))
def test_a_changed_highway_tensor_is_refused_naming_it(float_proto, tmp_path, name):
    proto = copy(float_proto)
    t = initializer(proto, name)
    value = numpy_helper.to_array(t).copy()
    flat = value.reshape(-1)
    flat[-1] = np.nextafter(flat[-1], np.float32(np.inf))  # one ulp: still refused
    t.CopyFrom(numpy_helper.from_array(value, name))
    with pytest.raises(InvalidArtifactError, match=rf"highway tensor '{name}' does not match "
                       r"the config's ar_coef and statistics"):  # fmt: skip
        read_artifact(save(proto, tmp_path / "tampered.onnx"))


def test_a_missing_highway_tensor_is_refused(float_proto, tmp_path):
    proto = copy(float_proto)
    kept = [t for t in proto.graph.initializer if t.name != HIGHWAY_BIAS]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    with pytest.raises(InvalidArtifactError, match=rf"highway tensor '{HIGHWAY_BIAS}' is missing"):
        read_artifact(save(proto, tmp_path / "missing.onnx"))


def test_a_config_whose_ar_coef_differs_from_the_tensors_is_refused(case, float_proto, tmp_path):
    cfg = case[0].config
    other = dataclasses.replace(cfg, ar_coef=tuple(v * 1.5 for v in cfg.ar_coef))
    path = save(set_meta(float_proto, META_CONFIG, other.to_json()), tmp_path / "meta.onnx")
    with pytest.raises(InvalidArtifactError, match=rf"highway tensor '({HIGHWAY_WEIGHT}|"
                       rf"{HIGHWAY_BIAS})' does not match"):  # fmt: skip
        read_artifact(path)


def test_a_rewired_highway_is_refused_as_not_canonical(float_proto, tmp_path):
    proto = copy(float_proto)
    (conv,) = [n for n in proto.graph.node if n.name == "hw_conv"]
    conv.input[1], conv.input[2] = conv.input[2], conv.input[1]
    with pytest.raises(InvalidArtifactError, match=r"not the canonical graph.*Conv\("):
        read_artifact(save(proto, tmp_path / "rewired.onnx"))
    proto = copy(float_proto)
    t = initializer(proto, "const.hw.keep")
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) - 1, t.name))
    with pytest.raises(InvalidArtifactError, match=r"constant 'const.hw.keep' is int64"):
        read_artifact(save(proto, tmp_path / "keep.onnx"))


def test_a_non_finite_history_out_is_refused_naming_the_stream(numpy_model):
    """A backend whose history_out is not finite (none of the real ones can: it holds
    checked inputs) is caught like a non-finite h or c, naming the stream."""
    m = numpy_model

    class NanHistory:
        def run(self, x, h, c, history):
            y, hn, cn, out = m.runner.run(x, h, c, history)
            out = out.copy()
            out[1, -1] = np.nan
            return y, hn, cn, out

    broken = rt.Model(m.config, m.scheme, "numpy", m.artifact, NanHistory())
    state = m.initial_state(2)
    with pytest.raises(InputError, match=r"inputs at stream 1 drive the state to NaN"):
        broken.step(raw_values(m.config, (2, 3)), state)
    assert not state.history.any()
