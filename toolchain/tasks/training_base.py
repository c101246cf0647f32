"""What every task's training half answers (`TRAINING` of tasks/<module>.py), and the data it
hands the training loop. Torch-free at import: the CLI reads the defaults for --help.

The loop in lstm_edge.toolchain.train asks the task for its data source (a new run's data and
config, or a resumed run's), its objective, its run defaults and the settings only it uses,
and the held-out stream later stages compare on; it never compares task names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lstm_edge.runtime.config import ModelConfig

if TYPE_CHECKING:
    from lstm_edge.toolchain.model import EdgeLSTM, TorchStages
    from lstm_edge.toolchain.objective import Objective
    from lstm_edge.toolchain.run_config import RunConfig, TrainSettings


@dataclass(frozen=True)
class Pairs:
    """A split as aligned (input, target) positions: inputs[i] is read, targets[i] is
    what the output at that step should be. char-lm: ids[:-1], ids[1:]; forecast: the
    feature rows [:-horizon] and the (normalized) target rows [horizon:]."""

    inputs: np.ndarray
    targets: np.ndarray
    # forecast: the rows just before `inputs` in the series, which a model with the linear
    # highway has read when it forecasts `inputs[0]` (its history); never scored
    before: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class Source:
    """A task's data, ready for the loop: the model config, the data.json record and the
    train/val splits as aligned pairs (raw; forecast targets are normalized later)."""

    config: ModelConfig
    data: dict[str, Any]
    train: Pairs
    val: Pairs
    val_now: np.ndarray | None = None  # forecast: the val targets at t (persistence)


@dataclass(frozen=True)
class HeldOut:
    """A held-out stream of a checkpoint's recorded data, the one builder per task.

    `inputs` is what the model reads step by step ([steps] int64 token ids, or [steps, F]
    float32 raw feature rows); `targets` what the steps are scored against: char-lm the
    next id of each input ([steps]); forecast the raw target columns of the same rows
    ([steps, T]; the output at t predicts them at t + horizon). `rows` is the length of
    the split before cycling; `cycled` whether the stream wrapped around to its start."""

    inputs: np.ndarray
    targets: np.ndarray
    rows: int
    cycled: bool


class TaskTraining:
    """Base of the tasks' training halves; subclasses set the attributes and implement the
    methods that raise NotImplementedError."""

    name: str  # the config's "task" value (the runtime spec's name)
    # RunConfig settings only this task uses: given for another task, they are refused.
    only: tuple[str, ...] = ()
    # Where this task's run defaults differ from RunConfig's.
    defaults: ClassVar[dict[str, Any]] = {}
    items: str  # what a training step reads, per rate: "chars" | "rows"
    torch_stages: TorchStages  # the task's input and output stages in torch

    def stages_for(self, config: ModelConfig) -> TorchStages:
        """The torch stages of `config` (a task with two input kinds picks by the config)."""
        return self.torch_stages

    # How the export self-check names its stream: the held-out split, the reason it is
    # unavailable, and the seeded fallback (`spec.synthetic_inputs`); and the errors a
    # missing or changed data source raises.
    held_out_name: str
    held_out_unavailable: str
    fallback_name: str
    data_errors: tuple[type[Exception], ...]

    def threads(self, processes: int) -> int:
        """Torch threads per process when --threads is not given."""
        from lstm_edge.toolchain.distributed import default_threads

        return default_threads(processes)

    def objective(self, run: RunConfig) -> Objective:
        """The loss the run trains by and the metric it reports."""
        raise NotImplementedError

    def source(
        self, options: TrainSettings, probe: RunConfig, resume: dict[str, Any] | None
    ) -> Source:
        """The data of a new run (from the options, with `probe`'s data settings) or of the
        run being resumed (`resume`: its saved config and data record, which the options
        must not contradict). Refuses the options of the other tasks' data."""
        raise NotImplementedError

    def objective_for(self, run: RunConfig, source: Source) -> Objective:
        """The objective of a run on `source` (the default: `objective(run)`; a task whose
        loss depends on the data, such as class weights, overrides this)."""
        return self.objective(run)

    # Where a task reads whole sequences instead of contiguous streams, it overrides the
    # three below; None (the default) leaves the training loop's contiguous streams with
    # the state carried (lstm_edge.toolchain.streams).

    def steps_per_pass(self, pairs: Pairs, run: RunConfig) -> int | None:
        """Training steps per pass over `pairs` (what --epochs counts)."""
        return None

    def train_batches(self, pairs: Pairs, run: RunConfig, d: Any) -> Any:
        """This rank's batches: `chunk(step)` -> (inputs, targets), `chunks` per pass and
        `starts_fresh(step)`, whether that step starts from a zero state."""
        return None

    def validation_loss(
        self, model: EdgeLSTM, pairs: Pairs, run: RunConfig, objective: Objective
    ) -> float | None:
        """The mean validation loss the best checkpoint is chosen by."""
        return None

    def initialize(self, model: EdgeLSTM) -> None:
        """Set a new model's starting weights where the task needs its own (the default:
        torch's initialization as it is)."""

    def augment(self, config: ModelConfig, inputs: Any) -> Any:
        """A training chunk's inputs as the step reads them (the default: as they are)."""
        return inputs

    def normalized(self, model: EdgeLSTM, pairs: Pairs) -> Pairs:
        """The pairs with targets in the units of the loss (the default: as they are)."""
        return pairs

    def run_info(
        self, data: dict[str, Any], objective: Objective, baseline: float | None
    ) -> dict[str, Any]:
        """What train.json records about the data (and a baseline's metric)."""
        raise NotImplementedError

    def held_out_stream(
        self,
        data: dict[str, Any],
        config: ModelConfig,
        split: str = "test",
        steps: int | None = None,
        *,
        cycle: bool = False,
    ) -> HeldOut:
        """`steps` steps of split `split` of the recorded data (`data`: the checkpoint's
        data.json record): all of it if steps is None; a shorter split is cut (the
        stream is shorter) or, with `cycle`, repeated from its start. Raises the task's
        data error if the record or its data is missing or changed."""
        raise NotImplementedError


def take(n: int, steps: int | None, cycle: bool) -> tuple[np.ndarray, bool]:
    """Row indices of a `steps`-long stream over `n` rows: cut, or wrapped with `cycle`."""
    if steps is None:
        return np.arange(n), False
    if cycle and steps > n > 0:  # an empty split stays empty (its caller refuses it)
        return np.arange(steps) % n, True
    return np.arange(min(n, steps)), False
