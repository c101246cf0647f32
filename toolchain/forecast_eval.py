"""Forecast evaluation: aligned errors, baselines, MASE, anomaly scores, event scoring.

Everything here is plain numpy over arrays a caller already has (model outputs, the
targets at each step, fault labels), so `validate`, `detect` and the exporter's
calibration share one definition of each number. Conventions, used throughout:

- `outputs[t]` is the model's output after reading step t; it predicts
  `targets[t + horizon]` (the contract in runtime/config.py). `targets[t]` holds the target
  columns AT step t, not shifted.
- Errors are `prediction - actual`, in raw units unless a name says "std" (divided by the
  training-split target std, the config's `target_std`).
- An anomaly score is indexed by the step whose ACTUAL value it judges (t + horizon), so it
  lines up with fault labels, which mark the rows where a fault was present.

Only `calibrate` needs torch (it runs the checkpoint's model over its training split); it
imports torch-side code lazily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.toolchain.blas import blas_threads

if TYPE_CHECKING:
    from lstm_edge.toolchain.checkpoint import Checkpoint

# 1.4826 * median |x| estimates the standard deviation of a zero-mean normal x, and unlike
# the plain std it ignores a minority of huge residuals: the training split of the
# built-in signal holds injected faults too, and those must not inflate the scale that is
# meant to describe normal operation.
MAD_TO_SIGMA = 1.4826
# Steps from a zero state before residuals count in calibration: the state needs a few
# dozen steps to settle, and its first forecasts are not what the model does in service.
CALIBRATION_WARMUP = 50
# Default anomaly threshold, in robust sigmas (score units), chosen on the default model
# (`lstm-edge pipeline --task forecast`): over the whole built-in signal written as CSV
# (62 injected faults; `lstm-edge detect MODEL --csv machine.csv --label-column fault
# --time-column time --threshold T`), T = 4 / 5 / 6 gives recall 0.92 / 0.89 / 0.79 and
# precision (flag runs) 0.74 / 0.93 / 0.99; 5 has the best balance. A user trading recall
# for fewer alarms passes --threshold.
DEFAULT_THRESHOLD = 5.0
DEFAULT_THRESHOLD_NOTE = "threshold: lstm-edge's default of 5 robust sigmas"
# `detect` scores nothing in the first DETECT_WARMUP steps after its zero state: the
# first forecast from a zero state is off by several robust sigmas (measured: the default
# model's step-1 score is 7.4, a false alarm on every run), and it settles within a few.
DETECT_WARMUP = 10


def warmup(config: Any, steps: int) -> int:
    """Steps from a reset state before a forecast counts: `steps`, or a model's linear
    highway's lags if more. Its history fills only after ar_lags steps; before, the
    autoregression reads changes that never happened as zeros (on a seasonal series
    with a 25-row highway, detect flagged rows 11..18 of a clean trend, score 27)."""
    return max(steps, getattr(config, "ar_lags", 0))


# A fault event counts as detected if a flag falls in [start, stop + DETECT_LAG): the
# forecast made from faulty inputs stays off for a few steps after the fault ends (the
# LSTM state still holds it), and a flag that late still points at the right event.
DETECT_LAG = 5
# A residual scale is never below this fraction of the target's training std: a target
# the model predicts exactly (a constant column) would otherwise get scale 0 and every
# later rounding error would be an infinite score.
MIN_SCALE_FRACTION = 1e-6


class ForecastEvalError(LstmEdgeError):
    """Inputs to a forecast metric that cannot be scored (shapes, too short a series)."""


# ---- aligned errors and the usual metrics ------------------------------------------------


def _2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ForecastEvalError(f"{name} has shape {list(a.shape)} (expected [steps, targets])")
    return a


def aligned_errors(outputs: np.ndarray, targets: np.ndarray, horizon: int) -> np.ndarray:
    """`outputs[t] - targets[t + horizon]` for t in [0, steps - horizon): [steps - h, n]."""
    out, tgt = _2d(outputs, "outputs"), _2d(targets, "targets")
    if out.shape != tgt.shape:
        raise ForecastEvalError(
            f"outputs {list(out.shape)} and targets {list(tgt.shape)} differ in shape"
        )
    if horizon < 0:
        raise ForecastEvalError(f"horizon is {horizon} (expected >= 0)")
    if out.shape[0] <= horizon:
        raise ForecastEvalError(f"{out.shape[0]} steps leave nothing to score at horizon {horizon}")
    return out[: out.shape[0] - horizon] - tgt[horizon:]


def mae(err: np.ndarray) -> np.ndarray:
    """Mean absolute error per target (column), NaN rows ignored."""
    return np.nanmean(np.abs(_2d(err, "errors")), axis=0)


def rmse(err: np.ndarray) -> np.ndarray:
    """Root mean squared error per target (column), NaN rows ignored."""
    return np.sqrt(np.nanmean(np.square(_2d(err, "errors")), axis=0))


def persistence_forecast(targets: np.ndarray, horizon: int) -> np.ndarray:
    """The naive forecast as model-style outputs: output t predicts targets[t + h] by
    targets[t], so the outputs are the targets themselves (`horizon` is only checked)."""
    if horizon < 0:
        raise ForecastEvalError(f"horizon is {horizon} (expected >= 0)")
    return _2d(targets, "targets").copy()


def seasonal_persistence_forecast(targets: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Output t predicts targets[t + h] by targets[t + h - season] (the same phase one
    season earlier); NaN where that is before the series starts. Needs season >= horizon
    (otherwise the "forecast" would read the future)."""
    tgt = _2d(targets, "targets")
    if season < max(1, horizon):
        raise ForecastEvalError(f"season {season} is shorter than the horizon {horizon}")
    out = np.full_like(tgt, np.nan)
    lag = season - horizon  # output t reads row t - lag
    out[lag:] = tgt[: tgt.shape[0] - lag]
    return out


