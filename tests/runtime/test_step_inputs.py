"""Bad tokens and states (bad-inputs rows 15-16): a typed error naming expected vs found,
the caller's state unchanged, and a fresh state working afterwards. Plus the value
semantics of State and Model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import lstm_edge.runtime as rt
from lstm_edge.runtime.errors import InputError


@pytest.fixture(scope="module", params=["numpy", "ort"])
def model(request, artifacts):
    return rt.load(artifacts["none"], request.param)


@pytest.fixture
def warm(model):
    """A non-zero state (after a few tokens) and a copy of its arrays."""
    _, state = model.step(np.array([[1, 2, 3], [4, 5, 6]]), model.initial_state(2))
    return state, state.h.copy(), state.c.copy()


def _unchanged(warm) -> None:
    state, h, c = warm
    np.testing.assert_array_equal(state.h, h)
    np.testing.assert_array_equal(state.c, c)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (np.array([1, 12]), r"token id 12 at position \[1\] is out of range \(expected 0 to 11\)"),
        (np.array([[1, 2], [3, -1]]), r"token id -1 at position \[1, 1\] is out of range"),
        (np.array([1.0, 2.0]), r"tokens have dtype float64 \(expected an integer dtype\)"),
        (np.array([True, False]), r"tokens have dtype bool"),
        (np.array(["a", "b"]), r"tokens have dtype <U1"),
        (np.zeros((2, 1, 1), np.int64), r"tokens have shape \[2, 1, 1\] \(expected \[batch\]"),
        (np.zeros((2, 0), np.int64), r"tokens have shape \[2, 0\]"),
        (np.array([1, 2, 3]), r"state has shape \[2, 2, 16\] \(expected .* \[2, 3, 16\]"),
    ],
)
def test_bad_tokens_name_expected_and_found(model, warm, tokens, message):
    with pytest.raises(InputError, match=message):
        model.step(tokens, warm[0])
    _unchanged(warm)


def test_huge_unsigned_token_is_out_of_range(model, warm):
    with pytest.raises(InputError, match="token id 18446744073709551615"):
        model.step(np.array([2**64 - 1, 0], np.uint64), warm[0])


def test_wrong_state_shape_names_expected_and_found(model, warm):
    other = rt.State(h=np.zeros((3, 2, 16), np.float32), c=np.zeros((3, 2, 16), np.float32))
    with pytest.raises(InputError, match=r"state has shape \[3, 2, 16\] \(expected .*\[2, 2, 16\]"):
        model.step(np.array([1, 2]), other)
    with pytest.raises(InputError, match=r"state is a tuple \(expected a State"):
        model.step(np.array([1, 2]), (warm[0].h, warm[0].c))
    _unchanged(warm)


def test_state_constructor_checks_dtype_and_shapes():
    ok = np.zeros((2, 1, 16), np.float32)
    with pytest.raises(InputError, match=r"state.h is float64 \(expected a float32"):
        rt.State(h=np.zeros((2, 1, 16)), c=ok)
    with pytest.raises(InputError, match=r"state.c has shape \[2, 16\] \(expected 3 dims"):
        rt.State(h=ok, c=np.zeros((2, 16), np.float32))
    with pytest.raises(InputError, match=r"state.h has shape \[2, 1, 16\] but state.c has"):
        rt.State(h=ok, c=np.zeros((2, 2, 16), np.float32))


@pytest.mark.parametrize("which", ["h", "c"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_state_is_refused_and_a_fresh_state_works(model, bad, which):
    arrays = {"h": np.zeros((2, 1, 16), np.float32), "c": np.zeros((2, 1, 16), np.float32)}
    arrays[which][1, 0, 3] = bad
    poisoned = rt.State(**arrays)
    with pytest.raises(InputError, match=rf"state\.{which} contains NaN or Inf"):
        model.step(np.array([3]), poisoned)
    logits, state = model.step(np.array([3]), model.initial_state())
    assert np.isfinite(logits).all() and np.isfinite(state.c).all()


def test_state_is_a_value(model):
    h = np.ones((2, 1, 16), np.float32)
    state = rt.State(h=h, c=h)
    h[:] = 7  # the caller's array, changed after construction
    assert (state.h == 1).all() and (state.c == 1).all()
    with pytest.raises(ValueError, match="read-only"):
        state.h[0, 0, 0] = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.h = h
    before = state.h.copy()
    _, after = model.step(np.array([4]), state)
    np.testing.assert_array_equal(state.h, before)  # step never mutates its input
    assert not np.array_equal(after.h, before) and not after.h.flags.writeable


def test_select_and_stack_check_their_arguments(model):
    state = model.initial_state(3)
    assert state.select([2, 0, 0]).batch == 3 and state.select(np.array([1])).batch == 1
    with pytest.raises(InputError, match="index 3 is out of range for a state of batch 3"):
        state.select([0, 3])
    with pytest.raises(InputError, match="expected a 1-D sequence of integers"):
        state.select([0.5])
    with pytest.raises(InputError, match="indices are empty"):
        state.select([])
    with pytest.raises(InputError, match=r"states\[1\] has layers x hidden 2 x 8"):
        rt.State.stack([state, rt.State(*(np.zeros((2, 1, 8), np.float32),) * 2)])
    with pytest.raises(InputError, match="non-empty sequence"):
        rt.State.stack([])
    with pytest.raises(InputError, match=r"batch is 0 \(expected an integer >= 1\)"):
        model.initial_state(0)


def test_model_is_immutable_and_does_not_reread_the_file(tmp_path, artifacts):
    path = tmp_path / "m.onnx"
    path.write_bytes(artifacts["none"].read_bytes())
    model = rt.load(path, "numpy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.backend = "ort"
    path.unlink()  # everything was checked and read at load
    logits, _ = model.step(np.array([1]), model.initial_state())
    want, _ = rt.load(artifacts["none"]).step(np.array([1]), model.initial_state())
    np.testing.assert_array_equal(logits, want)
    assert model.config.vocab_size == 12 and model.scheme == "none" and model.backend == "numpy"


def test_unknown_backend_lists_the_known_ones(artifacts):
    with pytest.raises(InputError, match=r"backend 'tflite' is unknown \(expected one of \["):
        rt.load(artifacts["none"], "tflite")
