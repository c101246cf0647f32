"""The reference backend: the lstm-edge graph in plain numpy, slow and obvious.

Names follow the ONNX LSTM spec (X, W, R, B, H_0, C_0; gates i, o, f, c) so the code can
be read side by side with onnx/reference/ops/op_lstm.py. It runs float, int8 and fp16
artifacts from the float32 weights `read_artifact` rebuilt (int8: q * scale, exactly what
DequantizeLinear computes; fp16: an exact cast). Every other backend is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstm_edge.runtime.artifact import BASE_OPS, Artifact, require_ops
from lstm_edge.runtime.errors import InputError, UnsupportedModelError
from lstm_edge.runtime.format import HEAD_WEIGHT, lstm_b, lstm_r, lstm_w
from lstm_edge.runtime.integer import IntegerRunner
from lstm_edge.runtime.tasks import TaskSpec
from lstm_edge.runtime.tasks.forecast import apply_highway


def sigmoid(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-x)) overflows (with a warning) for x < -88 in float32; this identity
    # is exact in real arithmetic and stays finite everywhere.
    return 0.5 * np.tanh(0.5 * x) + 0.5


def lstm(
    X: np.ndarray, W: np.ndarray, R: np.ndarray, B: np.ndarray, H_0: np.ndarray, C_0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One forward ONNX LSTM layer with default activations.

    X [T, batch, in]; W [4H, in]; R [4H, H]; B [8H] (Wb then Rb); H_0, C_0 [batch, H].
    Returns Y [T, batch, H], Y_h and Y_c [batch, H], all float32.

    Each step is computed in float64 and its h and c rounded to float32, the state's type:
    the most exact step a float32 state allows, so this reference sits closer to the exact
    LSTM than any float32 kernel (torch's included). With float32 arithmetic it was the
    least exact backend: a trained model's cell state reaches |c| ~ 1e3 with f ~ 1, where
    each step's rounding adds up (measured 1.2e-3 logits from a float64 torch, against
    4e-4 for float32 torch and 2e-5 for onnxruntime).
    """
    W, R = np.asarray(W, np.float64), np.asarray(R, np.float64)  # no copy if float64
    Wb, Rb = np.split(np.asarray(B, np.float64), 2)
    H_t, C_t = H_0.astype(np.float32), C_0.astype(np.float32)
    XW = X.astype(np.float64) @ W.T + Wb  # the input projection of every step at once
    Y = []
    for xw in XW:
        gates = xw + H_t @ R.T + Rb
        i, o, f, c = np.split(gates, 4, -1)
        i, o, f, c = sigmoid(i), sigmoid(o), sigmoid(f), np.tanh(c)
        C_t = (f * C_t + i * c).astype(np.float32)
        H_t = (o * np.tanh(C_t)).astype(np.float32)
        Y.append(H_t)
    return np.stack(Y), H_t, C_t


@dataclass(frozen=True)
class NumpyRunner:
    weights: dict[str, np.ndarray]
    num_layers: int
    task: TaskSpec  # its input and output stages
    # The LSTM and head weights in float64, converted once here rather than on every step.
    exact: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [HEAD_WEIGHT]
        for layer in range(self.num_layers):
            names += [lstm_w(layer), lstm_r(layer), lstm_b(layer)]
        exact = {n: self.weights[n].astype(np.float64) for n in names}
        object.__setattr__(self, "exact", exact)

    def run(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """inputs: tokens int64 [batch, time] or features float32 [batch, time, F]; with a
        history (the forecast highway) also returns the history after the last step."""
        w = self.weights
        x = self.task.apply_input_stage(w, inputs)  # [batch, T, in]
        highway = None
        if history:
            highway, history_out = apply_highway(w, x, history[0])
        X = x.transpose(1, 0, 2)  # [T, batch, in]
        Y_h, Y_c = [], []
        for layer in range(self.num_layers):
            X, H_n, C_n = lstm(
                X,
                self.exact[lstm_w(layer)][0],
                self.exact[lstm_r(layer)][0],
                self.exact[lstm_b(layer)][0],
                h[layer],
                c[layer],
            )
            Y_h.append(H_n)
            Y_c.append(C_n)
        head = (X.transpose(1, 0, 2) @ self.exact[HEAD_WEIGHT]).astype(np.float32)
        if highway is None:
            y = self.task.apply_output_stage(w, head, inputs)
            return y, np.stack(Y_h), np.stack(Y_c)
        y = self.task.apply_output_stage(w, head, inputs, highway)
        return y, np.stack(Y_h), np.stack(Y_c), history_out


def load(artifact: Artifact, **options) -> NumpyRunner | IntegerRunner:
    if options:
        raise InputError(f"the numpy backend takes no options (got {sorted(options)})")
    require_ops(artifact, BASE_OPS, "numpy")
    if not artifact.weights:
        raise UnsupportedModelError(
            f"{artifact.path}: the numpy backend cannot run scheme {artifact.scheme!r}"
        )
    config = artifact.config
    if artifact.integer is not None:  # int8-full: the integer reference, which defines it
        return IntegerRunner(scheme=artifact.integer, weights=artifact.weights, task=config.spec)
    return NumpyRunner(weights=artifact.weights, num_layers=config.num_layers, task=config.spec)
