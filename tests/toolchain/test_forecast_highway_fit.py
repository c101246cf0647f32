"""The forecast task's linear highway on the training side: its fit is the linear baseline's
least squares (checked against a hand-built normal-equation solve), --ar-lags chooses it
(auto, 0, N; bad values refused), a new model starts as exactly the linear baseline, the
config and the run records carry it, resume keeps it, --ar-lags 0 is the model without it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain import series as series_mod
from lstm_edge.toolchain.checkpoint import CONFIG_FILE, load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.model import build_model
from lstm_edge.toolchain.series import Series, SeriesError, builtin_signal, write_csv
from lstm_edge.toolchain.tasks import forecast as forecast_training
from lstm_edge.toolchain.tasks import training
from lstm_edge.toolchain.train import TrainingError, TrainingInterrupted, TrainOptions, train

runner = CliRunner()
TINY = dict(hidden=8, seq_len=16, batch_size=4, log_every=1, threads=1, progress=False)


def _series(rows: int = 60, seed: int = 0) -> Series:
    """Two noisy trending columns and one input that is not a target."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    a = 0.1 * t + np.sin(t / 3) + 0.1 * rng.standard_normal(rows)
    b = np.cumsum(rng.standard_normal(rows))
    c = rng.standard_normal(rows)
    return Series(("a", "b", "c"), np.stack([a, b, c], 1), None, "test series", None)


def _config(series: Series, horizon: int, targets=("a", "b")) -> ModelConfig:
    split = series_mod.split_rows(series.rows)
    return series_mod.forecast_config(
        series, split, ("a", "b", "c"), targets, horizon=horizon,
        horizon_outputs="each" if horizon > 1 else "last", hidden_size=4, num_layers=1,
    )  # fmt: skip


def _by_hand(y: np.ndarray, ahead: int, lags: int) -> np.ndarray:
    """Least squares written out: rows t with `lags` changes behind them and a truth
    `ahead` rows later, [1, y[t] - y[t-1], ..., y[t-lags+1] - y[t-lags]] -> y[t+ahead] -
    y[t], solved by the normal equations."""
    rows, rhs = [], []
    for t in range(lags, len(y) - ahead):
        rows.append([1.0] + [y[t - j] - y[t - j - 1] for j in range(lags)])
        rhs.append(y[t + ahead] - y[t])
    x, b = np.array(rows), np.array(rhs)
    return np.linalg.solve(x.T @ x, x.T @ b)


