"""Export a trained EdgeLSTM to the streaming ONNX artifact, then prove the file right.

The graph is built directly from the weights with `onnx.helper` (format: runtime/config.py
and the notes): an input stage (char-lm: a Gather for the embedding; forecast: Mul/Add
normalization with the NORM_* tensors), one standard `LSTM` node per layer with the
recurrent state as explicit inputs/outputs, MatMul/Add for the head, and an output stage
(forecast: Mul/Add back to raw units). Only the two stages branch on the task. Building
it by hand keeps the graph exactly the small op set every backend (numpy, ORT, C) reads,
and it does not depend on a torch exporter whose output changes between PyTorch
releases. The one place where torch and ONNX disagree, the gate order, is
`torch_to_onnx_gates`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from lstm_edge.runtime.artifact import check_calibration
from lstm_edge.runtime.config import (
    EMBEDDING,
    FORMAT_VERSION,
    HEAD_BIAS,
    HEAD_WEIGHT,
    INPUT_C0,
    INPUT_FEATURES,
    INPUT_H0,
    INPUT_TOKENS,
    META_CALIBRATION,
    META_CONFIG,
    META_FORMAT_VERSION,
    META_PRODUCER_VERSION,
    META_QUANTIZATION,
    META_SOURCE_SHA256,
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    OUTPUT_CN,
    OUTPUT_FORECAST,
    OUTPUT_HN,
    OUTPUT_LOGITS,
    ModelConfig,
    lstm_b,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.errors import LstmEdgeError

# Output-path checks and atomic writes are torch-free (`files`); these names stay
# importable from here for existing callers.
from lstm_edge.runtime.files import (  # noqa: F401
    OutputExistsError,
    atomic_write,
    check_output_path,
)
from lstm_edge.runtime.format import __version__
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.model import NORM_BUFFERS, EdgeLSTM

OPSET = 17
IR_VERSION = 8
DIM_BATCH = "batch"
DIM_TIME = "time"

# Max abs output difference (char-lm logits; forecasts divided by target_std, see
# `output_error_scale`) allowed between the exported file (onnxruntime) and torch over
# the check stream. Both compute in float32 but sum in different orders; a correct export
# measures ~1e-6 over 2,000 steps, while a wrong gate order or state wiring is off by O(1).
CHECK_TOLERANCE = 1e-4
DEFAULT_CHECK_STEPS = 2000
RANDOM_STREAM_SEED = 0


class NonFiniteWeightError(LstmEdgeError):
    """A weight tensor holds NaN or Inf; such a model is refused, naming the tensor."""


class SelfCheckError(LstmEdgeError):
    """A freshly written artifact failed its own check; nothing was left under its name.

    The CLI maps this to exit status 1 (a check did not pass), not 2 (bad input).
    """


@dataclass(frozen=True)
class ExportReport:
    path: Path
    bytes: int
    # Main output vs torch: char-lm logits; forecast errors divided by target_std (standard
    # units, see `output_error_scale`).
    max_abs_err_prefill: float  # one call over the whole stream
    max_abs_err_steps: float  # one call per step with the state carried
    max_abs_err_state: float  # final (hn, cn) of both runs vs torch
    steps_checked: int
    stream: str  # where the check inputs came from
    source_sha256: str
    unit: str = "logit error"  # what the output errors measure (`error_unit`)


# ---- the gate permutation ----------------------------------------------------------------


def torch_to_onnx_gates(w: np.ndarray) -> np.ndarray:
    """Reorder the 4 gate blocks along axis 0 from PyTorch's i, f, g, o to ONNX's i, o, f, c.

    Works for weights [4H, in] and biases [4H]; PyTorch's g (cell candidate) is ONNX's c.
    """
    w = np.asarray(w)
    if w.ndim < 1 or w.shape[0] % 4 != 0:
        raise ValueError(f"gate axis has length {w.shape[:1]} (expected a multiple of 4)")
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def onnx_to_torch_gates(w: np.ndarray) -> np.ndarray:
    """The inverse of `torch_to_onnx_gates`: ONNX's i, o, f, c back to PyTorch's i, f, g, o."""
    w = np.asarray(w)
    if w.ndim < 1 or w.shape[0] % 4 != 0:
        raise ValueError(f"gate axis has length {w.shape[:1]} (expected a multiple of 4)")
    i, o, f, c = np.split(w, 4, axis=0)
    return np.concatenate([i, f, c, o], axis=0)


# ---- the graph ---------------------------------------------------------------------------


def check_finite(named: dict[str, np.ndarray], where: str) -> None:
    """Refuse NaN/Inf in any tensor, naming the first offending one (bad-inputs row 21)."""
    for name, value in named.items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            raise NonFiniteWeightError(
                f"{where}: tensor {name!r} has {bad} NaN/Inf value(s) of {value.size}; "
                "a model with non-finite weights cannot be exported"
            )


def onnx_weights(model: EdgeLSTM) -> dict[str, np.ndarray]:
    """The model's weights as float32 arrays under their ONNX (logical) names and layouts."""
    sd = {k: v.detach().cpu().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    check_finite(sd, "model weights")
    config = model.config
    if config.task == "char-lm":
        out = {EMBEDDING: sd["embedding.weight"]}
    else:
        # The graph's NORM_* tensors come from the config (the one place they are computed);
        # the model's buffers must hold the same values, or torch and the file would differ.
        out = config.spec.config_tensors(config)
        for buffer, name in NORM_BUFFERS.items():
            if not np.array_equal(sd[buffer], out[name]):
                raise LstmEdgeError(
                    f"model buffer {buffer!r} does not match the config's normalization "
                    f"statistics ({name}); the model and its config disagree"
                )
    for layer in range(model.config.num_layers):
        out[lstm_w(layer)] = torch_to_onnx_gates(sd[f"lstm.weight_ih_l{layer}"])[None]
        out[lstm_r(layer)] = torch_to_onnx_gates(sd[f"lstm.weight_hh_l{layer}"])[None]
        # ONNX B is [Wb, Rb] concatenated: torch's bias_ih then bias_hh.
        b = np.concatenate(
            [
                torch_to_onnx_gates(sd[f"lstm.bias_ih_l{layer}"]),
                torch_to_onnx_gates(sd[f"lstm.bias_hh_l{layer}"]),
            ]
        )
        out[lstm_b(layer)] = b[None]
    out[HEAD_WEIGHT] = sd["head.weight"].T  # [hidden, vocab] for MatMul
    out[HEAD_BIAS] = sd["head.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _int64(name: str, values: list[int]) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def build_graph(config: ModelConfig, weights: dict[str, np.ndarray]) -> onnx.GraphProto:
    """The float graph of the artifact format over `weights` (logical name -> array)."""
    num_layers, hidden = config.num_layers, config.hidden_size
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inits.append(_int64("const.squeeze_axes", [1]))
    nodes = [
        *_input_stage(config),
        helper.make_node("Transpose", ["x_btE"], ["x0"], perm=[1, 0, 2], name="to_time_major"),
    ]
    x = "x0"
    hn_parts, cn_parts = [], []
    for layer in range(num_layers):
        starts, ends, axes = f"const.l{layer}.start", f"const.l{layer}.end", "const.axis0"
        inits += [_int64(starts, [layer]), _int64(ends, [layer + 1])]
        h0_l, c0_l = f"h0.l{layer}", f"c0.l{layer}"
        y, yh, yc, x_next = f"y.l{layer}", f"hn.l{layer}", f"cn.l{layer}", f"x{layer + 1}"
        nodes += [
            helper.make_node(
                "Slice", [INPUT_H0, starts, ends, axes], [h0_l], name=f"slice_h0_l{layer}"
            ),
            helper.make_node(
                "Slice", [INPUT_C0, starts, ends, axes], [c0_l], name=f"slice_c0_l{layer}"
            ),
            helper.make_node(
                "LSTM",
                [x, lstm_w(layer), lstm_r(layer), lstm_b(layer), "", h0_l, c0_l],
                [y, yh, yc],
                hidden_size=hidden,
                name=f"lstm_l{layer}",
            ),
            # Y is [time, num_directions=1, batch, hidden]; drop the direction axis.
            helper.make_node(
                "Squeeze", [y, "const.squeeze_axes"], [x_next], name=f"squeeze_l{layer}"
            ),
        ]
        hn_parts.append(yh)
        cn_parts.append(yc)
        x = x_next
    inits.append(_int64("const.axis0", [0]))
    for out_name, parts in ((OUTPUT_HN, hn_parts), (OUTPUT_CN, cn_parts)):
        if len(parts) == 1:
            nodes.append(helper.make_node("Identity", parts, [out_name], name=out_name))
        else:
            nodes.append(helper.make_node("Concat", parts, [out_name], axis=0, name=out_name))
    nodes += [
        helper.make_node("Transpose", [x], ["y_btH"], perm=[1, 0, 2], name="to_batch_major"),
        helper.make_node("MatMul", ["y_btH", HEAD_WEIGHT], ["head_mm"], name="head_matmul"),
        *_output_stage(config),
    ]
    state_shape = [num_layers, DIM_BATCH, hidden]
    inputs = [
        _input_value_info(config),
        helper.make_tensor_value_info(INPUT_H0, TensorProto.FLOAT, state_shape),
        helper.make_tensor_value_info(INPUT_C0, TensorProto.FLOAT, state_shape),
    ]
    outputs = [
        helper.make_tensor_value_info(
            config.output_name, TensorProto.FLOAT, [DIM_BATCH, DIM_TIME, config.output_size]
        ),
        helper.make_tensor_value_info(OUTPUT_HN, TensorProto.FLOAT, state_shape),
        helper.make_tensor_value_info(OUTPUT_CN, TensorProto.FLOAT, state_shape),
    ]
    return helper.make_graph(nodes, "lstm_edge", inputs, outputs, initializer=inits)


# The task-specific stages: everything between them (LSTM layers, head MatMul) is shared.


def _input_value_info(config: ModelConfig) -> onnx.ValueInfoProto:
    """char-lm: tokens int64 [batch, time]; forecast: features float32 [batch, time, F]."""
    if config.task == "char-lm":
        return helper.make_tensor_value_info(INPUT_TOKENS, TensorProto.INT64, [DIM_BATCH, DIM_TIME])
    return helper.make_tensor_value_info(
        INPUT_FEATURES, TensorProto.FLOAT, [DIM_BATCH, DIM_TIME, config.input_size]
    )


def _input_stage(config: ModelConfig) -> list[onnx.NodeProto]:
    """Nodes from the graph input to "x_btE", the first layer's input [batch, time, in]."""
    if config.task == "char-lm":
        return [
            helper.make_node("Gather", [EMBEDDING, INPUT_TOKENS], ["x_btE"], axis=0, name="embed")
        ]
    # Raw sensor values -> standard units with the training-split statistics.
    return [
        helper.make_node("Mul", [INPUT_FEATURES, NORM_IN_SCALE], ["x_scaled"], name="norm_in_mul"),
        helper.make_node("Add", ["x_scaled", NORM_IN_SHIFT], ["x_btE"], name="norm_in_add"),
    ]


def _output_stage(config: ModelConfig) -> list[onnx.NodeProto]:
    """Nodes from "head_mm" (head MatMul output) to the graph's main output."""
    if config.task == "char-lm":
        return [helper.make_node("Add", ["head_mm", HEAD_BIAS], [OUTPUT_LOGITS], name="head_bias")]
    # Head output is in standard units; denormalize to raw target values.
    return [
        helper.make_node("Add", ["head_mm", HEAD_BIAS], ["head_out"], name="head_bias"),
        helper.make_node("Mul", ["head_out", NORM_OUT_SCALE], ["y_scaled"], name="norm_out_mul"),
        helper.make_node(
            "Add", ["y_scaled", NORM_OUT_SHIFT], [OUTPUT_FORECAST], name="norm_out_add"
        ),
    ]


def build_onnx(model: EdgeLSTM, *, source_sha256: str = "") -> onnx.ModelProto:
    """The float artifact for `model` (pure: no I/O). NaN/Inf weights are refused."""
    config = model.config
    graph = build_graph(config, onnx_weights(model))
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="lstm-edge",
        producer_version=__version__,
        ir_version=IR_VERSION,
    )
    helper.set_model_props(
        proto,
        {
            META_FORMAT_VERSION: str(FORMAT_VERSION),
            META_CONFIG: config.to_json(),
            META_QUANTIZATION: "none",
            META_SOURCE_SHA256: source_sha256,
            META_PRODUCER_VERSION: __version__,
        },
    )
    return proto


# ---- writing and checking ----------------------------------------------------------------


def check_model_file(path: Path) -> None:
    """onnx.checker with full shape inference; a failure is a SelfCheckError."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise SelfCheckError(f"{path}: onnx.checker refused the written model: {e}") from None


def ort_session(path_or_bytes: Path | bytes):
    """A single-threaded CPU onnxruntime session (deterministic, fair to a shared machine).

    Basic graph optimizations only: from the extended level on, ORT fuses DequantizeLinear +
    MatMul into MatMulNBits, which also quantizes the activations and moves int8 logits by
    ~1e-2 away from the weight-only semantics the numpy and C backends implement.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def _io_names(sess) -> tuple[str, str]:
    """The session's main input and output names (tokens/logits or features/forecast)."""
    state = (INPUT_H0, INPUT_C0, OUTPUT_HN, OUTPUT_CN)
    (inp,) = [i.name for i in sess.get_inputs() if i.name not in state]
    (out,) = [o.name for o in sess.get_outputs() if o.name not in state]
    return inp, out


def run_session(sess, inputs: np.ndarray, h: np.ndarray, c: np.ndarray):
    """One session.run over either task's graph: inputs (tokens [batch, time] or features
    [batch, time, F]) -> (main output [batch, time, out], hn, cn)."""
    inp, out = _io_names(sess)
    dtype = np.int64 if inp == INPUT_TOKENS else np.float32
    y, hn, cn = sess.run(
        [out, OUTPUT_HN, OUTPUT_CN], {inp: inputs.astype(dtype), INPUT_H0: h, INPUT_C0: c}
    )
    return y, hn, cn


def run_steps(sess, inputs: np.ndarray, h: np.ndarray, c: np.ndarray):
    """One session.run per time step with the state carried; output [batch, time, out]."""
    out = []
    for t in range(inputs.shape[1]):
        y, h, c = run_session(sess, inputs[:, t : t + 1], h, c)
        out.append(y)
    return np.concatenate(out, axis=1), h, c


def torch_reference(model: EdgeLSTM, inputs: np.ndarray):
    """Torch output and final state for inputs [batch, time(, F)] from a zero state."""
    dtype = np.int64 if model.config.task == "char-lm" else np.float32
    with torch.no_grad():
        y, (h, c) = model(torch.from_numpy(np.ascontiguousarray(inputs, dtype=dtype)))
    return y.numpy(), h.numpy(), c.numpy()


def check_stream(ckpt_data: dict, config: ModelConfig, steps: int) -> tuple[np.ndarray, str]:
    """Inputs for the self-check ([steps] token ids, or [steps, F] raw feature values): the
    held-out test split if the checkpoint records its data, otherwise (or if the data is
    gone) a seeded pseudo-random stream."""
    if config.task == "forecast":
        return _forecast_check_stream(ckpt_data, config, steps)
    reason = "the checkpoint has no data record"
    if ckpt_data:
        try:
            from lstm_edge.toolchain.data import encode, held_out_text

            ids = np.asarray(encode(held_out_text(ckpt_data, "test"), config), dtype=np.int64)
            if ids.size:
                return ids[:steps], "held-out test split of the training corpus"
            reason = "the held-out split is empty"
        except (ImportError, LstmEdgeError, OSError) as e:
            reason = f"held-out text unavailable: {e}"
    rng = np.random.default_rng(RANDOM_STREAM_SEED)
    ids = rng.integers(0, config.vocab_size, size=steps, dtype=np.int64)
    return ids, f"seeded pseudo-random tokens (seed {RANDOM_STREAM_SEED}; {reason})"


def _forecast_check_stream(
    ckpt_data: dict, config: ModelConfig, steps: int
) -> tuple[np.ndarray, str]:
    reason = "the checkpoint has no data record"
    if ckpt_data:
        try:
            from lstm_edge.toolchain.series import held_out_series

            x = np.asarray(held_out_series(ckpt_data, config, "test").features, np.float32)
            if x.ndim == 2 and x.shape[0] and x.shape[1] == config.input_size:
                return x[:steps], "held-out test split of the training series"
            reason = f"the held-out split has shape {x.shape}"
        except (ImportError, AttributeError, LstmEdgeError, OSError, ValueError) as e:
            reason = f"held-out series unavailable: {e}"
    from lstm_edge.toolchain.series import synthetic_features

    x = synthetic_features(config, steps, RANDOM_STREAM_SEED)
    return (
        x,
        f"seeded synthetic stream at the training statistics (seed {RANDOM_STREAM_SEED}; {reason})",
    )


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def output_error_scale(config: ModelConfig) -> np.ndarray | float:
    """What output errors are divided by before they meet a tolerance.

    char-lm logits are already O(1): 1. A forecast is in raw units, whose float32 rounding
    error grows with the target's scale (a target of std 1000 carries ~1e-4 absolute
    rounding where one of std 0.01 carries ~1e-9), so one absolute tolerance would be too
    loose for one column and impossible for another. Divided by target_std, errors are in
    the standard units the network computes in, where CHECK_TOLERANCE means the same thing
    for every target and for char-lm logits.
    """
    if config.task == "char-lm":
        return 1.0
    return np.asarray(config.target_std, np.float64)


def error_unit(config: ModelConfig) -> str:
    """How the output errors of `output_error_scale` are named to the user."""
    return "logit error" if config.task == "char-lm" else "forecast error (in target std units)"


def compare_with_torch(path: Path, model: EdgeLSTM, inputs: np.ndarray) -> tuple[float, ...]:
    """(prefill, steps, state) max abs errors of the ONNX file at `path` vs torch; output
    errors divided by `output_error_scale` (forecast: in target standard units)."""
    sess = ort_session(path)
    batch = inputs[None]
    want_y, want_h, want_c = torch_reference(model, batch)
    scale = output_error_scale(model.config)
    h0 = np.zeros_like(want_h)
    got_p, h_p, c_p = run_session(sess, batch, h0, h0)
    got_s, h_s, c_s = run_steps(sess, batch, h0, h0)
    state_err = max(
        _max_err(x, y) for x, y in ((h_p, want_h), (c_p, want_c), (h_s, want_h), (c_s, want_c))
    )
    return (
        _max_err(got_p / scale, want_y / scale),
        _max_err(got_s / scale, want_y / scale),
        state_err,
    )


def forecast_calibration(ckpt) -> dict | None:
    """META_CALIBRATION for a forecast checkpoint, from `forecast_eval.calibrate`, or None
    when the checkpoint's data is unavailable.

    The dict is checked with the runtime's own reader check, so the exporter never writes
    calibration an artifact loader would refuse.
    """
    from lstm_edge.toolchain.forecast_eval import calibrate

    calibration = calibrate(ckpt)
    if calibration is None:
        return None
    if not isinstance(calibration, dict):
        raise SelfCheckError(
            f"calibrate() returned {type(calibration).__name__} (expected a dict or None)"
        )
    check_calibration(calibration, ckpt.config, f"calibration of {ckpt.path}")
    return calibration


def export_checkpoint(
    ckpt_dir: Path,
    out: Path,
    *,
    force: bool = False,
    check_steps: int = DEFAULT_CHECK_STEPS,
) -> ExportReport:
    """Export the checkpoint in `ckpt_dir` to `out`, atomically, after checking the file.

    The file is written to a temp file beside `out`, checked there (onnx.checker with full
    shape inference, then onnxruntime vs torch over `check_steps` steps as one prefill and
    as single steps), and only then renamed to `out`; on any failure nothing is left under
    `out` and an existing file there is untouched. A forecast checkpoint whose data is
    available also gets META_CALIBRATION (anomaly scores), computed through torch.
    """
    if isinstance(check_steps, bool) or not isinstance(check_steps, int) or check_steps < 1:
        raise LstmEdgeError(f"check_steps is {check_steps!r} (expected an integer >= 1)")
    out = check_output_path(out, force)
    ckpt = load_checkpoint(Path(ckpt_dir))
    proto = build_onnx(ckpt.model, source_sha256=ckpt.weights_sha256)
    if ckpt.config.task == "forecast":
        calibration = forecast_calibration(ckpt)
        if calibration is not None:
            props = {p.key: p.value for p in proto.metadata_props}
            props[META_CALIBRATION] = json.dumps(calibration, sort_keys=True)
            helper.set_model_props(proto, props)
    data = proto.SerializeToString()
    inputs, stream = check_stream(ckpt.data, ckpt.config, check_steps)
    unit = error_unit(ckpt.config)
    errors: list[float] = []

    def write_and_check(tmp: Path) -> None:
        tmp.write_bytes(data)
        check_model_file(tmp)
        errors.extend(compare_with_torch(tmp, ckpt.model, inputs))
        worst = max(errors[:2])
        if not worst <= CHECK_TOLERANCE:  # also catches NaN
            raise SelfCheckError(
                f"export check failed: max abs {unit} vs torch is {worst:.3g} "
                f"(prefill {errors[0]:.3g}, single steps {errors[1]:.3g}; tolerance "
                f"{CHECK_TOLERANCE:g}) over {inputs.shape[0]} steps; {out} was not written"
            )

    atomic_write(out, write_and_check)
    return ExportReport(
        path=out,
        bytes=out.stat().st_size,
        max_abs_err_prefill=errors[0],
        max_abs_err_steps=errors[1],
        max_abs_err_state=errors[2],
        steps_checked=int(inputs.shape[0]),
        stream=stream,
        source_sha256=ckpt.weights_sha256,
        unit=unit,
    )
