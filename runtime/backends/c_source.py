"""The c backend's source generation: an artifact -> the model's C (NAME_model.h/.c).

The one translation from an artifact to C model data, so that the c backend and
`lstm-edge codegen` emit the same arrays. The struct fields, kernels and sizes are shared
by every task; the task spec (`config.spec`, its `c_*` members) emits the stage fields,
the task's macros and data. numpy only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lstm_edge.runtime.artifact import BASE_OPS, Artifact, require_ops
from lstm_edge.runtime.backends.c_text import (  # noqa: F401  (re-exported for codegen)
    c_string,
    count,
    float_lines,
    int_lines,
    names_array,
    quantized_weight,
)
from lstm_edge.runtime.config import (
    EMBEDDING,
    FORMAT_VERSION,
    HEAD_BIAS,
    HEAD_WEIGHT,
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    ModelConfig,
    lstm_b,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.errors import UnsupportedModelError
from lstm_edge.runtime.format import HIGHWAY_BIAS, HIGHWAY_WEIGHT

# Mirrors of runtime/c/lstm_edge.h; tests/c checks they still match the header.
BATCH_BLOCK = 64
PANEL = 32  # LSTM_EDGE_PANEL: outputs per panel of a stored float32 weight matrix

# The schemes whose weights the C library runs: float32 (fp16 is widened exactly) and
# int8 weight-only (lstm_edge.h), int8-full (the integer library, lstm_edge_int.h).
# int8-dynamic is onnxruntime's contrib graph and has no C form.
C_SCHEMES = ("none", "fp16", "int8", "int8-full")
INT_SCHEME = "int8-full"

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


# ---- artifact -> C model data ---------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """Bytes the model needs on a device."""

    weight_bytes: int  # const data in flash: weights, scales, biases
    state_bytes: int  # RAM per stream: h and c of every layer (and a highway's history)
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
    panel: int = PANEL  # outputs per panel of a float32 matrix; 0: one panel (see `panels`)

    def add(self, ident: str, comment: str, values: np.ndarray) -> str:
        ctype = "int8_t" if values.dtype == np.int8 else "float"
        body = int_lines(values) if values.dtype == np.int8 else float_lines(values)
        self.decls.append(
            # No size in the brackets: the array is exactly as long as its values, and the
            # structs' n_* fields (LSTM_EDGE_COUNT) are that length, for check_model.
            f"/* {comment}: {values.size} values */\n"
            f"static const {ctype} {ident}[] = {{\n{body}\n}};\n"
        )
        self.nbytes += values.size * (1 if values.dtype == np.int8 else 4)
        return ident


def panels(input_major: np.ndarray, width: int = PANEL) -> np.ndarray:
    """[inputs][outputs] -> the panel layout of lstm_edge_matrix (flat): the outputs in
    panels of `width`, one after the other, each [inputs][panel width]; width 0 is one
    panel, the plain input-major matrix."""
    outputs = input_major.shape[1]
    width = width or max(outputs, 1)
    return np.concatenate(
        [input_major[:, p : p + width].reshape(-1) for p in range(0, outputs, width)]
    )


def _matrix(
    arrays: _Arrays, artifact: Artifact, name: str, ident: str, axis: int, to_input_major
) -> str:
    """Emit one weight matrix (float32 in panels, see `panels`; int8 input-major, as
    lstm_edge_matrix reads them) and return its initializer."""
    qt = quantized_weight(artifact, name, axis)
    if qt is None:
        data = np.ascontiguousarray(to_input_major(artifact.weights[name]), np.float32)
        rows, cols = data.shape[1], data.shape[0]
        layout = f"panels of {arrays.panel}" if arrays.panel else "input-major"
        f32 = arrays.add(
            ident,
            f"{name}: float32 [outputs {rows}] x [inputs {cols}], {layout}",
            panels(data, arrays.panel),
        )
        return f"{{ {rows}, {cols}, {f32}, NULL, NULL, {count(f32)}, 0, {arrays.panel} }}"
    q = np.ascontiguousarray(to_input_major(qt.q), np.int8)
    rows, cols = q.shape[1], q.shape[0]
    qi = arrays.add(ident + "_q", f"{name}: int8 [inputs {cols}][outputs {rows}]", q)
    si = arrays.add(ident + "_scale", f"{name}: float32 scale per output [{rows}]", qt.scale)
    return f"{{ {rows}, {cols}, NULL, {qi}, {si}, {count(qi)}, {count(si)}, 0 }}"


def scratch_floats_per_stream(config: ModelConfig) -> int:
    """LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM in lstm_edge.h."""
    return 8 * config.hidden_size + config.input_size


def footprint(config: ModelConfig, weight_bytes: int) -> Footprint:
    h, layers = config.hidden_size, config.num_layers
    scratch = 4 * scratch_floats_per_stream(config)
    return Footprint(
        weight_bytes=weight_bytes,
        state_bytes=4 * (2 * layers * h + config.spec.history_size(config)),
        scratch_bytes=scratch,
        batch_scratch_bytes=BATCH_BLOCK * scratch,
    )


NORM_C_ARRAYS = (NORM_IN_SCALE, NORM_IN_SHIFT, NORM_OUT_SCALE, NORM_OUT_SHIFT)


def scheme_footprints(config: ModelConfig) -> dict[str, Footprint]:
    """The footprint of this model shape in each C scheme: "none" (float32), "int8"
    (weight-only) and "int8-full", computed from the shapes as the generators emit the
    arrays (tests/c checks each against the generated arrays' bytes)."""
    from lstm_edge.runtime.backends.c_int_source import TABLE_SIZE, scratch_int16

    h, layers, n_out = config.hidden_size, config.num_layers, config.output_size
    emb = dict(config.spec.stage_weights(config)).get(EMBEDDING)
    # feature rows: the normalization's scales and shifts, float32 in C (change targets'
    # select matrix is not: C adds the last value by index)
    norm = config.spec.config_tensors(config)
    stage_floats = sum(norm[k].size for k in NORM_C_ARRAYS if k in norm)
    # the forecast highway's weights and biases, float32 in every float scheme (its select
    # is an int32 compound literal, not counted, as last_index)
    highway_floats = sum(norm[k].size for k in (HIGHWAY_WEIGHT, HIGHWAY_BIAS) if k in norm)
    mats = [(4 * h, config.input_size if i == 0 else h) for i in range(layers)]
    mats += [(4 * h, h)] * layers
    values = sum(r * c for r, c in mats) + h * n_out  # LSTM W, R and the head
    rows = sum(r for r, _ in mats) + n_out  # one scale per output row (int8)
    biases = 4 * layers * h + n_out  # Wb + Rb per layer, the head bias: float32
    emb_values = 0 if emb is None else emb[0] * emb[1]
    emb_rows = 0 if emb is None else emb[0]
    stage_floats_c = stage_floats + highway_floats
    float_fp = footprint(config, 4 * (values + biases + stage_floats_c + emb_values))
    int8_fp = footprint(
        config, values + 4 * rows + 4 * (biases + stage_floats_c) + emb_values + 4 * emb_rows
    )
    int_params = layers * (4 * h * 5 + h)  # x/h multipliers and shifts, bias; cell_frac
    int_scratch = 2 * scratch_int16(config.input_size, h)
    # int8-full's highway: the float stage's weights and bias (float32; its select is a
    # compound literal, as above); its history is float32 state
    full = Footprint(
        weight_bytes=values
        + 4 * int_params
        + 4 * (2 * n_out + stage_floats)
        + 4 * highway_floats
        + emb_values
        + 2 * 2 * TABLE_SIZE,
        state_bytes=3 * layers * h + 4 * config.spec.history_size(config),
        scratch_bytes=int_scratch,
        batch_scratch_bytes=int_scratch,
    )
    return {"none": float_fp, "int8": int8_fp, INT_SCHEME: full}


def model_sources(artifact: Artifact, name: str, *, panel: int = PANEL) -> ModelSources:
    """Generate NAME_model.h/.c: the config as macros and the weights as const arrays.
    `panel`: outputs per panel of the float32 matrices, PANEL for hosts (the register tiles
    read panels), 0 for microcontrollers (one panel: their passes pay per panel)."""
    if artifact.scheme not in C_SCHEMES:
        raise UnsupportedModelError(
            f"{artifact.path}: scheme {artifact.scheme!r} has no C form (the C library runs "
            f"{list(C_SCHEMES)}; quantize with 'int8' for microcontrollers)"
        )
    require_ops(artifact, BASE_OPS, "c")
    name = sanitize_name(name)
    if artifact.scheme == INT_SCHEME:
        from lstm_edge.runtime.backends.c_int_source import int_model_sources

        src = int_model_sources(artifact, name)
        fp = Footprint(src.weight_bytes, src.state_bytes, src.scratch_bytes, src.scratch_bytes)
        return ModelSources(name=name, header=src.header, source=src.source, footprint=fp)
    arrays = _Arrays(decls=[], panel=panel)
    fields = _weight_fields(arrays, artifact)
    fp = footprint(artifact.config, arrays.nbytes)
    header = _header(artifact, name, fp)
    source = _source(artifact, name, arrays, fields)
    return ModelSources(name=name, header=header, source=source, footprint=fp)


def _weight_fields(arrays: _Arrays, artifact: Artifact) -> dict[str, str]:
    """Emit every weight array (stages first, then the layers and the head) and return the
    model struct's initializers of them: stage, layers, head, head_bias."""
    cfg = artifact.config
    h = cfg.hidden_size
    stage_init = cfg.spec.c_stage_fields(arrays, artifact)
    layer_inits = []
    for layer in range(cfg.num_layers):
        # ONNX W/R are [1, 4H, in] (outputs x inputs): drop the direction axis, transpose.
        w = _matrix(arrays, artifact, lstm_w(layer), f"l{layer}_w", 1, lambda a: a[0].T)
        r = _matrix(arrays, artifact, lstm_r(layer), f"l{layer}_r", 1, lambda a: a[0].T)
        wb, rb = np.split(artifact.weights[lstm_b(layer)][0], 2)
        bias = arrays.add(
            f"l{layer}_bias",
            f"{lstm_b(layer)}: Wb + Rb float32 [4H {4 * h}], gates i, o, f, c",
            (wb + rb).astype(np.float32),
        )
        layer_inits.append(f"    {{ {w}, {r}, {bias}, {count(bias)} }}")
    # HEAD_WEIGHT is [H, out] for MatMul: already input-major (inputs H, outputs out).
    head = _matrix(arrays, artifact, HEAD_WEIGHT, "head_w", 1, lambda a: a)
    head_b = arrays.add(
        "head_bias",
        f"{HEAD_BIAS}: float32 [{cfg.spec.c_output_noun} {cfg.output_size}]",
        artifact.weights[HEAD_BIAS],
    )
    return {
        "stage": stage_init,
        "layers": ("," + chr(10)).join(layer_inits),
        "head": head,
        "head_bias": head_b,
    }


def _header(artifact: Artifact, name: str, fp: Footprint) -> str:
    """NAME_model.h: the config and footprint as macros, the task's macros, the model."""
    cfg, spec, upper = artifact.config, artifact.config.spec, name.upper()
    n_in, n_out, h, layers = cfg.input_size, cfg.output_size, cfg.hidden_size, cfg.num_layers
    task_macros = spec.c_header_macros(artifact, name)
    guard = f"{upper}_MODEL_H"
    return f"""/* {name}_model.h: generated by lstm-edge codegen; do not edit.
 * Source artifact: task {cfg.task}, format version {FORMAT_VERSION}, scheme {artifact.scheme},
 * sha256 {artifact.sha256}.
 * Weights and scales: {fp.weight_bytes} bytes of const data (flash).
 * RAM per stream: {upper}_STATE_FLOATS floats each for h and c (and {upper}_HISTORY_FLOATS for
 * the history of a forecast highway); scratch per step call:
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
/* Floats of lstm_edge_state.history of one stream: 1 + lags * outputs for a forecast model
 * with a linear highway, 0 for a model without (its history may be NULL). */
#define {upper}_HISTORY_FLOATS {spec.history_size(cfg)}
/* Scratch floats for one-stream step calls. */
#define {upper}_SCRATCH_FLOATS LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM({n_in}, {h})
/* Scratch floats for batched calls and runs of steps: LSTM_EDGE_BATCH_BLOCK lanes at once. */
#define {upper}_BATCH_SCRATCH_FLOATS (LSTM_EDGE_BATCH_BLOCK * {upper}_SCRATCH_FLOATS)
{task_macros}

extern const lstm_edge_model {name}_model;

#endif /* {guard} */
"""


def _source(artifact: Artifact, name: str, arrays: _Arrays, fields: dict[str, str]) -> str:
    """NAME_model.c: the arrays, the model struct, the task's data."""
    cfg, spec, upper = artifact.config, artifact.config.spec, name.upper()
    n_in, n_out, h, layers = cfg.input_size, cfg.output_size, cfg.hidden_size, cfg.num_layers
    stage_init, head, head_b = fields["stage"], fields["head"], fields["head_bias"]
    task_data = spec.c_data(artifact, name)
    return f"""/* {name}_model.c: generated by lstm-edge codegen; do not edit.
 * Matrices are stored input-major, float32 ones in panels of their `panel` field's outputs (see
 * lstm_edge_matrix); LSTM gate rows are in the ONNX order i, o, f, c. */
#include "{name}_model.h"

{chr(10).join(arrays.decls)}
static const lstm_edge_layer layers[{layers}] = {{
{fields["layers"]}
}};

const lstm_edge_model {name}_model = {{
    .format_version = {FORMAT_VERSION},
    .task = {upper}_TASK,
    .input_size = {n_in},
    .output_size = {n_out},
    .hidden_size = {h},
    .num_layers = {layers},
    {stage_init},
    .layers = layers,
    .head = {head},
    .head_bias = {head_b},
    .name = {c_string(name)},
    .scheme = {c_string(artifact.scheme)},
    .n_layers_stored = {count("layers")},
    .n_head_bias = {count(head_b)},
}};

{task_data}"""
