"""The forecast task in the runtime: artifacts from the exporter, stepped by the numpy and ort
backends, compared by value with torch and onnx.reference; the per-task load checks
(normalization tensors, calibration, graph inputs/outputs) and bad step inputs.

The models are tiny with random weights and normalization statistics far from 0/1 (means
~100, stds 5..50): a missing, swapped or unapplied normalization moves outputs by tens of
raw units and fails every comparison loudly.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator
from rt_helpers import copy, initializer, save, set_meta, tiny_config, tiny_model

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize import quantize_file, quantize_proto
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import (
    INPUT_C0,
    INPUT_FEATURES,
    INPUT_H0,
    INPUT_TOKENS,
    META_CALIBRATION,
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    OUTPUT_FORECAST,
    OUTPUT_LOGITS,
    ModelConfig,
    normalization_tensors,
)
from lstm_edge.runtime.errors import InputError, InvalidArtifactError, InvalidConfigError
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM

FEATURES = ("temp", "pressure", "flow")
TARGETS = ("temp", "flow")
SCHEMES = ("none", "int8", "fp16", "int8-dynamic")

# Errors are compared in target standard units (raw error / target_std): the network computes
# in those units, so one bound means the same for a target of std 5 and one of std 50.
# Float32, same math summed in another order (torch/MKL, ORT's LSTM kernel, numpy GEMM vs
# GEMV): up to 1.5e-6 observed over 20 steps, which is one float32 ulp of a raw output near
# 100 (7.6e-6) over std 5; 1e-5 leaves room, and a wrong gate order, state wiring or
# normalization is off by O(0.1..10).
FLOAT_ATOL = 1e-5
# int8/fp16 artifacts vs the numpy reference: the same dequantized float32 weights in every
# backend (ORT's DequantizeLinear / Cast are exact), so only summation order differs.
SAME_WEIGHTS_ATOL = 1e-5
# int8 (weight-only, per channel) vs torch float: each weight is off by at most
# max|w_row| / 254; through 2 saturating layers and 20 steps this measures 2e-3 (1 layer)
# to 5.5e-3 (2 layers) standard units on these tiny models (weights scaled x4). 3e-2 is
# ~5x that and still far below what a missing normalization costs (O(1)).
INT8_VS_TORCH = 3e-2
# fp16 stores each weight with a relative error <= 2**-11 (~5e-4): 3e-4 to 7e-4 measured.
FP16_VS_TORCH = 5e-3
# int8-dynamic also quantizes the activations (uint8, per call): 3.5e-3 to 7.5e-3 measured.
DYNAMIC_VS_TORCH = 1e-1


def forecast_config(layers: int = 2, hidden: int = 6) -> ModelConfig:
    return ModelConfig(
        task="forecast",
        hidden_size=hidden,
        num_layers=layers,
        features=FEATURES,
        targets=TARGETS,
        horizon=3,
        feature_mean=(100.0, 95.0, 120.0),
        feature_std=(5.0, 20.0, 50.0),
        target_mean=(100.0, 120.0),
        target_std=(5.0, 50.0),
    )


def forecast_model(config: ModelConfig, seed: int = 0) -> EdgeLSTM:
    torch.manual_seed(seed)
    model = EdgeLSTM(config).eval()
    # Larger than PyTorch's init, so the gates saturate too (as in rt_helpers.tiny_model).
    with torch.no_grad():
        for p in model.lstm.parameters():
            p.mul_(4.0)
    return model


def raw_values(config: ModelConfig, shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    """Raw sensor values around the training statistics: mean + std * N(0, 1), float32."""
    rng = np.random.default_rng(seed)
    mean, std = np.asarray(config.feature_mean), np.asarray(config.feature_std)
    return (mean + std * rng.standard_normal((*shape, len(config.features)))).astype(np.float32)


def std_units(config: ModelConfig, a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference of two forecasts, in target standard units."""
    err = np.abs(a.astype(np.float64) - b.astype(np.float64)) / np.asarray(config.target_std)
    return float(err.max())


def torch_forecast(model: EdgeLSTM, x: np.ndarray, h: np.ndarray, c: np.ndarray):
    with torch.no_grad():
        y, (hn, cn) = model(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(c)))
    return y.numpy(), hn.numpy(), cn.numpy()


def random_state(config: ModelConfig, batch: int, seed: int = 2) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    shape = (config.num_layers, batch, config.hidden_size)
    return tuple(rng.uniform(-0.8, 0.8, shape).astype(np.float32) for _ in range(2))


