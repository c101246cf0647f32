"""`lstm-edge import`: write the canonical artifact of a source ONNX file and prove it
against that file in onnxruntime before it takes its final name.

The source runs as its exporter wrote it: a file with initial-state inputs is stepped with
its own state fed back (zero-initialised), a stateless file is run as one call over the
stream (its first call, from its own initial state). The new artifact runs the same
stream as one prefill call and as single steps with the state carried.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from lstm_edge.exporters.compare import compare_streams
from lstm_edge.exporters.import_onnx import Imported, ImportRefusedError, analyze, load_source
from lstm_edge.exporters.onnx_export import (
    CHECK_TOLERANCE,
    SelfCheckError,
    atomic_write,
    build_onnx,
    check_model_file,
    check_output_path,
    ort_session,
    run_session,
    run_steps,
)
from lstm_edge.runtime.config import (
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    ModelConfig,
)

# Steps of the import check: several hundred, enough for a drifting state to show.
CHECK_STEPS = 300
_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}


class SourceModel:
    """The source file in onnxruntime: one call over a stream [T] or [T, F] of batch 1,
    state carried where the file has state inputs."""

    def __init__(
        self, proto: onnx.ModelProto, imp: Imported, where: str, config: ModelConfig | None = None
    ):
        self.imp, self.where = imp, where
        # A feature model given statistics takes raw values where the source takes standard
        # units: the source runs on the normalized stream, its outputs denormalized, so
        # both sides are compared in the artifact's raw units (`config`: the artifact's).
        config = config or imp.config
        self.norm = config.spec.config_tensors(config)
        self.sess = _session(proto, where)
        meta = {i.name: i for i in self.sess.get_inputs()}
        main = meta[imp.main_input]
        if main.type not in _DTYPES:
            raise ImportRefusedError(
                f"{where}: input {imp.main_input!r} has type {main.type} (expected int64, "
                "int32 or float)"
            )
        self.dtype = _DTYPES[main.type]
        self.stateful = bool(imp.state_inputs)
        if len(imp.state_outputs) < len(imp.state_inputs):
            raise ImportRefusedError(
                f"{where}: state inputs {imp.state_inputs} have no matching outputs (found "
                f"{imp.state_outputs})"
            )
        self.state_shapes = [
            [d if isinstance(d, int) and d > 0 else 1 for d in meta[n].shape]
            for n in imp.state_inputs
        ]
        self.time_axis, self.fixed_time = _probe_time_axis(proto, imp, self, where)

    def zero_state(self) -> list[np.ndarray]:
        return [np.zeros(s, np.float32) for s in self.state_shapes]

    def feed(self, x: np.ndarray, state: list, time_axis: int, stateless: bool = False) -> dict:
        feed = {self.imp.main_input: np.expand_dims(x, 1 - time_axis).astype(self.dtype)}
        if not stateless:
            feed.update(zip(self.imp.state_inputs, state, strict=True))
        return feed

    def call(self, x: np.ndarray, state: list[np.ndarray]):
        names = [self.imp.main_output, *self.imp.state_outputs[: len(state)]]
        try:
            if self.norm:
                x = x * self.norm[NORM_IN_SCALE] + self.norm[NORM_IN_SHIFT]
            y, *state = self.sess.run(names, self.feed(x, state, self.time_axis))
        except Exception as e:
            raise ImportRefusedError(
                f"{self.where}: onnxruntime cannot run the source on {len(x)} steps "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        y = np.asarray(y, np.float32).reshape(len(x), -1)
        if self.norm:
            y = y * self.norm[NORM_OUT_SCALE] + self.norm[NORM_OUT_SHIFT]
        return y, state

    def stream(self, x: np.ndarray, chunk: int) -> np.ndarray:
        """Outputs [T, out] over `x` in calls of `chunk` steps, the state carried."""
        state, out = self.zero_state(), []
        for t in range(0, len(x) - chunk + 1, chunk):
            y, state = self.call(x[t : t + chunk], state)
            out.append(y)
        return np.concatenate(out)


def _session(proto: onnx.ModelProto, where: str):
    """onnxruntime on the source; where onnxruntime has no kernel for what the file uses
    (an LSTM with layout=1), onnx's reference evaluator, through the same calls."""
    try:
        return ort_session(proto.SerializeToString())
    except Exception as e:
        ort_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    try:
        return _ReferenceSession(proto)
    except Exception:
        raise ImportRefusedError(
            f"{where}: onnxruntime cannot load the source ({ort_error})"
        ) from None


