"""forecast: raw sensor values in, raw predictions of target columns `horizon` steps later out.

The normalization with the training split's statistics is part of the graph: the input
stage is x * NORM_IN_SCALE + NORM_IN_SHIFT (Mul, Add), the output stage adds the head
bias and maps standard units back to raw values (* NORM_OUT_SCALE + NORM_OUT_SHIFT). With
change targets (`target_kind` "change") the head predicts target[t + horizon] - target[t]
in the training split's standard units of that change, and the output stage adds the last
observed value back (+ features @ NORM_LAST_SELECT), so the artifact still takes raw values
and returns raw forecasts. The NORM_* tensors follow from the config
(`normalization_tensors`).
"""

from __future__ import annotations

import functools
import math
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_edge.runtime.backends.c_text import count, float_lines, names_array
from lstm_edge.runtime.errors import InputError, InvalidArtifactError, InvalidConfigError
from lstm_edge.runtime.format import (
    HEAD_BIAS,
    HIGHWAY_BIAS,
    HIGHWAY_SELECT,
    HIGHWAY_WEIGHT,
    INPUT_FEATURES,
    INPUT_HISTORY,
    MAX_AR_LAGS,
    MAX_DIM,
    MAX_HORIZON,
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_LAST_SELECT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    OUTPUT_FORECAST,
    OUTPUT_HISTORY,
)
from lstm_edge.runtime.tasks.base import (
    HEAD_MATMUL_OUT,
    X_STAGE_OUT,
    StageNode,
    TaskSpec,
    check_int,
    finite,
)

if TYPE_CHECKING:
    from lstm_edge.runtime.config import ModelConfig