def test_the_highway_is_the_linear_baseline_fit_per_output_step_major():
    series = _series()
    config = _config(series, horizon=2)  # outputs a+1, b+1, a+2, b+2
    train = series_mod.select(series, config, 0, 54).targets
    coef = np.array(forecast_training.highway_coef(config, train, 3)).reshape(4, 4)
    y = train.astype(np.float64)
    for row, (ahead, k) in enumerate([(1, 0), (1, 1), (2, 0), (2, 1)]):
        np.testing.assert_allclose(coef[row], _by_hand(y[:, k], ahead, 3), rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(coef[row], fe.fit_linear_ar(y[:, [k]], ahead, 3).coef[0])
    # In the config, it round-trips through JSON unchanged.
    config = dataclasses.replace(config, ar_lags=3, ar_coef=tuple(float(v) for v in coef.ravel()))
    assert ModelConfig.from_json(config.to_json()) == config


def test_a_new_highway_model_forecasts_exactly_as_the_linear_baseline():
    """The head at zero (`initialize`): the torch model's raw forecasts are the linear
    baseline's from the first step with `lags` changes behind it."""
    series = _series(rows=80)
    config = _config(series, horizon=1)
    train = series_mod.select(series, config, 0, 72).targets
    config = dataclasses.replace(
        config, ar_lags=4, ar_coef=forecast_training.highway_coef(config, train, 4)
    )
    model = build_model(config)
    training(config).initialize(model)
    assert not model.head.weight.any() and not model.head.bias.any()
    rows = series_mod.select(series, config)
    with torch.no_grad():
        y, _ = model(torch.from_numpy(rows.features)[None])
    want = fe.linear_ar_forecast(fe.fit_linear_ar(train, 1, 4), rows.targets.astype(np.float64))
    np.testing.assert_allclose(
        y[0, 4:].numpy(), want[4:], rtol=0, atol=2e-5 * np.nanmax(np.abs(want))
    )
    # Without a highway the head keeps torch's initialization.
    plain = build_model(_config(series, horizon=1))
    training(plain.config).initialize(plain)
    assert plain.head.weight.abs().sum() > 0


@pytest.mark.parametrize(
    ("asked", "season", "targets", "expected"),
    [
        (None, 52, ("a",), (53, "auto: the linear baseline's lagged changes (season 52 + 1)")),
        ("auto", None, ("a",), (8, "auto: the linear baseline's lagged changes (no season)")),
        ("0", 52, ("a",), (0, "--ar-lags")),
        (" 5", None, ("a",), (5, "--ar-lags")),
        (7, None, ("a",), (7, "--ar-lags")),
        (None, 4, ("a", "x"), (0, "auto: no highway (['x'] are not features, so it has no "
                                  "past values)")),
        (None, 300, ("a",), (0, "auto: no highway (the training split's 200 rows are too few)")),
    ],
)  # fmt: skip
def test_ar_lags_choice(asked, season, targets, expected):
    assert forecast_training.choose_ar_lags(asked, season, ("a", "b"), targets, 200, 1) == expected


@pytest.mark.parametrize(
    ("asked", "targets", "message"),
    [
        ("abc", ("a",), r"--ar-lags is 'abc' \(expected 'auto', 0 for no highway, or an "
                        "integer 1 to 4096"),
        ("-1", ("a",), r"--ar-lags is '-1' \(expected"),
        ("4097", ("a",), r"--ar-lags is '4097' \(expected"),
        (True, ("a",), r"--ar-lags is True \(expected"),
        ("3", ("a", "x"), r"--ar-lags 3 needs every target among the features .*\['x'\] are not"),
        ("198", ("a",), r"--ar-lags 198: the training split has 200 rows, too few to fit 198"),
    ],
)  # fmt: skip
def test_bad_ar_lags_are_refused(asked, targets, message):
    with pytest.raises(SeriesError, match=message):
        forecast_training.choose_ar_lags(asked, None, ("a", "b"), targets, 200, 1)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "machine.csv"
    write_csv(builtin_signal(400, seed=5), path)
    return path


def _train_cli(out: Path, csv: Path, *args: str):
    base = ["train", "--task", "forecast", "--csv", str(csv), "--target", "vibration"]
    base += ["--time-column", "time", "--label-column", "fault", "--season", "24"]
    base += ["--hidden", "8", "--seq-len", "16", "--batch-size", "4", "--threads", "1"]
    return runner.invoke(app, [*base, "--steps", "2", "--no-progress", "-o", str(out), *args])


def test_cli_records_the_highway_and_ar_lags_0_is_the_model_without_it(tmp_path, csv_file):
    r = _train_cli(tmp_path / "auto", csv_file)
    assert r.exit_code == 0, r.output
    auto = load_checkpoint(tmp_path / "auto")
    train_rows = series_mod.held_out_series(auto.data, auto.config, "train").targets
    assert auto.config.ar_lags == 25
    assert auto.config.ar_coef == forecast_training.highway_coef(auto.config, train_rows, 25)
    # auto trained the LSTM alone too; after 2 steps the highway (the linear baseline
    # from step 0) is the better on validation, and data.json says so with both figures.
    why = auto.data["ar_lags_source"]
    assert auto.data["ar_lags"] == 25
    assert re.fullmatch(
        r"auto: the linear baseline's lagged changes \(season 24 \+ 1\), kept by validation "
        r"\(best validation nrmse (\d\.\d{4}) without, nrmse (\d\.\d{4}) with 25 lagged "
        r"changes\)",
        why,
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    run = json.loads((tmp_path / "auto" / "train.json").read_text())
    assert run["highway"] == {"ar_lags": 25, "ar_lags_source": why}
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "auto"), "--json"]).output)
    assert info["data"]["ar_lags_source"] == why and info["config"]["ar_lags"] == 25
    assert "ar_coef" not in info["config"]  # 26 numbers say nothing at a glance

    r = _train_cli(tmp_path / "none", csv_file, "--ar-lags", "0")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "none" / CONFIG_FILE).read_text()
    # No highway: the config holds no highway key, as every config written before it.
    assert "ar_lags" not in text and "ar_coef" not in text
    assert ModelConfig.from_json(text) == dataclasses.replace(auto.config, ar_lags=0, ar_coef=())
    assert load_checkpoint(tmp_path / "none").data["ar_lags_source"] == "--ar-lags"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ar-lags", "many"], "--ar-lags is 'many' (expected 'auto', 0 for no highway"),
        (["--ar-lags", "3", "--features", "load,current"], "--ar-lags 3 needs every target"),
    ],
)
def test_cli_refuses_bad_ar_lags(tmp_path, csv_file, args, message):
    r = _train_cli(tmp_path / "run", csv_file, *args)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split()), r.output
    assert not (tmp_path / "run").exists()


