"""`validate`'s pass criteria: one table per task, per quantization scheme, and the checks
that turn a pair's summary into the reasons it failed (empty if it passed).

char-lm: max abs logit error, top-1 agreement and BPC increase against torch
(`TOLERANCES`). forecast: errors against torch in target standard units and the MAE
increase against the truth (`FORECAST_TOLERANCES`). Each task's evaluation half
(toolchain/tasks/<module>_eval.py) names its table and its check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tolerance:
    """char-lm pass criteria for one scheme; a None field is not checked."""

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
}


@dataclass(frozen=True)
class ForecastTolerance:
    """forecast pass criteria for one scheme, in standard units (error / target_std of the
    training split, so one table serves any sensor's units); a None field is not checked."""

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
}


def common_failures(summary: Any) -> list[str]:
    if not summary.finite:
        return [f"non-finite outputs from step {summary.first_nonfinite_step}"]
    return []


def check_tolerance(summary: Any, tol: Tolerance) -> list[str]:
    """The reasons a char-lm `summary` (a PairSummary) is out of `tol` (empty if it passes)."""
    failures = common_failures(summary)
    if tol.max_abs_err is not None and not summary.max_abs_err <= tol.max_abs_err:
        failures.append(
            f"max abs logit error {summary.max_abs_err:.3g} > {tol.max_abs_err:.3g} "
            f"(at step {summary.argmax_step})"
        )
    if tol.min_top1 is not None and not summary.top1_agreement >= tol.min_top1:
        failures.append(f"top-1 agreement {summary.top1_agreement:.4f} < {tol.min_top1:.4f}")
    if tol.max_bpc_increase is not None and not summary.bpc_increase <= tol.max_bpc_increase:
        failures.append(
            f"BPC increase {summary.bpc_increase:+.4f} > {tol.max_bpc_increase:.4f} bits/char"
        )
    return failures


def check_forecast_tolerance(summary: Any, tol: ForecastTolerance) -> list[str]:
    """The reasons a forecast `summary` (a ForecastSummary) is out of `tol` (empty if it passes)."""
    failures = common_failures(summary)
    if tol.max_abs_err is not None and not summary.max_abs_err <= tol.max_abs_err:
        failures.append(
            f"max forecast error vs torch {summary.max_abs_err:.3g} std > "
            f"{tol.max_abs_err:.3g} (at step {summary.argmax_step})"
        )
    if tol.max_mean_err is not None and not summary.mean_abs_err <= tol.max_mean_err:
        failures.append(
            f"mean forecast error vs torch {summary.mean_abs_err:.3g} std > {tol.max_mean_err:.3g}"
        )
    if tol.max_mae_increase is not None and not summary.mae_increase <= tol.max_mae_increase:
        failures.append(
            f"MAE vs truth increase {summary.mae_increase:+.4f} std > {tol.max_mae_increase:.4f}"
        )
    return failures
