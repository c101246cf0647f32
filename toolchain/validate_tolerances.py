"""`validate`'s pass criteria: the checks that turn a pair's summary into the reasons it
failed (empty if it passed), against the one tolerance table per task and scheme in
lstm_edge.exporters.compare.

char-lm: max abs logit error, top-1 agreement and BPC increase against torch
(`TOLERANCES`). forecast: errors against torch in target standard units and the MAE
increase against the truth (`FORECAST_TOLERANCES`). Each task's evaluation half
(toolchain/tasks/<module>_eval.py) names its table and its check.
"""

from __future__ import annotations

from typing import Any

from lstm_edge.exporters.compare import ForecastTolerance, Tolerance


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
