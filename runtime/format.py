"""The artifact format: graph input/output names, weight names, metadata keys, limits.

The lowest layer of all: every other module (the config, the task specs, the loader, the
exporters) reads these names from here, so a name is defined once. Bump FORMAT_VERSION
when the checkpoint/ONNX/C layout changes in a way old readers cannot follow.
"""

from __future__ import annotations

# The version of lstm-edge that writes artifacts (META_PRODUCER_VERSION, the ONNX
# producer_version); the toolchain reports the same one.
__version__ = "0.1.0"

# Bump when the checkpoint/ONNX/C layout changes in a way old readers cannot follow.
FORMAT_VERSION = 1

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
# Change targets only: forecast += features @ NORM_LAST_SELECT, the last observed value of
# each target (a one-hot [features, targets] matrix; the product is exact in float32).
NORM_LAST_SELECT = "norm.last.select"
# Forecast with a linear highway (config ar_lags > 0) only: the graph also reads and returns
# the history of each output's target, float32 [batch, 1 + ar_lags * outputs]: element 0
# is 1 once a step was taken (0 after a reset), then the normalized target values of the
# last ar_lags steps, oldest first, one row of `outputs` values per step. The highway adds
# a linear autoregression over that history and the current value to the head's output:
# HIGHWAY_SELECT picks each output's target from the normalized features (one-hot [features,
# outputs], exact), HIGHWAY_WEIGHT [outputs, 1, ar_lags + 1] (oldest first) and
# HIGHWAY_BIAS [outputs] are its coefficients in the head's standard units. All three
# follow from the config's ar_coef and statistics (`highway_tensors`), never quantized.
INPUT_HISTORY = "history"
OUTPUT_HISTORY = "history_out"
HIGHWAY_SELECT = "highway.select"
HIGHWAY_WEIGHT = "highway.weight"
HIGHWAY_BIAS = "highway.bias"
HIGHWAY_TENSORS = (HIGHWAY_SELECT, HIGHWAY_WEIGHT, HIGHWAY_BIAS)
MAX_AR_LAGS = 4096
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

QUANT_SCHEMES = ("none", "int8", "int8-dynamic", "fp16", "int8-full")
# SHA-256 (hex) of the artifact's content, not of its bytes (see runtime/digest.py for the
# recipe): the graph, every tensor and every other metadata key. Written by export and
# quantize; verified by every load. Files written before it have none and load as
# integrity "absent".
META_DIGEST = "lstm_edge.digest"
