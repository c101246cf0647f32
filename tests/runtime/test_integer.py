"""The int8-full scheme's numpy reference (runtime/integer.py) and its parameters
(exporters/quantize_full.py): each primitive against values worked out by hand, one layer's
integer step against a float64 LSTM step within a derived bound, the state check, and
the forecast highway's float32 stage against a scalar loop and the float graph's."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from integer_models import int8_full
from rt_helpers import tiny_config

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.exporters.quantize_full import (
    CalibrationError,
    Ranges,
    build_scheme,
    cell_fracs,
    quantize_multiplier,
)
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import lstm_b, lstm_r, lstm_w
from lstm_edge.runtime.errors import InputError
from lstm_edge.runtime.format import HIGHWAY_BIAS, HIGHWAY_SELECT, HIGHWAY_WEIGHT
from lstm_edge.runtime.integer import (
    cell_values,
    codes,
    dot,
    head,
    highway,
    input_codes,
    lut,
    rmul,
    sigmoid64,
    step_layer,
    table,
    to_q312,
)
from lstm_edge.runtime.tasks.forecast import apply_highway
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM

# ---- rmul: a x M x 2^-S rounded half up -------------------------------------------------------

HALF = 1 << 30  # M = 2^30 with S = 31 is x 0.5: every odd a lands exactly on a half


@pytest.mark.parametrize(
    "a, mult, shift, want",
    [
        (5, HALF, 31, 3),  # 2.5 -> 3
        (-5, HALF, 31, -2),  # -2.5 -> -2 (half up, not away from zero)
        (3, HALF, 31, 2),  # 1.5 -> 2
        (-3, HALF, 31, -1),  # -1.5 -> -1
        (1, HALF, 31, 1),  # 0.5 -> 1
        (-1, HALF, 31, 0),  # -0.5 -> 0
        (4, HALF, 31, 2),  # exact
        (2, 3 << 29, 31, 2),  # x 0.75: 1.5 -> 2
        (-2, 3 << 29, 31, -1),  # -1.5 -> -1
        (-3, 3 << 29, 31, -2),  # -2.25 -> -2
        (-7, 3 << 29, 31, -5),  # -5.25 -> -5
        (1000, 3 << 29, 20, 1000 * 3 * 2**9),  # shift below 31: x 1536, exact
        # the extremes: |a| < 2^31, M < 2^31, S = 62; the product + round fits int64
        (2**31 - 1, 2**31 - 1, 62, 1),  # (1 - 2^-31)^2 -> 1
        (-(2**31), 2**31 - 1, 62, -1),  # -(1 - 2^-31) -> -1
        (0, 2**31 - 1, 62, 0),
    ],
)
def test_rmul_rounds_half_up(a, mult, shift, want):
    got = rmul(np.array([a]), mult, shift)
    assert got.dtype == np.int64 and int(got[0]) == want


def test_rmul_takes_per_row_multipliers_and_shifts():
    a = np.array([[5, -5, 7]])
    got = rmul(a, np.array([HALF, HALF, 3 << 29]), np.array([31, 32, 31]))
    # 2.5 -> 3; -1.25 -> -1; 5.25 -> 5
    np.testing.assert_array_equal(got, [[3, -1, 5]])


# ---- lut: table interpolation ----------------------------------------------------------------

SIG = table(sigmoid64)
TANH = table(np.tanh)


def test_tables_hold_the_rounded_functions_at_their_points():
    # by hand: 32767 sigmoid(-8) = 10.99 -> 11; 32767 sigmoid(0) = 16383.5 -> 16384 (half
    # up); 32767 sigmoid(1/16) = 16895.32 -> 16895; 32767 sigmoid(8) = 32756.01 -> 32756
    assert (SIG[0], SIG[128], SIG[129], SIG[256]) == (11, 16384, 16895, 32756)
    # 32767 tanh(1/16) = 2045.28 -> 2045; tanh is odd; 32767 tanh(8) = 32766.99 -> 32767
    assert (TANH[128], TANH[129], TANH[127], TANH[256], TANH[0]) == (0, 2045, -2045, 32767, -32767)
    assert SIG.dtype == TANH.dtype == np.int16 and len(SIG) == len(TANH) == 257


def test_lut_at_table_points_is_the_entry():
    k = np.arange(257)
    points = 256 * k - 32768  # Q3.12 code of the table's x
    inside = points <= 32767  # k = 256 is x = 8.0, beyond int16: reached only by interpolation
    np.testing.assert_array_equal(lut(SIG, points[inside]), SIG[k[inside]])
    np.testing.assert_array_equal(lut(TANH, points[inside]), TANH[k[inside]])


def test_lut_between_points_and_at_the_ends():
    # x = 128 (1/32): k = 128, fr = 128: 16384 + ((16895 - 16384) * 128 + 128) >> 8 = 16640
    # x = -128: k = 127 (SIG 15872), fr = 128: 15872 + (512 * 128 + 128) >> 8 = 16128
    # x = -32768 (-8): k = 0, fr = 0: SIG[0] = 11
    # x = 32767: k = 255 (SIG 32755), fr = 255: 32755 + ((1 * 255 + 128) >> 8) = 32756
    got = lut(SIG, np.array([128, -128, -32768, 32767]))
    np.testing.assert_array_equal(got, [16640, 16128, 11, 32756])
    # TANH[255] = 32767 tanh(7.9375) = 32766.99 -> 32767: the top segment is flat
    np.testing.assert_array_equal(lut(TANH, np.array([32767, -32768])), [32767, -32767])


def test_lut_rounds_a_falling_segment_half_up():
    falling = -3 * np.arange(257)  # slope -3 per segment: -3 fr / 256 lands on halves
    # x = -32768 + 128: k = 0, fr = 128: -1.5 -> -1 (half up); fr = 43: -0.504 -> -1;
    # fr = 42: -0.492 -> 0; k = 5, fr = 0: -15
    x = np.array([128, 43, 42, 5 * 256]) - 32768
    np.testing.assert_array_equal(lut(falling, x), [-1, -1, 0, -15])


# ---- to_q312: a cell format to Q3.12 ------------------------------------------------------------


@pytest.mark.parametrize(
    "c, frac, want",
    [
        (12345, 12, 12345),  # same format
        (-32768, 12, -32768),
        (5, 14, 1),  # 1.25 -> 1
        (6, 14, 2),  # 1.5 -> 2 (half up)
        (-6, 14, -1),  # -1.5 -> -1
        (-7, 14, -2),  # -1.75 -> -2
        (12, 15, 2),  # 1.5 -> 2
        (-12, 15, -1),  # -1.5 -> -1
        (32767, 15, 4096),  # 4095.875 -> 4096
        (100, 10, 400),  # frac < 12: shift left
        (-100, 10, -400),
        (9000, 10, 32767),  # 36000 saturates
        (-9000, 10, -32768),
        (7, 0, 28672),  # 7 in Q3.12
        (8, 0, 32767),  # 8.0 is beyond Q3.12: saturates
        (-8, 0, -32768),  # -8.0 fits exactly
        (-9, 0, -32768),
    ],
)
def test_to_q312(c, frac, want):
    assert int(to_q312(np.array([c]), np.array([frac]))[0]) == want


def test_to_q312_per_unit_formats():
    got = to_q312(np.array([[6, 6, 6]]), np.array([14, 12, 10]))
    np.testing.assert_array_equal(got, [[2, 6, 24]])


# ---- dot: float64 BLAS is exact on int8 codes ---------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data(), batch=st.integers(1, 4), rows=st.integers(1, 12), n=st.integers(1, 2048))
def test_dot_equals_an_int64_einsum(data, batch, rows, n):
    # the full int8 range, -128 included: the claim does not lean on symmetric codes
    codes8 = st.integers(-128, 127)
    x = data.draw(hnp.arrays(np.int8, (batch, n), elements=codes8))
    w = data.draw(hnp.arrays(np.int8, (rows, n), elements=codes8))
    want = np.einsum("bn,rn->br", x.astype(np.int64), w.astype(np.int64))
    got = dot(x, w)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_dot_at_the_largest_sums():
    n = 4096  # every product at its maximum: 4096 x 16384 = 2^26, far below 2^53
    x = np.full((1, n), -128, np.int8)
    w = np.full((2, n), -128, np.int8)
    w[1] = 127
    np.testing.assert_array_equal(dot(x, w), [[n * 16384, -n * 128 * 127]])


# ---- quantize_multiplier ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(m=st.floats(min_value=2.0**-31, max_value=2.0**29, allow_subnormal=False))
def test_quantize_multiplier_is_within_2_to_minus_31(m):
    mult, shift = quantize_multiplier(m, "test")
    assert 2**30 <= mult < 2**31 and 1 <= shift <= 62
    assert abs(math.ldexp(mult, -shift) - m) <= m * 2.0**-31


@pytest.mark.parametrize(
    "m, want",
    [
        (0.5, (2**30, 31)),  # frexp: 0.5 x 2^0
        (0.75, (3 << 29, 31)),
        (1.0, (2**30, 30)),
        (2.0**29, (2**30, 1)),  # the largest power of two that fits (S = 1)
        (2.0**-32, (2**30, 62)),  # the smallest (S = 62)
        # frexp fraction 1 - 2^-33: x 2^31 rounds to 2^31, which is M = 2^30 one exponent up
        ((1 - 2.0**-33) * 4, (2**30, 28)),
    ],
)
def test_quantize_multiplier_by_hand(m, want):
    assert quantize_multiplier(m, "test") == want


@pytest.mark.parametrize(
    "m, words",
    [
        (2.0**-33, "does not fit"),  # S = 63
        (2.0**30, "does not fit"),  # S = 0
        (1e12, "does not fit"),
        (0.0, "not a positive finite number"),
        (-1.0, "not a positive finite number"),
        (math.nan, "not a positive finite number"),
        (math.inf, "not a positive finite number"),
    ],
)
def test_quantize_multiplier_refuses_what_does_not_fit(m, words):
    with pytest.raises(CalibrationError, match=words) as e:
        quantize_multiplier(m, "layer 3 W row 7")
    assert str(e.value).startswith("layer 3 W row 7: multiplier")


# ---- cell_fracs: each unit's format -------------------------------------------------------------


def test_cell_fracs_per_unit_with_headroom():
    # 1.25 |c| < 2^(15 - frac), the largest such frac in 0..15:
    # 0 -> 15 (a unit that never moved keeps full resolution); 0.5: 0.625 < 1 -> 15;
    # 0.8: 1.0 is not < 1 -> 14; 3: 3.75 < 4 -> 13; 6.4: 8.0 is not < 8 -> 11 (< 16);
    # 7: 8.75 -> 11; 100: 125 < 128 -> 8; 20000: 25000 < 32768 -> 0
    c = np.array([0.0, 0.5, 0.8, 3.0, 6.4, 7.0, 100.0, 20000.0])
    got = cell_fracs(c, layer=0)
    np.testing.assert_array_equal(got, [15, 15, 14, 13, 11, 11, 8, 0])
    assert got.dtype == np.int32


def test_cell_fracs_refuses_a_unit_beyond_int16():
    c = np.array([1.0, 2.0, 26214.4, 30000.0])  # 1.25 x 26214.4 = 32768: no room
    with pytest.raises(CalibrationError, match=r"layer 1 unit 2: calibration saw \|c\| = 26214"):
        cell_fracs(c, layer=1)


# ---- one layer against a float64 LSTM step ----------------------------------------------------

HIDDEN = 8
# c ranges per unit, chosen so the cell formats span 14 .. 4 fractional bits (14, 14, 13,
# 12, 11, 9, 7, 4): the rounding (frac > 12) and the shifting (frac < 12) to Q3.12 both run
C_ABSMAX = np.array([0.9, 1.5, 3.0, 6.0, 12.0, 50.0, 200.0, 1000.0])


@pytest.fixture(scope="module")
def layer0(tmp_path_factory):
    """A 1-layer model with PyTorch's own random init (|w| <= 1/sqrt(8)), its int8
    artifact, and the integer scheme for h in [-1, 1] (sh = 1/127) and C_ABSMAX."""
    torch.manual_seed(3)
    model = EdgeLSTM(tiny_config(layers=1, hidden=HIDDEN, embed=6)).eval()
    path = tmp_path_factory.mktemp("layer") / "m.int8.onnx"
    onnx.save(quantize_proto(build_onnx(model, source_sha256="0" * 64), "int8"), path)
    art8 = read_artifact(path)
    ranges = Ranges(input_absmax=None, h_absmax=(1.0,), c_absmax=(C_ABSMAX,))
    return art8, build_scheme(art8, ranges)


def _float64_step(art8, x, h, c):
    """The ONNX LSTM step (gates i, o, f, c) in float64 on the int8 artifact's own
    dequantized weights: the integer step's error against it is the arithmetic's alone."""

    def dequant(name):
        q = art8.quantized[name]
        return q.q[0].astype(np.float64) * q.scale.astype(np.float64)[:, None]

    wb, rb = np.split(art8.weights[lstm_b(0)][0].astype(np.float64), 2)
    g = x @ dequant(lstm_w(0)).T + h @ dequant(lstm_r(0)).T + wb + rb
    gi, go, gf, gc = np.split(g, 4, axis=-1)
    c_new = sigmoid64(gf) * c + sigmoid64(gi) * np.tanh(gc)
    return sigmoid64(go) * np.tanh(c_new), c_new, g


# Error bound of one integer step against the float64 step above, in real units.
Q15 = 1 / 32767
# a rescale's rounding: +-0.5 of a Q3.12 code, for the input and the recurrent projection
# and for the bias; the multipliers' own error (2^-31 relative) adds < 1e-6
GATE_ERR = 1.5 / 4096 + 1e-6
# linear interpolation over segments of 1/16: max|f''| (1/16)^2 / 8, with max|sigmoid''|
# = 0.0962 and max|tanh''| = 0.7698; plus 0.5 code for the stored entry and 0.5 for the
# interpolation's rounding
SIG_TABLE_ERR = 0.0962 / 2048 + Q15
TANH_TABLE_ERR = 0.7698 / 2048 + Q15
# Q0.15 holds 1.0 as 32767 but the products are shifted by 2^15 (2^30 for two factors):
# a relative error of 1/32768 per factor
SCALE_ERR = 1 / 32768


def _sigmoid_err(g):
    """|error| of a sigmoid gate whose float pre-activation is g: the table, the gate's
    input error through the slope (<= 1/4), and saturation at +-8 (1 - sigmoid(8))."""
    saturated = np.abs(g) > 8 - GATE_ERR
    return SIG_TABLE_ERR + GATE_ERR / 4 + np.where(saturated, 1 - sigmoid64(8.0), 0.0)


def test_one_layer_step_against_float64(layer0):
    art8, scheme = layer0
    (layer,) = scheme.layers
    frac = layer.cell_frac.astype(np.int64)
    np.testing.assert_array_equal(frac, [14, 14, 13, 12, 11, 9, 7, 4])
    rng = np.random.default_rng(0)
    batch = 256
    x_q = rng.integers(-127, 128, (batch, layer.w_q.shape[1]))
    h_q = rng.integers(-127, 128, (batch, HIDDEN))
    # c within its format's range less 1.01, so that |f c + i u| cannot saturate int16
    # (the float reference does not saturate); half of them near that edge
    c_room = np.minimum(C_ABSMAX, 2.0 ** (15 - frac) - 1.01)
    c_real = rng.uniform(-1, 1, (batch, HIDDEN)) * c_room
    c_q = np.rint(c_real * 2.0**frac).astype(np.int64)

    h_new, c_new = step_layer(layer, scheme, x_q, h_q, c_q)

    x, h, c = x_q * layer.x_scale, h_q * layer.h_scale, c_q * 2.0**-frac
    want_h, want_c, g = _float64_step(art8, x, h, c)
    gi, go, gf, gc = np.split(g, 4, axis=-1)
    # c' = f c + i u: f's error scaled by |c|, i's and u's by |u|, |i| <= 1, the scale
    # error of both products, and 0.5 LSB of c's format for each of the two roundings
    # tanh' <= 1; saturation at +-8 costs 1 - tanh(8)
    tanh_gate_err = TANH_TABLE_ERR + GATE_ERR + np.where(np.abs(gc) > 8 - GATE_ERR, 2.3e-7, 0)
    c_bound = (
        _sigmoid_err(gf) * np.abs(c)
        + _sigmoid_err(gi)
        + tanh_gate_err
        + SCALE_ERR * (np.abs(c) + 2)
        + 2.0**-frac
    )
    # h' = o tanh(c'): o's error; c's error through tanh's largest slope within c_bound of
    # c' (mean value theorem: the large-|c| units have a flat tanh); c' rounded to Q3.12
    # when frac > 12 (0.5 code); the table; tanh(8) for |c'| >= 8; the scale error; and
    # h's own rounding (0.5 code of sh)
    slope = 1 - np.tanh(np.maximum(np.abs(want_c) - c_bound, 0)) ** 2
    h_bound = (
        _sigmoid_err(go)
        + slope * (c_bound + np.where(frac > 12, 0.5 / 4096, 0.0))
        + TANH_TABLE_ERR
        + (1 - np.tanh(8.0))
        + 2 * SCALE_ERR
        + 0.5 * layer.h_scale
    )
    c_err = np.abs(c_new * 2.0**-frac - want_c)
    h_err = np.abs(h_new * layer.h_scale - want_h)
    assert (c_err <= c_bound).all(), float((c_err - c_bound).max())
    assert (h_err <= h_bound).all(), float((h_err - h_bound).max())
    # The bounds are tight enough to mean something: a wrong gate order, rounding mode or
    # format would be off by 1e-2 or more, h's rounding alone is 4e-3
    assert h_bound.max() < 0.02 and np.median(c_bound[:, :4]) < 2e-3
    assert h_err.mean() < 0.5 * layer.h_scale  # mostly h's own rounding
    assert np.abs(h_new).max() == 127 or np.abs(want_h).max() < 1.0  # h spans its range


def test_the_scheme_parameters_of_that_layer(layer0):
    """The multipliers are the real rescales (to Q3.12) within 2^-31, the bias is in
    Q3.12, and h's multiplier turns a Q0.30 product into h codes."""
    art8, scheme = layer0
    (layer,) = scheme.layers
    sw = art8.quantized[lstm_w(0)].scale.astype(np.float64)
    sr = art8.quantized[lstm_r(0)].scale.astype(np.float64)
    real_x = layer.x_mult * 2.0 ** -layer.x_shift.astype(np.float64)
    real_h = layer.h_mult * 2.0 ** -layer.h_shift.astype(np.float64)
    np.testing.assert_allclose(real_x, layer.x_scale * sw * 4096, rtol=2.0**-31)
    np.testing.assert_allclose(real_h, layer.h_scale * sr * 4096, rtol=2.0**-31)
    wb, rb = np.split(art8.weights[lstm_b(0)][0].astype(np.float64), 2)
    assert np.abs(layer.bias - (wb + rb) * 4096).max() <= 0.5
    assert layer.out_mult * 2.0**-layer.out_shift == pytest.approx(127 / 2**30, rel=2.0**-31)
    emb = art8.weights["embedding"].astype(np.float64)
    assert scheme.input_scale == pytest.approx(np.abs(emb).max() / 127)
    assert np.abs(scheme.embedding_q * scheme.input_scale - emb).max() <= scheme.input_scale / 2


