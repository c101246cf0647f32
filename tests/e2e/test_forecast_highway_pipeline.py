"""The linear highway end to end: `lstm-edge pipeline --task forecast` on a small trending,
seasonal CSV with the default settings fits the highway on the training split (the
season's worth of lagged changes), exports, quantizes, validates on numpy and onnxruntime
(history carried), benches and detects; the runtime's forecasts are the torch model's,
beat persistence, stay with the linear baseline the model carries, and raise no false
alarm on the clean trend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.series import held_out_series
from lstm_edge.toolchain.validate_run import torch_outputs

ROWS = 1500
PERIOD = 24


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("highway")
    # A rise of 0.03 per row, a 24-row cycle and a little noise (as test_forecast_trend).
    rng = np.random.default_rng(0)
    t = np.arange(ROWS)
    value = 0.03 * t + np.sin(2 * np.pi * t / PERIOD) + 0.05 * rng.standard_normal(ROWS)
    csv = root / "trend.csv"
    lines = ["time,value"] + [f"{i},{v:.6f}" for i, v in zip(t, value, strict=True)]
    csv.write_text("\n".join(lines) + "\n")
    out = root / "bundle"
    args = ["pipeline", "--task", "forecast", "--csv", str(csv), "--target", "value"]
    args += ["--time-column", "time", "--out", str(out), "--steps", "150", "--hidden", "8"]
    args += ["--seq-len", "24", "--batch-size", "8", "--validate-steps", "300"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_the_default_model_carries_the_highway_and_says_so(bundle: Path):
    ckpt = load_checkpoint(bundle / "checkpoint")
    assert ckpt.config.ar_lags == PERIOD + 1 and ckpt.config.target_kind == "change"
    # auto trained the LSTM alone too; on a trend and a clean cycle validation keeps the
    # highway, and the record gives both figures
    why = ckpt.data["ar_lags_source"]
    assert why.startswith(
        "auto: the linear baseline's lagged changes (season 24 + 1), kept by validation "
        "(best validation nrmse "
    ), why
    summary = " ".join((bundle / "SUMMARY.md").read_text().split())
    assert "plus a linear highway (a least-squares autoregression on 25 lagged changes" in summary
    assert f"Linear highway: 25 lagged changes ({why})." in summary
    assert "so MASE vs linear measures what the LSTM adds to it" in summary
    report = json.loads((bundle / "validation" / "report.json").read_text())
    assert report["passed"] and report["highway_lags"] == 25
    # the test rows are read after the validation split's last 25 (the history filled)
    assert report["warmup_rows"] == 25 and "after the last 25 rows" in report["series_source"]
    # 300 steps cycle the 75 test rows: a seam is a jump the highway would echo for 25
    # steps, so the truth is scored on the first pass only
    assert report["series_cycled"] and report["truth_scored_rows"] == 75
    runs = {(r["scheme"], r["backend"]) for r in report["results"]}
    assert {("none", "numpy"), ("none", "ort"), ("int8", "numpy"), ("int8", "ort")} <= runs
    bench = json.loads((bundle / "bench.json").read_text())
    assert bench["latency"]  # the loops fed the history back


def test_runtime_forecasts_are_torch_and_beat_persistence_as_the_baseline_does(bundle: Path):
    """Over the held-out rows (validation then test, one stream from a reset state), step
    by step on each backend with the history carried, against torch over the stream;
    scored on the test rows, the validation rows having warmed the history."""
    ckpt = load_checkpoint(bundle / "checkpoint")
    cfg = ckpt.config
    held = held_out_series(ckpt.data, cfg, "held-out")
    n_val = ckpt.data["split"]["val"][1] - ckpt.data["split"]["val"][0]
    want = torch_outputs(ckpt.model, held.features)
    y = held.targets.astype(np.float64)
    linear = fe.fit_linear_ar(held_out_series(ckpt.data, cfg, "train").targets, 1, PERIOD + 1)
    baseline = fe.linear_ar_forecast(linear, y)[n_val:-1]
    persistence = y[n_val:-1]

    def mae(outputs: np.ndarray) -> float:
        return float(np.abs(outputs - y[n_val + 1 :]).mean())

    maes = {}
    for name in ("model.onnx", "model.int8.onnx"):
        for backend in ("numpy", "ort"):
            model = rt.load(bundle / name, backend=backend)
            state, got = model.initial_state(1), []
            for row in held.features:
                out, state = model.step(row[None], state)
                got.append(out[0])
            got = np.array(got)
            assert state.history is not None and state.history[0, 0] == 1.0
            bound = 1e-5 if name == "model.onnx" else 0.05
            assert np.abs(got - want).max() / cfg.target_std[0] < bound, (name, backend)
            maes[name, backend] = mae(got[n_val:-1])
    float_mae = maes["model.onnx", "numpy"]
    assert float_mae / mae(persistence) < 0.8
    assert float_mae / mae(baseline) < 1.1  # it starts as the baseline and keeps near it
    assert maes["model.int8.onnx", "numpy"] <= 1.03 * float_mae  # int8 within 3%


def test_the_detector_raises_no_alarm_on_the_clean_trend(bundle: Path):
    report = json.loads((bundle / "detect" / "report.json").read_text())
    assert report["highway_lags"] == 25 and report["flagged_steps"] == 0
