"""Runtime backends behind one step interface: numpy (the reference), ort, c.

`BACKENDS` maps a backend name to its loader: `loader(artifact, **options) -> Runner`.
A loader checks that it can run the artifact (raising `UnsupportedModelError`, e.g. via
`artifact.require_ops`) and does all per-model work once. A Runner has one method,
`run(inputs, h, c[, history]) -> (outputs, hn, cn[, history_out])`: inputs are token ids
int64 [batch, time] (char-lm) or raw sensor values float32 [batch, time, features]
(forecast), C-contiguous; h/c float32 [layers, batch, hidden]; history float32 [batch,
size] only for a model that keeps one (the forecast highway, `TaskSpec.history_size`),
then history_out is returned too; all already validated by `Model.step`. It returns
fresh arrays (outputs float32 [batch, time, vocab] logits or [batch, time, targets] raw
forecasts) and never writes to its inputs.
Modules are imported on first use so that `import lstm_edge.runtime` stays numpy-only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class Runner(Protocol):
    def run(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray
    ) -> tuple[np.ndarray, ...]: ...


Loader = Callable[..., Runner]


def _lazy(module: str) -> Loader:
    """A loader that imports `module` only when a model is loaded with it."""

    def load(artifact: Any, **options: Any) -> Runner:
        return importlib.import_module(module).load(artifact, **options)

    load.__qualname__ = f"load[{module}]"
    return load


BACKENDS: dict[str, Loader] = {
    "numpy": _lazy("lstm_edge.runtime.backends.numpy_ref"),
    "ort": _lazy("lstm_edge.runtime.backends.ort"),
    "c": _lazy("lstm_edge.runtime.backends.c"),
}
