"""The onnxruntime backend, tuned for one step at a time.

One InferenceSession is created at load from the bytes `read_artifact` checked (never by
re-opening the path, so the file cannot change in between). The session config entry
`session.disable_quant_qdq` = "1" keeps the optimizer from treating the weight-only
DequantizeLinear nodes as QDQ pairs, so they are constant-folded once at load instead of
running on every step (measured 4-5x slower otherwise). A plain `session.run` is used:
IO binding, even with one reused binding and preallocated outputs, measured no faster for
single steps of the 2x256 model (~75 us either way), and outputs must be fresh arrays
anyway since they become the caller's state. Runs float, int8, int8-dynamic and fp16.

`Model.step` of a token model goes through the c backend's CPython binding when it can be
built (runtime/c/lstm_edge_py.c, `ort_step`): the checks, the feed, onnxruntime's run and
the State in one C call. It calls the session's C++ `run` (`InferenceSession._sess.run`)
directly: the public method's Python wrapper only validates feeds this backend always
builds complete (all inputs, numpy arrays, CPU provider), and cost ~2 µs of a ~20 µs step
of a 1x64 model. The attribute is looked up on every call, so a patched run is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isfinite
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from lstm_edge.runtime.artifact import BASE_OPS, DYNAMIC_OPS, Artifact, require_ops
from lstm_edge.runtime.config import (
    INPUT_C0,
    INPUT_H0,
    INPUT_HISTORY,
    OUTPUT_CN,
    OUTPUT_HISTORY,
    OUTPUT_HN,
    ModelConfig,
)
from lstm_edge.runtime.errors import InputError, InvalidArtifactError, UnsupportedModelError
from lstm_edge.runtime.state import _VDOT, State

OPTIMIZATION_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def make_session(
    model: bytes | Path,
    *,
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
    optimization: str = "all",
    disable_quant_qdq: bool = False,
) -> ort.InferenceSession:
    """The one place an onnxruntime session is made: CPU provider, sequential execution,
    warnings off (unused-initializer notices are noise here).

    `optimization` "all" for the backend; "basic" where a file must run with the
    weight-only semantics of the numpy and C backends (the exporters' checks): from the
    extended level on, ORT fuses DequantizeLinear + MatMul into MatMulNBits, which also
    quantizes the activations and moves int8 logits by ~1e-2. `disable_quant_qdq` keeps
    the optimizer from treating weight-only DequantizeLinear nodes as QDQ pairs (see the
    module docstring). One thread is the default: deterministic, fastest for single steps
    of small models, and fair to a shared machine.
    """
    if optimization not in OPTIMIZATION_LEVELS:
        known = list(OPTIMIZATION_LEVELS)
        raise ValueError(f"optimization {optimization!r} is unknown (expected one of {known})")
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    if disable_quant_qdq:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    so.log_severity_level = 3
    src = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class OrtOptions:
    """Load options of the ort backend (`load(path, backend="ort", **options)`)."""

    # One thread is fastest for single steps of small models: the per-step matrices are
    # too small to amortize waking a thread pool. Raise it for large batches or prefill.
    intra_op_threads: int = 1
    inter_op_threads: int = 1


class OrtRunner:
    def __init__(
        self,
        session: ort.InferenceSession,
        options: OrtOptions,
        input_name: str,
        output_name: str,
        path: Path | None = None,
        config: ModelConfig | None = None,
    ) -> None:
        self.session = session
        self.path = path  # named in errors
        self.options = options
        self._input = input_name  # tokens (char-lm) or features (forecast)
        self._outputs = [output_name, OUTPUT_HN, OUTPUT_CN]
        # Model.step's thin path (see fast_step), given the config it checks inputs against.
        self.fast = None
        if config is not None:
            self._config, self._check = config, config.spec.check_inputs
            self._dims = (config.num_layers, config.hidden_size)
            self.fast = _binding_step(session, self._outputs, input_name, config) or (
                OrtRunner.fast_step,
                self,
            )

    def fast_step(self, inputs: Any, state: Any) -> tuple[np.ndarray, State] | None:
        """Model.step in one call for the common case: a State the runtime made (known
        finite) of the right shape, inputs the task's own checks pass (their errors are
        the general path's, raised from the same function), finite outputs. Anything else
        returns None, and Model.step's general path runs and raises its usual errors."""
        if type(state) is not State or not state._checked or state.history is not None:
            return None
        x, single = self._check(self._config, inputs)
        h = state.h
        if h.shape != (self._dims[0], x.shape[0], self._dims[1]):
            return None
        try:
            y, hn, cn = self.session.run(
                self._outputs, {self._input: x, INPUT_H0: h, INPUT_C0: state.c}
            )
        except Exception:  # the general path names onnxruntime's error
            return None
        if not (isfinite(_VDOT(y, y)) and isfinite(_VDOT(hn, hn)) and isfinite(_VDOT(cn, cn))):
            return None  # maybe huge finite values (see state.finite): the general path tests
        return (y[:, 0] if single else y), State._wrap(hn, cn, True)

    def run(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        # onnxruntime returns new arrays, so they can become the next State uncopied.
        feeds = {self._input: inputs, INPUT_H0: h, INPUT_C0: c}
        outputs = self._outputs
        if history:  # the forecast highway's state
            feeds[INPUT_HISTORY] = history[0]
            outputs = [*outputs, OUTPUT_HISTORY]
        try:
            return tuple(self.session.run(outputs, feeds))
        except Exception as e:  # onnxruntime's own untyped errors (Fail, InvalidArgument, ...)
            text = str(e).strip()
            first = text.splitlines()[0] if text else type(e).__name__
            raise InvalidArtifactError(
                f"{self.path}: onnxruntime failed to run a step ({type(e).__name__}: {first})"
            ) from None


def _binding_step(
    session: ort.InferenceSession, outputs: list[str], input_name: str, config: ModelConfig
) -> tuple[Any, Any] | None:
    """(ort_step, its context) of the CPython binding for a token model; None for feature
    inputs, or where the binding cannot be built (no C compiler or Python headers): then
    `fast_step` below, the same checks in Python."""
    from lstm_edge.runtime.backends.c_build import build_binding

    if np.dtype(config.spec.c_input_dtype).kind != "i":
        return None
    try:
        binding = build_binding()
    except Exception:  # no compiler, or it failed: the Python fast path is as correct
        return None
    if binding is None:
        return None
    ctx = binding.ort_bind(
        session._sess,
        list(outputs),
        input_name,
        INPUT_H0,
        INPUT_C0,
        State,
        config.num_layers,
        config.hidden_size,
        config.vocab_size,
    )
    return binding.ort_step, ctx


def load(artifact: Artifact, **options) -> OrtRunner:
    try:
        opts = OrtOptions(**options)
    except TypeError:
        raise InputError(
            f"unknown ort backend options {sorted(options)} "
            f"(expected some of {sorted(OrtOptions.__dataclass_fields__)})"
        ) from None
    for name in ("intra_op_threads", "inter_op_threads"):
        value = getattr(opts, name)
        # onnxruntime would raise its own TypeError (or misbehave on a negative count).
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(
                f"ort backend option {name} is {value!r} (expected an integer >= 0; "
                f"0 lets onnxruntime choose)"
            )
    if artifact.integer is not None:
        # Its graph is the weight-only int8 approximation (so ONNX tools can open the file);
        # running that would present an approximation as the scheme.
        raise UnsupportedModelError(
            f"{artifact.path}: scheme {artifact.scheme!r} is integer arithmetic that "
            f"onnxruntime does not compute; run it with backend 'numpy' or 'c'"
        )
    allowed = BASE_OPS | DYNAMIC_OPS if artifact.scheme == "int8-dynamic" else BASE_OPS
    require_ops(artifact, allowed, "ort")
    if artifact.has_external_data:
        # A session built from bytes would resolve external files itself (relative to the
        # working directory), bypassing the checks read_artifact made.
        raise UnsupportedModelError(
            f"{artifact.path}: the 'ort' backend runs self-contained models only"
        )
    try:
        session = make_session(
            artifact.model_bytes,
            intra_op_threads=opts.intra_op_threads,
            inter_op_threads=opts.inter_op_threads,
            optimization="all",
            disable_quant_qdq=True,
        )
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise InvalidArtifactError(f"{artifact.path}: onnxruntime refused the model: {e}") from e
    config = artifact.config
    return OrtRunner(session, opts, config.input_name, config.output_name, artifact.path, config)
