"""Write the streaming ONNX artifact from a config and float weights, then prove the file
right against a reference stream. Torch-free: the toolchain (lstm_edge.toolchain.export)
turns a checkpoint into the weights, the reference stream and the calibration.

The graph is built directly from the weights with `onnx.helper` (format: runtime/config.py
and the notes): the task's input stage (`spec.input_stage`: char-lm a Gather for the
embedding; forecast Mul/Add normalization with the NORM_* tensors), one standard `LSTM`
node per layer with the recurrent state as explicit inputs/outputs, MatMul for the head,
and the task's output stage (`spec.output_stage`: the head bias, forecast also Mul/Add
back to raw units). Building it by hand keeps the graph exactly the small op set every
backend (numpy, ORT, C) reads, and it does not depend on a torch exporter whose output
changes between PyTorch releases. The one place where torch and ONNX disagree, the gate
order, is `torch_to_onnx_gates`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lstm_edge.exporters.compare import EXPORT_CHECK_TOLERANCE, StreamComparison, compare_streams
from lstm_edge.runtime.config import (
    FORMAT_VERSION,
    INPUT_C0,
    INPUT_H0,
    INPUT_HISTORY,
    INPUT_TOKENS,
    META_CALIBRATION,
    META_CONFIG,
    META_FORMAT_VERSION,
    META_PRODUCER_VERSION,
    META_QUANTIZATION,
    META_SOURCE_SHA256,
    OUTPUT_CN,
    OUTPUT_HISTORY,
    OUTPUT_HN,
    ModelConfig,
)
from lstm_edge.runtime.digest import model_digest
from lstm_edge.runtime.errors import CheckFailedError, LstmEdgeError

# Output-path checks and atomic writes are torch-free (`files`); these names stay
# importable from here for existing callers.
from lstm_edge.runtime.files import (  # noqa: F401
    OutputExistsError,
    atomic_write,
    check_output_path,
)
from lstm_edge.runtime.format import META_DIGEST, __version__
from lstm_edge.runtime.graph import DIM_BATCH, DIM_TIME, canonical_graph

OPSET = 17
IR_VERSION = 8

# The export self-check's bound (why: `compare.EXPORT_CHECK_TOLERANCE`), in the task's
# error units (`spec.error_scale`: char-lm logits, forecasts / target_std).
CHECK_TOLERANCE = EXPORT_CHECK_TOLERANCE


class NonFiniteWeightError(LstmEdgeError):
    """A weight tensor holds NaN or Inf; such a model is refused, naming the tensor."""


class SelfCheckError(CheckFailedError):
    """A freshly written artifact failed its own check; nothing was left under its name.

    The CLI maps this to exit status 1 (a check did not pass), not 2 (bad input).
    """


@dataclass(frozen=True)
class ExportReport:
    path: Path
    bytes: int
    # Main output vs torch: char-lm logits; forecast errors divided by target_std (standard
    # units, see `spec.error_scale`).
    max_abs_err_prefill: float  # one call over the whole stream
    max_abs_err_steps: float  # one call per step with the state carried
    max_abs_err_state: float  # final (hn, cn) of both runs vs torch
    steps_checked: int
    stream: str  # where the check inputs came from
    source_sha256: str
    unit: str = "logit error"  # what the output errors measure (`spec.error_unit`)


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


def graph_tensors(config: ModelConfig, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's float initializers in file order: the config's tensors (forecast: NORM_*)
    first, then `weights` (logical name -> float32 array, in their given order).

    `weights` may hold the config's tensors too (`toolchain.export.onnx_weights` does);
    they must then equal what the config implies, or the file would disagree with itself.
    """
    tensors = config.spec.config_tensors(config)
    for name, want in tensors.items():
        if name in weights and not np.array_equal(weights[name], want):
            raise LstmEdgeError(
                f"weight {name!r} does not match the config's statistics; the weights and "
                "their config disagree"
            )
    tensors.update(weights)
    return tensors


def build_graph(config: ModelConfig, weights: Mapping[str, np.ndarray]) -> onnx.GraphProto:
    """The float graph of the artifact format over `weights` (logical name -> array): the
    runtime's canonical graph of the config (`runtime.graph`), written as ONNX."""
    canonical = canonical_graph(config)
    inits = [numpy_helper.from_array(v, k) for k, v in graph_tensors(config, weights).items()]
    inits += [numpy_helper.from_array(v, k) for k, v in canonical.constants.items()]
    nodes = [
        helper.make_node(n.op, list(n.inputs), list(n.outputs), name=n.name, **n.attrs)
        for n in canonical.nodes
    ]
    state_shape = [config.num_layers, DIM_BATCH, config.hidden_size]
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
    history = config.spec.history_size(config)
    if history:  # the forecast highway's state (INPUT_HISTORY)
        inputs.append(
            helper.make_tensor_value_info(INPUT_HISTORY, TensorProto.FLOAT, [DIM_BATCH, history])
        )
        outputs.append(
            helper.make_tensor_value_info(OUTPUT_HISTORY, TensorProto.FLOAT, [DIM_BATCH, history])
        )
    return helper.make_graph(nodes, "lstm_edge", inputs, outputs, initializer=inits)