def test_cell_values_by_hand():
    """code x 2^-frac with each layer's and unit's own format."""

    class Layer:
        def __init__(self, fracs):
            self.cell_frac = np.array(fracs, np.int32)

    class Scheme:
        layers = (Layer([12, 15, 0]), Layer([4, 13, 11]))

    c_codes = np.array([[[4096, -16384, 7]], [[-32768, 8192, 2048]]], np.float32)
    np.testing.assert_array_equal(
        cell_values(Scheme(), c_codes), [[[1.0, -0.5, 7.0]], [[-2048.0, 1.0, 1.0]]]
    )


# ---- the state as the runtime hands it over -----------------------------------------------------


def test_codes_accepts_integral_codes_in_range():
    got = codes(np.array([[-127.0, 0.0, 127.0]], np.float32), -127, 127, "h")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [[-127, 0, 127]])


@pytest.mark.parametrize(
    "value, found",
    [(0.5, "0.5"), (128.0, "128.0"), (-128.0, "-128.0"), (3.25, "3.25")],
)
def test_codes_refuses_non_integral_and_out_of_range(value, found):
    arr = np.array([[1.0, value]], np.float32)
    with pytest.raises(InputError) as e:
        codes(arr, -127, 127, "h")
    assert str(e.value) == (
        f"state.h of an int8-full model holds integer codes in [-127, 127]; found {found} "
        f"(a state from a float model?)"
    )


