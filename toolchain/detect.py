"""`lstm-edge detect`: anomaly detection with a forecast artifact, no torch model needed.

The runtime model (`lstm_edge.runtime.load`, any backend) steps over a series with its
state carried; each step's anomaly score is max over targets of |forecast - actual| /
residual_scale, with the scales and the default threshold from the artifact's calibration
(META_CALIBRATION, measured on the training split at export). Flagged steps are grouped
into runs; with fault labels (the built-in signal's injected faults, or --label-column)
the flags are scored event by event (`forecast_eval.event_scores`). Outputs: scores.csv,
report.json and a plot (signal, forecast, score, threshold, true fault spans shaded).
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.tasks.forecast import output_ahead, step_block
from lstm_edge.toolchain import forecast_eval as fe

SCORES_FILE = "scores.csv"
REPORT_FILE = "report.json"
PLOT_FILE = "detect.png"
# Steps per runtime call: the model is stepped over the series in chunks with the state
# carried (the same recurrence as single steps), bounding the memory of one call.
CHUNK = 4096
# Flag runs listed in the printed summary (all of them are in report.json).
MAX_RUNS_SHOWN = 20


class DetectError(LstmEdgeError):
    """A model or series `detect` cannot use (not a forecast model, no calibration, ...)."""


@dataclass(frozen=True)
class DetectOptions:
    # None: the held-out rows (val + test) of `record`'s series, else of the built-in signal
    csv: Path | None = None
    record: dict | None = None  # a checkpoint's data.json (the pipeline passes its own)
    label_column: str | None = None  # 0/1 fault labels in the CSV
    time_column: str | None = None  # a CSV time column (checked, not a feature)
    threshold: float | None = None  # None: the artifact's calibrated threshold
    backend: str = "ort"
    out: Path | None = None  # folder for scores.csv, report.json, detect.png
    force: bool = False


@dataclass(frozen=True)
class FlagRun:
    start: int  # first flagged step
    stop: int  # one past the last
    peak_score: float
    peak_step: int
    peak_target: str  # the target whose error made the peak score
    in_fault: bool | None  # overlaps a labelled fault window (None: no labels)


@dataclass
class DetectReport:
    model: str
    backend: str
    scheme: str
    source: str
    rows: int
    horizon: int
    targets: tuple[str, ...]
    threshold: float
    calibration: dict[str, Any]
    outputs: np.ndarray  # float32 [rows, n]: the forecast made AT each step (for t + h)
    actual: np.ndarray  # float32 [rows, n]: the targets at each step
    scores: np.ndarray  # float64 [rows], NaN for the first `horizon` steps
    flags: np.ndarray  # bool [rows]
    faults: np.ndarray | None  # bool [rows]
    runs: list[FlagRun]
    events: fe.EventScores | None
    accuracy: fe.ForecastScores
    # a model of each step ahead: {"ahead": s, **ForecastScores} per step ahead (the
    # baselines at s steps, the linear one fitted for s); empty otherwise
    accuracy_per_step: list[dict[str, Any]] = field(default_factory=list)
    highway_lags: int = 0  # the model's linear highway (ar_lags; 0: none)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "scheme": self.scheme,
            "source": self.source,
            "rows": self.rows,
            "horizon": self.horizon,
            "targets": list(self.targets),
            "threshold": self.threshold,
            "calibration": self.calibration,
            "flagged_steps": int(self.flags.sum()),
            "highway_lags": self.highway_lags,
            "flag_runs": [asdict(r) for r in self.runs],
            "labelled": self.faults is not None,
            "fault_events": None if self.faults is None else _fault_runs(self.faults),
            "events": None if self.events is None else asdict(self.events),
            "accuracy": asdict(self.accuracy),
            **({"accuracy_per_step": self.accuracy_per_step} if self.accuracy_per_step else {}),
            "score_quantiles": {
                str(q): float(np.nanquantile(self.scores, q)) for q in (0.5, 0.9, 0.99, 0.999)
            },
        }


def _fault_runs(faults: np.ndarray) -> list[list[int]]:
    return [[a, b] for a, b in fe.runs(faults)]


# ---- the series ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Input:
    features: np.ndarray
    targets: np.ndarray
    faults: np.ndarray | None
    season: int | None
    source: str
    train: np.ndarray  # the training split's targets: fits the linear baseline


def _series(config: Any, options: DetectOptions) -> _Input:
    from lstm_edge.toolchain.data import split_from_record
    from lstm_edge.toolchain.series import (
        BUILTIN_SOURCE,
        builtin_signal,
        detect_season,
        held_out_series,
        read_csv,
        select,
        split_rows,
    )

    if options.csv is not None:
        series = read_csv(
            options.csv, time_column=options.time_column, label_column=options.label_column
        )
        data = select(series, config)
        source = str(options.csv)
        # The rows training would have used, had it read this file (the default split).
        train = select(series, config, *split_rows(series.rows).train).targets
    elif options.record is not None:
        # The rows training never saw, of the very series the checkpoint was trained on
        # (a CSV is re-read and checked against its recorded SHA-256).
        data = held_out_series(options.record, config, "held-out")
        train = held_out_series(options.record, config, "train").targets
        split = split_from_record(options.record)
        start, stop = split.val[0], split.test[1]
        name = options.record.get("source")
        name = "built-in machine signal" if name == BUILTIN_SOURCE else name
        source = f"{name}, held-out rows {start}..{stop - 1} (val + test)"
    else:
        if options.label_column is not None or options.time_column is not None:
            raise DetectError("--label-column/--time-column need --csv")
        # The artifact does not record its training data; the default built-in signal
        # (its default size and seed, the ones `lstm-edge train --task forecast` uses) is
        # cut the way training cuts it, and only the rows training never saw are scored.
        series = builtin_signal()
        split = split_rows(series.rows)
        start, stop = split.val[0], split.test[1]
        data = select(series, config, start, stop)
        train = select(series, config, *split.train).targets
        source = f"{series.source}, held-out rows {start}..{stop - 1} (val + test)"
    if data.features.shape[0] <= config.horizon:
        raise DetectError(
            f"{source} has {data.features.shape[0]} rows (expected more than the horizon, "
            f"{config.horizon})"
        )
    season = data.season if data.season is not None else detect_season(train)
    return _Input(data.features, data.targets, data.faults, season, source, train)


# ---- the run -------------------------------------------------------------------------------


def run_model(model: Any, features: np.ndarray) -> np.ndarray:
    """The runtime model's forecasts [rows, n] over `features` [rows, F], state carried."""
    out = np.empty((features.shape[0], model.config.output_size), dtype=np.float32)
    state = model.initial_state(1)
    for start in range(0, features.shape[0], CHUNK):
        y, state = model.step(features[None, start : start + CHUNK], state)
        out[start : start + y.shape[1]] = y[0]
    return out