def _input_value_info(config: ModelConfig) -> onnx.ValueInfoProto:
    """The main input: char-lm tokens int64 [batch, time]; forecast features float32
    [batch, time, F] (`spec.graph_input_dims`, None: the dynamic batch and time axes)."""
    spec = config.spec
    dynamic = iter((DIM_BATCH, DIM_TIME))
    dims = [next(dynamic) if d is None else d for d in spec.graph_input_dims(config)]
    dtype = helper.np_dtype_to_tensor_dtype(spec.input_dtype)
    return helper.make_tensor_value_info(spec.input_name, dtype, dims)


def build_onnx(
    config: ModelConfig,
    weights: Mapping[str, np.ndarray],
    *,
    source_sha256: str = "",
    calibration: dict | None = None,
) -> onnx.ModelProto:
    """The float artifact over `weights` (logical name -> float32 array; pure: no I/O).

    NaN/Inf weights are refused. `calibration` (forecast anomaly scores) is checked with
    the runtime's own reader check and stored under META_CALIBRATION.
    """
    check_finite(dict(weights), "model weights")
    graph = build_graph(config, weights)
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="lstm-edge",
        producer_version=__version__,
        ir_version=IR_VERSION,
    )
    props = {
        META_FORMAT_VERSION: str(FORMAT_VERSION),
        META_CONFIG: config.to_json(),
        META_QUANTIZATION: "none",
        META_SOURCE_SHA256: source_sha256,
        META_PRODUCER_VERSION: __version__,
    }
    if calibration is not None:
        config.spec.check_calibration(calibration, config, "calibration")
        props[META_CALIBRATION] = json.dumps(calibration, sort_keys=True)
    helper.set_model_props(proto, props)
    stamp_digest(proto)
    return proto


def stamp_digest(proto: onnx.ModelProto) -> None:
    """Set META_DIGEST (in place) to the content digest of `proto` as the runtime's reader
    parses it (`runtime.digest`). Call it after the last change to graph or metadata.

    The digest is the FIRST metadata entry: metadata is the last thing in the file, so a
    file cut short at an entry boundary loses required keys after it (and is refused),
    never just the digest (which would load as a file written before digests)."""
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key != META_DIGEST]
    del proto.metadata_props[:]
    for key, value in keep:
        proto.metadata_props.add(key=key, value=value)
    digest = model_digest(proto.SerializeToString())
    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_DIGEST, value=digest)
    for key, value in keep:
        proto.metadata_props.add(key=key, value=value)


# ---- writing and checking ----------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceStream:
    """What the written file must reproduce: the reference model's outputs for `inputs`
    from a zero state (in the toolchain: torch)."""

    inputs: np.ndarray  # [steps] token ids or [steps, F] raw feature rows
    outputs: np.ndarray  # [1, steps, out]
    h: np.ndarray  # final state [layers, 1, hidden]
    c: np.ndarray
    description: str  # where `inputs` came from ("held-out test split of ...")
    # A forecast model with a highway: its final history [1, size] (from a reset one); the
    # file's is compared with it like h and c. None: not compared (no highway).
    history: np.ndarray | None = None


def check_model_file(path: Path) -> None:
    """onnx.checker with full shape inference; a failure is a SelfCheckError."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise SelfCheckError(f"{path}: onnx.checker refused the written model: {e}") from None


def ort_session(path_or_bytes: Path | bytes):
    """A single-threaded CPU onnxruntime session with basic graph optimizations only, so
    a file runs with the weight-only semantics the numpy and C backends implement (why:
    `runtime.backends.ort.make_session`)."""
    from lstm_edge.runtime.backends.ort import make_session

    return make_session(path_or_bytes, optimization="basic")


def _io_names(sess) -> tuple[str, str]:
    """The session's main input and output names (tokens/logits or features/forecast)."""
    state = (INPUT_H0, INPUT_C0, INPUT_HISTORY, OUTPUT_HN, OUTPUT_CN, OUTPUT_HISTORY)
    (inp,) = [i.name for i in sess.get_inputs() if i.name not in state]
    (out,) = [o.name for o in sess.get_outputs() if o.name not in state]
    return inp, out


def _history_input(sess) -> int:
    """The history size of a graph with a forecast highway (INPUT_HISTORY), else 0."""
    for i in sess.get_inputs():
        if i.name == INPUT_HISTORY:
            return int(i.shape[1])
    return 0