@pytest.fixture(scope="module", params=[2, 1], ids=["2-layer", "1-layer"])
def case(request, tmp_path_factory):
    """(torch model, scheme -> artifact path) for a 2-layer and a 1-layer forecast model."""
    model = forecast_model(forecast_config(layers=request.param))
    folder = tmp_path_factory.mktemp(f"forecast{request.param}")
    float_proto = build_onnx(model, source_sha256="0" * 64)
    paths = {"none": save(float_proto, folder / "m.onnx")}
    for scheme in ("int8", "fp16"):
        paths[scheme] = save(quantize_proto(float_proto, scheme), folder / f"m.{scheme}.onnx")
    paths["int8-dynamic"] = folder / "m.int8-dynamic.onnx"
    quantize_file(paths["none"], paths["int8-dynamic"], "int8-dynamic")
    return model, paths


# ---- values against torch and the ONNX reference ----------------------------------------


def test_float_artifact_matches_torch_reference_ort_and_numpy(case):
    model, paths = case
    cfg = model.config
    x = raw_values(cfg, (2, 20))
    h, c = random_state(cfg, 2)
    want, want_h, want_c = torch_forecast(model, x, h, c)
    ref = ReferenceEvaluator(onnx.load(paths["none"])).run(
        None, {INPUT_FEATURES: x, INPUT_H0: h, INPUT_C0: c}
    )
    assert std_units(cfg, ref[0], want) <= FLOAT_ATOL
    for backend in ("numpy", "ort"):
        m = rt.load(paths["none"], backend)
        got, state = m.step(x, rt.State(h, c))
        assert got.dtype == np.float32 and got.shape == want.shape
        assert std_units(cfg, got, want) <= FLOAT_ATOL, backend
        np.testing.assert_allclose(state.h, want_h, rtol=0, atol=FLOAT_ATOL)
        np.testing.assert_allclose(state.c, want_c, rtol=0, atol=FLOAT_ATOL)
    # The outputs are raw values at the targets' scale, not standard units.
    assert np.abs(want.mean(axis=(0, 1)) - np.asarray(cfg.target_mean)).max() < 5 * max(
        cfg.target_std
    )
    assert np.abs(want).min() > 1.0


@pytest.mark.parametrize(("scheme", "vs_torch"), [("int8", INT8_VS_TORCH), ("fp16", FP16_VS_TORCH)])
def test_quantized_backends_agree_with_numpy_reference(case, scheme, vs_torch):
    model, paths = case
    cfg = model.config
    x = raw_values(cfg, (2, 20), seed=3)
    h, c = random_state(cfg, 2, seed=4)
    reference = rt.load(paths[scheme], "numpy")
    want, state_ref = reference.step(x, rt.State(h, c))
    got, state = rt.load(paths[scheme], "ort").step(x, rt.State(h, c))
    assert std_units(cfg, got, want) <= SAME_WEIGHTS_ATOL
    np.testing.assert_allclose(state.h, state_ref.h, rtol=0, atol=SAME_WEIGHTS_ATOL)
    proto = onnx.load(paths[scheme])
    # onnx 1.23's evaluator implements DequantizeLinear only from opset 19 on; its int8
    # per-axis semantics are unchanged since 13, so evaluating at 19 is the same graph.
    proto.opset_import[0].version = max(proto.opset_import[0].version, 19)
    onnx_ref = ReferenceEvaluator(proto).run(None, {INPUT_FEATURES: x, INPUT_H0: h, INPUT_C0: c})
    assert std_units(cfg, onnx_ref[0], want) <= SAME_WEIGHTS_ATOL
    torch_y, _, _ = torch_forecast(model, x, h, c)
    err = std_units(cfg, want, torch_y)
    assert err <= vs_torch
    assert err > 0  # the weights really were quantized


def test_quantized_schemes_keep_normalization_tensors_float32_and_exact(case):
    model, paths = case
    norms = normalization_tensors(model.config)
    for scheme in SCHEMES:
        proto = onnx.load(paths[scheme])
        for name, want in norms.items():
            t = initializer(proto, name)
            assert t.data_type == onnx.TensorProto.FLOAT, (scheme, name)
            np.testing.assert_array_equal(numpy_helper.to_array(t), want)
            assert not any(name in n.output for n in proto.graph.node), (scheme, name)