def detect(model_path: Path, options: DetectOptions | None = None) -> DetectReport:
    """Score every step of the series with the artifact's calibration; flag, group, score."""
    from lstm_edge import runtime
    from lstm_edge.toolchain.tasks.forecast_eval import EVAL as FORECAST_EVAL

    options = options or DetectOptions()
    if options.out is not None:
        _check_out(Path(options.out), options.force)
    model = runtime.load(model_path, backend=options.backend)
    config = model.config
    FORECAST_EVAL.require(
        config,
        DetectError,
        f"{model_path} is a {config.task!r} model (expected a forecast model, e.g. from "
        "`lstm-edge train --task forecast` then `lstm-edge export`)",
    )
    calibration = model.artifact.calibration
    if calibration is None:
        raise DetectError(
            f"{model_path} has no anomaly calibration (metadata lstm_edge.calibration): "
            "export it again from a checkpoint whose training data is available, so the "
            "exporter can measure the residual scales on the training split"
        )
    threshold = calibration["threshold"] if options.threshold is None else options.threshold
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise DetectError(f"--threshold is {threshold!r} (expected a number > 0)")
    data = _series(config, options)

    # A model of each step ahead: scored by its forecast of t + horizon, as any other
    h = config.horizon
    every = run_model(model, data.features)
    outputs = step_block(config, every, h)
    scores = fe.anomaly_scores(outputs, data.targets, h, calibration["residual_scale"])
    # the state is still settling from zeros (and a highway's history filling)
    scores[: h + fe.warmup(config, fe.DETECT_WARMUP)] = np.nan
    flags = fe.flag(scores, threshold)
    events = None if data.faults is None else fe.event_scores(flags, data.faults)
    linear = fe.fit_linear_ar(data.train, h, fe.ar_lags(data.season))
    report = DetectReport(
        model=str(model_path),
        backend=options.backend,
        scheme=model.scheme,
        source=data.source,
        rows=int(data.features.shape[0]),
        horizon=h,
        targets=config.targets,
        threshold=float(threshold),
        calibration=calibration,
        outputs=outputs,
        actual=data.targets,
        scores=scores,
        flags=flags,
        faults=data.faults,
        runs=_flag_runs(
            outputs, data.targets, h, calibration, flags, scores, data.faults, config.targets
        ),
        events=events,
        accuracy=fe.forecast_scores(
            outputs, data.targets, h, config.target_std, data.season, linear
        ),
        accuracy_per_step=_per_step(config, every, data),
        highway_lags=config.ar_lags,
    )
    if options.out is not None:
        write_outputs(report, Path(options.out))
    return report


