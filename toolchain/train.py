"""Training: truncated BPTT over contiguous streams, checkpoints that survive kills, torchrun.

The training split is cut into B contiguous streams (B = batch size); step k reads the k-th
chunk of `seq_len` characters of every stream and starts from the state the previous chunk
left (detached), as char-rnn does, because the model will later run on long streams one
step at a time. At the start of every pass over the data the state is reset to zeros.

Run folder OUT (rank 0 alone writes, every file atomically):
    config.json, model.safetensors, data.json   the BEST model so far (`load_checkpoint(OUT)`)
    metrics.jsonl, loss.png, train.json         curves and the run's settings
    resume/latest.json -> resume/<step>/        latest weights + trainer.pt (optimizer,
                                                progress, carried state, RNG, loss history)
Each resume/<step>/ folder is complete before latest.json points at it, so a kill -9 at
any moment leaves both the best model and a resumable state.

Both tasks share this loop; they differ only in the data source and the objective. char-lm:
characters of a corpus in, the next character out, cross-entropy, validation in bits per
character. forecast (`--task forecast`): rows of a sensor table (`series`) in, the target
columns `horizon` rows later out, MSE or MAE in training-split standard units, validation
as normalized RMSE (MSE loss) or MAE, read as one stream with the state carried, as it runs
when deployed. The streams are the same contiguous ones with truncated BPTT.

Under `torchrun --nproc-per-node N` the same code runs with DistributedDataParallel: each
rank owns B/N of the streams, gradients are averaged, so N ranks compute what one process
with the same global batch computes.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import Interrupted
from lstm_edge.toolchain import data as data_mod
from lstm_edge.toolchain import series as series_mod
from lstm_edge.toolchain.checkpoint import (
    CONFIG_FILE,
    DATA_FILE,
    TMP_PREFIX,
    WEIGHTS_FILE,
    InvalidCheckpointError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    clean_stale_temp_files,
    load_checkpoint,
    load_torch_state,
    save_checkpoint,
    save_torch_state,
)
from lstm_edge.toolchain.model import EdgeLSTM, build_model
from lstm_edge.toolchain.run_config import (
    RunConfig,
    TrainingError,
    TrainOptions,
    run_config,
)

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
RUN_FILE = "train.json"
RESUME_DIR = "resume"
LATEST_FILE = "latest.json"
TRAINER_FILE = "trainer.pt"
STATE_FORMAT = 1  # version of trainer.pt's layout
LN2 = math.log(2.0)


class OutputFolderError(TrainingError):
    """The run folder cannot be created or written, or holds a run already."""


class TrainingDiverged(TrainingError):
    """The loss became NaN/Inf; the last good checkpoint is kept as it was."""


class TrainingInterrupted(Interrupted):
    """Ctrl-C (or SIGTERM): the current step finished and the resume state was saved."""

    hint = "continue with --resume"

    def __init__(self, step: int, out: Path) -> None:
        super().__init__(f"interrupted after step {step}; state saved in {out}")
        self.step = step
        self.out = out


# ---- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    out: Path
    steps: int
    best_step: int
    best_val: float  # the validation metric (`metric`) of the best model
    last_val: float
    elapsed_s: float
    items_per_s: float  # characters (char-lm) or rows (forecast) per second
    metric: str = "bpc"  # "bpc" | "nrmse" | "nmae"
    unit: str = "bits/char"
    baseline: float | None = None  # forecast: the metric of persistence on the same split
    is_main: bool = True  # rank 0 (the one that reports); other ranks' metrics are partial
    items: str = "chars"  # what `items_per_s` counts: "chars" | "rows"

    def report(self) -> str:
        """The one line `lstm-edge train` prints."""
        baseline = "" if self.baseline is None else f" (persistence {self.baseline:.3f})"
        return (
            f"trained {self.steps} steps in {self.elapsed_s:.0f} s ({self.items_per_s:,.0f} "
            f"{self.items}/s); best validation {self.best_val:.3f} {self.unit}{baseline} at "
            f"step {self.best_step}; checkpoint: {self.out}"
        )

    # The char-lm names, kept for callers written before forecast existed.
    @property
    def best_val_bpc(self) -> float:
        return self.best_val

    @property
    def last_val_bpc(self) -> float:
        return self.last_val

    @property
    def chars_per_s(self) -> float:
        return self.items_per_s


@dataclass(frozen=True)
class Objective:
    """What a task trains and validates by: loss in the model's normalized output units
    (char-lm logits vs ids; forecast standard units) and the metric shown from it."""

    loss: str  # "cross-entropy" | "mse" | "mae"
    metric: str  # "bpc" | "nrmse" | "nmae": the key in metrics.jsonl
    unit: str  # how the metric is named to the user
    rate_key: str  # "chars_per_s" | "rows_per_s"

    @classmethod
    def of(cls, run: RunConfig) -> Objective:
        if run.task == "char-lm":
            return cls("cross-entropy", "bpc", "bits/char", "chars_per_s")
        if run.loss == "mse":
            return cls("mse", "nrmse", "normalized RMSE", "rows_per_s")
        return cls("mae", "nmae", "normalized MAE", "rows_per_s")

    def __call__(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.loss == "cross-entropy":
            return nn.functional.cross_entropy(
                out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction=reduction
            )
        if self.loss == "mse":
            return nn.functional.mse_loss(out, y, reduction=reduction)
        return nn.functional.l1_loss(out, y, reduction=reduction)

    def value(self, loss: float) -> float:
        """Mean loss -> the metric: bits per character, sqrt(MSE) or the MAE itself."""
        if self.metric == "bpc":
            return loss / LN2
        if self.metric == "nrmse":
            return math.sqrt(loss) if loss >= 0 else math.nan
        return loss


StepHook = Callable[[int, float], None]  # (steps done, loss of that step), rank 0 only


# ---- distributed --------------------------------------------------------------------------


# How long to let gloo's worker threads release the last collectives' tensors when torch
# offers no way to check (see _Dist.stop); they do so within microseconds of completing.
FALLBACK_RELEASE_WAIT_S = 0.2


@dataclass(frozen=True)
class _Dist:
    """This process's place in the torchrun job, and the few collectives training uses.

    Teardown: `all_reduce`/`wait` return once gloo has marked the work complete, but its
    worker thread drops its own reference to the work (and so to our tensor) a moment
    later. If Python dropped the tensor first, that late release has to take the GIL to
    free the Python object; when the main thread has meanwhile begun interpreter shutdown,
    the worker thread is made to exit inside a C++ destructor and the process aborts with
    "terminate called without an active exception" (seen on a loaded 2-core machine).
    `destroy_process_group` does not stop the worker threads, and DDP keeps the group
    alive, so `stop` instead keeps the tensors of the last collectives referenced until
    the workers have let go of them."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    # Tensors of the latest collectives: freed by Python, never by a gloo worker thread.
    sent: deque[torch.Tensor] = field(
        default_factory=lambda: deque(maxlen=8), compare=False, repr=False
    )

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls) -> _Dist:
        """Join the process group torchrun describes in the environment (if world > 1)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(
            rank=dist.get_rank(),
            world=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
        )

    def finish(self) -> None:
        """After the last collective of a successful run: every rank waits here, so none
        tears down while another still has collectives in flight."""
        if self.world > 1:
            dist.barrier()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Leave the process group; return once the gloo worker threads hold none of our
        tensors, so nothing of theirs needs Python during interpreter shutdown."""
        if self.world == 1 or not dist.is_initialized():
            return
        dist.destroy_process_group()
        deadline = time.monotonic() + timeout_s
        # use_count 1: only our reference is left (the worker has released the work).
        # `_use_count` is private torch API; without it, a fixed grace period instead.
        use_count = getattr(torch.Tensor, "_use_count", None)
        if use_count is None:
            time.sleep(FALLBACK_RELEASE_WAIT_S)
        while (
            use_count is not None
            and any(use_count(t) > 1 for t in self.sent)
            and time.monotonic() < deadline
        ):
            time.sleep(0.001)
        self.sent.clear()

    def all_reduce(self, t: torch.Tensor, op: Any = dist.ReduceOp.SUM) -> None:
        """In-place sum (or `op`) over all ranks (a no-op in a single process)."""
        if self.world > 1:
            self.sent.append(t)
            dist.all_reduce(t, op=op)

    def all_ok(self, ok: bool) -> bool:
        """True on every rank iff `ok` is True on every rank (a failing rank 0 stops all)."""
        flag = torch.tensor([1 if ok else 0], dtype=torch.int64)
        self.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_streams(self, t: torch.Tensor) -> torch.Tensor:
        """[layers, local streams, hidden] on each rank -> [layers, all streams, hidden]."""
        if self.world == 1:
            return t
        t = t.contiguous()
        parts = [torch.empty_like(t) for _ in range(self.world)]
        self.sent.extend([t, *parts])
        dist.all_gather(parts, t)
        return torch.cat(parts, dim=1)


