"""Exporting a forecast model: the graph (Mul/Add normalization with NORM_* initializers,
features in, forecast out) checked by value against torch and onnx.reference; the
checkpoint export with its self-check stream, scale-aware tolerance and calibration;
quantization of forecast files; checkpoint buffers checked on load; `lstm-edge info`.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from lstm_edge.exporters.onnx_export import (
    CHECK_TOLERANCE,
    ort_session,
    run_session,
    stamp_digest,
)
from lstm_edge.exporters.quantize import quantize_file
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import (
    EMBEDDING,
    INPUT_C0,
    INPUT_FEATURES,
    INPUT_H0,
    META_CALIBRATION,
    NORM_IN_SHIFT,
    OUTPUT_CN,
    OUTPUT_FORECAST,
    OUTPUT_HN,
    ModelConfig,
    normalization_tensors,
)
from lstm_edge.runtime.errors import InvalidArtifactError, LstmEdgeError
from lstm_edge.toolchain.checkpoint import (
    WEIGHTS_FILE,
    InvalidCheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.export import build_onnx, export_checkpoint, onnx_weights
from lstm_edge.toolchain.model import EdgeLSTM
from lstm_edge.toolchain.tasks import training
from lstm_edge.toolchain.tasks.training_base import HeldOut

EVAL_MODULE = "lstm_edge.toolchain.forecast_eval"
# Float32 torch vs ReferenceEvaluator, in target standard units (raw error / target_std, the
# units the network computes in): summation order only, ~1e-6 observed; a missing or
# wrong normalization is off by O(1).
FLOAT_ATOL = 1e-5


def config(
    layers: int = 2, target_mean=(100.0, 120.0), target_std=(5.0, 50.0), hidden: int = 6
) -> ModelConfig:
    return ModelConfig(
        task="forecast",
        hidden_size=hidden,
        num_layers=layers,
        features=("temp", "pressure", "flow"),
        targets=("temp", "flow"),
        horizon=2,
        feature_mean=(100.0, 95.0, 120.0),
        feature_std=(5.0, 20.0, 50.0),
        target_mean=target_mean,
        target_std=target_std,
    )


def model_for(cfg: ModelConfig, seed: int = 0) -> EdgeLSTM:
    torch.manual_seed(seed)
    model = EdgeLSTM(cfg).eval()
    with torch.no_grad():  # saturating gates too, so wiring mistakes cannot hide
        for p in model.lstm.parameters():
            p.mul_(4.0)
    return model


def raw(cfg: ModelConfig, batch: int, time: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean, std = np.asarray(cfg.feature_mean), np.asarray(cfg.feature_std)
    return (mean + std * rng.standard_normal((batch, time, len(cfg.features)))).astype(np.float32)


def std_err(cfg: ModelConfig, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b) / np.asarray(cfg.target_std)))


# ---- the graph ---------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [1, 2])
def test_forecast_graph_matches_torch_under_the_onnx_reference(layers):
    cfg = config(layers)
    model = model_for(cfg, seed=layers)
    proto = build_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    graph = proto.graph
    assert [i.name for i in graph.input] == [INPUT_FEATURES, INPUT_H0, INPUT_C0]
    assert [o.name for o in graph.output] == [OUTPUT_FORECAST, OUTPUT_HN, OUTPUT_CN]
    features = graph.input[0].type.tensor_type
    assert features.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in features.shape.dim] == ["batch", "time", 3]
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    assert EMBEDDING not in inits
    for name, want in normalization_tensors(cfg).items():
        assert inits[name].dtype == np.float32
        np.testing.assert_array_equal(inits[name], want)
    assert [n.op_type for n in graph.node[:2]] == ["Mul", "Add"]
    assert [n.op_type for n in graph.node[-3:]] == ["Add", "Mul", "Add"]

    x = raw(cfg, 2, 15)
    rng = np.random.default_rng(3)
    h = rng.uniform(-0.8, 0.8, (layers, 2, 6)).astype(np.float32)
    c = rng.uniform(-0.8, 0.8, (layers, 2, 6)).astype(np.float32)
    with torch.no_grad():
        want, (want_h, _) = model(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(c)))
    got, got_h, _ = ReferenceEvaluator(proto).run(
        None, {INPUT_FEATURES: x, INPUT_H0: h, INPUT_C0: c}
    )
    assert std_err(cfg, got, want.numpy()) <= FLOAT_ATOL
    np.testing.assert_allclose(got_h, want_h.numpy(), rtol=0, atol=FLOAT_ATOL)
    # Raw predictions, not standard units: they sit at the targets' scale.
    assert np.abs(got).min() > 1.0


def test_buffers_that_disagree_with_the_config_are_refused_at_export():
    model = model_for(config())
    with torch.no_grad():
        model.in_shift.add_(1.0)
    with pytest.raises(LstmEdgeError, match="buffer 'in_shift'"):
        onnx_weights(model)


# ---- export_checkpoint -------------------------------------------------------------------


def _fake_module(monkeypatch, name: str, **attrs) -> None:
    monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))


def _fake_held_out(monkeypatch, held_out_stream) -> None:
    """The forecast task's one held-out stream builder, replaced (the export asks it)."""
    monkeypatch.setattr(training("forecast"), "held_out_stream", held_out_stream)


