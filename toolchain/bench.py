"""`lstm-edge bench`: the runtime against the baselines a user would otherwise use, in one run.

Everything is measured side by side in one process on the same artifact and machine and
reported as medians with their spread (p10/p90 over repeats) and as ratios:

- per-step latency, batch 1, state carried: each runtime backend; PyTorch eager (as a user
  writes it, and with oneDNN off, whose LSTM path is slow for single steps); a plain
  onnxruntime `session.run` loop (default session options, the state fed back); and the
  practical limit, one BLAS matrix-vector product per layer over the same weights + head;
- throughput with 1, 8 and 64 streams batched, and a 512-token prefill;
- wall time and peak RSS of a fresh process that imports the runtime, loads the model and
  steps once, against the same with torch;
- file size per artifact.

The torch baseline is the checkpoint's model if `--checkpoint` is given; otherwise a
EdgeLSTM built from an artifact's (dequantized) float weights, with the exporter's gate
permutation reversed (`onnx_to_torch_gates`). Its latency does not depend on the values.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lstm_edge.exporters.onnx_export import onnx_to_torch_gates
from lstm_edge.runtime.config import (
    HEAD_BIAS,
    HEAD_WEIGHT,
    INPUT_C0,
    INPUT_H0,
    INPUT_HISTORY,
    OUTPUT_CN,
    OUTPUT_HISTORY,
    OUTPUT_HN,
    ModelConfig,
    lstm_b,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.errors import LstmEdgeError, UnsupportedModelError
from lstm_edge.toolchain.blas import blas_threads
from lstm_edge.toolchain.model import EdgeLSTM, build_model, torch_stages
from lstm_edge.toolchain.validate_run import onednn

DEFAULT_BACKENDS = ("ort", "numpy")
DEFAULT_REPEATS = 7
STREAMS = (1, 8, 64)
PREFILL = 512
# Each repeat runs a loop long enough (~this many seconds) that timer resolution and
# one-off hiccups are small against it; the loop length is calibrated per item.
TARGET_REPEAT_SECONDS = 0.05
SEED = 0


class BenchInputError(LstmEdgeError):
    """Bad input to `bench` (nothing runnable, no weights for the torch baseline, ...)."""


# ---- timing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Seconds per iteration: median and the 10th/90th percentiles over repeats."""

    median: float
    p10: float
    p90: float
    repeats: int
    iterations: int  # per repeat


ZERO_STATS = Stats(0.0, 0.0, 0.0, 0, 0)  # a row's stats before it is measured


def _calibrate(body: Callable[[int], None], target: float) -> int:
    """Warm `body` up, then find k so that body(k) takes about `target` seconds."""
    body(2)  # warm-up: first-call allocations, lazy initialisation, caches
    k = 1
    while True:
        t0 = time.perf_counter()
        body(k)
        dt = time.perf_counter() - t0
        if dt >= target / 4 or k >= 1 << 16:
            break
        k *= 4
    return max(1, int(k * target / max(dt, 1e-9)))


def time_interleaved(
    bodies: Sequence[Callable[[int], None]],
    repeats: int,
    target: float = TARGET_REPEAT_SECONDS,
) -> list[Stats]:
    """Time each `body(k)` (which runs k iterations) `repeats` times, in rounds: every
    round runs each body once, so a slow spell of a shared machine (measured: 30-50% swings
    over seconds on this VM) hits all of them alike and their ratios stay put. The order
    rotates from round to round. Seconds per iteration for each body."""
    ks = [_calibrate(body, target) for body in bodies]
    samples: list[list[float]] = [[] for _ in bodies]
    for r in range(repeats):
        for j in range(len(bodies)):
            i = (j + r) % len(bodies)
            t0 = time.perf_counter()
            bodies[i](ks[i])
            samples[i].append((time.perf_counter() - t0) / ks[i])
    stats = []
    for k, xs in zip(ks, samples, strict=True):
        p10, med, p90 = np.percentile(xs, [10, 50, 90])
        stats.append(Stats(float(med), float(p10), float(p90), repeats, k))
    return stats


# ---- threads -------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- torch baseline ------------------------------------------------------------------------


