"""classify: rows of raw sensor values in, class logits out at every step.

The state is carried from row to row, so a device holds a running answer as the data
arrives; the logits after the last row of a sequence are the sequence's prediction. A
fresh state (zeros) starts each sequence.

The input stage is forecast's (x * NORM_IN_SCALE + NORM_IN_SHIFT with the training split's
statistics, Mul then Add); the output stage is the head bias, giving logits over
`config.classes`. Input checks, the synthetic stream and the C example stream are the
feature-row ones of forecast (the same input kind), reused from there.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_edge.runtime.backends.c_text import count, names_array
from lstm_edge.runtime.errors import InvalidArtifactError, InvalidConfigError
from lstm_edge.runtime.format import (
    HEAD_BIAS,
    INPUT_FEATURES,
    MAX_DIM,
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    OUTPUT_LOGITS,
)
from lstm_edge.runtime.tasks.base import HEAD_MATMUL_OUT, StageNode, TaskSpec
from lstm_edge.runtime.tasks.char_lm import CharLM
from lstm_edge.runtime.tasks.forecast import Forecast

if TYPE_CHECKING:
    from lstm_edge.runtime.config import ModelConfig

MAX_CLASSES = 1 << 12

# One config layout for both input kinds: feature rows (features and their statistics) or
# characters (vocab and embed_size, as char-lm's); the fields of the other kind are left out.
CLASSIFY_FIELDS = ("features", "classes", "feature_mean", "feature_std", "vocab", "embed_size")
CLASSIFY_LIST_FIELDS = ("features", "classes", "feature_mean", "feature_std", "vocab")
CLASSIFY_OPTIONAL = MappingProxyType(
    {"features": (), "feature_mean": (), "feature_std": (), "vocab": (), "embed_size": 0}
)


def check_classes(config: ModelConfig) -> None:
    classes = config.classes
    if not isinstance(classes, tuple) or not all(isinstance(c, str) and c for c in classes):
        raise InvalidConfigError("classes must be a list of non-empty class names")
    if not 2 <= len(classes) <= MAX_CLASSES or len(set(classes)) != len(classes):
        raise InvalidConfigError(
            f"classes has {len(classes)} names (expected 2 to {MAX_CLASSES}, no duplicates)"
        )


def class_header_macros(artifact: Any, name: str) -> str:
    upper = name.upper()
    return f"""#define {upper}_CLASSES {len(artifact.config.classes)}
/* Class names in logit order: after the last step of a sequence, the largest logit k names
 * its class {name}_class_names[k]; every earlier step holds the running answer. */
