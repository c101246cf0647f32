"""`validate`'s report: report.json, the error-vs-timestep plot and the console tables.

The JSON and the plot are shared by every task; the table's rows are the task's
(`render_table` asks the task's evaluation half), framed alike (`table_frame`).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from lstm_edge.runtime.files import atomic_write, atomic_write_json
from lstm_edge.toolchain.validate_run import DRIFT_FRACTION, PairResult

REPORT_FILE = "report.json"
PLOT_FILE = "error_vs_timestep.png"


def _evaluation(task: str) -> Any:
    from lstm_edge.toolchain import tasks

    return tasks.evaluation(task)


@dataclass
class ValidationReport:
    checkpoint: str
    stream: Any  # Stream | SeriesStream
    torch_seconds: float
    results: list[PairResult]
    skipped: list[str]  # "artifact (backend): reason" for default backends that cannot run it
    task: str  # the config's task name (picks the task's table and plot label)

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
                    # per_step only for a model of each step ahead (others keep their keys)
                    **{k: v for k, v in asdict(r.summary).items() if k != "per_step" or v},
                    "tolerance": asdict(r.tolerance),
                    "passed": r.passed,
                    "failures": r.failures,
                }
                for r in self.results
            ],
        }


# ---- report.json and the plot --------------------------------------------------------------


def write_report(report: ValidationReport, folder: Path) -> tuple[Path, Path]:
    """report.json and the error-vs-timestep plot into `folder` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / REPORT_FILE
    atomic_write_json(json_path, report.to_dict())  # inf/NaN of a failed run included
    png_path = folder / PLOT_FILE
    fig = plot_errors(report)
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    _evaluation(report.task).write_extra(report, folder)
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
    label = _evaluation(report.task).error_label
    ax_err.set_ylabel(f"{label} (solid: bin max, dotted: bin mean)")
    title = f"{report.checkpoint}: {report.stream.steps} steps"
    ax_err.set_title(title + (" (stream cycled)" if report.stream.cycled else ""))
    ax_err.legend(fontsize="small")
    ax_cell.set_ylabel("max |cell state|")
    ax_cell.set_xlabel("timestep")
    return fig


# ---- the console table ---------------------------------------------------------------------


def table_frame(report: ValidationReport, cols: tuple[str, ...]) -> Table:
    """An empty validation table with `cols` (first and last left-aligned)."""
    table = Table(title=f"validation over {report.stream.steps} steps")
    for col in cols:
        table.add_column(col, justify="left" if col in (cols[0], cols[-1]) else "right")
    return table


def verdict_cell(r: PairResult) -> str:
    return "[green]pass[/]" if r.passed else "[red]FAIL[/]"


def pair_name(r: PairResult) -> str:
    """A row's first cell: the artifact's file name and the backend."""
    return escape(f"{Path(r.summary.artifact).name} ({r.summary.backend})")


def render_table(report: ValidationReport) -> Table:
    """One row per artifact x backend, in the task's columns; every number is also in
    report.json."""
    return _evaluation(report.task).render_table(report)


# ---- markdown (pipeline's SUMMARY.md) ------------------------------------------------------


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def verdict_text(r: Any) -> str:
    return "pass" if r.passed else "FAIL: " + "; ".join(r.failures)


def render_verdict(report: ValidationReport) -> str:
    if report.passed:
        return f"[green]validation passed[/] ({len(report.results)} artifact x backend runs)"
    lines = ["[red]validation failed:[/]"]
    for r in report.results:
        if not r.passed:
            s = r.summary
            lines.append(escape(f"  {s.artifact} ({s.backend}): " + "; ".join(r.failures)))
    return "\n".join(lines)