@pytest.fixture(scope="module")
def full_path(artifacts, tmp_path_factory):
    return int8_full(artifacts["none"], tmp_path_factory.mktemp("full") / "m.int8-full.onnx")


def test_a_float_models_state_is_refused_and_left_unchanged(artifacts, full_path):
    float_model = rt.load(artifacts["none"], backend="numpy")
    full = rt.load(full_path, backend="numpy")
    _, float_state = float_model.step(np.array([[1, 2, 3]]), float_model.initial_state(1))
    h_before = float_state.h.copy()
    with pytest.raises(InputError, match=r"state\.h of an int8-full model holds integer codes"):
        full.step(np.array([4]), float_state)
    np.testing.assert_array_equal(float_state.h, h_before)
    # the codes it accepts are the ones it hands back: stepping on works
    _, state = full.step(np.array([[1, 2, 3]]), full.initial_state(1))
    _, again = full.step(np.array([4]), state)
    assert np.array_equal(again.h, np.round(again.h)) and np.abs(again.h).max() <= 127


def test_a_cell_code_out_of_int16_is_refused(full_path):
    full = rt.load(full_path, backend="numpy")
    shape = (full.config.num_layers, 1, full.config.hidden_size)
    c = np.zeros(shape, np.float32)
    c[1, 0, 3] = 40000.0
    state = rt.State(h=np.zeros(shape, np.float32), c=c)
    with pytest.raises(InputError, match=r"state\.c .* \[-32768, 32767\]; found 40000\.0"):
        full.step(np.array([1]), state)


