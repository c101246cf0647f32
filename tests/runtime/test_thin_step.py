"""The ort backend's thin step path and the cheap checks under it: the same results as
the general path, bit for bit, the same errors, and a finiteness test that is exact and
warns about nothing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lstm_edge.runtime as rt
from lstm_edge.runtime.errors import InputError
from lstm_edge.runtime.state import State, finite


@pytest.fixture(scope="module")
def ort_model(artifacts):
    return rt.load(artifacts["none"], "ort")


def test_thin_path_equals_the_general_path_exactly(ort_model):
    assert ort_model._fast is not None
    tokens = np.random.default_rng(5).integers(0, 12, (3, 6))
    state = ort_model.initial_state(3)
    for t in range(tokens.shape[1]):
        ids = np.ascontiguousarray(tokens[:, t])
        logits, after = ort_model.step(ids, state)
        y, hn, cn = ort_model.runner.run(ids[:, None], state.h, state.c)
        np.testing.assert_array_equal(logits, y[:, 0])
        np.testing.assert_array_equal(after.h, hn)
        np.testing.assert_array_equal(after.c, cn)
        assert after._checked and not after.h.flags.writeable and not after.c.flags.writeable
        state = after


def test_binding_and_python_thin_paths_agree_exactly(ort_model):
    # Token models step through the CPython binding's ort_step where it builds (as here:
    # the c backend's binding); OrtRunner.fast_step is the fallback, the same in Python.
    from lstm_edge.runtime.backends.c_build import binding_headers
    from lstm_edge.runtime.backends.ort import OrtRunner

    fast, ctx = ort_model._fast
    assert (fast is OrtRunner.fast_step) == (binding_headers() is None)
    runner = ort_model.runner
    state = ort_model.initial_state(2)
    for ids in (np.array([3, 4]), np.array([[1, 2, 3], [4, 5, 6]])):
        a, sa = fast(ctx, ids, state)
        b, sb = OrtRunner.fast_step(runner, ids, state)
        np.testing.assert_array_equal(a, b)
        assert a.shape == b.shape
        np.testing.assert_array_equal(sa.h, sb.h)
        np.testing.assert_array_equal(sa.c, sb.c)
        assert sa._checked and not sa.h.flags.writeable and not sa.c.flags.writeable
    assert fast(ctx, np.array([3, 12]), state) is None  # out of range: named by the general path
    assert fast(ctx, np.array([3, 4], np.int32), state) is None  # other dtypes: general path


def test_thin_path_leaves_other_cases_to_the_general_path(ort_model):
    fast, runner = ort_model._fast
    made = ort_model.initial_state(2)
    mine = State(h=np.zeros((2, 2, 16), np.float32), c=np.zeros((2, 2, 16), np.float32))
    assert fast(runner, np.array([1, 2]), made) is not None
    assert fast(runner, np.array([1, 2]), mine) is None  # not known finite: tested there
    assert fast(runner, np.array([1, 2, 3]), made) is None  # wrong batch: named there
    assert fast(runner, np.array([1, 2]), (made.h, made.c)) is None
    # The general path then gives the same result as the thin one.
    a, sa = ort_model.step(np.array([1, 2]), made)
    b, sb = ort_model.step(np.array([1, 2]), mine)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa.h, sb.h)


@pytest.mark.parametrize("backend", ["numpy", "ort"])
@pytest.mark.parametrize(("token", "found"), [(12, 12), (-1, -1), (2**40, 2**40)])
def test_one_int64_id_out_of_range_is_named(artifacts, backend, token, found):
    model = rt.load(artifacts["none"], backend)
    with pytest.raises(InputError, match=rf"token id {found} at position \[0\] is out of range"):
        model.step(np.array([token], np.int64), model.initial_state())


def test_finite_is_exact_and_warns_about_nothing():
    ok = np.ones((2, 1, 4), np.float32)
    huge = np.full((2, 1, 4), 3e38, np.float32)  # squares overflow, values finite
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert finite(ok, ok) and finite(huge, ok) and finite(ok, huge)
        for bad in (np.inf, -np.inf, np.nan):
            worse = huge.copy()
            worse[1, 0, 2] = bad
            assert not finite(ok, worse) and not finite(worse)
