"""Quantize a float lstm-edge ONNX artifact: int8 (standard ONNX), int8-dynamic (ORT), fp16.

- int8: weight-only, symmetric, per output channel. Each of the embedding (per row), the
  LSTM W and R (per gate row, axis 1 of [1, 4H, in]) and the head weight (per vocab column)
  becomes int8 initializers + float32 scales + int8 zero points, rebuilt in the graph by a
  standard `DequantizeLinear`. Biases stay float32. Any ONNX runtime, the numpy reference
  and the C library can run it.
- int8-dynamic: onnxruntime's `quantize_dynamic` (contrib `DynamicQuantizeLSTM`,
  `MatMulInteger`): ONNX Runtime only, which the metadata states.
- fp16: every weight stored as float16 and `Cast` back to float32 in the graph.

A forecast model's config tensors (NORM_* normalization, HIGHWAY_* linear highway) stay
float32 initializers in every scheme: they are not logical weights, so no scheme touches
them (int8-dynamic leaves the nodes reading them float), and readers check them bit for
bit against the config.

Each result carries in its metadata the scheme, where the scales come from and the max
abs error of every weight tensor (JSON under META_QUANT_TENSORS); every other key
(config, format version, source SHA-256) is carried over from the float input.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rich.table import Table

from lstm_edge.exporters.onnx_export import (
    SelfCheckError,
    check_finite,
    check_model_file,
    check_output_path,
    ort_session,
    run_session,
    stamp_digest,
)
from lstm_edge.exporters.quantize_full import Ranges, build_scheme
from lstm_edge.runtime.artifact import check_metadata_keys, logical_shapes
from lstm_edge.runtime.config import (
    FORMAT_VERSION,
    HEAD_WEIGHT,
    META_CONFIG,
    META_FORMAT_VERSION,
    META_QUANTIZATION,
    QUANT_SUFFIX,
    SCALE_SUFFIX,
    ZERO_POINT_SUFFIX,
    ModelConfig,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.digest import mismatch_message, model_digest
from lstm_edge.runtime.errors import (
    IntegrityError,
    InvalidArtifactError,
    InvalidConfigError,
    LstmEdgeError,
)
from lstm_edge.runtime.files import atomic_write
from lstm_edge.runtime.format import HIGHWAY_TENSORS, META_DIGEST
from lstm_edge.runtime.integer import META_INTEGER

SCHEMES = ("int8", "int8-dynamic", "fp16", "int8-full")

# Metadata keys this module adds (prefix "lstm_edge.quant." per the artifact format).
META_QUANT_TENSORS = "lstm_edge.quant.tensors"  # JSON list, one entry per weight tensor
META_QUANT_SCALE_SOURCE = "lstm_edge.quant.scale_source"
META_QUANT_RUNTIME = "lstm_edge.quant.runtime"  # which runtimes can execute the file
META_QUANT_FLOAT_SHA256 = "lstm_edge.quant.float_sha256"  # SHA-256 of the float .onnx input

SCALE_SOURCE = {
    "int8": "weights, per output channel, symmetric max-abs (scale = max|w| / 127; "
    "an all-zero channel gets scale 1.0)",
    "int8-dynamic": "onnxruntime quantize_dynamic: 7-bit weights per output channel (LSTM "
    "W/R, head), embedding per tensor asymmetric uint8; activations per call at run time",
    "fp16": "none (float16 cast of each weight)",
    "int8-full": "weights as int8; activations from calibration on the training split "
    "(symmetric int8 input and h per layer, a power-of-two int16 format per cell unit); "
    "multipliers, shifts and tables in " + META_INTEGER,
}
RUNTIME = {
    "int8": "any ONNX runtime (standard DequantizeLinear); numpy, ort and C backends",
    "int8-dynamic": "ONNX Runtime only (com.microsoft DynamicQuantizeLSTM, MatMulInteger)",
    "fp16": "any ONNX runtime (standard Cast); numpy, ort and C backends",
    "int8-full": "numpy and C backends (integer arithmetic); the graph is its weight-only "
    "int8 approximation, which ONNX tools can open but which is not the scheme",
}

INT8_MAX = 127  # symmetric: -127..127, so that -q is always representable
FP16_MAX = float(np.finfo(np.float16).max)
# Smallest normal float32: a row whose max |w| is subnormal would get a scale that
# underflows to 0; flooring the scale here means no division by zero ever happens.
MIN_SCALE = float(np.finfo(np.float32).tiny)


class QuantizationError(LstmEdgeError):
    """A tensor that the chosen scheme cannot represent (e.g. beyond float16's range)."""


@dataclass(frozen=True)
class TensorReport:
    name: str
    shape: tuple[int, ...]
    bytes_before: int
    bytes_after: int
    max_abs_error: float


@dataclass(frozen=True)
class QuantizeReport:
    path: Path
    scheme: str
    bytes_before: int  # file sizes
    bytes_after: int
    tensors: tuple[TensorReport, ...]

    @property
    def ratio(self) -> float:
        return self.bytes_after / self.bytes_before


# ---- reading a float artifact ------------------------------------------------------------


def int8_axes(config: ModelConfig) -> dict[str, int]:
    """The per-output-channel axis of each tensor the int8 scheme quantizes: the task's
    stage weights (`spec.quant_axes`, e.g. the char-lm embedding per row), then these."""
    axes = dict(config.spec.quant_axes(config))
    for layer in range(config.num_layers):
        axes[lstm_w(layer)] = 1  # the 4H gate rows
        axes[lstm_r(layer)] = 1
    axes[HEAD_WEIGHT] = 1  # the vocab (or target) columns
    return axes


def float_artifact(model: onnx.ModelProto, where: str) -> tuple[ModelConfig, dict]:
    """Check `model` is an lstm-edge float artifact; return its config and weights.

    Refuses, naming what is missing or wrong: lstm-edge metadata, format version, a scheme
    other than "none", external data, a content digest that does not match (a file written
    before digests has none and passes), weights missing or of the wrong shape, NaN/Inf.
    """
    meta = {p.key: p.value for p in model.metadata_props}
    check_metadata_keys(meta, where)
    if meta[META_FORMAT_VERSION] != str(FORMAT_VERSION):
        raise InvalidArtifactError(
            f"{where}: format version {meta[META_FORMAT_VERSION]!r} is not supported "
            f"(expected {FORMAT_VERSION})"
        )
    if meta[META_QUANTIZATION] != "none":
        raise InvalidArtifactError(
            f"{where} is already quantized (scheme {meta[META_QUANTIZATION]!r}); "
            "quantize the float export (scheme 'none')"
        )
    try:
        config = ModelConfig.from_json(meta[META_CONFIG])
    except InvalidConfigError as e:
        raise InvalidArtifactError(f"{where}: metadata {META_CONFIG}: {e}") from None
    inits = {t.name: t for t in model.graph.initializer}
    external = sorted(n for n, t in inits.items() if t.data_location == TensorProto.EXTERNAL)
    if external:
        raise InvalidArtifactError(
            f"{where} uses external data for {external}; expected a self-contained model"
        )
    # A float file corrupted after export must not come out of quantize with a fresh digest.
    if META_DIGEST in meta:
        found = model_digest(model.SerializeToString(), where)
        if found != meta[META_DIGEST]:
            raise IntegrityError(mismatch_message(where, meta[META_DIGEST], found))
    shapes = logical_shapes(config)
    absent = [n for n in shapes if n not in inits]
    if absent:
        raise InvalidArtifactError(f"{where} is not an lstm-edge float artifact: {absent} missing")
    weights = {n: numpy_helper.to_array(inits[n]) for n in shapes}
    wrong = [
        f"{n} {tuple(w.shape)} {w.dtype} (expected {shapes[n]} float32)"
        for n, w in weights.items()
        if w.shape != shapes[n] or w.dtype != np.float32
    ]
    if wrong:
        raise InvalidArtifactError(f"{where}: weights do not match the config: {wrong}")
    check_finite(weights, where)
    _check_norm_tensors(inits, config, where)
    return config, weights


def _check_norm_tensors(inits: dict[str, TensorProto], config: ModelConfig, where: str) -> None:
    """A forecast artifact's NORM_* (and HIGHWAY_*) initializers must be exactly what its
    config implies; quantizing a file whose normalization was changed would carry the
    damage along."""
    for name, want in config.spec.config_tensors(config).items():
        found = numpy_helper.to_array(inits[name]) if name in inits else None
        if found is None or found.dtype != np.float32 or not np.array_equal(found, want):
            highway = name in HIGHWAY_TENSORS
            source = "ar_coef and statistics" if highway else "statistics"
            state = "missing" if found is None else f"different from the config's {source}"
            kind = "highway tensor" if highway else "normalization tensor"
            raise InvalidArtifactError(f"{where}: {kind} {name!r} is {state}")


# ---- the schemes -------------------------------------------------------------------------


def symmetric_int8(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric int8 along `axis`: w ~= q * scale (scale broadcast on `axis`).

    scale = max|w| / 127 per channel; an all-zero channel gets 1.0 (q = 0 reproduces it
    exactly) and no scale is below float32's smallest normal number, so nothing ever
    divides by zero.
    """
    other = tuple(a for a in range(w.ndim) if a != axis)
    amax = np.max(np.abs(w), axis=other) if w.size else np.zeros(w.shape[axis], np.float32)
    with np.errstate(under="ignore"):  # a subnormal max|w| / 127 underflows; floored below
        scale = np.where(amax > 0, amax / INT8_MAX, 1.0)
        scale = np.maximum(scale, MIN_SCALE).astype(np.float32)
        q = np.rint(w / _along(scale, axis, w.ndim))
    q = np.clip(q, -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale


def _along(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """Reshape a 1-D per-channel vector to broadcast along `axis` of an ndim array."""
    shape = [1] * ndim
    shape[axis] = v.size
    return v.reshape(shape)


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _replace_weights(
    model: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    new_inits: list[TensorProto],
    replaced: set[str],
) -> onnx.ModelProto:
    """A copy of `model` whose initializers in `replaced` become `new_inits` + `nodes`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [t for t in out.graph.initializer if t.name not in replaced]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept + new_inits)
    # The rebuild nodes go first: the graph must stay topologically sorted.
    old_nodes = list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend(nodes + old_nodes)
    return out


def _int8_proto(model, config, weights) -> tuple[onnx.ModelProto, list[TensorReport]]:
    axes = int8_axes(config)
    nodes, inits, reports = [], [], []
    for name, w in weights.items():
        if name not in axes:  # biases stay float32
            reports.append(TensorReport(name, w.shape, w.nbytes, w.nbytes, 0.0))
            continue
        axis = axes[name]
        q, scale = symmetric_int8(w, axis)
        zero = np.zeros_like(scale, dtype=np.int8)
        inits += [
            numpy_helper.from_array(q, name + QUANT_SUFFIX),
            numpy_helper.from_array(scale, name + SCALE_SUFFIX),
            numpy_helper.from_array(zero, name + ZERO_POINT_SUFFIX),
        ]
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [name + QUANT_SUFFIX, name + SCALE_SUFFIX, name + ZERO_POINT_SUFFIX],
                [name],
                axis=axis,
                name="dequantize:" + name,
            )
        )
        back = q.astype(np.float32) * _along(scale, axis, w.ndim)
        after = q.nbytes + scale.nbytes + zero.nbytes
        reports.append(TensorReport(name, w.shape, w.nbytes, after, _max_err(back, w)))
    return _replace_weights(model, nodes, inits, set(axes)), reports


