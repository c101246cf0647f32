"""What every task spec answers: the torch-free half of a task, used by the runtime and the
exporters alike.

A task says what the graph reads and returns, how its input and output stages compute
(as ONNX nodes for the exporter and in numpy for the reference backend), which tensors
those stages need, how `Model.step` checks a caller's inputs and what a synthetic input
stream looks like. Shared code asks the spec (`config.spec`) and never compares task
names; a new task is a new module beside char_lm.py and forecast.py plus one line in
`TASKS` (tasks/__init__.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_edge.runtime.errors import InputError, InvalidConfigError

if TYPE_CHECKING:
    from lstm_edge.runtime.config import ModelConfig


@dataclass(frozen=True)
class StageNode:
    """One ONNX node of a task's stage, as plain data (the exporter builds it with
    onnx.helper.make_node; the loader can compare a file's node with it)."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


def finite(v: int | float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float (JSON allows any digits)
        return False


def check_int(name: str, value: Any, top: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise InvalidConfigError(f"{name} is {value!r} (expected an integer 1 to {top})")


# The stage boundaries inside the canonical graph: the input stage ends in X_STAGE_OUT
# (the first LSTM layer's input [batch, time, in]); the output stage starts from
# HEAD_MATMUL_OUT (the head MatMul's output [batch, time, out]).
X_STAGE_OUT = "x_btE"
HEAD_MATMUL_OUT = "head_mm"


class TaskSpec:
    """Base of the task specs. Subclasses set the class attributes and implement the
    methods that raise NotImplementedError."""

    name: str  # the config's "task" value
    fields: tuple[str, ...]  # config keys of this task besides the common ones
    list_fields: tuple[str, ...] = ()  # of those, the ones held as tuples (JSON lists)
    # of those, the ones a config may leave out, and their value then (left out when equal)
    optional_fields: Mapping[str, Any] = MappingProxyType({})
    input_name: str  # the graph's main input
    output_name: str  # the graph's main output
    input_dtype: np.dtype  # the main input's dtype in the graph (and for onnxruntime)
    c_input_dtype: np.dtype  # one input element as the C library reads it
    c_enum: str  # the task's value of the C enum lstm_edge_task
    has_calibration: bool = False  # artifacts may carry META_CALIBRATION (anomaly scores)
    stream_noun: str = ""  # how a stream is named in messages ("token " stream, or "")
    error_unit: str = "output error"  # what `error_scale`d output errors measure
    error_symbol: str = "output"  # the same, short, beside a number in a table
    top1_applies: bool = False  # outputs score classes: top-1 agreement means something

    # ---- sizes and config --------------------------------------------------------------

    def check_config(self, config: ModelConfig) -> None:
        raise NotImplementedError

    def resolve(self, config: ModelConfig) -> TaskSpec:
        """The spec of this config (`config.spec`): this one, or for a task with more than
        one input kind, the kind's spec (a classify config with a vocabulary reads tokens)."""
        return self

    def input_size(self, config: ModelConfig) -> int:
        """Width of the first LSTM layer's input."""
        raise NotImplementedError

    def output_size(self, config: ModelConfig) -> int:
        """Width of one step's output."""
        raise NotImplementedError

    def graph_input_dims(self, config: ModelConfig) -> tuple[int | None, ...]:
        """The main input's dims (None: a dynamic batch/time axis)."""
        raise NotImplementedError

    # ---- tensors of the stages --------------------------------------------------------

    def stage_weights(self, config: ModelConfig) -> dict[str, tuple[int, ...]]:
        """Logical weights the stages own (trained, quantizable), name -> shape; listed
        before the LSTM layers' in the artifact."""
        return {}

    def quant_axes(self, config: ModelConfig) -> dict[str, int]:
        """The int8 per-channel axis of each stage weight the int8 scheme quantizes."""
        return {}

    def config_tensors(self, config: ModelConfig) -> dict[str, np.ndarray]:
        """float32 tensors the stages need whose values follow from the config alone
        (never quantized; readers check them bit for bit)."""
        return {}

    def history_size(self, config: ModelConfig) -> int:
        """Floats of the per-stream history state beside h and c (INPUT_HISTORY, e.g. the
        forecast highway's past values); 0: the graph has none."""
        return 0

    def stage_constants(self, config: ModelConfig) -> dict[str, np.ndarray]:
        """Constants the stages' nodes read besides the weights and config tensors (e.g.
        Slice bounds), in the order the exporter writes them."""
        return {}

    # ---- the stages -------------------------------------------------------------------

    def input_stage(self, config: ModelConfig) -> list[StageNode]:
        """Nodes from the graph's main input to X_STAGE_OUT."""
        raise NotImplementedError

    def output_stage(self, config: ModelConfig) -> list[StageNode]:
        """Nodes from HEAD_MATMUL_OUT to the graph's main output (the head bias included)."""
        raise NotImplementedError

    def apply_input_stage(self, weights: dict[str, np.ndarray], inputs: np.ndarray) -> np.ndarray:
        """The input stage in numpy: inputs [batch, time(, F)] -> [batch, time, in]."""
        raise NotImplementedError

    def apply_output_stage(
        self, weights: dict[str, np.ndarray], y: np.ndarray, inputs: np.ndarray
    ) -> np.ndarray:
        """The output stage in numpy: head MatMul output [batch, time, out] -> outputs
        (`inputs`: the step's checked inputs, which an output stage may read)."""
        raise NotImplementedError

    # ---- inputs -----------------------------------------------------------------------

    def check_inputs(self, config: ModelConfig, values: Any) -> tuple[np.ndarray, bool]:
        """A caller's step inputs -> (C-contiguous [batch, time(, F)] in `input_dtype`,
        whether a single step without a time axis was given). Raises InputError naming
        expected vs found."""
        raise NotImplementedError

    def synthetic_inputs(self, config: ModelConfig, steps: int, seed: int = 0) -> np.ndarray:
        """A seeded input stream [steps(, F)] when no data is at hand (export check
        fallback, tests, bench), of the kind and scale the model was trained on."""
        raise NotImplementedError

    def error_scale(self, config: ModelConfig) -> np.ndarray | float:
        """What output errors are divided by before they meet a tolerance."""
        return 1.0

    # ---- the C library (backends/c.py, exporters/c_codegen.py) ------------------------
    # The C model struct shares every field but the stage ones; each task emits its own
    # stage fields, header macros and data. Helpers (`arrays.add`, `float_lines`, ...)
    # come from lstm_edge.runtime.backends.c_source.

    c_step_function: str  # lstm_edge.h's one-stream step of this task ("_batch": batched)
    c_output_noun: str  # what the head's outputs are called in generated comments

    def c_stage_fields(self, arrays: Any, artifact: Any) -> str:
        """The model struct's initializers of its task's stages (`.input.*`, `.output.*`;
        lstm_edge.h leaves the other task's zero); their arrays go into `arrays`."""
        raise NotImplementedError

    def c_header_macros(self, artifact: Any, name: str) -> str:
        """Task macros and extern declarations of NAME_model.h (after the common ones)."""
        raise NotImplementedError

    def c_data(self, artifact: Any, name: str) -> str:
        """The data those declarations name, at the end of NAME_model.c."""
        raise NotImplementedError

    def c_example_inputs(self, config: ModelConfig, steps: int) -> tuple[np.ndarray, str]:
        """The codegen example's built-in stream when no checkpoint is given, and its
        source for messages: a seeded synthetic stream."""
        return self.synthetic_inputs(config, steps), "seeded synthetic stream (seed 0)"

    def c_check_example(
        self, config: ModelConfig, inputs: np.ndarray, steps: int, source: str, where: str,
        error: type[Exception],
    ) -> None:  # fmt: skip
        """Refuse an example stream the model cannot step (raises `error`)."""
        raise NotImplementedError

    def c_example_macros(self, name: str) -> str:
        """The task's EXAMPLE_* macros of example_stream.h (main.c reads them)."""
        raise NotImplementedError

    def c_example_stream(self, name: str, inputs: np.ndarray) -> str:
        """example_stream.h's `example_stream` array holding `inputs`."""
        raise NotImplementedError

    def max_error_failure(self, value: float, bound: float) -> str:
        """The failure message of a max output error over its bound."""
        return f"max abs {self.error_symbol} error {value:.3g} > {bound:g}"

    # ---- artifact metadata ------------------------------------------------------------

    def check_calibration(self, calibration: object, config: ModelConfig, where: str) -> dict:
        """Check a META_CALIBRATION value (only tasks with `has_calibration` have one)."""
        raise NotImplementedError

    def require(
        self, config: ModelConfig, what: str, hint: str = "", error: type[Exception] | None = None
    ) -> None:
        """Refuse a config of another task for a use only this task has ("word suggestions
        need a 'char-lm' model; this model is task 'forecast' (hint)")."""
        if config.task == self.name:  # every input kind of the task
            return
        error = InputError if error is None else error
        suffix = f" ({hint})" if hint else ""
        raise error(
            f"{what} need a {self.name!r} model; this model is task {config.task!r}{suffix}"
        )

    def __repr__(self) -> str:
        return f"<task {self.name}>"
