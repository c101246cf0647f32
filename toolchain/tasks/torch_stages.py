"""The tasks' input and output stages in torch (the torch side of each spec's ONNX stages),
apart from the task modules so that reading a task's settings does not import torch.

They live on the model itself (not in a submodule) so the state-dict keys stay what
checkpoints hold ("embedding.weight", "in_scale", ...).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import nn
from torch.nn import functional as F

from lstm_edge.runtime.config import (
    EMBEDDING,
    NORM_IN_SCALE,
    NORM_IN_SHIFT,
    NORM_OUT_SCALE,
    NORM_OUT_SHIFT,
    ModelConfig,
)
from lstm_edge.runtime.format import (
    HIGHWAY_BIAS,
    HIGHWAY_SELECT,
    HIGHWAY_WEIGHT,
    NORM_LAST_SELECT,
)
from lstm_edge.toolchain.model import EdgeLSTM, TorchStages


class EmbeddingStages(TorchStages):
    """char-lm in torch: token ids through an embedding; the head's logits are the output."""

    weights = MappingProxyType({"embedding.weight": EMBEDDING})

    def build(self, model: EdgeLSTM, config: ModelConfig) -> None:
        model.embedding = nn.Embedding(config.vocab_size, config.embed_size)

    def input(self, model: EdgeLSTM, inputs: torch.Tensor) -> torch.Tensor:
        return model.embedding(inputs)


# The normalization buffers in the state dict, and the config tensors they must equal.
NORM_BUFFERS = {
    "in_scale": NORM_IN_SCALE,
    "in_shift": NORM_IN_SHIFT,
    "out_scale": NORM_OUT_SCALE,
    "out_shift": NORM_OUT_SHIFT,
}


class NormalizationStages(TorchStages):
    """forecast in torch: raw values normalized in, standard units denormalized out."""

    buffers = MappingProxyType(NORM_BUFFERS)

    def build(self, model: EdgeLSTM, config: ModelConfig) -> None:
        # Buffers, not parameters: fixed statistics, saved with the weights and checked
        # against the config on load.
        norm = config.spec.config_tensors(config)
        for buffer, name in NORM_BUFFERS.items():
            model.register_buffer(buffer, torch.from_numpy(norm[name]))
        # Change targets: the one-hot [features, targets] selection of each target's last
        # value. It follows from the config alone, so it is not saved with the weights.
        select = norm.get(NORM_LAST_SELECT)
        model.register_buffer(
            "last_select", None if select is None else torch.from_numpy(select), persistent=False
        )
        # The linear highway's tensors (ar_lags > 0), from the config like the selection.
        for buffer, name in HIGHWAY_BUFFERS.items():
            value = norm.get(name)
            model.register_buffer(
                buffer, None if value is None else torch.from_numpy(value), persistent=False
            )

    def highway(
        self, model: EdgeLSTM, inputs: torch.Tensor, history: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The linear highway (runtime.tasks.forecast.apply_highway, the same steps):
        raw inputs [batch, T, F] and the history (None: reset) -> (its addition to the
        head's output [batch, T, outputs], the history after the last step)."""
        weight = model.hw_weight  # [O, 1, L + 1], oldest first
        n, lags = weight.shape[0], weight.shape[2] - 1
        batch = inputs.shape[0]
        v = self.input(model, inputs) @ model.hw_select  # [batch, T, O]
        if history is None:
            history = v.new_zeros((batch, 1 + lags * n))
        seen = history[:, :1].reshape(batch, 1, 1)
        past = history[:, 1:].reshape(batch, lags, n) * seen + v[:, :1] * (1.0 - seen)
        seq = torch.cat([past, v], dim=1)  # [batch, L + T, O]
        out = F.conv1d(seq.transpose(1, 2), weight, model.hw_bias, groups=n).transpose(1, 2)
        kept = seq[:, seq.shape[1] - lags :].reshape(batch, -1)
        return out, torch.cat([history[:, :1].clamp_min(1.0), kept], dim=1)

    def input(self, model: EdgeLSTM, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * model.in_scale + model.in_shift

    def output(self, model: EdgeLSTM, out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        y = out * model.out_scale + model.out_shift
        return y if model.last_select is None else y + inputs @ model.last_select


# The forecast highway's buffers (not saved: they follow from the config) and their tensors.
HIGHWAY_BUFFERS = {
    "hw_select": HIGHWAY_SELECT,
    "hw_weight": HIGHWAY_WEIGHT,
    "hw_bias": HIGHWAY_BIAS,
}


# classify's buffers: only the input normalization (its logits need no output stage).
CLASSIFY_BUFFERS = {"in_scale": NORM_IN_SCALE, "in_shift": NORM_IN_SHIFT}


class InputNormalizationStages(TorchStages):
    """classify in torch: raw values normalized in; the head's logits are the output."""

    buffers = MappingProxyType(CLASSIFY_BUFFERS)

    def build(self, model: EdgeLSTM, config: ModelConfig) -> None:
        norm = config.spec.config_tensors(config)
        for buffer, name in CLASSIFY_BUFFERS.items():
            model.register_buffer(buffer, torch.from_numpy(norm[name]))

    def input(self, model: EdgeLSTM, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * model.in_scale + model.in_shift
