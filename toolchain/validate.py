"""`lstm-edge validate`: run the torch model and exported artifacts in lock-step over a stream.

The torch training model and every artifact (through each chosen runtime backend) see the
same input stream with their recurrent state carried; the lock-step run, the drift and
cell-state statistics, the report and the plot are shared by both tasks. What differs per
task is only the stream, the per-step error and the task metric, which the task's
evaluation half answers (`tasks.evaluation(config)`, toolchain/tasks/<module>_eval.py):

- char-lm: tokens of held-out text; per step the max abs logit error, top-1 agreement and
  the cross-entropy of both; summary bits per character; tolerances `TOLERANCES`.
- forecast: rows of the held-out series; per step the max over targets of
  |artifact - torch| / target_std (standard units); summary MAE/RMSE against torch and
  against the truth, MASE against persistence (and seasonal persistence when the season
  is known); tolerances `FORECAST_TOLERANCES`.

The parts live in validate_run.py (the lock-step run), validate_report.py (report.json,
the plot, the tables) and validate_tolerances.py (the pass criteria; the tolerance tables
are lstm_edge.exporters.compare's); this module is the command and keeps their names
importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from lstm_edge.exporters.compare import (  # the one tolerance table (tests patch it here)
    FORECAST_TOLERANCES,
    TOLERANCES,
    ForecastTolerance,
    Tolerance,
)
from lstm_edge.runtime.files import check_output_path
from lstm_edge.toolchain.tasks.char_lm_eval import (  # noqa: F401  (validate's names)
    METRIC_BLOCK,
    PairSummary,
    StepTrace,
    Stream,
    build_stream,
    step_metrics,
    summarize,
)
from lstm_edge.toolchain.tasks.forecast_eval import (  # noqa: F401
    ForecastSummary,
    ForecastTrace,
    SeriesStream,
    build_series_stream,
    render_forecast_table,
    summarize_forecast,
)
from lstm_edge.toolchain.validate_report import (  # noqa: F401
    PLOT_FILE,
    REPORT_FILE,
    ValidationReport,
    plot_errors,
    render_table,
    render_verdict,
    write_report,
)
from lstm_edge.toolchain.validate_run import (  # noqa: F401
    DRIFT_FRACTION,
    TORCH_CHUNK,
    PairResult,
    ValidationInputError,
    config_differences,
    load_runs,
    onednn,
    run_pairs,
    runtime_outputs,
    torch_outputs,
)
from lstm_edge.toolchain.validate_tolerances import (  # noqa: F401
    check_forecast_tolerance,
    check_tolerance,
)

DEFAULT_STEPS = 5000
# Backends tried when the user names none; one that cannot run a scheme (numpy and
# int8-dynamic) is skipped with a note instead of failing the run.
DEFAULT_BACKENDS = ("numpy", "ort")

_config_differences = config_differences  # its old name (tests)


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
    # One table per task (the task's evaluation half names its field); the defaults are
    # this module's tables as they are when the options are built.
    tolerances: Mapping[str, Tolerance] = field(default_factory=lambda: dict(TOLERANCES))
    forecast_tolerances: Mapping[str, ForecastTolerance] = field(
        default_factory=lambda: dict(FORECAST_TOLERANCES)
    )


def _check_options(options: ValidateOptions, artifacts: Sequence[Path]) -> None:
    if options.chunk < 1:
        raise ValidationInputError(f"--chunk is {options.chunk} (expected at least 1)")
    if not artifacts:
        raise ValidationInputError("no artifact given (expected one or more .onnx files)")
    if options.report_dir is not None and Path(options.report_dir).exists():
        # Before minutes of stepping: an existing report (without --force), a folder that
        # cannot be written. A missing folder is created at the end.
        for name in (REPORT_FILE, PLOT_FILE):
            check_output_path(Path(options.report_dir) / name, options.force)


def validate(
    ckpt_dir: Path,
    artifacts: Sequence[Path],
    options: ValidateOptions | None = None,
    console: Console | None = None,
) -> ValidationReport:
    """Validate each artifact x backend against the checkpoint's torch model."""
    from lstm_edge.toolchain import tasks
    from lstm_edge.toolchain.checkpoint import load_checkpoint
    from lstm_edge.toolchain.validate_source import is_source, source_reference

    options = options or ValidateOptions()
    console = console or Console(stderr=True)
    _check_options(options, artifacts)
    if is_source(Path(ckpt_dir)):  # a source ONNX file as the reference (`import`)
        ckpt = source_reference(Path(ckpt_dir), artifacts, options)
    else:
        ckpt = load_checkpoint(Path(ckpt_dir))
    task = tasks.evaluation(ckpt.config)
    stream = task.build_stream(ckpt, options)
    if stream.cycled:
        console.print(
            f"note: {stream.source} has {stream.source_size} {stream.unit}; cycling it to "
            f"make {stream.steps} steps",
            highlight=False,
        )

    # Load everything first: a bad artifact fails before minutes of stepping.
    tolerances = task.tolerances(options)
    runs, skipped = load_runs(
        ckpt,
        artifacts,
        options.backends or DEFAULT_BACKENDS,
        bool(options.backends),
        tolerances,
        console,
    )
    torch_seconds, results = run_pairs(ckpt, stream, runs, options.chunk, task, tolerances, console)
    report = ValidationReport(
        str(ckpt.path), stream, torch_seconds, results, skipped, task=ckpt.config.task
    )
    if options.report_dir is not None:
        write_report(report, Path(options.report_dir))
    return report
