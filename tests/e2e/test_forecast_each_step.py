"""--horizon 3 end to end on a small trending, seasonal series: the model is trained on
every step ahead (t + 1, t + 2, t + 3), and validate's report scores each step ahead
against persistence, seasonal persistence and a linear baseline fitted for that step
ahead, numbers checked against a hand computation; --horizon 1 keeps its config and report
keys as they were."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from typer.testing import CliRunner

from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.detect import DetectOptions, detect
from lstm_edge.toolchain.series import held_out_series
from lstm_edge.toolchain.train import TrainOptions, train
from lstm_edge.toolchain.validate_run import torch_outputs
from tests.e2e.test_forecast_trend import PERIOD, _write_csv

H = 3
TEST_ROWS = 75  # the test split of _write_csv's 1,500 rows: validate without cycling


def _run(root, csv, horizon):
    out = root / f"h{horizon}"
    train(
        TrainOptions(
            out=out / "ckpt", task="forecast", csv=csv, target=("value",), time_column="time",
            target_kind="change", horizon=horizon, hidden=8, seq_len=24, batch_size=8,
            steps=150, eval_every=150, lr=2e-2, threads=1, progress=False,
        )
    )  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(out / "ckpt"), "-o", str(out / "m.onnx")])
    assert result.exit_code == 0, result.output
    args = ["validate", str(out / "ckpt"), str(out / "m.onnx"), "-b", "numpy", "-b", "ort"]
    args += ["--steps", str(TEST_ROWS), "--report", str(out / "val")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "val" / "report.json").read_text())
    return load_checkpoint(out / "ckpt"), report, result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("horizons")
    csv = root / "trend.csv"
    _write_csv(csv)
    return {h: _run(root, csv, h) for h in (1, H)}


def _hand_linear(train: np.ndarray, test: np.ndarray, ahead: int, lags: int) -> np.ndarray:
    """Least squares of col[t + ahead] - col[t] on [1, d[t], ..., d[t - lags + 1]] (d the
    one-row differences) over the training rows; its forecasts of the test rows (NaN
    without `lags` changes of history)."""

    def design(col):
        d = np.diff(col)
        return np.array([[1.0, *d[t - lags : t][::-1]] for t in range(lags, col.size)])

    x = design(train)[: train.size - lags - ahead]
    y = train[lags + ahead :] - train[lags : train.size - ahead]
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    out = np.full(test.size, np.nan)
    out[lags:] = test[lags:] + design(test) @ coef
    return out


def test_each_step_ahead_scored_against_hand_computed_baselines(runs):
    ckpt, report, output = runs[H]
    cfg = ckpt.config
    assert cfg.horizon_outputs == "each" and cfg.output_size == H
    assert "each step ahead" in output and "t+2" in output
    assert (ckpt.path.parent / "val" / "mase_vs_steps_ahead.png").stat().st_size > 10_000
    train = held_out_series(ckpt.data, cfg, "train").targets[:, 0].astype(np.float64)
    # the change statistics are per step ahead, over the same training rows (float64
    # there, float32 rows here)
    for s in range(1, H + 1):
        change = train[s : train.size - H + s] - train[: train.size - H]
        assert cfg.change_mean[s - 1] == pytest.approx(change.mean(), rel=1e-5)
        assert cfg.change_std[s - 1] == pytest.approx(change.std(), rel=1e-5)
    test = held_out_series(ckpt.data, cfg, "test")
    assert test.targets.shape[0] == TEST_ROWS and report["steps_ahead"] == [1, 2, 3]
    # The model carries the linear highway (by default): validate reads the validation
    # split's last ar_lags rows first, filling its history, and scores the test rows.
    w = report["warmup_rows"]
    assert w == cfg.ar_lags == PERIOD + 1 == report["highway_lags"]
    val = held_out_series(ckpt.data, cfg, "val")
    y = np.concatenate([val.targets[-w:, 0], test.targets[:, 0]]).astype(np.float64)
    x = np.concatenate([val.features[-w:], test.features]).astype(np.float32)
    out = torch_outputs(ckpt.model, x).astype(np.float64)
    n = y.size
    lags = report["linear_baseline_lags"]
    assert lags == PERIOD + 1
    for result in report["results"]:
        assert [p["ahead"] for p in result["per_step"]] == [1, 2, 3]
        for p in result["per_step"]:
            s, got = p["ahead"], p["torch"]
            model_err = np.abs(out[w : n - s, s - 1] - y[w + s :])  # forecasts from the test rows
            persistence = np.abs(y[w : n - s] - y[w + s :]).mean()
            assert got["persistence_mae"][0] == pytest.approx(persistence, rel=1e-9)
            assert got["mase"][0] == pytest.approx(model_err.mean() / persistence, rel=1e-5)
            # truth t+s vs t+s-PERIOD (the warm-up rows reach back that far)
            seasonal = np.abs(y[w + s - PERIOD : n - PERIOD] - y[w + s :])
            assert got["seasonal_mae"][0] == pytest.approx(seasonal.mean(), rel=1e-9)
            want = model_err.mean() / seasonal.mean()
            assert got["mase_seasonal"][0] == pytest.approx(want, rel=1e-5)
            linear = np.abs(_hand_linear(train, y, s, lags)[w : n - s] - y[w + s :])
            assert got["linear_mae"][0] == pytest.approx(linear.mean(), rel=1e-6)
            want = model_err.mean() / linear.mean()
            assert got["mase_linear"][0] == pytest.approx(want, rel=1e-5)
        # the main columns score t + horizon, the last step ahead
        assert result["torch_truth"] == result["per_step"][-1]["torch"]
        # the artifact's scores are its own outputs' (float: the same as torch's here)
        assert result["artifact_truth"]["mase"][0] == pytest.approx(
            result["torch_truth"]["mase"][0], rel=1e-4
        )


def test_detect_scores_each_step_ahead_and_flags_on_t_plus_horizon(runs):
    ckpt, _, _ = runs[H]
    report = detect(ckpt.path.parent / "m.onnx", DetectOptions(record=ckpt.data, backend="ort"))
    y = report.actual[:, 0].astype(np.float64)
    assert report.outputs.shape == (y.size, 1)  # the t + horizon block scores anomalies
    steps = report.accuracy_per_step
    assert [p["ahead"] for p in steps] == [1, 2, 3]
    assert {k: v for k, v in steps[-1].items() if k != "ahead"} == asdict(report.accuracy)
    for p in steps:
        s = p["ahead"]
        assert p["persistence_mae"][0] == pytest.approx(np.abs(y[:-s] - y[s:]).mean(), rel=1e-9)
        assert p["mase_linear_mean"] is not None
    assert "accuracy_per_step" in report.to_dict()
    single = detect(runs[1][0].path.parent / "m.onnx", DetectOptions(record=runs[1][0].data))
    assert single.accuracy_per_step == [] and "accuracy_per_step" not in single.to_dict()


def test_horizon_one_keeps_its_config_and_report(runs):
    ckpt, report, output = runs[1]
    config = json.loads((ckpt.path / "config.json").read_text())
    assert config["horizon"] == 1 and "horizon_outputs" not in config
    assert "steps_ahead" not in report and "each step ahead" not in output
    assert not (ckpt.path.parent / "val" / "mase_vs_steps_ahead.png").exists()
    assert all("per_step" not in r for r in report["results"])
