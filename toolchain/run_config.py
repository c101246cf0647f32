"""The settings of a training run and the options that set them, torch-free so the CLI can
show their defaults in --help without importing torch (`lstm_edge.toolchain.train` imports
torch; it re-exports these).

One `RunConfig` for every task; `run_config(task, given)` starts from the task's defaults
(`defaults` of its training half in lstm_edge.toolchain.tasks: forecast models are small
and train in a couple of minutes).

`TrainSettings` declares every training option once: its field is what `train`, `pipeline`
and library callers pass, and its `Flag` is how the `train` and `pipeline` commands show it
(the CLI builds its parameters from these declarations)."""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field, fields
from pathlib import Path
from typing import Any

from lstm_edge.runtime.config import TASKS
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.tasks import DEFAULT_TASK
from lstm_edge.toolchain.budget import DEFAULT_SECONDS, MAX_STEPS_FIT, MIN_STEPS_FIT

# Training losses of the forecast task, in training-split standard units.
FORECAST_LOSSES = ("mse", "mae")
MAX_LR = 1e3  # far above any useful rate; ~1e37 overflows inside the optimizer
MAX_STEPS = 10**9  # a bound on --steps (and --epochs): beyond it a run never ends
MAX_TIME_BUDGET = 10**7  # seconds (~4 months): beyond it the number is a mistake


class TrainingError(LstmEdgeError):
    """Training cannot start or continue (bad options, output folder, resume state)."""


