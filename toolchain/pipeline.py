"""`lstm-edge pipeline`: train (or reuse) -> export -> quantize -> validate -> [detect] ->
bench -> summary.

The whole path in one command, for either task. DIR ends up a deployable bundle:

    DIR/checkpoint/              the trained checkpoint (absent with --from)
    DIR/model.onnx               float artifact
    DIR/model.SCHEME.onnx        quantized artifact
    DIR/validation/              report.json + error_vs_timestep.png
    DIR/detect/                  forecast only: anomaly scores of the quantized artifact
    DIR/bench.json               short side-by-side bench
    DIR/SUMMARY.md               sizes, validation verdict, bench figures, how to load it

Each stage calls the library function its own command calls; a failing stage stops the
pipeline with its message and exit status, and what earlier stages wrote stays.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.integer import SCHEME as INTEGER_SCHEME
from lstm_edge.runtime.tasks import DEFAULT_TASK
from lstm_edge.toolchain import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from lstm_edge.toolchain.run_config import TrainSettings, redefault

CHECKPOINT_DIR = "checkpoint"
FLOAT_FILE = "model.onnx"
VALIDATION_DIR = "validation"
DETECT_DIR = "detect"
BENCH_FILE = "bench.json"
SUMMARY_FILE = "SUMMARY.md"
DEFAULT_SCHEME = "int8"
DEFAULT_VALIDATE_STEPS = 5000
# A short bench: enough repeats for a median, short loops; `lstm-edge bench` for the full run.
BENCH_REPEATS = 3
BENCH_TARGET_SECONDS = 0.02


T = TypeVar("T")


def quantized_file(scheme: str) -> str:
    return f"model.{scheme}.onnx"


def device_backend(scheme: str) -> str:
    """The backend that runs the bundle's quantized model after validation (detect, the
    loading snippet): onnxruntime, except for int8-full, whose integer arithmetic it does
    not compute; numpy is that scheme's reference (the c backend runs it on a device)."""
    return "numpy" if scheme == INTEGER_SCHEME else "ort"


@dataclass(frozen=True)
class PipelineOptions(TrainSettings):
    """The training options (`TrainSettings`, passed through to `train`; None: the trainer's
    default) and the pipeline's own."""

    out: Path
    _: KW_ONLY
    task: str = redefault("task", DEFAULT_TASK)  # type: ignore[assignment]  (no resume here)
    from_checkpoint: Path | None = None  # reuse instead of training
    scheme: str = DEFAULT_SCHEME
    validate_steps: int = DEFAULT_VALIDATE_STEPS
    bench: bool = True
    force: bool = False


class StageFailed(LstmEdgeError):
    """A stage did not complete; it carries the exit status of the error that stopped it
    (`exit_status`, also `exit_code`), and the CLI prints it as an error."""

    def __init__(self, stage: str, message: str, exit_code: int) -> None:
        super().__init__(f"stage '{stage}' failed: {message}")
        self.stage = stage
        self.exit_status = self.exit_code = exit_code


@dataclass
class PipelineResult:
    out: Path
    checkpoint: Path
    artifacts: list[Path]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    train: Any = None  # TrainResult, or None with --from
    validation: Any = None  # ValidationReport
    detect: Any = None  # DetectReport (forecast)
    bench: Any = None  # BenchReport, or None with --no-bench
    summary: Path | None = None


def _evaluation(options: PipelineOptions) -> Any:
    """The task's evaluation half (which stages run, its tables and summary section)."""
    from lstm_edge.toolchain import tasks

    return tasks.evaluation(options.task)


def _outputs(options: PipelineOptions) -> list[Path]:
    out = options.out
    detect = [out / DETECT_DIR] if _evaluation(options).has_detect else []
    return [
        out / FLOAT_FILE,
        out / quantized_file(options.scheme),
        out / VALIDATION_DIR,
        *detect,
        out / BENCH_FILE,
        out / SUMMARY_FILE,
    ]