# ---- the input and output stages, and streaming -------------------------------------------------


def test_feature_input_codes_by_hand():
    """floor(xn x inv + 0.5) in float32, clamped to [-127, 127] before the int conversion."""

    class Rows:
        embedding_q = None
        input_inv_scale = np.float32(4.0)  # one code is 0.25

    x = np.array([[0.375, -0.375, 0.3, -0.3, 31.75, 31.9, -40.0, 1e30, -np.inf]], np.float32)
    # 1.5 -> 2 and -1.5 -> -1 (half up); 1.2 -> 1; -1.2 -> -1; 127 exactly; 127.6 -> 127;
    # -160 -> -127; huge and -inf clamp (no int overflow)
    np.testing.assert_array_equal(
        input_codes(Rows(), x), [[2, -1, 1, -1, 127, 127, -127, 127, -127]]
    )


def test_head_is_the_int8_dot_times_its_float32_scale():
    class Head:
        head_q = np.array([[1, -2, 3], [127, 127, -127]], np.int8)
        head_scale = np.array([0.5, 0.001], np.float32)

    h = np.array([[10, 20, -30]])
    # [10 - 40 - 90, 1270 + 2540 + 3810] = [-120, 7620]; x [0.5, 0.001] in float32
    got = head(Head(), h)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([[-60.0, np.float32(7620) * np.float32(0.001)]]))


