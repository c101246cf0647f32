"""Training: truncated BPTT over contiguous streams, checkpoints that survive kills, torchrun.

The training split is cut into B contiguous streams (B = batch size; lstm_edge.toolchain.
streams); step k reads the k-th chunk of `seq_len` positions of every stream and starts from
the state the previous chunk left (detached), as char-rnn does, because the model will later
run on long streams one step at a time. At the start of every pass over the data the state
is reset to zeros.

Every task shares this loop; it asks the task's training half (lstm_edge.toolchain.tasks)
for the data source, the objective, the run defaults and the threads default. char-lm:
characters of a corpus in, the next character out, cross-entropy, bits per character.
forecast: sensor rows in, the targets `horizon` rows later out, MSE or MAE in standard units.

The run folder (what is written where, and the resume state) is lstm_edge.toolchain.
run_folder; torchrun setup and teardown is lstm_edge.toolchain.distributed.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lstm_edge.runtime.errors import Interrupted
from lstm_edge.runtime.tasks import DEFAULT_TASK
from lstm_edge.toolchain import budget as budget_mod
from lstm_edge.toolchain.budget import Budget
from lstm_edge.toolchain.checkpoint import (
    CONFIG_FILE,
    DATA_FILE,
    InvalidCheckpointError,
    atomic_write_json,
    load_checkpoint,
    save_checkpoint,
)
from lstm_edge.toolchain.distributed import Dist, default_threads, on_rank0
from lstm_edge.toolchain.model import EdgeLSTM, build_model
from lstm_edge.toolchain.objective import Objective
from lstm_edge.toolchain.run_config import (
    MAX_STEPS,
    RunConfig,
    TrainingError,
    TrainOptions,
    run_config,
)
from lstm_edge.toolchain.run_folder import (
    LATEST_FILE,
    METRICS_FILE,
    PLOT_FILE,
    RESUME_DIR,
    RUN_FILE,
    STATE_FORMAT,
    TRAINER_FILE,
    OutputFolderError,
    latest_resume_dir,
    load_resume_state,
    plot_losses,
    prepare_out,
    read_metrics,
    save_resume_state,
    saving,
    write_curves,
    write_metrics,
)
from lstm_edge.toolchain.streams import chunks_per_pass, evaluate, train_streams
from lstm_edge.toolchain.tasks import training
from lstm_edge.toolchain.tasks.training_base import Pairs

# Names callers import from here (the CLI, info, tests).
__all__ = [
    "LATEST_FILE",
    "METRICS_FILE",
    "PLOT_FILE",
    "RESUME_DIR",
    "RUN_FILE",
    "STATE_FORMAT",
    "TRAINER_FILE",
    "Objective",
    "OutputFolderError",
    "Pairs",
    "RunConfig",
    "TrainOptions",
    "TrainResult",
    "TrainingDiverged",
    "TrainingError",
    "TrainingInterrupted",
    "default_threads",
    "evaluate",
    "latest_resume_dir",
    "load_resume_state",
    "plot_losses",
    "read_metrics",
    "train",
    "write_metrics",
]


class TrainingDiverged(TrainingError):
    """The loss became NaN/Inf; the last good checkpoint is kept as it was."""


class TrainingInterrupted(Interrupted):
    """Ctrl-C (or SIGTERM): the current step finished and the resume state was saved."""

    hint = "continue with --resume"

    def __init__(self, step: int, out: Path) -> None:
        super().__init__(f"interrupted after step {step}; state saved in {out}")
        self.step = step
        self.out = out


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
    budget: Budget | None = None  # the timing probe of a --time-budget run

    def report(self) -> str:
        """The one line `lstm-edge train` prints."""
        baseline = "" if self.baseline is None else f" (persistence {self.baseline:.3f})"
        return (
            f"trained {self.steps} steps{self.budget_note()} in {self.elapsed_s:.0f} s "
            f"({self.items_per_s:,.0f} "
            f"{self.items}/s); best validation {self.best_val:.3f} {self.unit}{baseline} at "
            f"step {self.best_step}; checkpoint: {self.out}"
        )

    def budget_note(self) -> str:
        """What a --time-budget run adds to the report line ("" for fixed steps)."""
        b = self.budget
        if b is None:
            return ""
        return f" (fixed by a time budget of {b.seconds:g} s; rerun with --steps {b.steps})"

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


StepHook = Callable[[int, float], None]  # (steps done, loss of that step), rank 0 only


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
        if options.time_budget is not None:
            raise TrainingError(
                f"pass --epochs or --time-budget, not both (--epochs {options.epochs:g} fixes "
                f"the step count; --time-budget {options.time_budget:g} lets a timing probe "
                "choose it)"
            )
        if not (math.isfinite(options.epochs) and options.epochs > 0):
            raise TrainingError(f"epochs is {options.epochs!r} (expected a finite number > 0)")
        if options.epochs * chunks > MAX_STEPS:
            raise TrainingError(
                f"epochs is {options.epochs!r}: {options.epochs * chunks:.3g} steps over "
                f"{chunks} per pass (expected at most {MAX_STEPS} steps)"
            )
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


class _Trainer:
    def __init__(self, options: TrainOptions, d: Dist, on_step: StepHook | None) -> None:
        self.options = options
        self.d = d
        self.on_step = on_step
        self.out = Path(options.out).expanduser().absolute()
        self.stop = [False]  # this rank's signal flag; replaced in `train`
        self.stopping = False  # agreed by all ranks
        self.bar = _Progress(False, 0, 0, Objective.of(RunConfig()))
        self.baseline: float | None = None
        self.budget: Budget | None = None  # a --time-budget run's timing probe

    # -- setup --

    def setup(self) -> None:
        o, d = self.options, self.d
        prepare = functools.partial(prepare_out, self.out, resume=o.resume, force=o.force)
        resume, saved_run, probe = self._start(prepare)
        task = training(probe.task)
        torch.set_num_threads(o.threads or task.threads(d.local_world))
        source = task.source(o, probe, resume)
        self.data = source.data
        self.task = task
        chunks = task.steps_per_pass(source.train, probe) or chunks_per_pass(source.train, probe)
        self.run = run = _resolve_run(o, probe.task, saved_run, chunks)
        self.objective = task.objective_for(run, source)
        if run.batch_size % d.world:
            raise TrainingError(
                f"batch size {run.batch_size} does not divide among {d.world} ranks"
            )
        if not o.resume:
            on_rank0(d, prepare)  # only now: bad data or a bad setting leaves no folder behind

        torch.manual_seed(run.seed)
        self.model = build_model(source.config, run.dropout)
        task.initialize(self.model)  # a resumed run's weights replace these below
        self.val = self._normalized(source.val)
        if source.val_now is not None:  # persistence: the targets now, for `horizon` ahead
            now = Pairs(source.val.inputs, source.val_now, source.val.before)
            now = self._normalized(now).targets
            loss = self.objective(torch.from_numpy(now), torch.from_numpy(self.val.targets))
            self.baseline = self.objective.value(float(loss))
        train = self._normalized(source.train)
        self.streams = task.train_batches(train, run, d) or train_streams(train, run, d)
        self.optimizer = self._new_optimizer()
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
        if resume is not None:  # the recorded count stands: never probed again
            self.budget = Budget.from_record(resume.get("budget"))
        elif run.time_budget is not None:
            self._fix_steps(run.time_budget)

    def _new_optimizer(self) -> torch.optim.Optimizer:
        run = self.run
        return torch.optim.AdamW(
            self.model.parameters(), lr=run.lr_at(0), weight_decay=run.weight_decay
        )

    def _fix_steps(self, seconds: float) -> None:
        """Time real training steps and one validation (lstm_edge.toolchain.budget), undo
        them, and make the run one of the step count that fits `seconds`. The model, the
        random state and the carried state are restored and the optimizer is new, so the
        run equals a `--steps N` run of the count chosen. Every rank takes rank 0's count."""
        weights = {k: v.clone() for k, v in self.model.state_dict().items()}
        rng, h, c = torch.get_rng_state(), self.h, self.c
        self.run = replace(self.run, steps=budget_mod.MAX_STEPS_FIT)  # no schedule bound
        self.optimizer = self._new_optimizer()
        measured = budget_mod.measure(
            seconds,
            self.train_step,
            lambda: on_rank0(self.d, self._validation_loss),
            self.run.eval_every,
            adaptive=self.d.world == 1,
        )
        self.budget = budget = self.d.broadcast(measured)
        self.model.load_state_dict(weights)
        torch.set_rng_state(rng)
        self.h, self.c, self.step, self.losses = h, c, 0, []
        self.run = replace(self.run, steps=budget.steps)
        self.optimizer = self._new_optimizer()

    def _start(
        self, prepare: Callable[[], None]
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, RunConfig]:
        """(the resume state or None, the saved run settings or None, the settings the data
        depends on: `steps` may still come from --epochs)."""
        o, d = self.options, self.d
        if not o.resume:
            task = o.task or DEFAULT_TASK
            given = {k: v for k, v in o.given().items() if k not in ("steps", "task")}
            return None, None, run_config(task, given)
        on_rank0(d, prepare)  # cleans what a killed run left before reading its state
        resume = d.broadcast(on_rank0(d, lambda: self._load_resume()))
        saved_run = resume["run"]
        task = saved_run.get("task", DEFAULT_TASK)  # runs saved before tasks existed
        if o.task is not None and o.task != task:
            raise TrainingError(f"--task {o.task} differs from the run being resumed (task {task})")
        return resume, saved_run, RunConfig(**saved_run)

    def _normalized(self, pairs: Pairs) -> Pairs:
        """Targets in the units of the loss (forecast: standard units)."""
        return self.task.normalized(self.model, pairs)

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
        if self.streams.starts_fresh(k):  # a new pass (or sequence batch) starts from zeros
            self.h, self.c = self.model.initial_state(self.h.shape[1])
        x, y = self.streams.chunk(k)
        x = self.task.augment(self.model.config, x)
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
        self._check_weights_finite(k, mean_loss)
        self.h, self.c = h.detach(), c.detach()
        self.step = k + 1
        self.losses.append(mean_loss)
        # Every rank stops at the same step: the one where any rank's flag was in the sum.
        self.stopping = stop > 0
        return mean_loss

    def _check_weights_finite(self, k: int, mean_loss: float) -> None:
        """An update that leaves a weight NaN/Inf is a divergence like a non-finite loss:
        stop before anything is saved, so the last good checkpoint stays as it was."""
        params = [p.detach() for p in self.model.parameters()]
        with torch.no_grad():
            # A sum is finite when every value is (cheap); only if not, the exact test
            # decides, since sums of huge finite values can overflow too.
            if math.isfinite(float(sum(p.sum(dtype=torch.float64) for p in params))):
                return
            bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise TrainingDiverged(
                f"weights became NaN or Inf ({', '.join(bad)}) in the update of step {k + 1} "
                f"(loss {mean_loss}); stopped. The last good checkpoint in {self.out} is kept "
                "as it was; try a lower --lr"
            )

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
        on_rank0(self.d, lambda: self._eval_and_save(h, c))

    def _validation_loss(self) -> float:
        run, obj = self.run, self.objective
        loss = self.task.validation_loss(self.model, self.val, run, obj)
        if loss is None:  # the task reads the shared contiguous streams
            loss = evaluate(self.model, self.val, run.eval_streams, run.seq_len, obj)
        return loss

    def _eval_and_save(self, h: torch.Tensor, c: torch.Tensor) -> None:
        run, obj = self.run, self.objective
        loss = self._validation_loss()
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
            with saving(self.out):
                save_checkpoint(self.out, self.model, self.data, metadata=meta)
        self._save_resume(h, c)

    def save_resume(self) -> None:
        h, c = self.d.gather_streams(self.h), self.d.gather_streams(self.c)
        on_rank0(self.d, lambda: self._save_resume(h, c))

    def _save_resume(self, h: torch.Tensor, c: torch.Tensor) -> None:
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
            "budget": None if self.budget is None else self.budget.record(),
        }
        save_resume_state(self.out, self.model, state)
        write_curves(self.out, self.metrics, self.losses, self.evals, self.objective)

    def write_run_file(self) -> None:
        info = {
            "run": asdict(self.run),
            "world_size": self.d.world,
            "threads": torch.get_num_threads(),
            # a --time-budget run: what the timing probe measured and the count it fixed
            "budget": None if self.budget is None else self.budget.record(),
        }
        info.update(self.task.run_info(self.data, self.objective, self.baseline))
        atomic_write_json(self.out / RUN_FILE, info)

    def loop(self) -> TrainResult:
        run, d, obj = self.run, self.d, self.objective
        progress = self.options.progress and d.main
        title = "train"
        if self.budget is not None:
            title += f" ({self.budget.seconds:g} s budget: {run.steps:,} steps)"
        with _Progress(progress, run.steps, self.step, obj, title) as bar:
            self.bar = bar
            if self.step == 0 and self.budget is not None:
                bar.note(self.budget.line())
            if self.step == 0:
                on_rank0(d, self.write_run_file)
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
            items=self.task.items,
            budget=self.budget,
        )