def default_threads(processes: int = 1) -> int:
    """This process's share of the cores it may run on, at least 1. Not fewer when the
    machine looks busy: a load-dependent default would make the same command run at a
    different speed from one call to the next. On a machine busy with other work, pass
    --threads 1: threads beyond the idle cores each wait for a descheduled peer in the
    LSTM's many small parallel regions (a step was measured 25x slower that way)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, processes))


def _on_rank0(d: _Dist, fn: Callable[[], Any]) -> Any:
    """Run fn on rank 0; if it raises, every rank stops (rank 0 with the real message)."""
    result, error = None, None
    if d.main:
        try:
            result = fn()
        except BaseException as e:  # also KeyboardInterrupt: the others must not hang
            error = e
    if not d.all_ok(error is None):
        if error is not None:
            raise error
        raise TrainingError("rank 0 failed; see its message")
    return result


# ---- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Streams:
    """This rank's streams: inputs/targets [local streams, chunks * seq_len (, width)]."""

    x: torch.Tensor
    y: torch.Tensor
    chunks: int  # chunks per pass over the data (steps per epoch)
    seq_len: int

    def chunk(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = step % self.chunks
        cols = slice(j * self.seq_len, (j + 1) * self.seq_len)
        return self.x[:, cols], self.y[:, cols]


@dataclass(frozen=True)
class Pairs:
    """A split as aligned (input, target) positions: inputs[i] is read, targets[i] is
    what the output at that step should be. char-lm: ids[:-1], ids[1:]; forecast: the
    feature rows [:-horizon] and the (normalized) target rows [horizon:]."""

    inputs: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)


