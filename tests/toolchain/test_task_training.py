"""The tasks' training halves: one held-out stream builder per task, equal to the streams the
other stages build today (so they can switch to it), and per-task settings asked of the task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstm_edge.toolchain.budget import DEFAULT_SECONDS
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.run_config import RunConfig, TrainingError, default_text, run_config
from lstm_edge.toolchain.series import builtin_signal, write_csv
from lstm_edge.toolchain.tasks import all_training, training
from lstm_edge.toolchain.train import TrainOptions, train

TINY = dict(hidden=8, seq_len=8, batch_size=4, steps=2, eval_every=2, threads=1, progress=False)


@pytest.fixture(scope="module")
def char_ckpt(tmp_path_factory) -> Path:
    from lstm_edge.toolchain.data import load_corpus

    tmp = tmp_path_factory.mktemp("char")
    (tmp / "c.txt").write_text(load_corpus(None).text[:6000], encoding="utf-8")
    train(TrainOptions(tmp / "run", corpus=tmp / "c.txt", embed=8, **TINY))
    return tmp / "run"


@pytest.fixture(scope="module")
def forecast_ckpt(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("forecast")
    write_csv(builtin_signal(400, seed=5), tmp / "m.csv")
    options = dict(csv=tmp / "m.csv", target=("motor_temp",), time_column="time")
    train(TrainOptions(tmp / "run", task="forecast", label_column="fault", **options, **TINY))
    return tmp / "run"


@pytest.mark.parametrize("steps", [5, 10_000])
def test_char_lm_held_out_stream_is_validates_stream(char_ckpt, steps):
    """validate builds its stream with held_out_stream; both equal the stream validate built
    before it did (the split's ids, cut or wrapped around with np.resize)."""
    from lstm_edge.toolchain.data import encode, held_out_text
    from lstm_edge.toolchain.validate import build_stream

    ckpt = load_checkpoint(char_ckpt)
    s = training(ckpt.config).held_out_stream(ckpt.data, ckpt.config, "test", steps, cycle=True)
    ids = np.asarray(encode(held_out_text(ckpt.data, "test"), ckpt.config), dtype=np.int64)
    tokens = np.resize(ids, steps + 1) if steps + 1 > ids.size else ids[: steps + 1]
    assert np.array_equal(s.inputs, tokens[:-1])
    assert np.array_equal(s.targets, tokens[1:])
    assert (s.rows, s.cycled) == (ids.size, steps + 1 > ids.size)
    validates = build_stream(ckpt, steps, None)
    assert np.array_equal(validates.tokens, tokens) and validates.tokens.dtype == np.int64
    assert (validates.source_tokens, validates.cycled) == (s.rows, s.cycled)


@pytest.mark.parametrize("steps", [5, 10_000])
def test_forecast_held_out_stream_is_validates_stream(forecast_ckpt, steps):
    """As above for the series: the split's rows at (0..steps) % rows, and its season."""
    from lstm_edge.toolchain.series import held_out_series
    from lstm_edge.toolchain.validate import build_series_stream

    ckpt = load_checkpoint(forecast_ckpt)
    s = training(ckpt.config).held_out_stream(ckpt.data, ckpt.config, "test", steps, cycle=True)
    data = held_out_series(ckpt.data, ckpt.config, "test")
    rows = data.features.shape[0]
    take = np.arange(steps) % rows
    assert np.array_equal(s.inputs, data.features[take]) and s.inputs.dtype == np.float32
    assert np.array_equal(s.targets, data.targets[take]) and s.targets.dtype == np.float32
    assert (s.rows, s.cycled) == (rows, steps > rows)
    validates = build_series_stream(ckpt, steps, None)
    # A model with the linear highway reads the validation split's last ar_lags rows first
    # (all 20 here: fewer than its 97 lags), to fill its history; they are not scored.
    val = held_out_series(ckpt.data, ckpt.config, "val")
    assert ckpt.config.ar_lags == 97 and validates.warmup_rows == 20 == len(val.features)
    assert np.array_equal(validates.features, np.concatenate([val.features, s.inputs]))
    assert np.array_equal(validates.targets, np.concatenate([val.targets, s.targets]))
    assert (validates.source_rows, validates.cycled) == (rows, steps > rows)
    assert validates.season == data.season


@pytest.mark.parametrize("which", ["char", "forecast"])
def test_cut_held_out_stream_is_the_export_checks_stream(char_ckpt, forecast_ckpt, which):
    from lstm_edge.toolchain.export import check_stream

    ckpt = load_checkpoint(char_ckpt if which == "char" else forecast_ckpt)
    for steps in (3, 10_000):
        s = training(ckpt.config).held_out_stream(ckpt.data, ckpt.config, "test", steps)
        assert np.array_equal(s.inputs, check_stream(ckpt.data, ckpt.config, steps)[0])
        assert not s.cycled


def test_run_defaults_and_task_only_settings_come_from_the_task():
    forecast = training("forecast")
    assert run_config("forecast", {}).hidden == forecast.defaults["hidden"]
    # RunConfig's defaults are char-lm's, but for its default time budget.
    assert run_config("char-lm", {}) == RunConfig(time_budget=DEFAULT_SECONDS)
    assert run_config("forecast", {}).time_budget is None
    classify = training("classify")
    assert default_text("hidden") == (
        f"{RunConfig().hidden}; forecast {forecast.defaults['hidden']}; "
        f"classify {classify.defaults['hidden']}"
    )
    for task in all_training():
        for other in all_training():
            if other is task:
                continue
            for name in other.only:
                if name in task.only:  # shared (char-lm and text classify: embed, vocab)
                    assert getattr(run_config(task.name, {name: 2}), name) == 2
                    continue
                with pytest.raises(TrainingError, match=rf"to --task \S*{other.name}\S* only"):
                    run_config(task.name, {name: 2})
    assert forecast.threads(8) == 1 and training("char-lm").threads(1) >= 1