def torch_from_weights(config: ModelConfig, weights: dict[str, np.ndarray]) -> EdgeLSTM:
    """An EdgeLSTM holding an artifact's float weights (logical ONNX names and layouts)."""
    H = config.hidden_size
    sd: dict[str, torch.Tensor] = {
        "head.weight": torch.from_numpy(np.ascontiguousarray(weights[HEAD_WEIGHT].T)),
        "head.bias": torch.from_numpy(np.array(weights[HEAD_BIAS])),
    }
    stages = torch_stages(config)
    for key, name in stages.weights.items():
        sd[key] = torch.from_numpy(np.array(weights[name]))
    norm = config.spec.config_tensors(config)
    for key, name in stages.buffers.items():
        sd[key] = torch.from_numpy(norm[name])
    for layer in range(config.num_layers):
        b = weights[lstm_b(layer)][0]
        for name, value in (
            (f"lstm.weight_ih_l{layer}", weights[lstm_w(layer)][0]),
            (f"lstm.weight_hh_l{layer}", weights[lstm_r(layer)][0]),
            (f"lstm.bias_ih_l{layer}", b[: 4 * H]),  # ONNX B = [Wb, Rb]
            (f"lstm.bias_hh_l{layer}", b[4 * H :]),
        ):
            sd[name] = torch.from_numpy(np.ascontiguousarray(onnx_to_torch_gates(value)))
    model = build_model(config)
    model.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()})
    return model.eval()


# ---- results -------------------------------------------------------------------------------


@dataclass
class LatencyRow:
    name: str
    kind: str  # runtime | c_direct | torch | session_run | matvec
    artifact: str | None
    backend: str | None
    stats: Stats
    # latency / baseline latency; None where the baseline was not measured.
    vs_torch: float | None = None
    vs_session_run: float | None = None
    vs_matvec: float | None = None
    # The c backend's Model.step over the C library step alone on the same artifact (the
    # runtime's own cost), as a ratio and in µs; None for the other rows.
    vs_c_step: float | None = None
    above_c_step_us: float | None = None
    # A C library step (direct call) over the float32 artifact's C step in the same run
    # (int8, int8-full vs none); None for other rows or without a float artifact.
    vs_float_c_step: float | None = None
    # The ort backend's Model.step over a plain session.run loop with the same thread count.
    vs_session_run_same_threads: float | None = None


@dataclass
class ThroughputRow:
    name: str
    artifact: str | None
    mode: str  # "streams" or "prefill"
    tokens_per_call: int  # streams in the batch, or prefill length
    stats: Stats  # seconds per call

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_per_call / self.stats.median


@dataclass
class ProcessRow:
    name: str
    wall_s: Stats  # spawn to exit, interpreter start-up included
    import_s: float  # median, measured inside the child
    peak_rss_mb: float  # median of the child's own peak RSS (VmHWM)


@dataclass
class BenchReport:
    machine: dict[str, Any]
    model: dict[str, Any]
    settings: dict[str, Any]
    latency: list[LatencyRow] = field(default_factory=list)
    throughput: list[ThroughputRow] = field(default_factory=list)
    process: list[ProcessRow] = field(default_factory=list)
    sizes: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "model": self.model,
            "settings": self.settings,
            "latency": [
                {**_stats_us(r.stats), **{k: v for k, v in asdict(r).items() if k != "stats"}}
                for r in self.latency
            ],
            "throughput": [
                {
                    "name": r.name,
                    "artifact": r.artifact,
                    "mode": r.mode,
                    "tokens_per_call": r.tokens_per_call,
                    "median_tokens_per_s": r.tokens_per_second,
                    # The fastest repeats give the highest throughput: p10 time -> p90 rate.
                    "p10_tokens_per_s": r.tokens_per_call / r.stats.p90,
                    "p90_tokens_per_s": r.tokens_per_call / r.stats.p10,
                    **_stats_us(r.stats),
                }
                for r in self.throughput
            ],
            "process": [
                {
                    "name": r.name,
                    "median_wall_s": r.wall_s.median,
                    "p10_wall_s": r.wall_s.p10,
                    "p90_wall_s": r.wall_s.p90,
                    "import_s": r.import_s,
                    "peak_rss_mb": r.peak_rss_mb,
                }
                for r in self.process
            ],
            "sizes": self.sizes,
            "notes": self.notes,
        }


def _stats_us(s: Stats) -> dict[str, Any]:
    return {
        "median_us": s.median * 1e6,
        "p10_us": s.p10 * 1e6,
        "p90_us": s.p90 * 1e6,
        "repeats": s.repeats,
        "iterations": s.iterations,
    }