def _fp16_proto(model, config, weights) -> tuple[onnx.ModelProto, list[TensorReport]]:
    nodes, inits, reports = [], [], []
    for name, w in weights.items():
        peak = float(np.max(np.abs(w))) if w.size else 0.0
        if peak > FP16_MAX:
            raise QuantizationError(
                f"tensor {name!r} has |w| up to {peak:.4g}, beyond float16's range "
                f"({FP16_MAX:g}); use --scheme int8"
            )
        h = w.astype(np.float16)
        inits.append(numpy_helper.from_array(h, name + QUANT_SUFFIX))
        nodes.append(
            helper.make_node(
                "Cast", [name + QUANT_SUFFIX], [name], to=TensorProto.FLOAT, name="cast:" + name
            )
        )
        reports.append(
            TensorReport(name, w.shape, w.nbytes, h.nbytes, _max_err(h.astype(np.float32), w))
        )
    return _replace_weights(model, nodes, inits, set(weights)), reports


def set_metadata(model: onnx.ModelProto, updates: dict[str, str]) -> None:
    """Set metadata_props keys in place, keeping every other key (config, source SHA)."""
    props = {p.key: p.value for p in model.metadata_props}
    props.update(updates)
    del model.metadata_props[:]
    helper.set_model_props(model, props)