@pytest.fixture
def no_calibration(monkeypatch):
    """Calibration unavailable (what `calibrate` says when the data is gone): none written."""
    _fake_module(monkeypatch, EVAL_MODULE, calibrate=lambda ckpt: None)


def test_export_without_data_checks_on_seeded_raw_values(tmp_path, no_calibration):
    cfg = config()
    save_checkpoint(tmp_path / "ck", model_for(cfg))
    report = export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx", check_steps=120)
    assert report.steps_checked == 120 and "seeded synthetic stream" in report.stream
    assert "no data record" in report.stream
    assert report.max_abs_err_prefill <= CHECK_TOLERANCE
    assert report.max_abs_err_steps <= CHECK_TOLERANCE
    art = read_artifact(report.path)
    assert art.config == cfg and art.calibration is None


def test_export_uses_the_held_out_series_and_falls_back_when_it_fails(
    tmp_path, monkeypatch, no_calibration
):
    cfg = config()
    model = model_for(cfg)
    save_checkpoint(tmp_path / "ck", model, data={"source": "test"})
    held_out = raw(cfg, 1, 40, seed=9)[0]
    seen = {}

    def held_out_stream(data, config, split="test", steps=None, *, cycle=False):
        seen.update(data=data, config=config, split=split)
        rows = held_out[:steps]
        return HeldOut(rows, rows[:, :0], len(held_out), False)

    _fake_held_out(monkeypatch, held_out_stream)
    report = export_checkpoint(tmp_path / "ck", tmp_path / "a.onnx", check_steps=100)
    assert report.stream.startswith("held-out test split")
    assert report.steps_checked == 40  # the split is shorter than check_steps
    assert seen == {"data": {"source": "test"}, "config": cfg, "split": "test"}
    # The check ran on that stream: its errors equal ORT vs torch over it, in std units.
    sess = ort_session(report.path)
    h0 = np.zeros((2, 1, 6), np.float32)
    got, _, _ = run_session(sess, held_out[None], h0, h0)
    with torch.no_grad():
        want = model(torch.from_numpy(held_out[None]))[0].numpy()
    assert report.max_abs_err_prefill == pytest.approx(std_err(cfg, got, want), abs=1e-12)

    def broken(data, config, split="test", steps=None, *, cycle=False):
        raise LstmEdgeError("series.csv changed since training")

    _fake_held_out(monkeypatch, broken)
    report = export_checkpoint(tmp_path / "ck", tmp_path / "b.onnx", check_steps=30)
    assert "seeded synthetic stream" in report.stream
    assert "series.csv changed since training" in report.stream
    assert report.steps_checked == 30


def test_tolerance_is_in_target_standard_units(tmp_path, no_calibration):
    # Targets around 1e5 with std 1e4: one float32 ulp of a raw output is ~0.008, far over
    # CHECK_TOLERANCE in raw units; divided by the std it is ~1e-6, and the export passes.
    cfg = config(target_mean=(1e5, -3e4), target_std=(1e4, 2e3))
    save_checkpoint(tmp_path / "ck", model_for(cfg))
    report = export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx", check_steps=200)
    assert report.max_abs_err_steps <= CHECK_TOLERANCE


GOOD_CALIBRATION = {
    "residual_scale": [0.25, 3.0],
    "threshold": 5.0,
    "split": "train",
    "statistic": "test statistic",
}