def test_chunks_batches_and_single_steps_give_the_same_bits(full_path):
    """Integer arithmetic has no summation-order noise: a stream fed in one call, in
    chunks, step by step, or inside a batch of other streams gives identical outputs and
    state codes (bad-inputs row 17 with a tolerance of zero)."""
    model = rt.load(full_path, backend="numpy")
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, model.config.vocab_size, (3, 40))
    whole, end = model.step(tokens, model.initial_state(3))
    state, parts = model.initial_state(3), []
    for lo, hi in ((0, 1), (1, 17), (17, 40)):
        y, state = model.step(tokens[:, lo:hi], state)
        parts.append(y)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    np.testing.assert_array_equal(state.h, end.h)
    np.testing.assert_array_equal(state.c, end.c)
    alone = model.initial_state(1)
    for t in range(40):
        y, alone = model.step(tokens[1:2, t], alone)
        np.testing.assert_array_equal(y[0], whole[1, t])
    np.testing.assert_array_equal(alone.c[:, 0], end.c[:, 1])


# ---- the forecast highway in float32 -----------------------------------------------------------


def _highway_weights(rng, features: int, outputs: int, lags: int) -> dict[str, np.ndarray]:
    select = np.zeros((features, outputs), np.float32)
    select[rng.integers(0, features, outputs), np.arange(outputs)] = 1.0
    return {
        HIGHWAY_SELECT: select,
        HIGHWAY_WEIGHT: rng.normal(0, 0.7, (outputs, 1, lags + 1)).astype(np.float32),
        HIGHWAY_BIAS: rng.normal(0, 0.3, outputs).astype(np.float32),
    }


