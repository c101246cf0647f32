"""The training half of each task, found through one registry.

A task's torch-free half (graph inputs and outputs, stages, input checks) is its spec in
lstm_edge.runtime.tasks. Its training half lives here, in two modules per task:
`<module>.py` (data source, loss, run defaults, the held-out stream: what `train` and the
export check need; the interface is `training_base.TaskTraining`) and `<module>_eval.py`
(metrics, report rows, the summary section: what `validate`, `bench` and `pipeline` need).
Each defines one object, `TRAINING` and `EVAL` respectively.
Shared code asks for them by config and never compares task names.

To add a task: its spec in runtime/tasks/, its two modules here, and one line in
`MODULES` below.
"""

from __future__ import annotations

import importlib
from typing import Any

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.tasks import task_spec

# Task name -> module name in this package (the runtime's registry holds the same names).
MODULES = {"char-lm": "char_lm", "forecast": "forecast", "classify": "classify"}


def _module(task: ModelConfig | str, suffix: str) -> Any:
    name = task.task if isinstance(task, ModelConfig) else task
    task_spec(name)  # an unknown name is refused with the list of known tasks
    return importlib.import_module(f"{__name__}.{MODULES[name]}{suffix}")


def training(task: ModelConfig | str) -> Any:
    """The task's training half (`TRAINING` of tasks/<module>.py)."""
    return _module(task, "").TRAINING


def all_training() -> list[Any]:
    """Every task's training half, in registry order (the default task first)."""
    return [training(name) for name in MODULES]


def evaluation(task: ModelConfig | str) -> Any:
    """The task's evaluation half (`EVAL` of tasks/<module>_eval.py)."""
    return _module(task, "_eval").EVAL
