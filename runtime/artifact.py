"""Read an lstm-edge ONNX artifact and check all of it before anything runs.

`read_artifact` refuses, with a typed error naming the file and what was expected: files
over the size cap, bytes that are not ONNX, models without lstm-edge metadata or with an
unknown format version, ops/opsets/dtypes outside what the runtime supports, tensors whose
payload does not match their dims, external data (unless allowed, and then never outside
the model's folder, never absolute, never a symlink; checked before any file is opened),
and weights whose shapes disagree with the config. Before any of the checks that read the
config, the content digest (META_DIGEST, `runtime.digest`) is recomputed from what was
parsed and a mismatch refused (`IntegrityError`); a file without one (written before
digests) loads with `integrity` "absent" instead of "verified". It returns the logical weights as
float32 (int8 dequantized, fp16 cast) and keeps the int8 payload for the C backend.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_edge.runtime import onnx_proto as op
from lstm_edge.runtime.config import (
    FORMAT_VERSION,
    HEAD_BIAS,
    HEAD_WEIGHT,
    INPUT_C0,
    INPUT_H0,
    INPUT_HISTORY,
    META_CALIBRATION,
    META_CONFIG,
    META_FORMAT_VERSION,
    META_PRODUCER_VERSION,
    META_QUANTIZATION,
    META_SOURCE_SHA256,
    OUTPUT_CN,
    OUTPUT_HISTORY,
    OUTPUT_HN,
    QUANT_SCHEMES,
    QUANT_SUFFIX,
    SCALE_SUFFIX,
    ZERO_POINT_SUFFIX,
    ModelConfig,
    lstm_b,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.digest import content_digest, mismatch_message
from lstm_edge.runtime.errors import (
    FormatVersionError,
    IntegrityError,
    InvalidArtifactError,
    InvalidConfigError,
    UnsupportedModelError,
)
from lstm_edge.runtime.files import parse_json
from lstm_edge.runtime.format import HIGHWAY_TENSORS, META_DIGEST
from lstm_edge.runtime.graph import canonical_graph
from lstm_edge.runtime.integer import META_INTEGER, IntegerScheme
from lstm_edge.runtime.integer import SCHEME as INTEGER_SCHEME
from lstm_edge.runtime.tasks import TASKS

# The default model is a few MB; 256 MiB leaves room for large vocabularies while keeping
# a hostile or mistaken path (a disk image, a dataset) from being read into memory.
DEFAULT_MAX_BYTES = 256 << 20
# No single tensor may claim more elements than this (dims that overflow, row 14).
MAX_ELEMENTS = 1 << 31

# IR versions whose ModelProto layout this reader and onnxruntime 1.18+ both understand.
SUPPORTED_IR_VERSIONS = range(7, 11)
# Default-domain opsets in which every op below has the semantics the numpy/C backends use
# (Squeeze/Slice take axes as inputs from 13; DequantizeLinear gains block_size in 21).
SUPPORTED_OPSETS = range(13, 21)
DEFAULT_DOMAINS = ("", "ai.onnx")
CONTRIB_DOMAIN = "com.microsoft"

# Ops the numpy and C backends understand (the exporter's float/int8/fp16 graphs).
BASE_OPS = frozenset(
    {
        "Gather",
        "Transpose",
        "Slice",
        "LSTM",
        "Squeeze",
        "Concat",
        "Identity",
        "MatMul",
        "Add",
        "Mul",  # forecast normalization: x * scale + shift
        # the forecast highway (ar_lags > 0): its history and window sums
        "Reshape",
        "Sub",
        "Max",
        "Conv",
        "DequantizeLinear",
        "Cast",
    }
)
# Extra ops onnxruntime's quantize_dynamic emits for this graph (the last two are the
# fused forms its optimizer writes if a session-optimized model is saved); ort only.
DYNAMIC_OPS = frozenset(
    {
        "DynamicQuantizeLSTM",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "Mul",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
    }
)

REQUIRED_METADATA = (
    META_FORMAT_VERSION,
    META_CONFIG,
    META_QUANTIZATION,
    META_SOURCE_SHA256,
    META_PRODUCER_VERSION,
)

# ONNX element types of the dtypes a task's main input may have.
_ELEM_TYPES = {np.dtype(np.int64): op.INT64, np.dtype(np.float32): op.FLOAT}

# LSTM attributes the backends implement, with the only values they accept.
_LSTM_DEFAULTS = {
    "direction": b"forward",
    "activations": [b"Sigmoid", b"Tanh", b"Tanh"],
    "input_forget": 0,
    "layout": 0,
}


@dataclass(frozen=True)
class QuantizedTensor:
    """An int8 weight as stored: value = q * scale along `axis` (zero point 0)."""

    q: np.ndarray  # int8, the logical weight's shape
    scale: np.ndarray  # float32 [shape[axis]]
    axis: int  # non-negative


@dataclass(frozen=True)
class Artifact:
    path: Path
    config: ModelConfig
    scheme: str
    metadata: dict[str, str]
    weights: dict[str, np.ndarray]  # logical name -> float32, read-only; {} for int8-dynamic
    quantized: dict[str, QuantizedTensor]  # int8 artifacts only
    sha256: str  # of the file's bytes
    ops: frozenset[str] = frozenset()  # op types in the graph
    model_bytes: bytes = field(default=b"", repr=False)  # what was checked, for onnxruntime
    has_external_data: bool = False
    # Forecast only: META_CALIBRATION parsed and checked (see `check_calibration`).
    calibration: dict | None = None
    # "verified": META_DIGEST matched the content; "absent": written before digests.
    integrity: str = "absent"
    # int8-full only: the integer parameters (runtime/integer.py), checked against the config.
    integer: IntegerScheme | None = None


def logical_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Each logical weight's shape, as the artifact format defines it, in graph order.

    The task's config tensors (forecast: NORM_*) are not listed: they are float32
    initializers in every scheme, checked by value against the config
    (`_check_config_tensors`).
    """
    v, e, h = config.output_size, config.input_size, config.hidden_size
    shapes = dict(config.spec.stage_weights(config))
    for layer in range(config.num_layers):
        inp = e if layer == 0 else h
        shapes[lstm_w(layer)] = (1, 4 * h, inp)
        shapes[lstm_r(layer)] = (1, 4 * h, h)
        shapes[lstm_b(layer)] = (1, 8 * h)
    shapes[HEAD_WEIGHT] = (h, v)
    shapes[HEAD_BIAS] = (v,)
    return shapes


