"""forecast_eval: every metric against values computed by hand on tiny series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstm_edge.toolchain import forecast_eval as fe

# One target, 6 steps; horizon 1: output t predicts targets[t + 1].
TARGETS = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 6.0])
OUTPUTS = np.array([2.5, 3.0, 3.0, 6.0, 5.0, 99.0])  # the last output has no truth


def test_aligned_errors_pair_output_t_with_target_t_plus_h():
    err = fe.aligned_errors(OUTPUTS, TARGETS, 1)
    # 2.5-2, 3-4, 3-3, 6-5, 5-6
    assert err[:, 0].tolist() == [0.5, -1.0, 0.0, 1.0, -1.0]
    err2 = fe.aligned_errors(OUTPUTS, TARGETS, 2)  # 2.5-4, 3-3, 3-5, 6-6
    assert err2[:, 0].tolist() == [-1.5, 0.0, -2.0, 0.0]
    assert fe.aligned_errors(OUTPUTS, TARGETS, 0)[:, 0].tolist() == (OUTPUTS - TARGETS).tolist()


def test_mae_rmse_per_target():
    err = np.array([[0.5, 2.0], [-1.0, 0.0], [0.0, -2.0], [1.0, 0.0]])
    assert fe.mae(err).tolist() == [0.625, 1.0]  # (0.5+1+0+1)/4, (2+0+2+0)/4
    assert fe.rmse(err) == pytest.approx([math.sqrt(2.25 / 4), math.sqrt(2.0)])


def test_persistence_and_seasonal_persistence():
    p = fe.persistence_forecast(TARGETS, 1)
    # persistence errors: targets[t] - targets[t+1]: 1-2, 2-4, 4-3, 3-5, 5-6
    assert fe.aligned_errors(p, TARGETS, 1)[:, 0].tolist() == [-1, -2, 1, -2, -1]
    s = fe.seasonal_persistence_forecast(TARGETS, 1, 3)
    # output t predicts targets[t+1] by targets[t+1-3] = targets[t-2]
    assert np.isnan(s[:2, 0]).all()
    assert s[2:, 0].tolist() == [1.0, 2.0, 4.0, 3.0]
    with pytest.raises(fe.ForecastEvalError, match="shorter than the horizon"):
        fe.seasonal_persistence_forecast(TARGETS, 4, 3)


def test_forecast_scores_mase_is_mae_over_persistence_mae_on_the_same_steps():
    s = fe.forecast_scores(OUTPUTS, TARGETS, 1, target_std=[2.0], season=3)
    assert s.steps == 5
    assert s.mae == [pytest.approx(3.5 / 5)]
    assert s.persistence_mae == [pytest.approx(7 / 5)]  # |-1|+|-2|+1+|-2|+|-1|
    assert s.mase == [pytest.approx(0.5)]
    assert s.mae_std == pytest.approx(3.5 / 5 / 2)
    assert s.rmse == [pytest.approx(math.sqrt((0.25 + 1 + 0 + 1 + 1) / 5))]
    # seasonal: steps t = 2..4 (where targets[t-2] exists): predictions 1, 2, 4 for
    # targets 3, 5, 6 -> |err| 2, 3, 2; the model's errors there: 0, 1, 1
    assert s.seasonal_mae == [pytest.approx(7 / 3)]
    assert s.mase_seasonal == [pytest.approx((2 / 3) / (7 / 3))]


def test_mase_of_a_constant_target_is_nan_not_a_division_by_zero():
    flat = np.ones(5)
    s = fe.forecast_scores(flat + 0.1, flat, 1, target_std=[1.0])
    assert math.isnan(s.mase[0]) and math.isnan(s.mase_mean)


def test_anomaly_scores_flags_and_runs():
    targets = np.array([[0.0, 0.0], [1.0, 10.0], [2.0, 20.0], [3.0, 60.0]])
    outputs = np.array([[1.5, 10.0], [2.0, 0.0], [3.0, 20.0], [0.0, 0.0]])
    scores = fe.anomaly_scores(outputs, targets, 1, [0.5, 10.0])
    # step 1: max(|1.5-1|/.5, |10-10|/10) = 1; step 2: max(0, 20/10) = 2;
    # step 3: max(0, 40/10) = 4; step 0 has no forecast
    assert np.isnan(scores[0])
    assert scores[1:].tolist() == [1.0, 2.0, 4.0]
    assert fe.flag(scores, 1.5).tolist() == [False, False, True, True]
    assert fe.runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [(0, 2), (3, 4), (6, 7)]
    assert fe.runs(np.zeros(3, bool)) == []
    with pytest.raises(fe.ForecastEvalError, match="one per target"):
        fe.anomaly_scores(outputs, targets, 1, [0.5, 0.0])


def test_event_scores_by_hand():
    faults = np.zeros(30, bool)
    faults[5:8] = True  # event A, detected 2 steps after its end (inside the lag)
    faults[15:18] = True  # event B, detected at its second step
    faults[25:27] = True  # event C, missed
    flags = np.zeros(30, bool)
    flags[9] = True  # A's window is [5, 8 + 3)
    flags[16:18] = True  # B: one run of 2 steps
    flags[21] = True  # a false alarm (B's window ends at 21, exclusive)
    e = fe.event_scores(flags, faults, lag=3)
    assert (e.events, e.detected) == (3, 2)
    assert e.recall == pytest.approx(2 / 3)
    assert (e.flag_runs, e.true_runs) == (3, 2)
    assert e.precision == pytest.approx(2 / 3)
    assert e.flagged_steps == 4 and e.step_precision == pytest.approx(3 / 4)
    assert e.mean_delay == pytest.approx((4 + 1) / 2)  # A: 9-5, B: 16-15
    empty = fe.event_scores(np.zeros(4, bool), np.zeros(4, bool))
    assert math.isnan(empty.recall) and math.isnan(empty.precision)


@given(st.lists(st.booleans(), max_size=40))
def test_runs_cover_exactly_the_true_steps(mask):
    m = np.array(mask, dtype=bool)
    rebuilt = np.zeros(m.size, bool)
    for a, b in fe.runs(m):
        assert a < b and not rebuilt[a:b].any()
        rebuilt[a:b] = True
    assert rebuilt.tolist() == m.tolist()


def test_residual_scale_is_robust_to_a_minority_of_faults():
    rng = np.random.default_rng(0)
    err = rng.normal(0.0, 2.0, size=(20_000, 1))
    err[:1000] += 500.0  # 5% of the steps are faults
    scale = fe.residual_scale(err, [10.0])
    # 1.4826 * median|N(0, 2)| = 2 without faults. With 5% of the steps far out, the
    # median of |err| is the 0.5/0.95 = 52.6% quantile of the normal |err|: |z| = 0.716
    # instead of 0.674, so 2 * 0.716/0.674 = 2.12; 20,000 samples add ~1% noise.
    assert scale[0] == pytest.approx(2.0 * 0.7164 / 0.6745, rel=0.03)
    assert np.std(err) > 50  # the plain std would be useless here
    cal = fe.calibration_from_errors(err, [10.0])
    assert cal["split"] == "train" and cal["threshold"] == fe.DEFAULT_THRESHOLD
    assert cal["residual_scale"] == [pytest.approx(scale[0])]
    # an exactly predicted target gets the floor, not 0
    assert fe.residual_scale(np.zeros((5, 1)), [3.0])[0] == 3.0 * fe.MIN_SCALE_FRACTION


def test_shape_mismatch_is_a_typed_error():
    with pytest.raises(fe.ForecastEvalError, match="differ in shape"):
        fe.aligned_errors(np.zeros((4, 2)), np.zeros((4, 1)), 1)
    with pytest.raises(fe.ForecastEvalError, match="nothing to score"):
        fe.aligned_errors(np.zeros(2), np.zeros(2), 2)