extern const char *const {name}_class_names[{upper}_CLASSES];"""


def class_data(artifact: Any, name: str) -> str:
    upper = name.upper()
    return names_array(
        f"{name}_class_names", f"{upper}_CLASSES", "logit -> class", artifact.config.classes
    )


class Classify(Forecast):
    """A feature-row task like forecast (its input stage, checks and C input), with class
    logits as the output."""

    name = "classify"
    fields = CLASSIFY_FIELDS
    list_fields = CLASSIFY_LIST_FIELDS
    optional_fields = CLASSIFY_OPTIONAL
    input_name = INPUT_FEATURES  # float32 [batch, time, features]
    output_name = OUTPUT_LOGITS  # float32 [batch, time, classes]
    c_enum = "LSTM_EDGE_TASK_CLASSIFY"
    c_step_function = "lstm_edge_forecast_step"  # the feature-row step of lstm_edge.h
    c_output_noun = "classes"
    has_calibration = False
    error_unit = "logit error"
    error_symbol = "logit"
    top1_applies = True

    def max_error_failure(self, value: float, bound: float) -> str:
        return f"max abs logit error {value:.3g} > {bound:g}"

    def resolve(self, config: ModelConfig) -> TaskSpec:
        """A config with a vocabulary is a token classifier (TOKEN_CLASSIFY)."""
        return TOKEN_CLASSIFY if config.vocab else self

    def check_config(self, config: ModelConfig) -> None:
        if self.resolve(config) is not self:
            self.resolve(config).check_config(config)
            return
        if config.embed_size:
            raise InvalidConfigError("embed_size is set, but a feature classifier has no vocab")
        names = config.features
        if not isinstance(names, tuple) or not all(isinstance(n, str) and n for n in names):
            raise InvalidConfigError("features must be a list of non-empty column names")
        if not 1 <= len(names) <= MAX_DIM or len(set(names)) != len(names):
            raise InvalidConfigError(
                f"features has {len(names)} columns (expected 1 to {MAX_DIM}, no duplicates)"
            )
        check_classes(config)
        for stat in ("mean", "std"):
            values = getattr(config, f"feature_{stat}")
            if not isinstance(values, tuple) or len(values) != len(names):
                raise InvalidConfigError(
                    f"feature_{stat} has {len(values) if isinstance(values, tuple) else '?'} "
                    f"values (expected one per feature: {len(names)})"
                )
            for col, v in zip(names, values, strict=True):
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                if not ok or (stat == "std" and not v > 0):
                    raise InvalidConfigError(
                        f"feature_{stat} of column {col!r} is {v!r} (expected a finite "
                        f"number{' > 0' if stat == 'std' else ''})"
                    )
        with np.errstate(over="ignore", divide="ignore"):
            norms = self.config_tensors(config)
        for name, values in norms.items():
            bad = np.flatnonzero(~np.isfinite(values) | ((values == 0) & (name == NORM_IN_SCALE)))
            if bad.size:
                raise InvalidConfigError(
                    f"the statistics of feature column {names[int(bad[0])]!r} give {name} = "
                    f"{float(values[bad[0]])!r} in float32 (expected a finite, nonzero scale "
                    "and a finite shift; rescale the column's units)"
                )

    def output_size(self, config: ModelConfig) -> int:
        return len(config.classes)

    def config_tensors(self, config: ModelConfig) -> dict[str, np.ndarray]:
        mean = np.asarray(config.feature_mean, np.float64)
        std = np.asarray(config.feature_std, np.float64)
        return {
            NORM_IN_SCALE: (1.0 / std).astype(np.float32),
            NORM_IN_SHIFT: (-mean / std).astype(np.float32),
        }

    def output_stage(self, config: ModelConfig) -> list[StageNode]:
        return [StageNode("Add", (HEAD_MATMUL_OUT, HEAD_BIAS), (OUTPUT_LOGITS,), "head_bias")]

    def apply_output_stage(
        self, weights: dict[str, np.ndarray], y: np.ndarray, inputs: np.ndarray
    ) -> np.ndarray:
        return y + weights[HEAD_BIAS]

    def error_scale(self, config: ModelConfig) -> np.ndarray | float:
        return 1.0  # logits, as char-lm's

    def check_calibration(self, calibration: object, config: ModelConfig, where: str) -> dict:
        raise InvalidArtifactError(f"{where}: a classify model carries no calibration")

    # ---- the C library ----------------------------------------------------------------

    def c_stage_fields(self, arrays: Any, artifact: Any) -> str:
        """The input stage's normalization (float32 always); no output stage."""
        f = f"features {artifact.config.input_size}"
        scale = arrays.add(
            "in_scale", f"{NORM_IN_SCALE}: float32 [{f}], 1 / std", artifact.weights[NORM_IN_SCALE]
        )
        shift = arrays.add(
            "in_shift",
            f"{NORM_IN_SHIFT}: float32 [{f}], -mean / std",
            artifact.weights[NORM_IN_SHIFT],
        )
        return f".input.normalize = {{ {scale}, {shift}, {count(scale)}, {count(shift)} }}"

    def c_header_macros(self, artifact: Any, name: str) -> str:
        upper = name.upper()
        return f"""#define {upper}_CLASSES {len(artifact.config.classes)}
/* Feature columns in input order (x[k] of a step is the raw value of column k) and class
 * names in logit order: after the last row of a sequence, the largest logit k names its
 * class {name}_class_names[k]; every earlier step holds the running answer. */
extern const char *const {name}_feature_names[{upper}_INPUT_SIZE];
extern const char *const {name}_class_names[{upper}_CLASSES];"""

    def c_data(self, artifact: Any, name: str) -> str:
        upper, cfg = name.upper(), artifact.config
        return (
            names_array(
                f"{name}_feature_names", f"{upper}_INPUT_SIZE", "input columns", cfg.features
            )
            + "\n"
            + names_array(f"{name}_class_names", f"{upper}_CLASSES", "logit -> class", cfg.classes)
        )

    def c_example_macros(self, name: str) -> str:
        # main.c's feature-row path: it prints every PRINT_EVERY-th step's outputs (here
        # the class logits) and the last one, the sequence's prediction.
        return f"""#define EXAMPLE_FORECAST 1
#define EXAMPLE_HORIZON 0
#define EXAMPLE_TARGET_NAMES {name}_class_names"""


class TokenClassify(CharLM):
    """classify of character sequences: token ids through an embedding (char-lm's input
    stage, input checks and C token step, the vocabulary built by char-lm's rules), class
    logits out at every step (classify's output side). The config is a classify config
    with `vocab` and `embed_size` instead of the feature fields; `Classify.resolve` picks
    this spec for it."""

    name = Classify.name
    fields = CLASSIFY_FIELDS
    list_fields = CLASSIFY_LIST_FIELDS
    optional_fields = CLASSIFY_OPTIONAL
    output_name = OUTPUT_LOGITS  # float32 [batch, time, classes]
    c_enum = Classify.c_enum
    c_output_noun = Classify.c_output_noun

    def check_config(self, config: ModelConfig) -> None:
        for name in ("features", "feature_mean", "feature_std"):
            if getattr(config, name):
                raise InvalidConfigError(
                    f"{name} is set, but a token classifier (with a vocab) reads characters"
                )
        super().check_config(config)
        check_classes(config)

    def output_size(self, config: ModelConfig) -> int:
        return len(config.classes)

    def check_calibration(self, calibration: object, config: ModelConfig, where: str) -> dict:
        raise InvalidArtifactError(f"{where}: a classify model carries no calibration")

    def c_header_macros(self, artifact: Any, name: str) -> str:
        return super().c_header_macros(artifact, name) + "\n" + class_header_macros(artifact, name)

    def c_data(self, artifact: Any, name: str) -> str:
        return super().c_data(artifact, name) + "\n" + class_data(artifact, name)


CLASSIFY = Classify()
TOKEN_CLASSIFY = TokenClassify()
