"""ModelConfig of the forecast task: round trip, and bad statistics refused with the column."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lstm_edge.runtime.config import (
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    ModelConfig,
    normalization_tensors,
)
from lstm_edge.runtime.errors import InvalidConfigError

BASE = {
    "format_version": 1,
    "task": "forecast",
    "hidden_size": 4,
    "num_layers": 1,
    "features": ["temp", "load"],
    "targets": ["temp"],
    "horizon": 2,
    "feature_mean": [20.0, 0.5],
    "feature_std": [4.0, 0.25],
    "target_mean": [20.0],
    "target_std": [4.0],
}


def _with(key: str, index: int, value) -> dict:
    d = json.loads(json.dumps(BASE))
    d[key][index] = value
    return d


def test_round_trip_writes_only_the_forecast_fields():
    config = ModelConfig.from_dict(BASE)
    assert config.to_dict() == BASE
    assert ModelConfig.from_json(config.to_json()) == config
    assert (config.input_size, config.output_size) == (2, 1)


def test_normalization_tensors_are_the_float32_statistics():
    norm = normalization_tensors(ModelConfig.from_dict(BASE))
    assert norm[NORM_IN_SCALE].tolist() == [0.25, 4.0]  # 1 / std, exact in binary
    assert norm[NORM_IN_SHIFT].tolist() == [-5.0, -2.0]  # -mean / std
    assert norm[NORM_OUT_SCALE].tolist() == [4.0] and norm[NORM_OUT_SHIFT].tolist() == [20.0]
    assert all(v.dtype == np.float32 for v in norm.values())


@pytest.mark.parametrize(
    ("key", "index", "value", "match"),
    [
        (
            "feature_std",
            1,
            0.0,
            r"feature_std of column 'load' is 0.0 \(expected a finite number > 0",
        ),
        ("target_mean", 0, float("nan"), r"target_mean of column 'temp' is nan"),
        # An integer too large for a float (JSON allows any number of digits): refused, not
        # an OverflowError traceback.
        ("feature_mean", 0, 10**400, r"feature_mean of column 'temp' is 1000"),
        # Finite in float64, but not in the float32 graph: 1 / 1e-40 and 1 / 1e308 overflow
        # and underflow, 1e39 and -1e39 overflow.
        ("feature_std", 1, 1e-40, r"feature column 'load' give norm.in.scale = inf"),
        ("feature_std", 0, 1e308, r"feature column 'temp' give norm.in.scale = 0.0"),
        ("target_std", 0, 1e39, r"target column 'temp' give norm.out.scale = inf"),
        ("target_mean", 0, -1e39, r"target column 'temp' give norm.out.shift = -inf"),
    ],
)
def test_bad_statistics_are_refused_naming_the_column(key, index, value, match):
    with pytest.raises(InvalidConfigError, match=match):
        ModelConfig.from_dict(_with(key, index, value))


def test_fields_of_the_other_task_are_refused():
    with pytest.raises(InvalidConfigError, match=r"unexpected \['embed_size'\]"):
        ModelConfig.from_dict({**BASE, "embed_size": 8})
    with pytest.raises(InvalidConfigError, match="belongs to task 'char-lm'"):
        ModelConfig(**{**ModelConfig.from_dict(BASE).__dict__, "embed_size": 8})