PER_STEP_BASELINES = (("mase_seasonal_mean", "seasonal"), ("mase_linear_mean", "linear"))


def _per_step(config: Any, outputs: np.ndarray, data: _Input) -> list[dict[str, Any]]:
    """Each step ahead of a model of each step ahead, scored like `accuracy`."""
    ahead = output_ahead(config)
    if len(ahead) == 1:
        return []
    scores = []
    for s in ahead:
        linear = fe.fit_linear_ar(data.train, s, fe.ar_lags(data.season))
        score = fe.forecast_scores(step_block(config, outputs, s), data.targets, s,
                                   config.target_std, data.season, linear)  # fmt: skip
        scores.append({"ahead": s} | asdict(score))
    return scores


def _flag_runs(outputs, targets, h, calibration, flags, scores, faults, names) -> list[FlagRun]:
    scale = np.asarray(calibration["residual_scale"], dtype=np.float64)
    window = None
    if faults is not None:
        window = np.zeros_like(faults)
        for a, b in fe.runs(faults):
            window[a : b + fe.DETECT_LAG] = True
    out = []
    for a, b in fe.runs(flags):
        peak = a + int(np.nanargmax(scores[a:b]))
        per_target = np.abs(outputs[peak - h] - targets[peak]) / scale
        out.append(
            FlagRun(
                start=a,
                stop=b,
                peak_score=float(scores[peak]),
                peak_step=peak,
                peak_target=names[int(np.argmax(per_target))],
                in_fault=None if window is None else bool(window[a:b].any()),
            )
        )
    return out


# ---- outputs -------------------------------------------------------------------------------


def _check_out(folder: Path, force: bool) -> None:
    from lstm_edge.runtime.files import check_output_path

    if folder.exists() and not folder.is_dir():
        raise DetectError(f"--out {folder} is a file (expected a folder)")
    if folder.is_dir():
        for name in (SCORES_FILE, REPORT_FILE, PLOT_FILE):
            check_output_path(folder / name, force)


