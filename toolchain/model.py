"""The torch model: input stage -> stacked LSTM -> linear head, for both tasks.

Its shape comes from a `ModelConfig` alone. The task's `TorchStages` (chosen by the
config's spec) are the input stage, an embedding (char-lm: token ids) or the
normalization of raw sensor values with the training-split statistics the config holds
(forecast: x * 1/std - mean/std), and the output stage, a forecast model's head output
denormalized the same way (* std + mean), so the model maps raw values to raw
predictions exactly as the exported graph does. `forward` takes and returns the
recurrent state explicitly, exactly as the exported ONNX graph and the runtime do.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import torch
from torch import nn

from lstm_edge.runtime.config import (
    EMBEDDING,
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    ModelConfig,
)
from lstm_edge.runtime.tasks.base import TaskSpec
from lstm_edge.runtime.tasks.char_lm import CHAR_LM
from lstm_edge.runtime.tasks.forecast import FORECAST

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [layers, batch, hidden]

# The forecast normalization buffers in the state dict, and the ONNX tensors they become.
NORM_BUFFERS = {
    "in_scale": NORM_IN_SCALE,
    "in_shift": NORM_IN_SHIFT,
    "out_scale": NORM_OUT_SCALE,
    "out_shift": NORM_OUT_SHIFT,
}


class TorchStages:
    """A task's input and output stages in torch, the counterpart of the spec's ONNX
    stages. They live on the model itself (not in a submodule) so the state-dict keys
    stay what checkpoints hold ("embedding.weight", "in_scale", ...)."""

    # state-dict key -> the logical ONNX weight it becomes
    weights: ClassVar[Mapping[str, str]] = MappingProxyType({})
    # state-dict buffer -> the config tensor (`spec.config_tensors`) it must equal
    buffers: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def build(self, model: EdgeLSTM, config: ModelConfig) -> None:
        """Add the stages' parameters/buffers to `model` (before the LSTM: init order)."""
        raise NotImplementedError

    def input(self, model: EdgeLSTM, inputs: torch.Tensor) -> torch.Tensor:
        """Graph inputs [batch, time(, F)] -> the first LSTM layer's input."""
        raise NotImplementedError

    def output(self, model: EdgeLSTM, out: torch.Tensor) -> torch.Tensor:
        """Head output (standard units) -> the model's output."""
        return out


class EmbeddingStages(TorchStages):
    """char-lm: token ids through an embedding; the head's logits are the output."""

    weights = MappingProxyType({"embedding.weight": EMBEDDING})

    def build(self, model: EdgeLSTM, config: ModelConfig) -> None:
        model.embedding = nn.Embedding(config.vocab_size, config.embed_size)

    def input(self, model: EdgeLSTM, inputs: torch.Tensor) -> torch.Tensor:
        return model.embedding(inputs)


class NormalizationStages(TorchStages):
    """forecast: raw values normalized in, standard units denormalized out."""

    buffers = MappingProxyType(NORM_BUFFERS)

    def build(self, model: EdgeLSTM, config: ModelConfig) -> None:
        # Buffers, not parameters: fixed statistics, saved with the weights and checked
        # against the config on load.
        norm = config.spec.config_tensors(config)
        for buffer, name in NORM_BUFFERS.items():
            model.register_buffer(buffer, torch.from_numpy(norm[name]))

    def input(self, model: EdgeLSTM, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * model.in_scale + model.in_shift

    def output(self, model: EdgeLSTM, out: torch.Tensor) -> torch.Tensor:
        return out * model.out_scale + model.out_shift


# Keyed by the runtime spec object (`config.spec`), never by a task's name.
TORCH_STAGES: dict[TaskSpec, TorchStages] = {
    CHAR_LM: EmbeddingStages(),
    FORECAST: NormalizationStages(),
}


def torch_stages(config: ModelConfig) -> TorchStages:
    """The torch stages of the config's task."""
    return TORCH_STAGES[config.spec]


class EdgeLSTM(nn.Module):
    def __init__(self, config: ModelConfig, dropout: float = 0.0) -> None:
        """`dropout` acts in training only (between LSTM layers and before the head); it
        has no weights, so it is not part of the config and never reaches an artifact."""
        super().__init__()
        self.config = config
        self.stages = torch_stages(config)
        self.stages.build(self, config)
        self.lstm = nn.LSTM(
            config.input_size,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, config.output_size)

    def initial_state(self, batch: int) -> State:
        shape = (self.config.num_layers, batch, self.config.hidden_size)
        return torch.zeros(shape), torch.zeros(shape)

    def forward_normalized(
        self, inputs: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """The head's output before any denormalization: char-lm logits; for forecast the
        targets in training-split standard units (what the training loss compares)."""
        if state is None:
            state = self.initial_state(inputs.shape[0])
        x = self.stages.input(self, inputs)
        y, (h, c) = self.lstm(x, state)
        return self.head(self.drop(y)), (h, c)

    def forward(
        self, inputs: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """char-lm: tokens int64 [batch, time] -> logits [batch, time, vocab].
        forecast: raw features float32 [batch, time, features] -> raw predictions
        [batch, time, targets] of the targets `horizon` steps later. Also returns (h, c)."""
        out, state = self.forward_normalized(inputs, state)
        return self.stages.output(self, out), state

    def normalize_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Raw target values -> the standard units `forward_normalized` predicts."""
        return (targets - self.out_shift) / self.out_scale


def build_model(config: ModelConfig, dropout: float = 0.0) -> EdgeLSTM:
    return EdgeLSTM(config, dropout)