# Lags of the linear baseline without a season: a few steps of recent changes.
DEFAULT_AR_LAGS = 8
MAX_AR_LAGS = 400


def ar_lags(season: int | None) -> int:
    """Lagged changes the linear baseline reads: one season and one more (a change a season
    ago and the one before it), else DEFAULT_AR_LAGS."""
    return DEFAULT_AR_LAGS if season is None else min(season + 1, MAX_AR_LAGS)


@dataclass(frozen=True)
class LinearAR:
    """The linear baseline, per target k: target[t + h] - target[t] ~ coef[k, 0] +
    sum_j coef[k, 1 + j] * (target[t - j] - target[t - j - 1]), j < lags: a direct
    `horizon`-step autoregression on lagged changes, fitted by least squares on the
    training split (`fit_linear_ar`)."""

    horizon: int
    lags: int
    coef: np.ndarray  # float64 [n_targets, 1 + lags]


def _lagged_changes(col: np.ndarray, lags: int) -> np.ndarray:
    """[T, 1 + lags]: a 1, then col[t - j] - col[t - j - 1] for j < lags (NaN before the
    series starts, so all of a column whose lag reaches past a short stream)."""
    d = np.full(col.shape[0], np.nan)
    d[1:] = np.diff(col)
    x = np.full((col.shape[0], 1 + lags), np.nan)
    x[:, 0] = 1.0
    for j in range(min(lags, col.shape[0])):
        x[j:, 1 + j] = d[: col.shape[0] - j]
    return x


def fit_linear_ar(train_targets: np.ndarray, horizon: int, lags: int) -> LinearAR:
    """Least squares (numpy.linalg.lstsq) on the rows of the training split that have
    `lags` changes of history and a truth `horizon` rows later. One OpenBLAS thread: the
    coefficients go into a highway model's config, and every process (a torchrun rank
    too) must fit the same bits."""
    tgt = _2d(train_targets, "training targets")
    if tgt.shape[0] <= lags + horizon + 1:
        raise ForecastEvalError(
            f"the training split has {tgt.shape[0]} rows, too few to fit a linear model on "
            f"{lags} lagged changes {horizon} step(s) ahead"
        )
    coef = []
    with blas_threads(1):
        for col in tgt.T:
            x = _lagged_changes(col, lags)[lags : col.shape[0] - horizon]
            y = (col[horizon:] - col[:-horizon])[lags:]
            coef.append(np.linalg.lstsq(x, y, rcond=None)[0])
    return LinearAR(horizon, lags, np.array(coef))