def test_export_writes_calibration_from_the_eval_helper(tmp_path, monkeypatch):
    cfg = config()
    save_checkpoint(tmp_path / "ck", model_for(cfg))
    calls = []

    def calibrate(ckpt):
        calls.append(ckpt.path)
        return dict(GOOD_CALIBRATION)

    _fake_module(monkeypatch, EVAL_MODULE, calibrate=calibrate)
    report = export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx", check_steps=20)
    assert calls == [tmp_path / "ck"]
    assert read_artifact(report.path).calibration == GOOD_CALIBRATION
    meta = {p.key: p.value for p in onnx.load(report.path).metadata_props}
    assert json.loads(meta[META_CALIBRATION]) == GOOD_CALIBRATION

    _fake_module(monkeypatch, EVAL_MODULE, calibrate=lambda ckpt: None)  # data unavailable
    report = export_checkpoint(tmp_path / "ck", tmp_path / "none.onnx", check_steps=20)
    assert read_artifact(report.path).calibration is None

    bad = {**GOOD_CALIBRATION, "residual_scale": [0.25, 0.0]}
    _fake_module(monkeypatch, EVAL_MODULE, calibrate=lambda ckpt: bad)
    with pytest.raises(InvalidArtifactError, match=r"'residual_scale'\[1\] \(target 'flow'\)"):
        export_checkpoint(tmp_path / "ck", tmp_path / "bad.onnx", check_steps=20)
    assert not (tmp_path / "bad.onnx").exists()


# ---- quantization ------------------------------------------------------------------------


def test_quantize_refuses_a_float_file_with_changed_normalization(tmp_path):
    cfg = config()
    proto = build_onnx(model_for(cfg))
    t = next(t for t in proto.graph.initializer if t.name == NORM_IN_SHIFT)
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + np.float32(0.5), t.name))
    stamp_digest(proto)  # made so, not corrupted later: the normalization check refuses it
    src = tmp_path / "m.onnx"
    src.write_bytes(proto.SerializeToString())
    for scheme in ("int8", "fp16", "int8-dynamic"):
        with pytest.raises(InvalidArtifactError, match=f"'{NORM_IN_SHIFT}' is different"):
            quantize_file(src, tmp_path / f"m.{scheme}.onnx", scheme)
        assert not (tmp_path / f"m.{scheme}.onnx").exists()


# ---- checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t + 1e-3, r"'in_scale' does not match .* index 0"),
        (lambda t: t.double(), r"'in_scale' is torch.float64"),
    ],
    ids=["value", "dtype"],
)
def test_checkpoint_with_tampered_normalization_buffer_is_refused(tmp_path, change, match):
    save_checkpoint(tmp_path / "ck", model_for(config()))
    path = tmp_path / "ck" / WEIGHTS_FILE
    weights = load_file(str(path))
    weights["in_scale"] = change(weights["in_scale"]).contiguous()
    save_file(weights, str(path))
    with pytest.raises(InvalidCheckpointError, match=match) as e:
        load_checkpoint(tmp_path / "ck")
    assert str(path) in str(e.value)


# ---- info --------------------------------------------------------------------------------


def test_info_shows_forecast_columns_normalization_and_calibration(tmp_path, monkeypatch):
    cfg = config()
    save_checkpoint(tmp_path / "ck", model_for(cfg))
    _fake_module(monkeypatch, EVAL_MODULE, calibrate=lambda ckpt: dict(GOOD_CALIBRATION))
    export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx", check_steps=10)
    runner = CliRunner()
    r = runner.invoke(app, ["info", str(tmp_path / "m.onnx"), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert got["config"]["task"] == "forecast"
    assert got["config"]["features"] == "temp, pressure, flow"
    assert got["config"]["targets"] == "temp, flow" and got["config"]["horizon"] == 2
    assert got["normalization"]["feature pressure"] == "mean 95, std 20"
    assert got["normalization"]["target flow"] == "mean 120, std 50"
    assert got["calibration"]["residual_scale"] == "temp 0.25, flow 3"
    assert got["calibration"]["threshold"] == 5.0
    model = load_checkpoint(tmp_path / "ck").model
    assert got["parameters"] == sum(p.numel() for p in model.parameters())
    r = runner.invoke(app, ["info", str(tmp_path / "ck")])
    assert r.exit_code == 0, r.output
    assert "normalization.feature temp" in r.output and "mean 100, std 5" in r.output
