"""The `c` backend: the portable C library (runtime/c/) compiled for this host.

Loading generates the model's C (c_source.py), compiles it with the system C compiler
into a cached shared library (c_build.py) and calls the task's batched step
(`lstm_edge_step_batch` for char-lm, `lstm_edge_forecast_step_batch` for forecast: the
spec's `c_step_function`). `Model.step` goes through the CPython binding
(runtime/c/lstm_edge_py.c, compiled once per interpreter): one call that checks, steps and
wraps the new State in C, well under a microsecond of its own. Where the interpreter has no
development headers, or the binding does not take a call (unusual inputs, any error), the
general path below runs through ctypes with the same results and messages.
numpy only: no torch, no onnx package.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np

from lstm_edge.runtime.artifact import Artifact
from lstm_edge.runtime.backends.c_build import (
    SHARED_NAME,
    CompilerError,
    build_binding,
    build_shared,
)
from lstm_edge.runtime.backends.c_source import (
    BATCH_BLOCK,
    C_SCHEMES,
    INT_SCHEME,
    scratch_floats_per_stream,
)
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InputError, UnsupportedModelError
from lstm_edge.runtime.integer import C_MAX, C_MIN, H_MAX, codes

# Mirrors of runtime/c/lstm_edge.h; tests/c checks they still match the header.
StateStruct = ctypes.c_void_p * 3  # lstm_edge_state {float *h; float *c; float *history;}
STATUS_MESSAGES = {
    1: "a required pointer is NULL",
    2: "token id out of range",
    3: "batch or time negative, scratch too small, or a size too large",
    4: "model data inconsistent or of another format version",
    5: "state holds NaN or Inf",
    6: "step function of the other task",
    7: "input holds NaN or Inf",
}


# ---- the runner -----------------------------------------------------------------------------

# The largest token gate table the runner computes at load (V x 4H floats, 64 MB).
TOKEN_GATES_MAX_FLOATS = 16 * 1024 * 1024
# The largest dequantized copy of an int8 model's matrices the runner makes at load
# (float32, 64 MB: 16M weights; the default 2x256 model has 0.9M).
DEQUANTIZED_MAX_FLOATS = 16 * 1024 * 1024
# Up to this many dequantized weights (1 MB of float32) the copy drops the int8 weights
# and single steps run the float32 tiles too: a step's weights stay in the cache, where
# the tiles beat dequantizing every weight (the 1x64 model). Larger models keep their
# single steps on the int8 weights, a quarter of the bytes to read per step (2x256).
FLOAT_STEPS_MAX_FLOATS = 256 * 1024


def checked_model(lib: ctypes.CDLL, library: Path, check: str) -> int:
    """The address of the compiled model's data, after the library's `check` of it."""
    model = ctypes.addressof(ctypes.c_char.in_dll(lib, f"{SHARED_NAME}_model"))
    getattr(lib, check).argtypes = [ctypes.c_void_p]
    status = getattr(lib, check)(model)
    if status != 0:
        raise CompilerError(
            f"{library}: the compiled model data fails its check "
            f"({STATUS_MESSAGES.get(status, status)})"
        )
    return model


class CRunner:
    """Steps the compiled model; see `Runner` in backends/__init__.py. One path for both
    tasks: only the C entry point and the input dtype differ."""

    def direct_buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(h, c, scratch) float32 for one stream, zeroed: what firmware owns."""
        n = self.layers * self.hidden
        return (
            np.zeros(n, np.float32),
            np.zeros(n, np.float32),
            np.empty(self.scratch_per_stream, np.float32),
        )

    def __init__(self, library: Path, config: ModelConfig) -> None:
        self.library = library
        self._lib = ctypes.CDLL(str(library))
        self.input_dtype = config.spec.c_input_dtype
        fn = getattr(self._lib, config.spec.c_step_function + "_batch")
        fn.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int32,
            ctypes.c_void_p,
            ctypes.c_int32,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        fn.restype = ctypes.c_int
        self._step = fn
        self._model = checked_model(self._lib, library, "lstm_edge_check_model")
        if np.dtype(self.input_dtype).kind == "i":
            self._model = self._with_token_gates(config)
        self._model = self._with_dequantized_panels(config)
        self.output_size = config.output_size
        self.layers, self.hidden = config.num_layers, config.hidden_size
        self.scratch_per_stream = scratch_floats_per_stream(config)
        # floats of a stream's highway history (lstm_edge_state.history), 0 without one
        self.history_size = config.spec.history_size(config)
        self._bind(config)

    def _with_token_gates(self, config: ModelConfig) -> int:
        """The model with its layer-0 gate inputs per token computed once
        (`lstm_edge_token_gates`: the same numbers a step computes, so steps are
        bit-identical, without layer 0's input product); V x 4H floats that this runner
        keeps alive. A vocabulary too large for that memory keeps the per-step product."""
        rows = config.vocab_size * 4 * config.hidden_size
        if rows > TOKEN_GATES_MAX_FLOATS:
            return self._model
        lib = self._lib
        lib.lstm_edge_model_bytes.restype = ctypes.c_size_t
        pointer, size = ctypes.c_void_p, ctypes.c_size_t
        lib.lstm_edge_token_gates.argtypes = [pointer, pointer, size, pointer, size, pointer]
        self._token_gates = np.empty(rows, np.float32)
        self._model_copy = ctypes.create_string_buffer(lib.lstm_edge_model_bytes())
        scratch = np.empty(BATCH_BLOCK * config.input_size, np.float32)
        status = lib.lstm_edge_token_gates(
            self._model,
            self._token_gates.ctypes.data,
            rows,
            scratch.ctypes.data,
            scratch.size,
            ctypes.addressof(self._model_copy),
        )
        return self._model_copy_or_raise(status, "the token gate table", self._model_copy)

    def _with_dequantized_panels(self, config: ModelConfig) -> int:
        """An int8 model whose matrices read w = q * scale from float32 panels
        (`lstm_edge_dequantized_panels`), so batches and prefill chunks run the float32
        register tiles without converting weights per call; single steps keep reading the
        int8 weights unless the model is small (FLOAT_STEPS_MAX_FLOATS). Bit-identical to
        the model without them. A float model, or one too large for the memory cap, is
        returned as it is."""
        lib = self._lib
        pointer, size = ctypes.c_void_p, ctypes.c_size_t
        lib.lstm_edge_dequantized_floats.argtypes = [pointer]
        lib.lstm_edge_dequantized_floats.restype = size
        floats = lib.lstm_edge_dequantized_floats(self._model)
        if floats == 0 or floats > DEQUANTIZED_MAX_FLOATS:
            return self._model
        lib.lstm_edge_model_bytes.restype = size
        lib.lstm_edge_layer_bytes.restype = size
        lib.lstm_edge_dequantized_panels.argtypes = [pointer, pointer, size, ctypes.c_int32,
                                                     pointer, size, pointer]  # fmt: skip
        # aligned to 64 bytes (a cache line; the library keeps each matrix on one): a
        # vector load split over two lines measured the tiles up to 1.5x slower
        buffer = np.empty(floats + 16, np.float32)
        start = (-buffer.ctypes.data % 64) // 4
        self._panels = buffer[start : start + floats]
        self._panel_layers = ctypes.create_string_buffer(
            lib.lstm_edge_layer_bytes() * config.num_layers
        )
        self._panel_model = ctypes.create_string_buffer(lib.lstm_edge_model_bytes())
        status = lib.lstm_edge_dequantized_panels(
            self._model,
            self._panels.ctypes.data,
            floats,
            int(floats > FLOAT_STEPS_MAX_FLOATS),  # keep_int8 for single steps
            ctypes.addressof(self._panel_layers),
            config.num_layers,
            ctypes.addressof(self._panel_model),
        )
        return self._model_copy_or_raise(status, "the dequantized panels", self._panel_model)

    def _model_copy_or_raise(self, status: int, what: str, copy: ctypes.Array) -> int:
        """The address of a model copy the library wrote, or CompilerError naming what it
        refused (a copy of a model it accepted at load: a bug, not bad input)."""
        if status != 0:
            reason = STATUS_MESSAGES.get(status, status)
            raise CompilerError(f"{self.library}: the library refused {what} ({reason})")
        return ctypes.addressof(copy)

    def _bind(self, config: ModelConfig) -> None:
        """`fast`: (binding.step, context) for Model.step, or None without the binding and
        for a model with a highway (the thin step carries no history; Model.step then runs
        `run`, whose raw call still goes through the binding)."""
        binding = build_binding()
        self.fast = None
        # raw_call(states, batch, x, time, out, scratch, scratch_floats) -> status
        self.raw_call = functools.partial(self._step, self._model)
        self.binding = "ctypes"
        if binding is None:
            return
        ctx = self._bind_context(binding, config)
        self.fast = None if self.history_size else (binding.step, ctx)
        self.raw_call = functools.partial(binding.call, ctx)
        self.binding = "cpython"

    def _bind_context(self, binding, config: ModelConfig):
        """The binding's context of this model (its step function, model and sizes)."""
        from lstm_edge.runtime.state import State

        tokens = np.dtype(self.input_dtype).kind == "i"
        return binding.bind(
            ctypes.cast(self._step, ctypes.c_void_p).value,
            self._model,
            State,
            tokens,
            self.layers,
            self.hidden,
            self.output_size,
            config.input_size,
            self.output_size if tokens else 0,
            self.scratch_per_stream,
            BATCH_BLOCK,
        )

    def run(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """inputs: tokens [batch, time] (char-lm) or raw features [batch, time, F]
        (forecast); returns logits / forecasts [batch, time, output_size], hn, cn, and for
        a model with a highway given its history [batch, S] the history after the last
        step (as the numpy reference)."""
        if history and history[0].shape[1] != self.history_size:
            raise InputError(
                f"history has {history[0].shape[1]} values per stream (expected "
                f"{self.history_size})"
            )
        if self.history_size and not history:
            raise InputError(
                f"this model's highway needs a history of {self.history_size} values per "
                f"stream (expected run(x, h, c, history))"
            )
        if inputs.shape[0] == 1:
            return self._run_one(inputs, h, c, *history)
        batch, time = inputs.shape[:2]
        # The C state is per stream ([batch][layers][hidden]); these copies become the new
        # state, so the caller's arrays are never written (np.array always copies).
        hs = np.array(h.transpose(1, 0, 2), dtype=np.float32, order="C")
        cs = np.array(c.transpose(1, 0, 2), dtype=np.float32, order="C")
        offsets = np.arange(batch, dtype=np.uintp) * (self.layers * self.hidden * 4)
        states = np.zeros((batch, 3), np.uintp)  # lstm_edge_state {h; c; history}
        states[:, 0] = hs.ctypes.data + offsets
        states[:, 1] = cs.ctypes.data + offsets
        if history:
            hist = np.array(history[0], dtype=np.float32, order="C")  # the new history
            states[:, 2] = hist.ctypes.data + np.arange(batch, dtype=np.uintp) * (4 * hist.shape[1])
        x = np.ascontiguousarray(inputs, dtype=self.input_dtype)
        out = np.empty((batch, time, self.output_size), np.float32)
        scratch = np.empty(self._lanes(batch, time) * self.scratch_per_stream, np.float32)
        self.call(
            states.ctypes.data, batch, x.ctypes.data, time, out.ctypes.data, scratch.ctypes.data
        )
        outs = (
            out,
            np.ascontiguousarray(hs.transpose(1, 0, 2)),
            np.ascontiguousarray(cs.transpose(1, 0, 2)),
        )
        return (*outs, hist) if history else outs

    def _run_one(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """One stream, the common streaming case, with the Python side kept to a minimum:
        [layers, 1, hidden] already is the C layout of one stream, and the new h, c, the
        outputs, the inputs and the scratch share ONE fresh buffer, so a single pointer
        is looked up (each lookup costs ~1 us, as much as a small model's whole step)."""
        time = inputs.shape[1]
        n_state = self.layers * self.hidden
        n_out = time * self.output_size
        n_in = inputs.size  # int32 token ids or float32 features: 4 bytes each
        n_scratch = self._lanes(1, time) * self.scratch_per_stream
        n_hist = self.history_size if history else 0  # the new history, after the scratch
        buf = np.empty(2 * n_state + n_out + n_in + n_scratch + n_hist, np.float32)
        hs = buf[:n_state].reshape(h.shape)
        cs = buf[n_state : 2 * n_state].reshape(c.shape)
        out = buf[2 * n_state : 2 * n_state + n_out].reshape(1, time, self.output_size)
        x = buf[2 * n_state + n_out : 2 * n_state + n_out + n_in]
        hs[...] = h
        cs[...] = c
        x.view(self.input_dtype)[:] = inputs.reshape(-1)
        base = buf.ctypes.data
        hist = None
        if history:
            hist = buf[buf.size - n_hist :].reshape(1, n_hist)
            hist[...] = history[0]
        state = StateStruct(base, base + 4 * n_state, None if hist is None else hist.ctypes.data)
        self.call(
            ctypes.addressof(state),
            1,
            base + 4 * (2 * n_state + n_out),
            time,
            base + 4 * 2 * n_state,
            base + 4 * (2 * n_state + n_out + n_in),
        )
        return (out, hs, cs) if hist is None else (out, hs, cs, hist)

    @staticmethod
    def _lanes(batch: int, time: int) -> int:
        """Lanes the C step uses at once: streams, then time steps (lstm_edge.h)."""
        return min(batch * time, BATCH_BLOCK)

    def call(self, states: int, batch: int, x: int, time: int, out: int, scratch: int) -> None:
        """The C batched step on buffers the caller prepared, by address: `states` an array
        of `batch` StateStruct, `x` int32 tokens or float32 features [batch][time](F),
        `out` float32 [batch][time][output_size], `scratch` float32 for
        `_lanes(batch, time)` lanes (see LSTM_EDGE_BATCH_BLOCK). No copies and no checks
        beyond the C library's own: `run` is the safe entry."""
        status = self.raw_call(
            states,
            batch,
            x,
            time,
            out,
            scratch,
            self._lanes(batch, time) * self.scratch_per_stream,
        )
        if status != 0:
            raise InputError(f"the C step refused the call: {STATUS_MESSAGES.get(status, status)}")


# ---- int8-full: the integer library ------------------------------------------------------

# lstm_edge_int_state {int8_t *h; int16_t *c; float *history;}: three pointers.
IntStateStruct = ctypes.c_void_p * 3


class IntCRunner:
    """Steps an int8-full model through the integer library (lstm_edge_int.h) by ctypes.
    The State stays float32 as for every model, holding the integer codes exactly: they
    are checked and converted to int8 h / int16 c on entry and back on exit."""

    def __init__(self, library: Path, config: ModelConfig) -> None:
        self.library = library
        self._lib = ctypes.CDLL(str(library))
        self.input_dtype = config.spec.c_input_dtype
        name = config.spec.c_step_function.replace("lstm_edge_", "lstm_edge_int_") + "_batch"
        fn = getattr(self._lib, name)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
        fn.argtypes += [ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        fn.restype = ctypes.c_int
        self._model = checked_model(self._lib, library, "lstm_edge_int_check_model")
        self._lib.lstm_edge_int_scratch_size.argtypes = [ctypes.c_void_p]
        self._lib.lstm_edge_int_scratch_size.restype = ctypes.c_size_t
        self.scratch_size = int(self._lib.lstm_edge_int_scratch_size(self._model))
        self.output_size = config.output_size
        self.layers, self.hidden = config.num_layers, config.hidden_size
        # raw_call(states, batch, x, time, out, scratch, n_scratch) -> status
        self.raw_call = functools.partial(fn, self._model)
        self._bind(fn, config)

    def _bind(self, fn, config: ModelConfig) -> None:
        """`fast` for Model.step: the binding's step with the codes checked and converted
        in C (`bind_codes`; token models), or None: the general path below."""
        from lstm_edge.runtime.state import State

        self.fast, self.binding = None, "ctypes"
        binding = build_binding() if np.dtype(self.input_dtype).kind == "i" else None
        if binding is None:
            return
        ctx = binding.bind_codes(
            ctypes.cast(fn, ctypes.c_void_p).value,
            self._model,
            State,
            self.layers,
            self.hidden,
            self.output_size,
            config.vocab_size,
            self.scratch_size,
            H_MAX,
            C_MIN,
            C_MAX,
        )
        self.fast, self.binding = (binding.step, ctx), "cpython"

    def direct_buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(h int8, c int16, scratch int16) for one stream, zeroed: what firmware owns."""
        n = self.layers * self.hidden
        return np.zeros(n, np.int8), np.zeros(n, np.int16), np.zeros(self.scratch_size, np.int16)

    def run(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """(y, hn, cn), and with a history (the forecast highway) the history after the
        last step too."""
        batch, time = inputs.shape[:2]
        # per stream in C ([batch][layers][hidden]); fresh arrays, the caller's untouched
        # the codes checked as the numpy reference checks them (the same message)
        hs = np.ascontiguousarray(codes(h, -H_MAX, H_MAX, "h").astype(np.int8).transpose(1, 0, 2))
        cs = np.ascontiguousarray(codes(c, C_MIN, C_MAX, "c").astype(np.int16).transpose(1, 0, 2))
        n_state = self.layers * self.hidden
        states = np.zeros((batch, 3), np.uintp)
        states[:, 0] = hs.ctypes.data + np.arange(batch, dtype=np.uintp) * n_state
        states[:, 1] = cs.ctypes.data + np.arange(batch, dtype=np.uintp) * (2 * n_state)
        hist = np.array(history[0], np.float32, order="C") if history else None  # a copy
        if hist is not None:
            states[:, 2] = hist.ctypes.data + np.arange(batch, dtype=np.uintp) * (4 * hist.shape[1])
        x = np.ascontiguousarray(inputs, dtype=self.input_dtype)
        out = np.empty((batch, time, self.output_size), np.float32)
        scratch = np.empty(self.scratch_size, np.int16)
        status = self.raw_call(
            states.ctypes.data, batch, x.ctypes.data, time, out.ctypes.data,
            scratch.ctypes.data, scratch.size,
        )  # fmt: skip
        if status != 0:
            raise InputError(f"the C step refused the call: {STATUS_MESSAGES.get(status, status)}")
        hn = np.ascontiguousarray(hs.transpose(1, 0, 2), dtype=np.float32)
        cn = np.ascontiguousarray(cs.transpose(1, 0, 2), dtype=np.float32)
        return (out, hn, cn) if hist is None else (out, hn, cn, hist)


def load(artifact: Artifact, **options) -> CRunner | IntCRunner:
    if options:
        raise InputError(f"the c backend takes no options (got {sorted(options)})")
    if artifact.scheme not in C_SCHEMES:
        raise UnsupportedModelError(
            f"{artifact.path}: the 'c' backend cannot run scheme {artifact.scheme!r} "
            f"(expected one of {list(C_SCHEMES)})"
        )
    if artifact.scheme == INT_SCHEME:
        return IntCRunner(build_shared(artifact), artifact.config)
    return CRunner(build_shared(artifact), artifact.config)
