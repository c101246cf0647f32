"""The torch model: input stage -> stacked LSTM -> linear head, for both tasks.

Its shape comes from a `ModelConfig` alone. The input stage is an embedding (char-lm:
token ids) or the normalization of raw sensor values with the training-split statistics
the config holds (forecast: x * 1/std - mean/std); a forecast model's head output is
denormalized the same way (* std + mean), so the model maps raw values to raw
predictions exactly as the exported graph does. `forward` takes and returns the
recurrent state explicitly, exactly as the exported ONNX graph and the runtime do.
"""

from __future__ import annotations

import torch
from torch import nn

from lstm_edge.runtime.config import (
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    ModelConfig,
)

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [layers, batch, hidden]

# The forecast normalization buffers in the state dict, and the ONNX tensors they become.
NORM_BUFFERS = {
    "in_scale": NORM_IN_SCALE,
    "in_shift": NORM_IN_SHIFT,
    "out_scale": NORM_OUT_SCALE,
    "out_shift": NORM_OUT_SHIFT,
}


class EdgeLSTM(nn.Module):
    def __init__(self, config: ModelConfig, dropout: float = 0.0) -> None:
        """`dropout` acts in training only (between LSTM layers and before the head); it
        has no weights, so it is not part of the config and never reaches an artifact."""
        super().__init__()
        self.config = config
        if config.task == "char-lm":
            self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        else:
            # Buffers, not parameters: fixed statistics, saved with the weights and checked
            # against the config on load.
            norm = config.spec.config_tensors(config)
            for buffer, name in NORM_BUFFERS.items():
                self.register_buffer(buffer, torch.from_numpy(norm[name]))
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
        if self.config.task == "char-lm":
            x = self.embedding(inputs)
        else:
            x = inputs * self.in_scale + self.in_shift
        y, (h, c) = self.lstm(x, state)
        return self.head(self.drop(y)), (h, c)

    def forward(
        self, inputs: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """char-lm: tokens int64 [batch, time] -> logits [batch, time, vocab].
        forecast: raw features float32 [batch, time, features] -> raw predictions
        [batch, time, targets] of the targets `horizon` steps later. Also returns (h, c)."""
        out, state = self.forward_normalized(inputs, state)
        if self.config.task == "forecast":
            out = out * self.out_scale + self.out_shift
        return out, state

    def normalize_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Raw target values -> the standard units `forward_normalized` predicts."""
        return (targets - self.out_shift) / self.out_scale


def build_model(config: ModelConfig, dropout: float = 0.0) -> EdgeLSTM:
    return EdgeLSTM(config, dropout)