class Forecast(TaskSpec):
    name = "forecast"
    fields = (
        "features",
        "targets",
        "horizon",
        "feature_mean",
        "feature_std",
        "target_mean",
        "target_std",
        "target_kind",
        "change_mean",
        "change_std",
        "horizon_outputs",
        "ar_lags",
        "ar_coef",
    )
    optional_fields = MappingProxyType(
        {
            "target_kind": "level",
            "change_mean": (),
            "change_std": (),
            "horizon_outputs": "last",
            "ar_lags": 0,
            "ar_coef": (),
        }
    )
    list_fields = (
        "features",
        "targets",
        "feature_mean",
        "feature_std",
        "target_mean",
        "target_std",
        "change_mean",
        "change_std",
        "ar_coef",
    )
    input_name = INPUT_FEATURES  # float32 [batch, time, features]
    # float32 [batch, time, outputs]: the targets at t + horizon, or with horizon_outputs
    # "each" the targets at t + 1, ..., t + horizon (step-major, `output_names`)
    output_name = OUTPUT_FORECAST
    input_dtype = np.dtype(np.float32)
    c_input_dtype = np.dtype(np.float32)
    c_enum = "LSTM_EDGE_TASK_FORECAST"
    c_step_function = "lstm_edge_forecast_step"
    c_output_noun = "targets"
    has_calibration = True
    error_unit = "forecast error (in target std units)"
    error_symbol = "target std"

    def max_error_failure(self, value: float, bound: float) -> str:
        return f"max error {value:.3g} target std > {bound:g}"

    def check_config(self, config: ModelConfig) -> None:
        for kind in ("features", "targets"):
            names = getattr(config, kind)
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
                values = getattr(config, name)
                if not isinstance(values, tuple) or len(values) != len(names):
                    raise InvalidConfigError(
                        f"{name} has {len(values) if isinstance(values, tuple) else '?'} "
                        f"values (expected one per {kind[:-1]}: {len(names)})"
                    )
                for col, v in zip(names, values, strict=True):
                    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
                    if not ok or not finite(v) or (stat == "std" and not v > 0):
                        expected = "a finite number > 0" if stat == "std" else "a finite number"
                        raise InvalidConfigError(
                            f"{name} of column {col!r} is {v!r} (expected {expected})"
                        )
        check_int("horizon", config.horizon, MAX_HORIZON)
        if config.horizon_outputs not in HORIZON_OUTPUTS:
            raise InvalidConfigError(
                f"horizon_outputs is {config.horizon_outputs!r} (expected one of "
                f"{HORIZON_OUTPUTS}: the targets at t + horizon only, or at each step ahead)"
            )
        if len(config.targets) * steps_ahead(config) > MAX_DIM:
            raise InvalidConfigError(
                f"{len(config.targets)} targets x {steps_ahead(config)} steps ahead give "
                f"{len(config.targets) * steps_ahead(config)} outputs (expected at most {MAX_DIM})"
            )
        _check_target_kind(config)
        _check_highway(config)
        # The graph computes in float32: statistics finite as float64 may still overflow
        # there (std 1e39) or give a scale of 0 or Inf (1 / 1e-40), which would silently
        # zero a feature or blow up every forecast.
        with np.errstate(over="ignore", divide="ignore"):  # the overflow is reported below
            norms = normalization_tensors(config)
        for name, values in norms.items():
            if name in (NORM_LAST_SELECT, HIGHWAY_SELECT):
                continue  # ones and zeros
            if name in (HIGHWAY_WEIGHT, HIGHWAY_BIAS):
                if not np.isfinite(values).all():
                    raise InvalidConfigError(
                        f"ar_coef with the training statistics gives {name} values that are "
                        "not finite in float32 (expected coefficients of a moderate size)"
                    )
                continue
            is_scale = name in (NORM_IN_SCALE, NORM_OUT_SCALE)
            bad = np.flatnonzero(~np.isfinite(values) | ((values == 0) & is_scale))
            if bad.size:
                kind = "features" if name in (NORM_IN_SCALE, NORM_IN_SHIFT) else "targets"
                names = getattr(config, kind)
                column = names[int(bad[0]) % len(names)]
                raise InvalidConfigError(
                    f"the statistics of {kind[:-1]} column {column!r} give {name} = "
                    f"{float(values[bad[0]])!r} in float32 (expected a finite, nonzero "
                    "scale and a finite shift; rescale the column's units)"
                )

    def input_size(self, config: ModelConfig) -> int:
        return len(config.features)

    def output_size(self, config: ModelConfig) -> int:
        return len(config.targets) * steps_ahead(config)

    def graph_input_dims(self, config: ModelConfig) -> tuple[int | None, ...]:
        return (None, None, len(config.features))

    def config_tensors(self, config: ModelConfig) -> dict[str, np.ndarray]:
        return normalization_tensors(config)

    def history_size(self, config: ModelConfig) -> int:
        return 1 + config.ar_lags * config.output_size if config.ar_lags else 0

    def stage_constants(self, config: ModelConfig) -> dict[str, np.ndarray]:
        return highway_constants(config) if config.ar_lags else {}

    def input_stage(self, config: ModelConfig) -> list[StageNode]:
        # Raw sensor values -> standard units with the training-split statistics.
        return [
            StageNode("Mul", (INPUT_FEATURES, NORM_IN_SCALE), ("x_scaled",), "norm_in_mul"),
            StageNode("Add", ("x_scaled", NORM_IN_SHIFT), (X_STAGE_OUT,), "norm_in_add"),
        ]

    def output_stage(self, config: ModelConfig) -> list[StageNode]:
        # Head output is in standard units; denormalize to raw target values (level) or to
        # the raw change, to which the last observed value of each target is added.
        change = config.target_kind == "change"
        y = "y_change" if change else OUTPUT_FORECAST
        nodes = [StageNode("Add", (HEAD_MATMUL_OUT, HEAD_BIAS), ("head_out",), "head_bias")]
        head = "head_out"
        if config.ar_lags:
            nodes += highway_stage(config)
            nodes.append(StageNode("Add", (head, HIGHWAY_OUT), ("head_hw",), "add_highway"))
            head = "head_hw"
        nodes += [
            StageNode("Mul", (head, NORM_OUT_SCALE), ("y_scaled",), "norm_out_mul"),
            StageNode("Add", ("y_scaled", NORM_OUT_SHIFT), (y,), "norm_out_add"),
        ]
        if change:
            nodes += [
                StageNode("MatMul", (INPUT_FEATURES, NORM_LAST_SELECT), ("y_last",), "last_value"),
                StageNode("Add", (y, "y_last"), (OUTPUT_FORECAST,), "add_last_value"),
            ]
        return nodes

    def apply_input_stage(self, weights: dict[str, np.ndarray], inputs: np.ndarray) -> np.ndarray:
        # Mul then Add in float32, exactly the graph's two ops (no fused x*a+b, which
        # would round once instead of twice).
        return inputs * weights[NORM_IN_SCALE] + weights[NORM_IN_SHIFT]  # [batch, T, F]

    def apply_output_stage(
        self,
        weights: dict[str, np.ndarray],
        y: np.ndarray,
        inputs: np.ndarray,
        highway: np.ndarray | None = None,
    ) -> np.ndarray:
        y = y + weights[HEAD_BIAS]
        if highway is not None:  # the linear highway (`apply_highway`), in standard units
            y = y + highway
        y = y * weights[NORM_OUT_SCALE] + weights[NORM_OUT_SHIFT]  # standard -> raw
        if NORM_LAST_SELECT in weights:  # change targets: + the last observed value
            y = y + inputs @ weights[NORM_LAST_SELECT]
        return y

    def check_inputs(self, config: ModelConfig, values: Any) -> tuple[np.ndarray, bool]:
        arr = np.asarray(values)
        if arr.dtype.kind not in "iuf":
            raise InputError(
                f"features have dtype {arr.dtype} (expected real numbers, e.g. float32)"
            )
        n = len(config.features)
        if arr.ndim not in (2, 3) or arr.shape[-1] != n or arr.size == 0:
            raise InputError(
                f"features have shape {list(arr.shape)} (expected [batch, {n}] or "
                f"[batch, time, {n}], non-empty; features {list(config.features)})"
            )
        single = arr.ndim == 2
        # A float64 value beyond float32's range becomes Inf in the cast. The graph's first
        # stage is x * NORM_IN_SCALE + NORM_IN_SHIFT in float32: a finite value far outside
        # the training range (3e38 with a std below 1) overflows there, and the backends
        # would disagree (NaN on numpy and C, finite on onnxruntime). One finiteness test of
        # the normalized values covers both; only a failure looks closer.
        scale, shift = _input_normalization(config)
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.ascontiguousarray(arr[:, None] if single else arr, dtype=np.float32)
            z = x * scale + shift
        if not np.isfinite(z).all():
            _refuse_features(config, arr, x, z, single)
        return x, single

    def synthetic_inputs(self, config: ModelConfig, steps: int, seed: int = 0) -> np.ndarray:
        """Raw input rows [steps, F] float32: a slow sine per column plus noise, scaled by
        the training statistics, so the model sees values of the scale and range it was
        trained on (a unit-scale stream would hide a wrong shift)."""
        rng = np.random.default_rng(seed)
        t = np.arange(steps)[:, None]
        period = rng.uniform(40.0, 160.0, size=len(config.features))
        phase = rng.uniform(0.0, 2 * np.pi, size=len(config.features))
        z = np.sin(2 * np.pi * t / period + phase) + 0.3 * rng.standard_normal((steps, phase.size))
        mean = np.asarray(config.feature_mean, np.float64)
        std = np.asarray(config.feature_std, np.float64)
        return (mean + std * z).astype(np.float32)

    def error_scale(self, config: ModelConfig) -> np.ndarray | float:
        """A forecast is in raw units, whose float32 rounding error grows with the target's
        scale (a target of std 1000 carries ~1e-4 absolute rounding where one of std 0.01
        carries ~1e-9), so one absolute tolerance would be too loose for one column and
        impossible for another. Divided by target_std, errors are in the standard units
        the network computes in, where a tolerance means the same for every target and for
        char-lm logits."""
        return np.asarray(config.target_std * steps_ahead(config), np.float64)

    def check_calibration(self, calibration: object, config: ModelConfig, where: str) -> dict:
        """META_CALIBRATION (anomaly scores, score = |forecast - actual| / residual_scale):
        residual_scale: one finite float > 0 per target; threshold: a finite float > 0; the
        optional descriptive keys split and statistic are strings. Returns the dict."""
        if not isinstance(calibration, dict):
            raise InvalidArtifactError(
                f"{where}: calibration is {type(calibration).__name__} (expected a JSON object)"
            )
        for key in ("residual_scale", "threshold"):
            if key not in calibration:
                raise InvalidArtifactError(f"{where}: calibration has no key {key!r}")
        scales = calibration["residual_scale"]
        n = len(config.targets)
        if not isinstance(scales, list) or len(scales) != n:
            found = f"{len(scales)} values" if isinstance(scales, list) else repr(scales)
            raise InvalidArtifactError(
                f"{where}: calibration key 'residual_scale' is {found} (expected a list of "
                f"{n} numbers > 0, one per target {list(config.targets)})"
            )
        for i, v in enumerate(scales):
            if not _positive_number(v):
                raise InvalidArtifactError(
                    f"{where}: calibration key 'residual_scale'[{i}] (target "
                    f"{config.targets[i]!r}) is {v!r} (expected a finite number > 0)"
                )
        if not _positive_number(calibration["threshold"]):
            raise InvalidArtifactError(
                f"{where}: calibration key 'threshold' is {calibration['threshold']!r} "
                f"(expected a finite number > 0)"
            )
        for key in ("split", "statistic"):
            if key in calibration and not isinstance(calibration[key], str):
                raise InvalidArtifactError(
                    f"{where}: calibration key {key!r} is {calibration[key]!r} (expected text)"
                )
        return calibration

    # ---- the C library ----------------------------------------------------------------

    def c_stage_fields(self, arrays: Any, artifact: Any) -> str:
        """The input stage's normalization and the output stage's denormalization (float32
        always)."""
        cfg = artifact.config
        f, t = f"features {cfg.input_size}", f"targets {cfg.output_size}"
        norm = {
            key: arrays.add(ident, f"{key}: float32 [{dim}], {what}", artifact.weights[key])
            for key, ident, dim, what in (
                (NORM_IN_SCALE, "in_scale", f, "1 / std"),
                (NORM_IN_SHIFT, "in_shift", f, "-mean / std"),
                (NORM_OUT_SCALE, "out_scale", t, "std"),
                (NORM_OUT_SHIFT, "out_shift", t, "mean"),
            )
        }

        def affine(scale: str, shift: str) -> str:
            return f"{{ {scale}, {shift}, {count(scale)}, {count(shift)} }}"

        fields = (
            f".input.normalize = {affine(norm[NORM_IN_SCALE], norm[NORM_IN_SHIFT])},\n"
            f"    .output.denormalize = {affine(norm[NORM_OUT_SCALE], norm[NORM_OUT_SHIFT])}"
        )
        if cfg.target_kind == "change":
            # change targets: out[k] += x[last_index[k]] (a file-scope compound literal)
            index = ", ".join(str(int(i)) for i in last_value_index(cfg))
            fields += (
                f",\n    .output.last_index = (const int32_t[]){{ {index} }},\n"
                f"    .output.n_last_index = {cfg.output_size}"
            )
        if cfg.ar_lags:
            fields += ",\n    .output.highway = " + _c_highway(arrays, artifact)
        return fields

    def c_header_macros(self, artifact: Any, name: str) -> str:

        upper, cfg = name.upper(), artifact.config
        macros = f"""#define {upper}_HORIZON {cfg.horizon}
/* Feature columns in input order (x[k] of a step is the raw value of column k) and target
 * columns in output order (output k of step t predicts target k at step t + horizon). */
extern const char *const {name}_feature_names[{upper}_INPUT_SIZE];
extern const char *const {name}_target_names[{upper}_OUTPUT_SIZE];"""
        if cfg.horizon_outputs == "each":
            macros += f"""
/* Each step ahead: output s * {len(cfg.targets)} + k predicts target k at step t + s + 1
 * (s = 0 .. {upper}_HORIZON - 1); {name}_target_names says which, e.g. "{cfg.targets[0]}+1". */
#define {upper}_TARGETS {len(cfg.targets)}"""
        if artifact.calibration is not None:
            threshold = float_lines(np.array([artifact.calibration["threshold"]])).strip()
            macros += f"""
/* Anomaly calibration from the artifact (training split): pass these to
 * lstm_edge_anomaly_score and flag a row whose score is above the threshold. */
#define {upper}_ANOMALY_THRESHOLD {threshold}
extern const float {name}_residual_scale[{_scale_size(cfg, upper)}];"""
        return macros

    def c_data(self, artifact: Any, name: str) -> str:

        upper, cfg = name.upper(), artifact.config
        data = (
            names_array(
                f"{name}_feature_names", f"{upper}_INPUT_SIZE", "input columns", cfg.features
            )
            + "\n"
            + names_array(
                f"{name}_target_names",
                f"{upper}_OUTPUT_SIZE",
                "predicted columns",
                output_names(cfg),
            )
        )
        if artifact.calibration is not None:
            scale = np.asarray(artifact.calibration["residual_scale"], np.float32)
            data += (
                f"\n/* residual scale per target, in target units */\n"
                f"const float {name}_residual_scale[{_scale_size(cfg, upper)}] = {{\n"
                f"{float_lines(scale)}\n}};\n"
            )
        return data

    def c_check_example(
        self, config: ModelConfig, inputs: np.ndarray, steps: int, source: str, where: str,
        error: type[Exception],
    ) -> None:  # fmt: skip
        if inputs.shape != (steps, config.input_size):
            raise error(
                f"the example stream ({source}) has shape {list(inputs.shape)} (expected "
                f"[{steps}, {config.input_size}]: steps x features of {where})"
            )
        if not np.isfinite(inputs).all():
            row = int(np.argwhere(~np.isfinite(inputs))[0][0])
            raise error(
                f"the example stream ({source}) holds NaN/Inf at row {row} (expected finite "
                "sensor values; fill missing values in the data)"
            )

    def c_example_macros(self, name: str) -> str:
        upper = name.upper()
        return f"""#define EXAMPLE_FORECAST 1
#define EXAMPLE_HORIZON {upper}_HORIZON
#define EXAMPLE_TARGET_NAMES {name}_target_names"""

    def c_example_stream(self, name: str, inputs: np.ndarray) -> str:

        # One braced row per step (no brace elision: -Wmissing-braces is in -Wall).
        rows = ",\n".join("    {" + float_lines(row).strip() + "}" for row in inputs)
        return f"""/* Raw feature rows, columns in the order of {name}_feature_names. */
static const float example_stream[EXAMPLE_STREAM_LEN][EXAMPLE_INPUT_SIZE] = {{
{rows}
}};"""


