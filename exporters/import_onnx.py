"""Bring your own LSTM: read an ONNX file from another exporter (torch.onnx, tf2onnx) and
find in it the one computation lstm-edge streams,

    [Gather embedding | float features] -> forward LSTM layer(s) -> [MatMul/Gemm (+Add) head]

through whatever plumbing surrounds it (Transpose, Squeeze/Unsqueeze, Reshape, Shape
arithmetic, Constant, Identity, Cast). Weights computed by constant subgraphs are folded
with onnx's reference evaluator. The result is a ModelConfig and the logical weights the
exporter writes as the canonical graph (`onnx_export.build_onnx`); `import_check` then
holds the new artifact against the source file in onnxruntime. Everything that cannot
stream is refused by name (`ImportRefusedError`, one line naming node, attribute or tensor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from lstm_edge.runtime.config import (
    EMBEDDING,
    HEAD_BIAS,
    HEAD_WEIGHT,
    MAX_DIM,
    MAX_VOCAB,
    ModelConfig,
    lstm_b,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.errors import LstmEdgeError

# Ops that only move, rename or re-type a tensor: their data input is input 0, any other
# input (axes, shape, perm) is shape arithmetic the file computes for itself.
PLUMBING = frozenset(
    {"Identity", "Cast", "Transpose", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Dropout"}
)
# Ops that only read a tensor's shape, never its values.
SHAPE_READERS = frozenset({"Shape", "Size"})
OTHER_RECURRENT = frozenset({"GRU", "RNN", "Scan", "Loop"})
DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "tanh")
# The largest source file read (a streaming LSTM for a device is far smaller).
MAX_SOURCE_BYTES = 1 << 30


class ImportRefusedError(LstmEdgeError):
    """The source file is not one lstm-edge can stream; the message names what and why."""


@dataclass
class Imported:
    """What was found: the config, the logical weights and how to run the source."""

    config: ModelConfig
    weights: dict[str, np.ndarray]
    main_input: str  # the source's token or feature input
    main_output: str  # the source's per-step output
    first_lstm_x: str  # the first LSTM's X (the probe of the source's time axis)
    first_lstm_layout: int
    state_inputs: list[str] = field(default_factory=list)
    state_outputs: list[str] = field(default_factory=list)


def load_source(path: Path) -> onnx.ModelProto:
    """The source file as a ModelProto, or a one-line refusal naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise ImportRefusedError(f"{path}: {size} bytes (expected at most {MAX_SOURCE_BYTES})")
        data = path.read_bytes()
    except OSError as e:
        raise ImportRefusedError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        proto = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ImportRefusedError(f"{path} is not a valid ONNX model: {type(e).__name__}") from None
    if not proto.graph.node:
        raise ImportRefusedError(f"{path} is not a valid ONNX model: its graph has no nodes")
    _load_external_data(proto, path)
    return proto


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """Read the weights a file keeps beside it (the dynamo exporter's `.onnx.data`): only
    plain files in the model's own folder, checked before any is opened (bad-inputs row 12)."""
    folder = path.resolve().parent
    for t in proto.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        target = folder / location
        if (
            not location
            or Path(location).is_absolute()
            or ".." in Path(location).parts
            or target.is_symlink()
            or target.resolve().parent != folder
            or not target.is_file()
        ):
            raise ImportRefusedError(
                f"{path}: tensor {t.name!r} keeps its data in {location!r} (expected a "
                "plain file beside the model, no '..', absolute path or symlink)"
            )
    try:
        onnx.load_external_data_for_model(proto, str(folder))
    except Exception as e:
        raise ImportRefusedError(f"{path}: cannot read its external data ({e})") from None


