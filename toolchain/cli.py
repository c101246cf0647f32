"""The `lstm-edge` command line: one thin Typer command per stage over library functions.

Exit status: 0 success; 1 a check the user asked for did not pass; 2 bad usage or bad
input (a one-line message, no traceback); 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from lstm_edge.runtime.errors import CheckFailedError, Interrupted, LstmEdgeError
from lstm_edge.toolchain import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    __version__,
)
from lstm_edge.toolchain.pipeline import PipelineOptions
from lstm_edge.toolchain.run_config import TrainSettings

app = typer.Typer(
    name="lstm-edge",
    help="Train an LSTM, export it to streaming ONNX, quantize it, and run it step by step "
    "on CPU and embedded targets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
# Messages are never hard-wrapped: a path split over two lines cannot be copied or grepped.
err_console = Console(stderr=True, soft_wrap=True)

# Torch's OpenMP threads wait for each other asleep rather than spinning. While another
# process held one of a 2-core machine's cores, spinning threads took the CPU from their
# own descheduled peer: a default training step (2 threads) ran 2.6x slower than alone, and
# 6-8x with more load around; waiting asleep kept it at 1.14x, for a step ~15% slower on
# the idle machine (scripts/training_under_load.py measures both). It must be set before
# torch is imported, which the commands do lazily; a user's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn the project's typed errors and OS errors into a one-line message and the exit
    status the error carries (`exit_status`: 1 a check failed, 2 bad input, 130
    interrupted); OS errors are bad input, Ctrl-C is 130 (click alone would print
    "Aborted!" and exit 1). The one place where errors become exit statuses."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CheckFailedError as e:
            err_console.print(f"[bold red]check failed:[/] {e}", highlight=False)
            raise typer.Exit(e.exit_status) from None
        except LstmEdgeError as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False)
            raise typer.Exit(e.exit_status) from None
        except Interrupted as e:
            err_console.print(f"{e}; {e.hint}" if e.hint else f"{e}", highlight=False)
            raise typer.Exit(e.exit_status) from None
        except OSError as e:
            where = f" {e.filename}" if e.filename else ""
            err_console.print(f"[bold red]error:[/]{where}: {e.strerror or e}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            # Outputs are written atomically, so whatever was interrupted left no partial file.
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"lstm-edge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train -> export -> quantize -> validate -> deploy an LSTM, one command per stage."""


# ---- commands ------------------------------------------------------------------------------
# Each command parses its arguments and calls one library function; the work lives in
# the module named in its docstring.


# ---- train / info (lstm_edge.toolchain.train, lstm_edge.toolchain.info) ------------------
# The training options are declared once, in lstm_edge.toolchain.run_config.TrainSettings;
# a `Shared(...)` parameter of a command stands for those options, built from there.


def _default(name: str) -> str:
    from lstm_edge.toolchain.run_config import default_text

    # Parentheses, not brackets: rich would read "[...]" as markup and drop it.
    return f"(default {default_text(name)}; with --resume: the run's own)"


def _choice(name: str, values: tuple[str, ...]) -> type[Enum]:
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)  # type: ignore[return-value]


def _columns(text: str | None) -> tuple[str, ...] | None:
    from lstm_edge.toolchain.series import parse_columns

    return parse_columns(text)


class Shared:
    """A command parameter that stands for training options of `of` (a TrainSettings
    dataclass): the named ones in this order, or every one with a Flag. `pipeline`: the
    pipeline command's help texts. The command receives them as one dict of keyword
    arguments for `of`."""

    def __init__(self, of: type, *names: str, pipeline: bool = False) -> None:
        self.of, self.names, self.pipeline = of, names, pipeline

    def parameters(self) -> list[inspect.Parameter]:
        from typing import get_type_hints

        from lstm_edge.toolchain.run_config import flag_of

        hints = get_type_hints(self.of)
        declared = {f.name: f for f in dataclasses.fields(self.of) if flag_of(f) is not None}
        names = self.names or tuple(declared)
        return [self._parameter(declared[n], hints[n]) for n in names]

    def _parameter(self, f: dataclasses.Field, hint: Any) -> inspect.Parameter:
        from lstm_edge.toolchain.run_config import flag_of

        flag = flag_of(f)
        assert flag is not None
        text = flag.pipeline if self.pipeline else flag.help
        if flag.shows_default and not self.pipeline:
            text = f"{text} {_default(f.name)}"
        kind, default = hint, f.default
        if flag.choices is not None:
            kind = _choice(f.name, flag.choices)
            default = None if default is None else kind(default)
            kind = kind if default is not None else kind | None
        elif flag.columns:
            kind = str | None
        info = typer.Option(default, *flag.decls, help=text, min=flag.min, max=flag.max)
        keyword = inspect.Parameter.KEYWORD_ONLY
        return inspect.Parameter(f.name, keyword, default=info, annotation=kind)

    @staticmethod
    def value(declared: dataclasses.Field, value: Any) -> Any:
        from lstm_edge.toolchain.run_config import flag_of

        if isinstance(value, Enum):
            return value.value
        flag = flag_of(declared)
        return _columns(value) if flag is not None and flag.columns else value