def test_int8_dynamic_runs_in_ort_close_to_torch(case):
    model, paths = case
    cfg = model.config
    x = raw_values(cfg, (1, 20), seed=5)
    h = np.zeros((cfg.num_layers, 1, cfg.hidden_size), np.float32)
    want, _, _ = torch_forecast(model, x, h, h)
    m = rt.load(paths["int8-dynamic"], "ort")
    got, _ = m.step(x, m.initial_state(1))
    assert 0 < std_units(cfg, got, want) <= DYNAMIC_VS_TORCH
    with pytest.raises(rt.UnsupportedModelError):
        rt.load(paths["int8-dynamic"], "numpy")


# ---- streaming properties ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "ort"])
@pytest.mark.parametrize("scheme", ["none", "int8"])
def test_one_call_equals_single_steps_and_chunks(case, backend, scheme):
    _, paths = case
    m = rt.load(paths[scheme], backend)
    x = raw_values(m.config, (2, 13), seed=6)
    whole, final = m.step(x, m.initial_state(2))
    state, steps = m.initial_state(2), []
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)  # [batch, F] -> [batch, targets]
        assert y.shape == (2, len(TARGETS))
        steps.append(y)
    # Same float32 math, GEMM vs GEMV summation order: FLOAT_ATOL (see above).
    assert std_units(m.config, np.stack(steps, axis=1), whole) <= FLOAT_ATOL
    np.testing.assert_allclose(state.c, final.c, rtol=0, atol=FLOAT_ATOL)
    state, chunks = m.initial_state(2), []
    for start, end in ((0, 4), (4, 5), (5, 13)):
        y, state = m.step(x[:, start:end], state)
        chunks.append(y)
    assert std_units(m.config, np.concatenate(chunks, axis=1), whole) <= FLOAT_ATOL


@pytest.mark.parametrize("backend", ["numpy", "ort"])
def test_batch_equals_streams_one_by_one(case, backend):
    _, paths = case
    m = rt.load(paths["none"], backend)
    x = raw_values(m.config, (3, 9), seed=7)
    together, state = m.step(x, m.initial_state(3))
    for b in range(3):
        alone, s = m.step(x[b : b + 1], m.initial_state(1))
        assert std_units(m.config, alone[0], together[b]) <= FLOAT_ATOL
        np.testing.assert_allclose(s.h[:, 0], state.h[:, b], rtol=0, atol=FLOAT_ATOL)


# ---- bad step inputs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def numpy_model(case):
    return rt.load(case[1]["none"], "numpy")


def test_integer_and_float64_values_are_converted_to_float32(numpy_model):
    m = numpy_model
    ints = np.array([[101, 90, 130], [96, 115, 80]], dtype=np.int32)
    want, _ = m.step(ints.astype(np.float32), m.initial_state(2))
    for values in (ints, ints.astype(np.int64), ints.astype(np.float64), ints.tolist()):
        got, _ = m.step(values, m.initial_state(2))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "values",
    [
        np.zeros((1, 2), np.float32),  # one feature short
        np.zeros((1, 5, 4), np.float32),  # one feature too many
        np.zeros(3, np.float32),  # no batch axis
        np.zeros((1, 1, 1, 3), np.float32),  # rank 4
        np.zeros((0, 3), np.float32),  # empty batch
    ],
    ids=["short", "long", "rank1", "rank4", "empty"],
)
def test_wrong_shapes_are_refused_naming_the_expected_shape(numpy_model, values):
    with pytest.raises(InputError, match=r"expected \[batch, 3\] or \[batch, time, 3\]"):
        numpy_model.step(values, numpy_model.initial_state(1))


@pytest.mark.parametrize(
    "values",
    [np.array([[1 + 1j, 2, 3]]), np.array([[True, False, True]]), np.array([["1", "2", "3"]])],
    ids=["complex", "bool", "str"],
)
def test_non_real_dtypes_are_refused(numpy_model, values):
    with pytest.raises(InputError, match="expected real numbers"):
        numpy_model.step(values, numpy_model.initial_state(1))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_non_finite_values_are_refused_naming_position_and_column(numpy_model, bad):
    m = numpy_model
    x = raw_values(m.config, (2, 4))
    values = x.astype(np.float64)
    values[1, 2, 2] = bad  # 1e300 overflows float32 to inf
    state = m.initial_state(2)
    with pytest.raises(InputError, match=r"position \[1, 2, 2\] \(column 'flow'\).*fill missing"):
        m.step(values, state)
    single = values[:, 2]
    with pytest.raises(InputError, match=r"position \[1, 2\] \(column 'flow'\)"):
        m.step(single, state)
    # The state handed in is still good: a clean step from it equals one from a fresh state.
    got, _ = m.step(x, state)
    want, _ = m.step(x, m.initial_state(2))
    np.testing.assert_array_equal(got, want)


