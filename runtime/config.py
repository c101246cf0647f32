"""The model config and the artifact format: the lowest layer, read by every other one.

One frozen `ModelConfig` describes a model. It is written into the checkpoint
(`config.json`), into the ONNX metadata and into the C model data; readers take every
dimension from the artifact and refuse a format version they do not know.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from lstm_edge.runtime.errors import FormatVersionError, InvalidConfigError
from lstm_edge.runtime.files import parse_json

# The artifact format's names, importable from here as well as from `format` (the one
# place they are defined).
from lstm_edge.runtime.format import (  # noqa: F401
    EMBEDDING,
    FORMAT_VERSION,
    HEAD_BIAS,
    HEAD_WEIGHT,
    INPUT_C0,
    INPUT_FEATURES,
    INPUT_H0,
    INPUT_HISTORY,
    INPUT_TOKENS,
    MAX_DIM,
    MAX_HORIZON,
    MAX_LAYERS,
    MAX_VOCAB,
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
    OUTPUT_HISTORY,
    OUTPUT_HN,
    OUTPUT_LOGITS,
    QUANT_SCHEMES,
    QUANT_SUFFIX,
    SCALE_SUFFIX,
    UNK_CHAR,
    UNK_ID,
    ZERO_POINT_SUFFIX,
    lstm_b,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.tasks import DEFAULT_TASK, TASKS, TaskSpec, task_spec
from lstm_edge.runtime.tasks.base import check_int
from lstm_edge.runtime.tasks.forecast import normalization_tensors  # noqa: F401

COMMON_FIELDS = ("format_version", "task", "hidden_size", "num_layers")


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
    task: str = DEFAULT_TASK
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
    # classify (with features, feature_mean, feature_std above)
    classes: tuple[str, ...] = ()  # class names, in logit order
    # forecast: "level" (the head predicts the targets in standard units) or "change" (it
    # predicts target[t + horizon] - target[t], scaled by the training split's change_mean
    # and change_std, and the graph adds the last value back)
    target_kind: str = "level"
    change_mean: tuple[float, ...] = ()
    change_std: tuple[float, ...] = ()
    # forecast: "last" (outputs are the targets at t + horizon) or "each" (the targets at
    # each step ahead t + 1 .. t + horizon, step-major; change statistics one per output)
    horizon_outputs: str = "last"
    # forecast: the linear highway (`runtime.tasks.forecast`, INPUT_HISTORY). ar_lags: how
    # many past changes of each output's target it reads (0: none); ar_coef: per output,
    # an intercept then ar_lags coefficients of target[t - j] - target[t - j - 1] (j = 0 ..
    # ar_lags - 1), in raw units: the forecast of target[t + ahead] - target[t] that a
    # least-squares autoregression on the training split gave.
    ar_lags: int = 0
    ar_coef: tuple[float, ...] = ()
    format_version: int = FORMAT_VERSION
    # char-lm token models (brought from elsewhere): ids without characters. `tokens` is
    # the vocabulary size when `vocab` is empty; `token_names` optional display names.
    tokens: int = 0
    token_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise FormatVersionError(
                f"format version {self.format_version!r} is not supported "
                f"(expected {FORMAT_VERSION})"
            )
        spec = task_spec(self.task)
        check_int("hidden_size", self.hidden_size, MAX_DIM)
        check_int("num_layers", self.num_layers, MAX_LAYERS)
        defaults = {f.name: f.default for f in fields(self)}
        for other in TASKS.values():
            for name in other.fields:
                if name not in spec.fields and getattr(self, name) != defaults[name]:
                    raise InvalidConfigError(
                        f"{name} is set, but it belongs to task {other.name!r} (this config is "
                        f"task {self.task!r})"
                    )
        spec.check_config(self)

    @property
    def spec(self) -> TaskSpec:
        """The task's spec: what the graph reads and returns, its stages, its input checks."""
        return TASKS[self.task].resolve(self)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) or self.tokens

    @property
    def input_size(self) -> int:
        """Width of the first LSTM layer's input: embed_size or the number of features."""
        return self.spec.input_size(self)

    @property
    def output_size(self) -> int:
        """Width of one step's output: the vocabulary (logits) or the number of targets."""
        return self.spec.output_size(self)

    @property
    def input_name(self) -> str:
        return self.spec.input_name

    @property
    def output_name(self) -> str:
        return self.spec.output_name

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        optional = self.spec.optional_fields
        for name in COMMON_FIELDS + self.spec.fields:
            value = getattr(self, name)
            if name in optional and value == optional[name]:
                continue  # configs written before the field existed stay byte-identical
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
        task = d.get("task", DEFAULT_TASK)  # configs written before forecast existed
        spec = task_spec(task)
        known = set(COMMON_FIELDS + spec.fields)
        missing = sorted(known - d.keys() - {"task"} - spec.optional_fields.keys())
        extra = sorted(d.keys() - known)
        if missing or extra:
            raise InvalidConfigError(
                f"config keys do not match task {task!r}: missing {missing}, unexpected {extra}"
            )
        values = dict(d)
        for name in spec.list_fields:
            if name in values:
                if not isinstance(values[name], list):
                    raise InvalidConfigError(f"{name} must be a list")
                values[name] = tuple(values[name])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(parse_json(text, "config", InvalidConfigError))