class _ReferenceSession:
    """The part of an onnxruntime session SourceModel uses, over onnx.reference."""

    @dataclass(frozen=True)
    class _Arg:
        name: str
        type: str
        shape: list

    def __init__(self, proto: onnx.ModelProto):
        self._eval = ReferenceEvaluator(proto)
        inits = {t.name for t in proto.graph.initializer}
        self._inputs = [
            self._Arg(
                i.name,
                f"tensor({_TYPE_NAMES.get(i.type.tensor_type.elem_type, '?')})",
                [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim],
            )
            for i in proto.graph.input
            if i.name not in inits
        ]

    def get_inputs(self) -> list:
        return self._inputs

    def run(self, names, feed):
        return self._eval.run(names, feed)


_TYPE_NAMES = {TensorProto.INT64: "int64", TensorProto.INT32: "int32", TensorProto.FLOAT: "float"}


def _probe_time_axis(
    proto: onnx.ModelProto, imp: Imported, src: SourceModel, where: str
) -> tuple[int, int | None]:
    """Which axis of the main input is time, and its fixed length (None: dynamic): run the
    source on batch 1 with each axis as time and keep the one where the first LSTM sees
    that many steps."""
    seq_axis = 1 if imp.first_lstm_layout else 0
    (main,) = [i for i in src.sess.get_inputs() if i.name == imp.main_input]
    if imp.first_lstm_x == imp.main_input:  # the LSTM reads the input as it comes
        declared = main.shape[seq_axis]
        return seq_axis, (declared if isinstance(declared, int) and declared > 0 else None)
    # Only the nodes up to the first LSTM's input: the rest may not run at any length.
    probe = _upstream(proto, imp.main_input, imp.first_lstm_x)
    sess = _session(probe, where)
    for time_axis in (1, 0):
        if len(main.shape) <= time_axis:
            continue
        declared = main.shape[time_axis]
        steps = declared if isinstance(declared, int) and declared > 0 else 3
        x = _inputs(imp.config, steps)
        try:
            feed = {imp.main_input: src.feed(x, [], time_axis, stateless=True)[imp.main_input]}
            out = sess.run([imp.first_lstm_x], feed)[0]
        except Exception:
            continue
        if out.shape[seq_axis] == steps:
            return time_axis, (declared if isinstance(declared, int) and declared > 0 else None)
    raise ImportRefusedError(
        f"{where}: cannot tell which axis of input {imp.main_input!r} is time (running the "
        "source with batch 1 on either axis did not give the first LSTM that many steps)"
    )


def _upstream(proto: onnx.ModelProto, source: str, tensor: str) -> onnx.ModelProto:
    """The part of `proto` that computes `tensor` from graph input `source`."""
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output}
    keep, stack = set(), [tensor]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in keep:
            keep.add(id(node))
            stack.extend(node.input)
    nodes = [n for n in g.node if id(n) in keep]
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes,
        "probe",
        [i for i in g.input if i.name == source],
        [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None)],
        [t for t in g.initializer if t.name in used],
    )
    return helper.make_model(
        graph, opset_imports=list(proto.opset_import), ir_version=proto.ir_version
    )


def _inputs(config: ModelConfig, steps: int, seed: int = 0) -> np.ndarray:
    return config.spec.synthetic_inputs(config, steps, seed)


@dataclass(frozen=True)
class ImportReport:
    path: Path
    bytes: int
    config: ModelConfig
    max_abs_err_prefill: float
    max_abs_err_steps: float
    steps_checked: int
    source_stateful: bool
    source_sha256: str
    unit: str