def _highway_scalar(w, z, history):
    """The definition written out one float32 scalar at a time (integer.py's docstring)."""
    f32 = np.float32
    kernel, bias = w[HIGHWAY_WEIGHT][:, 0], w[HIGHWAY_BIAS]
    index = [int(np.flatnonzero(col)[0]) for col in w[HIGHWAY_SELECT].T]
    n, lags = kernel.shape[0], kernel.shape[1] - 1
    out = np.empty((*z.shape[:2], n), np.float32)
    hist = history.copy()
    for b in range(z.shape[0]):
        seen, rows = hist[b, 0], hist[b, 1:].reshape(lags, n).copy()
        for t in range(z.shape[1]):
            for o in range(n):
                v = z[b, t, index[o]]
                window = [f32(rows[r, o] * seen) + f32(v * f32(f32(1) - seen))
                          for r in range(lags)] + [v]  # fmt: skip
                acc = f32(kernel[o, 0] * window[0])
                for r in range(1, lags + 1):
                    acc = f32(acc + f32(kernel[o, r] * window[r]))
                out[b, t, o] = f32(acc + bias[o])
                rows[:, o] = window[1:]
            seen = max(seen, f32(1))
        hist[b] = np.concatenate([[seen], rows.ravel()])
    return out, hist


@pytest.mark.parametrize("lags", [1, 5, 53])
def test_highway_is_the_scalar_float32_definition_bit_for_bit(lags):
    """A reset stream (rows ignored however they are filled) and a carried one, over a
    call of several steps: integer.py's vectorized stage equals the scalar loop."""
    rng = np.random.default_rng(lags)
    w = _highway_weights(rng, features=4, outputs=3, lags=lags)
    z = rng.normal(0, 2, (2, 7, 4)).astype(np.float32)
    history = rng.normal(0, 1, (2, 1 + 3 * lags)).astype(np.float32)
    history[0, 0], history[1, 0] = 0.0, 1.0
    got, got_hist = highway(w, z, history)
    want, want_hist = _highway_scalar(w, z, history)
    assert got.dtype == got_hist.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(got_hist.view(np.uint32), want_hist.view(np.uint32))
    # reset: the rows are the first value; the step after sees its own past
    assert got_hist[0, 0] == 1.0 and got_hist[0, 1:].reshape(lags, 3)[-1].tolist() == [
        float(z[0, -1, int(np.flatnonzero(c)[0])]) for c in w[HIGHWAY_SELECT].T
    ]
    # step by step, the same bits as one call
    hist, steps = history, []
    for t in range(z.shape[1]):
        y, hist = highway(w, z[:, t : t + 1], hist)
        steps.append(y[:, 0])
    np.testing.assert_array_equal(np.stack(steps, 1), got)
    np.testing.assert_array_equal(hist, got_hist)


