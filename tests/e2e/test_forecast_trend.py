"""A clean trending, seasonal series end to end: a change-target model trained on it
follows the trend into rows above every training level (raw in, raw out), its anomaly
detector stays quiet there, and the level model trained the same way does not keep up.
Both without the linear highway (--ar-lags 0): the LSTM's targets alone (the highway is
tests/e2e/test_forecast_highway_pipeline.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.detect import DetectOptions, detect
from lstm_edge.toolchain.series import held_out_series
from lstm_edge.toolchain.train import TrainOptions, train

ROWS = 1500
PERIOD = 24


def _write_csv(path: Path) -> None:
    # A rise of 0.03 per row and a 24-row cycle with a little noise: the held-out rows
    # (the last 10%) lie above every value of the training split.
    rng = np.random.default_rng(0)
    t = np.arange(ROWS)
    value = 0.03 * t + np.sin(2 * np.pi * t / PERIOD) + 0.05 * rng.standard_normal(ROWS)
    lines = ["time,value"] + [f"{i},{v:.6f}" for i, v in zip(t, value, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def _train_and_detect(root: Path, csv: Path, kind: str):
    """Trains the change model with the default target kind (the validation rows leave
    the training range: changes), the level model by --target-kind level."""
    out = root / kind
    train(
        TrainOptions(
            out=out / "ckpt", task="forecast", csv=csv, target=("value",), time_column="time",
            target_kind=None if kind == "change" else kind, ar_lags="0", hidden=8, seq_len=24,
            batch_size=8, steps=250, eval_every=250, lr=2e-2, threads=1, progress=False,
        )
    )  # fmt: skip
    result = CliRunner().invoke(app, ["export", str(out / "ckpt"), "-o", str(out / "m.onnx")])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out / "ckpt")
    return ckpt, detect(out / "m.onnx", DetectOptions(record=ckpt.data, backend="numpy"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("trend")
    csv = root / "trend.csv"
    _write_csv(csv)
    return {kind: _train_and_detect(root, csv, kind) for kind in ("change", "level")}


def test_change_model_follows_the_trend_and_raises_no_false_alarm(runs):
    ckpt, report = runs["change"]
    assert ckpt.config.target_kind == "change"
    # Chosen by default: the share of validation rows above the training maximum.
    train = held_out_series(ckpt.data, ckpt.config, "train").targets
    val = held_out_series(ckpt.data, ckpt.config, "val").targets
    share = f"{np.mean(val > train.max()):.0%}"
    assert share != "0%" and ckpt.data["target_kind_source"] == (
        f"validation split: {share} of 'value' rows outside its training range (change from 5%)"
    )
    assert ckpt.data["season"] == PERIOD and ckpt.data["season_source"].startswith("detected")
    # Every held-out value is above the training split's maximum (the trend left it) ...
    train_max = held_out_series(ckpt.data, ckpt.config, "train").targets.max()
    assert report.actual.mean() > train_max + 1
    # ... and the forecasts follow: no flag on this clean series, better than persistence.
    assert int(report.flags.sum()) == 0, np.nanmax(report.scores)
    assert report.accuracy.mase_mean < 1.0


def test_level_model_lags_behind_the_same_trend(runs):
    (_, change), (ckpt, level) = runs["change"], runs["level"]
    assert ckpt.config.target_kind == "level" and ckpt.config.change_std == ()
    assert ckpt.data["target_kind_source"] == "--target-kind"
    info = CliRunner().invoke(app, ["info", str(ckpt.path), "--json"])
    assert json.loads(info.output)["data"]["target_kind_source"] == "--target-kind"
    # Trained the same way, the level model's held-out error is several times larger: its
    # outputs cannot leave the levels it saw.
    assert level.accuracy.mae[0] > 3 * change.accuracy.mae[0]