def _streams(pairs: Pairs, n: int, length: int, seq_len: int | None = None) -> _Streams:
    """n contiguous streams of `length` positions each."""
    stride = len(pairs) // n
    x = np.stack([pairs.inputs[i * stride : i * stride + length] for i in range(n)])
    y = np.stack([pairs.targets[i * stride : i * stride + length] for i in range(n)])
    seq = seq_len or length
    return _Streams(torch.from_numpy(x), torch.from_numpy(y), length // seq, seq)


def _chunks(pairs: Pairs, run: RunConfig) -> int:
    """Steps per pass over the training split."""
    return (len(pairs) // run.batch_size) // run.seq_len


def _train_streams(pairs: Pairs, run: RunConfig, d: _Dist) -> _Streams:
    chunks = _chunks(pairs, run)
    full = _streams(pairs, run.batch_size, chunks * run.seq_len, run.seq_len)
    per = run.batch_size // d.world
    mine = slice(d.rank * per, (d.rank + 1) * per)
    return _Streams(full.x[mine], full.y[mine], chunks, run.seq_len)


@torch.no_grad()
def evaluate(
    model: EdgeLSTM,
    pairs: Pairs | np.ndarray,
    streams: int,
    seq_len: int,
    objective: Objective | None = None,
) -> float:
    """Mean loss (char-lm: nats/char) over `pairs` read as contiguous streams, state carried.

    `pairs` may be a char-lm id array (each id predicts the next); the objective defaults
    to the task's default (cross-entropy; forecast: MSE in standard units)."""
    if isinstance(pairs, np.ndarray):
        pairs = Pairs(pairs[:-1], pairs[1:])
    objective = objective or Objective.of(RunConfig(task=model.config.task))
    n = max(1, min(streams, len(pairs)))
    length = len(pairs) // n
    s = _streams(pairs, n, length)
    was_training = model.training
    model.eval()
    state = model.initial_state(n)
    total, count = 0.0, 0
    for start in range(0, length, seq_len):
        x, y = s.x[:, start : start + seq_len], s.y[:, start : start + seq_len]
        out, state = model.forward_normalized(x, state)
        total += objective(out, y, reduction="sum").item()
        count += y.numel()
    model.train(was_training)
    return total / count


# ---- the run folder -----------------------------------------------------------------------


def _resume_dir(out: Path) -> Path:
    return out / RESUME_DIR


def _has_run(out: Path) -> bool:
    names = (CONFIG_FILE, WEIGHTS_FILE, f"{RESUME_DIR}/{LATEST_FILE}", METRICS_FILE)
    return out.is_dir() and any((out / n).exists() for n in names)


def _prepare_out(out: Path, *, resume: bool, force: bool) -> None:
    """Create/check the run folder; refuse to replace a run unless --force; clean leftovers."""
    if resume and force:
        raise TrainingError("--resume and --force contradict each other; pass one")
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"output folder {out} is a file, not a folder")
    if resume:
        if not (_resume_dir(out) / LATEST_FILE).is_file():
            raise OutputFolderError(
                f"nothing to resume in {out}: {_resume_dir(out) / LATEST_FILE} is missing"
            )
    elif _has_run(out):
        if not force:
            raise OutputFolderError(
                f"output folder {out} already holds a checkpoint; pass --resume to continue "
                "it or --force to replace it"
            )
        # config.json goes first, so until the new run's first save the folder reads as
        # "not a checkpoint" instead of pairing a new config with old weights.
        for name in (CONFIG_FILE, WEIGHTS_FILE, DATA_FILE, METRICS_FILE, PLOT_FILE, RUN_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(_resume_dir(out), ignore_errors=True)
    try:
        _resume_dir(out).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / (TMP_PREFIX + "probe"), b"")  # writable? (root ignores modes)
        (out / (TMP_PREFIX + "probe")).unlink()
    except OSError as e:
        raise OutputFolderError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    # A writer killed mid-save leaves temp files and possibly an unreferenced step folder.
    clean_stale_temp_files(out)
    clean_stale_temp_files(_resume_dir(out))
    keep = _latest_name(out)
    for p in _resume_dir(out).iterdir():
        if p.is_dir() and p.name != keep:
            shutil.rmtree(p, ignore_errors=True)


def _latest_name(out: Path) -> str | None:
    path = _resume_dir(out) / LATEST_FILE
    if not path.is_file():
        return None
    try:
        name = json.loads(path.read_text(encoding="utf-8"))["dir"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidCheckpointError(f"not a valid checkpoint: cannot read {path}") from None
    if not isinstance(name, str) or not name.isdigit():
        raise InvalidCheckpointError(f"not a valid checkpoint: {path} names {name!r}")
    return name


def latest_resume_dir(out: Path) -> Path | None:
    """The resume/<step>/ folder latest.json points at, or None when there is none."""
    name = _latest_name(Path(out))
    return None if name is None else _resume_dir(Path(out)) / name


def load_resume_state(out: Path) -> tuple[EdgeLSTM, dict[str, Any]]:
    """Latest weights and trainer state of a run; both checked, refusing unsafe pickles."""
    folder = latest_resume_dir(out)
    if folder is None:
        raise InvalidCheckpointError(f"not a valid checkpoint: {out} has no resume state")
    model = load_checkpoint(folder).model
    state = load_torch_state(folder / TRAINER_FILE)
    if state.get("format") != STATE_FORMAT:
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {folder / TRAINER_FILE} has format "
            f"{state.get('format')!r} (expected {STATE_FORMAT})"
        )
    if state.get("step") != int(folder.name):
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {folder / TRAINER_FILE} is for step {state.get('step')!r}"
            f", its folder for step {int(folder.name)}"
        )
    return model, state