@dataclass(frozen=True)
class BenchOptions:
    backends: tuple[str, ...] = ()  # empty: DEFAULT_BACKENDS, skipping unsupported ones
    checkpoint: Path | None = None
    repeats: int = DEFAULT_REPEATS
    streams: tuple[int, ...] = STREAMS
    prefill: int = PREFILL
    process: bool = True  # measure the fresh-process import/RSS rows
    process_repeats: int = 3  # fresh processes per row (torch takes seconds each)
    # Threads for everything measured except the plain session.run loop (default options
    # by definition): numpy's BLAS, torch, the ort backend. 1 is the runtime's default and
    # the fair setting on a small shared machine; the value is recorded in the JSON.
    threads: int = 1
    target_seconds: float = TARGET_REPEAT_SECONDS


# ---- the measured loops --------------------------------------------------------------------


def input_cycle(config: ModelConfig, batch: int, n: int = 64) -> list[np.ndarray]:
    """Pre-made inputs of one step for `batch` streams (so the timed loop allocates none):
    the task's synthetic inputs (token ids [batch] for char-lm; raw values [batch, features]
    for forecast, at the training statistics' scale). The values do not change the work
    done."""
    rows = config.spec.synthetic_inputs(config, n * batch, SEED)
    return list(rows.reshape(n, batch, *rows.shape[1:]))


def _with_time(step_inputs: np.ndarray) -> np.ndarray:
    """One step's inputs [batch, ...] as a one-step sequence [batch, 1, ...]."""
    return step_inputs[:, None]


def _sequence(config: ModelConfig, length: int) -> np.ndarray:
    """A [1, length, ...] sequence of inputs for the prefill measurements."""
    return input_cycle(config, length, n=1)[0][None]


def runtime_step_loop(model: Any, batch: int) -> Callable[[int], None]:
    toks = input_cycle(model.config, batch)
    state = [model.initial_state(batch)]

    def body(k: int) -> None:
        st = state[0]
        for i in range(k):
            _, st = model.step(toks[i % len(toks)], st)
        state[0] = st  # carried across repeats too

    return body


def runtime_prefill_loop(model: Any, length: int) -> Callable[[int], None]:
    toks = _sequence(model.config, length)
    st = model.initial_state(1)

    def body(k: int) -> None:
        for _ in range(k):
            model.step(toks, st)

    return body


def torch_step_loop(model: EdgeLSTM, batch: int, mkldnn: bool = True) -> Callable[[int], None]:
    toks = [torch.from_numpy(_with_time(t)) for t in input_cycle(model.config, batch)]
    state = [model.initial_state(batch)]

    def body(k: int) -> None:
        # As a user writes it: no_grad, the state tuple fed back each step.
        with torch.no_grad(), onednn(mkldnn):
            st = state[0]
            for i in range(k):
                _, st = model(toks[i % len(toks)], st)
            state[0] = st

    return body


def torch_prefill_loop(model: EdgeLSTM, length: int) -> Callable[[int], None]:
    toks = torch.from_numpy(_sequence(model.config, length))

    def body(k: int) -> None:
        with torch.no_grad():
            for _ in range(k):
                model(toks)

    return body


def session_run_loop(
    path: Path, config: ModelConfig, threads: int | None = None
) -> Callable[[int], None]:
    """The plain onnxruntime loop a user writes, the state fed back: default options, or
    with `threads` the ort backend's own session (its options, `threads` intra-op threads:
    for an int8 file the default options dequantize the weights on every step, which made
    the backend look faster than the loop), so the two differ only in the Python around
    `session.run`."""
    import onnxruntime as ort

    from lstm_edge.runtime.backends.ort import make_session

    if threads is None:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    else:
        sess = make_session(
            path.read_bytes(), intra_op_threads=threads, optimization="all", disable_quant_qdq=True
        )
    toks = [_with_time(t) for t in input_cycle(config, 1)]  # [1, 1(, features)]
    zeros = np.zeros((config.num_layers, 1, config.hidden_size), dtype=np.float32)
    state = [(zeros, zeros)]
    names = [o.name for o in sess.get_outputs()]  # as the backend names them (None: per call)
    history = config.spec.history_size(config)
    if history:  # a forecast highway: its history is state too, fed back after a reset
        return _session_run_history_loop(sess, config, toks, names, history)

    def body(k: int) -> None:
        h, c = state[0]
        for i in range(k):
            feed = {config.input_name: toks[i % len(toks)], INPUT_H0: h, INPUT_C0: c}
            _, h, c = sess.run(names, feed)
        state[0] = (h, c)

    return body