def shared_options(fn: F) -> F:
    """Expand the command's `Shared` parameters into the options they stand for."""
    signature = inspect.signature(fn, eval_str=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[Shared, list[str]]] = {}
    for p in signature.parameters.values():
        if isinstance(p.default, Shared):
            expanded = p.default.parameters()
            groups[p.name] = (p.default, [q.name for q in expanded])
            params += expanded
        else:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        for group, (shared, names) in groups.items():
            declared = {f.name: f for f in dataclasses.fields(shared.of)}
            kwargs[group] = {n: Shared.value(declared[n], kwargs.pop(n)) for n in names}
        return fn(**kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper  # type: ignore[return-value]


@app.command()
@user_errors
@shared_options
def train(
    out: Path = typer.Option(
        ..., "-o", "--out", help="Run folder; it becomes a checkpoint (the best model)."
    ),
    settings: dict[str, Any] = Shared(TrainSettings),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in OUT where it stopped (same settings)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a run that OUT already holds."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train a character LSTM, or with --task forecast a sensor forecaster.

    Truncated BPTT, the state carried across chunks.

    char-lm trains to a time budget by default (--time-budget 600): a timing
    probe of a few real steps on this machine fixes the step count, and so the
    schedule, before step 1; the run records it (train.json, `lstm-edge info`),
    --resume keeps it, and --steps N reruns the run exactly.

    The data is split into contiguous train/val/test blocks (90/5/5).
    Forecast inputs and outputs are normalized with training-split
    statistics stored in the config.

    OUT ends up a checkpoint folder holding the best model by validation loss
    (config.json, model.safetensors, data.json), with metrics.jsonl, loss.png,
    train.json and resume/ (latest weights and optimizer state for --resume).
    Ctrl-C finishes the current step, saves, and exits with status 130 (a second
    Ctrl-C stops at once, keeping the last save).
    Runs unchanged under `torchrun --nproc-per-node N`.
    """
    from lstm_edge.toolchain.train import TrainOptions
    from lstm_edge.toolchain.train import train as run_training

    r = run_training(TrainOptions(out, resume=resume, force=force, progress=progress, **settings))
    if r.is_main:  # under torchrun, rank 0 alone reports
        console.print(r.report(), highlight=False)


@app.command()
@user_errors
def info(
    path: Path = typer.Argument(..., help="A checkpoint folder or an .onnx artifact."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Describe a checkpoint or an ONNX artifact and check that it is whole.

    For a checkpoint: the config, vocabulary size, parameter count, file sizes and the
    training metrics (best and last); every weight is read and checked against
    config.json. For an .onnx file: the config, quantization scheme, sizes and the
    per-tensor quantization table; every check of the runtime's load runs. A broken or
    foreign file is an error (exit status 2).
    """
    import json

    from rich.table import Table

    from lstm_edge.toolchain.info import describe, rows

    described = describe(path)
    if json_out:
        typer.echo(json.dumps(described, indent=2))
        return
    table = Table(title=f"{described['kind']}: {path}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows(described):
        table.add_row(key, value)
    console.print(table)


class RuntimeBackend(str, Enum):
    """The runtime backends (`lstm_edge.runtime.backends.BACKENDS`) as CLI choices."""

    numpy = "numpy"
    ort = "ort"
    c = "c"


# ---- export / quantize (lstm_edge.exporters) -------------------------------------------------


@app.command()
@user_errors
def export(
    ckpt_dir: Path = typer.Argument(
        ..., help="Checkpoint folder (config.json + model.safetensors), e.g. from train."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="The .onnx file to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
    check_steps: int = typer.Option(
        2000,
        "--check-steps",
        min=1,
        help="Steps (tokens or sensor rows) of the held-out test split (a seeded random "
        "stream if the checkpoint has no data record) on which the written file is "
        "compared with torch.",
    ),
    check_against: Path | None = typer.Option(
        None,
        "--check-against",
        help="Also compare the written file with this ONNX file in onnxruntime (e.g. your "
        "own torch.onnx.export of the module given to from_torch); exit 1 if they differ.",
    ),
) -> None:
    """Export a checkpoint to streaming float ONNX, then check the file against torch.

    The graph takes tokens (char-lm) or raw feature rows (forecast), batch x
    time, and the state h0/c0, and returns logits or raw forecasts and the next
    state hn/cn. After writing, the file is checked: onnx.checker with shape
    inference, then onnxruntime vs torch as one prefill and as single steps
    (max abs error <= 1e-4: logits, or forecasts in target std units). A
    forecast checkpoint whose data is available also gets the anomaly
    calibration for `lstm-edge detect`. If the check fails, nothing is left
    under OUT and the exit status is 1.
    """
    from lstm_edge.toolchain.export import export_checkpoint

    r = export_checkpoint(ckpt_dir, out, force=force, check_steps=check_steps)
    console.print(
        f"wrote {r.path} ({r.bytes:,} bytes); checked {r.steps_checked} steps of {r.stream}: "
        f"max abs {r.unit} vs torch {r.max_abs_err_prefill:.2g} (prefill), "
        f"{r.max_abs_err_steps:.2g} (single steps)",
        highlight=False,
    )
    if check_against is not None:
        from lstm_edge.exporters.import_check import check_artifact_against

        prefill, steps = check_artifact_against(r.path, check_against)
        console.print(
            f"checked {steps.steps} steps against {check_against} in onnxruntime: max abs "
            f"{prefill.unit} {prefill.max_abs_err:.2g} (prefill), {steps.max_abs_err:.2g} "
            "(single steps)",
            highlight=False,
        )


@app.command("import")
@user_errors
def import_(
    source: Path = typer.Argument(
        ..., help="An ONNX file from another exporter (torch.onnx.export, tf2onnx)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="The .onnx artifact to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
    check_steps: int = typer.Option(
        300, "--check-steps", min=2, help="Steps of the seeded stream checked against SOURCE."
    ),
    token_names: Path | None = typer.Option(
        None, "--token-names", help="Token models: a text file, one display name per id."
    ),
    stats: Path | None = typer.Option(
        None,
        "--stats",
        help="Feature models: a JSON file with any of features, targets, feature_mean, "
        "feature_std, target_mean, target_std (default: x0.., y0.., identity).",
    ),
) -> None:
    """Import an LSTM from another exporter as a canonical lstm-edge artifact.

    SOURCE must compute [embedding Gather | float features] -> forward LSTM
    layers -> [MatMul/Gemm (+Add) head], with any plumbing around it. The
    written file is checked against SOURCE in onnxruntime (a prefill and single
    steps, max abs error <= 1e-4); if the check fails nothing is written and
    the exit status is 1. What cannot stream is refused by name (exit 2).
    """
    from lstm_edge.toolchain.import_cli import run_import

    r = run_import(source, out, force, check_steps, token_names, stats)
    console.print(
        f"wrote {r.path} ({r.bytes:,} bytes, task {r.config.task}, {r.config.num_layers} "
        f"layer(s), hidden {r.config.hidden_size}); checked {r.steps_checked} steps against "
        f"{source} in onnxruntime ({'state fed back' if r.source_stateful else 'one call'}): "
        f"max abs {r.unit} {r.max_abs_err_prefill:.2g} (prefill), {r.max_abs_err_steps:.2g} "
        "(single steps)",
        highlight=False,
    )


class QuantScheme(str, Enum):
    int8 = "int8"
    int8_dynamic = "int8-dynamic"
    fp16 = "fp16"
    int8_full = "int8-full"


@app.command()
@user_errors
def quantize(
    model: Path = typer.Argument(..., help="A float .onnx written by `lstm-edge export`."),
    scheme: QuantScheme = typer.Option(
        ...,
        "--scheme",
        help="int8: weight-only symmetric per-channel int8, standard ONNX (DequantizeLinear), "
        "runs everywhere incl. the numpy and C backends. int8-dynamic: onnxruntime's "
        "quantize_dynamic (DynamicQuantizeLSTM): ONNX RUNTIME ONLY. fp16: float16 weights. "
        "int8-full: integer-only LSTM (int8 activations, int16 cell, integer tables) for "
        "MCUs without an FPU; needs --calibrate; numpy and C backends only.",
    ),
    out: Path = typer.Option(..., "-o", "--out", help="The .onnx file to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
    calibrate: Path | None = typer.Option(
        None,
        "--calibrate",
        help="int8-full: the checkpoint MODEL was exported from (or its run folder); the "
        "float model runs over its training split to measure the ranges of every layer's "
        "input, h and c.",
    ),
    calibration_steps: int = typer.Option(
        16384, "--calibration-steps", help="int8-full: steps of the training split to run."
    ),
) -> None:
    """Quantize a float export; print per-tensor sizes and max abs weight error.

    The scheme, the source of the scales and each tensor's max abs error go
    into the artifact's metadata; the config and source SHA-256 are kept. A
    written file that onnxruntime cannot run is not kept (exit status 1).
    """
    from lstm_edge.exporters.quantize import quantize_file, report_table

    ranges = None
    if scheme is QuantScheme.int8_full:
        if calibrate is None:
            raise typer.BadParameter(
                "int8-full needs --calibrate CHECKPOINT: the ranges of its activations come "
                "from running the float model over the training split",
                param_hint="--calibrate",
            )
        from lstm_edge.runtime.files import check_output_path
        from lstm_edge.toolchain.calibrate import calibrate as measure_ranges

        check_output_path(out, force)  # before the calibration run, not after it
        ranges = measure_ranges(model, calibrate, calibration_steps)
    elif calibrate is not None:
        raise typer.BadParameter(
            f"--calibrate applies to scheme int8-full only (not {scheme.value})",
            param_hint="--calibrate",
        )
    report = quantize_file(model, out, scheme.value, force=force, ranges=ranges)
    console.print(report_table(report))


# ---- validate / bench / pipeline (lstm_edge.toolchain.validate, .bench, .pipeline) ----------


def _wide(c: Console, width: int = 120) -> Console:
    """A console at least `width` columns wide for the result tables: in a narrow terminal
    or a log (80 columns) a line wraps, which beats rich truncating the numbers to "1.2e…"."""
    return Console(file=c.file, width=max(c.width, width))


@app.command()
@user_errors
def validate(
    ckpt_dir: Path = typer.Argument(
        ...,
        help="The checkpoint the artifacts were exported from, or the source .onnx file "
        "they were imported from (then give the stream with --text or --csv).",
    ),
    artifacts: list[Path] = typer.Argument(..., help="One or more .onnx artifacts."),
    backend: list[RuntimeBackend] = typer.Option(
        [],
        "--backend",
        "-b",
        help="Runtime backend(s) to step each artifact with (repeatable). Default: numpy and "
        "ort, skipping a backend that cannot run a scheme.",
    ),
    steps: int = typer.Option(
        5000, "--steps", min=1, help="Steps of the stream (cycled if longer than the text)."
    ),
    text: Path | None = typer.Option(
        None,
        "--text",
        help="UTF-8 text to stream instead of the checkpoint's held-out split (a token "
        "model's: whitespace-separated ids).",
    ),
    csv: Path | None = typer.Option(
        None,
        "--csv",
        help="Forecast models: a CSV (header row, the model's feature and target columns) "
        "to stream instead of the checkpoint's held-out test split.",
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Folder for report.json and the error-vs-timestep PNG."
    ),
    chunk: int = typer.Option(
        1, "--chunk", min=1, help="Tokens per runtime step call (1 validates single steps)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing report."),
) -> None:
    """Run torch and each artifact in lock-step over a stream, state carried; check tolerances.

    Per artifact and backend: max and mean output error, drift (first vs last 10%
    of the steps) and the range the cell state reached; char-lm: top-1 agreement,
    bits per character of torch vs the artifact; forecast (errors in target std
    units): MAE/RMSE vs torch and vs the truth, MASE vs (seasonal) persistence.
    Exit status 1 if any is out of its scheme's tolerance (TOLERANCES and
    FORECAST_TOLERANCES in lstm_edge/exporters/compare.py).
    """
    # Imported here so `lstm-edge --help` and the other commands do not pay for torch.
    from lstm_edge.toolchain import validate as v

    options = v.ValidateOptions(
        steps=steps,
        backends=tuple(b.value for b in backend),
        text=text,
        csv=csv,
        chunk=chunk,
        report_dir=report,
        force=force,
    )
    # Nothing is written until the end: Ctrl-C (exit 130, see user_errors) leaves no report.
    result = v.validate(ckpt_dir, artifacts, options, console=err_console)
    _wide(console, 150).print(v.render_table(result))  # the forecast table has 11 columns
    for note in result.skipped:
        console.print(f"skipped {note}", highlight=False)
    if report is not None:
        console.print(f"wrote {report / v.REPORT_FILE} and {report / v.PLOT_FILE}", highlight=False)
    console.print(v.render_verdict(result), highlight=False)
    if not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
@user_errors
def detect(
    model: Path = typer.Argument(..., help="A forecast .onnx artifact (float or quantized)."),
    csv: Path | None = typer.Option(
        None,
        "--csv",
        help="A CSV with the model's feature and target columns. Default: the built-in "
        "signal's held-out rows (val + test of its default size and seed).",
    ),
    label_column: str | None = typer.Option(
        None, "--label-column", help="CSV column of 0/1 fault labels (for precision/recall)."
    ),
    time_column: str | None = typer.Option(
        None, "--time-column", help="CSV time column (checked to increase, not a feature)."
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Anomaly score threshold. Default: the artifact's calibrated one."
    ),
    backend: RuntimeBackend = typer.Option(
        RuntimeBackend.ort, "--backend", help="Runtime backend."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for scores.csv, report.json and detect.png."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files in --out."),
) -> None:
    """Flag anomalies: steps whose forecast error is far outside the training residuals.

    Score of a step = max over targets of |forecast - actual| / residual_scale, with
    the scales and default threshold calibrated on the training split at export
    (see lstm_edge/toolchain/forecast_eval.py). Prints the flagged runs and, with
    fault labels, event-level recall and precision. Runs without torch.
    """
    from lstm_edge.toolchain import detect as d

    options = d.DetectOptions(
        csv=csv,
        label_column=label_column,
        time_column=time_column,
        threshold=threshold,
        backend=backend.value,
        out=out,
        force=force,
    )
    result = d.detect(model, options)
    for item in d.render(result):
        _wide(console).print(item, highlight=False)
    if out is not None:
        names = ", ".join((d.SCORES_FILE, d.REPORT_FILE, d.PLOT_FILE))
        console.print(f"wrote {names} to {out}", highlight=False)


@app.command()
@user_errors
def bench(
    artifacts: list[Path] = typer.Argument(..., help="One or more .onnx artifacts of one model."),
    backend: list[RuntimeBackend] = typer.Option(
        [], "--backend", "-b", help="Runtime backend(s) (repeatable). Default: ort and numpy."
    ),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="Checkpoint for the torch baseline (default: the artifact's float weights).",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON."),
    force: bool = typer.Option(False, "--force", help="Overwrite the --json file."),
    repeats: int = typer.Option(7, "--repeats", min=1, help="Timed repeats per measurement."),
    threads: int = typer.Option(
        1,
        "--threads",
        min=1,
        help="Threads for numpy's BLAS, torch and the ort backend (the plain session.run "
        "loop keeps onnxruntime's defaults).",
    ),
) -> None:
    """Per-step latency, throughput, process cost and size, side by side with the baselines.

    Baselines: PyTorch eager (default and oneDNN off), a plain onnxruntime
    session.run loop, and one BLAS matrix-vector product per layer (the limit).
    Medians with p10-p90 over repeats, and ratios.
    """
    from lstm_edge.runtime.files import check_output_path
    from lstm_edge.toolchain import bench as b

    if json_out is not None:
        check_output_path(json_out, force)  # before minutes of timing, not after
    options = b.BenchOptions(
        backends=tuple(b.value for b in backend),
        checkpoint=checkpoint,
        repeats=repeats,
        process_repeats=min(repeats, 3),  # a fresh torch process takes seconds
        threads=threads,
    )
    result = b.bench(artifacts, options, console=err_console)
    for table in b.render_tables(result):
        _wide(console).print(table)
    for note in result.notes:
        console.print(note, highlight=False)
    if json_out is not None:
        b.write_json(result, json_out)
        console.print(f"wrote {json_out}", highlight=False)


# ---- predictive typing (lstm_edge.runtime.suggest, .toolchain.demo, .toolchain.typing_eval) --


@app.command()
@user_errors
def suggest(
    model: Path = typer.Argument(..., help="An .onnx artifact (float or quantized)."),
    text: str = typer.Argument(..., help="The text typed so far."),
    k: int = typer.Option(3, "-k", min=1, help="How many completions."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    backend: RuntimeBackend = typer.Option(
        RuntimeBackend.ort, "--backend", help="Runtime backend."
    ),
) -> None:
    """The k most probable completions of the current (or next) word, with probabilities.

    A suggestion's probability is P(its characters, then a space or punctuation | text);
    see lstm_edge.runtime.suggest. The time covers the prefill of TEXT plus the beam search.
    """
    import json
    import time

    from lstm_edge.runtime import Suggester, load
    from lstm_edge.toolchain.typing_eval import scheme_label

    suggester = Suggester(load(model, backend=backend.value))
    t0 = time.perf_counter()
    suggester.type(text)
    shown = suggester.suggestions(k)
    ms = (time.perf_counter() - t0) * 1e3
    if json_out:
        out = {
            "text": text,
            "suggestions": [s.to_dict() for s in shown],
            "ms": ms,
            "step_calls": suggester.step_calls,
        }
        typer.echo(json.dumps(out, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=f"completions of {text[-40:]!r}")
    for col, justify in (("#", "right"), ("word", "left"), ("insert", "left"), ("P", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for i, s in enumerate(shown, 1):
        table.add_row(str(i), s.word, s.completion, f"{s.probability:.2%}")
    console.print(table)
    if not shown:
        console.print("no suggestion (no word to complete here)", highlight=False)
    console.print(
        f"{ms:.2f} ms ({suggester.step_calls} step calls incl. start context), "
        f"{model.name} ({scheme_label(suggester.model.scheme)}, {backend.value} backend)",
        highlight=False,
    )


@app.command()
@user_errors
def demo(
    model: Path | None = typer.Argument(
        None, help="An .onnx artifact. Default: runs/default/model.int8.onnx."
    ),
    k: int = typer.Option(3, "-k", min=1, max=3, help="How many suggestions to show."),
    backend: RuntimeBackend = typer.Option(
        RuntimeBackend.ort, "--backend", help="Runtime backend."
    ),
    auto_space: bool = typer.Option(
        True,
        "--auto-space/--no-auto-space",
        help="Accepting inserts the word and a space, which punctuation typed next replaces "
        "(phone keyboards); --no-auto-space inserts the rest of the word only.",
    ),
) -> None:
    """Interactive predictive typing in the terminal (Tab/F1-F3 or Alt-1..3 accept)."""
    from lstm_edge.toolchain.demo import run_demo

    text = run_demo(model, backend=backend.value, k=k, auto_space=auto_space)
    if text:
        typer.echo(text)


@app.command()
@user_errors
def web(
    model: Path = typer.Argument(
        ..., help="A char-lm .onnx artifact: float (model.onnx) or int8 (model.int8.onnx)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the static site."),
    serve: bool = typer.Option(
        False, "--serve", help="Then serve the folder on 127.0.0.1 until Ctrl-C."
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port for --serve."),
    force: bool = typer.Option(
        False, "--force", help="Write beside other files in OUT (an earlier site is replaced)."
    ),
) -> None:
    """Predictive typing in the browser: a static site (index.html, engine.js, the model as
    WebAssembly) that runs the C library and the typing engine in the page.

    Needs clang, wasm-ld and wasi-libc (Debian: apt-get install clang-19 lld-19 wasi-libc;
    an older clang builds only the 128-bit SIMD module, not the relaxed-SIMD one).
    See lstm_edge/toolchain/web.py.
    """
    from lstm_edge.toolchain import web as site_builder
    from lstm_edge.toolchain.typing_eval import scheme_label

    server = site_builder.bind(out, port) if serve else None
    try:
        site = site_builder.write_site(model, out, force=force)
    except BaseException:
        if server is not None:
            server.server_close()
        raise
    console.print(
        f"wrote {len(site.files)} files to {site.out_dir} (model.wasm {site.wasm_bytes:,} bytes, "
        f"{scheme_label(site.scheme)}, {site.vocab_size} characters)",
        highlight=False,
    )
    if server is not None:
        site_builder.serve(
            server, lambda url: console.print(f"serving {url} (Ctrl-C stops)", highlight=False)
        )
    else:
        console.print(f"serve it with --serve, or any static file server of {out}")


@app.command("eval-typing")
@user_errors
def eval_typing(
    models: list[Path] = typer.Argument(
        ..., help="One or more .onnx artifacts, e.g. model.onnx model.int8.onnx (side by side)."
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Type this checkpoint's held-out (test) split."
    ),
    text_file: Path | None = typer.Option(None, "--text", help="Type this UTF-8 text file."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the reports as JSON."),
    force: bool = typer.Option(False, "--force", help="Overwrite the --json file."),
    k: int = typer.Option(3, "-k", min=1, help="Suggestions shown per keystroke."),
    max_chars: int = typer.Option(
        20_000, "--max-chars", min=1, help="Type at most this many characters."
    ),
    backend: RuntimeBackend = typer.Option(
        RuntimeBackend.ort, "--backend", help="Runtime backend."
    ),
) -> None:
    """Simulate a user typing held-out text with suggestions: keystroke savings and more.

    Without --checkpoint/--text, the checkpoint folder holding the first model is used.
    Both conventions side by side: accepting costs 1 keystroke as soon as the word is
    among the k shown; phone: it inserts the rest of the word and a space (punctuation
    replaces the space, next words are offered before the first letter); no-space: the
    rest of the word only. See lstm_edge.toolchain.typing_eval.
    """
    from rich.progress import Progress

    from lstm_edge.toolchain import typing_eval as te

    text, source = te.find_text(models, checkpoint, text_file, max_chars)
    if json_out is not None:
        te.check_json_path(json_out, force)
    reports = []
    with Progress(console=err_console, transient=True) as progress:
        for path in models:
            task = progress.add_task(f"typing with {path.name}", total=len(text))
            reports.append(
                te.evaluate_model(
                    path,
                    text,
                    backend=backend.value,
                    k=k,
                    progress=lambda n, task=task: progress.update(task, completed=n),
                )
            )
    console.print(te.report_table(reports, source))
    if json_out is not None:
        te.write_json(json_out, reports, source, force)
        console.print(f"wrote {json_out}", highlight=False)


@app.command()
@user_errors
@shared_options
def pipeline(
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the bundle."),
    data: dict[str, Any] = Shared(
        PipelineOptions,
        *("task", "corpus", "csv", "target", "features", "time_column", "label_column"),
        *("horizon", "season", "target_kind", "ar_lags", "text_column"),
        pipeline=True,
    ),
    from_ckpt: Path | None = typer.Option(
        None, "--from", help="Reuse this checkpoint instead of training."
    ),
    scheme: QuantScheme = typer.Option(
        QuantScheme.int8,
        "--scheme",
        help="Quantization scheme (see `lstm-edge quantize`); int8-full is calibrated on the "
        "run's own checkpoint (its training split).",
    ),
    model: dict[str, Any] = Shared(
        PipelineOptions,
        *("steps", "time_budget", "hidden", "layers", "embed", "seq_len", "batch_size"),
        pipeline=True,
    ),
    validate_steps: int = typer.Option(
        5000, "--validate-steps", min=1, help="Steps of held-out data to validate on."
    ),
    run_bench: bool = typer.Option(True, "--bench/--no-bench", help="Run the short bench."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle in OUT."),
) -> None:
    """Train (or reuse --from), export, quantize, validate, bench: a deployable bundle in OUT.

    OUT gets model.onnx, model.SCHEME.onnx, validation/ (report.json, plot),
    bench.json and SUMMARY.md (sizes, verdict, bench figures, how to load it);
    forecast bundles also get detect/ (anomaly scores of the quantized model).
    A failing stage stops the pipeline with its message and exit status
    (1 a check failed, 2 bad input, 130 interrupted); earlier outputs stay.
    char-lm trains to a time budget by default (see `lstm-edge train --help`).
    """
    from lstm_edge.toolchain.pipeline import run_pipeline

    options = PipelineOptions(
        out=out,
        from_checkpoint=from_ckpt,
        scheme=scheme.value,
        validate_steps=validate_steps,
        bench=run_bench,
        force=force,
        **data,
        **model,
    )
    run_pipeline(options, console=err_console)  # a StageFailed carries its exit status


# ---- codegen (lstm_edge.exporters.c_codegen) -------------------------------------------------


class CodegenTarget(str, Enum):
    host = "host"
    cortex_m4 = "cortex-m4"
    cortex_m3 = "cortex-m3"


@app.command()
@user_errors
def codegen(
    model: Path = typer.Argument(
        ...,
        help="A float, fp16, int8 or int8-full .onnx artifact (int8-full: the integer "
        "library, lstm_edge_int.h).",
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the C bundle."),
    name: str | None = typer.Option(
        None, "--name", help="C name of the model (sanitized). Default: the file's stem."
    ),
    target: CodegenTarget = typer.Option(
        CodegenTarget.host,
        "--target",
        help="host: build ./NAME with the system C compiler. cortex-m4: build NAME.elf for "
        "QEMU's mps2-an386 (arm-none-eabi-gcc, newlib) and print its section sizes. "
        "cortex-m3: the same for mps2-an385 (no FPU: -mfloat-abi=soft).",
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Run the build (host, or the ELF under qemu-system-arm) and compare its outputs "
        "(logits or forecasts) with the numpy reference (and torch, given --checkpoint). "
        "Exit 1 if out of tolerance.",
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Stream its held-out split and compare with its torch model."
    ),
    steps: int = typer.Option(
        400, "--steps", min=2, help="Steps (tokens or sensor rows) in the example's stream."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite bundle files in OUT."),
) -> None:
    """Emit the model as C (NAME_model.c/.h), the C library, an example and a Makefile.

    Prints the flash (weights, library code) and RAM (state per stream, scratch)
    the model needs. See lstm_edge/exporters/c_codegen.py and runtime/c/lstm_edge.h.
    """
    from lstm_edge.exporters import c_codegen as cg

    options = cg.CodegenOptions(
        name=name, target=target.value, check=check, steps=steps, force=force
    )
    if checkpoint is None:  # no torch for a plain codegen
        report = cg.codegen(model, out, options)
    else:
        from lstm_edge.toolchain.codegen import codegen as codegen_with_checkpoint

        report = codegen_with_checkpoint(model, out, options, checkpoint)
    console.print(cg.report_table(report))
    console.print(cg.schemes_table(report))
    console.print(f"wrote {len(report.files)} files to {report.out_dir}; built {report.binary}")
    if report.checks:
        console.print(cg.checks_table(report))
        if not report.passed:
            raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
@user_errors
def classify(
    model: Path = typer.Argument(..., help="A classify .onnx artifact (float or quantized)."),
    texts: list[str] = typer.Argument(
        None, help="Text model: texts to classify (one sequence of characters each)."
    ),
    csv: Path | None = typer.Option(
        None,
        "--csv",
        help="A long-format CSV: a 'sequence' id column and the model's feature columns, one "
        "row per step (a label column is optional; with it, accuracy is shown); for a text "
        "model a CSV with a text column, one text per row.",
    ),
    threshold: float = typer.Option(
        0.9, "--threshold", help="Probability from which a running prediction counts as confident."
    ),
    label_column: str = typer.Option("label", "--label-column", help="CSV label column."),
    time_column: str | None = typer.Option(
        None, "--time-column", help="CSV time column (checked to increase within a sequence)."
    ),
    text_column: str | None = typer.Option(
        None, "--text-column", help="Text model: the CSV's text column (default 'text')."
    ),
    backend: RuntimeBackend = typer.Option(
        RuntimeBackend.ort, "--backend", help="Runtime backend."
    ),
) -> None:
    """Classify each sequence of a CSV (or, for a text model, each TEXT): the predicted
    class, its probabilities and the row (character) from which the running prediction was
    confident. Runs without torch."""
    from lstm_edge.toolchain import classify_predict as cp

    if (csv is None) == (not texts):
        from lstm_edge.runtime.errors import InputError

        raise InputError("give either --csv FILE or TEXT arguments (a text model), not both")
    if csv is None:
        predictions = cp.predict_texts(model, texts, threshold=threshold, backend=backend.value)
    else:
        predictions = cp.predict_csv(model, csv, threshold=threshold, backend=backend.value,
                                     label_column=label_column, time_column=time_column,
                                     text_column=text_column)  # fmt: skip
    _wide(console).print(cp.render(predictions, threshold))
