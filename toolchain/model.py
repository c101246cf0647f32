"""The torch model: embedding -> stacked LSTM -> linear head over the vocabulary.

Its shape comes from a `ModelConfig` alone. `forward` takes and returns the recurrent
state explicitly, exactly as the exported ONNX graph and the runtime do.
"""

from __future__ import annotations

import torch
from torch import nn

from lstm_edge.runtime.config import ModelConfig

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [layers, batch, hidden]


class CharLSTM(nn.Module):
    def __init__(self, config: ModelConfig, dropout: float = 0.0) -> None:
        """`dropout` acts in training only (between LSTM layers and before the head); it
        has no weights, so it is not part of the config and never reaches an artifact."""
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        self.lstm = nn.LSTM(
            config.embed_size,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def initial_state(self, batch: int) -> State:
        shape = (self.config.num_layers, batch, self.config.hidden_size)
        return torch.zeros(shape), torch.zeros(shape)

    def forward(
        self, tokens: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """tokens int64 [batch, time] -> logits [batch, time, vocab], (h, c)."""
        if state is None:
            state = self.initial_state(tokens.shape[0])
        x = self.embedding(tokens)
        y, (h, c) = self.lstm(x, state)
        return self.head(self.drop(y)), (h, c)


def build_model(config: ModelConfig, dropout: float = 0.0) -> CharLSTM:
    return CharLSTM(config, dropout)