def write_outputs(report: DetectReport, folder: Path) -> list[Path]:
    """scores.csv, report.json and detect.png into `folder` (created if needed), atomically."""
    from lstm_edge.runtime.files import atomic_write, atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    scores_path = folder / SCORES_FILE
    atomic_write(scores_path, lambda tmp: _write_scores(report, tmp))
    atomic_write_json(folder / REPORT_FILE, report.to_dict())
    fig = plot(report)
    atomic_write(folder / PLOT_FILE, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return [scores_path, folder / REPORT_FILE, folder / PLOT_FILE]


def _forecast_for_each_step(report: DetectReport) -> np.ndarray:
    """The forecast OF each step (made `horizon` steps earlier); NaN before the first one."""
    h = report.horizon
    f = np.full(report.actual.shape, np.nan)
    f[h:] = report.outputs[: report.rows - h]
    return f


def _write_scores(report: DetectReport, path: Path) -> None:
    forecast = _forecast_for_each_step(report)
    header = ["step"]
    for name in report.targets:
        header += [name, f"{name}_forecast"]
    header += ["score", "flagged"] + (["fault"] if report.faults is not None else [])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for s in range(report.rows):
            row: list[Any] = [s]
            for j in range(len(report.targets)):
                row += [repr(float(report.actual[s, j])), _num(forecast[s, j])]
            row += [_num(report.scores[s]), int(report.flags[s])]
            if report.faults is not None:
                row.append(int(report.faults[s]))
            w.writerow(row)


def _num(v: float) -> str:
    return "" if not math.isfinite(v) else repr(float(v))


def plot(report: DetectReport):
    """One panel per target (actual and forecast), then the score with the threshold;
    labelled fault spans shaded in every panel, flagged steps marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(report.targets)
    fig = Figure(figsize=(12, 2.4 * (n + 1)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n + 1, 1, sharex=True)
    x = np.arange(report.rows)
    forecast = _forecast_for_each_step(report)
    for j, name in enumerate(report.targets):
        ax = axes[j]
        ax.plot(x, report.actual[:, j], lw=0.7, color="black", label="actual")
        ax.plot(x, forecast[:, j], lw=0.7, color="tab:blue", label=f"forecast (h={report.horizon})")
        ax.set_ylabel(name)
    axes[0].legend(fontsize="small", loc="upper right")
    ax = axes[-1]
    ax.plot(x, report.scores, lw=0.7, color="tab:purple", label="score")
    ax.axhline(report.threshold, color="tab:red", ls="--", lw=0.8, label="threshold")
    flagged = np.flatnonzero(report.flags)
    ax.scatter(flagged, report.scores[flagged], s=6, color="tab:red", zorder=3, label="flagged")
    ax.set_yscale("log")
    ax.set_ylabel("anomaly score")
    ax.set_xlabel("step")
    if report.faults is not None:
        for a, b in fe.runs(report.faults):
            for axis in axes:
                axis.axvspan(a - 0.5, b - 0.5, color="tab:orange", alpha=0.25, lw=0)
        ax.plot([], [], color="tab:orange", alpha=0.4, lw=6, label="labelled fault")
    ax.legend(fontsize="small", loc="upper right")
    axes[0].set_title(f"{Path(report.model).name} ({report.backend}) on {report.source}")
    return fig


def _verdict(scores: fe.ForecastScores, highway: int) -> str:
    """The linear-baseline sentence: of the model, or of what its LSTM adds to the linear
    highway it carries."""
    verdict = fe.linear_verdict(scores, highway)
    return verdict if highway else f"the model {verdict}"


def render(report: DetectReport) -> list[Any]:
    """Rich renderables for the terminal: the flag runs and the summary lines."""
    table = Table(title=f"flagged runs (score > {report.threshold:g})")
    for col in ("steps", "length", "peak score", "at step", "target"):
        table.add_column(col, justify="right" if col != "target" else "left")
    labelled = report.faults is not None
    if labelled:
        table.add_column("in a fault", justify="left")
    for r in report.runs[:MAX_RUNS_SHOWN]:
        row = [f"{r.start}..{r.stop - 1}", str(r.stop - r.start), f"{r.peak_score:.1f}",
               str(r.peak_step), escape(r.peak_target)]  # fmt: skip
        if labelled:
            row.append("[green]yes[/]" if r.in_fault else "[red]no[/]")
        table.add_row(*row)
    if len(report.runs) > MAX_RUNS_SHOWN:
        table.caption = f"{len(report.runs) - MAX_RUNS_SHOWN} more runs in report.json"
    a = report.accuracy
    lines = [
        f"{report.rows} steps of {escape(report.source)}; {int(report.flags.sum())} flagged "
        f"in {len(report.runs)} runs; model {escape(Path(report.model).name)} "
        f"({report.scheme}, {report.backend})",
        f"forecast: MAE/std {a.mae_std:.3f}, MASE vs persistence {a.mase_mean:.3f}"
        + (
            f", vs seasonal ({a.season} steps) {a.mase_seasonal_mean:.3f}"
            if a.mase_seasonal_mean is not None and math.isfinite(a.mase_seasonal_mean)
            else ""
        )
        + (
            f", vs linear {a.mase_linear_mean:.3f}; {_verdict(a, report.highway_lags)}"
            if a.mase_linear_mean is not None
            else ""
        ),
    ]
    for p in report.accuracy_per_step:
        lines.append(
            f"  t+{p['ahead']}: MASE vs persistence {p['mase_mean']:.3f}"
            + "".join(
                f", vs {name} {p[key]:.3f}"
                for key, name in PER_STEP_BASELINES
                if p[key] is not None and math.isfinite(p[key])
            )
        )
    if report.events is not None:
        e = report.events
        lines.append(
            f"vs labels: recall {percent(e.recall)} ({e.detected}/{e.events} fault events), "
            f"precision {percent(e.precision)} ({e.true_runs}/{e.flag_runs} flag runs), "
            f"step precision {percent(e.step_precision)}; "
            + (f"mean delay {e.mean_delay:.1f} steps " if math.isfinite(e.mean_delay) else "")
            + f"(an event counts if flagged within its span or {e.lag} steps after)"
        )
    else:
        lines.append("no fault labels: precision/recall not computed (see --label-column)")
    return [table, *lines]


def percent(v: float) -> str:
    """A share as "88%", or "-" where it is undefined (NaN: no events, or no flags)."""
    return "-" if not math.isfinite(v) else f"{v:.0%}"