def run_session(sess, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray):
    """One session.run over any task's graph: inputs (tokens [batch, time] or features
    [batch, time, F]) -> (main output [batch, time, out], hn, cn). A graph with a history
    (the forecast highway) starts from a reset history unless one is given; given one, the
    history after the call is returned as a fourth value."""
    inp, out = _io_names(sess)
    dtype = np.int64 if inp == INPUT_TOKENS else np.float32
    feeds = {inp: inputs.astype(dtype), INPUT_H0: h, INPUT_C0: c}
    outputs = [out, OUTPUT_HN, OUTPUT_CN]
    size = _history_input(sess)
    if size:
        feeds[INPUT_HISTORY] = (
            history[0] if history else np.zeros((inputs.shape[0], size), np.float32)
        )
        outputs.append(OUTPUT_HISTORY)
    got = sess.run(outputs, feeds)
    return tuple(got) if history else tuple(got[:3])


def run_steps(sess, inputs: np.ndarray, h: np.ndarray, c: np.ndarray, *history: np.ndarray):
    """One session.run per time step with the state carried (the history too, if the graph
    has one); output [batch, time, out]. Returns as `run_session`."""
    size = _history_input(sess)
    carried = list(history) or ([np.zeros((inputs.shape[0], size), np.float32)] if size else [])
    out = []
    for t in range(inputs.shape[1]):
        y, h, c, *carried = run_session(sess, inputs[:, t : t + 1], h, c, *carried)
        out.append(y)
    return (np.concatenate(out, axis=1), h, c, *(carried if history else []))


def compare_with_reference(
    path: Path, config: ModelConfig, reference: ReferenceStream
) -> tuple[StreamComparison, StreamComparison]:
    """The ONNX file at `path` (onnxruntime) vs `reference`, as one prefill call and as one
    call per step with the state carried; each held to CHECK_TOLERANCE."""
    sess = ort_session(path)
    batch = reference.inputs[None]
    want = (reference.h, reference.c)
    h0 = np.zeros_like(reference.h)
    # A graph with a history starts from a reset one (all zeros, as State.zeros).
    size = config.spec.history_size(config)
    history = (np.zeros((1, size), np.float32),) if size else ()
    if reference.history is not None:
        want = (*want, reference.history)
    got_p, *state_p = run_session(sess, batch, h0, h0, *history)
    got_s, *state_s = run_steps(sess, batch, h0, h0, *history)
    return tuple(
        compare_streams(
            config,
            reference.outputs,
            got,
            reference_state=want,
            state=tuple(state[: len(want)]),
            tolerance=CHECK_TOLERANCE,
        )
        for got, state in ((got_p, state_p), (got_s, state_s))
    )


def write_checked(
    out: Path, proto: onnx.ModelProto, config: ModelConfig, reference: ReferenceStream
) -> tuple[StreamComparison, StreamComparison]:
    """Write `proto` to `out` atomically, after checking the file under a temp name:
    onnx.checker with full shape inference, then `compare_with_reference`. On any failure
    nothing is left under `out` and an existing file there is untouched."""
    data = proto.SerializeToString()
    results: list[StreamComparison] = []

    def write_and_check(tmp: Path) -> None:
        tmp.write_bytes(data)
        check_model_file(tmp)
        prefill, steps = compare_with_reference(tmp, config, reference)
        results.extend((prefill, steps))
        if not (prefill.passed and steps.passed):
            worst = max(prefill.max_abs_err, steps.max_abs_err)
            raise SelfCheckError(
                f"export check failed: max abs {prefill.unit} vs torch is {worst:.3g} "
                f"(prefill {prefill.max_abs_err:.3g}, single steps {steps.max_abs_err:.3g}; "
                f"tolerance {CHECK_TOLERANCE:g}) over {prefill.steps} steps; {out} was not "
                "written"
            )

    atomic_write(out, write_and_check)
    return results[0], results[1]


def export_onnx(
    out: Path,
    config: ModelConfig,
    weights: Mapping[str, np.ndarray],
    reference: ReferenceStream,
    *,
    force: bool = False,
    source_sha256: str = "",
    calibration: dict | None = None,
) -> ExportReport:
    """Build the float artifact over `weights`, write it to `out` (atomic; no overwrite
    without `force`) and prove it against `reference` (`write_checked`)."""
    out = check_output_path(out, force)
    proto = build_onnx(config, weights, source_sha256=source_sha256, calibration=calibration)
    prefill, steps = write_checked(out, proto, config, reference)
    return ExportReport(
        path=out,
        bytes=out.stat().st_size,
        max_abs_err_prefill=prefill.max_abs_err,
        max_abs_err_steps=steps.max_abs_err,
        max_abs_err_state=max(prefill.state_err, steps.state_err),
        steps_checked=prefill.steps,
        stream=reference.description,
        source_sha256=source_sha256,
        unit=prefill.unit,
    )