@pytest.mark.parametrize("lags", [5, 53])
def test_highway_is_the_float_graphs_within_float32_summation_error(lags):
    """The float graph (apply_highway) sums each window in float64 and rounds once; the
    scheme's float32 running sum differs by at most its rounding: (lags + 2) half-ulps of
    the largest partial sum, bounded by the sum of |terms|. The histories are equal."""
    rng = np.random.default_rng(10 + lags)
    w = _highway_weights(rng, features=3, outputs=4, lags=lags)
    z = rng.normal(0, 2, (2, 60, 3)).astype(np.float32)
    history = rng.normal(0, 1, (2, 1 + 4 * lags)).astype(np.float32)
    history[0, 0], history[1, 0] = 0.0, 1.0
    got, got_hist = highway(w, z, history)
    want, want_hist = apply_highway(w, z, history)
    np.testing.assert_array_equal(got_hist, want_hist)
    largest = max(np.abs(z).max(), np.abs(history[:, 1:]).max())  # any window value
    terms = np.abs(w[HIGHWAY_WEIGHT][:, 0]).sum(axis=1) * largest + np.abs(w[HIGHWAY_BIAS])
    bound = (lags + 2) * np.finfo(np.float32).eps * terms
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert (err <= bound).all(), float((err / bound).max())
    assert err.max() > 0  # not the same computation: the bound is what is checked