# ---- load checks -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def float_proto(case):
    return onnx.load(case[1]["none"])


@pytest.mark.parametrize("name", [NORM_IN_SCALE, NORM_IN_SHIFT, NORM_OUT_SCALE, NORM_OUT_SHIFT])
def test_tampered_normalization_tensor_is_refused_naming_it(case, float_proto, tmp_path, name):
    proto = copy(float_proto)
    t = initializer(proto, name)
    value = numpy_helper.to_array(t).copy()
    value[1] = np.nextafter(value[1], np.float32(np.inf))  # one ulp: still refused
    t.CopyFrom(numpy_helper.from_array(value, name))
    path = save(proto, tmp_path / "tampered.onnx")
    with pytest.raises(InvalidArtifactError, match=rf"normalization tensor '{name}'.*index 1"):
        read_artifact(path)
    # The file is otherwise runnable, and the stats are not a no-op: a scale of 2x on the
    # tensor moves the forecast (so a graph that ignored NORM_* could not pass the value tests).
    t.CopyFrom(numpy_helper.from_array(value * 2, name))
    cfg = case[0].config
    x = raw_values(cfg, (1, 3))
    h = np.zeros((cfg.num_layers, 1, cfg.hidden_size), np.float32)
    feeds = {INPUT_FEATURES: x, INPUT_H0: h, INPUT_C0: h}
    a = ReferenceEvaluator(float_proto).run(None, feeds)[0]
    b = ReferenceEvaluator(proto).run(None, feeds)[0]
    assert std_units(cfg, a, b) > 0.01


def test_missing_or_float16_normalization_tensor_is_refused(float_proto, tmp_path):
    proto = copy(float_proto)
    kept = [t for t in proto.graph.initializer if t.name != NORM_OUT_SHIFT]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    with pytest.raises(InvalidArtifactError, match=rf"'{NORM_OUT_SHIFT}' is missing"):
        read_artifact(save(proto, tmp_path / "missing.onnx"))
    proto = copy(float_proto)
    t = initializer(proto, NORM_IN_SCALE)
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    with pytest.raises(InvalidArtifactError, match=rf"'{NORM_IN_SCALE}' is float16"):
        read_artifact(save(proto, tmp_path / "fp16norm.onnx"))


def _rename_value(proto: onnx.ModelProto, old: str, new: str) -> onnx.ModelProto:
    out = copy(proto)
    for v in [*out.graph.input, *out.graph.output]:
        if v.name == old:
            v.name = new
    for n in out.graph.node:
        for seq in (n.input, n.output):
            for i, name in enumerate(seq):
                if name == old:
                    seq[i] = new
    return out


@pytest.mark.parametrize(
    ("old", "new"), [(INPUT_FEATURES, INPUT_TOKENS), (OUTPUT_FORECAST, OUTPUT_LOGITS)]
)
def test_char_lm_names_on_a_forecast_config_are_refused(float_proto, tmp_path, old, new):
    path = save(_rename_value(float_proto, old, new), tmp_path / "renamed.onnx")
    with pytest.raises(InvalidArtifactError, match=rf"'{new}'.*task 'forecast'"):
        read_artifact(path)


def test_wrong_feature_width_or_dtype_in_the_graph_is_refused(float_proto, tmp_path):
    proto = copy(float_proto)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = 4
    with pytest.raises(InvalidArtifactError, match=r"'features' has shape \['batch', 'time', 4\]"):
        read_artifact(save(proto, tmp_path / "width.onnx"))
    proto = copy(float_proto)
    proto.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT64
    with pytest.raises(InvalidArtifactError, match="'features' has element type 7"):
        read_artifact(save(proto, tmp_path / "dtype.onnx"))


GOOD_CALIBRATION = {
    "residual_scale": [0.5, 2.0],
    "threshold": 4.0,
    "split": "train",
    "statistic": "99.9th percentile",
}