def _check_outputs(options: PipelineOptions) -> None:
    """Refuse up front (not after an hour of training) to overwrite an earlier bundle."""
    from lstm_edge.runtime.config import QUANT_SCHEMES

    if options.scheme not in QUANT_SCHEMES or options.scheme == "none":
        known = [s for s in QUANT_SCHEMES if s != "none"]
        raise StageFailed(
            "setup",
            f"scheme {options.scheme!r} is unknown (expected one of {known})",
            EXIT_BAD_INPUT,
        )
    if options.out.exists() and not options.out.is_dir():
        raise StageFailed("setup", f"{options.out} exists and is not a folder", EXIT_BAD_INPUT)
    if options.from_checkpoint is not None:
        from lstm_edge.toolchain.checkpoint import load_config

        try:  # before any output is written
            config = load_config(options.from_checkpoint)
        except LstmEdgeError as e:
            raise StageFailed("setup", str(e), EXIT_BAD_INPUT) from None
        task = config.task
        if _evaluation(options).spec.name != config.task:
            raise StageFailed(
                "setup",
                f"{options.from_checkpoint} holds a {task} model (pass --task {task})",
                EXIT_BAD_INPUT,
            )
    if options.force:
        return
    taken = [p for p in _outputs(options) if p.exists()]
    if options.from_checkpoint is None and (options.out / CHECKPOINT_DIR).exists():
        taken.insert(0, options.out / CHECKPOINT_DIR)
    if taken:
        raise StageFailed(
            "setup",
            f"{taken[0]} exists (pass --force to replace the bundle in {options.out})",
            EXIT_BAD_INPUT,
        )


def run_pipeline(options: PipelineOptions, console: Console | None = None) -> PipelineResult:
    """Run every stage in order; raise StageFailed naming the first one that fails."""
    console = console or Console(stderr=True)
    _check_outputs(options)
    out = options.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StageFailed(
            "setup", f"cannot create {out}: {e.strerror or e}", EXIT_BAD_INPUT
        ) from None
    stages = ["export", "quantize", "validate"]
    stages += ["detect"] if _evaluation(options).has_detect else []
    stages += ["bench"] if options.bench else []
    stages.append("summary")
    if options.from_checkpoint is None:
        stages.insert(0, "train")
    result = PipelineResult(
        out=out,
        checkpoint=Path(options.from_checkpoint or out / CHECKPOINT_DIR),
        artifacts=[out / FLOAT_FILE, out / quantized_file(options.scheme)],
    )

    def stage(name: str, fn: Callable[[], T]) -> T:
        n = stages.index(name) + 1
        console.rule(f"[bold]\\[{n}/{len(stages)}] {name}", align="left")
        t0 = time.perf_counter()
        try:
            value = fn()
        except StageFailed:
            raise
        except LstmEdgeError as e:
            raise StageFailed(name, str(e), e.exit_status) from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise StageFailed(name, f"{where}{e.strerror or e}", EXIT_BAD_INPUT) from None
        result.stage_seconds[name] = time.perf_counter() - t0
        console.print(f"{name} done in {result.stage_seconds[name]:.1f} s", highlight=False)
        return value

    if options.from_checkpoint is None:
        result.train = stage("train", lambda: _train(options, result.checkpoint))

    float_path, quant_path = result.artifacts
    export = stage("export", lambda: _export(result.checkpoint, float_path, options.force))
    console.print(
        f"{float_path} ({export.bytes:,} bytes), max abs {export.unit} vs torch "
        f"{max(export.max_abs_err_prefill, export.max_abs_err_steps):.2g}",
        highlight=False,
    )
    stage(
        "quantize", lambda: _quantize(float_path, quant_path, result.checkpoint, options, console)
    )
    console.print(f"{quant_path} ({quant_path.stat().st_size:,} bytes)", highlight=False)

    result.validation = stage("validate", lambda: _validate(result, options, console))
    _show_validation(result.validation, options, console)

    if _evaluation(options).has_detect:
        result.detect = stage("detect", lambda: _detect(result, options, console))
    if options.bench:
        result.bench = stage("bench", lambda: _bench(result, console))
    result.summary = stage("summary", lambda: write_summary(result, options))
    console.print(f"bundle ready in {out}; see {result.summary}", highlight=False)
    return result


def _show_validation(report: Any, options: PipelineOptions, console: Console) -> None:
    """The validation table and verdict; StageFailed if any pair is out of tolerance."""
    from lstm_edge.toolchain.validate_report import render_table, render_verdict

    # Wide (the forecast table has more columns): wrapped lines beat numbers truncated to
    # fit 80 columns. render_table picks the task's table itself.
    width = _evaluation(options).table_width
    Console(file=console.file, width=max(console.width, width)).print(render_table(report))
    for note in report.skipped:  # e.g. int8-full on ort, which does not compute it
        console.print(f"skipped {note}", highlight=False)
    console.print(render_verdict(report), highlight=False)
    if not report.passed:
        bad = [
            f"{Path(r.summary.artifact).name} ({r.summary.backend}): " + "; ".join(r.failures)
            for r in report.results
            if not r.passed
        ]
        raise StageFailed(
            "validate",
            "out of tolerance: " + " | ".join(bad) + f" (report in {options.out / VALIDATION_DIR})",
            EXIT_CHECK_FAILED,
        )


