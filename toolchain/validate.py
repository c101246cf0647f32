"""`lstm-edge validate`: run the torch model and exported artifacts in lock-step over a stream.

The torch training model and every artifact (through each chosen runtime backend) see the
same input stream with their recurrent state carried; the lock-step run, the drift and
cell-state statistics, the report and the plot are shared by both tasks. What differs per
task (`TaskEval`) is only the stream, the per-step error and the task metric:

- char-lm: tokens of held-out text; per step the max abs logit error, top-1 agreement and
  the cross-entropy of both; summary bits per character; tolerances `TOLERANCES`.
- forecast: rows of the held-out series; per step the max over targets of
  |artifact - torch| / target_std (standard units); summary MAE/RMSE against torch and
  against the truth, MASE against persistence (and seasonal persistence when the season
  is known); tolerances `FORECAST_TOLERANCES`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lstm_edge.runtime.config import META_SOURCE_SHA256, ModelConfig
from lstm_edge.runtime.errors import LstmEdgeError, UnsupportedModelError
from lstm_edge.runtime.files import atomic_write, atomic_write_json, check_output_path
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.checkpoint import Checkpoint

REPORT_FILE = "report.json"
PLOT_FILE = "error_vs_timestep.png"
DEFAULT_STEPS = 5000
# Backends tried when the user names none; one that cannot run a scheme (numpy and
# int8-dynamic) is skipped with a note instead of failing the run.
DEFAULT_BACKENDS = ("numpy", "ort")
# Drift compares the mean error over the first and the last DRIFT_FRACTION of the steps.
DRIFT_FRACTION = 0.1
# The torch side runs over the stream in chunks of this many steps: nn.LSTM over a chunk
# with the state carried computes exactly the same recurrence as single steps (same
# equations, state handed from chunk to chunk), and is ~100x faster than stepping torch
# one step at a time. The artifacts are the ones stepped, since their per-step path is
# what this command validates.
TORCH_CHUNK = 4096
# Metrics are computed in float64 over blocks of this many steps to bound memory.
METRIC_BLOCK = 8192


class ValidationInputError(LstmEdgeError):
    """Bad input to `validate` (no usable text, an artifact from another model, ...)."""


# ---- tolerances ----------------------------------------------------------------------------


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


def _common_failures(summary: Any) -> list[str]:
    if not summary.finite:
        return [f"non-finite outputs from step {summary.first_nonfinite_step}"]
    return []


def check_tolerance(summary: PairSummary, tol: Tolerance) -> list[str]:
    """The reasons a char-lm `summary` is out of `tol` (empty if it passes)."""
    failures = _common_failures(summary)
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


def check_forecast_tolerance(summary: ForecastSummary, tol: ForecastTolerance) -> list[str]:
    """The reasons a forecast `summary` is out of `tol` (empty if it passes)."""
    failures = _common_failures(summary)
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


# ---- options and results -------------------------------------------------------------------


@dataclass(frozen=True)
class ValidateOptions:
    steps: int = DEFAULT_STEPS
    backends: tuple[str, ...] = ()  # empty: DEFAULT_BACKENDS, skipping unsupported ones
    text: Path | None = None  # char-lm; None: the checkpoint's held-out split
    csv: Path | None = None  # forecast; None: the checkpoint's held-out test split
    # Inputs per runtime step call; 1 validates the single-step path. With more, the cell
    # state range is only sampled at chunk ends.
    chunk: int = 1
    report_dir: Path | None = None
    force: bool = False  # overwrite an existing report in report_dir
    tolerances: Mapping[str, Tolerance] = field(default_factory=lambda: dict(TOLERANCES))
    forecast_tolerances: Mapping[str, ForecastTolerance] = field(
        default_factory=lambda: dict(FORECAST_TOLERANCES)
    )


@dataclass(frozen=True)
class Stream:
    """char-lm: token ids; step i reads tokens[i] and predicts tokens[i + 1]."""

    tokens: np.ndarray  # int64 [steps + 1]
    source: str
    source_tokens: int  # length of the text before cycling
    cycled: bool

    @property
    def steps(self) -> int:
        return int(self.tokens.size - 1)

    @property
    def inputs(self) -> np.ndarray:
        return self.tokens[:-1]

    def report_fields(self) -> dict[str, Any]:
        return {
            "text_source": self.source,
            "text_tokens": self.source_tokens,
            "text_cycled": self.cycled,
        }


@dataclass(frozen=True)
class SeriesStream:
    """forecast: rows of a series; output t is compared with targets[t + horizon]."""

    features: np.ndarray  # float32 [steps, F] raw
    targets: np.ndarray  # float32 [steps, n_targets] raw, the targets AT each step
    horizon: int
    season: int | None
    source: str
    source_rows: int  # rows before cycling
    cycled: bool

    @property
    def steps(self) -> int:
        return int(self.features.shape[0])

    @property
    def inputs(self) -> np.ndarray:
        return self.features

    def report_fields(self) -> dict[str, Any]:
        return {
            "series_source": self.source,
            "series_rows": self.source_rows,
            "series_cycled": self.cycled,
            "horizon": self.horizon,
            "season": self.season,
        }


@dataclass(frozen=True)
class StepTrace:
    """Per-step values of one char-lm artifact x backend run (not in JSON, only plotted)."""

    abs_err: np.ndarray  # float64 [steps], max over the vocabulary of |logit difference|
    agree: np.ndarray  # bool [steps], argmax equal
    ce_torch: np.ndarray  # float64 [steps], cross-entropy of the next token, nats
    ce_artifact: np.ndarray
    cell_absmax: np.ndarray  # float32 [steps], max |c| of the artifact state (NaN if unsampled)


@dataclass(frozen=True)
class ForecastTrace:
    """Per-step values of one forecast artifact x backend run (not in JSON, only plotted)."""

    abs_err: np.ndarray  # float64 [steps], max over targets of |artifact - torch| / std
    outputs: np.ndarray  # float32 [steps, n_targets], the artifact's raw forecasts
    cell_absmax: np.ndarray  # float32 [steps], max |c| of the artifact state (NaN if unsampled)


@dataclass(frozen=True)
class PairSummary:
    artifact: str
    scheme: str
    backend: str
    steps: int
    max_abs_err: float
    argmax_step: int
    mean_abs_err: float
    err_first: float  # mean abs err over the first DRIFT_FRACTION of the steps
    err_last: float  # ... and over the last
    drift_ratio: float  # err_last / err_first
    top1_agreement: float
    bpc_torch: float
    bpc_artifact: float
    bpc_increase: float
    cell_min: float
    cell_max: float
    finite: bool
    first_nonfinite_step: int | None
    seconds: float
    steps_per_second: float


@dataclass(frozen=True)
class ForecastSummary:
    """Errors vs torch in standard units (max/mean/drift, like char-lm's logit error),
    per-target MAE/RMSE vs torch in raw units, and both models scored against the truth
    (`forecast_eval.ForecastScores`: MAE, RMSE, MASE vs (seasonal) persistence)."""

    artifact: str
    scheme: str
    backend: str
    steps: int
    max_abs_err: float  # std units
    argmax_step: int
    mean_abs_err: float
    err_first: float
    err_last: float
    drift_ratio: float
    mae_vs_torch: list[float]  # per target, raw units
    rmse_vs_torch: list[float]
    torch_truth: dict[str, Any]  # ForecastScores of torch
    artifact_truth: dict[str, Any]  # ForecastScores of the artifact
    mae_increase: float  # artifact_truth.mae_std - torch_truth.mae_std
    cell_min: float
    cell_max: float
    finite: bool
    first_nonfinite_step: int | None
    seconds: float
    steps_per_second: float


@dataclass(frozen=True)
class PairResult:
    summary: Any  # PairSummary | ForecastSummary
    tolerance: Any  # Tolerance | ForecastTolerance
    failures: list[str]
    trace: Any  # StepTrace | ForecastTrace

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class ValidationReport:
    checkpoint: str
    stream: Any  # Stream | SeriesStream
    torch_seconds: float
    results: list[PairResult]
    skipped: list[str]  # "artifact (backend): reason" for default backends that cannot run it
    task: str = "char-lm"

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "task": self.task,
            "steps": self.stream.steps,
            **self.stream.report_fields(),
            "drift_fraction": DRIFT_FRACTION,
            "torch_seconds": self.torch_seconds,
            "passed": self.passed,
            "skipped": self.skipped,
            "results": [
                {
                    **asdict(r.summary),
                    "tolerance": asdict(r.tolerance),
                    "passed": r.passed,
                    "failures": r.failures,
                }
                for r in self.results
            ],
        }


# ---- the streams ---------------------------------------------------------------------------


def _check_steps(steps: int) -> None:
    if steps < 1:
        raise ValidationInputError(f"--steps is {steps} (expected at least 1)")


def build_stream(ckpt: Checkpoint, steps: int, text_path: Path | None) -> Stream:
    """Token ids for `steps` steps: --text or the held-out split, cycled if too short."""
    from lstm_edge.toolchain.data import encode, held_out_text, load_corpus

    _check_steps(steps)
    if text_path is not None:
        text = load_corpus(text_path).text  # the corpus checks: empty, binary, not UTF-8
        source = str(text_path)
    else:
        text = held_out_text(ckpt.data, "test")
        source = f"held-out test split of {ckpt.path}"
    ids = np.asarray(encode(text, ckpt.config), dtype=np.int64)
    if ids.size < 2:
        raise ValidationInputError(
            f"{source} has {ids.size} characters (expected at least 2: one input, one target)"
        )
    need = steps + 1
    # A stream longer than the text wraps around to its start; the jump at the seam is
    # just another input the model has to carry on from.
    cycled = need > ids.size
    tokens = np.resize(ids, need) if cycled else ids[:need].copy()
    return Stream(tokens=tokens, source=source, source_tokens=int(ids.size), cycled=cycled)


def build_series_stream(ckpt: Checkpoint, steps: int, csv_path: Path | None) -> SeriesStream:
    """Rows for `steps` steps: --csv or the held-out test split, cycled if too short.

    Cycling (rather than regenerating a longer built-in signal) works the same for a CSV
    and keeps the stream inside rows the model never trained on; the seam is one jump,
    like a sensor reconnecting, and the truth metrics score it like any other step."""
    from lstm_edge.toolchain.series import held_out_series, read_csv, select

    _check_steps(steps)
    config = ckpt.config
    if csv_path is not None:
        data = select(read_csv(csv_path), config)
        source = str(csv_path)
    else:
        data = held_out_series(ckpt.data, config, "test")
        source = f"held-out test split of {ckpt.path}"
    rows = data.features.shape[0]
    if rows <= config.horizon:
        raise ValidationInputError(
            f"{source} has {rows} rows (expected more than the horizon, {config.horizon})"
        )
    cycled = steps > rows
    take = np.arange(steps) % rows
    return SeriesStream(
        features=np.ascontiguousarray(data.features[take], dtype=np.float32),
        targets=np.ascontiguousarray(data.targets[take], dtype=np.float32),
        horizon=config.horizon,
        season=data.season,
        source=source,
        source_rows=rows,
        cycled=cycled,
    )


# ---- running both sides --------------------------------------------------------------------


def torch_outputs(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    """Outputs [len(inputs), output_size] of the torch model over the stream, state carried.

    `inputs`: token ids int64 [steps] (char-lm) or raw features float32 [steps, F]."""
    out: np.ndarray | None = None
    state = None
    # oneDNN's LSTM kernel is ~6x slower here than torch's native one over long
    # sequences (measured: 23 s vs 4 s for 100k steps of a 2x64 model); both compute the
    # same float32 recurrence.
    with torch.inference_mode(), onednn(False):
        for start in range(0, len(inputs), TORCH_CHUNK):
            x = torch.from_numpy(inputs[start : start + TORCH_CHUNK]).unsqueeze(0)
            y, state = model(x, state)
            if out is None:
                out = np.empty((len(inputs), y.shape[-1]), dtype=np.float32)
            out[start : start + x.shape[1]] = y[0].numpy()
    if out is None:
        raise ValidationInputError("the stream is empty (expected at least one step)")
    return out


@contextlib.contextmanager
def onednn(enabled: bool):
    """torch with its oneDNN (mkldnn) kernels on or off, for the block."""
    with warnings.catch_warnings():
        # torch warns about TF32 on Intel GPUs whenever the oneDNN flags are touched.
        warnings.simplefilter("ignore", UserWarning)
        with torch.backends.mkldnn.flags(enabled=enabled):
            yield


@dataclass(frozen=True)
class _RuntimeRun:
    logits: np.ndarray  # float32 [steps, output_size] (logits or forecasts)
    cell_absmax: np.ndarray  # float32 [steps]
    cell_min: float
    cell_max: float
    seconds: float


def runtime_outputs(rt_model: Any, inputs: np.ndarray, chunk: int, progress=None) -> _RuntimeRun:
    """Step a runtime model over `inputs` (`chunk` steps per call), state carried.

    `inputs[start:start + 1]` is one step of batch 1 for both tasks (tokens [1], features
    [1, F]); `inputs[None, start:end]` is batch 1 over time."""
    n = len(inputs)
    logits = np.empty((n, rt_model.config.output_size), dtype=np.float32)
    cell_absmax = np.full(n, np.nan, dtype=np.float32)
    cmin, cmax = math.inf, -math.inf
    state = rt_model.initial_state(1)
    every = max(1, 2000 // chunk)
    t0 = time.perf_counter()
    for k, start in enumerate(range(0, n, chunk)):
        if chunk == 1:
            # A single step of batch 1: the call a device makes.
            y, state = rt_model.step(inputs[start : start + 1], state)
            logits[start] = y[0]
            end = start + 1
        else:
            y, state = rt_model.step(inputs[None, start : start + chunk], state)
            end = start + y.shape[1]
            logits[start:end] = y[0]
        c = state.c
        lo, hi = float(c.min()), float(c.max())
        cmin, cmax = min(cmin, lo), max(cmax, hi)
        cell_absmax[end - 1] = max(-lo, hi)
        if progress is not None and k % every == 0:
            progress(end)
    seconds = time.perf_counter() - t0
    if progress is not None:
        progress(n)
    return _RuntimeRun(logits, cell_absmax, cmin, cmax, seconds)


def step_metrics(ref: np.ndarray, out: np.ndarray, targets: np.ndarray) -> StepTrace:
    """Per-step error, agreement and cross-entropy of `out` against `ref` (both [N, V])."""
    n = ref.shape[0]
    abs_err = np.empty(n)
    agree = np.empty(n, dtype=bool)
    ce_ref = np.empty(n)
    ce_out = np.empty(n)
    for s in range(0, n, METRIC_BLOCK):
        r = ref[s : s + METRIC_BLOCK].astype(np.float64)
        o = out[s : s + METRIC_BLOCK].astype(np.float64)
        t = targets[s : s + METRIC_BLOCK]
        abs_err[s : s + len(r)] = np.abs(o - r).max(axis=1)
        agree[s : s + len(r)] = r.argmax(axis=1) == o.argmax(axis=1)
        ce_ref[s : s + len(r)] = _cross_entropy(r, t)
        ce_out[s : s + len(r)] = _cross_entropy(o, t)
    return StepTrace(abs_err, agree, ce_ref, ce_out, np.full(n, np.nan, dtype=np.float32))


def _cross_entropy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return lse - logits[np.arange(len(targets)), targets]


def forecast_step_errors(ref: np.ndarray, out: np.ndarray, target_std: Any) -> np.ndarray:
    """Per step: max over targets of |out - ref| / target_std (float64 [N])."""
    std = np.asarray(target_std, dtype=np.float64)
    return (np.abs(out.astype(np.float64) - ref.astype(np.float64)) / std).max(axis=1)


def _error_stats(abs_err: np.ndarray, run: _RuntimeRun) -> dict[str, Any]:
    """The task-independent part of a summary: error max/mean/drift, cell range, speed."""
    n = abs_err.size
    bad = ~np.isfinite(abs_err)
    k = max(1, int(n * DRIFT_FRACTION))
    # A non-finite step counts as an infinite error: the report stays readable and fails.
    err = np.where(bad, np.inf, abs_err)
    err_first = float(np.mean(err[:k]))
    err_last = float(np.mean(err[-k:]))
    return dict(
        steps=n,
        max_abs_err=float(err.max()),
        argmax_step=int(err.argmax()),
        mean_abs_err=float(err.mean()),
        err_first=err_first,
        err_last=err_last,
        drift_ratio=err_last / err_first if err_first > 0 else (1.0 if err_last == 0 else math.inf),
        cell_min=run.cell_min,
        cell_max=run.cell_max,
        finite=not bool(bad.any()),
        first_nonfinite_step=int(np.argmax(bad)) if bad.any() else None,
        seconds=run.seconds,
        steps_per_second=n / run.seconds if run.seconds > 0 else math.inf,
    )


def summarize(
    trace: StepTrace, run: _RuntimeRun, *, artifact: str, scheme: str, backend: str
) -> PairSummary:
    bpc_t = float(np.mean(trace.ce_torch)) / math.log(2)
    bpc_a = float(np.mean(trace.ce_artifact)) / math.log(2)
    return PairSummary(
        artifact=artifact,
        scheme=scheme,
        backend=backend,
        top1_agreement=float(trace.agree.mean()),
        bpc_torch=bpc_t,
        bpc_artifact=bpc_a,
        bpc_increase=bpc_a - bpc_t,
        **_error_stats(trace.abs_err, run),
    )


def summarize_forecast(
    ref: np.ndarray,
    run: _RuntimeRun,
    stream: SeriesStream,
    config: ModelConfig,
    *,
    artifact: str,
    scheme: str,
    backend: str,
) -> tuple[ForecastTrace, ForecastSummary]:
    abs_err = forecast_step_errors(ref, run.logits, config.target_std)
    trace = ForecastTrace(abs_err, run.logits, run.cell_absmax)
    diff = run.logits.astype(np.float64) - ref.astype(np.float64)

    def truth(outputs: np.ndarray) -> fe.ForecastScores:
        return fe.forecast_scores(
            outputs, stream.targets, stream.horizon, config.target_std, stream.season
        )

    t_scores, a_scores = truth(ref), truth(run.logits)
    summary = ForecastSummary(
        artifact=artifact,
        scheme=scheme,
        backend=backend,
        mae_vs_torch=[float(v) for v in fe.mae(diff)],
        rmse_vs_torch=[float(v) for v in fe.rmse(diff)],
        torch_truth=asdict(t_scores),
        artifact_truth=asdict(a_scores),
        mae_increase=a_scores.mae_std - t_scores.mae_std,
        **_error_stats(abs_err, run),
    )
    return trace, summary


# ---- what differs per task -----------------------------------------------------------------


@dataclass(frozen=True)
class TaskEval:
    """The task-specific parts of `validate`; everything else is shared."""

    build_stream: Callable[[Checkpoint, ValidateOptions], Any]
    tolerances: Callable[[ValidateOptions], Mapping[str, Any]]
    # (torch outputs, runtime run, stream, config, names) -> (trace, summary)
    evaluate: Callable[..., tuple[Any, Any]]
    check: Callable[[Any, Any], list[str]]
    error_label: str  # the per-step error, for the plot


def _charlm_stream(ckpt: Checkpoint, options: ValidateOptions) -> Stream:
    if options.csv is not None:
        raise ValidationInputError(
            f"--csv is for forecast models; {ckpt.path} is a char-lm (use --text)"
        )
    return build_stream(ckpt, options.steps, options.text)


def _forecast_stream(ckpt: Checkpoint, options: ValidateOptions) -> SeriesStream:
    if options.text is not None:
        raise ValidationInputError(
            f"--text is for char-lm models; {ckpt.path} is a forecast model (use --csv)"
        )
    return build_series_stream(ckpt, options.steps, options.csv)


def _charlm_evaluate(ref, run, stream: Stream, config, **names) -> tuple[StepTrace, PairSummary]:
    t = step_metrics(ref, run.logits, stream.tokens[1:])
    trace = StepTrace(t.abs_err, t.agree, t.ce_torch, t.ce_artifact, run.cell_absmax)
    return trace, summarize(trace, run, **names)


TASK_EVALS: dict[str, TaskEval] = {
    "char-lm": TaskEval(
        build_stream=_charlm_stream,
        tolerances=lambda o: o.tolerances,
        evaluate=_charlm_evaluate,
        check=check_tolerance,
        error_label="max |logit error|",
    ),
    "forecast": TaskEval(
        build_stream=_forecast_stream,
        tolerances=lambda o: o.forecast_tolerances,
        evaluate=summarize_forecast,
        check=check_forecast_tolerance,
        error_label="max |forecast error| / target std",
    ),
}


# ---- the command ---------------------------------------------------------------------------


def _load_runtime(path: Path, backend: str) -> Any:
    from lstm_edge import runtime

    return runtime.load(path, backend=backend)


def _config_differences(a: ModelConfig, b: ModelConfig) -> str:
    if a.task != b.task:  # every task field differs too; the task says it all
        return f"task {a.task!r} vs {b.task!r}"
    da, db = a.to_dict(), b.to_dict()
    parts = []
    for key in sorted(da.keys() | db.keys()):
        if da.get(key) != db.get(key):
            va, vb = da.get(key), db.get(key)
            if key == "vocab":  # thousands of characters: the sizes say enough
                va, vb = f"{len(va or ())} entries", f"{len(vb or ())} entries"
            parts.append(f"{key} {va!r} vs {vb!r}")
    return "; ".join(parts)


def _check_same_model(rt_model: Any, ckpt: Checkpoint, path: Path, console: Console) -> None:
    if rt_model.config != ckpt.config:
        raise ValidationInputError(
            f"{path} was not exported from {ckpt.path}: its config differs from the "
            f"checkpoint's (artifact vs checkpoint: "
            f"{_config_differences(rt_model.config, ckpt.config)})"
        )
    artifact = getattr(rt_model, "artifact", None)
    source = artifact.metadata.get(META_SOURCE_SHA256, "") if artifact is not None else ""
    if source and source != ckpt.weights_sha256:
        # Same shape, other weights (e.g. exported from an earlier checkpoint of this run):
        # the numbers below will show it; say why up front.
        console.print(
            f"[yellow]warning:[/] {path} records source weights {source[:12]}..., "
            f"the checkpoint's are {ckpt.weights_sha256[:12]}...",
            highlight=False,
        )


def validate(
    ckpt_dir: Path,
    artifacts: Sequence[Path],
    options: ValidateOptions | None = None,
    console: Console | None = None,
) -> ValidationReport:
    """Validate each artifact x backend against the checkpoint's torch model."""
    from lstm_edge.toolchain.checkpoint import load_checkpoint

    options = options or ValidateOptions()
    console = console or Console(stderr=True)
    if options.chunk < 1:
        raise ValidationInputError(f"--chunk is {options.chunk} (expected at least 1)")
    if not artifacts:
        raise ValidationInputError("no artifact given (expected one or more .onnx files)")
    if options.report_dir is not None and Path(options.report_dir).exists():
        # Before minutes of stepping: an existing report (without --force), a folder that
        # cannot be written. A missing folder is created at the end.
        for name in (REPORT_FILE, PLOT_FILE):
            check_output_path(Path(options.report_dir) / name, options.force)
    ckpt = load_checkpoint(Path(ckpt_dir))
    task = TASK_EVALS[ckpt.config.task]
    stream = task.build_stream(ckpt, options)
    steps = stream.steps
    if stream.cycled:
        what = "characters" if isinstance(stream, Stream) else "rows"
        size = stream.source_tokens if isinstance(stream, Stream) else stream.source_rows
        console.print(
            f"note: {stream.source} has {size} {what}; cycling it to make {steps} steps",
            highlight=False,
        )

    # Load everything first: a bad artifact fails before minutes of stepping.
    explicit = bool(options.backends)
    backends = options.backends or DEFAULT_BACKENDS
    tolerances = task.tolerances(options)
    runs: list[tuple[Path, str, Any]] = []
    skipped: list[str] = []
    for path in artifacts:
        for backend in backends:
            try:
                rt_model = _load_runtime(Path(path), backend)
            except UnsupportedModelError as e:
                if explicit:
                    raise
                skipped.append(f"{path} ({backend}): {e}")
                continue
            _check_same_model(rt_model, ckpt, Path(path), console)
            if rt_model.scheme not in tolerances:
                raise ValidationInputError(
                    f"{path}: no tolerance is defined for scheme {rt_model.scheme!r} "
                    f"(known: {sorted(tolerances)})"
                )
            runs.append((Path(path), backend, rt_model))
    if not runs:
        raise ValidationInputError("no artifact could be run by any backend: " + "; ".join(skipped))

    t0 = time.perf_counter()
    ref = torch_outputs(ckpt.model, stream.inputs)
    torch_seconds = time.perf_counter() - t0

    results: list[PairResult] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        for path, backend, rt_model in runs:
            bar = progress.add_task(f"{path.name} ({backend})", total=steps)
            run = runtime_outputs(
                rt_model,
                stream.inputs,
                options.chunk,
                progress=lambda done, bar=bar: progress.update(bar, completed=done),
            )
            trace, summary = task.evaluate(
                ref, run, stream, ckpt.config,
                artifact=str(path), scheme=rt_model.scheme, backend=backend,
            )  # fmt: skip
            tol = tolerances[rt_model.scheme]
            results.append(PairResult(summary, tol, task.check(summary, tol), trace))

    report = ValidationReport(
        str(ckpt.path), stream, torch_seconds, results, skipped, task=ckpt.config.task
    )
    if options.report_dir is not None:
        write_report(report, Path(options.report_dir))
    return report


# ---- output --------------------------------------------------------------------------------


def write_report(report: ValidationReport, folder: Path) -> tuple[Path, Path]:
    """report.json and the error-vs-timestep plot into `folder` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / REPORT_FILE
    atomic_write_json(json_path, report.to_dict())  # inf/NaN of a failed run included
    png_path = folder / PLOT_FILE
    fig = plot_errors(report)
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return json_path, png_path


def _binned(values: np.ndarray, bins: int, reduce) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a long per-step series to at most `bins` points (x = last step of each bin)."""
    n = values.size
    edges = np.linspace(0, n, min(bins, n) + 1).astype(int)
    x = edges[1:] - 1
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins (unsampled cell state)
        y = np.array([reduce(values[a:b]) for a, b in itertools.pairwise(edges)])
    return x, y


def plot_errors(report: ValidationReport):
    """Error against timestep (log y, per-bin max and mean) and the cell state's max |c|."""
    # The object API (Figure + Agg canvas) draws off-screen without touching pyplot's
    # global backend, so this works on headless machines and inside other programs.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7), layout="constrained")
    FigureCanvasAgg(fig)
    ax_err, ax_cell = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    floor = 1e-9  # exact zeros (identical outputs) cannot be drawn on a log axis
    for r in report.results:
        s = r.summary
        label = f"{Path(s.artifact).name} ({s.backend})"
        x, ymax = _binned(r.trace.abs_err, 1000, np.max)
        line = ax_err.plot(x, np.maximum(ymax, floor), lw=1, label=f"{label} max")[0]
        x, ymean = _binned(r.trace.abs_err, 1000, np.mean)
        ax_err.plot(x, np.maximum(ymean, floor), lw=1, ls=":", color=line.get_color())
        if r.tolerance.max_abs_err is not None:
            ax_err.axhline(r.tolerance.max_abs_err, color=line.get_color(), ls="--", lw=0.8)
        x, cell = _binned(r.trace.cell_absmax, 1000, np.nanmax)
        ax_cell.plot(x, cell, lw=1, color=line.get_color(), label=label)
    ax_err.set_yscale("log")
    label = TASK_EVALS[report.task].error_label
    ax_err.set_ylabel(f"{label} (solid: bin max, dotted: bin mean)")
    title = f"{report.checkpoint}: {report.stream.steps} steps"
    ax_err.set_title(title + (" (stream cycled)" if report.stream.cycled else ""))
    ax_err.legend(fontsize="small")
    ax_cell.set_ylabel("max |cell state|")
    ax_cell.set_xlabel("timestep")
    return fig


def _table(report: ValidationReport, cols: tuple[str, ...]) -> Table:
    table = Table(title=f"validation over {report.stream.steps} steps")
    for col in cols:
        table.add_column(col, justify="left" if col in (cols[0], cols[-1]) else "right")
    return table


def _verdict_cell(r: PairResult) -> str:
    return "[green]pass[/]" if r.passed else "[red]FAIL[/]"


def render_table(report: ValidationReport) -> Table:
    """One row per artifact x backend; every number is also in report.json."""
    if report.task == "forecast":
        return render_forecast_table(report)
    cols = ("artifact (backend)", "scheme", "max err", "mean err", "drift", "top-1",
            "BPC torch->art", "cell range", "steps/s", "")  # fmt: skip
    table = _table(report, cols)
    for r in report.results:
        s = r.summary
        table.add_row(
            escape(f"{Path(s.artifact).name} ({s.backend})"),
            s.scheme,
            f"{s.max_abs_err:.1e}",
            f"{s.mean_abs_err:.1e}",
            f"{s.drift_ratio:.2f}x",
            f"{s.top1_agreement:.2%}",
            f"{s.bpc_torch:.3f}->{s.bpc_artifact:.3f}",
            f"{s.cell_min:.3g}..{s.cell_max:.3g}",
            f"{s.steps_per_second:,.0f}",
            _verdict_cell(r),
        )
    table.caption = (
        f"drift: mean error over the last {DRIFT_FRACTION:.0%} of the steps / over the first "
        f"{DRIFT_FRACTION:.0%}; "
        "cell range: min..max of the artifact's cell state"
    )
    return table


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def render_forecast_table(report: ValidationReport) -> Table:
    # Two-line headers: the columns then take the width of their numbers, so the table
    # fits 120 columns without rich truncating the values.
    cols = ("artifact (backend)", "scheme", "max err", "mean err", "drift",
            "MAE/std\ntorch->art", "MASE\ntorch->art", "seasonal MASE\ntorch->art",
            "cell range", "steps/s", "")  # fmt: skip
    table = _table(report, cols)
    for r in report.results:
        s = r.summary
        t, a = s.torch_truth, s.artifact_truth
        table.add_row(
            escape(f"{Path(s.artifact).name} ({s.backend})"),
            s.scheme,
            f"{s.max_abs_err:.1e}",
            f"{s.mean_abs_err:.1e}",
            f"{s.drift_ratio:.2f}x",
            f"{_fmt(t['mae_std'])}->{_fmt(a['mae_std'])}",
            f"{_fmt(t['mase_mean'])}->{_fmt(a['mase_mean'])}",
            f"{_fmt(t['mase_seasonal_mean'])}->{_fmt(a['mase_seasonal_mean'])}",
            f"{s.cell_min:.3g}..{s.cell_max:.3g}",
            f"{s.steps_per_second:,.0f}",
            _verdict_cell(r),
        )
    table.caption = (
        "errors vs torch in target std units (max over targets per step); "
        f"drift: mean error over the last {DRIFT_FRACTION:.0%} of the steps / over the first "
        f"{DRIFT_FRACTION:.0%}; MAE vs the truth / target std, mean over targets (RMSE and "
        "per-target values in report.json); MASE: MAE / MAE of persistence (repeat the last "
        "value) on the same steps, seasonal: of the value one season earlier; below 1 beats "
        "the baseline"
    )
    return table


def render_verdict(report: ValidationReport) -> str:
    if report.passed:
        return f"[green]validation passed[/] ({len(report.results)} artifact x backend runs)"
    lines = ["[red]validation failed:[/]"]
    for r in report.results:
        if not r.passed:
            s = r.summary
            lines.append(escape(f"  {s.artifact} ({s.backend}): " + "; ".join(r.failures)))
    return "\n".join(lines)
