"""The `c` backend: the portable C library (runtime/c/) compiled for this host, via ctypes.

It also owns the one translation from an artifact to C model data (`model_sources`), so
that this backend and `lstm-edge codegen` emit the same arrays. Both tasks share it: only
the input stage (char-lm embedding / forecast normalization) and the output stage (forecast
denormalization) differ. Loading generates the
model's C, compiles it with the system C compiler into a shared library cached under
$LSTM_EDGE_CACHE (default ~/.cache/lstm-edge), keyed by the model's SHA-256, the library
sources and the compiler command, and calls `lstm_edge_step_batch` (char-lm) or
`lstm_edge_forecast_step_batch` (forecast) through ctypes.
numpy only: no torch, no onnx package.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_edge.runtime.artifact import BASE_OPS, Artifact, QuantizedTensor, require_ops
from lstm_edge.runtime.config import (
    FORMAT_VERSION,
    HEAD_BIAS,
    HEAD_WEIGHT,
    ModelConfig,
    lstm_b,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.errors import (
    InputError,
    LstmEdgeError,
    UnsupportedModelError,
)

# The C library's sources, shipped inside the package (runtime/c/).
LIBRARY_DIR = Path(__file__).resolve().parents[1] / "c"
LIBRARY_FILES = ("lstm_edge.h", "lstm_edge.c")

# Mirrors of runtime/c/lstm_edge.h; tests/c checks they still match the header.
BATCH_BLOCK = 4
StateStruct = ctypes.c_void_p * 2  # lstm_edge_state {float *h; float *c;}
STATUS_MESSAGES = {
    1: "a required pointer is NULL",
    2: "token id out of range",
    3: "batch or time negative, or scratch too small",
    4: "model data inconsistent or of another format version",
    5: "state holds NaN or Inf",
    6: "step function of the other task",
    7: "input holds NaN or Inf",
}

# The schemes whose weights the C library runs: float32 (fp16 is widened exactly) and
# int8 weight-only. int8-dynamic is onnxruntime's contrib graph and has no C form.
C_SCHEMES = ("none", "fp16", "int8")

# C89/C99/C11/C23 keywords and names a header commonly defines as macros.
C_RESERVED = frozenset(
    """auto break case char const continue default do double else enum extern float for goto
    if inline int long register restrict return short signed sizeof static struct switch
    typedef union unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof
    _Atomic _Generic _Noreturn _Static_assert _Thread_local alignas alignof bool constexpr
    false nullptr static_assert thread_local true typeof typeof_unqual asm main errno
    NULL EOF assert""".split()  # noqa: SIM905 (a word list reads better as text)
)
MAX_NAME = 24  # "NAME_model" etc. stay within C99's 31 significant external characters
DEFAULT_NAME = "model"


class CompilerError(LstmEdgeError):
    """No usable C compiler, or the generated C did not compile."""


# ---- names and literals ---------------------------------------------------------------------


def sanitize_name(raw: str) -> str:
    """A model name -> a C identifier: [A-Za-z0-9_], no leading digit, no keyword.

    Quotes, `*/`, newlines and every other character become `_` (row 20 of bad-inputs);
    C keywords, reserved (`_X`, `__`) and `lstm_edge*` names (the library's own prefix)
    get a `m_` prefix; an empty result becomes "model".
    """
    name = re.sub(r"[^A-Za-z0-9_]+", "_", str(raw)).strip("_")
    name = re.sub(r"__+", "_", name)[:MAX_NAME].rstrip("_") or DEFAULT_NAME
    if name[0].isdigit() or name in C_RESERVED or name.lower().startswith("lstm_edge"):
        name = ("m_" + name)[:MAX_NAME].rstrip("_")
    return name


def c_string(text: str) -> str:
    """A C string literal holding `text` as UTF-8; anything but safe ASCII is an octal
    escape (no quotes, backslashes, `?` (trigraphs), `*/` or newlines reach the source)."""
    safe = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-+.,:;=()[]{}<>")
    out = "".join(chr(b) if b in safe else f"\\{b:03o}" for b in text.encode("utf-8"))
    return f'"{out}"'


def int_lines(values: np.ndarray, per_line: int = 24) -> str:
    items = [str(v) for v in values.ravel().tolist()]
    return ",\n".join(
        "    " + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)
    )


def float_lines(values: np.ndarray, per_line: int = 12) -> str:
    # numpy prints a float32 with the fewest digits that read back to the same float32,
    # so the C literal (with the f suffix) is the exact weight.
    items = [s + "f" for s in np.asarray(values, np.float32).ravel().astype(str).tolist()]
    return ",\n".join(
        "    " + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)
    )


# ---- artifact -> C model data ---------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """Bytes the model needs on a device."""

    weight_bytes: int  # const data in flash: weights, scales, biases
    state_bytes: int  # RAM per stream: h and c of every layer
    scratch_bytes: int  # RAM shared by the streams of one step call (one stream)
    batch_scratch_bytes: int  # RAM to step LSTM_EDGE_BATCH_BLOCK streams at once


@dataclass(frozen=True)
class ModelSources:
    name: str  # the sanitized identifier
    header: str  # NAME_model.h
    source: str  # NAME_model.c
    footprint: Footprint

    @property
    def header_file(self) -> str:
        return f"{self.name}_model.h"

    @property
    def source_file(self) -> str:
        return f"{self.name}_model.c"


@dataclass
class _Arrays:
    """The generated arrays of one model, and their byte count."""

    decls: list[str]
    nbytes: int = 0

    def add(self, ident: str, comment: str, values: np.ndarray) -> str:
        ctype = "int8_t" if values.dtype == np.int8 else "float"
        body = int_lines(values) if values.dtype == np.int8 else float_lines(values)
        self.decls.append(
            f"/* {comment} */\nstatic const {ctype} {ident}[{values.size}] = {{\n{body}\n}};\n"
        )
        self.nbytes += values.size * (1 if values.dtype == np.int8 else 4)
        return ident


def quantized_weight(artifact: Artifact, name: str, axis: int) -> QuantizedTensor | None:
    qt = artifact.quantized.get(name)
    if qt is not None and qt.axis != axis:
        raise UnsupportedModelError(
            f"{artifact.path}: weight {name!r} is quantized along axis {qt.axis} "
            f"(the C library expects axis {axis}, one scale per output row)"
        )
    return qt


def _matrix(
    arrays: _Arrays, artifact: Artifact, name: str, ident: str, axis: int, to_input_major
) -> str:
    """Emit one weight matrix input-major ([inputs][outputs]) and return its initializer."""
    qt = quantized_weight(artifact, name, axis)
    if qt is None:
        data = np.ascontiguousarray(to_input_major(artifact.weights[name]), np.float32)
        f32 = arrays.add(
            ident, f"{name}: float32 [inputs {data.shape[0]}][outputs {data.shape[1]}]", data
        )
        rows, cols = data.shape[1], data.shape[0]
        return f"{{ {rows}, {cols}, {f32}, NULL, NULL }}"
    q = np.ascontiguousarray(to_input_major(qt.q), np.int8)
    rows, cols = q.shape[1], q.shape[0]
    qi = arrays.add(ident + "_q", f"{name}: int8 [inputs {cols}][outputs {rows}]", q)
    si = arrays.add(ident + "_scale", f"{name}: float32 scale per output [{rows}]", qt.scale)
    return f"{{ {rows}, {cols}, NULL, {qi}, {si} }}"


def scratch_floats_per_stream(config: ModelConfig) -> int:
    """LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM in lstm_edge.h."""
    return 8 * config.hidden_size + config.input_size


def footprint(config: ModelConfig, weight_bytes: int) -> Footprint:
    h, layers = config.hidden_size, config.num_layers
    scratch = 4 * scratch_floats_per_stream(config)
    return Footprint(
        weight_bytes=weight_bytes,
        state_bytes=4 * 2 * layers * h,
        scratch_bytes=scratch,
        batch_scratch_bytes=BATCH_BLOCK * scratch,
    )


def names_array(ident: str, size_macro: str, comment: str, names) -> str:
    items = ",\n".join(f"    {c_string(n)}" for n in names)
    return f"/* {comment} */\nconst char *const {ident}[{size_macro}] = {{\n{items}\n}};\n"


def model_sources(artifact: Artifact, name: str) -> ModelSources:
    """Generate NAME_model.h/.c: the config as macros and the weights as const arrays."""
    if artifact.scheme not in C_SCHEMES:
        raise UnsupportedModelError(
            f"{artifact.path}: scheme {artifact.scheme!r} has no C form (the C library runs "
            f"{list(C_SCHEMES)}; quantize with 'int8' for microcontrollers)"
        )
    require_ops(artifact, BASE_OPS, "c")
    name = sanitize_name(name)
    upper = name.upper()
    cfg = artifact.config
    spec = cfg.spec
    n_in, n_out, h, layers = cfg.input_size, cfg.output_size, cfg.hidden_size, cfg.num_layers
    arrays = _Arrays(decls=[])
    stage_init = spec.c_stage_fields(arrays, artifact)

    layer_inits = []
    for layer in range(layers):
        # ONNX W/R are [1, 4H, in] (outputs x inputs): drop the direction axis, transpose.
        w = _matrix(arrays, artifact, lstm_w(layer), f"l{layer}_w", 1, lambda a: a[0].T)
        r = _matrix(arrays, artifact, lstm_r(layer), f"l{layer}_r", 1, lambda a: a[0].T)
        wb, rb = np.split(artifact.weights[lstm_b(layer)][0], 2)
        bias = arrays.add(
            f"l{layer}_bias",
            f"{lstm_b(layer)}: Wb + Rb float32 [4H {4 * h}], gates i, o, f, c",
            (wb + rb).astype(np.float32),
        )
        layer_inits.append(f"    {{ {w}, {r}, {bias} }}")
    # HEAD_WEIGHT is [H, out] for MatMul: already input-major (inputs H, outputs out).
    head = _matrix(arrays, artifact, HEAD_WEIGHT, "head_w", 1, lambda a: a)
    head_b = arrays.add(
        "head_bias",
        f"{HEAD_BIAS}: float32 [{spec.c_output_noun} {n_out}]",
        artifact.weights[HEAD_BIAS],
    )
    fp = footprint(cfg, arrays.nbytes)

    task_macros = spec.c_header_macros(artifact, name)
    task_data = spec.c_data(artifact, name)
    sizes = spec.c_size_fields(cfg)

    guard = f"{upper}_MODEL_H"
    header = f"""/* {name}_model.h: generated by lstm-edge codegen; do not edit.
 * Source artifact: task {cfg.task}, format version {FORMAT_VERSION}, scheme {artifact.scheme},
 * sha256 {artifact.sha256}.
 * Weights and scales: {fp.weight_bytes} bytes of const data (flash).
 * RAM per stream: {upper}_STATE_FLOATS floats each for h and c; scratch per step call:
 * {upper}_SCRATCH_FLOATS floats (or {upper}_BATCH_SCRATCH_FLOATS for batched calls).
 * Step it with {spec.c_step_function} (see lstm_edge.h). */
#ifndef {guard}
#define {guard}

#include "lstm_edge.h"

#define {upper}_TASK {spec.c_enum}
/* Floats in one step's input (forecast: raw feature values; char-lm: the embedding width)
 * and output (forecast: raw target predictions; char-lm: logits). */
#define {upper}_INPUT_SIZE {n_in}
#define {upper}_OUTPUT_SIZE {n_out}
#define {upper}_HIDDEN {h}
#define {upper}_LAYERS {layers}
#define {upper}_WEIGHT_BYTES {fp.weight_bytes}
/* Floats in each of lstm_edge_state.h and .c of one stream. */
#define {upper}_STATE_FLOATS ({layers} * {h})
/* Scratch floats for one-stream step calls. */
#define {upper}_SCRATCH_FLOATS LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM({n_in}, {h})
/* Scratch floats for batched calls to step LSTM_EDGE_BATCH_BLOCK streams at once. */
#define {upper}_BATCH_SCRATCH_FLOATS (LSTM_EDGE_BATCH_BLOCK * {upper}_SCRATCH_FLOATS)
{task_macros}

extern const lstm_edge_model {name}_model;

#endif /* {guard} */
"""
    source = f"""/* {name}_model.c: generated by lstm-edge codegen; do not edit.
 * Matrices are stored input-major ([inputs][outputs], see lstm_edge_matrix); LSTM gate
 * rows are in the ONNX order i, o, f, c. */
#include "{name}_model.h"

{chr(10).join(arrays.decls)}
static const lstm_edge_layer layers[{layers}] = {{
{("," + chr(10)).join(layer_inits)}
}};

const lstm_edge_model {name}_model = {{
    .format_version = {FORMAT_VERSION},
    .task = {upper}_TASK,
    .input_size = {n_in},
    .output_size = {n_out},
    {sizes}
    .hidden_size = {h},
    .num_layers = {layers},
    {stage_init},
    .layers = layers,
    .head = {head},
    .head_bias = {head_b},
    .name = {c_string(name)},
    .scheme = {c_string(artifact.scheme)},
}};

{task_data}"""
    return ModelSources(name=name, header=header, source=source, footprint=fp)


# ---- compiling ------------------------------------------------------------------------------

# -O3 vectorizes the input-major kernels; no -ffast-math (the kernels are written not to
# need it). -ffp-contract=fast lets a*b+c become one FMA (one rounding instead of two,
# still IEEE); -std=c99 turns it off by default, and it measured 250 -> 150 us per step
# for the 2x256 float model.
HOST_FLAGS = (
    "-std=c99",
    "-O3",
    "-ffp-contract=fast",
    "-fPIC",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
)


def find_compiler() -> str:
    """$CC, else cc, gcc or clang on PATH; a CompilerError naming what to install."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for cand in candidates:
        exe = shutil.which(cand)
        if exe:
            return exe
    hint = (
        "install Xcode's command line tools (xcode-select --install)"
        if sys.platform == "darwin"
        else "install a C compiler, e.g. `apt-get install gcc` (Debian/Ubuntu) or "
        "`dnf install gcc` (Fedora)"
    )
    raise CompilerError(
        f"the 'c' backend needs a C compiler and found none (looked for {candidates}); {hint}, "
        f"or set CC to one"
    )


def compile_c(cmd: list[str], what: str) -> None:
    """Run a compiler command; a CompilerError with its output if it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        out = (result.stderr or result.stdout).strip()
        raise CompilerError(f"compiling {what} failed ({' '.join(cmd[:2])} ...):\n{out[-4000:]}")


def _native_flags(cc: str) -> tuple[str, ...]:
    """-march=native when the compiler accepts it (the cached library runs only here)."""
    probe = subprocess.run(
        [cc, "-march=native", "-x", "c", "-c", "-o", os.devnull, "-"],
        input="int x;\n",
        capture_output=True,
        text=True,
    )
    return ("-march=native",) if probe.returncode == 0 else ()


def cache_dir() -> Path:
    root = os.environ.get("LSTM_EDGE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "lstm-edge"


def library_sha256() -> str:
    digest = hashlib.sha256()
    for f in LIBRARY_FILES:
        digest.update((LIBRARY_DIR / f).read_bytes())
    return digest.hexdigest()


SHARED_NAME = "net"  # the model's C name inside the cached shared libraries


def build_shared(artifact: Artifact) -> Path:
    """Compile the artifact and the library into a cached shared library; return its path."""
    cc = find_compiler()
    flags = (*HOST_FLAGS, *_native_flags(cc))
    key = hashlib.sha256(
        "\n".join([artifact.sha256, library_sha256(), cc, *flags]).encode()
    ).hexdigest()[:24]
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    out = cache_dir() / "c" / f"{artifact.sha256[:16]}-{key}{suffix}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src = model_sources(artifact, SHARED_NAME)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
        build = Path(tmp)
        (build / src.header_file).write_text(src.header)
        (build / src.source_file).write_text(src.source)
        lib = build / ("lib" + suffix)
        compile_c(
            [
                cc,
                *flags,
                "-shared",
                f"-I{LIBRARY_DIR}",
                "-o",
                str(lib),
                str(build / src.source_file),
                str(LIBRARY_DIR / "lstm_edge.c"),
                "-lm",
            ],
            f"the C backend for {artifact.path}",
        )
        os.replace(lib, out)  # atomic: a concurrent loader sees the old state or this one
    return out


# ---- the runner -----------------------------------------------------------------------------


class CRunner:
    """Steps the compiled model; see `Runner` in backends/__init__.py. One path for both
    tasks: only the C entry point and the input dtype differ."""

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
        self._model = ctypes.addressof(ctypes.c_char.in_dll(self._lib, f"{SHARED_NAME}_model"))
        self._lib.lstm_edge_check_model.argtypes = [ctypes.c_void_p]
        status = self._lib.lstm_edge_check_model(self._model)
        if status != 0:
            raise CompilerError(
                f"{library}: the compiled model data fails its check "
                f"({STATUS_MESSAGES.get(status, status)})"
            )
        self.output_size = config.output_size
        self.layers, self.hidden = config.num_layers, config.hidden_size
        self.scratch_per_stream = scratch_floats_per_stream(config)

    def run(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """inputs: tokens [batch, time] (char-lm) or raw features [batch, time, F]
        (forecast); returns logits / forecasts [batch, time, output_size], hn, cn."""
        if inputs.shape[0] == 1:
            return self._run_one(inputs, h, c)
        batch, time = inputs.shape[:2]
        # The C state is per stream ([batch][layers][hidden]); these copies become the new
        # state, so the caller's arrays are never written (np.array always copies).
        hs = np.array(h.transpose(1, 0, 2), dtype=np.float32, order="C")
        cs = np.array(c.transpose(1, 0, 2), dtype=np.float32, order="C")
        offsets = np.arange(batch, dtype=np.uintp) * (self.layers * self.hidden * 4)
        states = np.empty((batch, 2), np.uintp)  # lstm_edge_state {float *h; float *c;}
        states[:, 0] = hs.ctypes.data + offsets
        states[:, 1] = cs.ctypes.data + offsets
        x = np.ascontiguousarray(inputs, dtype=self.input_dtype)
        out = np.empty((batch, time, self.output_size), np.float32)
        scratch = np.empty(min(batch, BATCH_BLOCK) * self.scratch_per_stream, np.float32)
        self.call(
            states.ctypes.data, batch, x.ctypes.data, time, out.ctypes.data, scratch.ctypes.data
        )
        return (
            out,
            np.ascontiguousarray(hs.transpose(1, 0, 2)),
            np.ascontiguousarray(cs.transpose(1, 0, 2)),
        )

    def _run_one(
        self, inputs: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One stream, the common streaming case, with the Python side kept to a minimum:
        [layers, 1, hidden] already is the C layout of one stream, and the new h, c, the
        outputs, the inputs and the scratch share ONE fresh buffer, so a single pointer
        is looked up (each lookup costs ~1 us, as much as a small model's whole step)."""
        time = inputs.shape[1]
        n_state = self.layers * self.hidden
        n_out = time * self.output_size
        n_in = inputs.size  # int32 token ids or float32 features: 4 bytes each
        buf = np.empty(2 * n_state + n_out + n_in + self.scratch_per_stream, np.float32)
        hs = buf[:n_state].reshape(h.shape)
        cs = buf[n_state : 2 * n_state].reshape(c.shape)
        out = buf[2 * n_state : 2 * n_state + n_out].reshape(1, time, self.output_size)
        x = buf[2 * n_state + n_out : 2 * n_state + n_out + n_in]
        hs[...] = h
        cs[...] = c
        x.view(self.input_dtype)[:] = inputs.reshape(-1)
        base = buf.ctypes.data
        state = StateStruct(base, base + 4 * n_state)
        self.call(
            ctypes.addressof(state),
            1,
            base + 4 * (2 * n_state + n_out),
            time,
            base + 4 * 2 * n_state,
            base + 4 * (2 * n_state + n_out + n_in),
        )
        return out, hs, cs

    def call(self, states: int, batch: int, x: int, time: int, out: int, scratch: int) -> None:
        """The C batched step on buffers the caller prepared, by address: `states` an array
        of `batch` StateStruct, `x` int32 tokens or float32 features [batch][time](F),
        `out` float32 [batch][time][output_size], `scratch` float32 for
        min(batch, BATCH_BLOCK) streams. No copies and no checks beyond the C library's
        own: `run` is the safe entry; this is what `lstm-edge bench` times as the C step."""
        status = self._step(
            self._model,
            states,
            batch,
            x,
            time,
            out,
            scratch,
            min(batch, BATCH_BLOCK) * self.scratch_per_stream,
        )
        if status != 0:
            raise InputError(f"the C step refused the call: {STATUS_MESSAGES.get(status, status)}")


def load(artifact: Artifact, **options) -> CRunner:
    if options:
        raise InputError(f"the c backend takes no options (got {sorted(options)})")
    if artifact.scheme not in C_SCHEMES:
        raise UnsupportedModelError(
            f"{artifact.path}: the 'c' backend cannot run scheme {artifact.scheme!r} "
            f"(expected one of {list(C_SCHEMES)})"
        )
    return CRunner(build_shared(artifact), artifact.config)