# ---- the stages ----------------------------------------------------------------------------


def _train(options: PipelineOptions, ckpt: Path) -> Any:
    from lstm_edge.toolchain.train import TrainingInterrupted, TrainOptions, train

    try:
        return train(TrainOptions(ckpt, force=options.force, **options.settings()))
    except TrainingInterrupted as e:
        hint = "continue with `lstm-edge train --resume`"
        raise StageFailed("train", f"{e}; {hint}", e.exit_status) from None


def _export(ckpt: Path, out: Path, force: bool) -> Any:
    from lstm_edge.toolchain.export import export_checkpoint

    return export_checkpoint(ckpt, out, force=force)


def _quantize(src: Path, out: Path, ckpt: Path, options: PipelineOptions, console: Console) -> Any:
    """Quantize the float export; int8-full first calibrates on the run's own checkpoint
    (its training split), as `lstm-edge quantize --calibrate CHECKPOINT` does."""
    from lstm_edge.exporters.quantize import quantize_file

    ranges = None
    if options.scheme == INTEGER_SCHEME:
        from lstm_edge.toolchain.calibrate import calibrate

        ranges = calibrate(src, ckpt)
        h_max = ", ".join(f"{v:.3g}" for v in ranges.h_absmax)
        console.print(
            f"calibrated on {ranges.summary['steps']:,} steps of the training split of "
            f"{ckpt} ({ranges.summary['streams']} streams): max |h| per layer {h_max}",
            highlight=False,
        )
    return quantize_file(src, out, options.scheme, force=options.force, ranges=ranges)


def _validate(result: PipelineResult, options: PipelineOptions, console: Console) -> Any:
    from lstm_edge.toolchain.validate import ValidateOptions, validate

    return validate(
        result.checkpoint,
        result.artifacts,
        ValidateOptions(
            steps=options.validate_steps,
            report_dir=result.out / VALIDATION_DIR,
            force=options.force,
        ),
        console=console,
    )


def _detect(result: PipelineResult, options: PipelineOptions, console: Console) -> Any:
    """Anomaly scores of the quantized artifact (the one a device runs) over the series."""
    from lstm_edge.toolchain.checkpoint import load_checkpoint
    from lstm_edge.toolchain.detect import DetectOptions, detect, render

    # The held-out rows of the series the checkpoint was trained on (its data.json), the
    # rows validation streams too; the CSV's time/label columns are in that record.
    record = load_checkpoint(result.checkpoint).data or None
    report = detect(
        result.artifacts[1],
        DetectOptions(
            csv=None if record is not None else options.csv,
            record=record,
            label_column=None if record is not None else options.label_column,
            time_column=None if record is not None else options.time_column,
            backend=device_backend(options.scheme),
            out=result.out / DETECT_DIR,
            force=options.force,
        ),
    )
    for part in render(report):
        console.print(part)
    return report


def _bench(result: PipelineResult, console: Console) -> Any:
    from lstm_edge.toolchain.bench import BenchOptions, bench, write_json

    report = bench(
        result.artifacts,
        BenchOptions(
            checkpoint=result.checkpoint,
            repeats=BENCH_REPEATS,
            target_seconds=BENCH_TARGET_SECONDS,
            process_repeats=1,
        ),
        console=console,
    )
    write_json(report, result.out / BENCH_FILE)
    return report


# ---- SUMMARY.md ----------------------------------------------------------------------------