def require_ops(artifact: Artifact, allowed: Iterable[str], backend: str) -> None:
    """Refuse an artifact using ops a backend cannot run, listing them."""
    unsupported = sorted(artifact.ops - frozenset(allowed))
    if unsupported:
        raise UnsupportedModelError(
            f"{artifact.path}: the {backend!r} backend cannot run ops {unsupported} "
            f"(scheme {artifact.scheme!r}; supported: {sorted(allowed)})"
        )


def read_artifact(
    path: str | os.PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_external_data: bool = False,
) -> Artifact:
    """Read and check an lstm-edge ONNX file; see the module docstring for what is refused."""
    path = Path(path)
    data = _read_capped(path, max_bytes)
    if not data:
        raise InvalidArtifactError(f"not a valid ONNX model: {path}: the file is empty")
    model = op.parse_model(data, str(path))
    _check_onnx(model, path)
    metadata = _metadata(model, path)
    graph = model.graph
    tensors = _initializers(graph, path, allow_external_data)
    integrity = verify_digest(model, tensors, metadata, path)
    config, scheme = _config_and_scheme(metadata, path)
    ops = _check_ops(model, scheme, path)
    _check_io(graph, config, path)
    norms = _check_config_tensors(graph, tensors, config, path)
    calibration = _calibration(metadata, config, path)
    if scheme == "int8-dynamic":
        # quantize_dynamic rewrites the LSTM into contrib ops whose layout we do not
        # interpret; only onnxruntime runs it, so its checks of the graph apply.
        weights, quantized = {}, {}
    else:
        weights, quantized = _logical_weights(graph, tensors, config, path)
        weights.update(norms)
        _check_lstm_nodes(graph, config, path)
        _check_wiring(graph, tensors, config, path)
    integer = _integer(metadata, config, quantized, path) if scheme == INTEGER_SCHEME else None
    return Artifact(
        path=path,
        config=config,
        scheme=scheme,
        metadata=metadata,
        weights=weights,
        quantized=quantized,
        sha256=hashlib.sha256(data).hexdigest(),
        ops=ops,
        model_bytes=data,
        has_external_data=any(t.is_external for t in graph.initializers),
        calibration=calibration,
        integrity=integrity,
        integer=integer,
    )


# ---- the checks, in the order they run ----------------------------------------------------


