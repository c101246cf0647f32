"""The recurrent state: a value object the caller owns, one per stream or batch of streams.

`State` holds h and c as read-only float32 arrays [layers, batch, hidden], and for a model
whose graph keeps a history (the forecast highway, `TaskSpec.history_size`) that history
as a read-only float32 array [batch, size] (None otherwise). It never
changes after construction, so snapshots, branching (beam search) and restore are plain
assignments; `select` and `stack` reorder and combine streams along the batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InputError

# np.vdot without numpy's __array_function__ dispatch step (a third of its cost on a
# small array); the public function where a numpy version has no such attribute.
_VDOT = getattr(np.vdot, "_implementation", np.vdot)


def finite(*values: np.ndarray) -> bool:
    """All values finite (a step's outputs, a caller's state): the sum of squares of each
    first (cheap: one vdot, which reads the array flat and, unlike np.dot, raises no
    floating-point warnings, so no errstate is needed; an errstate costs more than the
    products), the exact test only if one fails, since squares of huge finite values
    overflow too."""
    for v in values:
        if not math.isfinite(_VDOT(v, v)):
            return all(bool(np.isfinite(a).all()) for a in values)
    return True


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class State:
    """h, c: float32 [layers, batch, hidden], read-only; history: float32 [batch, size]
    or None. Build with zeros/select/stack."""

    h: np.ndarray
    c: np.ndarray
    history: np.ndarray | None = None
    # Known finite: made by the runtime (zeros, a step whose outputs were checked, or a
    # select/stack of such states), so `Model.step` need not test it again. A state built
    # from the caller's arrays is tested at its first step.
    _checked: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        arrays = {}
        for name in ("h", "c"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype != np.float32:
                found = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
                raise InputError(f"state.{name} is {found} (expected a float32 numpy array)")
            if value.ndim != 3:
                raise InputError(
                    f"state.{name} has shape {list(value.shape)} "
                    f"(expected 3 dims: [layers, batch, hidden])"
                )
            # Copy unless the array is already one we own and froze (backend outputs are
            # wrapped by `_wrap`, which skips this), so later writes by the caller to the
            # array they passed in cannot change the state.
            arrays[name] = _readonly(np.array(value, dtype=np.float32, order="C"))
        if arrays["h"].shape != arrays["c"].shape:
            raise InputError(
                f"state.h has shape {list(arrays['h'].shape)} but state.c has "
                f"{list(arrays['c'].shape)} (expected equal shapes)"
            )
        object.__setattr__(self, "h", arrays["h"])
        object.__setattr__(self, "c", arrays["c"])
        history = self.history
        if history is not None:
            if not isinstance(history, np.ndarray) or history.dtype != np.float32:
                found = history.dtype if isinstance(history, np.ndarray) else type(history).__name__
                raise InputError(f"state.history is {found} (expected a float32 numpy array)")
            if history.ndim != 2 or history.shape[0] != arrays["h"].shape[1]:
                raise InputError(
                    f"state.history has shape {list(history.shape)} (expected [batch, size] "
                    f"with batch {arrays['h'].shape[1]} like state.h)"
                )
            object.__setattr__(
                self, "history", _readonly(np.array(history, dtype=np.float32, order="C"))
            )

    @classmethod
    def _wrap(
        cls, h: np.ndarray, c: np.ndarray, checked: bool = False, history: np.ndarray | None = None
    ) -> State:
        """Adopt arrays nobody else holds (fresh backend outputs) without copying;
        `checked`: known finite."""
        h.setflags(write=False)
        c.setflags(write=False)
        if history is not None:
            history.setflags(write=False)
        state = object.__new__(cls)
        # as object.__setattr__, cheaper
        state.__dict__.update(h=h, c=c, history=history, _checked=checked)
        return state

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """(h, c), or (h, c, history) for a state with a history."""
        return (self.h, self.c) if self.history is None else (self.h, self.c, self.history)

    @property
    def batch(self) -> int:
        return self.h.shape[1]

    @property
    def num_layers(self) -> int:
        return self.h.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.h.shape[2]

    @classmethod
    def zeros(cls, config: ModelConfig, batch: int = 1) -> State:
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise InputError(f"batch is {batch!r} (expected an integer >= 1)")
        shape = (config.num_layers, int(batch), config.hidden_size)
        size = config.spec.history_size(config)
        history = np.zeros((int(batch), size), np.float32) if size else None
        return cls._wrap(np.zeros(shape, np.float32), np.zeros(shape, np.float32), True, history)

    def select(self, indices: Sequence[int] | np.ndarray | int) -> State:
        """Take streams by batch index (reorder, repeat or drop them), e.g. surviving beams."""
        idx = np.atleast_1d(np.asarray(indices))
        if idx.ndim != 1 or not (idx.dtype.kind in "iu" or idx.size == 0):
            raise InputError(
                f"indices have dtype {idx.dtype} and shape {list(idx.shape)} "
                f"(expected a 1-D sequence of integers)"
            )
        if idx.size == 0:
            raise InputError("indices are empty (expected at least one stream)")
        bad = idx[(idx < -self.batch) | (idx >= self.batch)]
        if bad.size:
            raise InputError(
                f"index {int(bad[0])} is out of range for a state of batch {self.batch}"
            )
        history = None if self.history is None else np.take(self.history, idx, axis=0)
        return State._wrap(
            np.take(self.h, idx, axis=1), np.take(self.c, idx, axis=1), self._checked, history
        )

    @classmethod
    def stack(cls, states: Sequence[State]) -> State:
        """Concatenate states along the batch axis (stream order kept)."""
        states = list(states)
        if not states or not all(isinstance(s, State) for s in states):
            raise InputError("stack needs a non-empty sequence of State objects")
        shape = (states[0].num_layers, states[0].hidden_size)
        size = _history_size(states[0])
        for i, s in enumerate(states):
            if (s.num_layers, s.hidden_size) != shape:
                raise InputError(
                    f"states[{i}] has layers x hidden {s.num_layers} x {s.hidden_size} "
                    f"(expected {shape[0]} x {shape[1]} like states[0])"
                )
            if _history_size(s) != size:
                raise InputError(
                    f"states[{i}] has a history of {_history_size(s)} values (expected "
                    f"{size} like states[0])"
                )
        history = None
        if size is not None:
            history = np.concatenate([s.history for s in states], axis=0)
        return cls._wrap(
            np.concatenate([s.h for s in states], axis=1),
            np.concatenate([s.c for s in states], axis=1),
            all(s._checked for s in states),
            history,
        )

    def __repr__(self) -> str:
        layers, batch, hidden = self.h.shape
        extra = "" if self.history is None else f", history={self.history.shape[1]}"
        return f"State(layers={layers}, batch={batch}, hidden={hidden}{extra})"


def _history_size(state: State) -> int | None:
    return None if state.history is None else state.history.shape[1]