def _quant_metadata(scheme: str, reports: list[TensorReport]) -> dict[str, str]:
    tensors = [{**asdict(r), "shape": list(r.shape)} for r in reports]
    return {
        META_QUANTIZATION: scheme,
        META_QUANT_SCALE_SOURCE: SCALE_SOURCE[scheme],
        META_QUANT_RUNTIME: RUNTIME[scheme],
        META_QUANT_TENSORS: json.dumps(tensors),
    }


def tensor_reports(model: onnx.ModelProto) -> tuple[TensorReport, ...]:
    """The per-tensor table a quantized artifact carries in its metadata."""
    meta = {p.key: p.value for p in model.metadata_props}
    if META_QUANT_TENSORS not in meta:
        raise InvalidArtifactError(f"metadata {META_QUANT_TENSORS!r} missing")
    return tuple(
        TensorReport(**{**t, "shape": tuple(t["shape"])})
        for t in json.loads(meta[META_QUANT_TENSORS])
    )


def quantize_proto(model: onnx.ModelProto, scheme: str) -> onnx.ModelProto:
    """Quantize a float lstm-edge artifact with "int8" or "fp16" (pure: no I/O)."""
    builders = {"int8": _int8_proto, "fp16": _fp16_proto}
    if scheme not in builders:
        raise LstmEdgeError(
            f"scheme {scheme!r} is not a pure-graph scheme (expected one of {sorted(builders)}"
            "; int8-dynamic goes through quantize_file)"
        )
    config, weights = float_artifact(model, "model")
    out, reports = builders[scheme](model, config, weights)
    set_metadata(out, _quant_metadata(scheme, reports))
    stamp_digest(out)
    return out