def _session_run_history_loop(
    sess: Any, config: ModelConfig, toks: list[np.ndarray], names: list[str], size: int
) -> Callable[[int], None]:
    """`session_run_loop` of a graph with a history input (the forecast highway)."""
    zeros = np.zeros((config.num_layers, 1, config.hidden_size), dtype=np.float32)
    state = [(zeros, zeros, np.zeros((1, size), np.float32))]
    order = [names.index(n) for n in (OUTPUT_HN, OUTPUT_CN, OUTPUT_HISTORY)]

    def body(k: int) -> None:
        h, c, history = state[0]
        for i in range(k):
            feed = {config.input_name: toks[i % len(toks)], INPUT_H0: h, INPUT_C0: c,
                    INPUT_HISTORY: history}  # fmt: skip
            out = sess.run(names, feed)
            h, c, history = (out[j] for j in order)
        state[0] = (h, c, history)

    return body


TRACT_DTYPES = {np.dtype(np.int64): "i64", np.dtype(np.float32): "f32"}


def tract_loop(path: Path, config: ModelConfig) -> Callable[[int], None] | None:
    """The same loop on tract (the `tract` pip package, a peer runtime; optional: None when
    it is not installed or cannot load the model): the model made concrete for batch 1 and
    one step, optimized by tract, the state fed back."""
    try:
        import tract
    except ImportError:
        return None
    toks = [_with_time(t) for t in input_cycle(config, 1)]
    dims = ",".join(map(str, toks[0].shape))
    state_fact = f"{config.num_layers},1,{config.hidden_size},f32"
    history = config.spec.history_size(config)  # a forecast highway's history, if any
    try:
        model = tract.onnx().load(str(path))
        model.set_input_fact(0, f"{dims},{TRACT_DTYPES[toks[0].dtype]}")
        model.set_input_fact(1, state_fact)
        model.set_input_fact(2, state_fact)
        if history:
            model.set_input_fact(3, f"1,{history},f32")
        runnable = model.into_model().into_runnable()
    except (tract.TractError, KeyError):
        return None
    zeros = np.zeros((config.num_layers, 1, config.hidden_size), dtype=np.float32)
    state = [(zeros, zeros, *([np.zeros((1, history), np.float32)] if history else []))]

    def body(k: int) -> None:
        st = state[0]
        for i in range(k):
            _, *out = runnable.run([toks[i % len(toks)], *st])
            st = [v.to_numpy() for v in out]
        state[0] = tuple(st)

    return body


def matvec_loop(config: ModelConfig, weights: dict[str, np.ndarray]) -> Callable[[int], None]:
    """The practical limit: per layer one [4H, in+H] @ [in+H] product, then the head.

    No gates, no state update: just the multiply-adds every LSTM step must do, through
    numpy's BLAS with preallocated outputs.
    """
    mats = [
        np.ascontiguousarray(np.concatenate([weights[lstm_w(l)][0], weights[lstm_r(l)][0]], 1))
        for l in range(config.num_layers)  # noqa: E741 (l for layer, as in the ONNX spec)
    ]
    head = np.ascontiguousarray(weights[HEAD_WEIGHT].T)  # [V, H]
    xs = [np.ones(m.shape[1], dtype=np.float32) for m in mats]
    outs = [np.empty(m.shape[0], dtype=np.float32) for m in mats]
    h = np.ones(config.hidden_size, dtype=np.float32)
    logits = np.empty(config.output_size, dtype=np.float32)

    def body(k: int) -> None:
        for _ in range(k):
            for m, x, o in zip(mats, xs, outs, strict=True):
                np.matmul(m, x, out=o)
            np.matmul(head, h, out=logits)

    return body


def c_direct_loop(model: Any) -> Callable[[int], None]:
    """The C library's step alone: one call per step into the compiled library on
    preallocated state, input and output buffers, the state carried in place, as firmware
    calls `lstm_edge_step`; adds only the binding's own call cost (well under 1 µs with the
    CPython binding, ~1 µs through ctypes) to the C time."""
    from lstm_edge.runtime.backends.c import StateStruct

    runner, config = model.runner, model.config
    # float32 h, c and scratch; int8 h, int16 c and int16 scratch for int8-full
    h, c, scratch = runner.direct_buffers()
    # a forecast highway's history (zeros: a reset one), float32 in both libraries
    history = np.zeros(config.spec.history_size(config), np.float32)
    state = StateStruct(h.ctypes.data, c.ctypes.data, history.ctypes.data if history.size else None)
    dtype = config.spec.c_input_dtype
    xs = [np.ascontiguousarray(x, dtype=dtype) for x in input_cycle(config, 1)]
    x_addr = [x.ctypes.data for x in xs]
    out = np.empty(config.output_size, np.float32)
    call = runner.raw_call  # (states, batch, x, time, out, scratch, scratch_floats) -> status
    args = (ctypes.addressof(state), out.ctypes.data, scratch.ctypes.data, scratch.size)

    def body(k: int) -> None:
        states, out_addr, scratch_addr, n = args
        bad = 0
        for i in range(k):
            bad |= call(states, 1, x_addr[i % len(x_addr)], 1, out_addr, scratch_addr, n)
        if bad:
            raise BenchInputError("the C step refused the bench's call")

    # The addresses above point into these arrays: the loop must keep them alive.
    body.buffers = (h, c, history, state, xs, out, scratch)  # type: ignore[attr-defined]
    return body