def linear_ar_forecast(model: LinearAR, targets: np.ndarray) -> np.ndarray:
    """The linear baseline as model-style outputs: output t predicts targets[t + h]; NaN
    for the first `lags` steps (not enough history)."""
    tgt = _2d(targets, "targets")
    out = np.empty_like(tgt)
    for k, col in enumerate(tgt.T):
        out[:, k] = col + _lagged_changes(col, model.lags) @ model.coef[k]
    return out


@dataclass(frozen=True)
class ForecastScores:
    """Accuracy of one forecast against the truth, with the baselines on the same steps.

    MASE here is MAE(model) / MAE(persistence) over the SAME held-out steps, not
    Hyndman's MASE, which scales by the in-sample naive error of the
    training series. Below 1: better than repeating the last value. The seasonal variant
    divides by seasonal persistence's MAE, both over the steps where that baseline exists.
    A baseline with zero error (a constant target) gives NaN, never a division by zero.
    """

    steps: int  # scored steps (outputs with a truth)
    mae: list[float]  # per target, raw units
    rmse: list[float]
    mae_std: float  # mean over targets of MAE / target_std
    rmse_std: float
    persistence_mae: list[float]
    mase: list[float]
    mase_mean: float
    seasonal_mae: list[float] | None
    mase_seasonal: list[float] | None
    mase_seasonal_mean: float | None
    linear_mae: list[float] | None = None  # the linear baseline (`LinearAR`)
    mase_linear: list[float] | None = None
    mase_linear_mean: float | None = None
    season: int | None = None  # of the seasonal baseline


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return [float(n / d) if d > 0 else math.nan for n, d in zip(num, den, strict=True)]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def forecast_scores(
    outputs: np.ndarray,
    targets: np.ndarray,
    horizon: int,
    target_std: np.ndarray,
    season: int | None = None,
    linear: LinearAR | None = None,
    linear_rows: int | None = None,
    skip: int = 0,
) -> ForecastScores:
    """MAE/RMSE of `outputs` against the truth, and MASE against persistence, seasonal
    persistence (with a season) and the linear baseline (when fitted), each over the
    steps where that baseline has a forecast. `linear_rows`: score the linear baseline on
    the first rows only (a stream that cycles a split jumps at each seam, and the jump
    stays in the baseline's lagged changes for `lags` steps: not what it would see).
    `skip`: score from output `skip` on (the rows before only warm the state up; the
    baselines read them as history too)."""
    err = aligned_errors(outputs, targets, horizon)[skip:]
    std = np.asarray(target_std, dtype=np.float64)
    m, r = mae(err), rmse(err)
    p = mae(aligned_errors(persistence_forecast(targets, horizon), targets, horizon)[skip:])
    seasonal = mase_s = None
    if season is not None and season >= max(1, horizon):
        s_err = aligned_errors(seasonal_persistence_forecast(targets, horizon, season),
                               targets, horizon)[skip:]  # fmt: skip
        valid = ~np.isnan(s_err).any(axis=1)
        if valid.any():
            s_mae = mae(s_err[valid])
            seasonal = [float(v) for v in s_mae]
            mase_s = _ratio(mae(err[valid]), s_mae)
    mase_v = _ratio(m, p)
    lin = mase_l = None
    if linear is not None:
        l_err = aligned_errors(linear_ar_forecast(linear, targets), targets, horizon)
        valid = ~np.isnan(l_err).any(axis=1)
        if linear_rows is not None:
            valid[max(0, linear_rows - horizon) :] = False  # truths past the first pass
        l_err, valid = l_err[skip:], valid[skip:]
        if valid.any():
            l_mae = mae(l_err[valid])
            lin = [float(v) for v in l_mae]
            mase_l = _ratio(mae(err[valid]), l_mae)
    return ForecastScores(
        steps=int(err.shape[0]),
        mae=[float(v) for v in m],
        rmse=[float(v) for v in r],
        mae_std=float(np.mean(m / std)),
        rmse_std=float(np.mean(r / std)),
        persistence_mae=[float(v) for v in p],
        mase=mase_v,
        mase_mean=_mean(mase_v),
        seasonal_mae=seasonal,
        mase_seasonal=mase_s,
        mase_seasonal_mean=_mean(mase_s) if mase_s is not None else None,
        linear_mae=lin,
        mase_linear=mase_l,
        mase_linear_mean=_mean(mase_l) if mase_l is not None else None,
        season=season if seasonal is not None else None,
    )


