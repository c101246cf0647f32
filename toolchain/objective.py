"""What a run trains by: the loss in the model's normalized output units and the metric
reported from it (each task picks one: `TaskTraining.objective`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from lstm_edge.toolchain.run_config import RunConfig

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Objective:
    """What a task trains and validates by: loss in the model's normalized output units
    (char-lm logits vs ids; forecast standard units) and the metric shown from it."""

    loss: str  # "cross-entropy" | "mse" | "mae"
    metric: str  # "bpc" | "nrmse" | "nmae": the key in metrics.jsonl
    unit: str  # how the metric is named to the user
    rate_key: str  # "chars_per_s" | "rows_per_s"

    @classmethod
    def of(cls, run: RunConfig) -> Objective:
        """The objective of the run's task."""
        from lstm_edge.toolchain.tasks import training

        return training(run.task).objective(run)

    def __call__(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.loss == "cross-entropy":
            return nn.functional.cross_entropy(
                out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction=reduction
            )
        if self.loss == "mse":
            return nn.functional.mse_loss(out, y, reduction=reduction)
        return nn.functional.l1_loss(out, y, reduction=reduction)

    def value(self, loss: float) -> float:
        """Mean loss -> the metric: bits per character, sqrt(MSE) or the MAE itself."""
        if self.metric == "bpc":
            return loss / LN2
        if self.metric == "nrmse":
            return math.sqrt(loss) if loss >= 0 else math.nan
        return loss