# ---- fresh-process measurements ------------------------------------------------------------

# The module whose programs run in the fresh processes (`python -m`).
CHILD_MODULE = "lstm_edge.toolchain.bench_child"


def measure_process(name: str, program: str, args: Sequence[str], repeats: int) -> ProcessRow:
    """Run bench_child's `program` in fresh interpreters; wall time from spawn to exit, and
    its own RSS."""
    walls, imports, rss = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", CHILD_MODULE, program, *args],
            capture_output=True,
            text=True,
            check=False,
        )
        walls.append(time.perf_counter() - t0)
        if out.returncode != 0:
            raise BenchInputError(f"{name}: the measuring process failed: {out.stderr.strip()}")
        got = json.loads(out.stdout.strip().splitlines()[-1])
        imports.append(got["import_s"])
        rss.append(got["maxrss_kb"] / 1024)  # KiB (VmHWM, and ru_maxrss on Linux)
    p10, med, p90 = np.percentile(walls, [10, 50, 90])
    return ProcessRow(
        name,
        Stats(float(med), float(p10), float(p90), repeats, 1),
        float(np.median(imports)),
        float(np.median(rss)),
    )


# ---- the command ---------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    import onnxruntime as ort

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def bench(
    artifacts: Sequence[Path], options: BenchOptions | None = None, console: Console | None = None
) -> BenchReport:
    """Measure every section for `artifacts` (one model) side by side; see the module doc."""
    options = options or BenchOptions()
    if options.threads < 1:
        raise BenchInputError(f"--threads is {options.threads} (expected at least 1)")
    with blas_threads(options.threads) as blas_ok, torch_threads(options.threads):
        report = _bench(artifacts, options, console or Console(stderr=True))
    report.settings["blas_threads"] = options.threads if blas_ok else "default (not settable)"
    return report


Model = tuple[Path, str, Any]  # (artifact, backend, runtime model)


def _bench(artifacts: Sequence[Path], options: BenchOptions, console: Console) -> BenchReport:
    if not artifacts:
        raise BenchInputError("no artifact given (expected one or more .onnx files)")
    if options.repeats < 1:
        raise BenchInputError(f"--repeats is {options.repeats} (expected at least 1)")
    models, notes = _load_models(artifacts, options)
    config = models[0][2].config
    torch_model, weights, weights_src = _torch_baseline(models, config, options)
    report = BenchReport(
        machine=_machine(),
        model={
            "layers": config.num_layers,
            "hidden": config.hidden_size,
            "task": config.task,
            "input": config.input_size,
            "output": config.output_size,
        },
        settings={
            "repeats": options.repeats,
            "target_repeat_seconds": options.target_seconds,
            "torch_baseline": weights_src,
            "threads": options.threads,
            "session_run_options": "onnxruntime defaults",
            "backends": sorted({b for _, b, _ in models}),
        },
        notes=notes,
    )
    _measure_latency(report, models, torch_model, weights, options, console)
    _measure_throughput(report, models, torch_model, options, console)
    if options.process:
        _measure_processes(report, models, config, options, console)
    _measure_sizes(report, models)
    return report


