"""The honest baselines (persistence, seasonal persistence, the linear autoregression on
lagged changes) against numbers worked out by hand, and the season detector on series
whose period is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.series import (
    ROWS_PER_DAY,
    Series,
    SeriesError,
    autocorrelation,
    builtin_signal,
    choose_target_kind,
    detect_season,
    out_of_range_shares,
    season_name,
    split_rows,
)

# y and its changes d[t] = y[t] - y[t-1]: d = [-, 1, 2, 1, 2, 3, 1]
Y = np.array([0.0, 1.0, 3.0, 4.0, 6.0, 9.0, 10.0])


def test_linear_baseline_is_the_least_squares_fit_worked_by_hand():
    # lags 1, horizon 1: d[t + 1] ~ c + a * d[t] over t = 1..5, the pairs (1->2), (2->1),
    # (1->2), (2->3), (3->1): mean 1.8 both, Sxx = 2.8, Sxy = -1.2, so a = -3/7 and
    # c = 1.8 - a * 1.8 = 18/7.
    model = fe.fit_linear_ar(Y[:, None], horizon=1, lags=1)
    np.testing.assert_allclose(model.coef, [[18 / 7, -3 / 7]], rtol=1e-12)
    # output t = y[t] + c + a * d[t]: NaN at t = 0 (no change yet), 1 + 15/7, 3 + 12/7
    out = fe.linear_ar_forecast(model, Y[:3, None])[:, 0]
    assert math.isnan(out[0])
    np.testing.assert_allclose(out[1:], [22 / 7, 33 / 7], rtol=1e-12)


def test_linear_baseline_recovers_an_exact_autoregression_several_steps_ahead():
    # d[t] = 0.5 + 0.6 d[t-1] - 0.3 d[t-2] exactly: the 3-step-ahead change is a linear
    # function of the last two changes, so the fit predicts every step without error.
    d = [1.0, 0.0]
    for _ in range(200):
        d.append(0.5 + 0.6 * d[-1] - 0.3 * d[-2])
    y = np.cumsum(d)
    model = fe.fit_linear_ar(y[:, None], horizon=3, lags=2)
    out = fe.linear_ar_forecast(model, y[:, None])[:, 0]
    np.testing.assert_allclose(out[2:-3], y[5:], atol=1e-9)


def test_mase_against_each_baseline_matches_the_hand_computation():
    # The model forecasts y[t] + 1.5 for y[t + 1]: errors 1.5 - d[t + 1] =
    # [.5, -.5, .5, -.5, -1.5, .5], MAE 4/6; persistence's MAE is mean |d| = 10/6.
    outputs = (Y + 1.5)[:, None]
    linear = fe.fit_linear_ar(Y[:, None], horizon=1, lags=1)
    s = fe.forecast_scores(outputs, Y[:, None], 1, [1.0], season=2, linear=linear)
    assert s.persistence_mae == pytest.approx([10 / 6])
    assert s.mase == pytest.approx([0.4])
    # season 2: y[t - 1] for y[t + 1] on t = 1..5: |0-3|, |1-4|, |3-6|, |4-9|, |6-10|,
    # MAE 18/5; the model's MAE on those steps is 3.5/5.
    assert s.seasonal_mae == pytest.approx([3.6])
    assert s.mase_seasonal == pytest.approx([0.7 / 3.6])
    # linear (fitted above) errors on t = 1..5: 1/7, 5/7, 1/7, -9/7, 2/7: MAE 18/35.
    assert s.linear_mae == pytest.approx([18 / 35])
    assert s.mase_linear == pytest.approx([0.7 / (18 / 35)])
    assert "does NOT beat the linear baseline" in fe.linear_verdict(s)
    better = fe.forecast_scores(Y[1:, None], Y[:-1, None], 1, [1.0], linear=linear)
    assert better.mase_linear_mean == 0.0 and "beats the linear" in fe.linear_verdict(better)


def test_fit_refuses_a_training_split_too_short_for_its_lags():
    with pytest.raises(fe.ForecastEvalError, match="too few"):
        fe.fit_linear_ar(Y[:, None], horizon=1, lags=6)


def _trend_and_season(rows: int, period: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    shape = np.sin(2 * np.pi * t / period) + 0.4 * np.sin(4 * np.pi * t / period + 1.0)
    return (shape + 0.002 * t + 3e-6 * t**2 + 0.3 * rng.standard_normal(rows))[:, None]


@pytest.mark.parametrize("period", [24, 50, 96])
def test_season_detector_finds_a_known_period_under_trend_noise_and_harmonics(period):
    assert detect_season(_trend_and_season(12 * period, period)) == period


def test_season_detector_finds_a_yearly_cycle_in_weekly_rows():
    # Weekly samples of a yearly cycle: 52.18 rows per season, as in Mauna Loa CO2.
    assert detect_season(_trend_and_season(2000, 365.25 / 7)) == 52


def test_season_detector_finds_the_day_of_the_builtin_signal():
    series = builtin_signal(rows=ROWS_PER_DAY * 40)
    cols = [series.columns.index("motor_temp"), series.columns.index("vibration")]
    assert detect_season(series.values[:, cols]) == ROWS_PER_DAY


def test_season_detector_finds_a_daily_cycle_under_a_slow_swing():
    # Half-hourly rows: a daily cycle plus a swing over a quarter of the series that the
    # parabola leaves in; the autocorrelation stays above zero at half a day, so looking
    # for the season only after it first goes negative found a multiple (144) instead.
    rows = 48 * 7 * 12
    t = np.arange(rows)
    rng = np.random.default_rng(0)
    swing = 1.1 * np.sin(2 * np.pi * t / (rows / 4))
    values = (np.cos(2 * np.pi * t / 48) + swing + 0.3 * rng.standard_normal(rows))[:, None]
    x = values[:, 0] - np.polyval(np.polyfit(t / rows, values[:, 0], 2), t / rows)
    assert autocorrelation(x, 48)[24] > 0  # the case this is about
    assert detect_season(values) == 48


def test_season_detector_reports_none_without_a_season():
    rng = np.random.default_rng(1)
    assert detect_season(rng.standard_normal((2000, 1))) is None
    t = np.arange(2000.0)[:, None]  # a bending trend with noise, no cycle
    assert detect_season(0.01 * t + 2e-5 * t**2 + rng.standard_normal((2000, 1))) is None
    assert detect_season(np.arange(8.0)[:, None]) is None  # too short to hold 3 seasons


@pytest.mark.parametrize(
    ("season", "step", "name"),
    [
        (52, 7 * 86400.0, "52 steps = 1 year"),
        (96, 900.0, "96 steps = 1 day"),
        (7, 86400.0, "7 steps = 1 week"),
        (12, 300.0, "12 steps = 1 hour"),
        (30, 86400.0, "30 steps = 4.3 weeks"),
        (12, None, "12 steps"),
    ],
)
def test_season_named_in_human_units_from_the_time_spacing(season, step, name):
    assert season_name(season, step) == name


def test_linear_baseline_of_a_cycled_stream_is_scored_on_the_first_pass_only():
    linear = fe.fit_linear_ar(Y[:, None], horizon=1, lags=1)
    cycled = np.concatenate([Y, Y])[:, None]  # one seam: 10 -> 0
    outputs = cycled + 1.5
    first = fe.forecast_scores(outputs[:7], cycled[:7], 1, [1.0], linear=linear)
    both = fe.forecast_scores(outputs, cycled, 1, [1.0], linear=linear, linear_rows=7)
    assert both.linear_mae == first.linear_mae and both.mase_linear == first.mase_linear


def test_linear_baseline_is_left_out_of_a_stream_shorter_than_its_lags():
    # 53 lags (a weekly season) and a 20-step stream: no forecast has its history, so the
    # score has no linear baseline and says why (this raised a numpy broadcast error).
    linear = fe.LinearAR(horizon=1, lags=53, coef=np.zeros((1, 54)))
    targets = np.arange(20.0)[:, None]
    scores = fe.forecast_scores(targets + 0.5, targets, 1, [1.0], linear=linear)
    assert scores.linear_mae is None and scores.mase_linear is None
    np.testing.assert_allclose(scores.mase, [0.5])  # persistence is still scored
    assert "shorter than its lagged changes" in fe.linear_verdict(scores)


def test_target_kind_follows_the_validation_split_out_of_the_training_range():
    # value rises by 1 per row: train 0..359, val 360..379, all above (100%); other
    # repeats 0..6, inside its training range (0%).
    t = np.arange(400.0)
    trending = Series(("value", "other"), np.stack([t, t % 7], 1), None, "trend", None)
    split = split_rows(400)
    assert out_of_range_shares(trending, split, ("value", "other")) == {"value": 1.0, "other": 0.0}
    kind, why = choose_target_kind(None, trending, split, ("value", "other"), ("value",))
    assert kind == "change" and why.startswith("validation split: 100% of 'value' rows outside")
    # Training rows 0..359 hold 0..359; val rows hold 350..359 (inside), then 360..369.
    rows = np.r_[np.arange(360.0), np.arange(350, 370.0), np.zeros(20)]
    half = Series(("value",), rows[:, None], None, "half", None)
    assert out_of_range_shares(half, split, ("value",)) == {"value": 0.5}
    # A target that is no input has no last value to add back: level.
    assert choose_target_kind(None, trending, split, ("other",), ("value",))[0] == "level"
    with pytest.raises(SeriesError, match="needs every target among the features"):
        choose_target_kind("change", trending, split, ("other",), ("value",))
    assert choose_target_kind("level", trending, split, ("value",), ("value",)) == (
        "level", "--target-kind")  # fmt: skip
    machine = builtin_signal(rows=4000)  # stays in range: the level model flags slow faults
    targets = ("motor_temp", "vibration")
    kind, why = choose_target_kind(None, machine, split_rows(4000), machine.columns, targets)
    assert kind == "level" and why.startswith("validation split: 0% of")