def _c_highway(arrays: Any, artifact: Any) -> str:
    """The lstm_edge_highway initializer: bit-exact float32 copies of HIGHWAY_WEIGHT
    ([O, 1, L + 1] -> [O][L + 1], oldest first) and HIGHWAY_BIAS, and per output the
    feature column of HIGHWAY_SELECT's one (one-hot: the reader checked the tensor against
    the config bit for bit)."""
    cfg, w = artifact.config, artifact.weights
    lags, n = cfg.ar_lags, cfg.output_size
    weight = arrays.add(
        "hw_weight",
        f"{HIGHWAY_WEIGHT}: float32 [outputs {n}][lags + 1 = {lags + 1}], oldest first",
        np.ascontiguousarray(w[HIGHWAY_WEIGHT][:, 0, :], np.float32),
    )
    bias = arrays.add("hw_bias", f"{HIGHWAY_BIAS}: float32 [outputs {n}]", w[HIGHWAY_BIAS])
    select = ", ".join(str(int(i)) for i in np.argmax(w[HIGHWAY_SELECT], axis=0))
    return (
        f"{{ {lags}, {n}, (const int32_t[]){{ {select} }}, {weight}, {bias}, {n}, "
        f"{count(weight)}, {count(bias)} }}"
    )


def _scale_size(cfg: ModelConfig, upper: str) -> str:
    """The residual scales are one per target: of the t + horizon forecast, which a model
    of each step ahead outputs last (at forecast + (HORIZON - 1) * TARGETS)."""
    if cfg.horizon_outputs == "each":
        return f"{upper}_TARGETS /* of outputs (HORIZON - 1) * TARGETS on: t + HORIZON */"
    return f"{upper}_OUTPUT_SIZE"