def _load_models(artifacts: Sequence[Path], options: BenchOptions) -> tuple[list[Model], list[str]]:
    """Every artifact on every backend that can run it, all of one config; the notes of
    the skipped pairs."""
    from lstm_edge import runtime

    explicit = bool(options.backends)
    backends = options.backends or DEFAULT_BACKENDS
    models: list[Model] = []
    notes: list[str] = []
    for path in map(Path, artifacts):
        for backend in backends:
            try:
                opts = {"intra_op_threads": options.threads} if backend == "ort" else {}
                models.append((path, backend, runtime.load(path, backend=backend, **opts)))
            except UnsupportedModelError as e:
                notes.append(f"{path.name} ({backend}) skipped: {e}")
    # Each artifact runs where it can (int8-dynamic only on ort); a backend named on the
    # command line that can run none of the artifacts is an error, not a silent gap.
    idle = [b for b in backends if explicit and all(b != mb for _, mb, _ in models)]
    if idle:
        raise BenchInputError(
            f"backend(s) {idle} cannot run any of the artifacts: " + "; ".join(notes)
        )
    if not models:
        raise BenchInputError("no artifact could be run by any backend: " + "; ".join(notes))
    config = models[0][2].config
    for path, _, m in models:
        if m.config != config:
            raise BenchInputError(
                f"{path} is a different model from {models[0][0]} (expected the same config "
                "for a side-by-side comparison)"
            )
    return models, notes


def _torch_baseline(
    models: list[Model], config: ModelConfig, options: BenchOptions
) -> tuple[EdgeLSTM, dict[str, np.ndarray], str]:
    """(torch model, float weights for the matvec limit, where the torch weights are from)."""
    from lstm_edge.toolchain.checkpoint import load_checkpoint

    # Float weights for the torch baseline and the matvec limit: a float artifact's if
    # there is one, else any artifact's dequantized ones.
    with_weights = [m for _, _, m in models if m.artifact.weights]
    with_weights.sort(key=lambda m: m.scheme != "none")
    if options.checkpoint is not None:
        ckpt = load_checkpoint(options.checkpoint)
        if ckpt.config != config:
            raise BenchInputError(
                f"{options.checkpoint} holds a different model from the artifacts"
            )
        torch_model = ckpt.model
        weights_src = "checkpoint " + str(options.checkpoint)
    elif with_weights:
        torch_model = torch_from_weights(config, with_weights[0].artifact.weights)
        weights_src = f"weights of {with_weights[0].artifact.path.name} (gates permuted back)"
    else:
        raise BenchInputError(
            "no artifact has float weights for the torch baseline (int8-dynamic only): "
            "pass --checkpoint"
        )
    if with_weights:
        weights = with_weights[0].artifact.weights
    else:
        from lstm_edge.toolchain.export import onnx_weights

        weights = onnx_weights(torch_model)
    torch_model.eval()
    return torch_model, weights, weights_src


def _measure_latency(
    report: BenchReport,
    models: list[Model],
    torch_model: EdgeLSTM,
    weights: dict[str, np.ndarray],
    options: BenchOptions,
    console: Console,
) -> None:
    """Per-step latency: every row measured in the same rounds (see time_interleaved)."""
    config = models[0][2].config
    items: list[tuple[LatencyRow, Callable[[int], None]]] = []

    def row(name: str, kind: str, path: Path | None, backend: str | None, body) -> LatencyRow:
        r = LatencyRow(name, kind, None if path is None else str(path), backend, ZERO_STATS)
        items.append((r, body))
        return r

    torch_default = row("torch eager", "torch", None, None, torch_step_loop(torch_model, 1))
    torch_nodnn = row(
        "torch eager, oneDNN off", "torch", None, None, torch_step_loop(torch_model, 1, False)
    )
    matvec = row("BLAS matvec limit", "matvec", None, None, matvec_loop(config, weights))
    plain = {
        path: row(
            "onnxruntime session.run loop",
            "session_run",
            path,
            None,
            session_run_loop(path, config),
        )
        for path in _ort_graphs(models)
    }
    same_threads = _peer_rows(row, models, config, options.threads)
    runtime_rows = [
        row(f"lstm_edge.runtime ({backend})", "runtime", path, backend, runtime_step_loop(m, 1))
        for path, backend, m in models
    ]
    # The C step itself, without the Python API around it (what a device pays).
    runtime_rows += [
        row("C library step (direct call)", "c_direct", path, backend, c_direct_loop(m))
        for path, backend, m in models
        if backend == "c"
    ]
    with console.status(f"bench: per-step latency, {len(items)} loops in rounds"):
        stats = time_interleaved(
            [body for _, body in items], options.repeats, options.target_seconds
        )
    for (r, _), st in zip(items, stats, strict=True):
        r.stats = st
    _c_step_overhead(runtime_rows)
    _c_step_vs_float(runtime_rows, {str(path): m.scheme for path, _, m in models})
    for r in runtime_rows:
        if r.backend == "ort" and Path(str(r.artifact)) in same_threads:
            r.vs_session_run_same_threads = (
                r.stats.median / same_threads[Path(str(r.artifact))].stats.median
            )
    extra = [r for r, _ in items if r.kind in ("session_run_threads", "tract")]
    items.clear()  # the loops hold sessions and models: free them before the next section
    for r in [*runtime_rows, *plain.values(), *extra, torch_default, torch_nodnn, matvec]:
        med = r.stats.median
        r.vs_torch = med / torch_default.stats.median
        r.vs_matvec = med / matvec.stats.median
        if r.artifact is not None and Path(r.artifact) in plain:
            r.vs_session_run = med / plain[Path(r.artifact)].stats.median
        report.latency.append(r)


