"""The C model data of an `int8-full` artifact, for the integer library (lstm_edge_int.h).

The artifact's integer scheme (`artifact.integer`, runtime/integer.py's IntegerScheme) is
the definition; this module writes its arrays as they are, no arithmetic on them: int8
weights output-major (row r of W [4H][I] contiguous), the per-row int32 multipliers,
shifts and Q3.12 biases, the per-unit cell formats, the two int16 gate tables, the int8
embedding codes or the feature rows' float32 normalization and 1 / input scale, and the
int8 head with its float32 scales, and a forecast model's linear highway (float32, from
the config tensors; the float stage's output.highway). The task's header macros and names
(vocabulary, feature and target names, horizon) are the float model's (`config.spec`).
numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lstm_edge.runtime.backends.c_text import c_string, count, float_lines, int_lines
from lstm_edge.runtime.config import FORMAT_VERSION, HEAD_BIAS
from lstm_edge.runtime.errors import UnsupportedModelError

SCHEME = "int8-full"
TABLE_SIZE = 257  # LSTM_EDGE_INT_TABLE_SIZE

_CTYPES = {
    np.dtype(np.int8): ("int8_t", 1),
    np.dtype(np.int16): ("int16_t", 2),
    np.dtype(np.int32): ("int32_t", 4),
    np.dtype(np.float32): ("float", 4),
}


class IntArrays:
    """The generated const arrays of an integer model and their bytes (flash)."""

    def __init__(self) -> None:
        self.decls: list[str] = []
        self.nbytes = 0

    def add_gate_matrix(self, ident: str, comment: str, values: np.ndarray, hidden: int) -> str:
        """A gate matrix in both layouts of lstm_edge_int.h, the compiler keeping the one
        its LSTM_EDGE_INT_LAYOUT names (the bytes count once)."""
        rows = int_lines(np.ascontiguousarray(values, np.int8))
        dsp = int_lines(np.ascontiguousarray(dsp_layout(np.asarray(values, np.int8), hidden)))
        self.decls.append(
            f"/* {comment}: {values.size} values */\n"
            f"#if LSTM_EDGE_INT_LAYOUT == 1 /* interleaved per unit, 4-byte aligned */\n"
            f"static const int8_t {ident}[] __attribute__((aligned(4))) = {{\n{dsp}\n}};\n"
            f"#else /* output-major */\n"
            f"static const int8_t {ident}[] = {{\n{rows}\n}};\n#endif\n"
        )
        self.nbytes += values.size
        return ident

    def add_head(self, ident: str, comment: str, values: np.ndarray) -> str:
        """The head [out, H] in both layouts: output-major, or (layout 1) each block of
        four outputs interleaved as a gate matrix's unit, the last out % 4 rows as they
        are."""
        q = np.asarray(values, np.int8)
        full = q.shape[0] - q.shape[0] % 4
        blocks = [dsp_layout(q[v : v + 4], 1).ravel() for v in range(0, full, 4)]
        dsp = np.concatenate([*blocks, q[full:].ravel()])
        self.decls.append(
            f"/* {comment}: {q.size} values */\n"
            f"#if LSTM_EDGE_INT_LAYOUT == 1 /* blocks of four outputs interleaved */\n"
            f"static const int8_t {ident}[] __attribute__((aligned(4))) = {{\n"
            f"{int_lines(dsp)}\n}};\n"
            f"#else /* output-major */\n"
            f"static const int8_t {ident}[] = {{\n{int_lines(q)}\n}};\n#endif\n"
        )
        self.nbytes += q.size
        return ident

    def add(self, ident: str, comment: str, values: Any, dtype: Any) -> str:
        dt = np.dtype(dtype)
        data = np.asarray(values)
        if dt.kind in "iu" and data.dtype.kind in "iu":
            info = np.iinfo(dt)
            if data.size and (data.min() < info.min or data.max() > info.max):
                raise UnsupportedModelError(
                    f"integer scheme array {ident!r} holds {data.min()} .. {data.max()} "
                    f"(expected {dt} values)"
                )
        data = np.ascontiguousarray(data.astype(dt) if data.dtype != dt else data)
        ctype, size = _CTYPES[dt]
        body = float_lines(data) if dt.kind == "f" else int_lines(data)
        head = f"/* {comment}: {data.size} values */\nstatic const {ctype} {ident}[]"
        self.decls.append(f"{head} = {{\n{body}\n}};\n")
        self.nbytes += data.size * size
        return ident


def scratch_int16(input_size: int, hidden: int) -> int:
    """LSTM_EDGE_INT_SCRATCH in lstm_edge_int.h."""

    def even(n: int) -> int:
        return 2 * ((n + 1) // 2)

    widened = 1 + even(max(input_size, hidden)) + even(hidden)  # x16, h16 (aligned)
    return widened + (hidden + 1) // 2 + (input_size + 1) // 2  # h_new, x_q (bytes)


def dsp_layout(m: np.ndarray, hidden: int) -> np.ndarray:
    """A gate matrix [4H, n] in LSTM_EDGE_INT_LAYOUT 1: per unit j its rows j, H+j, 2H+j,
    3H+j interleaved in words of four inputs, then their last n % 4 inputs row by row."""
    n = m.shape[1]
    groups = n // 4
    rows = m.reshape(4, hidden, n).transpose(1, 0, 2)  # [unit, gate, n]
    words = rows[:, :, : 4 * groups].reshape(hidden, 4, groups, 4).transpose(0, 2, 1, 3)
    tails = rows[:, :, 4 * groups :]
    return np.concatenate([words.reshape(hidden, -1), tails.reshape(hidden, -1)], axis=1)


def rescale_mode(layer: Any, input_width: int, hidden: int) -> int:
    """lstm_edge_int_layer.rescale: 1 when every shift is in [32, 61], 2 when every
    rescaled sum is bounded below 2^29 (from the widths: |W x| <= 127 * 127 * inputs), 0
    otherwise; 1 and 2 also need every |bias| < 2^30. The C step then rescales in 32-bit
    arithmetic (modes 1 and 2) or in 64 bits, the same bits either way; check_model
    verifies the mode with the same rules."""
    xs, hs = np.asarray(layer.x_shift, np.int64), np.asarray(layer.h_shift, np.int64)
    xm, hm = np.asarray(layer.x_mult, np.int64), np.asarray(layer.h_mult, np.int64)
    shifts = np.concatenate([xs, hs, [int(layer.out_shift)]])
    if np.abs(np.asarray(layer.bias, np.int64)).max() >= 2**30 or shifts.max() > 61:
        return 0
    if shifts.min() >= 32:
        return 1

    def bounded(a_max: int, mult: np.ndarray, shift: np.ndarray) -> bool:
        return all(
            ((a_max * int(m)) >> int(sh)) + 1 < 2**29 for m, sh in zip(mult, shift, strict=True)
        )

    ok = (
        bounded(16129 * input_width, xm, xs)
        and bounded(16129 * hidden, hm, hs)
        and bounded(32767 * 32767, np.array([layer.out_mult]), np.array([layer.out_shift]))
    )
    return 2 if ok else 0


def _layer(arrays: IntArrays, scheme: Any, index: int, hidden: int) -> str:
    ly = scheme.layers[index]
    p = f"l{index}_"
    w_q, r_q = np.asarray(ly.w_q), np.asarray(ly.r_q)
    rows, inp = w_q.shape
    w = arrays.add_gate_matrix(p + "w", f"layer {index} W: int8 [rows {rows}][inputs {inp}]",
                               w_q, hidden)  # fmt: skip
    r = arrays.add_gate_matrix(p + "r", f"layer {index} R: int8 [rows {rows}][h {hidden}]",
                               r_q, hidden)  # fmt: skip
    per_row = {
        name: arrays.add(
            p + name, f"layer {index} {what}: int32 [{rows}]", getattr(ly, name), np.int32
        )
        for name, what in (
            ("x_mult", "input sums -> Q3.12 multiplier"),
            ("x_shift", "input sums -> Q3.12 shift"),
            ("h_mult", "h sums -> Q3.12 multiplier"),
            ("h_shift", "h sums -> Q3.12 shift"),
            ("bias", "Wb + Rb in Q3.12"),
        )
    }
    cf = arrays.add(p + "cell_frac", f"layer {index} cell state fractional bits per unit",
                    ly.cell_frac, np.int32)  # fmt: skip
    return (
        f"    {{ .input_size = {inp}, .w = {w}, .r = {r},\n"
        f"      .x_mult = {per_row['x_mult']}, .x_shift = {per_row['x_shift']},\n"
        f"      .h_mult = {per_row['h_mult']}, .h_shift = {per_row['h_shift']},\n"
        f"      .bias = {per_row['bias']}, .cell_frac = {cf},\n"
        f"      .out_mult = {int(ly.out_mult)}, .out_shift = {int(ly.out_shift)},\n"
        f"      .rescale = {rescale_mode(ly, inp, hidden)},\n"
        f"      .n_w = {count(w)}, .n_r = {count(r)}, .n_x_mult = {count(per_row['x_mult'])},\n"
        f"      .n_x_shift = {count(per_row['x_shift'])}, .n_h_mult = {count(per_row['h_mult'])},\n"
        f"      .n_h_shift = {count(per_row['h_shift'])}, .n_bias = {count(per_row['bias'])},\n"
        f"      .n_cell_frac = {count(cf)} }}"
    )


def _input_stage(arrays: IntArrays, artifact: Any) -> str:
    """Token models: the int8 embedding codes; feature rows: the float model's stage
    fields (normalization, and for forecast the output stage) and 1 / input scale."""
    scheme, cfg = artifact.integer, artifact.config
    if scheme.embedding_q is not None:
        eq = np.asarray(scheme.embedding_q)
        emb = arrays.add("embedding_q", f"embedding codes: int8 [vocab {eq.shape[0]}]"
                         f"[{eq.shape[1]}] of layer 0's input", eq, np.int8)  # fmt: skip
        return (
            f".input = {{ .vocab_size = {eq.shape[0]}, .embedding = {emb},\n"
            f"               .n_embedding = {count(emb)} }}"
        )

    class _FloatArrays:  # the task's stage fields go through the same array list
        def add(self, ident: str, comment: str, values: np.ndarray) -> str:
            return arrays.add(ident, comment, values, np.float32)

    fields = cfg.spec.c_stage_fields(_FloatArrays(), artifact)
    inv = float_lines(np.array([scheme.input_inv_scale], np.float32)).strip()
    return f"{fields},\n    .input.inv_scale = {inv}"


@dataclass(frozen=True)
class IntSources:
    """NAME_model.h/.c of an int8-full model and its bytes (c_source wraps them into its
    ModelSources and Footprint)."""

    header: str
    source: str
    weight_bytes: int  # flash: every const array
    state_bytes: int  # RAM per stream: int8 h and int16 c of every layer, float32 history
    scratch_bytes: int  # RAM of one step call (any batch: streams run one by one)


def int_model_sources(artifact: Any, name: str) -> IntSources:
    """NAME_model.h/.c of an int8-full artifact."""
    scheme = getattr(artifact, "integer", None)
    if scheme is None:
        raise UnsupportedModelError(
            f"{artifact.path}: scheme {SCHEME!r} but no integer scheme in the artifact "
            "(metadata lstm_edge.quant.integer)"
        )
    cfg = artifact.config
    h, layers = cfg.hidden_size, cfg.num_layers
    n_in, n_out = cfg.input_size, cfg.output_size
    arrays = IntArrays()
    stage = _input_stage(arrays, artifact)
    history = cfg.spec.history_size(cfg)
    layer_inits = [_layer(arrays, scheme, i, h) for i in range(layers)]
    head = arrays.add_head(
        "head_q", f"head: int8 [{cfg.spec.c_output_noun} {n_out}][h {h}]", scheme.head_q
    )
    head_scale = arrays.add("head_scale", "head sum -> output scale: float32 [outputs]",
                            scheme.head_scale, np.float32)  # fmt: skip
    head_bias = arrays.add("head_bias", f"{HEAD_BIAS}: float32 [outputs]",
                           artifact.weights[HEAD_BIAS], np.float32)  # fmt: skip
    sig = arrays.add("sigmoid_table", "sigmoid((256 k - 32768) / 4096) in Q0.15",
                     scheme.sigmoid_table, np.int16)  # fmt: skip
    tnh = arrays.add("tanh_table", "tanh((256 k - 32768) / 4096) in Q0.15",
                     scheme.tanh_table, np.int16)  # fmt: skip
    fp = IntSources("", "", arrays.nbytes, 3 * layers * h + 4 * history, 2 * scratch_int16(n_in, h))
    upper, spec = name.upper(), cfg.spec
    step = spec.c_step_function.replace("lstm_edge_", "lstm_edge_int_")
    hist_note = f" and {upper}_HISTORY_SIZE floats of highway history" if history else ""
    header = f"""/* {name}_model.h: generated by lstm-edge codegen; do not edit.
 * Source artifact: task {cfg.task}, format version {FORMAT_VERSION}, scheme {SCHEME},
 * sha256 {artifact.sha256}.
 * Weights, tables and parameters: {fp.weight_bytes} bytes of const data (flash).
 * RAM per stream: {upper}_STATE_SIZE int8 h and int16 c codes{hist_note} ({fp.state_bytes} bytes);
 * scratch per step call: {upper}_SCRATCH_INT16 int16_t.
 * Step it with {step} (see lstm_edge_int.h). */