def test_calibration_is_parsed_into_the_artifact(float_proto, tmp_path):
    path = save(
        set_meta(float_proto, META_CALIBRATION, json.dumps(GOOD_CALIBRATION)), tmp_path / "c.onnx"
    )
    assert read_artifact(path).calibration == GOOD_CALIBRATION
    assert rt.load(path).artifact.calibration == GOOD_CALIBRATION
    plain = save(float_proto, tmp_path / "plain.onnx")
    assert read_artifact(plain).calibration is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"threshold": 3}', "no key 'residual_scale'"),
        ('{"residual_scale": [1, 1]}', "no key 'threshold'"),
        ('{"residual_scale": [1], "threshold": 3}', r"'residual_scale' is 1 values"),
        ('{"residual_scale": "1,1", "threshold": 3}', r"'residual_scale' is '1,1'"),
        ('{"residual_scale": [1, 0], "threshold": 3}', r"'residual_scale'\[1\] \(target 'flow'\)"),
        ('{"residual_scale": [-1, 1], "threshold": 3}', r"'residual_scale'\[0\]"),
        ('{"residual_scale": [NaN, 1], "threshold": 3}', r"'residual_scale'\[0\]"),
        ('{"residual_scale": [true, 1], "threshold": 3}', r"'residual_scale'\[0\]"),
        ('{"residual_scale": [1, 1], "threshold": Infinity}', "'threshold' is inf"),
        ('{"residual_scale": [1, 1], "threshold": 0}', "'threshold' is 0"),
        ('{"residual_scale": [1, 1], "threshold": 1, "split": 3}', "'split' is 3"),
    ],
)
def test_bad_calibration_is_refused_naming_key_and_file(float_proto, tmp_path, text, match):
    path = save(set_meta(float_proto, META_CALIBRATION, text), tmp_path / "badcal.onnx")
    with pytest.raises(InvalidArtifactError, match=match) as e:
        read_artifact(path)
    assert str(path) in str(e.value) and META_CALIBRATION in str(e.value)


def test_calibration_on_a_char_lm_artifact_is_refused(tmp_path):
    proto = build_onnx(tiny_model(tiny_config()), source_sha256="0" * 64)
    path = save(set_meta(proto, META_CALIBRATION, json.dumps(GOOD_CALIBRATION)), tmp_path / "c")
    with pytest.raises(InvalidArtifactError, match="calibration is for task 'forecast'"):
        read_artifact(path)


def test_suggester_refuses_a_forecast_model(numpy_model):
    with pytest.raises(InputError, match="task 'forecast'"):
        rt.Suggester(numpy_model)


# ---- change targets in the config ------------------------------------------------------------


def _change_dict(**over) -> dict:
    d = {
        "format_version": 1, "task": "forecast", "hidden_size": 4, "num_layers": 1,
        "features": ["temp", "load"], "targets": ["temp"], "horizon": 1,
        "feature_mean": [20.0, 0.5], "feature_std": [4.0, 0.25],
        "target_mean": [20.0], "target_std": [4.0],
        "target_kind": "change", "change_mean": [0.5], "change_std": [2.0],
    }  # fmt: skip
    d.update(over)
    return d


def test_change_config_round_trips_and_gives_its_output_tensors():
    from lstm_edge.runtime.format import NORM_LAST_SELECT, NORM_OUT_SCALE, NORM_OUT_SHIFT

    config = ModelConfig.from_dict(_change_dict())
    assert config.to_dict() == _change_dict()
    norm = config.spec.config_tensors(config)
    assert norm[NORM_OUT_SCALE].tolist() == [2.0] and norm[NORM_OUT_SHIFT].tolist() == [0.5]
    assert norm[NORM_LAST_SELECT].tolist() == [[1.0], [0.0]]  # temp is feature 0
    level = {k: v for k, v in _change_dict().items() if k not in ("target_kind", "change_mean",
             "change_std")}  # fmt: skip
    assert ModelConfig.from_dict(level).target_kind == "level"
    assert ModelConfig.from_dict(level).to_dict() == level  # written as before


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"target_kind": "delta"}, r"target_kind is 'delta' \(expected one of"),
        ({"change_std": [0.0]}, r"change_std of target 'temp' is 0.0 \(expected a finite"),
        ({"change_mean": []}, r"change_mean has 0 values \(expected 1"),
        (
            {"targets": ["rain"]},
            r"needs each target among the features.*\['rain'\] are not features",
        ),
        ({"target_kind": "level"}, r"change_mean has 1 values \(expected 0"),
    ],
)
def test_bad_change_configs_are_refused_naming_the_field(over, match):
    with pytest.raises(InvalidConfigError, match=match):
        ModelConfig.from_dict(_change_dict(**over))