def _ort_graphs(models: list[Model]) -> list[Path]:
    """The artifacts whose ONNX graph is the model, for the peer runtimes' loops: not
    int8-full, whose graph is only its weight-only approximation (timing that graph next
    to the scheme would present the approximation as it)."""
    return list(dict.fromkeys(p for p, _, m in models if m.artifact.integer is None))


def _peer_rows(
    row: Callable[..., LatencyRow], models: list[Model], config: ModelConfig, threads: int
) -> dict[Path, LatencyRow]:
    """Add the plain session.run loop at the ort backend's thread count (returned by
    artifact) and, when the `tract` package is installed, tract's loop."""
    same_threads = {
        path: row(
            f"onnxruntime session.run loop, {threads} thread(s)",
            "session_run_threads",
            path,
            None,
            session_run_loop(path, config, threads),
        )
        for path in dict.fromkeys(p for p, b, _ in models if b == "ort")
    }
    for path in _ort_graphs(models):
        tract_body = tract_loop(path, config)
        if tract_body is not None:
            row("tract (peer runtime)", "tract", path, None, tract_body)
    return same_threads


def _c_step_overhead(rows: list[LatencyRow]) -> None:
    """Fill vs_c_step / above_c_step_us of each c backend row from its artifact's C step."""
    direct = {r.artifact: r.stats.median for r in rows if r.kind == "c_direct"}
    for r in rows:
        if r.kind == "runtime" and r.backend == "c" and r.artifact in direct:
            r.vs_c_step = r.stats.median / direct[r.artifact]
            r.above_c_step_us = (r.stats.median - direct[r.artifact]) * 1e6


def _c_step_vs_float(rows: list[LatencyRow], schemes: dict[str, str]) -> None:
    """Fill vs_float_c_step of each C step row from the float artifact's C step."""
    direct = [r for r in rows if r.kind == "c_direct"]
    floats = [r.stats.median for r in direct if schemes.get(str(r.artifact)) == "none"]
    if floats:
        for r in direct:
            r.vs_float_c_step = r.stats.median / floats[0]


def _measure_throughput(
    report: BenchReport,
    models: list[Model],
    torch_model: EdgeLSTM,
    options: BenchOptions,
    console: Console,
) -> None:
    """Throughput: batched streams and a prefill, each runtime model and torch. Every row
    of one mode (b streams, or the prefill) is timed in the same interleaved rounds, as the
    latency rows are, so a slow spell of the machine hits the backends alike and their
    ratios mean something."""
    modes = [("streams", b) for b in options.streams] + [("prefill", options.prefill)]
    rows: dict[tuple[str, str | None, str, int], Stats] = {}
    for mode, n in modes:
        items: list[tuple[tuple[str, str | None, str, int], Callable[[int], None]]] = []
        for path, backend, m in models:
            body = runtime_step_loop(m, n) if mode == "streams" else runtime_prefill_loop(m, n)
            items.append(((f"lstm_edge.runtime ({backend})", str(path), mode, n), body))
        torch_body = (
            torch_step_loop(torch_model, n)
            if mode == "streams"
            else torch_prefill_loop(torch_model, n)
        )
        items.append((("torch eager", None, mode, n), torch_body))
        label = f"{n} streams" if mode == "streams" else f"prefill {n}"
        with console.status(f"bench: throughput, {label}"):
            stats = time_interleaved(
                [body for _, body in items], options.repeats, options.target_seconds
            )
        rows.update((key, st) for (key, _), st in zip(items, stats, strict=True))
    # the table's order: each runtime model's modes, then torch's
    order = [(f"lstm_edge.runtime ({be})", str(p)) for p, be, _ in models] + [("torch eager", None)]
    for name, path in order:
        for mode, n in modes:
            report.throughput.append(
                ThroughputRow(name, path, mode, n, rows[(name, path, mode, n)])
            )