def _positive_number(v: object) -> bool:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    return ok and math.isfinite(v) and v > 0


def _refuse_features(
    config: ModelConfig, arr: np.ndarray, x: np.ndarray, z: np.ndarray, single: bool
) -> None:
    """Raise InputError for the first input that is not finite in float32 or, if all are,
    the first whose normalized value overflows; positions as the caller gave them."""

    def first(bad: np.ndarray) -> list[int]:
        pos = [int(i) for i in np.argwhere(bad)[0]]
        return [pos[0], pos[2]] if single else pos

    if not np.isfinite(x).all():
        pos = first(~np.isfinite(x))
        raise InputError(
            f"feature value {arr[tuple(pos)]!r} at position {pos} (column "
            f"{config.features[pos[-1]]!r}) is not finite after conversion to float32 "
            f"(expected finite numbers; fill missing sensor values before stepping)"
        )
    pos = first(~np.isfinite(z))
    k = pos[-1]
    raise InputError(
        f"feature value {arr[tuple(pos)]!r} at position {pos} (column "
        f"{config.features[k]!r}) overflows float32 once normalized by the training "
        f"statistics (mean {config.feature_mean[k]!r}, std {config.feature_std[k]!r}; "
        f"expected values that stay finite as (value - mean) / std)"
    )


