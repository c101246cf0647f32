"""The torch model: input stage -> stacked LSTM -> linear head, for both tasks.

Its shape comes from a `ModelConfig` alone. The task's `TorchStages` (its training half's
`torch_stages`, in lstm_edge.toolchain.tasks) are the input stage, an embedding (char-lm:
token ids) or the normalization of raw sensor values with the training-split statistics
the config holds (forecast: x * 1/std - mean/std), and the output stage, a forecast
model's head output denormalized the same way (* std + mean), so the model maps raw values
to raw predictions exactly as the exported graph does. `forward` takes and returns the
recurrent state explicitly, exactly as the exported ONNX graph and the runtime do.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import torch
from torch import nn

from lstm_edge.runtime.config import ModelConfig

# (h, c), each [layers, batch, hidden]; a forecast model with a highway (ar_lags > 0) also
# carries its history [batch, size] as a third tensor (`forward`).
State = tuple[torch.Tensor, ...]


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

    def output(self, model: EdgeLSTM, out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Head output (standard units) -> the model's output (`inputs`: the graph's)."""
        return out


def torch_stages(config: ModelConfig) -> TorchStages:
    """The torch stages of the config's task (its training half's `torch_stages`)."""
    from lstm_edge.toolchain.tasks import training

    return training(config).stages_for(config)


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
        [batch, time, targets] of the targets `horizon` steps later. Also returns (h, c);
        a model with a highway reads and returns (h, c, history), a missing history being
        a reset one."""
        history = None
        if state is not None and len(state) == 3:
            *state, history = state
            state = tuple(state)
        out, state = self.forward_normalized(inputs, state)
        if self.config.ar_lags:  # the forecast highway: + its linear autoregression
            highway, history = self.stages.highway(self, inputs, history)
            out = out + highway
            state = (*state, history)
        return self.stages.output(self, out, inputs), state

    def normalize_targets(
        self, targets: torch.Tensor, inputs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Raw target values -> the standard units `forward_normalized` predicts. A model
        of change targets predicts the change from the last observed value, which it reads
        from `inputs` (the rows the forecasts are made at, aligned with `targets`)."""
        if getattr(self, "last_select", None) is not None:
            if inputs is None:
                raise ValueError("a model of change targets needs the inputs to normalize")
            targets = targets - inputs @ self.last_select
        return (targets - self.out_shift) / self.out_scale


def build_model(config: ModelConfig, dropout: float = 0.0) -> EdgeLSTM:
    return EdgeLSTM(config, dropout)
