"""Scheme int8-full: the integer parameters of a calibrated model.

runtime/integer.py defines the arithmetic; this module computes, once, what it needs: from
the `int8` artifact's weight codes and scales (per gate row, per head output) and the
ranges calibration measured on the float model (layer 0's input, each layer's h, each
unit's c), the multipliers and shifts of every rescale, the gate biases in Q3.12, each
unit's cell format, the two activation tables and layer 0's input codes. They go into
the artifact's metadata (META_INTEGER), next to the int8 graph they index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstm_edge.runtime.artifact import Artifact
from lstm_edge.runtime.config import EMBEDDING, HEAD_WEIGHT, lstm_b, lstm_r, lstm_w
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.integer import (
    CELL_HEADROOM,
    GATE_FRAC,
    H_MAX,
    MAX_CELL_FRAC,
    IntegerLayer,
    IntegerScheme,
    sigmoid64,
    table,
)

MULT_BITS = 31  # multipliers are Q31: in [2^30, 2^31)
MAX_SHIFT = 62  # |a| < 2^31 times a Q31 multiplier needs at most 62 bits before the shift


class CalibrationError(LstmEdgeError):
    """Calibration data or ranges the integer scheme cannot be built from."""


@dataclass(frozen=True)
class Ranges:
    """What calibration measured on the float model (max |value| over every step)."""

    input_absmax: float | None  # layer 0's normalized input (feature rows); None for tokens
    h_absmax: tuple[float, ...]  # per layer
    c_absmax: tuple[np.ndarray, ...]  # per layer, float64 [H]: per unit
    summary: dict[str, Any] = field(default_factory=dict)  # data, split, steps, streams


def quantize_multiplier(m: float, what: str) -> tuple[int, int]:
    """m as M x 2^-S with M in [2^30, 2^31) and S in [1, 62]; an error naming `what` if
    m is not positive and finite or does not fit."""
    if not (math.isfinite(m) and m > 0):
        raise CalibrationError(f"{what}: multiplier {m!r} is not a positive finite number")
    frac, exp = math.frexp(m)  # m = frac x 2^exp, frac in [0.5, 1)
    mult = round(frac * (1 << MULT_BITS))
    if mult == 1 << MULT_BITS:  # frac rounded up to 1.0
        mult, exp = mult >> 1, exp + 1
    shift = MULT_BITS - exp
    if not 1 <= shift <= MAX_SHIFT:
        raise CalibrationError(
            f"{what}: multiplier {m:.6g} does not fit a 31-bit multiplier and a shift of "
            f"1 to {MAX_SHIFT} (2^-{shift})"
        )
    return mult, shift


def multipliers(scales: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(s), f"{what} row {r}") for r, s in enumerate(scales)]
    return np.array([p[0] for p in pairs], np.int32), np.array([p[1] for p in pairs], np.int32)


def cell_fracs(c_absmax: np.ndarray, layer: int) -> np.ndarray:
    """Per unit, the most fractional bits (0..15) whose int16 range exceeds the calibrated
    max |c| with CELL_HEADROOM to spare."""
    need = CELL_HEADROOM * np.asarray(c_absmax, np.float64)
    fracs = np.full(need.shape, MAX_CELL_FRAC, np.int64)
    while True:
        short = need >= 2.0 ** (15 - fracs)
        if not short.any():
            return fracs.astype(np.int32)
        if (fracs[short] == 0).any():
            j = int(np.flatnonzero(short & (fracs == 0))[0])
            raise CalibrationError(
                f"layer {layer} unit {j}: calibration saw |c| = {c_absmax[j]:.6g}, beyond "
                f"int16 even with no fractional bits (max {2**15 / CELL_HEADROOM:.0f})"
            )
        fracs[short] -= 1


def _scale(absmax: float, what: str) -> float:
    if not (math.isfinite(absmax) and absmax > 0):
        raise CalibrationError(
            f"calibration saw {what} always {absmax!r}: a zero range has no int8 scale "
            f"(constant or empty calibration data?)"
        )
    return absmax / H_MAX


def build_scheme(art8: Artifact, ranges: Ranges) -> IntegerScheme:
    """The integer parameters of the int8 artifact `art8` for the calibrated `ranges`."""
    config = art8.config
    n_layers = config.num_layers
    if len(ranges.h_absmax) != n_layers or len(ranges.c_absmax) != n_layers:
        raise CalibrationError(f"ranges of {len(ranges.h_absmax)} layers for {n_layers}")
    tokens = config.spec.input_dtype == np.int64
    embedding_q = inv = None
    if tokens:
        emb = art8.weights[EMBEDDING].astype(np.float64)
        x_scale = _scale(float(np.abs(emb).max()), "the embedding")
        embedding_q = np.clip(np.rint(emb / x_scale), -H_MAX, H_MAX).astype(np.int8)
    else:
        if ranges.input_absmax is None:
            raise CalibrationError("feature-row models need the input range")
        x_scale = _scale(ranges.input_absmax, "layer 0's normalized input")
        inv = np.float32(1.0 / x_scale)
    input_scale = x_scale
    layers = []
    for k in range(n_layers):
        w, r = art8.quantized[lstm_w(k)], art8.quantized[lstm_r(k)]
        h_scale = _scale(ranges.h_absmax[k], f"h of layer {k}")
        xm, xs = multipliers(x_scale * w.scale.astype(np.float64) * 2**GATE_FRAC, f"layer {k} W")
        hm, hs = multipliers(h_scale * r.scale.astype(np.float64) * 2**GATE_FRAC, f"layer {k} R")
        wb, rb = np.split(art8.weights[lstm_b(k)][0].astype(np.float64), 2)
        bias = np.clip(np.rint((wb + rb) * 2**GATE_FRAC), -(2**31), 2**31 - 1).astype(np.int32)
        om, os_ = quantize_multiplier(1.0 / (2**30 * h_scale), f"layer {k} h")
        layers.append(
            IntegerLayer(
                w_q=w.q[0],
                r_q=r.q[0],
                x_mult=xm,
                x_shift=xs,
                h_mult=hm,
                h_shift=hs,
                bias=bias,
                cell_frac=cell_fracs(ranges.c_absmax[k], k),
                out_mult=om,
                out_shift=os_,
                x_scale=x_scale,
                h_scale=h_scale,
            )
        )
        x_scale = h_scale  # the next layer reads this layer's h codes
    head = art8.quantized[HEAD_WEIGHT]
    return IntegerScheme(
        layers=tuple(layers),
        sigmoid_table=table(sigmoid64),
        tanh_table=table(np.tanh),
        input_scale=input_scale,
        embedding_q=embedding_q,
        input_inv_scale=inv,
        head_q=np.ascontiguousarray(head.q.T),
        head_scale=(x_scale * head.scale.astype(np.float64)).astype(np.float32),
        calibration={
            **ranges.summary,
            "h_absmax": [float(v) for v in ranges.h_absmax],
            "c_absmax_max": [float(np.max(c)) for c in ranges.c_absmax],
            **({"input_absmax": ranges.input_absmax} if not tokens else {}),
        },
    )