def _read_capped(path: Path, max_bytes: int) -> bytes:
    try:
        st = path.stat()
    except OSError as e:
        raise InvalidArtifactError(f"cannot read model {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArtifactError(f"not a valid ONNX model: {path}: not a regular file")
    if st.st_size > max_bytes:
        raise InvalidArtifactError(
            f"model {path} is {st.st_size} bytes, over the {max_bytes}-byte limit "
            f"(pass max_bytes= to raise it)"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since stat
    except OSError as e:
        raise InvalidArtifactError(f"cannot read model {path}: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise InvalidArtifactError(f"model {path} is over the {max_bytes}-byte limit")
    return data


def _check_onnx(model: op.Model, path: Path) -> None:
    if model.graph is None or not model.opset_import or model.ir_version == 0:
        missing = [
            name
            for name, absent in (
                ("ir_version", model.ir_version == 0),
                ("opset_import", not model.opset_import),
                ("graph", model.graph is None),
            )
            if absent
        ]
        raise InvalidArtifactError(f"not a valid ONNX model: {path}: no {', '.join(missing)}")
    if model.ir_version not in SUPPORTED_IR_VERSIONS:
        raise UnsupportedModelError(
            f"{path}: ONNX IR version {model.ir_version} is not supported (expected "
            f"{SUPPORTED_IR_VERSIONS.start} to {SUPPORTED_IR_VERSIONS.stop - 1})"
        )
    if model.function_count or model.graph.sparse_initializer_count:
        raise UnsupportedModelError(
            f"{path}: model-local functions and sparse initializers are not supported"
        )


def check_metadata_keys(metadata: Mapping[str, str], where: object) -> None:
    """Refuse a file without (all of) lstm-edge's metadata with the one message every
    command gives (load, info, quantize, codegen): it names `lstm-edge import`."""
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        what = (
            "has no lstm-edge metadata"
            if len(missing) == len(REQUIRED_METADATA)
            else "has incomplete lstm-edge metadata"
        )
        raise InvalidArtifactError(
            f"{where} is an ONNX model but {what}: missing keys {missing} (bring a model "
            "from another exporter in with `lstm-edge import`; a checkpoint with "
            "`lstm-edge export`)"
        )


def _metadata(model: op.Model, path: Path) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for key, value in model.metadata_props:
        if key in metadata:
            raise InvalidArtifactError(f"{path}: metadata key {key!r} appears twice")
        metadata[key] = value
    check_metadata_keys(metadata, path)
    found = metadata[META_FORMAT_VERSION]
    if found != str(FORMAT_VERSION):
        raise FormatVersionError(
            f"{path}: format version {found!r} is not supported (expected {FORMAT_VERSION!r})"
        )
    return metadata


def verify_digest(
    model: op.Model, tensors: dict[str, np.ndarray], metadata: dict[str, str], path: Path
) -> str:
    """Recompute the content digest and compare it with META_DIGEST: "verified", or
    "absent" for a file written before digests; a mismatch is refused."""
    expected = metadata.get(META_DIGEST)
    if expected is None:
        return "absent"
    found = content_digest(model, tensors)
    if found != expected:
        raise IntegrityError(mismatch_message(str(path), expected, found))
    return "verified"


def _config_and_scheme(metadata: dict[str, str], path: Path) -> tuple[ModelConfig, str]:
    try:
        config = ModelConfig.from_json(metadata[META_CONFIG])
    except FormatVersionError as e:
        raise FormatVersionError(f"{path}: metadata {META_CONFIG!r}: {e}") from None
    except InvalidConfigError as e:
        raise InvalidArtifactError(f"{path}: metadata {META_CONFIG!r}: {e}") from None
    scheme = metadata[META_QUANTIZATION]
    if scheme not in QUANT_SCHEMES:
        raise UnsupportedModelError(
            f"{path}: quantization scheme {scheme!r} is unknown (expected one of {QUANT_SCHEMES})"
        )
    return config, scheme


def _check_ops(model: op.Model, scheme: str, path: Path) -> frozenset[str]:
    contrib_ok = scheme == "int8-dynamic"
    for domain, version in model.opset_import:
        if domain in DEFAULT_DOMAINS:
            if version not in SUPPORTED_OPSETS:
                raise UnsupportedModelError(
                    f"{path}: opset {version} is not supported (expected "
                    f"{SUPPORTED_OPSETS.start} to {SUPPORTED_OPSETS.stop - 1})"
                )
        elif not (contrib_ok and domain == CONTRIB_DOMAIN):
            raise UnsupportedModelError(
                f"{path}: operator domain {domain!r} (opset {version}) is not supported"
            )
    allowed = BASE_OPS | DYNAMIC_OPS if contrib_ok else BASE_OPS
    unsupported = sorted(
        {
            f"{n.domain}::{n.op_type}" if n.domain not in DEFAULT_DOMAINS else n.op_type
            for n in model.graph.nodes
            if n.op_type not in allowed
            or not (n.domain in DEFAULT_DOMAINS or (contrib_ok and n.domain == CONTRIB_DOMAIN))
        }
    )
    if unsupported:
        raise UnsupportedModelError(
            f"{path}: unsupported ops {unsupported} for scheme {scheme!r} "
            f"(supported: {sorted(allowed)})"
        )
    for n in model.graph.nodes:
        for a in n.attributes:
            if a.has_graph:
                raise UnsupportedModelError(
                    f"{path}: node {n.name or n.op_type!r} has a subgraph attribute {a.name!r}"
                )
    return frozenset(n.op_type for n in model.graph.nodes)


def _check_io(graph: op.Graph, config: ModelConfig, path: Path) -> None:
    layers, hidden = config.num_layers, config.hidden_size
    spec = config.spec
    expected_inputs = {
        spec.input_name: (_ELEM_TYPES[spec.input_dtype], spec.graph_input_dims(config)),
        INPUT_H0: (op.FLOAT, (layers, None, hidden)),
        INPUT_C0: (op.FLOAT, (layers, None, hidden)),
    }
    expected_outputs = {
        config.output_name: (op.FLOAT, (None, None, config.output_size)),
        OUTPUT_HN: (op.FLOAT, (layers, None, hidden)),
        OUTPUT_CN: (op.FLOAT, (layers, None, hidden)),
    }
    history = spec.history_size(config)
    if history:
        expected_inputs[INPUT_HISTORY] = (op.FLOAT, (None, history))
        expected_outputs[OUTPUT_HISTORY] = (op.FLOAT, (None, history))
    initializer_names = {t.name for t in graph.initializers}
    # Initializers may also be listed as graph inputs (required before IR 4, still allowed
    # after); they are defaults, not inputs the caller feeds.
    inputs = [v for v in graph.inputs if v.name not in initializer_names]
    for kind, found, expected in (
        ("inputs", inputs, expected_inputs),
        ("outputs", graph.outputs, expected_outputs),
    ):
        names = [v.name for v in found]
        if sorted(names) != sorted(expected):
            raise InvalidArtifactError(
                f"{path}: graph {kind} are {names} (expected {sorted(expected)} for task "
                f"{config.task!r})"
            )
        for v in found:
            elem, dims = expected[v.name]
            if not v.is_tensor or v.elem_type != elem:
                raise InvalidArtifactError(
                    f"{path}: graph {kind[:-1]} {v.name!r} has element type {v.elem_type} "
                    f"(expected {elem}, {op.DTYPES[elem].name})"
                )
            if v.shape is None:
                continue  # shape left to inference; the weights fix every static dim
            if len(v.shape) != len(dims) or any(
                want is not None and isinstance(got, int) and got != want
                for got, want in zip(v.shape, dims, strict=True)
            ):
                shown = ["?" if d is None else d for d in dims]
                raise InvalidArtifactError(
                    f"{path}: graph {kind[:-1]} {v.name!r} has shape {list(v.shape)} "
                    f"(expected {shown} from the config)"
                )


def _check_config_tensors(
    graph: op.Graph, tensors: dict[str, np.ndarray], config: ModelConfig, path: Path
) -> dict[str, np.ndarray]:
    """Each of the task's config tensors (forecast: the NORM_* normalization) is a float32
    initializer (never quantized, in every scheme) holding exactly
    `spec.config_tensors(config)`, bit for bit, so the graph and every backend compute
    with the values the config states. Returns them read-only."""
    expected = config.spec.config_tensors(config)
    producers = {out for n in graph.nodes for out in n.outputs}
    found: dict[str, np.ndarray] = {}
    for name, want in expected.items():
        # NORM_* follow from the statistics; HIGHWAY_* from ar_coef and the statistics.
        highway = name in HIGHWAY_TENSORS
        kind = "highway tensor" if highway else "normalization tensor"
        source = "ar_coef and statistics" if highway else "normalization statistics"
        where = f"{path}: {kind} {name!r}"
        if name not in tensors or name in producers:
            what = "computed by a node" if name in producers else "missing"
            raise InvalidArtifactError(
                f"{where} is {what} (expected a float32 initializer; it is never quantized)"
            )
        value = tensors[name]
        _expect(value, np.float32, want.shape, where)
        # Bit for bit (as uint32): the exporter writes exactly these values, so any
        # difference, even -0.0 for 0.0 or a NaN, means the file was changed or mis-made.
        differ = np.flatnonzero(value.view(np.uint32) != want.view(np.uint32))
        if differ.size:
            # NORM_* are 1-D (index i); the highway's tensors are 2-D and 3-D.
            at = np.unravel_index(int(differ[0]), want.shape)
            index = at[0] if len(at) == 1 else list(at)
            raise InvalidArtifactError(
                f"{where} does not match the config's {source} "
                f"({differ.size} of {want.size} values differ; first at index {index}: found "
                f"{float(value[at])!r}, expected {float(want[at])!r})"
            )
        found[name] = _frozen(value)
    return found


def check_calibration(calibration: object, config: ModelConfig, where: str) -> dict:
    """Check a META_CALIBRATION value (the task's spec says what it holds; a task without
    calibration refuses any); errors name `where` and the key. Returns the dict."""
    if not config.spec.has_calibration:
        owners = " or ".join(repr(t.name) for t in TASKS.values() if t.has_calibration)
        raise InvalidArtifactError(
            f"{where}: calibration is for task {owners} (this model is {config.task!r})"
        )
    return config.spec.check_calibration(calibration, config, where)


def _calibration(metadata: dict[str, str], config: ModelConfig, path: Path) -> dict | None:
    text = metadata.get(META_CALIBRATION)
    if text is None:
        return None
    where = f"{path}: metadata {META_CALIBRATION!r}"
    value = parse_json(text, where, InvalidArtifactError)
    return check_calibration(value, config, where)


def _initializers(graph: op.Graph, path: Path, allow_external: bool) -> dict[str, np.ndarray]:
    """Check every initializer's dtype, dims and payload size; decode them."""
    external: list[tuple[op.Tensor, Path]] = []
    tensors: dict[str, np.ndarray] = {}
    for t in graph.initializers:
        where = f"{path}: initializer {t.name!r}"
        if t.name in tensors or any(t.name == e.name for e, _ in external):
            raise InvalidArtifactError(f"{where} is defined twice")
        if t.data_type not in op.DTYPES:
            raise UnsupportedModelError(f"{where} has unsupported data type {t.data_type}")
        if t.has_segment:
            raise UnsupportedModelError(f"{where} is segmented")
        if any(d < 0 for d in t.dims):
            raise InvalidArtifactError(f"{where} has negative dims {list(t.dims)}")
        count = math.prod(t.dims)
        if count > MAX_ELEMENTS:
            raise InvalidArtifactError(
                f"{where} has dims {list(t.dims)} ({count} elements, over the {MAX_ELEMENTS} limit)"
            )
        # Each dim too, not only their product: [0, 2**62] holds 0 elements, yet numpy
        # cannot shape an array like it.
        if any(d > MAX_ELEMENTS for d in t.dims):
            raise InvalidArtifactError(
                f"{where} has dims {list(t.dims)} (a dim over the {MAX_ELEMENTS} limit)"
            )
        if t.is_external:
            external.append((t, _external_path(t, path, allow_external)))
            continue
        stored = t.stored_count()
        if stored != count:
            detail = f"{len(t.raw_data)} bytes" if t.raw_data is not None else f"{stored} values"
            raise InvalidArtifactError(
                f"{where} has dims {list(t.dims)} ({count} elements of "
                f"{op.DTYPES[t.data_type].name}) but holds {detail}"
            )
        tensors[t.name] = t.to_numpy()
    # Only now, with every external location checked, is any external file opened.
    for t, file in external:
        tensors[t.name] = _read_external(t, file, path)
    return tensors


def _external_path(t: op.Tensor, model_path: Path, allow: bool) -> Path:
    """Resolve an external-data location, refusing anything outside the model's folder."""
    info = dict(t.external_data)
    location = info.get("location", "")
    where = f"{model_path}: initializer {t.name!r} stores its data in external file {location!r}"
    if not allow:
        raise UnsupportedModelError(
            f"{where}; external data is refused (self-contained models only; "
            f"pass allow_external_data=True to permit files beside the model)"
        )
    folder = model_path.resolve().parent
    rel = Path(location)
    if not location or rel.is_absolute() or location.startswith(("/", "\\")) or ":" in location:
        raise InvalidArtifactError(f"{where}: absolute or empty paths are refused")
    if ".." in rel.parts or "\\" in location:
        raise InvalidArtifactError(f"{where}: paths outside the model's folder are refused")
    candidate = folder / rel
    # Any symlink on the way (the file or a folder in between) could point anywhere.
    probe = folder
    for part in rel.parts:
        probe = probe / part
        if probe.is_symlink():
            raise InvalidArtifactError(f"{where}: symlinks are refused ({probe})")
    if folder not in candidate.resolve().parents:
        raise InvalidArtifactError(f"{where}: paths outside the model's folder are refused")
    return candidate


def _read_external(t: op.Tensor, file: Path, model_path: Path) -> np.ndarray:
    info = dict(t.external_data)
    where = f"{model_path}: initializer {t.name!r} (external file {file.name!r})"
    dtype = op.DTYPES[t.data_type]
    nbytes = math.prod(t.dims) * dtype.itemsize
    try:
        offset = int(info.get("offset", "0"))
        length = int(info.get("length", str(nbytes)))
    except ValueError:
        raise InvalidArtifactError(f"{where}: offset/length are not integers") from None
    if offset < 0 or length != nbytes:
        raise InvalidArtifactError(
            f"{where}: holds {length} bytes at offset {offset} (expected {nbytes} bytes "
            f"for dims {list(t.dims)})"
        )
    # O_NONBLOCK: opening a FIFO planted under the location must not hang the loader
    # (it has no effect on a regular file); anything but a regular file is refused.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(file, flags)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidArtifactError(f"{where}: not a regular file")
        with os.fdopen(fd, "rb") as f:
            f.seek(offset)
            raw = f.read(length)
    except OSError as e:
        raise InvalidArtifactError(f"{where}: {e.strerror or e}") from None
    if len(raw) != length:
        raise InvalidArtifactError(f"{where}: the file ends after {len(raw)} of {length} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(t.dims)


def _integer(
    metadata: dict[str, str],
    config: ModelConfig,
    quantized: dict[str, QuantizedTensor],
    path: Path,
) -> IntegerScheme:
    """An int8-full artifact's integer parameters over its int8 weight codes (output-major:
    W and R as stored, the head transposed)."""
    if META_INTEGER not in metadata:
        raise InvalidArtifactError(
            f"{path}: scheme {INTEGER_SCHEME!r} needs metadata {META_INTEGER!r} (its integer "
            f"parameters); the file has none"
        )
    names = [HEAD_WEIGHT] + [f(k) for k in range(config.num_layers) for f in (lstm_w, lstm_r)]
    missing = [n for n in names if n not in quantized]
    if missing:
        raise InvalidArtifactError(
            f"{path}: scheme {INTEGER_SCHEME!r} needs int8 weights; {missing} are not int8"
        )
    codes = {"head": np.ascontiguousarray(quantized[HEAD_WEIGHT].q.T)}
    for k in range(config.num_layers):
        codes[f"w{k}"] = quantized[lstm_w(k)].q[0]
        codes[f"r{k}"] = quantized[lstm_r(k)].q[0]
    shapes = {
        "hidden": config.hidden_size,
        "layers": config.num_layers,
        "input": config.input_size,
        "output": config.output_size,
        # token models gather layer 0's input codes from an int8 embedding of their own
        "vocab": config.vocab_size if config.spec.input_dtype == np.int64 else 0,
    }
    return IntegerScheme.from_json(metadata[META_INTEGER], codes, shapes, path)


def _logical_weights(
    graph: op.Graph, tensors: dict[str, np.ndarray], config: ModelConfig, path: Path
) -> tuple[dict[str, np.ndarray], dict[str, QuantizedTensor]]:
    """Find each logical weight as a float initializer or a DequantizeLinear/Cast output."""
    producers = {out: n for n in graph.nodes for out in n.outputs}
    weights: dict[str, np.ndarray] = {}
    quantized: dict[str, QuantizedTensor] = {}
    for name, shape in logical_shapes(config).items():
        where = f"{path}: weight {name!r}"
        node = producers.get(name)
        if name in tensors and node is None:
            value = tensors[name]
            _expect(value, np.float32, shape, where)
        elif node is not None and node.op_type == "DequantizeLinear":
            q, scale, axis = _dequantize_inputs(node, tensors, shape, where)
            quantized[name] = QuantizedTensor(q=_frozen(q), scale=_frozen(scale), axis=axis)
            bshape = [1] * len(shape)
            bshape[axis] = shape[axis]
            value = q.astype(np.float32) * scale.reshape(bshape)
        elif node is not None and node.op_type == "Cast":
            value = _cast_input(node, tensors, shape, where)
        else:
            found = f"produced by {node.op_type}" if node is not None else "not found"
            raise InvalidArtifactError(
                f"{where} is {found} (expected a float32 initializer, or a DequantizeLinear "
                f"or Cast of {name + QUANT_SUFFIX!r})"
            )
        if not np.isfinite(value).all():
            raise InvalidArtifactError(f"{where} contains NaN or Inf")
        weights[name] = _frozen(np.ascontiguousarray(value, dtype=np.float32))
    return weights, quantized


def _expect(value: np.ndarray, dtype, shape: tuple[int, ...], where: str) -> None:
    if value.dtype != np.dtype(dtype) or value.shape != tuple(shape):
        raise InvalidArtifactError(
            f"{where} is {value.dtype} {list(value.shape)} "
            f"(expected {np.dtype(dtype).name} {list(shape)} from the config)"
        )


def _inputs_as(node: op.Node, names: list[str], tensors: dict, where: str) -> list[np.ndarray]:
    got = list(node.inputs)
    if got != names:
        raise InvalidArtifactError(f"{where}: {node.op_type} reads {got} (expected {names})")
    missing = [n for n in names if n not in tensors]
    if missing:
        raise InvalidArtifactError(f"{where}: initializers {missing} are missing")
    return [tensors[n] for n in names]


def _dequantize_inputs(node: op.Node, tensors: dict, shape: tuple[int, ...], where: str):
    base = node.outputs[0]
    q, scale, zero = _inputs_as(
        node, [base + QUANT_SUFFIX, base + SCALE_SUFFIX, base + ZERO_POINT_SUFFIX], tensors, where
    )
    attrs = {a.name: a for a in node.attributes}
    unknown = sorted(set(attrs) - {"axis"})
    if unknown:
        raise UnsupportedModelError(f"{where}: DequantizeLinear attributes {unknown} unsupported")
    axis = attrs["axis"].i if "axis" in attrs else 1
    if not -len(shape) <= axis < len(shape):
        raise InvalidArtifactError(f"{where}: axis {axis} is out of range for shape {shape}")
    axis %= len(shape)
    _expect(q, np.int8, shape, where + QUANT_SUFFIX)
    _expect(scale, np.float32, (shape[axis],), where + SCALE_SUFFIX)
    _expect(zero, np.int8, (shape[axis],), where + ZERO_POINT_SUFFIX)
    if zero.any():
        raise UnsupportedModelError(f"{where}: nonzero zero points (the int8 scheme is symmetric)")
    bad = np.flatnonzero(~(np.isfinite(scale) & (scale > 0)))
    if bad.size:
        raise InvalidArtifactError(
            f"{where}{SCALE_SUFFIX}: scale[{bad[0]}] is {float(scale[bad[0]])} "
            f"(expected finite and > 0; {bad.size} of {scale.size} channels are not)"
        )
    return q, scale, axis


def _cast_input(node: op.Node, tensors: dict, shape: tuple[int, ...], where: str) -> np.ndarray:
    (q,) = _inputs_as(node, [node.outputs[0] + QUANT_SUFFIX], tensors, where)
    attrs = {a.name: a for a in node.attributes}
    if set(attrs) - {"to", "saturate"} or "to" not in attrs or attrs["to"].i != op.FLOAT:
        raise UnsupportedModelError(f"{where}: only Cast(to=FLOAT) is supported")
    _expect(q, np.float16, shape, where + QUANT_SUFFIX)
    return q.astype(np.float32)


def _check_lstm_nodes(graph: op.Graph, config: ModelConfig, path: Path) -> None:
    """The backends implement one LSTM: forward, default activations, no peepholes/clip."""
    nodes = [n for n in graph.nodes if n.op_type == "LSTM"]
    if len(nodes) != config.num_layers:
        raise InvalidArtifactError(
            f"{path}: graph has {len(nodes)} LSTM nodes (expected {config.num_layers}, "
            f"one per layer of the config)"
        )
    for layer, node in enumerate(nodes):
        where = f"{path}: LSTM node of layer {layer}"
        got = list(node.inputs[1:4])
        want = [lstm_w(layer), lstm_r(layer), lstm_b(layer)]
        if got != want:
            raise InvalidArtifactError(f"{where} reads weights {got} (expected {want})")
        extra = [i for i in (node.inputs[4:5] + node.inputs[7:]) if i]
        if extra:
            raise UnsupportedModelError(
                f"{where} uses sequence_lens or peepholes {extra} (unsupported)"
            )
        for a in node.attributes:
            if a.name == "hidden_size":
                if a.i != config.hidden_size:
                    raise InvalidArtifactError(
                        f"{where} has hidden_size {a.i} (expected {config.hidden_size})"
                    )
                continue
            value = {"direction": a.s, "activations": a.strings}.get(a.name, a.i)
            if a.name not in _LSTM_DEFAULTS or value != _LSTM_DEFAULTS[a.name]:
                raise UnsupportedModelError(
                    f"{where} has attribute {a.name}={value!r}; only hidden_size and "
                    f"the defaults {_LSTM_DEFAULTS} are supported"
                )


# Weight-rebuild nodes: each makes one logical weight from its stored form (checked by
# `_logical_weights`); every other node must be the canonical graph's.
_REBUILD_OPS = ("DequantizeLinear", "Cast")
_ATTR_VALUE = {
    op.ATTR_FLOAT: lambda a: a.f,
    op.ATTR_INT: lambda a: a.i,
    op.ATTR_STRING: lambda a: a.s,
    op.ATTR_FLOATS: lambda a: list(a.floats),
    op.ATTR_INTS: lambda a: list(a.ints),
    op.ATTR_STRINGS: lambda a: list(a.strings),
}


def _node_key(op_type: str, inputs, outputs, attrs: dict) -> tuple:
    return op_type, tuple(inputs), tuple(outputs), sorted(attrs.items())


def _check_wiring(
    graph: op.Graph, tensors: dict[str, np.ndarray], config: ModelConfig, path: Path
) -> None:
    """The graph is the canonical graph of its config (`runtime.graph`), node for node:
    same ops, inputs, outputs and attributes, in order, reading the canonical constants;
    besides it only the nodes that rebuild logical weights. So every backend (the numpy
    and C ones compute from the config, onnxruntime from the graph) runs the computation
    that was checked, and a file wired otherwise is refused naming the first difference."""
    seen = {t.name for t in graph.initializers}
    for n in graph.nodes:
        for out in n.outputs:
            if out and out in seen:
                raise InvalidArtifactError(
                    f"{path}: {out!r} is produced twice (by node {n.name or n.op_type!r} and "
                    "an earlier node or initializer; expected each value defined once)"
                )
            seen.add(out)
    canonical = canonical_graph(config)
    weights = set(logical_shapes(config))
    nodes = [
        n
        for n in graph.nodes
        if not (n.op_type in _REBUILD_OPS and len(n.outputs) == 1 and n.outputs[0] in weights)
    ]
    for k in range(max(len(nodes), len(canonical.nodes))):
        got = want = None
        if k < len(nodes):
            n = nodes[k]
            attrs = {a.name: _ATTR_VALUE.get(a.type, lambda a: a)(a) for a in n.attributes}
            got = _node_key(n.op_type, n.inputs, n.outputs, attrs)
        if k < len(canonical.nodes):
            c = canonical.nodes[k]
            want = _node_key(c.op, c.inputs, c.outputs, c.attrs)
        if got != want:
            raise InvalidArtifactError(
                f"{path}: the graph is not the canonical graph of its config: node {k} is "
                f"{_describe(got)} (expected {_describe(want)})"
            )
    for name, want in canonical.constants.items():
        found = tensors.get(name)
        if found is None or found.dtype != want.dtype or not np.array_equal(found, want):
            shown = "missing" if found is None else f"{found.dtype} {found.tolist()}"
            raise InvalidArtifactError(
                f"{path}: constant {name!r} is {shown} (expected {want.dtype} {want.tolist()})"
            )


def _describe(key: tuple | None) -> str:
    if key is None:
        return "absent"
    op_type, inputs, outputs, attrs = key
    shown = ", ".join(f"{k}={v!r}" for k, v in attrs)
    return f"{op_type}({', '.join(inputs)}) -> {', '.join(outputs)}" + (
        f" [{shown}]" if shown else ""
    )


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)  # own the memory (not a view into the file's bytes)
    a.setflags(write=False)
    return a