# ---- int8-dynamic (onnxruntime) ----------------------------------------------------------


def _dequantize_like(
    q: np.ndarray, scale: np.ndarray, zero: np.ndarray, like: np.ndarray
) -> np.ndarray | None:
    """Undo onnxruntime's (possibly transposed, per-channel) weight quantization."""
    scale, zero = scale.reshape(-1), zero.reshape(-1)
    shape = [1] * q.ndim
    if scale.size > 1:
        axis = next((a for a in reversed(range(q.ndim)) if q.shape[a] == scale.size), None)
        if axis is None:
            return None
        shape[axis] = scale.size
    back = (q.astype(np.float32) - zero.astype(np.float32).reshape(shape)) * scale.reshape(shape)
    if back.shape == like.shape:
        return back
    if back.ndim >= 2 and np.swapaxes(back, -1, -2).shape == like.shape:
        return np.swapaxes(back, -1, -2)  # ORT stores LSTM weights as [1, in, 4H]
    return None


def _config_tensor_nodes(model: onnx.ModelProto, config: ModelConfig) -> list[str]:
    """Names of the nodes that read a config tensor (forecast: the NORM_* and HIGHWAY_*
    MatMul and Conv): quantize_dynamic would otherwise quantize those operands (and their
    activations) like weights, and the file would lose the exact float32 tensors every
    reader checks against the config."""
    names = set(config.spec.config_tensors(config))
    return [n.name for n in model.graph.node if names.intersection(n.input)]


