"""The model config and the artifact format: the lowest layer, read by every other one.

One frozen `ModelConfig` describes a model. It is written into the checkpoint
(`config.json`), into the ONNX metadata and into the C model data; readers take every
dimension from the artifact and refuse a format version they do not know.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from lstm_edge.runtime.errors import FormatVersionError, InvalidConfigError

# Bump when the checkpoint/ONNX/C layout changes in a way old readers cannot follow.
FORMAT_VERSION = 1

# char-lm: token ids in, logits over a vocabulary out (predictive typing).
# forecast: numeric sensor values in, the next value(s) of target columns out.
TASKS = ("char-lm", "forecast")

# The config keys each task uses besides the common ones; a config holds only its task's.
TASK_FIELDS = {
    "char-lm": ("vocab", "embed_size"),
    "forecast": (
        "features",
        "targets",
        "horizon",
        "feature_mean",
        "feature_std",
        "target_mean",
        "target_std",
    ),
}
COMMON_FIELDS = ("format_version", "task", "hidden_size", "num_layers")
# Fields held as tuples (JSON lists).
LIST_FIELDS = (
    "vocab",
    "features",
    "targets",
    "feature_mean",
    "feature_std",
    "target_mean",
    "target_std",
)

# Id 0 is the unknown character; U+FFFD never enters a vocabulary as a real character.
UNK_ID = 0
UNK_CHAR = "\ufffd"

# Upper bounds that keep a hostile config from asking for absurd allocations
# (row 14 of bad-inputs: dims that overflow).
MAX_VOCAB = 1 << 16
MAX_DIM = 1 << 14
MAX_LAYERS = 64
MAX_HORIZON = 1 << 20

# ---- ONNX artifact format -------------------------------------------------------------
# Graph inputs/outputs. Batch and time are dynamic axes.
INPUT_TOKENS = "tokens"  # int64 [batch, time]
INPUT_H0 = "h0"  # float32 [layers, batch, hidden]
INPUT_C0 = "c0"  # float32 [layers, batch, hidden]
OUTPUT_LOGITS = "logits"  # float32 [batch, time, vocab]
OUTPUT_HN = "hn"  # float32 [layers, batch, hidden]
OUTPUT_CN = "cn"  # float32 [layers, batch, hidden]
# Forecast models take raw sensor values and return raw predictions; the normalization
# with training-split statistics is part of the graph (see NORM_* below).
INPUT_FEATURES = "features"  # float32 [batch, time, features]
OUTPUT_FORECAST = "forecast"  # float32 [batch, time, targets]: targets at t + horizon

# Logical weight names. In a float artifact each is an initializer of that name; in a
# quantized one it is the output of the node (DequantizeLinear, Cast) that rebuilds it
# from initializers named WEIGHT_NAME + QUANT_SUFFIX / SCALE_SUFFIX / ZERO_POINT_SUFFIX.
EMBEDDING = "embedding"  # [vocab, embed]
HEAD_WEIGHT = "head.weight"  # [hidden, vocab]  (transposed for MatMul)
HEAD_BIAS = "head.bias"  # [vocab]
# Forecast only, float32, never quantized: x_norm = x * NORM_IN_SCALE + NORM_IN_SHIFT before
# the first LSTM layer; forecast = head_out * NORM_OUT_SCALE + NORM_OUT_SHIFT after the head.
# Their values follow from the config (`normalization_tensors`), which readers check.
NORM_IN_SCALE = "norm.in.scale"  # [features] 1 / std
NORM_IN_SHIFT = "norm.in.shift"  # [features] -mean / std
NORM_OUT_SCALE = "norm.out.scale"  # [targets] std
NORM_OUT_SHIFT = "norm.out.shift"  # [targets] mean
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
# Forecast only, optional: JSON {"residual_scale": [per target], "threshold": float, ...}
# for anomaly scores (score = |forecast - actual| / residual_scale), from the training split.
META_CALIBRATION = "lstm_edge.calibration"

QUANT_SCHEMES = ("none", "int8", "int8-dynamic", "fp16")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Everything needed to rebuild the model's shape; travels into every artifact.

    Common: task, hidden_size, num_layers. char-lm adds vocab and embed_size; forecast adds
    the feature and target column names, the horizon and the training-split statistics
    that normalize inputs and denormalize outputs. Fields of the other task keep their
    empty defaults and are left out of `to_dict`.
    """

    hidden_size: int
    num_layers: int
    task: str = "char-lm"
    # char-lm
    vocab: tuple[str, ...] = ()  # id -> character; vocab[UNK_ID] == UNK_CHAR
    embed_size: int = 0
    # forecast
    features: tuple[str, ...] = ()  # input column names, in input order
    targets: tuple[str, ...] = ()  # predicted column names, in output order
    horizon: int = 1  # the output at step t predicts the targets at step t + horizon
    feature_mean: tuple[float, ...] = ()
    feature_std: tuple[float, ...] = ()
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise FormatVersionError(
                f"format version {self.format_version!r} is not supported "
                f"(expected {FORMAT_VERSION})"
            )
        if self.task not in TASKS:
            raise InvalidConfigError(f"task {self.task!r} is unknown (expected one of {TASKS})")
        _check_int("hidden_size", self.hidden_size, MAX_DIM)
        _check_int("num_layers", self.num_layers, MAX_LAYERS)
        defaults = {f.name: f.default for f in fields(self)}
        for other, names in TASK_FIELDS.items():
            if other == self.task:
                continue
            for name in names:
                if name not in TASK_FIELDS[self.task] and getattr(self, name) != defaults[name]:
                    raise InvalidConfigError(
                        f"{name} is set, but it belongs to task {other!r} (this config is "
                        f"task {self.task!r})"
                    )
        if self.task == "char-lm":
            self._check_char_lm()
        else:
            self._check_forecast()

    def _check_char_lm(self) -> None:
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
        _check_int("embed_size", self.embed_size, MAX_DIM)

    def _check_forecast(self) -> None:
        for kind in ("features", "targets"):
            names = getattr(self, kind)
            if not isinstance(names, tuple) or not all(isinstance(n, str) and n for n in names):
                raise InvalidConfigError(f"{kind} must be a list of non-empty column names")
            if not 1 <= len(names) <= MAX_DIM:
                raise InvalidConfigError(
                    f"{kind} has {len(names)} columns (expected 1 to {MAX_DIM})"
                )
            if len(set(names)) != len(names):
                raise InvalidConfigError(f"{kind} has duplicate column names")
            for stat in ("mean", "std"):
                name = f"{kind[:-1]}_{stat}"
                values = getattr(self, name)
                if not isinstance(values, tuple) or len(values) != len(names):
                    raise InvalidConfigError(
                        f"{name} has {len(values) if isinstance(values, tuple) else '?'} "
                        f"values (expected one per {kind[:-1]}: {len(names)})"
                    )
                for col, v in zip(names, values, strict=True):
                    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
                    if not ok or not _finite(v) or (stat == "std" and not v > 0):
                        expected = "a finite number > 0" if stat == "std" else "a finite number"
                        raise InvalidConfigError(
                            f"{name} of column {col!r} is {v!r} (expected {expected})"
                        )
        _check_int("horizon", self.horizon, MAX_HORIZON)
        # The graph computes in float32: statistics finite as float64 may still overflow
        # there (std 1e39) or give a scale of 0 or Inf (1 / 1e-40), which would silently
        # zero a feature or blow up every forecast.
        with np.errstate(over="ignore", divide="ignore"):  # the overflow is reported below
            norms = normalization_tensors(self)
        for name, values in norms.items():
            is_scale = name in (NORM_IN_SCALE, NORM_OUT_SCALE)
            bad = np.flatnonzero(~np.isfinite(values) | ((values == 0) & is_scale))
            if bad.size:
                kind = "features" if name in (NORM_IN_SCALE, NORM_IN_SHIFT) else "targets"
                column = getattr(self, kind)[int(bad[0])]
                raise InvalidConfigError(
                    f"the statistics of {kind[:-1]} column {column!r} give {name} = "
                    f"{float(values[bad[0]])!r} in float32 (expected a finite, nonzero "
                    "scale and a finite shift; rescale the column's units)"
                )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def input_size(self) -> int:
        """Width of the first LSTM layer's input: embed_size or the number of features."""
        return self.embed_size if self.task == "char-lm" else len(self.features)

    @property
    def output_size(self) -> int:
        """Width of one step's output: the vocabulary (logits) or the number of targets."""
        return self.vocab_size if self.task == "char-lm" else len(self.targets)

    @property
    def input_name(self) -> str:
        return INPUT_TOKENS if self.task == "char-lm" else INPUT_FEATURES

    @property
    def output_name(self) -> str:
        return OUTPUT_LOGITS if self.task == "char-lm" else OUTPUT_FORECAST

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for name in COMMON_FIELDS + TASK_FIELDS[self.task]:
            value = getattr(self, name)
            d[name] = list(value) if isinstance(value, tuple) else value
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
        task = d.get("task", "char-lm")  # configs written before forecast existed
        if task not in TASKS:
            raise InvalidConfigError(f"task {task!r} is unknown (expected one of {TASKS})")
        known = set(COMMON_FIELDS + TASK_FIELDS[task])
        missing = sorted(known - d.keys() - {"task"})
        extra = sorted(d.keys() - known)
        if missing or extra:
            raise InvalidConfigError(
                f"config keys do not match task {task!r}: missing {missing}, unexpected {extra}"
            )
        values = dict(d)
        for name in LIST_FIELDS:
            if name in values:
                if not isinstance(values[name], list):
                    raise InvalidConfigError(f"{name} must be a list")
                values[name] = tuple(values[name])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InvalidConfigError(f"config is not valid JSON: {e}") from None
        return cls.from_dict(d)


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float (JSON allows any digits)
        return False


def _check_int(name: str, value: Any, top: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise InvalidConfigError(f"{name} is {value!r} (expected an integer 1 to {top})")


def normalization_tensors(config: ModelConfig) -> dict[str, np.ndarray]:
    """The forecast graph's NORM_* tensors (float32), computed from the config in one place.

    The exporter writes exactly these; readers compare an artifact's tensors with them, so
    the graph, the config and every backend normalize identically.
    """
    if config.task != "forecast":
        return {}
    f_mean = np.asarray(config.feature_mean, np.float64)
    f_std = np.asarray(config.feature_std, np.float64)
    return {
        NORM_IN_SCALE: (1.0 / f_std).astype(np.float32),
        NORM_IN_SHIFT: (-f_mean / f_std).astype(np.float32),
        NORM_OUT_SCALE: np.asarray(config.target_std, np.float32),
        NORM_OUT_SHIFT: np.asarray(config.target_mean, np.float32),
    }
