"""`load` an artifact into an immutable `Model` and `step` it with caller-owned state.

All checks of the file happen in `load` (through `read_artifact` and the backend's
loader). `step` checks only what the caller hands it (token ids or sensor values, dtypes,
state shape, finiteness), naming expected vs found, then calls the backend; the state
passed in is never modified, so on any error the caller still holds a good state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstm_edge.runtime.artifact import DEFAULT_MAX_BYTES, Artifact, read_artifact
from lstm_edge.runtime.backends import BACKENDS, Loader, Runner
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InputError
from lstm_edge.runtime.state import State
from lstm_edge.runtime.state import finite as _finite


@dataclass(frozen=True)
class Model:
    """A loaded, checked artifact bound to one backend. Holds no per-stream state."""

    config: ModelConfig
    scheme: str
    backend: str
    artifact: Artifact = field(repr=False)
    runner: Runner = field(repr=False)
    # (function, context) of a backend's thin step, e.g. the c backend's CPython binding:
    # function(context, inputs, state) -> (outputs, State), or None when it does not take
    # the call (anything unusual, any error), which then runs the general path below.
    _fast: Any = field(default=None, init=False, repr=False, compare=False)
    # The task spec, looked up once (config.spec resolves it on every access, which a step
    # would pay twice).
    _spec: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fast", getattr(self.runner, "fast", None))
        object.__setattr__(self, "_spec", self.config.spec)

    def initial_state(self, batch: int = 1) -> State:
        return State.zeros(self.config, batch)

    def step(self, inputs: Any, state: State) -> tuple[np.ndarray, State]:
        """Run one step (or a run of steps) from `state`.

        char-lm: token ids int [batch] -> logits [batch, vocab]; [batch, time] ->
        [batch, time, vocab]. forecast: raw sensor values (any real dtype, converted to
        float32) [batch, F] -> raw predictions [batch, targets]; [batch, time, F] ->
        [batch, time, targets], each for `horizon` steps after its input step.
        Returns the outputs and the state after the last step; `state` is left as it was.
        """
        fast = self._fast
        if fast is not None:
            got = fast[0](fast[1], inputs, state)
            if got is not None:
                return got
        x, single = self._spec.check_inputs(self.config, inputs)
        self._check_state(state, x.shape[0])
        # runner.run(inputs, h, c[, history]) -> (outputs, hn, cn[, history_out])
        y, hn, cn, *history = self.runner.run(x, *state.arrays)
        if not _finite(y, hn, cn, *history):
            raise InputError(self._non_finite_message(y, (hn, cn, *history), single))
        return (y[:, 0] if single else y), State._wrap(hn, cn, True, *history)

    def _non_finite_message(
        self, y: np.ndarray, state: tuple[np.ndarray, ...], single: bool
    ) -> str:
        """Name the first (stream, step) whose output is not finite, or the stream whose
        state (hn, cn[, history_out]) is not; the caller's state was not touched."""
        bad = np.argwhere(~np.isfinite(y))
        if bad.size:
            b, t = int(bad[0][0]), int(bad[0][1])
            where = f"stream {b}" if single else f"stream {b}, step {t}"
            what = f"the {self.config.output_name} output"
        else:
            hn, cn, *history = state
            streams = ~(np.isfinite(hn) & np.isfinite(cn)).all(axis=(0, 2))  # [batch]
            for h in history:  # [batch, size]
                streams |= ~np.isfinite(h).all(axis=1)
            b = int(np.flatnonzero(streams)[0])
            where, what = f"stream {b}", "the state"
        return (
            f"{self.artifact.path}: the inputs at {where} drive {what} to NaN or Inf on the "
            f"{self.backend!r} backend (expected inputs near the range the model was trained "
            f"on); the state passed in is unchanged"
        )

    def _check_state(self, state: Any, batch: int) -> None:
        if not isinstance(state, State):
            raise InputError(
                f"state is a {type(state).__name__} (expected a State, e.g. from "
                f"model.initial_state(batch))"
            )
        config = self.config
        expected = (config.num_layers, batch, config.hidden_size)
        if state.h.shape != expected:
            kind = self._spec.stream_noun
            raise InputError(
                f"state has shape {list(state.h.shape)} (expected [layers, batch, hidden] = "
                f"{list(expected)} for {batch} {kind}stream(s))"
            )
        size = self._spec.history_size(config)
        found = None if state.history is None else state.history.shape[1]
        if found != (size or None):
            if not size:
                raise InputError(
                    f"state has a history of {found} values, but this model keeps none "
                    f"(expected a state from model.initial_state(batch))"
                )
            raise InputError(
                f"state has {'no history' if found is None else f'a history of {found} values'}"
                f" (expected {size} values per stream: this model's highway reads the last "
                f"{config.ar_lags} steps; start from model.initial_state(batch))"
            )
        if state._checked:  # the runtime made it and tested it (zeros, or the last step)
            return
        named = (("h", state.h), ("c", state.c), ("history", state.history))
        for name, value in named[: len(state.arrays)]:
            if not _finite(value):
                raise InputError(
                    f"state.{name} contains NaN or Inf (expected finite values; start the "
                    f"stream again from model.initial_state())"
                )
        if size:
            # Element 0 is the highway's "seen" flag: 0 after a reset, 1 after a step. Any
            # other value would blend the history with the current value.
            seen = state.history[:, 0]
            bad = np.flatnonzero((seen != 0) & (seen != 1))
            if bad.size:
                b = int(bad[0])
                raise InputError(
                    f"state.history[{b}, 0] is {float(seen[b])!r} (expected 0 after a reset "
                    f"or 1 after a step: the flag that the history holds past values)"
                )


def load(
    path: str | os.PathLike,
    backend: str = "numpy",
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_external_data: bool = False,
    **options: Any,
) -> Model:
    """Read and check `path`, then prepare `backend` ("numpy", "ort", "c") to run it.

    `options` go to the backend (e.g. ort: intra_op_threads, inter_op_threads).
    """
    _backend_loader(backend)  # an unknown name is refused before the file is read
    artifact = read_artifact(path, max_bytes=max_bytes, allow_external_data=allow_external_data)
    return from_artifact(artifact, backend, **options)


def from_artifact(artifact: Artifact, backend: str = "numpy", **options: Any) -> Model:
    """Prepare `backend` to run an artifact `read_artifact` already checked (no file I/O)."""
    runner = _backend_loader(backend)(artifact, **options)
    return Model(
        config=artifact.config,
        scheme=artifact.scheme,
        backend=backend,
        artifact=artifact,
        runner=runner,
    )


def _backend_loader(backend: str) -> Loader:
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is unknown (expected one of {sorted(BACKENDS)})")
    return BACKENDS[backend]
