"""The one stream comparison: errors in the task's units, per step, for [steps, out] and
[batch, steps, out] streams, non-finite outputs never passing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lstm_edge.exporters.compare import (
    EXPORT_CHECK_TOLERANCE,
    FORECAST_TOLERANCES,
    TOLERANCES,
    compare_streams,
)
from lstm_edge.exporters.onnx_export import CHECK_TOLERANCE
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig

CHAR_LM = ModelConfig(vocab=(UNK_CHAR, "a", "b"), embed_size=2, hidden_size=4, num_layers=1)
FORECAST = ModelConfig(
    task="forecast",
    vocab=(),
    embed_size=0,
    hidden_size=4,
    num_layers=1,
    features=("x",),
    targets=("y", "z"),
    horizon=1,
    feature_mean=(0.0,),
    feature_std=(1.0,),
    target_mean=(0.0, 0.0),
    target_std=(10.0, 0.5),
)


def test_per_step_max_mean_and_argmax_for_a_2d_stream():
    ref = np.zeros((4, 3), np.float32)
    out = ref.copy()
    out[1, 2] = 0.5
    out[3, 0] = -0.25
    r = compare_streams(CHAR_LM, ref, out, tolerance=1.0)
    np.testing.assert_array_equal(r.step_errors, [0.0, 0.5, 0.0, 0.25])
    assert (r.steps, r.max_abs_err, r.argmax_step) == (4, 0.5, 1)
    assert r.mean_abs_err == pytest.approx(0.1875)
    assert r.passed and r.finite and r.first_nonfinite_step is None
    assert r.unit == "logit error" and r.state_err is None


def test_a_batch_axis_is_reduced_into_each_step():
    ref = np.zeros((2, 3, 3), np.float32)
    out = ref.copy()
    out[1, 2, 1] = 2.0
    r = compare_streams(CHAR_LM, ref, out, tolerance=1.0)
    np.testing.assert_array_equal(r.step_errors, [0.0, 0.0, 2.0])
    assert not r.passed and r.argmax_step == 2


def test_forecast_errors_are_in_target_standard_units():
    ref = np.zeros((2, 2), np.float32)
    out = np.array([[1.0, 0.0], [0.0, 0.25]], np.float32)  # 1/10 std, then 0.25/0.5 std
    r = compare_streams(FORECAST, ref, out)
    np.testing.assert_allclose(r.step_errors, [0.1, 0.5])
    assert r.passed and r.tolerance is None  # no tolerance: nothing to fail
    assert r.unit == "forecast error (in target std units)"


def test_state_errors_are_unscaled_and_cover_every_tensor():
    ref = np.zeros((1, 2), np.float32)
    h, c = np.zeros((1, 1, 4), np.float32), np.zeros((1, 1, 4), np.float32)
    c2 = c.copy()
    c2[0, 0, 3] = 0.125
    r = compare_streams(FORECAST, ref, ref, reference_state=(h, c), state=(h, c2))
    assert r.state_err == 0.125


def test_non_finite_outputs_never_pass():
    ref = np.zeros((3, 3), np.float32)
    out = ref.copy()
    out[1, 0] = np.nan
    r = compare_streams(CHAR_LM, ref, out, tolerance=math.inf)
    assert not r.passed and not r.finite
    assert r.first_nonfinite_step == 1 and r.argmax_step == 1
    assert math.isnan(r.max_abs_err)


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="expected equal shapes"):
        compare_streams(CHAR_LM, np.zeros((3, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="expected equal shapes"):
        compare_streams(CHAR_LM, np.zeros(3), np.zeros(3))


def test_one_table_holds_every_tolerance():
    assert CHECK_TOLERANCE == EXPORT_CHECK_TOLERANCE == 1e-4
    # every scheme an artifact may carry has its bounds in each task's table
    from lstm_edge.exporters.compare import CLASSIFY_TOLERANCES
    from lstm_edge.runtime.format import QUANT_SCHEMES

    assert set(TOLERANCES) == set(FORECAST_TOLERANCES) == set(CLASSIFY_TOLERANCES)
    assert set(TOLERANCES) == set(QUANT_SCHEMES)


# ---- codegen --check against torch: the task's EVAL.check_against_torch ---------------------


def _char_lm_check(outputs, reference, scheme):
    from lstm_edge.toolchain.tasks import evaluation

    inputs = np.array([1, 2, 0, 1, 2, 1], np.int64)
    steps = np.array([0, 2, 5])
    return evaluation(CHAR_LM).check_against_torch(
        outputs, reference, inputs, steps, scheme, CHAR_LM
    )


def test_char_lm_check_against_torch_passes_a_copy_and_names_each_bound():
    ref = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [1.0, 0.5, 4.0]], np.float32)
    assert _char_lm_check(ref.copy(), ref, "none") == (0.0, 1.0, [])
    assert _char_lm_check(ref.copy(), ref, "int8") == (0.0, 1.0, [])

    off = ref.copy()
    off[1, 0] += 0.25  # one logit off by 0.25, the argmax unchanged
    assert _char_lm_check(off, ref, "none") == (0.25, 1.0, ["max abs logit error 0.25 > 0.001"])

    flipped = np.roll(ref, 1, axis=1)  # every argmax moved: top-1 0 and the BPC far up
    max_err, top1, failures = _char_lm_check(flipped, ref, "int8")
    assert (max_err, top1) == (3.5, 0.0)
    assert failures[0] == "top-1 agreement 0.0000 < 0.95"
    assert failures[1].startswith("BPC increase +") and failures[1].endswith(" > 0.05")
    assert len(failures) == 2


def test_forecast_check_against_torch_in_target_std_units():
    from lstm_edge.toolchain.tasks import evaluation

    task = evaluation(FORECAST)
    ref = np.array([[10.0, 1.0], [20.0, 2.0], [30.0, 3.0]], np.float32)
    inputs = np.zeros((5, 1), np.float32)
    steps = np.array([0, 2, 4])
    assert task.check_against_torch(ref.copy(), ref, inputs, steps, "none", FORECAST) == (
        0.0,
        None,
        [],
    )
    off = ref.copy()
    off[2, 1] += 0.25  # 0.25 / target std 0.5 = 0.5 std at one step
    assert task.check_against_torch(off, ref, inputs, steps, "none", FORECAST) == (
        0.5,
        None,
        ["max error 0.5 target std > 0.0001"],
    )
    # int8 bounds only the mean error: 0.5 / 3 steps
    assert task.check_against_torch(off, ref, inputs, steps, "int8", FORECAST) == (
        0.5,
        None,
        ["mean error 0.167 target std > 0.03"],
    )