def check_against_source(
    artifact: Path, src: SourceModel, config: ModelConfig, steps: int = CHECK_STEPS
):
    """(prefill, single steps) comparisons of the artifact at `artifact` with the source."""
    x = _inputs(config, steps, seed=1)
    prefill_len = src.fixed_time or steps
    chunk = src.fixed_time or 1
    ref_steps = src.stream(x, chunk) if src.stateful else None
    try:
        ref_prefill = src.call(x[:prefill_len], src.zero_state())[0]
    except ImportRefusedError:
        if ref_steps is None:
            raise
        # Some exporters fix the time length inside the graph (a Reshape to the example's
        # length) while declaring it dynamic; such a file still steps, which is the
        # reference for both runs of the artifact then.
        ref_prefill = ref_steps
    if ref_steps is None:
        ref_steps = ref_prefill
    h0 = np.zeros((config.num_layers, 1, config.hidden_size), np.float32)
    try:
        sess = ort_session(artifact)
        got_prefill = run_session(sess, x[None, :prefill_len], h0, h0)[0]
        got_steps = run_steps(sess, x[None, : len(ref_steps)], h0, h0)[0]
    except Exception as e:
        raise SelfCheckError(
            f"import check failed: onnxruntime cannot run the new artifact ({type(e).__name__}:"
            f" {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    return tuple(
        compare_streams(config, ref[None], got, tolerance=CHECK_TOLERANCE)
        for ref, got in ((ref_prefill, got_prefill), (ref_steps, got_steps))
    )


def import_onnx_file(
    source: Path,
    out: Path,
    *,
    force: bool = False,
    steps: int = CHECK_STEPS,
    token_names: tuple[str, ...] = (),
    stats: dict | None = None,
) -> ImportReport:
    """Import `source` into the canonical artifact at `out` (atomic, no overwrite without
    `force`); nothing is written when the source is refused or the check fails."""
    out = check_output_path(out, force)
    source = Path(source)
    proto = load_source(source)
    imp = analyze(proto, str(source), token_names=token_names, stats=stats)
    src = SourceModel(proto, imp, str(source))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    artifact = build_onnx(imp.config, imp.weights, source_sha256=sha)
    data = artifact.SerializeToString()
    results = []

    def write_and_check(tmp: Path) -> None:
        tmp.write_bytes(data)
        check_model_file(tmp)
        prefill, stepped = check_against_source(tmp, src, imp.config, steps)
        results.extend((prefill, stepped))
        if not (prefill.passed and stepped.passed):
            raise SelfCheckError(
                f"import check failed: max abs {prefill.unit} vs {source} in onnxruntime is "
                f"{max(prefill.max_abs_err, stepped.max_abs_err):.3g} (prefill "
                f"{prefill.max_abs_err:.3g}, single steps {stepped.max_abs_err:.3g}; tolerance "
                f"{CHECK_TOLERANCE:g}) over {stepped.steps} steps; {out} was not written"
            )

    atomic_write(out, write_and_check)
    return ImportReport(
        path=out,
        bytes=out.stat().st_size,
        config=imp.config,
        max_abs_err_prefill=results[0].max_abs_err,
        max_abs_err_steps=results[1].max_abs_err,
        steps_checked=results[1].steps,
        source_stateful=src.stateful,
        source_sha256=sha,
        unit=results[0].unit,
    )


def check_artifact_against(artifact: Path, source: Path, steps: int = CHECK_STEPS):
    """An existing artifact vs a source ONNX file over the import check's stream: (prefill,
    single steps) comparisons; a SelfCheckError when they differ."""
    from lstm_edge.runtime.artifact import read_artifact

    config = read_artifact(Path(artifact)).config
    proto = load_source(Path(source))
    imp = analyze(proto, str(source))
    if imp.config.input_size != config.input_size or imp.config.output_size != config.output_size:
        raise ImportRefusedError(
            f"{source} reads {imp.config.input_size} and gives {imp.config.output_size} values "
            f"per step; {artifact} reads {config.input_size} and gives {config.output_size}"
        )
    prefill, stepped = check_against_source(
        Path(artifact), SourceModel(proto, imp, str(source), config), config, steps
    )
    if not (prefill.passed and stepped.passed):
        raise SelfCheckError(
            f"{artifact} differs from {source}: max abs {prefill.unit} "
            f"{max(prefill.max_abs_err, stepped.max_abs_err):.3g} (tolerance {CHECK_TOLERANCE:g})"
        )
    return prefill, stepped