def _dynamic_proto(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    config, weights = float_artifact(model, "model")
    with tempfile.TemporaryDirectory(prefix="lstm-edge-quant-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8-dynamic.onnx"
        src.write_bytes(model.SerializeToString())
        # quantize_dynamic logs a root-logger warning suggesting pre-processing (shape
        # inference for conv nets); it does not apply to this graph, so keep it quiet.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            # 7-bit weights (reduce_range): onnxruntime's u8 x s8 kernels on CPUs without
            # AVX-512 VNNI (AVX2's vpmaddubsw) add two products in int16, which saturates
            # for 8-bit weights (255 * 127 * 2 > 32767) and moved logits by up to ~1 (top-1
            # 0.978) on AVX2 where VNNI gave 0.15; with |q| <= 63 no sum can saturate, so
            # the file computes the same on every x86 CPU.
            quantize_dynamic(
                src,
                dst,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                nodes_to_exclude=_config_tensor_nodes(model, config),
            )
        finally:
            root.setLevel(level)
        out = onnx.load(str(dst))
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    reports = []
    for name, w in weights.items():
        parts = [inits.get(name + s) for s in ("_quantized", "_scale", "_zero_point")]
        if any(p is None for p in parts):  # left float by onnxruntime (the biases)
            reports.append(TensorReport(name, w.shape, w.nbytes, w.nbytes, 0.0))
            continue
        back = _dequantize_like(*parts, like=w)
        err = _max_err(back, w) if back is not None else float("nan")
        reports.append(TensorReport(name, w.shape, w.nbytes, sum(p.nbytes for p in parts), err))
    set_metadata(out, _quant_metadata("int8-dynamic", reports))
    stamp_digest(out)
    return out


# ---- int8-full ----------------------------------------------------------------------------


def _integer_proto(model: onnx.ModelProto, ranges: Ranges) -> onnx.ModelProto:
    """The int8 graph plus the integer parameters (exporters/quantize_full.py) computed
    from its weight codes: read back through the runtime's reader, so the parameters index
    exactly the codes the file holds."""
    from lstm_edge.runtime.artifact import read_artifact

    q = quantize_proto(model, "int8")
    with tempfile.TemporaryDirectory(prefix="lstm-edge-quant-") as tmp:
        path = Path(tmp) / "int8.onnx"
        path.write_bytes(q.SerializeToString())
        scheme = build_scheme(read_artifact(path), ranges)
    meta = _quant_metadata("int8-full", list(tensor_reports(q)))
    set_metadata(q, {**meta, META_INTEGER: scheme.to_json()})
    stamp_digest(q)
    return q


def _integer_smoke_run(path: Path, config: ModelConfig) -> None:
    """The written file loads in the runtime (its integer metadata checked) and the integer
    reference gives finite outputs for a short stream."""
    import lstm_edge.runtime as rt

    model = rt.load(path, backend="numpy")
    y, _ = model.step(smoke_inputs(config), model.initial_state(1))
    if not np.isfinite(y).all():
        raise SelfCheckError(f"{path}: the integer model gives non-finite {config.output_name}")


# ---- files -------------------------------------------------------------------------------


def read_onnx(path: Path) -> onnx.ModelProto:
    """Parse a self-contained .onnx file, or say plainly that it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArtifactError(f"not a valid ONNX model: {path} is not a file")
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf raises its own DecodeError and friends
        raise InvalidArtifactError(f"not a valid ONNX model: {path}: {e}") from None
    if not model.graph.node:
        raise InvalidArtifactError(f"not a valid ONNX model: {path} has an empty graph")
    return model


def smoke_inputs(config: ModelConfig, steps: int = 16) -> np.ndarray:
    """A short deterministic input stream [1, steps(, F)] of the task's kind and scale
    (`spec.synthetic_inputs`, seed 0). The smoke run writes nothing, so the stream only
    has to be valid and fixed."""
    return config.spec.synthetic_inputs(config, steps, 0)[None]


def _smoke_run(path: Path, config: ModelConfig) -> None:
    """The written file loads in onnxruntime and gives finite outputs for a short stream."""
    try:
        sess = ort_session(path)
        h = np.zeros((config.num_layers, 1, config.hidden_size), np.float32)
        y, _, _ = run_session(sess, smoke_inputs(config), h, h)
    except Exception as e:  # onnxruntime raises its own exception types
        raise SelfCheckError(f"{path}: onnxruntime cannot run the quantized model: {e}") from None
    if not np.isfinite(y).all():
        raise SelfCheckError(f"{path}: the quantized model gives non-finite {config.output_name}")


def quantize_file(
    src: Path, out: Path, scheme: str, *, force: bool = False, ranges: Ranges | None = None
) -> QuantizeReport:
    """Quantize the float artifact `src` into `out` (atomic; no overwrite without force).
    int8-full needs the calibrated `ranges` (toolchain/calibrate.py)."""
    if scheme not in SCHEMES:
        raise LstmEdgeError(f"scheme {scheme!r} is unknown (expected one of {list(SCHEMES)})")
    if (scheme == "int8-full") != (ranges is not None):
        raise LstmEdgeError("calibrated ranges go with scheme int8-full, and only with it")
    src = Path(src)
    out = check_output_path(out, force)
    model = read_onnx(src)
    config, _ = float_artifact(model, str(src))
    if scheme == "int8-dynamic":
        q = _dynamic_proto(model)
    elif scheme == "int8-full":
        assert ranges is not None
        q = _integer_proto(model, ranges)
    else:
        q = quantize_proto(model, scheme)
    set_metadata(q, {META_QUANT_FLOAT_SHA256: hashlib.sha256(src.read_bytes()).hexdigest()})
    stamp_digest(q)
    data = q.SerializeToString()

    def write_and_check(tmp: Path) -> None:
        tmp.write_bytes(data)
        if scheme != "int8-dynamic":  # contrib ops have no ONNX shape inference
            check_model_file(tmp)
        _smoke_run(tmp, config)
        if scheme == "int8-full":
            _integer_smoke_run(tmp, config)

    atomic_write(out, write_and_check)
    return QuantizeReport(
        path=out,
        scheme=scheme,
        bytes_before=src.stat().st_size,
        bytes_after=out.stat().st_size,
        tensors=tensor_reports(q),
    )


def report_table(report: QuantizeReport) -> Table:
    """A rich table: tensor, shape, bytes before/after, max abs error."""
    table = Table(title=f"{report.scheme}: {report.path}")
    for col in ("tensor", "shape", "bytes before", "bytes after", "max abs error"):
        table.add_column(col, justify="left" if col in ("tensor", "shape") else "right")
    for t in report.tensors:
        table.add_row(
            t.name,
            "x".join(map(str, t.shape)),
            f"{t.bytes_before:,}",
            f"{t.bytes_after:,}",
            f"{t.max_abs_error:.3g}",
        )
    table.add_section()
    table.add_row(
        "file",
        "",
        f"{report.bytes_before:,}",
        f"{report.bytes_after:,}",
        f"ratio {report.ratio:.3f}",
    )
    return table