def _measure_processes(
    report: BenchReport,
    models: list[Model],
    config: ModelConfig,
    options: BenchOptions,
    console: Console,
) -> None:
    """Fresh process: import + load + one step, per backend and for torch."""
    reps = max(1, options.process_repeats)
    first = models[0][0]
    for backend in dict.fromkeys(b for _, b, _ in models):
        with console.status(f"bench: fresh process ({backend})"):
            report.process.append(
                measure_process(
                    f"runtime ({backend}): import + load + step",
                    "runtime",
                    [str(first), backend],
                    reps,
                )
            )
    args = (
        ["ckpt", str(options.checkpoint)]
        if options.checkpoint is not None
        else ["config", config.to_json()]
    )
    with console.status("bench: fresh process [torch]"):
        report.process.append(measure_process("torch: import + load + step", "torch", args, reps))


def _measure_sizes(report: BenchReport, models: list[Model]) -> None:
    sizes = {p: p.stat().st_size for p in dict.fromkeys(p for p, _, _ in models)}
    float_size = next((sizes[p] for p, _, m in models if m.scheme == "none"), None)
    for p, _, m in {p: (p, b, m) for p, b, m in models}.values():
        report.sizes.append(
            {
                "artifact": str(p),
                "scheme": m.scheme,
                "bytes": sizes[p],
                "vs_float": sizes[p] / float_size if float_size else None,
            }
        )


# ---- output --------------------------------------------------------------------------------


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.3g}x"


def render_tables(report: BenchReport) -> list[Table]:
    m = report.model
    lat = Table(
        title=f"per-step latency, batch 1, state carried ({m['layers']}x{m['hidden']}, "
        f"{m['task']}, in {m['input']}, out {m['output']}; "
        f"median over {report.settings['repeats']} repeats)"
    )
    for col in (
        "",
        "artifact",
        "median µs",
        "p10-p90 µs",
        "vs torch",
        "vs session.run",
        "vs matvec",
        "Model.step vs C step",
        "vs session.run same thr",
        "C step vs float C step",
    ):
        lat.add_column(col, justify="left" if col in ("", "artifact") else "right")
    for r in report.latency:
        lat.add_row(
            r.name,
            escape(Path(r.artifact).name) if r.artifact else "",
            f"{r.stats.median * 1e6:,.1f}",
            f"{r.stats.p10 * 1e6:,.1f}-{r.stats.p90 * 1e6:,.1f}",
            _ratio(r.vs_torch),
            _ratio(r.vs_session_run),
            _ratio(r.vs_matvec),
            "" if r.vs_c_step is None else f"{r.vs_c_step:.3g}x (+{r.above_c_step_us:,.1f} µs)",
            _ratio(r.vs_session_run_same_threads),
            _ratio(r.vs_float_c_step),
        )
    thr = Table(title="throughput (tokens/s, median; p10-p90)")
    for col in ("", "artifact", "mode", "tokens/s", "p10-p90"):
        thr.add_column(col, justify="left" if col in ("", "artifact", "mode") else "right")
    for r in report.throughput:
        mode = (
            f"{r.tokens_per_call} streams"
            if r.mode == "streams"
            else f"prefill {r.tokens_per_call}"
        )
        thr.add_row(
            r.name,
            escape(Path(r.artifact).name) if r.artifact else "",
            mode,
            f"{r.tokens_per_second:,.0f}",
            f"{r.tokens_per_call / r.stats.p90:,.0f}-{r.tokens_per_call / r.stats.p10:,.0f}",
        )
    tables = [lat, thr]
    if report.process:
        proc = Table(title="fresh process: import + load + one step")
        for col in ("", "wall s (median)", "p10-p90 s", "import s", "peak RSS MB"):
            proc.add_column(col, justify="left" if not col else "right")
        for r in report.process:
            proc.add_row(
                r.name,
                f"{r.wall_s.median:.3f}",
                f"{r.wall_s.p10:.3f}-{r.wall_s.p90:.3f}",
                f"{r.import_s:.3f}",
                f"{r.peak_rss_mb:.1f}",
            )
        tables.append(proc)
    size = Table(title="file size")
    for col in ("artifact", "scheme", "bytes", "vs float"):
        size.add_column(col, justify="left" if col in ("artifact", "scheme") else "right")
    for s in report.sizes:
        size.add_row(
            escape(Path(s["artifact"]).name), s["scheme"], f"{s['bytes']:,}", _ratio(s["vs_float"])
        )
    tables.append(size)
    return tables


def write_json(report: BenchReport, path: Path) -> None:
    from lstm_edge.runtime.files import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, report.to_dict())