def test_ar_lags_is_for_forecast_only(tmp_path):
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "run"), "--ar-lags", "3"])
    assert r.exit_code == 2 and "--ar-lags applies to --task forecast only" in r.output


def test_auto_without_the_targets_among_the_features_says_why(tmp_path, csv_file):
    r = _train_cli(tmp_path / "run", csv_file, "--features", "load,current")
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.config.ar_lags == 0 and ckpt.data["ar_lags_source"] == (
        "auto: no highway (['vibration'] are not features, so it has no past values)"
    )


def test_auto_keeps_the_lstm_alone_where_validation_prefers_it(tmp_path, csv_file, monkeypatch):
    """The run without the highway replaces the folder when its best validation is lower:
    its weights, config and data.json, which records the choice and both figures."""
    from lstm_edge.toolchain import train as train_mod

    results = []
    real = train_mod._train_once

    def train_once(options, on_step):
        result = real(options, on_step)
        # Make the second run (no highway) the better one, whatever 2 steps gave.
        if options.ar_lags == "0":
            result = dataclasses.replace(result, best_val=0.0)
        results.append(result)
        return result

    monkeypatch.setattr(train_mod, "_train_once", train_once)
    r = _train_cli(tmp_path / "auto", csv_file)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "auto")
    assert ckpt.config.ar_lags == 0 and ckpt.config.ar_coef == ()
    assert ckpt.data["ar_lags"] == 0
    with_hw = results[0].best_val
    assert ckpt.data["ar_lags_source"] == (
        f"auto: validation chose no highway (best validation nrmse 0.0000 without, "
        f"nrmse {with_hw:.4f} with 25 lagged changes)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto", "machine.csv"]
    # The kept folder is a whole run: validate reads it.
    assert runner.invoke(app, ["info", str(tmp_path / "auto")]).exit_code == 0


def test_an_interrupted_comparison_keeps_the_run_with_the_highway(tmp_path, csv_file, monkeypatch):
    """Ctrl-C during the run without the highway: the run with it stays whole in its
    folder, data.json says the comparison did not happen, no temporary folder is left."""
    from lstm_edge.toolchain import train as train_mod

    real = train_mod._train_once

    def train_once(options, on_step):
        if options.ar_lags == "0":
            raise TrainingInterrupted(1, options.out)
        return real(options, on_step)

    monkeypatch.setattr(train_mod, "_train_once", train_once)
    r = _train_cli(tmp_path / "auto", csv_file)
    assert r.exit_code == 130, r.output
    ckpt = load_checkpoint(tmp_path / "auto")
    assert ckpt.config.ar_lags == 25
    assert ckpt.data["ar_lags_source"] == (
        "auto: the linear baseline's lagged changes (season 24 + 1) (the comparison without "
        "it was interrupted)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto", "machine.csv"]


def test_resume_keeps_the_highway(tmp_path, csv_file):
    def options(**kw) -> TrainOptions:
        base = dict(task="forecast", csv=csv_file, target=("vibration",), time_column="time")
        base |= dict(ar_lags="6", steps=6, eval_every=2)
        return TrainOptions(out=tmp_path / "run", **{**base, **TINY, **kw})

    def interrupt(done: int, loss: float) -> None:
        if done == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(options(), on_step=interrupt)
    before = load_checkpoint(tmp_path / "run")
    assert before.config.ar_lags == 6
    with pytest.raises(TrainingError, match=r"--ar-lags 7 differs from the run being resumed"):
        train(TrainOptions(out=tmp_path / "run", resume=True, ar_lags="7", **TINY))
    result = train(TrainOptions(out=tmp_path / "run", resume=True, ar_lags="6", **TINY))
    after = load_checkpoint(tmp_path / "run")
    assert result.steps == 6 and after.config == before.config
    assert after.data["ar_lags_source"] == "--ar-lags"