def linear_verdict(scores: ForecastScores, highway: int = 0) -> str:
    """One plain sentence: does the model beat the linear baseline? `highway`: the model's
    ar_lags; a model with the linear highway carries that autoregression itself, so the
    comparison measures what its LSTM adds to it."""
    if scores.mase_linear_mean is None or not math.isfinite(scores.mase_linear_mean):
        return (
            "no linear baseline score (no training split to fit it on, or a stream shorter "
            "than its lagged changes)"
        )
    mase = scores.mase_linear_mean
    if highway:
        carried = (
            f"the model includes a linear highway (a least-squares autoregression on {highway} "
            "lagged changes, fitted on the training split), so MASE vs linear measures what "
            "the LSTM adds to it: "
        )
        if mase < 1:
            return carried + f"it improves on the linear baseline (MASE {mase:.3f} vs it)"
        return carried + (
            f"it does NOT improve on the linear baseline (MASE {mase:.3f} vs it): on this "
            "series the model forecasts no better than the autoregression alone"
        )
    if mase < 1:
        return f"beats the linear baseline (MASE {mase:.3f} vs it)"
    return (
        f"does NOT beat the linear baseline (MASE {mase:.3f} vs it): a "
        "least-squares autoregression on lagged changes forecasts this series as well or better"
    )


# ---- anomaly scores ----------------------------------------------------------------------


def anomaly_scores(
    outputs: np.ndarray, targets: np.ndarray, horizon: int, residual_scale: Any
) -> np.ndarray:
    """Score of each step s: max over targets of |outputs[s - h] - targets[s]| / scale.

    Indexed by the step whose actual value is judged, so it lines up with fault labels;
    the first `horizon` steps have no forecast yet and score NaN.
    """
    tgt = _2d(targets, "targets")
    scale = np.asarray(residual_scale, dtype=np.float64)
    if scale.shape != (tgt.shape[1],) or not (scale > 0).all():
        raise ForecastEvalError(
            f"residual_scale {scale.tolist()} (expected {tgt.shape[1]} values > 0, one per target)"
        )
    scores = np.full(tgt.shape[0], np.nan)
    scores[horizon:] = (np.abs(aligned_errors(outputs, targets, horizon)) / scale).max(axis=1)
    return scores