class _Progress:
    """A rich progress bar (step, loss as the metric, characters or rows/s, ETA) plus one
    line per evaluation, which is what a log file of a non-interactive run shows."""

    def __init__(
        self, enabled: bool, total: int, done: int, objective: Objective, title: str = "train"
    ) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn(f"[bold]{escape(title)}"),
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

    A new forecast run whose linear highway was chosen by `--ar-lags auto` is trained a
    second time without it, and the validation split keeps the better of the two
    (`_keep_better_on_validation`).

    Raises TrainingInterrupted after Ctrl-C/SIGTERM (state saved), TrainingDiverged on a
    NaN/Inf loss (nothing saved), and other LstmEdgeErrors for bad input.
    """
    result = _train_once(options, on_step)
    if _highway_by_auto(options, result):
        result = _keep_better_on_validation(options, result, on_step)
    return result


def _train_once(options: TrainOptions, on_step: StepHook | None) -> TrainResult:
    d = Dist.start()
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


def _highway_by_auto(options: TrainOptions, result: TrainResult) -> bool:
    """A new single-process run with a highway that `--ar-lags auto` chose."""
    if options.resume or not result.is_main or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return False
    data = load_checkpoint(result.out).data
    return bool(data.get("ar_lags")) and str(data.get("ar_lags_source", "")).startswith("auto")


def _keep_better_on_validation(
    options: TrainOptions, with_highway: TrainResult, on_step: StepHook | None
) -> TrainResult:
    """Train the same run without the highway beside `with_highway`'s folder and keep the
    one with the better best-validation metric in `options.out` (the metric is the error
    of the whole forecast either way: the highway's run learns the residual of the same
    targets). The choice and both figures go into data.json's ar_lags_source. On the
    built-in signal, whose target follows its load columns, the LSTM alone wins (measured
    0.404 against 0.413-0.419 normalized RMSE); on weekly CO2 and electricity demand the
    highway does."""
    out = with_highway.out
    data = load_checkpoint(out).data
    lags, source = data["ar_lags"], data["ar_lags_source"]
    metric = f"{with_highway.metric} {{:.4f}}"
    Console(stderr=True).print(
        "training the LSTM alone (no linear highway) to compare on the validation split"
    )
    alt = Path(tempfile.mkdtemp(prefix=f".{out.name}.no-highway-", dir=out.parent))
    try:
        try:
            alone = _train_once(replace(options, out=alt, ar_lags="0", force=True), on_step)
        except TrainingInterrupted:
            # The run with the highway is whole; say the comparison did not happen.
            _record_choice(out, f"{source} (the comparison without it was interrupted)")
            raise TrainingInterrupted(with_highway.steps, out) from None
        keep_alone = alone.best_val < with_highway.best_val
        both = (
            f"best validation {metric.format(alone.best_val)} without, "
            f"{metric.format(with_highway.best_val)} with {lags} lagged changes"
        )
        if keep_alone:
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
            out.rename(trash / out.name)
            alt.rename(out)
            alt = trash
            why = f"auto: validation chose no highway ({both})"
        else:
            why = f"{source}, kept by validation ({both})"
    finally:
        shutil.rmtree(alt, ignore_errors=True)
    _record_choice(out, why)
    chosen = replace(alone, out=out) if keep_alone else with_highway
    return replace(chosen, elapsed_s=with_highway.elapsed_s + alone.elapsed_s)


def _record_choice(out: Path, why: str) -> None:
    """ar_lags_source in the kept run's data.json (a resume reads it there too) and in
    its train.json."""
    data = load_checkpoint(out).data
    data["ar_lags_source"] = why
    atomic_write_json(out / DATA_FILE, data)
    run_file = out / RUN_FILE
    if run_file.is_file():
        run = json.loads(run_file.read_text(encoding="utf-8"))
        if isinstance(run.get("highway"), dict):
            run["highway"]["ar_lags_source"] = why
            atomic_write_json(run_file, run)
