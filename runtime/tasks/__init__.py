"""The task registry: each task's torch-free spec (what the graph reads and returns, its
input and output stages, its input checks), keyed by the config's "task" value.

To add a task: a module beside char_lm.py with a `TaskSpec` subclass, one line below, and
its training half in lstm_edge.toolchain.tasks (see README.md, "Layout").
"""

from __future__ import annotations

from lstm_edge.runtime.errors import InvalidConfigError
from lstm_edge.runtime.tasks.base import TaskSpec
from lstm_edge.runtime.tasks.char_lm import CHAR_LM
from lstm_edge.runtime.tasks.classify import CLASSIFY
from lstm_edge.runtime.tasks.forecast import FORECAST

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (CHAR_LM, FORECAST, CLASSIFY)}
DEFAULT_TASK = CHAR_LM.name  # configs written before tasks existed are char-lm


def task_spec(name: object) -> TaskSpec:
    """The spec of task `name`, or InvalidConfigError listing the known tasks."""
    spec = TASKS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InvalidConfigError(f"task {name!r} is unknown (expected one of {tuple(TASKS)})")
    return spec


__all__ = ["DEFAULT_TASK", "TASKS", "TaskSpec", "task_spec"]