def _data_record(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's data.json ({} if it has none or it is unreadable: only notes
    depend on it)."""
    from lstm_edge.toolchain.checkpoint import DATA_FILE

    try:
        data = json.loads((checkpoint / DATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def summary_text(result: PipelineResult, options: PipelineOptions) -> str:
    from lstm_edge.toolchain import tasks
    from lstm_edge.toolchain.checkpoint import load_config
    from lstm_edge.toolchain.validate_report import PLOT_FILE, REPORT_FILE, md_table

    config = load_config(result.checkpoint)
    float_path, quant_path = result.artifacts
    float_size = float_path.stat().st_size
    task = tasks.evaluation(config)
    shape = task.model_shape(config)
    parts = [
        f"# lstm-edge bundle: {result.out.name}",
        "",
        f"Model ({config.task}): {config.num_layers}-layer LSTM, hidden {config.hidden_size}, "
        f"{shape}. Checkpoint: `{result.checkpoint}`.",
    ]
    record = _data_record(result.checkpoint)
    why = record.get("target_kind_source")
    if why is not None:  # forecast: why changes or levels
        parts[-1] += f" Target kind {config.target_kind}: {why}."
    why = record.get("ar_lags_source")
    if why is not None:  # forecast: why this linear highway (or none)
        lags = getattr(config, "ar_lags", 0)
        parts[-1] += f" Linear highway: {f'{lags} lagged changes' if lags else 'none'} ({why})."
    if result.train is not None:
        t = result.train
        baseline = f" (persistence: {t.baseline:.3f})" if t.baseline is not None else ""
        parts.append(
            f"Trained {t.steps} steps{t.budget_note()} in {t.elapsed_s:.0f} s; best validation "
            f"{t.best_val:.3f} {t.unit}{baseline} (step {t.best_step})."
        )
        if t.budget is not None:
            parts[-1] += f" T{t.budget.measured()[1:]}."  # "Timing probe: ..."
    parts += [
        "",
        "## Files",
        "",
        md_table(
            ["file", "scheme", "bytes", "vs float"],
            [
                [f"`{p.name}`", s, f"{p.stat().st_size:,}", f"{p.stat().st_size / float_size:.2f}x"]
                for p, s in ((float_path, "none"), (quant_path, options.scheme))
            ],
        ),
    ]
    v = result.validation
    verdict = "PASSED" if v.passed else "FAILED"
    parts += [
        "",
        f"## Validation: {verdict}",
        "",
        f"{v.stream.steps} steps of {v.stream.source}"
        + (" (cycled)" if v.stream.cycled else "")
        + f", {task.lock_step}. "
        f"Report: `{VALIDATION_DIR}/{REPORT_FILE}`, plot: `{VALIDATION_DIR}/{PLOT_FILE}`.",
        "",
        task.summary_table(v),
    ]
    if result.detect is not None:
        parts += ["", *_detect_section(result.detect)]
    if result.bench is not None:
        parts += ["", *_bench_section(result.bench)]
    parts += ["", *_device_section(task, config, quant_path, options.scheme)]
    return "\n".join(parts)


def _bench_section(b: Any) -> list[str]:
    from lstm_edge.toolchain.validate_report import md_table

    parts = [
        "## Bench (this machine, short run; `lstm-edge bench` for the full one)",
        "",
        md_table(
            ["per step, batch 1", "artifact", "median µs", "vs torch eager", "vs session.run"],
            [
                [
                    r.name,
                    f"`{Path(r.artifact).name}`" if r.artifact else "",
                    f"{r.stats.median * 1e6:,.1f}",
                    f"{r.vs_torch:.3g}x" if r.vs_torch is not None else "",
                    f"{r.vs_session_run:.3g}x" if r.vs_session_run is not None else "",
                ]
                for r in b.latency
            ],
        ),
    ]
    if b.process:
        parts += [
            "",
            md_table(
                ["fresh process", "wall s", "peak RSS MB"],
                [[p.name, f"{p.wall_s.median:.2f}", f"{p.peak_rss_mb:.0f}"] for p in b.process],
            ),
        ]
    parts.append(f"\nAll figures: `{BENCH_FILE}`.")
    return parts


def _device_section(task: Any, config: Any, quant_path: Path, scheme: str) -> list[str]:
    backend = device_backend(scheme)
    others = '"c" (the integer C library)' if backend == "numpy" else '"numpy", "c"'
    return [
        "## Load it on a device",
        "",
        "The runtime needs numpy (and onnxruntime for the `ort` backend), not torch. Copy "
        f"`{quant_path.name}` to the device, then:",
        "",
        "```python",
        "import numpy as np",
        "import lstm_edge.runtime as rt",
        "",
        f'model = rt.load("{quant_path.name}", backend="{backend}")  # or {others}',
        *task.snippet(config),
        "```",
        "",
        "The state is a value: keep it per stream, copy it to branch, never shared.",
        "",
    ]


def _detect_section(d: Any) -> list[str]:
    lines = [
        "## Anomaly detection",
        "",
        f"`{Path(d.model).name}` ({d.backend}) over {d.rows:,} rows of {d.source}: "
        f"{int(d.flags.sum())} flagged steps in {len(d.runs)} runs above threshold "
        f"{d.threshold:g}. Scores, report and plot: `{DETECT_DIR}/`.",
    ]
    if d.events is not None:
        from lstm_edge.toolchain.detect import percent

        e = d.events
        lines.append(
            f"Against the labelled faults: recall {percent(e.recall)} ({e.detected} of "
            f"{e.events} events), precision {percent(e.precision)} of flag runs."
        )
    return lines


def write_summary(result: PipelineResult, options: PipelineOptions) -> Path:
    from lstm_edge.runtime.files import atomic_write_bytes

    path = result.out / SUMMARY_FILE
    atomic_write_bytes(path, summary_text(result, options).encode("utf-8"))
    return path