class _Graph:
    """Lookups over one ONNX graph: producers, consumers, constants and their values."""

    def __init__(self, proto: onnx.ModelProto, where: str):
        self.proto, self.where = proto, where
        g = proto.graph
        self.nodes = list(g.node)
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.inits]
        self.outputs = [o.name for o in g.output]
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self._values: dict[str, np.ndarray] = {}

    def name(self, node: onnx.NodeProto) -> str:
        return f"node {node.name or node.output[0]!r} ({node.op_type})"

    def trace_back(self, tensor: str) -> tuple[str, onnx.NodeProto | None]:
        """Follow `tensor` back through plumbing to the tensor it moves: (name, producer)."""
        node = self.producer.get(tensor)
        while node is not None and node.op_type in PLUMBING:
            tensor = node.input[0]
            node = self.producer.get(tensor)
        return tensor, node

    def data_consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.consumers.get(tensor, []) if n.op_type not in SHAPE_READERS]

    def trace_forward(self, tensor: str, what: str) -> tuple[str, onnx.NodeProto | None]:
        """Follow `tensor` forward through plumbing to the next computing node (None at a
        graph output). Shape readers are ignored; a fork of the data is refused."""
        while True:
            users = self.data_consumers(tensor)
            if tensor in self.outputs and not users:
                return tensor, None
            if len(users) != 1 or tensor in self.outputs:
                names = ", ".join(self.name(n) for n in users) or "nothing"
                raise ImportRefusedError(
                    f"{self.where}: {what} {tensor!r} feeds {names}"
                    f"{' and is a graph output' if tensor in self.outputs else ''} (expected one "
                    "path of plumbing to a linear head or the output)"
                )
            (node,) = users
            if node.op_type not in PLUMBING or node.input[0] != tensor:
                return tensor, node
            tensor = node.output[0]

    def value(self, tensor: str, role: str) -> np.ndarray:
        """The constant value of `tensor` (an initializer, or folded from the constant
        subgraph computing it); refused when it depends on a graph input."""
        if tensor in self._values:
            return self._values[tensor]
        if tensor in self.inits:
            value = self._initializer(tensor, role)
        else:
            value = self._fold(tensor, role)
        self._values[tensor] = value
        return value

    def _initializer(self, tensor: str, role: str) -> np.ndarray:
        t = self.inits[tensor]
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise ImportRefusedError(
                f"{self.where}: {role} {tensor!r} uses external data (expected a "
                "self-contained file)"
            )
        _check_dims(self.where, role, tensor, list(t.dims))
        try:
            return numpy_helper.to_array(t)
        except Exception as e:
            raise ImportRefusedError(
                f"{self.where}: {role} {tensor!r} cannot be read ({e})"
            ) from None

    def _fold(self, tensor: str, role: str) -> np.ndarray:
        needed, stack = [], [tensor]
        seen: set[str] = set()
        while stack:
            t = stack.pop()
            if not t or t in seen or t in self.inits:
                continue
            seen.add(t)
            node = self.producer.get(t)
            if node is None:
                raise ImportRefusedError(
                    f"{self.where}: {role} {tensor!r} comes from graph input {t!r}, not from "
                    "an initializer (expected weights stored in the file)"
                )
            needed.append(node)
            stack.extend(node.input)
        keep = {id(n) for n in needed}
        nodes = [n for n in self.nodes if id(n) in keep]
        used = {i for n in nodes for i in n.input}
        inits = [self.inits[i] for i in used if i in self.inits]
        for i in used & self.inits.keys():
            _check_dims(self.where, role, i, list(self.inits[i].dims))
        graph = helper.make_graph(
            nodes, "fold", [], [helper.make_empty_tensor_value_info(tensor)], inits
        )
        model = helper.make_model(graph, opset_imports=list(self.proto.opset_import))
        try:
            (value,) = ReferenceEvaluator(model).run(None, {})
        except Exception as e:
            raise ImportRefusedError(
                f"{self.where}: {role} {tensor!r} cannot be computed from the file's "
                f"constants ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        return np.asarray(value)


def _check_dims(where: str, role: str, tensor: str, dims: list[int]) -> None:
    """Refuse absurd declared dims before any array of them is made (bad-inputs row 14)."""
    if any(d < 0 or d > MAX_VOCAB for d in dims) or int(np.prod(dims, dtype=object)) > 1 << 28:
        raise ImportRefusedError(
            f"{where}: {role} {tensor!r} declares dims {dims} (expected each at most "
            f"{MAX_VOCAB} and at most {1 << 28} values)"
        )


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _check_lstm(g: _Graph, node: onnx.NodeProto) -> int:
    """Refuse what cannot stream in one LSTM node; return its layout."""
    a = _attrs(node)
    who = g.name(node)
    direction = _text(a.get("direction", "forward"))
    if direction != "forward":
        raise ImportRefusedError(
            f"{g.where}: {who} has direction {direction!r} (expected 'forward': a "
            f"{direction} layer needs the whole sequence before its first output, so it "
            "cannot stream)"
        )
    acts = tuple(_text(x).lower() for x in a.get("activations", DEFAULT_ACTIVATIONS))
    if acts != DEFAULT_ACTIVATIONS or "activation_alpha" in a or "activation_beta" in a:
        raise ImportRefusedError(
            f"{g.where}: {who} has custom activations {list(acts)} (expected the default "
            "Sigmoid, Tanh, Tanh, the only ones every lstm-edge backend computes)"
        )
    if "clip" in a:
        raise ImportRefusedError(
            f"{g.where}: {who} has attribute clip={a['clip']} (expected none: clipped "
            "gates are not computed by lstm-edge's backends)"
        )
    if a.get("input_forget", 0):
        raise ImportRefusedError(
            f"{g.where}: {who} has input_forget=1 (coupled input and forget gates are "
            "not computed by lstm-edge's backends)"
        )
    if len(node.input) > 7 and node.input[7]:
        raise ImportRefusedError(
            f"{g.where}: {who} has peephole weights P {node.input[7]!r} (expected none: "
            "peepholes are not computed by lstm-edge's backends)"
        )
    if len(node.input) > 4 and node.input[4]:
        src, producer = g.trace_back(node.input[4])
        if producer is None and src in g.inputs:
            raise ImportRefusedError(
                f"{g.where}: {who} reads sequence_lens from graph input {src!r} (expected "
                "none or the full length: a stream has no per-sequence lengths)"
            )
    hidden = a.get("hidden_size")
    if not isinstance(hidden, int) or not 1 <= hidden <= MAX_DIM:
        raise ImportRefusedError(
            f"{g.where}: {who} has hidden_size {hidden!r} (expected an integer 1 to {MAX_DIM})"
        )
    return int(a.get("layout", 0))


def _chain(g: _Graph) -> list[onnx.NodeProto]:
    """The LSTM nodes as one chain of layers, first to last."""
    others = [n for n in g.nodes if n.op_type in OTHER_RECURRENT]
    if others:
        raise ImportRefusedError(
            f"{g.where}: {g.name(others[0])} is a recurrent op lstm-edge does not stream "
            "(expected standard LSTM nodes)"
        )
    lstms = [n for n in g.nodes if n.op_type == "LSTM"]
    if not lstms:
        raise ImportRefusedError(f"{g.where} has no LSTM node (expected at least one)")
    prev: dict[int, onnx.NodeProto | None] = {}
    for n in lstms:
        src, producer = g.trace_back(n.input[0])
        if producer is not None and producer.op_type == "LSTM":
            if src != producer.output[0]:
                raise ImportRefusedError(
                    f"{g.where}: {g.name(n)} reads {src!r}, the final state of "
                    f"{g.name(producer)} (expected its per-step output Y)"
                )
            prev[id(n)] = producer
        elif _reaches_lstm(g, n.input[0]):
            raise ImportRefusedError(
                f"{g.where}: {g.name(producer)} between LSTM layers is not plumbing "
                f"(expected only {', '.join(sorted(PLUMBING))} between layers)"
            )
        else:
            prev[id(n)] = None
    firsts = [n for n in lstms if prev[id(n)] is None]
    if len(firsts) != 1:
        raise ImportRefusedError(
            f"{g.where}: {' and '.join(g.name(n) for n in firsts)} are unrelated LSTMs "
            "(expected one chain of layers, each reading the one before)"
        )
    chain = firsts
    while len(chain) < len(lstms):
        nxt = [n for n in lstms if prev[id(n)] is chain[-1]]
        if len(nxt) != 1:
            raise ImportRefusedError(
                f"{g.where}: {g.name(chain[-1])} feeds {len(nxt)} LSTM layers (expected one "
                "chain of layers)"
            )
        chain.append(nxt[0])
    return chain


def _reaches_lstm(g: _Graph, tensor: str) -> bool:
    """Whether any LSTM output is upstream of `tensor`."""
    stack, seen = [tensor], set()
    while stack:
        t = stack.pop()
        node = g.producer.get(t)
        if node is None or t in seen:
            continue
        seen.add(t)
        if node.op_type == "LSTM":
            return True
        stack.extend(i for i in node.input if i)
    return False


def _layer_weights(g: _Graph, node: onnx.NodeProto, layer: int) -> dict[str, np.ndarray]:
    """W, R, B of one LSTM node in the artifact's layout (ONNX gate order, one direction)."""
    hidden = _attrs(node)["hidden_size"]
    w = g.value(node.input[1], f"W of {g.name(node)}")
    r = g.value(node.input[2], f"R of {g.name(node)}")
    has_b = len(node.input) > 3 and node.input[3]
    b = g.value(node.input[3], f"B of {g.name(node)}") if has_b else np.zeros((1, 8 * hidden))
    for label, t, want in (
        ("W", w, (1, 4 * hidden, w.shape[-1] if w.ndim == 3 else -1)),
        ("R", r, (1, 4 * hidden, hidden)),
        ("B", b, (1, 8 * hidden)),
    ):
        if t.shape != want:
            if t.ndim >= 1 and t.shape[0] == 2:
                raise ImportRefusedError(
                    f"{g.where}: {g.name(node)} has two directions in {label} (a bidirectional "
                    "layer cannot stream)"
                )
            raise ImportRefusedError(
                f"{g.where}: {label} of {g.name(node)} has shape {list(t.shape)} (expected "
                f"{list(want)} for hidden_size {hidden})"
            )
    named = {lstm_w(layer): w, lstm_r(layer): r, lstm_b(layer): b}
    for logical, source in zip(named, node.input[1:4], strict=False):
        _check_finite(g, named[logical], source or logical)
    return {k: np.ascontiguousarray(v, np.float32) for k, v in named.items()}


def _check_finite(g: _Graph, value: np.ndarray, source: str) -> None:
    if value.dtype.kind != "f":
        raise ImportRefusedError(
            f"{g.where}: tensor {source!r} has dtype {value.dtype} (expected float weights)"
        )
    if not np.isfinite(value).all():
        bad = int((~np.isfinite(value)).sum())
        raise ImportRefusedError(
            f"{g.where}: tensor {source!r} has {bad} NaN/Inf value(s) of {value.size}"
        )


def _input_stage(g: _Graph, first: onnx.NodeProto) -> tuple[str, np.ndarray | None]:
    """(the source's main input, the embedding [V, E] or None for float features)."""
    src, producer = g.trace_back(first.input[0])
    if producer is None and src in g.inputs:
        return src, None
    if producer is not None and producer.op_type == "Gather":
        axis = _attrs(producer).get("axis", 0)
        table = producer.input[0]
        ids = _id_source(g, producer.input[1])
        if axis == 0 and ids is not None:
            emb = g.value(table, f"embedding of {g.name(producer)}")
            if emb.ndim != 2:
                raise ImportRefusedError(
                    f"{g.where}: embedding {table!r} has shape {list(emb.shape)} (expected "
                    "[vocabulary, embed])"
                )
            _check_finite(g, emb, table)
            return ids, np.ascontiguousarray(emb, np.float32)
    what = g.name(producer) if producer is not None else f"tensor {src!r}"
    raise ImportRefusedError(
        f"{g.where}: {what} feeds the first LSTM {g.name(first)} (expected a graph input "
        "of float features or an embedding Gather of token ids, through plumbing only)"
    )


# Integer ops a converter may put on the ids before the embedding (Keras wraps negative
# ids: ids < 0 ? ids + vocab : ids); for ids in range they change nothing, which the
# import check confirms, and the artifact refuses ids out of range at its step.
ID_OPS = PLUMBING | SHAPE_READERS | {
    "Add", "Sub", "Mul", "Mod", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Equal",
    "Not", "And", "Or", "Where", "Max", "Min", "Clip", "Constant", "Slice", "Gather", "Concat",
    "Expand", "ConstantOfShape",
}  # fmt: skip


def _id_source(g: _Graph, tensor: str) -> str | None:
    """The one graph input the Gather's ids are computed from with integer ops only."""
    sources, stack, seen = set(), [tensor], set()
    while stack:
        t = stack.pop()
        if not t or t in seen or t in g.inits:
            continue
        seen.add(t)
        node = g.producer.get(t)
        if node is None:
            sources.add(t)
        elif node.op_type not in ID_OPS:
            return None
        else:
            stack.extend(node.input)
    return sources.pop() if len(sources) == 1 else None


def _head(g: _Graph, last: onnx.NodeProto) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """(the source's main output, head weight [H, O] or None, head bias [O] or None)."""
    if not g.data_consumers(last.output[0]) and last.output[0] not in g.outputs:
        raise ImportRefusedError(
            f"{g.where}: the per-step output Y of the last LSTM {g.name(last)} is unused "
            "(a model that predicts from the final state only; expected per-step outputs)"
        )
    tensor, node = g.trace_forward(last.output[0], "the last LSTM's output")
    weight = bias = None
    if node is not None and node.op_type in ("MatMul", "Gemm"):
        weight, bias = _head_matmul(g, node, tensor)
        tensor, node = g.trace_forward(node.output[0], "the head's output")
    if node is not None and node.op_type == "Add" and weight is not None and bias is None:
        other = node.input[1] if node.input[0] == tensor else node.input[0]
        bias = g.value(other, f"head bias of {g.name(node)}")
        _check_finite(g, bias, other)
        tensor, node = g.trace_forward(node.output[0], "the head's output")
    if node is not None:
        raise ImportRefusedError(
            f"{g.where}: {g.name(node)} after the last LSTM is not a linear head or "
            "plumbing (expected MatMul/Gemm, an optional bias Add, then the output)"
        )
    return tensor, weight, bias


def _head_matmul(g: _Graph, node: onnx.NodeProto, tensor: str):
    if node.input[0] != tensor:
        raise ImportRefusedError(
            f"{g.where}: {g.name(node)} takes the LSTM output as its second input (expected x @ W)"
        )
    w = g.value(node.input[1], f"head weight of {g.name(node)}")
    _check_finite(g, w, node.input[1])
    bias = None
    if node.op_type == "Gemm":
        a = _attrs(node)
        if a.get("transA", 0):
            raise ImportRefusedError(f"{g.where}: {g.name(node)} has transA=1 (expected 0)")
        w = (w.T if a.get("transB", 0) else w) * a.get("alpha", 1.0)
        if len(node.input) > 2 and node.input[2]:
            bias = g.value(node.input[2], f"head bias of {g.name(node)}") * a.get("beta", 1.0)
            _check_finite(g, bias, node.input[2])
    if w.ndim != 2:
        raise ImportRefusedError(
            f"{g.where}: head weight {node.input[1]!r} has shape {list(w.shape)} (expected "
            "[hidden, outputs])"
        )
    return w, bias


def _state_io(g: _Graph, imp_in: str, imp_out: str) -> tuple[list[str], list[str]]:
    """The source's state inputs and outputs (every other graph input and output)."""
    ins = [i for i in g.inputs if i != imp_in]
    outs = [o for o in g.outputs if o != imp_out]
    return ins, outs


def analyze(
    proto: onnx.ModelProto,
    where: str,
    *,
    token_names: tuple[str, ...] = (),
    stats: dict[str, tuple[float, ...]] | None = None,
) -> Imported:
    """Find the streamable LSTM in `proto`; its config and logical weights."""
    g = _Graph(proto, where)
    foreign = [n for n in g.nodes if n.domain not in ("", "ai.onnx")]
    if foreign:
        raise ImportRefusedError(
            f"{where}: {g.name(foreign[0])} is of domain {foreign[0].domain!r} (expected "
            "standard ONNX ops)"
        )
    chain = _chain(g)
    layouts = [_check_lstm(g, n) for n in chain]
    main_in, emb = _input_stage(g, chain[0])
    main_out, head_w, head_b = _head(g, chain[-1])
    weights: dict[str, np.ndarray] = {}
    for layer, node in enumerate(chain):
        weights.update(_layer_weights(g, node, layer))
    sizes = [weights[lstm_r(layer)].shape[2] for layer in range(len(chain))]
    if len(set(sizes)) > 1:
        raise ImportRefusedError(
            f"{where}: the LSTM layers have hidden sizes {sizes} (expected one hidden size "
            "for every layer, as lstm-edge's state is [layers, batch, hidden])"
        )
    hidden = sizes[0]
    for layer in range(1, len(chain)):
        width = weights[lstm_w(layer)].shape[2]
        below = weights[lstm_r(layer - 1)].shape[2]
        if width != below:
            raise ImportRefusedError(
                f"{where}: LSTM layer {layer} {g.name(chain[layer])} reads {width} values "
                f"per step but the layer below gives {below}"
            )
    if head_w is None:
        head_w = np.eye(hidden, dtype=np.float32)  # no head: the output is the hidden state
    if head_w.shape[0] != hidden:
        raise ImportRefusedError(
            f"{where}: the head weight has shape {list(head_w.shape)} (expected [{hidden}, "
            "outputs] for the last layer's hidden size)"
        )
    outputs = head_w.shape[1]
    bias = np.zeros(outputs) if head_b is None else np.broadcast_to(head_b, (outputs,))
    input_width = weights[lstm_w(0)].shape[2]
    config = import_config(where, len(chain), hidden, input_width, outputs, emb, token_names, stats)
    logical = {EMBEDDING: emb} if emb is not None else {}
    logical.update(weights)
    logical[HEAD_WEIGHT] = head_w
    logical[HEAD_BIAS] = bias
    logical = {k: np.ascontiguousarray(v, np.float32) for k, v in logical.items()}
    ins, outs = _state_io(g, main_in, main_out)
    return Imported(config, logical, main_in, main_out, chain[0].input[0], layouts[0], ins, outs)


def import_config(
    where: str,
    layers: int,
    hidden: int,
    input_width: int,
    outputs: int,
    emb: np.ndarray | None,
    token_names: tuple[str, ...],
    stats: dict[str, tuple[float, ...]] | None,
) -> ModelConfig:
    """A token model (char-lm without characters) or a float-feature model (forecast,
    horizon 1, identity normalization unless `stats` gives the statistics)."""
    if emb is not None:
        vocab, embed = emb.shape
        if embed != input_width:
            raise ImportRefusedError(
                f"{where}: the embedding gives {embed} values per token but the first LSTM "
                f"reads {input_width}"
            )
        if outputs != vocab:
            raise ImportRefusedError(
                f"{where}: the head gives {outputs} outputs per step but the embedding has "
                f"{vocab} tokens (expected a next-token model: one logit per token)"
            )
        return ModelConfig(
            hidden_size=hidden,
            num_layers=layers,
            embed_size=embed,
            tokens=vocab,
            token_names=tuple(token_names),
        )
    stats = stats or {}
    return ModelConfig(
        task="forecast",
        hidden_size=hidden,
        num_layers=layers,
        features=tuple(stats.get("features", [f"x{i}" for i in range(input_width)])),
        targets=tuple(stats.get("targets", [f"y{i}" for i in range(outputs)])),
        horizon=1,
        feature_mean=tuple(stats.get("feature_mean", [0.0] * input_width)),
        feature_std=tuple(stats.get("feature_std", [1.0] * input_width)),
        target_mean=tuple(stats.get("target_mean", [0.0] * outputs)),
        target_std=tuple(stats.get("target_std", [1.0] * outputs)),
    )