@dataclass(frozen=True)
class RunConfig:
    """Every setting that shapes the result of a run; saved with it and reused on resume."""

    hidden: int = 256
    layers: int = 2
    embed: int = 64
    seq_len: int = 128
    batch_size: int = 32  # global: the number of contiguous streams, over all ranks
    steps: int = 3000  # with time_budget: the count the timing probe fixed
    # Seconds of training: a timing probe fixes `steps` before step 1 (lstm_edge.toolchain.
    # budget). None: `steps` as given. char-lm's default is a budget (tasks/char_lm.py).
    time_budget: float | None = None
    lr: float = 3e-3
    min_lr_fraction: float = 0.1  # cosine decays to lr * this
    warmup_steps: int = 100  # at most steps // 10
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # The built-in corpus is small (420K training chars) for a 2x256 LSTM: without dropout
    # validation BPC stopped improving after ~1/3 of the default steps.
    dropout: float = 0.2
    seed: int = 0
    eval_every: int = 250
    eval_streams: int = 16  # the validation text is read as this many contiguous streams
    log_every: int = 10
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    max_vocab: int | None = None
    min_count: int = 1
    task: str = DEFAULT_TASK
    # forecast only: the output at step t predicts the targets at t + horizon; the loss
    # compares them in training-split standard units (MSE or MAE).
    horizon: int = 1
    loss: str = "mse"

    def check(self) -> None:
        if self.task not in TASKS:
            raise TrainingError(f"task {self.task!r} is unknown (expected one of {tuple(TASKS)})")
        if self.loss not in FORECAST_LOSSES:
            raise TrainingError(
                f"loss {self.loss!r} is unknown (expected one of {FORECAST_LOSSES})"
            )
        positive = ("hidden", "layers", "embed", "seq_len", "batch_size", "steps")
        positive += ("eval_every", "eval_streams", "log_every", "min_count", "horizon")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TrainingError(f"{name} is {value!r} (expected an integer >= 1)")
        if self.steps > MAX_STEPS:
            raise TrainingError(f"steps is {self.steps!r} (expected at most {MAX_STEPS})")
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise TrainingError(f"{name} is {value!r} (expected a finite number > 0)")
        if self.lr > MAX_LR:  # torch's Adam overflows float32 computing its step from ~1e37
            raise TrainingError(f"lr is {self.lr!r} (expected at most {MAX_LR:g})")
        if not 0 <= self.min_lr_fraction <= 1:
            raise TrainingError(f"min_lr_fraction is {self.min_lr_fraction!r} (expected 0..1)")
        if not 0 <= self.dropout < 1:
            raise TrainingError(f"dropout is {self.dropout!r} (expected 0 <= dropout < 1)")
        budget = self.time_budget
        if budget is not None and not (
            not isinstance(budget, bool)
            and isinstance(budget, (int, float))
            and math.isfinite(budget)
            and 0 < budget <= MAX_TIME_BUDGET
        ):
            raise TrainingError(
                f"time budget is {budget!r} (expected a finite number of seconds > 0 and "
                f"at most {MAX_TIME_BUDGET:g})"
            )
        for name in ("warmup_steps", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise TrainingError(f"{name} is {value!r} (expected a finite number >= 0)")

    def lr_at(self, step: int) -> float:
        """Learning rate for the update that makes step `step` (0-based): linear warmup,
        then cosine down to lr * min_lr_fraction. A pure function of the step, so a
        resumed run follows the same schedule."""
        # Warmup never takes more than a tenth of a short run.
        warmup = min(self.warmup_steps, self.steps // 10)
        if step < warmup:
            return self.lr * (step + 1) / warmup
        span = max(1, self.steps - warmup)
        progress = min(1.0, (step - warmup) / span)
        floor = self.lr * self.min_lr_fraction
        return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def run_config(task: str, given: dict[str, Any]) -> RunConfig:
    """The task's defaults overridden by `given`; settings only other tasks use are refused."""
    from lstm_edge.toolchain.tasks import all_training

    if task not in TASKS:
        raise TrainingError(f"task {task!r} is unknown (expected one of {TASKS})")
    this = training_of(task)
    for other in all_training():
        if other is this:
            continue
        wrong = [
            "--" + n.replace("_", "-")
            for n in other.only
            if given.get(n) is not None and n not in this.only
        ]
        if wrong:
            verb = "applies" if len(wrong) == 1 else "apply"
            takers = "/".join(t.name for t in all_training() if set(other.only) & set(t.only))
            raise TrainingError(
                f"{', '.join(wrong)} {verb} to --task {takers} only (this run is --task {task})"
            )
    settings = {**this.defaults, **given, "task": task}
    if given.get("steps") is not None:  # a step count given replaces a default budget
        if given.get("time_budget") is not None:
            raise TrainingError(
                f"pass --steps or --time-budget, not both (--steps {given['steps']} fixes "
                f"the step count; --time-budget {given['time_budget']:g} lets a timing probe "
                "choose it)"
            )
        settings["time_budget"] = None
    run = RunConfig(**settings)
    run.check()
    return run


def training_of(task: str) -> Any:
    """The task's training half (lstm_edge.toolchain.tasks.training_base)."""
    from lstm_edge.toolchain.tasks import training

    return training(task)


def default_text(name: str) -> str:
    """The default of a setting as --help shows it: per task where they differ."""
    from lstm_edge.toolchain.tasks import all_training

    base = getattr(RunConfig(), name)
    parts = [f"{base}"]
    for task in all_training():
        value = task.defaults.get(name, base)
        if value != base:
            parts.append(f"{task.name} {value}")
    return "; ".join(parts)


# ---- the training options ------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """How a training option appears on the command line.

    `help` is the `train` command's text; `shows_default` appends the run default (per task
    where they differ). `pipeline` is the shorter text of the `pipeline` command, which
    offers the options that have one. `choices` makes a choice of these strings; `columns`
    reads a comma-separated list into a tuple."""

    help: str
    decls: tuple[str, ...] = ()  # default: --the-field-name
    min: int | float | None = None
    max: int | float | None = None
    choices: tuple[str, ...] | None = None
    columns: bool = False
    shows_default: bool = False
    pipeline: str | None = None


FLAG = "flag"  # the key of a field's Flag in its metadata


def option(help: str, *decls: str, **flag: Any) -> Any:
    """A dataclass field declaring a training option (see `Flag`)."""
    return field(default=None, metadata={FLAG: Flag(help, decls, **flag)})


def redefault(name: str, default: Any) -> Any:
    """The declaration of `TrainSettings.name` with another default (for a subclass)."""
    return field(default=default, metadata=TrainSettings.__dataclass_fields__[name].metadata)


def flag_of(f: Any) -> Flag | None:
    """The Flag of a dataclass field, or None if it is no command-line option."""
    return f.metadata.get(FLAG)


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """What the user asked of a training run. None means: the default for a new run, the
    saved value on --resume (where a setting that differs from the saved one is refused).
    The `RunConfig` fields among these are the run's settings; the others pick its data
    (per task) or how this process runs."""

    task: str | None = option(
        "char-lm: a character model for predictive typing. forecast: next values of "
        "numeric sensor columns (the built-in machine signal, or --csv). Default: char-lm; "
        "with --resume: the run's own.",
        "--task",
        choices=tuple(TASKS),
        pipeline="char-lm (predictive typing) or forecast (sensor columns; adds a detect stage).",
    )
    corpus: Path | None = option(  # noqa: RUF009  (a field); char-lm; None: built-in
        "char-lm: a UTF-8 text file or a folder of .txt files. Default: the CPython "
        "docs that ship with Python (pydoc_data), no download.",
        "--corpus",
        pipeline="char-lm: training text (file or folder of .txt). Default: built-in.",
    )
    # forecast data: a CSV (None: the built-in machine signal) and its columns
    csv: Path | None = option(  # noqa: RUF009  (a field)
        "forecast: a UTF-8 CSV with a header row and numeric columns (rows in time "
        "order). Default: the built-in machine signal (15-minute samples of load, "
        "ambient_temp, current, motor_temp, vibration with injected faults).",
        "--csv",
        pipeline="forecast: a CSV of sensor columns. Default: the built-in signal.",
    )
    target: tuple[str, ...] | None = option(  # None: the built-in signal's BUILTIN_TARGETS
        "forecast: the column(s) to predict, comma-separated. Default for the built-in "
        "signal: motor_temp,vibration; required for a CSV with more than one column.",
        "--target",
        columns=True,
        pipeline="forecast: column(s) to predict, comma-separated.",
    )
    features: tuple[str, ...] | None = option(  # None: every numeric column
        "forecast: the input columns, comma-separated. Default: every numeric column "
        "(all but --time-column and --label-column), targets included.",
        "--features",
        columns=True,
        pipeline="forecast: input columns, comma-separated. Default: all.",
    )
    time_column: str | None = option(
        "forecast: a CSV column of numbers or ISO 8601 date-times that must strictly "
        "increase; checked, never an input.",
        "--time-column",
        pipeline="forecast: a CSV time column (checked, not an input).",
    )
    label_column: str | None = option(
        "forecast: a CSV column of 0/1 fault labels; kept for anomaly scoring, never an input.",
        "--label-column",
        pipeline="forecast: a CSV column of 0/1 fault labels (scores the detect stage).",
    )
    text_column: str | None = option(
        "classify: the CSV column of texts (one sequence of characters per row, with a "
        "label column); a CSV with a 'text' column is read so without this option.",
        "--text-column",
        pipeline="classify: the CSV column of texts (character sequences).",
    )
    horizon: int | None = option(
        "forecast: predict the targets this many rows ahead.",
        min=1,
        shows_default=True,
        pipeline="forecast: predict this many rows ahead.",
    )
    loss: str | None = option(
        "forecast: training loss in training-split standard units; validation reports "
        "normalized RMSE (mse) or MAE (mae).",
        "--loss",
        choices=FORECAST_LOSSES,
        shows_default=True,
    )
    season: int | None = option(  # rows per season, for seasonal persistence (data.json)
        "forecast: the season length in rows (e.g. rows per day), recorded for the "
        "seasonal-persistence baseline. Default: 96 for the built-in signal, none for a CSV.",
        min=1,
        pipeline="forecast: season length in rows, for the baseline.",
    )
    target_kind: str | None = option(
        "forecast: what the model learns: change (the change from each target's last "
        "value, scaled by the training split's changes; survives a trend) or level (the "
        "values themselves). Default: change when the validation rows leave the training "
        "rows' range and every target is also a feature, else level.",
        "--target-kind",
        choices=("change", "level"),
        pipeline="forecast: change or level (default: by the validation split's range).",
    )
    ar_lags: str | None = option(
        "forecast: lagged changes of the linear highway, an autoregression fitted on the "
        "training split and carried in the model (the LSTM learns what it leaves). auto: "
        "the linear baseline's (season + 1, or 8); 0: none. Needs the targets as features.",
        "--ar-lags",
        pipeline="forecast: lagged changes of the linear highway (auto, 0 = none, or N).",
    )
    hidden: int | None = option(
        "LSTM hidden size.", min=1, shows_default=True, pipeline="LSTM hidden size."
    )
    layers: int | None = option("LSTM layers.", min=1, shows_default=True, pipeline="LSTM layers.")
    embed: int | None = option(
        "char-lm: embedding size.", min=1, shows_default=True, pipeline="Embedding size."
    )
    seq_len: int | None = option(
        "Characters or rows per truncated-BPTT chunk.",
        min=1,
        shows_default=True,
        pipeline="Training chunk length.",
    )
    batch_size: int | None = option(
        "Contiguous streams per step, over all ranks (torchrun splits them).",
        min=1,
        shows_default=True,
        pipeline="Training streams.",
    )
    steps: int | None = option(
        "Optimizer steps, exactly (e.g. a --time-budget run's recorded count, to rerun it). "
        "Replaces char-lm's default time budget. Default: char-lm: what --time-budget "
        "fixes; forecast 1500; classify 1200; with --resume: the run's own.",
        min=1,
        pipeline="Training steps (exact; replaces char-lm's default time budget).",
    )
    time_budget: float | None = option(
        "Seconds of training: a timing probe of a few real steps fixes the step count "
        "(recorded in train.json; --resume keeps it, --steps N reruns it). Clamped to "
        f"{MIN_STEPS_FIT:,}..{MAX_STEPS_FIT:,} steps. Default: char-lm {DEFAULT_SECONDS:g} "
        "unless --steps/--epochs; other tasks: fixed --steps.",
        "--time-budget",
        pipeline="Seconds of training; a timing probe fixes the steps (char-lm default "
        f"{DEFAULT_SECONDS:g}).",
    )
    epochs: float | None = option(  # instead of steps: passes over the training split
        "Instead of --steps: passes over the training split (may be fractional)."
    )
    lr: float | None = option(
        "Peak learning rate (AdamW; warmup, then cosine).", shows_default=True
    )
    min_lr_fraction: float | None = None
    warmup_steps: int | None = option(
        "Linear warmup steps (at most steps/10).", min=0, shows_default=True
    )
    weight_decay: float | None = option("AdamW weight decay.", min=0, shows_default=True)
    grad_clip: float | None = option("Clip the gradient norm to this.", shows_default=True)
    dropout: float | None = option(
        "Dropout between LSTM layers and before the head, in training only.",
        min=0.0,
        max=0.99,
        shows_default=True,
    )
    seed: int | None = option("Random seed.", shows_default=True)
    eval_every: int | None = option(
        "Validate (loss, BPC or normalized error), keep the best model and save the "
        "resume state every N steps.",
        min=1,
        shows_default=True,
    )
    eval_streams: int | None = None
    log_every: int | None = option(
        "Write a training-loss line to metrics.jsonl every N steps.", min=1
    )
    val_fraction: float | None = None
    test_fraction: float | None = None
    max_vocab: int | None = option(
        "char-lm: cap the vocabulary (unknown character included) at the most frequent "
        "characters of the training split. Default: no cap.",
        min=2,
    )
    min_count: int | None = option(
        "char-lm: characters seen fewer times in the training split map to the unknown id.",
        min=1,
        shows_default=True,
    )
    threads: int | None = option(  # torch intra-op threads; default: cores / local ranks
        "Torch CPU threads per process. Default: this process's share of the cores "
        "(cores / processes on this machine); forecast: 1 (its small model gains nothing "
        "from more). The threads wait asleep (OMP_WAIT_POLICY=PASSIVE unless set), so "
        "another busy process slows training about in proportion to the cores it takes.",
        min=1,
    )

    def given(self) -> dict[str, Any]:
        """The run settings (RunConfig fields) that were given."""
        return {k: getattr(self, k) for k in RUN_FIELDS if getattr(self, k) is not None}

    def settings(self) -> dict[str, Any]:
        """Every training option as a keyword argument (to pass them on)."""
        return {f.name: getattr(self, f.name) for f in fields(TrainSettings)}


RUN_FIELDS = tuple(f.name for f in fields(RunConfig))


@dataclass(frozen=True)
class TrainOptions(TrainSettings):
    """A training run: where it goes, how it starts, and its `TrainSettings`."""

    out: Path
    _: KW_ONLY
    resume: bool = False  # continue the run in `out` (same settings)
    force: bool = False  # replace a run that `out` holds
    progress: bool = True