@functools.lru_cache(maxsize=16)
def _input_normalization(config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    t = normalization_tensors(config)
    return t[NORM_IN_SCALE], t[NORM_IN_SHIFT]


def normalization_tensors(config: ModelConfig) -> dict[str, np.ndarray]:
    """The forecast graph's NORM_* tensors (float32), computed from the config in one place.

    The exporter writes exactly these; readers compare an artifact's tensors with them, so
    the graph, the config and every backend normalize identically.
    """
    f_mean = np.asarray(config.feature_mean, np.float64)
    f_std = np.asarray(config.feature_std, np.float64)
    change = config.target_kind == "change"
    # Level statistics repeat for each step ahead; change statistics are one per output.
    level = steps_ahead(config)
    tensors = {
        NORM_IN_SCALE: (1.0 / f_std).astype(np.float32),
        NORM_IN_SHIFT: (-f_mean / f_std).astype(np.float32),
        NORM_OUT_SCALE: np.asarray(
            config.change_std if change else config.target_std * level, np.float32
        ),
        NORM_OUT_SHIFT: np.asarray(
            config.change_mean if change else config.target_mean * level, np.float32
        ),
    }
    if change:
        tensors[NORM_LAST_SELECT] = _target_select(config)
    if config.ar_lags:
        tensors.update(highway_tensors(config))
    return tensors


def _target_select(config: ModelConfig) -> np.ndarray:
    """One-hot float32 [features, outputs]: the feature column of each output's target."""
    index = last_value_index(config)
    select = np.zeros((len(config.features), index.size), np.float32)
    select[index, np.arange(index.size)] = 1.0
    return select


def last_value_index(config: ModelConfig) -> np.ndarray:
    """int32 [outputs]: the feature column holding the last observed value of each output's
    target."""
    one = [config.features.index(t) for t in config.targets]
    return np.array(one * steps_ahead(config), np.int32)


# ---- the linear highway ---------------------------------------------------------------
# A model with ar_lags > 0 adds to its head's output (standard units) a fixed linear
# autoregression of each output's target: the least-squares fit on the training split's
# changes that the linear baseline is (toolchain/forecast_eval.py), so the network only
# learns what that fit leaves over. A recurrent state cannot hold a season's worth of exact
# past values, which such a fit needs (weekly CO2: the value 52 weeks ago); the history
# state holds them.
#
# Per step t and output o, with z the normalized features (the input stage's output):
#   v[t] = z[t] @ HIGHWAY_SELECT[:, o]                       (the target's value)
#   past = history rows (v[t - L] .. v[t - 1]); after a reset (element 0 == 0) every row
#          is v[t] itself, as if the target had stood still, so the first steps add no
#          change that never happened
#   highway[t, o] = sum_r HIGHWAY_WEIGHT[o, 0, r] * window[r] + HIGHWAY_BIAS[o],
#          window = (past..., v[t]), r = 0 oldest
#   history_out = (1, the last L rows of (past..., v[t])) after the call's last step.
# The graph computes the window sums of a whole call as one grouped Conv over time.

HIGHWAY_OUT = "highway_out"
# The int64 constants the highway's nodes read (`highway_constants`).
_HW_C0, _HW_C1, _HW_AXIS1 = "const.hw.0", "const.hw.1", "const.hw.axis1"
_HW_END, _HW_KEEP, _HW_ONE = "const.hw.end", "const.hw.keep", "const.hw.one"
_HW_PAST_SHAPE, _HW_SEEN_SHAPE = "const.hw.past_shape", "const.hw.seen_shape"
_HW_FLAT_SHAPE = "const.hw.flat_shape"


def highway_constants(config: ModelConfig) -> dict[str, np.ndarray]:
    """The constants of `highway_stage` in the order the exporter writes them."""
    lags, outputs = config.ar_lags, config.output_size
    i64 = functools.partial(np.array, dtype=np.int64)
    return {
        _HW_C0: i64([0]),
        _HW_C1: i64([1]),
        _HW_AXIS1: i64([1]),
        _HW_END: i64([np.iinfo(np.int64).max]),
        _HW_KEEP: i64([-lags]),
        _HW_PAST_SHAPE: i64([0, lags, outputs]),
        _HW_SEEN_SHAPE: i64([0, 1, 1]),
        _HW_FLAT_SHAPE: i64([0, lags * outputs]),
        _HW_ONE: np.array([1.0], np.float32),
    }


def highway_stage(config: ModelConfig) -> list[StageNode]:
    """Nodes from X_STAGE_OUT and INPUT_HISTORY to HIGHWAY_OUT [batch, time, outputs] and
    OUTPUT_HISTORY (see the comment above)."""
    n = config.output_size
    return [
        StageNode("MatMul", (X_STAGE_OUT, HIGHWAY_SELECT), ("hw_v",), "hw_select"),
        StageNode("Slice", (INPUT_HISTORY, _HW_C0, _HW_C1, _HW_AXIS1), ("hw_seen",), "hw_seen"),
        StageNode("Slice", (INPUT_HISTORY, _HW_C1, _HW_END, _HW_AXIS1), ("hw_rows",), "hw_rows"),
        StageNode("Reshape", ("hw_rows", _HW_PAST_SHAPE), ("hw_past",), "hw_past"),
        StageNode("Reshape", ("hw_seen", _HW_SEEN_SHAPE), ("hw_seen3",), "hw_seen3"),
        StageNode("Slice", ("hw_v", _HW_C0, _HW_C1, _HW_AXIS1), ("hw_first",), "hw_first"),
        StageNode("Mul", ("hw_past", "hw_seen3"), ("hw_kept",), "hw_kept"),
        StageNode("Sub", (_HW_ONE, "hw_seen3"), ("hw_unseen",), "hw_unseen"),
        StageNode("Mul", ("hw_first", "hw_unseen"), ("hw_filled",), "hw_filled"),
        StageNode("Add", ("hw_kept", "hw_filled"), ("hw_past_eff",), "hw_past_eff"),
        StageNode("Concat", ("hw_past_eff", "hw_v"), ("hw_seq",), "hw_seq", {"axis": 1}),
        StageNode("Transpose", ("hw_seq",), ("hw_seq_t",), "hw_seq_t", {"perm": [0, 2, 1]}),
        StageNode(
            "Conv",
            ("hw_seq_t", HIGHWAY_WEIGHT, HIGHWAY_BIAS),
            ("hw_conv",),
            "hw_conv",
            {"group": n, "kernel_shape": [config.ar_lags + 1]},
        ),
        StageNode("Transpose", ("hw_conv",), (HIGHWAY_OUT,), "hw_out", {"perm": [0, 2, 1]}),
        StageNode("Slice", ("hw_seq", _HW_KEEP, _HW_END, _HW_AXIS1), ("hw_last",), "hw_last"),
        StageNode("Reshape", ("hw_last", _HW_FLAT_SHAPE), ("hw_last_flat",), "hw_last_flat"),
        StageNode("Max", ("hw_seen", _HW_ONE), ("hw_seen_out",), "hw_seen_out"),
        StageNode(
            "Concat", ("hw_seen_out", "hw_last_flat"), (OUTPUT_HISTORY,), "hw_history", {"axis": 1}
        ),
    ]


def apply_highway(
    weights: dict[str, np.ndarray], z: np.ndarray, history: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The highway in numpy: normalized features z [batch, T, F] and history [batch, S]
    -> (highway [batch, T, outputs] float32, history_out [batch, S] float32). The window
    sums are computed in float64 and rounded once (the reference's most exact step)."""
    kernel = weights[HIGHWAY_WEIGHT]  # [O, 1, L + 1]
    n, lags = kernel.shape[0], kernel.shape[2] - 1
    batch = z.shape[0]
    v = z @ weights[HIGHWAY_SELECT]  # [batch, T, O], exact (one-hot)
    seen = history[:, :1].reshape(batch, 1, 1)
    past = history[:, 1:].reshape(batch, lags, n)
    one = np.float32(1.0)
    past = past * seen + v[:, :1] * (one - seen)
    seq = np.concatenate([past, v], axis=1)  # [batch, L + T, O]
    windows = np.lib.stride_tricks.sliding_window_view(seq, lags + 1, axis=1)  # [b, T, O, L+1]
    sums = np.einsum("btor,or->bto", windows.astype(np.float64), kernel[:, 0].astype(np.float64))
    highway = (sums + weights[HIGHWAY_BIAS].astype(np.float64)).astype(np.float32)
    out = np.concatenate(
        [np.maximum(history[:, :1], one), seq[:, seq.shape[1] - lags :].reshape(batch, -1)],
        axis=1,
    )
    return highway, out.astype(np.float32)


def highway_tensors(config: ModelConfig) -> dict[str, np.ndarray]:
    """HIGHWAY_SELECT, HIGHWAY_WEIGHT, HIGHWAY_BIAS of a config with ar_lags > 0: its raw
    autoregression on changes rewritten over the window of normalized values.

    For output o (target value y, normalized v = (y - m) / s with the feature's statistics)
    the fit forecasts y[t + ahead] - y[t] = c + sum_j a_j (y[t - j] - y[t - j - 1]), which
    is c + s * sum_i beta_i v[t - i] with beta_0 = a_0, beta_i = a_i - a_(i-1), beta_L =
    -a_(L-1). The head's units are (change - change_mean) / change_std for change targets,
    (level - target_mean) / target_std for levels, where the level also adds y[t] itself."""
    lags, n = config.ar_lags, config.output_size
    coef = np.asarray(config.ar_coef, np.float64).reshape(n, 1 + lags)
    index = last_value_index(config)
    f_mean = np.asarray(config.feature_mean, np.float64)[index]
    f_std = np.asarray(config.feature_std, np.float64)[index]
    a = coef[:, 1:]
    beta = np.zeros((n, lags + 1))
    beta[:, :lags] += a
    beta[:, 1:] -= a  # beta[:, i] = a_i - a_(i-1), lag i steps back
    change = config.target_kind == "change"
    if change:
        scale = np.asarray(config.change_std, np.float64)
        bias = (coef[:, 0] - np.asarray(config.change_mean, np.float64)) / scale
    else:
        t_mean = np.tile(np.asarray(config.target_mean, np.float64), steps_ahead(config))
        scale = np.tile(np.asarray(config.target_std, np.float64), steps_ahead(config))
        beta[:, 0] += 1.0  # the level is y[t] + the change
        bias = (f_mean + coef[:, 0] - t_mean) / scale
    weight = f_std[:, None] * beta / scale[:, None]  # [O, lag 0 .. L]
    with np.errstate(over="ignore"):
        return {
            HIGHWAY_SELECT: _target_select(config),
            HIGHWAY_WEIGHT: weight[:, ::-1].astype(np.float32)[:, None, :],  # oldest first
            HIGHWAY_BIAS: bias.astype(np.float32),
        }


def _check_highway(config: ModelConfig) -> None:
    """ar_lags 0 (no highway, no ar_coef) or 1 .. MAX_AR_LAGS with every target among the
    features (the highway reads its values there) and 1 + ar_lags finite coefficients per
    output."""
    lags = config.ar_lags
    if isinstance(lags, bool) or not isinstance(lags, int) or not 0 <= lags <= MAX_AR_LAGS:
        raise InvalidConfigError(f"ar_lags is {lags!r} (expected an integer 0 to {MAX_AR_LAGS})")
    coef = config.ar_coef
    n = (1 + lags) * len(config.targets) * steps_ahead(config) if lags else 0
    if not isinstance(coef, tuple) or len(coef) != n:
        found = len(coef) if isinstance(coef, tuple) else repr(coef)
        raise InvalidConfigError(
            f"ar_coef has {found} values (expected {n}: per output an intercept and "
            f"ar_lags = {lags} coefficients; none without a highway)"
        )
    for i, v in enumerate(coef):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not finite(v):
            raise InvalidConfigError(f"ar_coef[{i}] is {v!r} (expected a finite number)")
    missing = [t for t in config.targets if lags and t not in config.features]
    if missing:
        raise InvalidConfigError(
            f"ar_lags > 0 needs each target among the features (the highway reads its past "
            f"values there); {missing} are not features"
        )


HORIZON_OUTPUTS = ("last", "each")


def steps_ahead(config: ModelConfig) -> int:
    """How many steps ahead the outputs cover: 1 (t + horizon only) or horizon (each)."""
    return config.horizon if config.horizon_outputs == "each" else 1


def output_ahead(config: ModelConfig) -> list[int]:
    """Steps ahead of each output block: [horizon], or [1, ..., horizon]."""
    return list(range(1, config.horizon + 1)) if steps_ahead(config) > 1 else [config.horizon]


def output_names(config: ModelConfig) -> tuple[str, ...]:
    """One name per output: the target names, or with horizon_outputs "each" the target
    name and its step ahead, step-major ("co2+1", "co2+2", ...)."""
    if config.horizon_outputs != "each":
        return config.targets
    return tuple(f"{t}+{s}" for s in output_ahead(config) for t in config.targets)


def step_block(config: ModelConfig, outputs: np.ndarray, ahead: int) -> np.ndarray:
    """The outputs [..., targets] that predict the targets `ahead` steps later."""
    n = len(config.targets)
    k = output_ahead(config).index(ahead)
    return outputs[..., k * n : (k + 1) * n]


TARGET_KINDS = ("level", "change")


def _check_target_kind(config: ModelConfig) -> None:
    """target_kind is "level" (no change statistics) or "change": every target is also a
    feature (its last value is read from the input) and change_mean/change_std hold one
    finite value per target (std > 0)."""
    kind = config.target_kind
    if kind not in TARGET_KINDS:
        raise InvalidConfigError(f"target_kind is {kind!r} (expected one of {TARGET_KINDS})")
    n = len(config.targets) * steps_ahead(config) if kind == "change" else 0
    for name in ("change_mean", "change_std"):
        values = getattr(config, name)
        if not isinstance(values, tuple) or len(values) != n:
            found = len(values) if isinstance(values, tuple) else repr(values)
            raise InvalidConfigError(
                f"{name} has {found} values (expected {n}: one per output with target_kind "
                f"'change', none with 'level'; target_kind is {kind!r})"
            )
        for col, v in zip(output_names(config), values, strict=False):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and finite(v)
            if not ok or (name == "change_std" and not v > 0):
                raise InvalidConfigError(
                    f"{name} of target {col!r} is {v!r} (expected a finite number"
                    f"{' > 0' if name == 'change_std' else ''})"
                )
    missing = [t for t in config.targets if kind == "change" and t not in config.features]
    if missing:
        raise InvalidConfigError(
            f"target_kind 'change' needs each target among the features (its last value is "
            f"the input the change is added to); {missing} are not features"
        )


FORECAST = Forecast()
