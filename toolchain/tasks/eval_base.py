"""What every task's evaluation half answers (`EVAL` of tasks/<module>_eval.py).

`validate`, `pipeline`, `bench`, `info`, `detect` and `eval-typing` ask these objects
for what differs per task and never compare task names: the held-out stream and the
per-step error, the metric and its tolerance table, the report table and SUMMARY.md's
section, codegen's check of a C model against torch, what `info` shows of a config, and
which stages the pipeline runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from rich.table import Table

    from lstm_edge.runtime.config import ModelConfig
    from lstm_edge.runtime.tasks.base import TaskSpec
    from lstm_edge.toolchain.checkpoint import Checkpoint


class TaskEval:
    """Base of the tasks' evaluation halves. Subclasses set the class attributes and
    implement the methods that raise NotImplementedError."""

    spec: TaskSpec  # the task's torch-free spec (runtime/tasks)
    # The ValidateOptions field holding this task's tolerance table (scheme -> tolerance).
    tolerance_option: str
    error_label: str  # validate's per-step error, as the plot's axis names it
    table_width: int = 120  # console columns the validation table needs unwrapped
    data_unit: str  # what `info` counts a data split in ("chars", "rows")
    has_detect: bool = False  # the pipeline runs its `detect` stage on the quantized model
    # How validate runs the stream, as SUMMARY.md says it.
    lock_step: str = "torch and each artifact in lock-step, state carried"

    def require(self, config: ModelConfig, error: type[Exception], message: str) -> None:
        """Raise error(message) unless `config` is a model of this task (for commands only
        this task has: `detect`, `eval-typing`)."""
        if config.task != self.spec.name:  # any input kind of the task
            raise error(message)

    # ---- validate ---------------------------------------------------------------------

    def tolerances(self, options: Any) -> Mapping[str, Any]:
        """This task's tolerance table from `ValidateOptions`."""
        return getattr(options, self.tolerance_option)

    def build_stream(self, ckpt: Checkpoint, options: Any) -> Any:
        """The held-out (or given) stream for `options.steps` steps; it has `inputs`,
        `steps`, `source`, `cycled`, `source_size`, `unit` and `report_fields()`."""
        raise NotImplementedError

    def evaluate(
        self, ref: Any, run: Any, stream: Any, config: ModelConfig, **names: str
    ) -> tuple[Any, Any]:
        """(per-step trace, summary) of one artifact run against torch's outputs `ref`;
        `names`: artifact, scheme, backend."""
        raise NotImplementedError

    def reference_outputs(self, model: Any, stream: Any) -> np.ndarray:
        """torch's outputs [steps, out] over `stream` (the default: one stream, state
        carried; a task of independent sequences starts each from zeros)."""
        from lstm_edge.toolchain.validate_run import torch_outputs

        return torch_outputs(model, stream.inputs)

    def artifact_outputs(self, rt_model: Any, stream: Any, chunk: int, progress: Any = None) -> Any:
        """A runtime model stepped over `stream`, `chunk` steps per call (a RuntimeRun);
        the default carries the state over the whole stream."""
        from lstm_edge.toolchain.validate_run import runtime_outputs

        return runtime_outputs(rt_model, stream.inputs, chunk, progress)

    def write_extra(self, report: Any, folder: Path) -> list[Path]:
        """Task files `validate --report-dir` writes beside report.json (none by default)."""
        return []

    def check(self, summary: Any, tolerance: Any) -> list[str]:
        """The reasons `summary` is out of `tolerance` (empty if it passes)."""
        raise NotImplementedError

    def render_table(self, report: Any) -> Table:
        """validate's console table, one row per artifact x backend."""
        raise NotImplementedError

    # ---- codegen --check ------------------------------------------------------------------

    def check_against_torch(
        self,
        outputs: np.ndarray,
        reference: np.ndarray,
        inputs: np.ndarray,
        steps: np.ndarray,
        scheme: str,
        config: ModelConfig,
    ) -> tuple[float, float | None, list[str]]:
        """A generated C model's `outputs` against torch's `reference` (both [n, out], at
        the printed `steps` of the example stream `inputs`), held to this task's tolerance
        for `scheme` (lstm_edge.exporters.compare's table): (max error in the task's error
        units, top-1 agreement or None, the reasons it fails). Non-finite outputs are the
        caller's check."""
        raise NotImplementedError

    # ---- pipeline's SUMMARY.md -----------------------------------------------------------

    def model_shape(self, config: ModelConfig) -> str:
        """The model line's task part ("embed 16, vocabulary 80 characters")."""
        raise NotImplementedError

    def summary_table(self, report: Any) -> str:
        """The validation section's markdown table (and its note)."""
        raise NotImplementedError

    def snippet(self, config: ModelConfig) -> list[str]:
        """The lines of the "load it on a device" example after `model = rt.load(...)`."""
        raise NotImplementedError

    # ---- info and bench ---------------------------------------------------------------

    def info_config(self, config: ModelConfig) -> dict[str, Any]:
        """The config as `info` shows it, compact."""
        raise NotImplementedError

    def info_details(self, config: ModelConfig) -> dict[str, Any]:
        """Task sections `info` adds after the config (none by default)."""
        return {}

    def __repr__(self) -> str:
        return f"<evaluation of {self.spec.name}>"
