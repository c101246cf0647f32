"""`validate`'s lock-step run: the torch model and each artifact x backend over one stream.

Both sides see the same inputs with their recurrent state carried. The torch side runs in
chunks (`torch_outputs`), each artifact is stepped through the runtime's public API
(`runtime_outputs`); `error_stats` is the task-independent part of a pair's summary
(error max/mean/drift, cell range, speed). What a step's error is and what the task
metric is belong to the task's evaluation half (toolchain/tasks/<module>_eval.py).
torch is imported where the torch side runs, so those halves stay importable without it
(`detect` loads no torch).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from lstm_edge.runtime.config import META_SOURCE_SHA256, ModelConfig
from lstm_edge.runtime.errors import LstmEdgeError, UnsupportedModelError
from lstm_edge.runtime.integer import cell_values

if TYPE_CHECKING:
    import torch

    from lstm_edge.toolchain.checkpoint import Checkpoint

# Drift compares the mean error over the first and the last DRIFT_FRACTION of the steps.
DRIFT_FRACTION = 0.1
# The torch side runs over the stream in chunks of this many steps: nn.LSTM over a chunk
# with the state carried computes exactly the same recurrence as single steps (same
# equations, state handed from chunk to chunk), and is ~100x faster than stepping torch
# one step at a time. The artifacts are the ones stepped, since their per-step path is
# what this command validates.
TORCH_CHUNK = 4096


class ValidationInputError(LstmEdgeError):
    """Bad input to `validate` (no usable text, an artifact from another model, ...)."""


def check_steps(steps: int) -> None:
    if steps < 1:
        raise ValidationInputError(f"--steps is {steps} (expected at least 1)")


@dataclass(frozen=True)
class PairResult:
    summary: Any  # the task's summary (PairSummary | ForecastSummary)
    tolerance: Any  # the task's tolerance (Tolerance | ForecastTolerance)
    failures: list[str]
    trace: Any  # the task's per-step trace (StepTrace | ForecastTrace)

    @property
    def passed(self) -> bool:
        return not self.failures


# ---- the torch side ------------------------------------------------------------------------


def torch_outputs(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    """Outputs [len(inputs), output_size] of the torch model over the stream, state carried.

    `inputs`: token ids int64 [steps] (char-lm) or raw features float32 [steps, F]."""
    import torch

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
    import torch

    with warnings.catch_warnings():
        # torch warns about TF32 on Intel GPUs whenever the oneDNN flags are touched.
        warnings.simplefilter("ignore", UserWarning)
        with torch.backends.mkldnn.flags(enabled=enabled):
            yield


# ---- the runtime side ----------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeRun:
    logits: np.ndarray  # float32 [steps, output_size] (logits or forecasts)
    cell_absmax: np.ndarray  # float32 [steps]
    cell_min: float
    cell_max: float
    seconds: float


def runtime_outputs(rt_model: Any, inputs: np.ndarray, chunk: int, progress=None) -> RuntimeRun:
    """Step a runtime model over `inputs` (`chunk` steps per call), state carried.

    `inputs[start:start + 1]` is one step of batch 1 for both tasks (tokens [1], features
    [1, F]); `inputs[None, start:end]` is batch 1 over time."""
    n = len(inputs)
    logits = np.empty((n, rt_model.config.output_size), dtype=np.float32)
    cell_absmax = np.full(n, np.nan, dtype=np.float32)
    cmin, cmax = math.inf, -math.inf
    state = rt_model.initial_state(1)
    # int8-full: the state holds codes; the range shown is of the real cell values
    integer = getattr(getattr(rt_model, "artifact", None), "integer", None)
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
        c = state.c if integer is None else cell_values(integer, state.c)
        lo, hi = float(c.min()), float(c.max())
        cmin, cmax = min(cmin, lo), max(cmax, hi)
        cell_absmax[end - 1] = max(-lo, hi)
        if progress is not None and k % every == 0:
            progress(end)
    seconds = time.perf_counter() - t0
    if progress is not None:
        progress(n)
    return RuntimeRun(logits, cell_absmax, cmin, cmax, seconds)


def error_stats(abs_err: np.ndarray, run: RuntimeRun) -> dict[str, Any]:
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


# ---- loading the artifacts and stepping them -----------------------------------------------


def load_runtime(path: Path, backend: str) -> Any:
    from lstm_edge import runtime

    return runtime.load(path, backend=backend)


def config_differences(a: ModelConfig, b: ModelConfig) -> str:
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


def check_same_model(rt_model: Any, ckpt: Checkpoint, path: Path, console: Console) -> None:
    if rt_model.config != ckpt.config:
        raise ValidationInputError(
            f"{path} was not exported from {ckpt.path}: its config differs from the "
            f"checkpoint's (artifact vs checkpoint: "
            f"{config_differences(rt_model.config, ckpt.config)})"
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


def load_runs(
    ckpt: Checkpoint,
    artifacts: Sequence[Path],
    backends: Sequence[str],
    explicit: bool,
    tolerances: Mapping[str, Any],
    console: Console,
) -> tuple[list[tuple[Path, str, Any]], list[str]]:
    """Load every artifact x backend up front, so that a bad artifact fails before minutes
    of stepping: (path, backend, runtime model) runs and the skipped pairs' notes. A
    default (not `explicit`) backend that cannot run an artifact's scheme is skipped."""
    runs: list[tuple[Path, str, Any]] = []
    skipped: list[str] = []
    for path in artifacts:
        for backend in backends:
            try:
                rt_model = load_runtime(Path(path), backend)
            except UnsupportedModelError as e:
                if explicit:
                    raise
                skipped.append(f"{path} ({backend}): {e}")
                continue
            check_same_model(rt_model, ckpt, Path(path), console)
            if rt_model.scheme not in tolerances:
                raise ValidationInputError(
                    f"{path}: no tolerance is defined for scheme {rt_model.scheme!r} "
                    f"(known: {sorted(tolerances)})"
                )
            runs.append((Path(path), backend, rt_model))
    if not runs:
        raise ValidationInputError("no artifact could be run by any backend: " + "; ".join(skipped))
    return runs, skipped


def run_pairs(
    ckpt: Checkpoint,
    stream: Any,
    runs: Sequence[tuple[Path, str, Any]],
    chunk: int,
    task: Any,
    tolerances: Mapping[str, Any],
    console: Console,
) -> tuple[float, list[PairResult]]:
    """torch over the stream once, then each run stepped over it and judged by the task's
    evaluation half `task`: (torch seconds, one PairResult per run)."""
    t0 = time.perf_counter()
    reference = getattr(ckpt, "reference", None)  # a source ONNX file (validate_source)
    ref = reference(stream.inputs) if reference else task.reference_outputs(ckpt.model, stream)
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
            bar = progress.add_task(f"{path.name} ({backend})", total=stream.steps)
            run = task.artifact_outputs(
                rt_model,
                stream,
                chunk,
                progress=lambda done, bar=bar: progress.update(bar, completed=done),
            )
            trace, summary = task.evaluate(
                ref, run, stream, ckpt.config,
                artifact=str(path), scheme=rt_model.scheme, backend=backend,
            )  # fmt: skip
            tol = tolerances[rt_model.scheme]
            results.append(PairResult(summary, tol, task.check(summary, tol), trace))
    return torch_seconds, results
