"""One comparison of an artifact's output stream with a reference stream, and the one table
of the tolerances it is judged by.

`compare_streams` is what the export self-check, `codegen --check` and `validate` call:
errors are divided by the task's `error_scale` (char-lm logits as they are, forecasts in
target standard units) and summarized the same way everywhere (`StreamComparison`).
Torch-free: the reference arrives as arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_edge.runtime.config import ModelConfig

# ---- tolerances ----------------------------------------------------------------------------
# Every bound the toolchain checks an artifact's outputs against, each with why it is what it
# is. Output errors are in `error_scale` units: char-lm logits, forecasts / target_std.

# Export self-check: the written file (onnxruntime) vs torch over the check stream, prefill
# and single steps. Both compute in float32 but sum in different orders; a correct export
# measures ~1e-6 over 2,000 steps, while a wrong gate order or state wiring is off by O(1).
EXPORT_CHECK_TOLERANCE = 1e-4

# codegen --check: C outputs vs the numpy reference on the same weights: only the float32
# summation order (and expf/tanhf vs numpy's) differ, ~1e-6 per step; the gates' saturating
# nonlinearities keep that from growing over a stream. 1e-3 is ~100x above what is measured
# and still far below a real bug (a wrong gate, scale or transpose moves logits by
# O(0.1..1)). Forecast errors are in target standard units, where the same argument holds:
# the normalization is bit-identical, the rest is the same LSTM.
C_VS_NUMPY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Tolerance:
    """char-lm pass criteria for one scheme (validate); a None field is not checked."""

    max_abs_err: float | None = None  # max over all steps of max |logit_artifact - logit_torch|
    min_top1: float | None = None  # fraction of steps whose argmax agrees with torch
    max_bpc_increase: float | None = None  # BPC(artifact) - BPC(torch), bits per character


TOLERANCES: dict[str, Tolerance] = {
    # Float artifact: the same float32 math, only the summation order differs (MLAS/BLAS
    # vs oneDNN). Typical per-step differences are ~1e-5, and they do not accumulate
    # along the stream; but a trained model amplifies them at some inputs: the default
    # model's cell state reaches |c| ~ 750, and over 100,000 steps its max error was
    # 5e-4 (mean 5e-6, top-1 100%), as isolated spikes at the same text positions in
    # every pass over the text. 1e-3 covers that rounding while any real bug (a wrong
    # gate order, a dropped bias) is O(1).
    "none": Tolerance(max_abs_err=1e-3),
    # fp16 weights keep 11 significant bits (relative error <= 2^-11 ~ 5e-4): logits move
    # by ~1e-3, so only near-ties flip the top-1 and the BPC barely changes.
    "fp16": Tolerance(min_top1=0.99, max_bpc_increase=0.01),
    # int8 per-channel weights: a relative weight error up to 1/254 per channel. Measured
    # on trained models this flips a few near-tied top-1s and costs a few hundredths of a
    # bit; 0.95 and 0.05 bits fail a broken scale or axis (which cost whole bits) while
    # leaving room for the noise of a small model.
    "int8": Tolerance(min_top1=0.95, max_bpc_increase=0.05),
    # onnxruntime's dynamic quantization also rounds the activations to uint8 every step,
    # so it is noisier than weight-only int8; same shape of bound, looser.
    "int8-dynamic": Tolerance(min_top1=0.93, max_bpc_increase=0.08),
    # Full integer (int8 activations and h, int16 cell, table activations): the scheme's
    # promise to firmware users, issue targets as bounds: top-1 agreement with torch >= 98%
    # and at most 0.03 bits per character more.
    "int8-full": Tolerance(min_top1=0.98, max_bpc_increase=0.03),
}


@dataclass(frozen=True)
class ForecastTolerance:
    """forecast pass criteria for one scheme (validate), in standard units (error /
    target_std of the training split, so one table serves any sensor's units); a None
    field is not checked."""

    max_abs_err: float | None = None  # max over steps and targets of |artifact - torch| / std
    max_mean_err: float | None = None  # mean over steps of the per-step error above
    max_mae_increase: float | None = None  # MAE vs truth / std: artifact minus torch


FORECAST_TOLERANCES: dict[str, ForecastTolerance] = {
    # Measured on the default forecast model (`lstm-edge train --task forecast`: 1x64,
    # built-in signal), 20,000 single steps cycling its 1,000-row test split, numpy and
    # ort alike; its own error vs the truth is MAE 0.28 std, MASE 0.75.
    # Float: only the float32 summation order differs from torch: measured max 2.1e-6
    # std, mean 1.5e-7, no drift (last/first 10%: 0.96-1.00x). The inputs are normalized,
    # so the cell state stays small (|c| < 9) and no spikes like char-lm's appear; 1e-4
    # leaves ~50x room while any real bug (gate order, a dropped bias) is O(0.1-1).
    "none": ForecastTolerance(max_abs_err=1e-4),
    # fp16 weights (relative error <= 2^-11): measured max 1.3e-3 std, mean 1.3e-4, MAE vs
    # truth -1.3e-5 std. 2e-2 / 5e-3 / 5e-3 leave 15-40x room; a flipped sign or a wrong
    # scale moves the forecast by whole std units.
    "fp16": ForecastTolerance(max_abs_err=2e-2, max_mean_err=5e-3, max_mae_increase=5e-3),
    # int8 per-channel weights (relative error up to 1/254 per channel): measured max
    # 6.8e-2 std, mean 4.3e-3, MAE vs truth +7e-5 std. The per-step max is not checked
    # (a few steps at sharp load changes carry it); the mean and the MAE increase bound
    # what a user feels: 3e-2 is ~7x the measured mean and a tenth of the model's own
    # error (0.28 std); 2e-2 std of MAE is ~7% of it.
    "int8": ForecastTolerance(max_mean_err=3e-2, max_mae_increase=2e-2),
    # onnxruntime's dynamic quantization also rounds the activations to uint8 every step:
    # measured max 6.7e-2, mean 5.5e-3, MAE +1.3e-4 std; same bounds as int8, doubled.
    "int8-dynamic": ForecastTolerance(max_mean_err=6e-2, max_mae_increase=4e-2),
    # Full integer: the inputs and every h are rounded to int8 each step (steps of 1/127 of
    # their calibrated range), so the forecast moves more than with weight-only int8.
    "int8-full": ForecastTolerance(max_mean_err=6e-2, max_mae_increase=1e-2),
}


@dataclass(frozen=True)
class ClassifyTolerance:
    """classify pass criteria for one scheme (validate): logits and running predictions
    against torch, and the held-out metrics of the final predictions (accuracy and macro-F1,
    as fractions); a None field is not checked."""

    max_abs_err: float | None = None  # max over steps of max |logit_artifact - logit_torch|
    min_top1: float | None = None  # running prediction == torch's, over every step
    min_final_agreement: float | None = None  # sequence predictions == torch's
    max_accuracy_drop: float | None = None  # accuracy(torch) - accuracy(artifact)
    max_macro_f1_drop: float | None = None


CLASSIFY_TOLERANCES: dict[str, ClassifyTolerance] = {
    # Float: the same float32 math as torch; the inputs are normalized in the graph, so the
    # logits move by ~1e-6 (measured 1.3e-5 at most on the default model); 1e-3 as char-lm.
    "none": ClassifyTolerance(max_abs_err=1e-3, min_top1=0.999, min_final_agreement=1.0),
    # fp16 weights (relative error <= 2^-11): only near-tied running predictions may flip.
    "fp16": ClassifyTolerance(
        min_top1=0.99, min_final_agreement=0.99, max_accuracy_drop=0.01, max_macro_f1_drop=0.01
    ),
    # int8 per-channel weights (relative error up to 1/254 per channel): measured on the
    # default model ~0.3% of the running predictions flip (near ties early in a
    # sequence). The bounds are the task's promise: top-1 agreement >= 99% and accuracy
    # and macro-F1 within one point of torch; a broken scale or axis costs tens of points.
    "int8": ClassifyTolerance(
        min_top1=0.99, min_final_agreement=0.98, max_accuracy_drop=0.01, max_macro_f1_drop=0.01
    ),
    # onnxruntime's dynamic quantization also rounds activations every step: looser.
    "int8-dynamic": ClassifyTolerance(
        min_top1=0.97, min_final_agreement=0.95, max_accuracy_drop=0.03, max_macro_f1_drop=0.03
    ),
    # Full integer: accuracy within one point of torch, the scheme's promise.
    "int8-full": ClassifyTolerance(
        min_top1=0.97, min_final_agreement=0.97, max_accuracy_drop=0.01, max_macro_f1_drop=0.02
    ),
}

# ---- the comparison ------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamComparison:
    """An artifact's output stream against a reference stream, errors in `unit`.

    A non-finite output makes its step's error NaN or Inf; that carries into `max_abs_err`
    and `mean_abs_err` (so it never passes) and `finite` is False.
    """

    steps: int
    step_errors: np.ndarray  # float64 [steps]: per step, max over batch and outputs
    max_abs_err: float  # max of step_errors
    argmax_step: int  # the step of max_abs_err (the first non-finite step if any)
    mean_abs_err: float  # mean of step_errors
    # max abs error of the final state ((h, c), and the history of a forecast highway),
    # unscaled; None: not compared
    state_err: float | None
    tolerance: float | None  # the bound max_abs_err was held to; None: not checked
    passed: bool  # max_abs_err <= tolerance (True when no tolerance was given)
    unit: str  # what the errors measure (`spec.error_unit`)

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.step_errors).all())

    @property
    def first_nonfinite_step(self) -> int | None:
        bad = ~np.isfinite(self.step_errors)
        return int(np.argmax(bad)) if bad.any() else None


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(a).astype(np.float64) - np.asarray(b).astype(np.float64))


def compare_streams(
    config: ModelConfig,
    reference: np.ndarray,
    outputs: np.ndarray,
    *,
    reference_state: tuple[np.ndarray, ...] | None = None,
    state: tuple[np.ndarray, ...] | None = None,
    tolerance: float | None = None,
) -> StreamComparison:
    """Compare `outputs` with `reference`, both [steps, out] or [batch, steps, out], in the
    task's error units: |outputs - reference| / `config.spec.error_scale(config)` (float64).

    `reference_state` and `state` (matching tuples, e.g. (h, c)) are compared unscaled.
    """
    reference, outputs = np.asarray(reference), np.asarray(outputs)
    if reference.shape != outputs.shape or reference.ndim not in (2, 3):
        raise ValueError(
            f"outputs {list(outputs.shape)} vs reference {list(reference.shape)} "
            "(expected equal shapes [steps, out] or [batch, steps, out])"
        )
    spec = config.spec
    err = _abs_diff(outputs, reference) / spec.error_scale(config)
    err = np.moveaxis(err, -2, 0).reshape(err.shape[-2], -1)  # [steps, batch * out]
    step_errors = err.max(axis=1) if err.size else np.zeros(err.shape[0])
    bad = ~np.isfinite(step_errors)
    argmax = int(np.argmax(bad if bad.any() else step_errors)) if step_errors.size else 0
    state_err = None
    if reference_state is not None and state is not None:
        state_err = max(
            float(_abs_diff(a, b).max()) for a, b in zip(state, reference_state, strict=True)
        )
    worst = float(np.max(step_errors)) if step_errors.size else 0.0
    return StreamComparison(
        steps=int(step_errors.size),
        step_errors=step_errors,
        max_abs_err=worst,
        argmax_step=argmax,
        mean_abs_err=float(np.mean(step_errors)) if step_errors.size else 0.0,
        state_err=state_err,
        tolerance=tolerance,
        passed=tolerance is None or worst <= tolerance,  # NaN never passes
        unit=spec.error_unit,
    )
