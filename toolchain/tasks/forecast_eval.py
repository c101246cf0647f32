"""forecast's evaluation half: what `validate`, `pipeline`, `bench`, `info` and `detect`
need of it. The metrics themselves (MAE, RMSE, MASE against (seasonal) persistence,
anomaly scores, event scoring) are plain numpy in toolchain/forecast_eval.py.

validate: rows of the held-out series; per step the max over targets of
|artifact - torch| / target_std (standard units); summary MAE/RMSE against torch and
against the truth, MASE against persistence (and seasonal persistence when the season is
known); tolerances `FORECAST_TOLERANCES` (lstm_edge.exporters.compare).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Group
from rich.table import Table

from lstm_edge.exporters.compare import FORECAST_TOLERANCES, compare_streams
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.files import atomic_write
from lstm_edge.runtime.tasks.forecast import FORECAST, output_ahead, output_names, step_block
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.tasks.eval_base import TaskEval
from lstm_edge.toolchain.validate_report import (
    md_table,
    pair_name,
    table_frame,
    verdict_cell,
    verdict_text,
)
from lstm_edge.toolchain.validate_run import (
    DRIFT_FRACTION,
    RuntimeRun,
    ValidationInputError,
    check_steps,
    error_stats,
)
from lstm_edge.toolchain.validate_tolerances import check_forecast_tolerance

if TYPE_CHECKING:
    from lstm_edge.toolchain.checkpoint import Checkpoint


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
    linear: fe.LinearAR | None = None  # the linear baseline, fitted on the training split
    season_name: str | None = None  # "52 steps = 1 year"
    # a model of each step ahead: its steps ahead (1..horizon), a linear baseline fitted
    # for each (a direct s-step fit); empty for a model of t + horizon only
    steps_ahead: tuple[int, ...] = ()
    linear_ahead: tuple[fe.LinearAR | None, ...] = ()
    highway_lags: int = 0  # the model's linear highway (ar_lags; 0: none)
    # rows read first to fill the highway's history (the validation split's last ones),
    # compared with torch but not scored against the truth; `features` starts with them
    warmup_rows: int = 0

    unit = "rows"  # what the source is counted in

    @property
    def source_size(self) -> int:
        return self.source_rows

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
            "season_name": self.season_name,
            "linear_baseline_lags": None if self.linear is None else self.linear.lags,
            "highway_lags": self.highway_lags,
            "warmup_rows": self.warmup_rows,
            # a highway model's truth scores: the first pass only (`summarize_forecast`)
            "truth_scored_rows": (
                self.source_rows
                if self.highway_lags and self.cycled
                else self.steps - self.warmup_rows
            ),
        } | ({"steps_ahead": list(self.steps_ahead)} if self.steps_ahead else {})


@dataclass(frozen=True)
class ForecastTrace:
    """Per-step values of one forecast artifact x backend run (not in JSON, only plotted)."""

    abs_err: np.ndarray  # float64 [steps], max over targets of |artifact - torch| / std
    outputs: np.ndarray  # float32 [steps, n_targets], the artifact's raw forecasts
    cell_absmax: np.ndarray  # float32 [steps], max |c| of the artifact state (NaN if unsampled)


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
    # a model of each step ahead: per step ahead s, {"ahead": s, "torch": ForecastScores,
    # "artifact": ForecastScores} of the outputs that predict t + s (torch_truth and
    # artifact_truth above score t + horizon); empty otherwise
    per_step: list[dict[str, Any]] = field(default_factory=list)


def build_series_stream(ckpt: Checkpoint, steps: int, csv_path: Path | None) -> SeriesStream:
    """Rows for `steps` steps, cycled if too short: the held-out test split (the task's one
    held-out stream builder, `training(config).held_out_stream`) or --csv.

    Cycling (rather than regenerating a longer built-in signal) works the same for a CSV
    and keeps the stream inside rows the model never trained on; the seam is one jump,
    like a sensor reconnecting, and the truth metrics score it like any other step."""
    from lstm_edge.toolchain.tasks import training

    check_steps(steps)
    config = ckpt.config
    if csv_path is not None:
        stream = csv_stream(config, csv_path, steps)
    else:
        source = f"held-out test split of {ckpt.path}"
        held = training(config).held_out_stream(ckpt.data, config, "test", steps, cycle=True)
        _check_rows(held.rows, source, config)
        # The record's season, as held_out_stream just checked it (the split's season).
        stream = SeriesStream(held.inputs, held.targets, config.horizon,
                              ckpt.data.get("season"), source, held.rows, held.cycled)  # fmt: skip
    season = stream.season if stream.season is not None else (ckpt.data or {}).get("season")
    ahead = tuple(output_ahead(config)) if len(output_ahead(config)) > 1 else ()
    if csv_path is None and config.ar_lags:
        stream = _warmed(stream, ckpt)
    return replace(
        stream,
        season=season,
        linear=fit_baseline(ckpt, season),
        season_name=(ckpt.data or {}).get("season_name"),
        steps_ahead=ahead,
        linear_ahead=tuple(fit_baseline(ckpt, season, s) for s in ahead),
        highway_lags=config.ar_lags,
    )


def _warmed(stream: SeriesStream, ckpt: Checkpoint) -> SeriesStream:
    """The test stream after the validation split's last ar_lags rows: a model with the
    linear highway reads them first, as it would have in service, so the test rows are
    forecast with its history filled (from a reset, a highway reads ar_lags rows of
    changes that never happened: on weekly CO2's 114 test rows, 53 of them). Those rows
    are compared with torch but not scored against the truth."""
    from lstm_edge.toolchain.tasks import training

    val = training(ckpt.config).held_out_stream(ckpt.data, ckpt.config, "val")
    n = min(ckpt.config.ar_lags, val.rows)
    return replace(
        stream,
        features=np.concatenate([val.inputs[val.rows - n :], stream.features]),
        targets=np.concatenate([val.targets[val.rows - n :], stream.targets]),
        source=f"{stream.source} after the last {n} rows of its validation split",
        warmup_rows=n,
    )


def fit_baseline(
    ckpt: Checkpoint, season: int | None, horizon: int | None = None
) -> fe.LinearAR | None:
    """The linear baseline `horizon` steps ahead (default: the model's) fitted on the
    checkpoint's training split (None without a data record, e.g. a checkpoint built by
    hand)."""
    from lstm_edge.toolchain.tasks import training

    if not ckpt.data:
        return None
    train = training(ckpt.config).held_out_stream(ckpt.data, ckpt.config, "train")
    h = ckpt.config.horizon if horizon is None else horizon
    return fe.fit_linear_ar(train.targets, h, fe.ar_lags(season))


def csv_stream(config: ModelConfig, csv_path: Path, steps: int) -> SeriesStream:
    """validate --csv: the file's rows of the config's columns for `steps` steps, cycled
    like the held-out stream."""
    from lstm_edge.toolchain.series import read_csv, select
    from lstm_edge.toolchain.tasks.training_base import take

    data = select(read_csv(csv_path), config)
    rows = data.features.shape[0]
    _check_rows(rows, str(csv_path), config)
    index, cycled = take(rows, steps, cycle=True)
    return SeriesStream(
        features=np.ascontiguousarray(data.features[index], dtype=np.float32),
        targets=np.ascontiguousarray(data.targets[index], dtype=np.float32),
        horizon=config.horizon,
        season=data.season,
        source=str(csv_path),
        source_rows=rows,
        cycled=cycled,
    )


def _check_rows(rows: int, source: str, config: ModelConfig) -> None:
    if rows <= config.horizon:
        raise ValidationInputError(
            f"{source} has {rows} rows (expected more than the horizon, {config.horizon})"
        )


def summarize_forecast(
    ref: np.ndarray,
    run: RuntimeRun,
    stream: SeriesStream,
    config: ModelConfig,
    *,
    artifact: str,
    scheme: str,
    backend: str,
) -> tuple[ForecastTrace, ForecastSummary]:
    abs_err = compare_streams(config, ref, run.logits).step_errors
    trace = ForecastTrace(abs_err, run.logits, run.cell_absmax)
    diff = run.logits.astype(np.float64) - ref.astype(np.float64)

    # The first pass over the split (after any warm-up rows): where the stream cycles, a
    # linear highway reads each seam's jump as a change and echoes it for ar_lags steps
    # (weekly CO2's 114 test rows cycled to 5,000 steps: MASE 1.19 over all of them, 0.69
    # on the first pass), so a highway model is scored against the truth there only, as
    # the linear baseline always is.
    first = stream.warmup_rows + stream.source_rows if stream.cycled else None
    scored = first if stream.highway_lags else None

    def truth(outputs: np.ndarray, ahead: int, linear: fe.LinearAR | None) -> fe.ForecastScores:
        return fe.forecast_scores(
            step_block(config, outputs, ahead)[:scored], stream.targets[:scored], ahead,
            config.target_std, stream.season, linear, first, skip=stream.warmup_rows,
        )  # fmt: skip

    h = stream.horizon
    t_scores, a_scores = truth(ref, h, stream.linear), truth(run.logits, h, stream.linear)
    per_step = [
        {
            "ahead": s,
            "torch": asdict(truth(ref, s, lin)),
            "artifact": asdict(truth(run.logits, s, lin)),
        }
        for s, lin in zip(stream.steps_ahead, stream.linear_ahead, strict=True)
    ]
    summary = ForecastSummary(
        artifact=artifact,
        scheme=scheme,
        backend=backend,
        mae_vs_torch=[float(v) for v in fe.mae(diff)],
        rmse_vs_torch=[float(v) for v in fe.rmse(diff)],
        torch_truth=asdict(t_scores),
        artifact_truth=asdict(a_scores),
        mae_increase=a_scores.mae_std - t_scores.mae_std,
        per_step=per_step,
        **error_stats(abs_err, run),
    )
    return trace, summary


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def per_step_rows(report: Any) -> list[list[str]]:
    """One row per artifact x backend x step ahead of a model of each step ahead: MAE/std
    and MASE against persistence, seasonal persistence and the linear baseline fitted for
    that step ahead, torch -> artifact."""
    rows = []
    for r in report.results:
        for step in r.summary.per_step:
            t, a = step["torch"], step["artifact"]
            rows.append(
                [f"{Path(r.summary.artifact).name} ({r.summary.backend})", f"t+{step['ahead']}"]
                + [
                    f"{_fmt(t[key])} -> {_fmt(a[key])}"
                    for key in ("mae_std", "mase_mean", "mase_seasonal_mean", "mase_linear_mean")
                ]
            )
    return rows


PER_STEP_HEADER = ["artifact (backend)", "ahead", "MAE/std", "MASE", "seasonal MASE", "linear MASE"]


def render_per_step_table(report: Any) -> Table:
    table = Table(title="each step ahead (torch -> artifact)")
    for col in PER_STEP_HEADER:
        table.add_column(col)
    for row in per_step_rows(report):
        table.add_row(*row)
    table.caption = (
        "each output block scored against the truth that many steps later; MASE against "
        "persistence, seasonal persistence and a linear autoregression fitted for that step "
        "ahead, each on the same steps"
    )
    return table


PER_STEP_PLOT = "mase_vs_steps_ahead.png"
BASELINES = (
    ("mase_mean", "persistence"),
    ("mase_seasonal_mean", "seasonal persistence"),
    ("mase_linear_mean", "linear baseline"),
)


def write_per_step_plot(report: Any, folder: Path) -> list[Path]:
    """mase_vs_steps_ahead.png for a model of each step ahead: the model's MASE against
    each baseline at each step ahead, torch and every artifact x backend (none otherwise)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    results = [r for r in report.results if r.summary.per_step]
    if not results:
        return []
    fig = Figure(figsize=(4 * len(BASELINES), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (key, name) in zip(fig.subplots(1, len(BASELINES)), BASELINES, strict=True):
        lines = [("torch", [p["torch"][key] for p in results[0].summary.per_step])]
        lines += [(pair_name(r), [p["artifact"][key] for p in r.summary.per_step]) for r in results]
        ahead = [p["ahead"] for p in results[0].summary.per_step]
        for label, values in lines:
            y = [math.nan if v is None else v for v in values]
            ax.plot(ahead, y, marker="o", lw=1, label=label)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(ahead)
        ax.set_xlabel("steps ahead")
        ax.set_ylabel(f"MASE vs {name}")
        ax.set_title(f"against {name} (below 1 beats it)", fontsize="small")
    fig.axes[0].legend(fontsize="x-small")
    path = folder / PER_STEP_PLOT
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return [path]


def render_forecast_table(report: Any) -> Table | Group:
    # Two-line headers: the columns then take the width of their numbers, so the table
    # fits 120 columns without rich truncating the values.
    cols = ("artifact (backend)", "scheme", "max err", "mean err", "drift",
            "MAE/std\ntorch->art", "MASE\ntorch->art", "seasonal MASE\ntorch->art",
            "linear MASE\ntorch->art",
            "cell range", "steps/s", "")  # fmt: skip
    table = table_frame(report, cols)
    for r in report.results:
        s = r.summary
        t, a = s.torch_truth, s.artifact_truth
        table.add_row(
            pair_name(r),
            s.scheme,
            f"{s.max_abs_err:.1e}",
            f"{s.mean_abs_err:.1e}",
            f"{s.drift_ratio:.2f}x",
            f"{_fmt(t['mae_std'])}->{_fmt(a['mae_std'])}",
            f"{_fmt(t['mase_mean'])}->{_fmt(a['mase_mean'])}",
            f"{_fmt(t['mase_seasonal_mean'])}->{_fmt(a['mase_seasonal_mean'])}",
            f"{_fmt(t['mase_linear_mean'])}->{_fmt(a['mase_linear_mean'])}",
            f"{s.cell_min:.3g}..{s.cell_max:.3g}",
            f"{s.steps_per_second:,.0f}",
            verdict_cell(r),
        )
    table.caption = (
        "errors vs torch in target std units (max over targets per step); "
        f"drift: mean error over the last {DRIFT_FRACTION:.0%} of the steps / over the first "
        f"{DRIFT_FRACTION:.0%}; MAE vs the truth / target std, mean over targets (RMSE and "
        "per-target values in report.json); MASE: MAE / MAE of persistence (repeat the last "
        "value) on the same steps, seasonal: of the value one season earlier, linear: of a "
        "least-squares autoregression on lagged changes fitted on the training split; below 1 "
        "beats the baseline"
    )
    if report.stream.highway_lags:
        table.caption += (
            f"; the model includes a linear highway ({report.stream.highway_lags} lagged "
            "changes): linear MASE is what its LSTM adds"
        )
    if any(r.summary.per_step for r in report.results):
        return Group(table, render_per_step_table(report))
    return table


def summary_table(report: Any) -> str:
    """SUMMARY.md's validation table and its note."""

    def pair(t: dict, a: dict, key: str) -> str:
        if t[key] is None or a[key] is None:
            return ""
        return f"{t[key]:.3f} -> {a[key]:.3f}"

    header = ["artifact", "backend", "max err (std)", "MAE/std torch -> artifact",
              "MASE torch -> artifact", "seasonal MASE", "linear MASE", "verdict"]  # fmt: skip
    rows = [
        [
            f"`{Path(r.summary.artifact).name}`",
            r.summary.backend,
            f"{r.summary.max_abs_err:.2e}",
            pair(r.summary.torch_truth, r.summary.artifact_truth, "mae_std"),
            pair(r.summary.torch_truth, r.summary.artifact_truth, "mase_mean"),
            pair(r.summary.torch_truth, r.summary.artifact_truth, "mase_seasonal_mean"),
            pair(r.summary.torch_truth, r.summary.artifact_truth, "mase_linear_mean"),
            verdict_text(r),
        ]
        for r in report.results
    ]
    per_step = per_step_rows(report)
    ahead = (
        "\n\nEach step ahead (torch -> artifact; the table above scores t + horizon):\n\n"
        + md_table(PER_STEP_HEADER, per_step)
        if per_step
        else ""
    )
    return (
        md_table(header, rows) + ahead + "\n\nErrors vs torch in target standard deviations. MASE: "
        "the model's MAE divided by that of persistence (repeat the last value) on the same "
        "held-out steps; below 1 beats it. Seasonal MASE: against repeating the value one "
        f"season earlier{_season_note(report)}; linear MASE: against a least-squares "
        "autoregression on lagged changes fitted on the training split." + _linear_note(report)
    )


def _season_note(report: Any) -> str:
    stream = report.stream
    name = stream.season_name or (stream.season and f"{stream.season} steps")
    return f" ({name})" if name else " (no season given or found)"


def _linear_note(report: Any) -> str:
    """The plain sentence: does the trained model beat the linear baseline?"""
    if not report.results:
        return ""
    scores = fe.ForecastScores(**report.results[0].summary.torch_truth)
    highway = report.stream.highway_lags
    if highway:
        return f"\n\n**{_capital(fe.linear_verdict(scores, highway))}.**"
    return f"\n\n**The LSTM {fe.linear_verdict(scores)}.**"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def normalization_summary(cfg: ModelConfig) -> dict[str, str]:
    """One line per input/target column: the training-split mean and std it is scaled by."""
    lines = {}
    for kind, names, means, stds in (
        ("feature", cfg.features, cfg.feature_mean, cfg.feature_std),
        ("target", cfg.targets, cfg.target_mean, cfg.target_std),
        ("change of target", cfg.targets if cfg.change_mean else (), cfg.change_mean,
         cfg.change_std),
    ):  # fmt: skip
        for name, mean, std in zip(names, means, stds, strict=True):
            lines[f"{kind} {name}"] = f"mean {mean:.6g}, std {std:.6g}"
    return lines


def _ahead(config: ModelConfig) -> str:
    if config.horizon_outputs == "each":
        return f"at each step 1..{config.horizon} ahead (outputs {', '.join(output_names(config))})"
    return f"{config.horizon} step(s) ahead"


class ForecastEval(TaskEval):
    spec = FORECAST
    tolerance_option = "forecast_tolerances"
    error_label = "max |forecast error| / target std"
    table_width = 150  # the forecast table has more columns
    data_unit = "rows"
    has_detect = True

    # ---- validate ---------------------------------------------------------------------

    def build_stream(self, ckpt: Checkpoint, options: Any) -> SeriesStream:
        if options.text is not None:
            raise ValidationInputError(
                f"--text is for char-lm models; {ckpt.path} is a forecast model (use --csv)"
            )
        return build_series_stream(ckpt, options.steps, options.csv)

    def evaluate(
        self, ref: np.ndarray, run: RuntimeRun, stream: Any, config: ModelConfig, **names: str
    ) -> tuple[ForecastTrace, ForecastSummary]:
        return summarize_forecast(ref, run, stream, config, **names)

    def check(self, summary: ForecastSummary, tolerance: Any) -> list[str]:
        return check_forecast_tolerance(summary, tolerance)

    def check_against_torch(
        self,
        outputs: np.ndarray,
        reference: np.ndarray,
        inputs: np.ndarray,
        steps: np.ndarray,
        scheme: str,
        config: ModelConfig,
    ) -> tuple[float, float | None, list[str]]:
        """Errors in target standard units (validate's measure) within
        `FORECAST_TOLERANCES[scheme]`: its max and mean error; the MAE-vs-truth bound needs
        true targets, which a seeded stream lacks. No top-1 (None)."""
        err = compare_streams(config, reference, outputs).step_errors
        max_err, mean_err = float(err.max()), float(err.mean())
        tol = FORECAST_TOLERANCES[scheme]
        bounds = ((max_err, tol.max_abs_err, "max"), (mean_err, tol.max_mean_err, "mean"))
        failures = [
            f"{what} error {value:.3g} target std > {bound:g}"
            for value, bound, what in bounds
            if bound is not None and not value <= bound
        ]
        return max_err, None, failures

    def render_table(self, report: Any) -> Table:
        return render_forecast_table(report)

    def write_extra(self, report: Any, folder: Path) -> list[Path]:
        return write_per_step_plot(report, folder)

    # ---- pipeline's SUMMARY.md -----------------------------------------------------------

    def model_shape(self, config: ModelConfig) -> str:
        return (
            f"{len(config.features)} features ({', '.join(config.features)}) -> "
            f"{len(config.targets)} targets ({', '.join(config.targets)}) {_ahead(config)}, "
            f"learnt as {config.target_kind}s"
            + (
                f", plus a linear highway (a least-squares autoregression on {config.ar_lags} "
                "lagged changes of each target, fitted on the training split; the LSTM learns "
                "what it leaves)"
                if config.ar_lags
                else ""
            )
        )

    def summary_table(self, report: Any) -> str:
        return summary_table(report)

    def snippet(self, config: ModelConfig) -> list[str]:
        return [
            "state = model.initial_state(batch=1)  # caller-owned h and c"
            + (" (and the highway's history)" if config.ar_lags else ""),
            f"# one row of raw sensor values per step: {', '.join(config.features)}",
            f"row = np.array([{', '.join(f'{m:.4g}' for m in config.feature_mean)}])",
            "forecast, state = model.step(row[None], state)",
            f"print(forecast[0])  # {', '.join(output_names(config))} in "
            + (
                f"1..{config.horizon} steps"
                if config.horizon_outputs == "each"
                else f"{config.horizon} step(s)"
            ),
        ]

    # ---- info -------------------------------------------------------------------------

    def info_config(self, config: ModelConfig) -> dict[str, Any]:
        """Column names joined, the statistics left to `normalization`."""
        stats = ("feature_mean", "feature_std", "target_mean", "target_std")
        stats += ("change_mean", "change_std", "ar_coef")
        summary = {k: v for k, v in config.to_dict().items() if k not in stats}
        summary["target_kind"] = config.target_kind
        summary["ar_lags"] = config.ar_lags  # the linear highway (0: none)
        summary["features"] = ", ".join(config.features)
        summary["targets"] = ", ".join(config.targets)
        return summary

    def info_details(self, config: ModelConfig) -> dict[str, Any]:
        return {"normalization": normalization_summary(config)}


EVAL = ForecastEval()