def write_metrics(out: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    atomic_write_bytes(out / METRICS_FILE, text.encode())


def read_metrics(out: Path) -> list[dict[str, Any]]:
    path = Path(out) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # not ours to fail on: a hand-edited line
    return records


def plot_losses(
    path: Path,
    losses: list[float],
    evals: list[dict[str, Any]],
    objective: Objective | None = None,
) -> None:
    """PNG of the training loss (per step and smoothed) and the validation metric (BPC,
    normalized RMSE or MAE) against step."""
    objective = objective or Objective.of(RunConfig())
    from matplotlib.figure import Figure  # no pyplot: no global backend state to disturb

    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.subplots()
    if losses:
        bpc = np.asarray([objective.value(v) for v in losses])
        steps = np.arange(1, len(bpc) + 1)
        ax.plot(steps, bpc, color="tab:blue", alpha=0.25, linewidth=0.8)
        w = max(1, min(50, len(bpc) // 10))
        smooth = np.convolve(bpc, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, color="tab:blue", label=f"train (mean of {w} steps)")
    if evals:
        ax.plot(
            [e["step"] for e in evals],
            [e[objective.metric] for e in evals],
            "o-",
            color="tab:orange",
            label="validation",
        )
    ax.set_xlabel("step")
    ax.set_ylabel(objective.unit)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


# ---- the trainer --------------------------------------------------------------------------


@contextmanager
def _saving(folder: Path) -> Iterator[None]:
    """OSError while saving (disk full, ...) -> a message naming the folder; the atomic
    writes have left the previous files in place."""
    try:
        yield
    except OSError as e:
        raise TrainingError(
            f"could not save the checkpoint in {folder}: {e.strerror or e}; the previous "
            "checkpoint is intact"
        ) from None


@contextmanager
def _stop_on_signals() -> Iterator[list[bool]]:
    """A flag set by SIGINT/SIGTERM, so the current step finishes before we stop. A second
    Ctrl-C stops at once (KeyboardInterrupt), for a user who will not wait for a long
    evaluation or save: every file is written atomically, so the last save stays usable."""
    flag = [False]

    def handler(signum: int, frame: Any) -> None:
        if flag[0] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag[0] = True

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Outside the main thread no handler can be set; Ctrl-C then behaves as usual.
        with suppress(ValueError):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _resolve_run(
    options: TrainOptions, task: str, saved: dict[str, Any] | None, chunks: int
) -> RunConfig:
    given = options.given()
    given.pop("task", None)
    if options.epochs is not None:
        if options.steps is not None:
            raise TrainingError("pass --steps or --epochs, not both")
        if not options.epochs > 0:
            raise TrainingError(f"epochs is {options.epochs!r} (expected > 0)")
        given["steps"] = max(1, math.ceil(options.epochs * chunks))
    if saved is None:
        return run_config(task, given)
    run = RunConfig(**saved)
    differs = [
        f"{k} {v!r} (the run has {getattr(run, k)!r})"
        for k, v in given.items()
        if v != getattr(run, k)
    ]
    if differs:
        raise TrainingError("a resumed run keeps its settings; these differ: " + ", ".join(differs))
    run.check()
    return run


class _Normalized(nn.Module):
    """The model as training calls it: `forward_normalized` (char-lm: the logits)."""

    def __init__(self, model: EdgeLSTM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> Any:
        return self.model.forward_normalized(x, state)


@dataclass(frozen=True)
class _Source:
    """A task's data, ready for the loop: the model config, the data.json record and the
    train/val splits as aligned pairs (raw; forecast targets are normalized later)."""

    config: ModelConfig
    data: dict[str, Any]
    train: Pairs
    val: Pairs
    val_now: np.ndarray | None = None  # forecast: the val targets at t (persistence)


def _char_lm_source(o: TrainOptions, probe: RunConfig, resume: dict[str, Any] | None) -> _Source:
    forecast_only = {"--csv": o.csv, "--target": o.target, "--features": o.features}
    forecast_only |= {"--time-column": o.time_column, "--label-column": o.label_column}
    forecast_only |= {"--season": o.season}
    wrong = [name for name, v in forecast_only.items() if v is not None]
    if wrong:
        verb = "applies" if len(wrong) == 1 else "apply"
        raise TrainingError(f"{', '.join(wrong)} {verb} to --task forecast only")
    if resume is not None:
        data = resume["data"]
        if o.corpus is not None and data_mod.load_corpus(o.corpus).source != data.get("source"):
            raise TrainingError(
                f"--corpus {o.corpus} is not the corpus of the run being resumed "
                f"({data.get('source')}); a resumed run keeps its corpus"
            )
        corpus = data_mod.corpus_from_record(data)
        split = data_mod.split_from_record(data)
        config = ModelConfig.from_dict(resume["config"])
    else:
        corpus = data_mod.load_corpus(o.corpus)  # refuses a bad corpus before training
        split = data_mod.split_corpus(len(corpus.text), probe.val_fraction, probe.test_fraction)
        vocab_options = data_mod.VocabOptions(probe.max_vocab, probe.min_count)
        vocab = data_mod.build_vocab(split.text(corpus.text, "train"), vocab_options)
        config = ModelConfig(
            vocab=vocab,
            embed_size=probe.embed,
            hidden_size=probe.hidden,
            num_layers=probe.layers,
        )
        data = data_mod.data_record(corpus, split, vocab, vocab_options)
    data_mod.check_long_enough(corpus, split, probe.seq_len, probe.batch_size)
    train_ids = data_mod.encode(split.text(corpus.text, "train"), config)
    val_ids = data_mod.encode(split.text(corpus.text, "val"), config)
    return _Source(
        config, data, Pairs(train_ids[:-1], train_ids[1:]), Pairs(val_ids[:-1], val_ids[1:])
    )


def _forecast_source(o: TrainOptions, probe: RunConfig, resume: dict[str, Any] | None) -> _Source:
    if o.corpus is not None:
        raise TrainingError("--corpus applies to --task char-lm only (forecast reads --csv)")
    if resume is not None:
        data = resume["data"]
        config = ModelConfig.from_dict(resume["config"])
        series = series_mod.series_from_record(data)
        recorded = {
            "--csv": data.get("source")
            if data.get("source") != series_mod.BUILTIN_SOURCE
            else None,
            "--target": config.targets,
            "--features": config.features,
        }
        asked = {
            "--csv": None if o.csv is None else str(Path(o.csv).expanduser().resolve()),
            "--target": o.target,
            "--features": o.features,
        }
        for name, value in asked.items():
            if value is not None and value != recorded[name]:
                raise TrainingError(
                    f"{name} differs from the run being resumed ({recorded[name]}); a resumed "
                    "run keeps its data"
                )
        split = data_mod.split_from_record(data)
    else:
        series = series_mod.load_series(
            o.csv, time_column=o.time_column, label_column=o.label_column
        )
        split = series_mod.split_rows(series.rows, probe.val_fraction, probe.test_fraction)
        features, targets = series_mod.choose_columns(
            series, o.target, o.features, builtin=o.csv is None
        )
        config = series_mod.forecast_config(
            series,
            split,
            features,
            targets,
            horizon=probe.horizon,
            hidden_size=probe.hidden,
            num_layers=probe.layers,
        )
        data = series_mod.data_record(
            series,
            split,
            csv_path=o.csv,
            time_column=o.time_column,
            label_column=o.label_column,
            builtin_rows=series.rows,
            builtin_seed=0,
            season=o.season,
        )
    series_mod.check_long_enough(series, split, probe.seq_len, probe.batch_size, config.horizon)
    h = config.horizon

    def pairs(name: str) -> tuple[Pairs, np.ndarray]:
        rows = series_mod.select(series, config, *getattr(split, name))
        return Pairs(rows.features[:-h], rows.targets[h:]), rows.targets[:-h]

    val, val_now = pairs("val")
    return _Source(config, data, pairs("train")[0], val, val_now)


class _Trainer:
    def __init__(self, options: TrainOptions, d: _Dist, on_step: StepHook | None) -> None:
        self.options = options
        self.d = d
        self.on_step = on_step
        self.out = Path(options.out).expanduser().absolute()
        self.stop = [False]  # this rank's signal flag; replaced in `train`
        self.stopping = False  # agreed by all ranks
        self.bar = _Progress(False, 0, 0, Objective.of(RunConfig()))
        self.baseline: float | None = None

    # -- setup --

    def setup(self) -> None:
        o, d = self.options, self.d
        prepare = functools.partial(_prepare_out, self.out, resume=o.resume, force=o.force)

        resume = None
        if o.resume:
            _on_rank0(d, prepare)  # cleans what a killed run left before reading its state
            resume = _on_rank0(d, lambda: self._load_resume())
            resume = d.broadcast(resume)
            saved_run = resume["run"]
            task = saved_run.get("task", "char-lm")  # runs saved before forecast existed
            if o.task is not None and o.task != task:
                raise TrainingError(
                    f"--task {o.task} differs from the run being resumed (task {task})"
                )
            probe = RunConfig(**saved_run)
        else:
            saved_run = None
            task = o.task or "char-lm"
            # The settings the data depends on; `steps` may still come from --epochs.
            given = {k: v for k, v in o.given().items() if k not in ("steps", "task")}
            probe = run_config(task, given)
        # A forecast model is tiny (16-row x 64 matmuls): extra threads only add waits, and
        # on a busy 2-core machine 2 threads ran the default training 6x slower than 1.
        threads = o.threads or (1 if task == "forecast" else default_threads(d.local_world))
        torch.set_num_threads(threads)
        source = (_char_lm_source if task == "char-lm" else _forecast_source)(o, probe, resume)
        self.data = source.data
        config = source.config
        self.run = run = _resolve_run(o, task, saved_run, _chunks(source.train, probe))
        self.objective = Objective.of(run)
        if run.batch_size % d.world:
            raise TrainingError(
                f"batch size {run.batch_size} does not divide among {d.world} ranks"
            )
        if not o.resume:
            _on_rank0(d, prepare)  # only now: bad data or a bad setting leaves no folder behind

        torch.manual_seed(run.seed)
        self.model = build_model(config, run.dropout)
        self.val = self._normalized(source.val)
        if source.val_now is not None:  # persistence: the targets now, for `horizon` ahead
            now = self._normalized(Pairs(source.val.inputs, source.val_now)).targets
            loss = self.objective(torch.from_numpy(now), torch.from_numpy(self.val.targets))
            self.baseline = self.objective.value(float(loss))
        self.streams = _train_streams(self._normalized(source.train), run, d)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=run.lr_at(0), weight_decay=run.weight_decay
        )
        per = run.batch_size // d.world
        self.h, self.c = self.model.initial_state(per)
        self.step = 0
        self.losses: list[float] = []
        self.metrics: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        if resume is not None:
            self._restore(resume)
        # Training compares the head's normalized output (what forward_normalized returns)
        # with normalized targets. DDP broadcasts rank 0's parameters, so every rank starts
        # from the same weights.
        net = _Normalized(self.model)
        self.net: nn.Module = DistributedDataParallel(net) if d.world > 1 else net

    @torch.no_grad()
    def _normalized(self, pairs: Pairs) -> Pairs:
        """Forecast targets in the standard units of the loss (`normalize_targets`)."""
        if self.model.config.task == "char-lm":
            return pairs
        y = self.model.normalize_targets(torch.from_numpy(pairs.targets))
        return Pairs(pairs.inputs, y.numpy())

    def _load_resume(self) -> dict[str, Any]:
        model, state = load_resume_state(self.out)
        best = load_checkpoint(self.out)
        if best.config != model.config:
            raise InvalidCheckpointError(
                f"not a valid checkpoint: {self.out / CONFIG_FILE} and the resume state "
                "describe different models"
            )
        state["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
        state["config"] = model.config.to_dict()
        state["data"] = best.data
        return state

    def _restore(self, s: dict[str, Any]) -> None:
        self.model.load_state_dict(s["weights"])
        self.optimizer.load_state_dict(s["optimizer"])
        per = self.run.batch_size // self.d.world
        mine = slice(self.d.rank * per, (self.d.rank + 1) * per)
        self.h, self.c = s["h"][:, mine].clone(), s["c"][:, mine].clone()
        self.step = int(s["step"])
        self.losses = [float(v) for v in s["losses"]]
        self.metrics = list(s["metrics"])
        self.evals = [m for m in self.metrics if m["kind"] == "val"]
        self.best = s["best"]
        torch.set_rng_state(s["rng"]["torch"])

    # -- the loop --

    def train_step(self) -> float:
        """One update; returns the loss averaged over all ranks (NaN/Inf: nothing applied)."""
        run, k = self.run, self.step
        if k % self.streams.chunks == 0:  # a new pass over the data starts from zeros
            self.h, self.c = self.model.initial_state(self.h.shape[1])
        x, y = self.streams.chunk(k)
        for group in self.optimizer.param_groups:
            group["lr"] = run.lr_at(k)
        out, (h, c) = self.net(x, (self.h, self.c))
        loss = self.objective(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self.model.parameters(), run.grad_clip)
        # One collective for everything the ranks must agree on: loss, grad norm, stop.
        shared = torch.tensor([loss.item(), norm.item(), float(self.stop[0])], dtype=torch.float64)
        self.d.all_reduce(shared)
        shared[:2] /= self.d.world
        mean_loss, grad_norm, stop = shared.tolist()
        if not (math.isfinite(mean_loss) and math.isfinite(grad_norm)):
            raise TrainingDiverged(
                f"loss became {mean_loss} (gradient norm {grad_norm}) at step {k + 1}; "
                f"stopped. The last good checkpoint in {self.out} is kept as it was; try a "
                "lower --lr"
            )
        self.optimizer.step()
        self.h, self.c = h.detach(), c.detach()
        self.step = k + 1
        self.losses.append(mean_loss)
        # Every rank stops at the same step: the one where any rank's flag was in the sum.
        self.stopping = stop > 0
        return mean_loss

    def log_train(self, elapsed: float, steps_timed: int) -> None:
        run = self.run
        window = self.losses[-run.log_every :]
        mean = sum(window) / len(window)
        rate = steps_timed * run.batch_size * run.seq_len / elapsed if elapsed > 0 else 0.0
        self.metrics.append(
            {
                "kind": "train",
                "step": self.step,
                "loss": mean,
                self.objective.metric: self.objective.value(mean),
                "lr": run.lr_at(self.step - 1),
                self.objective.rate_key: round(rate, 1),  # wall-clock: differs between runs
            }
        )

    def eval_and_save(self) -> None:
        """Rank 0: validate, keep the best, write the resume state; every rank takes part
        in gathering the carried state."""
        h, c = self.d.gather_streams(self.h), self.d.gather_streams(self.c)
        _on_rank0(self.d, lambda: self._eval_and_save(h, c))

    def _eval_and_save(self, h: torch.Tensor, c: torch.Tensor) -> None:
        run, obj = self.run, self.objective
        loss = evaluate(self.model, self.val, run.eval_streams, run.seq_len, obj)
        value = obj.value(loss)
        record = {"kind": "val", "step": self.step, "loss": loss, obj.metric: value}
        is_best = math.isfinite(loss) and (self.best is None or loss < self.best["val_loss"])
        record["best"] = is_best
        self.metrics.append(record)
        self.evals.append(record)
        baseline = "" if self.baseline is None else f" (persistence {self.baseline:.3f})"
        self.bar.note(
            f"step {self.step}/{run.steps}: validation {value:.3f} {obj.unit}{baseline}"
            + (" (best so far)" if is_best else "")
        )
        if is_best:
            self.best = {"step": self.step, "val_loss": loss, f"val_{obj.metric}": value}
            meta = {k: repr(v) for k, v in self.best.items()}
            with _saving(self.out):
                save_checkpoint(self.out, self.model, self.data, metadata=meta)
        self._save_resume(h, c)

    def save_resume(self) -> None:
        h, c = self.d.gather_streams(self.h), self.d.gather_streams(self.c)
        _on_rank0(self.d, lambda: self._save_resume(h, c))

    def _save_resume(self, h: torch.Tensor, c: torch.Tensor) -> None:
        name = f"{self.step:09d}"
        folder = _resume_dir(self.out) / name
        state = {
            "format": STATE_FORMAT,
            "step": self.step,
            "run": asdict(self.run),
            "optimizer": self.optimizer.state_dict(),
            "h": h.clone(),
            "c": c.clone(),
            "losses": list(self.losses),
            "metrics": list(self.metrics),
            "best": self.best,
            "rng": {"torch": torch.get_rng_state()},
            "world_size": self.d.world,
        }
        with _saving(folder):
            save_checkpoint(folder, self.model, metadata={"step": str(self.step)})
            save_torch_state(folder / TRAINER_FILE, state)
            # The pointer moves only once the folder is complete: the commit point.
            pointer = json.dumps({"step": self.step, "dir": name}) + "\n"
            atomic_write_bytes(_resume_dir(self.out) / LATEST_FILE, pointer.encode())
        for p in _resume_dir(self.out).iterdir():
            if p.is_dir() and p.name != name:
                shutil.rmtree(p, ignore_errors=True)
        with _saving(self.out):
            write_metrics(self.out, self.metrics)
            plot_losses(self.out / PLOT_FILE, self.losses, self.evals, self.objective)

    def write_run_file(self) -> None:
        info = {
            "run": asdict(self.run),
            "world_size": self.d.world,
            "threads": torch.get_num_threads(),
        }
        if self.run.task == "char-lm":
            info["corpus"] = {k: self.data[k] for k in ("source", "sha256", "chars")}
        else:
            info["series"] = {k: self.data[k] for k in ("source", "rows", "values_sha256")}
            info["val_persistence"] = {self.objective.metric: self.baseline}
        atomic_write_json(self.out / RUN_FILE, info)

    def loop(self) -> TrainResult:
        run, d, obj = self.run, self.d, self.objective
        progress = self.options.progress and d.main
        with _Progress(progress, run.steps, self.step, obj) as bar:
            self.bar = bar
            if self.step == 0:
                _on_rank0(d, self.write_run_file)
                self.eval_and_save()  # step 0: OUT is a loadable checkpoint from the start
            start, start_step = time.perf_counter(), self.step
            last_log, last_log_step = start, self.step
            while self.step < run.steps:
                loss = self.train_step()
                if d.main and self.on_step is not None:
                    self.on_step(self.step, loss)
                now = time.perf_counter()
                if d.main:
                    done = self.step - start_step
                    rate = done * run.batch_size * run.seq_len / max(now - start, 1e-9)
                    bar.update(self.step, obj.value(loss), rate)
                if self.step % run.log_every == 0:
                    self.log_train(now - last_log, self.step - last_log_step)
                    last_log, last_log_step = now, self.step
                if self.step % run.eval_every == 0 or self.step == run.steps:
                    self.eval_and_save()
                elif self.stopping:
                    self.save_resume()
                if self.stopping:
                    raise TrainingInterrupted(self.step, self.out)
        elapsed = time.perf_counter() - start
        done = self.step - start_step
        key = f"val_{obj.metric}"
        best = self.best or {"step": 0, key: float("nan")}
        return TrainResult(
            out=self.out,
            steps=self.step,
            best_step=int(best["step"]),
            best_val=float(best[key]),
            last_val=float(self.evals[-1][obj.metric]) if self.evals else float("nan"),
            elapsed_s=elapsed,
            items_per_s=done * run.batch_size * run.seq_len / elapsed if elapsed > 0 else 0.0,
            metric=obj.metric,
            unit=obj.unit,
            baseline=self.baseline,
            is_main=d.main,
            items=obj.rate_key.removesuffix("_per_s"),
        )


class _Progress:
    """A rich progress bar (step, loss as the metric, characters or rows/s, ETA) plus one
    line per evaluation, which is what a log file of a non-interactive run shows."""

    def __init__(self, enabled: bool, total: int, done: int, objective: Objective) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[bpc]:.3f} " + objective.metric),
            TextColumn("{task.fields[rate]:,.0f} " + objective.rate_key.replace("_per_s", "/s")),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.task = self.bar.add_task("train", total=total, completed=done, bpc=math.nan, rate=0)

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)

    def update(self, step: int, bpc: float, rate: float) -> None:
        if self.enabled:
            self.bar.update(self.task, completed=step, bpc=bpc, rate=rate)

    def note(self, text: str) -> None:
        if self.enabled:
            self.bar.console.print(text, highlight=False)


def train(options: TrainOptions, *, on_step: StepHook | None = None) -> TrainResult:
    """Train (or resume) a run into `options.out`; see the module docstring for the layout.

    Raises TrainingInterrupted after Ctrl-C/SIGTERM (state saved), TrainingDiverged on a
    NaN/Inf loss (nothing saved), and other LstmEdgeErrors for bad input.
    """
    d = _Dist.start()
    trainer = _Trainer(options, d, on_step)
    try:
        with _stop_on_signals() as stop:
            trainer.stop = stop
            trainer.setup()
            result = trainer.loop()
        d.finish()  # not on errors: a rank that failed alone would leave the others waiting
        return result
    finally:
        d.stop()
