"""The full-integer scheme `int8-full`: its parameters and the numpy reference that defines it.

An `int8-full` model steps its LSTM layers with integers only: int8 activations (each
layer's input and h), int8 weights, int32 accumulators, an int16 cell state and
sigmoid/tanh from 257-entry int16 tables with linear interpolation. A microcontroller
without an FPU runs it as fast as its integer multiply-accumulate allows. This module is
the scheme's definition: the C library (runtime/c/lstm_edge_int.c) must produce the same
bits, and the tests compare the two bit for bit.

Formats (real value = code * scale):
- layer input x and hidden state h: int8 in [-127, 127], one scale per layer (symmetric,
  zero point 0): the embedding's max |value| / 127 or the calibrated max |input| / 127 for
  layer 0, the calibrated max |h| / 127 for every layer's output (the next layer's input).
- cell state c: int16 with a power-of-two scale per unit, 2^-frac with frac in 0..15
  fractional bits, chosen from the calibrated max |c| of that unit with 25% headroom.
- gate pre-activations: int16 in Q3.12 (real x 4096, saturated to [-8, 8)); gate
  outputs: int16 in Q0.15 (real x 32767).
- weights: the `int8` scheme's per-row symmetric int8 (W and R per gate row, the head per
  output), so an int8-full artifact is an int8 artifact plus these parameters.

Each real-valued rescale is an integer multiply and a rounding shift (`rmul`), with the
multiplier in [2^30, 2^31) and the shift in [1, 62], as in tflite-micro and CMSIS-NN.
The step of one layer, for a stream with input x, state h and c:

    g[r]  = sat16(rmul(W[r]·x, XM[r], XS[r]) + rmul(R[r]·h, HM[r], HS[r]) + B[r])  Q3.12
    i, o, f = lut(SIG, g_i), lut(SIG, g_o), lut(SIG, g_f);  u = lut(TANH, g_c)     Q0.15
    c'    = sat16(((f c + 2^14) >> 15) + ((i u + 2^(29-frac)) >> (30-frac)))  c's format
    h'    = sat8(rmul(o · lut(TANH, c' in Q3.12), OM, OS))

Where it departs from tflite-micro's integer LSTM, and why:
- symmetric int8 activations (no zero points): h = o tanh(c) is symmetric by nature,
  and without zero points no row-sum correction terms are needed in the dot products;
- one cell format per unit instead of per layer: a trained model has a few counter-like
  units whose |c| grows to hundreds while most stay below 4; a layer format wide enough
  for the large ones leaves the small ones 4-8 bits of resolution;
- the gate's two projections have their own multipliers (input and recurrent scales
  differ) and are summed after rescaling, in 64 bits, then saturated once.

The input stage of feature rows (normalization) and the head's final scale stay in
float32 (the task needs real-valued inputs and outputs); a target without an FPU does
them in soft-float. They are defined here as float32 operations in a fixed order, so C
without FMA contraction gives the same bits.

The forecast highway (runtime/tasks/forecast.py, "the linear highway") is float32 too,
one step at a time in a fixed order (`highway`): its window sums are a handful of
multiply-adds per output and step, nothing the integer recurrence would gain from, and
the history it reads holds past normalized target values, which int8 codes would round
away (the AR's coefficients are fitted on exact changes). The float graph sums each
window in float64 and rounds once; this scheme sums in float32, oldest lag first, so a
microcontroller's float32 (or soft-float) arithmetic gives the same bits.

The runtime's `State` stays float32: for an int8-full model its h and c hold the integer
codes (exactly representable in float32). `codes` converts and checks them. A highway
model's history is float32 values, as for every scheme: the seen flag, then L rows of
the outputs' normalized target values, oldest first.

numpy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstm_edge.runtime.errors import InputError, InvalidArtifactError
from lstm_edge.runtime.format import HIGHWAY_BIAS, HIGHWAY_SELECT, HIGHWAY_WEIGHT

SCHEME = "int8-full"
META_INTEGER = "lstm_edge.quant.integer"  # JSON: `IntegerScheme.to_json`
SPEC_VERSION = 1

GATE_FRAC = 12  # gate pre-activations in Q3.12
ACT_ONE = 32767  # gate outputs in Q0.15: 1.0 is 32767
TABLE_SIZE = 257  # 256 segments over [-8, 8) and the end point
H_MAX = 127  # int8 codes are symmetric: -128 is never produced
C_MIN, C_MAX = -32768, 32767
CELL_HEADROOM = 1.25  # the cell format's range exceeds the calibrated max |c| by this
MAX_CELL_FRAC = 15


# ---- primitives -----------------------------------------------------------------------------


def rmul(a: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """(a * mult + 2^(shift-1)) >> shift in 64 bits: a x mult x 2^-shift rounded half up.

    |a| < 2^31 and mult < 2^31, so the product fits int64; >> is arithmetic (floor)."""
    a = np.asarray(a, np.int64)
    mult = np.asarray(mult, np.int64)
    shift = np.asarray(shift, np.int64)
    return (a * mult + (np.int64(1) << (shift - 1))) >> shift


def lut(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sigmoid or tanh of Q3.12 codes as Q0.15 codes: the table's two neighbouring entries
    (256 segments of 1/16 over [-8, 8)) interpolated in 1/256 steps, rounded half up."""
    t = table.astype(np.int64)
    u = np.asarray(x, np.int64) + 32768  # 0 .. 65535
    k, frac = u >> 8, u & 255
    return t[k] + (((t[k + 1] - t[k]) * frac + 128) >> 8)


def dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Integer dot products x [..., n] · w [rows, n] -> int64 [..., rows].

    Computed in float64, which is exact here: every product is an integer below 2^14 in
    magnitude and every partial sum stays far below 2^53, so BLAS's order of summation
    cannot change the result (and it is ~100x faster than numpy's integer matmul)."""
    return (np.asarray(x, np.float64) @ np.asarray(w, np.float64).T).astype(np.int64)


def to_q312(c: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Cell codes with `frac` fractional bits -> Q3.12 (rounded half up, saturated)."""
    c = np.asarray(c, np.int64)
    down = np.maximum(frac - GATE_FRAC, 0)  # frac > 12: drop bits, rounding
    rounded = (c + ((np.int64(1) << down) >> 1)) >> down
    up = np.maximum(GATE_FRAC - frac, 0)  # frac < 12: add bits, saturating
    return np.clip(np.where(frac > GATE_FRAC, rounded, c << up), C_MIN, C_MAX)


def table(fn: Any) -> np.ndarray:
    """The 257-entry table of fn (np.tanh or sigmoid) over [-8, 8] in Q0.15, rounded half
    up in float64. Computed when an artifact is written and stored in it: the stored
    table, not this function, is what the reference and the C library use."""
    x = (256.0 * np.arange(TABLE_SIZE) - 32768.0) / 4096.0
    return np.floor(ACT_ONE * fn(x) + 0.5).astype(np.int16)


def sigmoid64(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---- parameters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IntegerLayer:
    """One LSTM layer's integer parameters (gate rows in ONNX order i, o, f, c)."""

    w_q: np.ndarray  # int8 [4H, in]: W, output-major
    r_q: np.ndarray  # int8 [4H, H]: R, output-major
    x_mult: np.ndarray  # int32 [4H]: the input projection's rescale to Q3.12 ...
    x_shift: np.ndarray  # int32 [4H]
    h_mult: np.ndarray  # int32 [4H]: ... and the recurrent one's
    h_shift: np.ndarray  # int32 [4H]
    bias: np.ndarray  # int32 [4H]: Wb + Rb in Q3.12
    cell_frac: np.ndarray  # int32 [H]: fractional bits of each unit's c
    out_mult: int  # o x tanh(c) (Q0.30) -> h codes
    out_shift: int
    x_scale: float  # real value of one input code (informative: the multipliers hold it)
    h_scale: float  # real value of one h code


@dataclass(frozen=True)
class IntegerScheme:
    layers: tuple[IntegerLayer, ...]
    sigmoid_table: np.ndarray  # int16 [257]
    tanh_table: np.ndarray  # int16 [257]
    input_scale: float  # real value of one layer-0 input code
    embedding_q: np.ndarray | None  # int8 [V, E]: token models' layer-0 input codes
    input_inv_scale: np.float32 | None  # feature rows: code = floor(xn * inv + 0.5)
    head_q: np.ndarray  # int8 [out, H]: output-major
    head_scale: np.ndarray  # float32 [out]: real value of one head accumulator unit
    calibration: dict  # what the ranges came from (informative, shown by `info`)

    # ---- the artifact's JSON ----

    def to_json(self) -> str:
        def ints(a: np.ndarray) -> list[int]:
            return [int(v) for v in np.asarray(a).ravel()]

        doc: dict[str, Any] = {
            "spec_version": SPEC_VERSION,
            "sigmoid_table": ints(self.sigmoid_table),
            "tanh_table": ints(self.tanh_table),
            "input_scale": self.input_scale,
            "head_scale": [float(v) for v in self.head_scale],
            "calibration": self.calibration,
            "layers": [
                {
                    "x_mult": ints(lay.x_mult),
                    "x_shift": ints(lay.x_shift),
                    "h_mult": ints(lay.h_mult),
                    "h_shift": ints(lay.h_shift),
                    "bias": ints(lay.bias),
                    "cell_frac": ints(lay.cell_frac),
                    "out_mult": lay.out_mult,
                    "out_shift": lay.out_shift,
                    "x_scale": lay.x_scale,
                    "h_scale": lay.h_scale,
                }
                for lay in self.layers
            ],
        }
        if self.embedding_q is not None:
            doc["embedding_q"] = ints(self.embedding_q)
        if self.input_inv_scale is not None:
            doc["input_inv_scale"] = float(self.input_inv_scale)
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(
        cls,
        text: str,
        weights_q: Mapping[str, np.ndarray],
        shapes: Mapping[str, int],
        where: object,
    ) -> IntegerScheme:
        """Parse and check the metadata against the model's dimensions. `weights_q`: the
        int8 codes of W, R (per layer, [4H, in] output-major) and the head ([out, H]);
        `shapes`: hidden, layers, input, output, vocab (0 for feature rows)."""
        return _parse(text, weights_q, shapes, where)


# ---- the reference ----------------------------------------------------------------------------


def step_layer(
    layer: IntegerLayer, scheme: IntegerScheme, x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One step of one layer for a batch of streams: codes x [B, in], h [B, H] (int8
    range), c [B, H] (int16) -> new h, c (int64 arrays holding the codes)."""
    hidden = h.shape[-1]
    g = rmul(dot(x, layer.w_q), layer.x_mult, layer.x_shift)
    g = g + rmul(dot(h, layer.r_q), layer.h_mult, layer.h_shift) + layer.bias
    g = np.clip(g, C_MIN, C_MAX)
    gi, go, gf, gc = (g[..., k * hidden : (k + 1) * hidden] for k in range(4))
    i, o, f = (
        lut(scheme.sigmoid_table, gi),
        lut(scheme.sigmoid_table, go),
        lut(scheme.sigmoid_table, gf),
    )
    u = lut(scheme.tanh_table, gc)
    frac = layer.cell_frac.astype(np.int64)
    kept = (f * c + (1 << 14)) >> 15  # Q0.15 x c's format -> c's format
    added = (i * u + (np.int64(1) << (29 - frac))) >> (30 - frac)  # Q0.30 -> c's format
    c_new = np.clip(kept + added, C_MIN, C_MAX)
    t = lut(scheme.tanh_table, to_q312(c_new, frac))
    h_new = np.clip(rmul(o * t, layer.out_mult, layer.out_shift), -H_MAX, H_MAX)
    return h_new, c_new


def input_codes(scheme: IntegerScheme, x: np.ndarray) -> np.ndarray:
    """Layer 0's input codes. x: token ids [B, T], or normalized feature rows float32
    [B, T, F] (the task's float input stage already applied)."""
    if scheme.embedding_q is not None:
        return scheme.embedding_q[x].astype(np.int64)
    assert scheme.input_inv_scale is not None
    v = np.floor(x.astype(np.float32) * np.float32(scheme.input_inv_scale) + np.float32(0.5))
    return np.clip(v, -H_MAX, H_MAX).astype(np.int64)  # clip first: no int overflow


def head(scheme: IntegerScheme, h_last: np.ndarray) -> np.ndarray:
    """The head's float32 output (before the task's output stage adds the bias):
    float32(h · HQ) x head_scale."""
    acc = dot(h_last, scheme.head_q)
    return acc.astype(np.float32) * scheme.head_scale


def highway_index(weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """int32 [outputs]: the feature column each output's highway reads (HIGHWAY_SELECT is
    one-hot, one column per output)."""
    return np.argmax(weights[HIGHWAY_SELECT], axis=0).astype(np.int32)


def highway(
    weights: Mapping[str, np.ndarray], z: np.ndarray, history: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The forecast highway in float32: normalized rows z [B, T, F] (the input stage's
    output, the same float32 values layer 0's codes are quantized from) and the history
    [B, 1 + L * O] -> (highway [B, T, O] in the head's standard units, history after the
    last step).

    Per step t, output o, every operation one float32 rounding in this order:
        v      = z[t, index[o]]                            (the target's normalized value)
        rows   = rows * seen + v * (1 - seen)              (each of the L history rows)
        acc    = W[o, 0] * rows[0]; acc = acc + W[o, r] * window[r] for r = 1 .. L,
                 window = (rows[0], ..., rows[L - 1], v)   (oldest first)
        out    = acc + B[o]
        rows   = window[1:], seen = max(seen, 1)
    The blend runs every step, not once per call as in the graph: it is the identity
    once seen is 1, and a stream stepped one row at a time gives the bits of one call."""
    kernel = weights[HIGHWAY_WEIGHT][:, 0, :].T[None]  # [1, L + 1, O], oldest first
    bias = weights[HIGHWAY_BIAS]
    lags, n = kernel.shape[1] - 1, kernel.shape[2]
    batch, time = z.shape[:2]
    v = np.asarray(z, np.float32)[:, :, highway_index(weights)]  # [B, T, O]
    one = np.float32(1.0)
    seen = history[:, :1].astype(np.float32)[:, :, None]  # [B, 1, 1]
    rows = history[:, 1:].astype(np.float32).reshape(batch, lags, n)
    out = np.empty((batch, time, n), np.float32)
    for t in range(time):
        vt = v[:, t, None]  # [B, 1, O]
        rows = rows * seen + vt * (one - seen)
        window = np.concatenate([rows, vt], axis=1)  # [B, L + 1, O]
        # accumulate is sequential in the input's dtype: ((p0 + p1) + p2) + ... in float32
        acc = np.add.accumulate(window * kernel, axis=1)[:, -1]
        out[:, t] = acc + bias
        rows, seen = window[:, 1:], np.maximum(seen, one)
    return out, np.concatenate([seen[:, 0], rows.reshape(batch, lags * n)], axis=1)


def codes(value: np.ndarray, low: int, high: int, name: str) -> np.ndarray:
    """A state array of integer codes held in float32 -> int64, refusing anything else."""
    if value.size and (
        not np.array_equal(value, np.round(value))
        or float(value.min()) < low
        or float(value.max()) > high
    ):
        bad = value[(value != np.round(value)) | (value < low) | (value > high)]
        raise InputError(
            f"state.{name} of an {SCHEME} model holds integer codes in [{low}, {high}]; "
            f"found {float(bad.ravel()[0])!r} (a state from a float model?)"
        )
    return value.astype(np.int64)


def cell_values(scheme: IntegerScheme, c_codes: np.ndarray) -> np.ndarray:
    """Real cell values (float64) of an int8-full state's c codes [layers, batch, H]:
    code x 2^-frac with each unit's own format, for reports that show the cell's range
    (the codes alone span +-32767 whatever the values)."""
    fracs = np.stack([lay.cell_frac for lay in scheme.layers]).astype(np.float64)  # [L, H]
    return np.asarray(c_codes, np.float64) * np.exp2(-fracs)[:, None, :]


@dataclass(frozen=True)
class IntegerRunner:
    """The numpy backend's runner for int8-full artifacts (same `run` as NumpyRunner)."""

    scheme: IntegerScheme
    weights: dict[str, np.ndarray]  # float32: the task's stage tensors and the head bias
    task: Any  # TaskSpec

    def run(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """(y, hn, cn), and with a history (the forecast highway) also the history after
        the last step."""
        s = self.scheme
        tokens = s.embedding_q is not None  # else float32 rows, normalized by the task first
        x = inputs if tokens else self.task.apply_input_stage(self.weights, inputs)
        hw = history_out = None
        if history:
            hw, history_out = highway(self.weights, x, history[0])
        xq = input_codes(s, x)  # [B, T, in]
        hq = [codes(h[k], -H_MAX, H_MAX, "h") for k in range(len(s.layers))]
        cq = [codes(c[k], C_MIN, C_MAX, "c") for k in range(len(s.layers))]
        outputs = []
        for t in range(xq.shape[1]):
            layer_in = xq[:, t]
            for k, layer in enumerate(s.layers):
                hq[k], cq[k] = step_layer(layer, s, layer_in, hq[k], cq[k])
                layer_in = hq[k]
            outputs.append(head(s, layer_in))
        head_out = np.stack(outputs, axis=1)
        as32 = [np.stack(v).astype(np.float32) for v in (hq, cq)]
        if hw is None:
            y = self.task.apply_output_stage(self.weights, head_out, inputs)
            return y, as32[0], as32[1]
        y = self.task.apply_output_stage(self.weights, head_out, inputs, hw)
        return y, as32[0], as32[1], history_out


# ---- parsing --------------------------------------------------------------------------------


def _parse(
    text: str, weights_q: Mapping[str, np.ndarray], shapes: Mapping[str, int], where: object
) -> IntegerScheme:
    """Every field checked for type, length and range; an error names the field (and its
    layer) and what was found, so a damaged or hand-edited file is refused at load, never
    mid-stream in the integer arithmetic."""

    def bad(what: str) -> InvalidArtifactError:
        return InvalidArtifactError(f"{where}: metadata {META_INTEGER!r}: {what}")

    try:
        doc = json.loads(text)
    except ValueError as e:
        raise bad(f"not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise bad(f"expected a JSON object (found {type(doc).__name__})")
    if doc.get("spec_version") != SPEC_VERSION:
        raise bad(f"'spec_version' is {doc.get('spec_version')!r} (expected {SPEC_VERSION})")

    def array(
        obj: Mapping, key: str, n: int, lo: int, hi: int, dtype: Any, at: str = ""
    ) -> np.ndarray:
        v = obj.get(key)
        expected = f"{at}{key!r} must be {n} integers in [{lo}, {hi}]"
        if key not in obj:
            raise bad(f"{expected} (the key is missing)")
        if not isinstance(v, list):
            raise bad(f"{expected} (found {type(v).__name__})")
        if len(v) != n:
            raise bad(f"{expected} (found {len(v)})")
        for j, e in enumerate(v):
            if type(e) is not int or not lo <= e <= hi:
                raise bad(f"{expected} (entry {j} is {e!r})")
        return np.array(v, dtype=dtype)

    def integer(obj: Mapping, key: str, lo: int, hi: int, at: str) -> int:
        v = obj.get(key)
        if type(v) is not int or not lo <= v <= hi:
            found = "the key is missing" if key not in obj else f"found {v!r}"
            raise bad(f"{at}{key!r} must be an integer in [{lo}, {hi}] ({found})")
        return v

    def positive(obj: Mapping, key: str, at: str = "") -> float:
        v = obj.get(key)
        if type(v) not in (int, float) or not math.isfinite(v) or v <= 0:
            found = "the key is missing" if key not in obj else f"found {v!r}"
            raise bad(f"{at}{key!r} must be a positive finite number ({found})")
        return float(v)

    hidden, n_layers = shapes["hidden"], shapes["layers"]
    i32 = (-(2**31), 2**31 - 1)
    mult_range = (2**30, 2**31 - 1)
    shift_range = (1, 62)
    sig = array(doc, "sigmoid_table", TABLE_SIZE, 0, ACT_ONE, np.int16)
    tanh = array(doc, "tanh_table", TABLE_SIZE, -ACT_ONE, ACT_ONE, np.int16)
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list) or len(raw_layers) != n_layers:
        found = len(raw_layers) if isinstance(raw_layers, list) else type(raw_layers).__name__
        raise bad(f"'layers' must list {n_layers} layers (found {found})")
    layers = []
    for k, lay in enumerate(raw_layers):
        at = f"layer {k}: "
        if not isinstance(lay, dict):
            raise bad(f"layer {k} is not an object")
        rows = 4 * hidden
        layers.append(
            IntegerLayer(
                w_q=weights_q[f"w{k}"],
                r_q=weights_q[f"r{k}"],
                x_mult=array(lay, "x_mult", rows, *mult_range, np.int32, at),
                x_shift=array(lay, "x_shift", rows, *shift_range, np.int32, at),
                h_mult=array(lay, "h_mult", rows, *mult_range, np.int32, at),
                h_shift=array(lay, "h_shift", rows, *shift_range, np.int32, at),
                bias=array(lay, "bias", rows, *i32, np.int32, at),
                cell_frac=array(lay, "cell_frac", hidden, 0, MAX_CELL_FRAC, np.int32, at),
                out_mult=integer(lay, "out_mult", *mult_range, at),
                out_shift=integer(lay, "out_shift", *shift_range, at),
                x_scale=positive(lay, "x_scale", at),
                h_scale=positive(lay, "h_scale", at),
            )
        )
    vocab, width = shapes["vocab"], shapes["input"]
    embedding_q = inv = None
    if vocab:
        embedding_q = array(doc, "embedding_q", vocab * width, -H_MAX, H_MAX, np.int8)
        embedding_q = embedding_q.reshape(vocab, width)
    else:
        inv = np.float32(positive(doc, "input_inv_scale"))
    head_scale = doc.get("head_scale")
    expected = f"'head_scale' must be {shapes['output']} positive finite numbers"
    if not isinstance(head_scale, list) or len(head_scale) != shapes["output"]:
        found = len(head_scale) if isinstance(head_scale, list) else repr(head_scale)
        raise bad(f"{expected} (found {found})")
    for j, v in enumerate(head_scale):
        if type(v) not in (int, float) or not math.isfinite(v) or v <= 0:
            raise bad(f"{expected} (entry {j} is {v!r})")
    calibration = doc.get("calibration")
    if not isinstance(calibration, dict):
        raise bad(f"'calibration' must be an object (found {calibration!r})")
    return IntegerScheme(
        layers=tuple(layers),
        sigmoid_table=sig,
        tanh_table=tanh,
        input_scale=positive(doc, "input_scale"),
        embedding_q=embedding_q,
        input_inv_scale=inv,
        head_q=weights_q["head"],
        head_scale=np.array(head_scale, np.float32),
        calibration=calibration,
    )