#ifndef {upper}_MODEL_H
#define {upper}_MODEL_H

#include "lstm_edge_int.h"

#define {upper}_INT8_FULL 1
#define {upper}_TASK {spec.c_enum}
#define {upper}_INPUT_SIZE {n_in}
#define {upper}_OUTPUT_SIZE {n_out}
#define {upper}_HIDDEN {h}
#define {upper}_LAYERS {layers}
#define {upper}_WEIGHT_BYTES {fp.weight_bytes}
/* Codes in each of lstm_edge_int_state.h (int8) and .c (int16) of one stream. */
#define {upper}_STATE_SIZE ({layers} * {h})
/* Floats of lstm_edge_int_state.history of one stream (the forecast highway; 0: none). */
#define {upper}_HISTORY_SIZE {history}
/* int16_t scratch for any step call. */
#define {upper}_SCRATCH_INT16 LSTM_EDGE_INT_SCRATCH({n_in}, {h})
{spec.c_header_macros(artifact, name)}

extern const lstm_edge_int_model {name}_model;

#endif /* {upper}_MODEL_H */
"""
    layer_block = ",\n".join(layer_inits)
    source = f"""/* {name}_model.c: generated by lstm-edge codegen; do not edit.
 * The int8-full scheme's integers as the artifact defines them (runtime/integer.py);
 * matrices output-major ([outputs][inputs]), gate rows in the ONNX order i, o, f, c. */
#include "{name}_model.h"

{chr(10).join(arrays.decls)}
static const lstm_edge_int_layer layers[{layers}] = {{
{layer_block}
}};

const lstm_edge_int_model {name}_model = {{
    .format_version = {FORMAT_VERSION},
    .layout = LSTM_EDGE_INT_LAYOUT,
    .task = {upper}_TASK,
    .input_size = {n_in},
    .output_size = {n_out},
    .hidden_size = {h},
    .num_layers = {layers},
    {stage},
    .layers = layers,
    .head = {head},
    .head_scale = {head_scale},
    .head_bias = {head_bias},
    .sigmoid_table = {sig},
    .tanh_table = {tnh},
    .name = {c_string(name)},
    .scheme = {c_string(SCHEME)},
    .n_layers_stored = {count("layers")},
    .n_head = {count(head)},
    .n_head_scale = {count(head_scale)},
    .n_head_bias = {count(head_bias)},
    .n_sigmoid_table = {count(sig)},
    .n_tanh_table = {count(tnh)},
}};

{spec.c_data(artifact, name)}"""
    return IntSources(header, source, fp.weight_bytes, fp.state_bytes, fp.scratch_bytes)
