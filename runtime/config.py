"""The model config and the artifact format: the lowest layer, read by every other one.

One frozen `ModelConfig` describes a model. It is written into the checkpoint
(`config.json`), into the ONNX metadata and into the C model data; readers take every
dimension from the artifact and refuse a format version they do not know.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from lstm_edge.runtime.errors import FormatVersionError, InvalidConfigError

# Bump when the checkpoint/ONNX/C layout changes in a way old readers cannot follow.
FORMAT_VERSION = 1

TASKS = ("char-lm",)

# Id 0 is the unknown character; U+FFFD never enters a vocabulary as a real character.
UNK_ID = 0
UNK_CHAR = "\ufffd"

# Upper bounds that keep a hostile config from asking for absurd allocations
# (row 14 of bad-inputs: dims that overflow).
MAX_VOCAB = 1 << 16
MAX_DIM = 1 << 14
MAX_LAYERS = 64

# ---- ONNX artifact format -------------------------------------------------------------
# Graph inputs/outputs. Batch and time are dynamic axes.
INPUT_TOKENS = "tokens"  # int64 [batch, time]
INPUT_H0 = "h0"  # float32 [layers, batch, hidden]
INPUT_C0 = "c0"  # float32 [layers, batch, hidden]
OUTPUT_LOGITS = "logits"  # float32 [batch, time, vocab]
OUTPUT_HN = "hn"  # float32 [layers, batch, hidden]
OUTPUT_CN = "cn"  # float32 [layers, batch, hidden]

# Logical weight names. In a float artifact each is an initializer of that name; in a
# quantized one it is the output of the node (DequantizeLinear, Cast) that rebuilds it
# from initializers named WEIGHT_NAME + QUANT_SUFFIX / SCALE_SUFFIX / ZERO_POINT_SUFFIX.
EMBEDDING = "embedding"  # [vocab, embed]
HEAD_WEIGHT = "head.weight"  # [hidden, vocab]  (transposed for MatMul)
HEAD_BIAS = "head.bias"  # [vocab]
QUANT_SUFFIX = ".q"
SCALE_SUFFIX = ".scale"
ZERO_POINT_SUFFIX = ".zero_point"


def lstm_w(layer: int) -> str:
    """ONNX LSTM input weights W of one layer: [1, 4*hidden, input], gates i, o, f, c."""
    return f"lstm.{layer}.W"


def lstm_r(layer: int) -> str:
    """ONNX LSTM recurrent weights R of one layer: [1, 4*hidden, hidden], gates i, o, f, c."""
    return f"lstm.{layer}.R"


def lstm_b(layer: int) -> str:
    """ONNX LSTM biases B of one layer: [1, 8*hidden] (Wb then Rb), gates i, o, f, c."""
    return f"lstm.{layer}.B"


# Metadata keys (ONNX metadata_props).
META_FORMAT_VERSION = "lstm_edge.format_version"
META_CONFIG = "lstm_edge.config"
META_QUANTIZATION = "lstm_edge.quantization"
META_SOURCE_SHA256 = "lstm_edge.source_sha256"
META_PRODUCER_VERSION = "lstm_edge.producer_version"

QUANT_SCHEMES = ("none", "int8", "int8-dynamic", "fp16")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model's shape; travels into every artifact."""

    vocab: tuple[str, ...]  # id -> character; vocab[UNK_ID] == UNK_CHAR
    embed_size: int
    hidden_size: int
    num_layers: int
    task: str = "char-lm"
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise FormatVersionError(
                f"format version {self.format_version!r} is not supported "
                f"(expected {FORMAT_VERSION})"
            )
        if self.task not in TASKS:
            raise InvalidConfigError(f"task {self.task!r} is unknown (expected one of {TASKS})")
        if not isinstance(self.vocab, tuple) or not all(isinstance(c, str) for c in self.vocab):
            raise InvalidConfigError("vocab must be a list of strings")
        if not 2 <= len(self.vocab) <= MAX_VOCAB:
            raise InvalidConfigError(
                f"vocab has {len(self.vocab)} entries (expected 2 to {MAX_VOCAB})"
            )
        if self.vocab[UNK_ID] != UNK_CHAR:
            raise InvalidConfigError(
                f"vocab[{UNK_ID}] is {self.vocab[UNK_ID]!r} (expected the unknown "
                f"character {UNK_CHAR!r})"
            )
        if len(set(self.vocab)) != len(self.vocab):
            raise InvalidConfigError("vocab has duplicate entries")
        for name, top in (
            ("embed_size", MAX_DIM),
            ("hidden_size", MAX_DIM),
            ("num_layers", MAX_LAYERS),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise InvalidConfigError(f"{name} is {value!r} (expected an integer 1 to {top})")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vocab"] = list(self.vocab)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> ModelConfig:
        if not isinstance(d, dict):
            raise InvalidConfigError(f"config must be a JSON object, found {type(d).__name__}")
        # Check the version first so an unknown version is named as such, not as a bad key.
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise FormatVersionError(
                f"format version {version!r} is not supported (expected {FORMAT_VERSION})"
            )
        known = {f.name for f in fields(cls)}
        missing = sorted(known - d.keys() - {"task"})
        extra = sorted(d.keys() - known)
        if missing or extra:
            raise InvalidConfigError(
                f"config keys do not match: missing {missing}, unexpected {extra}"
            )
        vocab = d["vocab"]
        if not isinstance(vocab, list):
            raise InvalidConfigError("vocab must be a list of strings")
        return cls(**{**d, "vocab": tuple(vocab)})

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InvalidConfigError(f"config is not valid JSON: {e}") from None
        return cls.from_dict(d)