def flag(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Steps whose score is above `threshold` (a NaN score is never flagged)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(scores) > threshold


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The maximal runs of True in a bool array, as (start, stop) with stop exclusive."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], m, [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


@dataclass(frozen=True)
class EventScores:
    """Flags against labelled faults, event by event.

    A fault event is a maximal run of labelled steps [start, stop); it is detected if a
    flag falls in [start, stop + lag). Recall = detected events / events. Precision = flag
    runs that overlap some event's window / flag runs (a long run on one fault counts
    once, as an operator sees it); `step_precision` is the same share over flagged steps.
    NaN where the denominator is zero (no events, or no flags).
    """

    events: int
    detected: int
    recall: float
    flag_runs: int
    true_runs: int
    precision: float
    flagged_steps: int
    step_precision: float
    mean_delay: float  # mean over detected events of (first flag - start), steps
    lag: int


def event_scores(flags: np.ndarray, faults: np.ndarray, lag: int = DETECT_LAG) -> EventScores:
    flags = np.asarray(flags, dtype=bool)
    faults = np.asarray(faults, dtype=bool)
    if flags.shape != faults.shape or flags.ndim != 1:
        raise ForecastEvalError(
            f"flags {list(flags.shape)} and fault labels {list(faults.shape)} must be 1-D "
            f"and of one length"
        )
    window = np.zeros_like(faults)
    events = runs(faults)
    delays = []
    for start, stop in events:
        end = min(stop + lag, faults.size)
        window[start:end] = True
        hit = np.flatnonzero(flags[start:end])
        if hit.size:
            delays.append(int(hit[0]))
    flag_runs = runs(flags)
    true_runs = sum(1 for a, b in flag_runs if window[a:b].any())
    n_flagged = int(flags.sum())

    def share(n: int, d: int) -> float:
        return n / d if d else math.nan

    return EventScores(
        events=len(events),
        detected=len(delays),
        recall=share(len(delays), len(events)),
        flag_runs=len(flag_runs),
        true_runs=true_runs,
        precision=share(true_runs, len(flag_runs)),
        flagged_steps=n_flagged,
        step_precision=share(int((flags & window).sum()), n_flagged),
        mean_delay=float(np.mean(delays)) if delays else math.nan,
        lag=lag,
    )


# ---- calibration (the exporter writes it into META_CALIBRATION) ---------------------------


def residual_scale(err: np.ndarray, target_std: Any) -> np.ndarray:
    """Robust per-target spread of residuals: MAD_TO_SIGMA * median |err| (NaN ignored),
    floored at MIN_SCALE_FRACTION * target_std."""
    e = np.abs(_2d(err, "errors"))
    floor = MIN_SCALE_FRACTION * np.asarray(target_std, dtype=np.float64)
    return np.maximum(MAD_TO_SIGMA * np.nanmedian(e, axis=0), floor)


def calibration_from_errors(
    err: np.ndarray,
    target_std: Any,
    threshold: float = DEFAULT_THRESHOLD,
    skipped: int = CALIBRATION_WARMUP,
) -> dict[str, Any]:
    """The META_CALIBRATION dict from training-split residuals (the first `skipped`
    steps, the warm-up, already dropped)."""
    scale = residual_scale(err, target_std)
    return {
        "residual_scale": [float(v) for v in scale],
        "threshold": float(threshold),
        "split": "train",
        "statistic": (
            f"{MAD_TO_SIGMA} * median |forecast - actual| per target over the training "
            f"split (first {skipped} steps from a zero state skipped); robust "
            f"to the faults the split contains; " + DEFAULT_THRESHOLD_NOTE
        ),
    }


def calibrate(ckpt: Checkpoint) -> dict[str, Any] | None:
    """META_CALIBRATION for a forecast checkpoint: its torch model over the training split,
    state carried from a zero state. None for a char-lm checkpoint, when the data record
    is missing (a checkpoint built by hand without data.json) or its CSV file is gone."""
    from pathlib import Path

    from lstm_edge.runtime.tasks.forecast import step_block
    from lstm_edge.toolchain.series import BUILTIN_SOURCE
    from lstm_edge.toolchain.tasks import training
    from lstm_edge.toolchain.validate_run import torch_outputs

    if not ckpt.config.spec.has_calibration or not ckpt.data:
        return None
    source = ckpt.data.get("source")
    if source != BUILTIN_SOURCE and not (isinstance(source, str) and Path(source).is_file()):
        return None  # the training CSV is gone; a CSV that changed is still an error below

    split = training(ckpt.config).held_out_stream(ckpt.data, ckpt.config, "train")
    h = ckpt.config.horizon
    skipped = warmup(ckpt.config, CALIBRATION_WARMUP)
    if split.targets.shape[0] <= skipped + h + 1:
        return None
    # a model of each step ahead is calibrated on its forecast of t + horizon, as detect uses
    outputs = step_block(ckpt.config, torch_outputs(ckpt.model, split.inputs), h)
    err = aligned_errors(outputs, split.targets, h)[skipped:]
    return calibration_from_errors(err, ckpt.config.target_std, skipped=skipped)
