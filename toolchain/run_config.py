"""The settings of a training run, torch-free so the CLI can show their defaults in --help
without importing torch (`lstm_edge.toolchain.train` imports torch; it re-exports these)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lstm_edge.runtime.errors import LstmEdgeError


class TrainingError(LstmEdgeError):
    """Training cannot start or continue (bad options, output folder, resume state)."""


@dataclass(frozen=True)
class RunConfig:
    """Every setting that shapes the result of a run; saved with it and reused on resume."""

    hidden: int = 256
    layers: int = 2
    embed: int = 64
    seq_len: int = 128
    batch_size: int = 32  # global: the number of contiguous streams, over all ranks
    steps: int = 3000
    lr: float = 3e-3
    min_lr_fraction: float = 0.1  # cosine decays to lr * this
    warmup_steps: int = 100  # at most steps // 10
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # The built-in corpus is small (420K training chars) for a 2x256 LSTM: without dropout
    # validation BPC stopped improving after ~1/3 of the default steps.
    dropout: float = 0.2
    seed: int = 0
    eval_every: int = 250
    eval_streams: int = 16  # the validation text is read as this many contiguous streams
    log_every: int = 10
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    max_vocab: int | None = None
    min_count: int = 1

    def check(self) -> None:
        positive = ("hidden", "layers", "embed", "seq_len", "batch_size", "steps")
        positive += ("eval_every", "eval_streams", "log_every", "min_count")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TrainingError(f"{name} is {value!r} (expected an integer >= 1)")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise TrainingError(f"{name} is {getattr(self, name)!r} (expected > 0)")
        if not 0 <= self.min_lr_fraction <= 1:
            raise TrainingError(f"min_lr_fraction is {self.min_lr_fraction!r} (expected 0..1)")
        if not 0 <= self.dropout < 1:
            raise TrainingError(f"dropout is {self.dropout!r} (expected 0 <= dropout < 1)")
        for name in ("warmup_steps", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise TrainingError(f"{name} is {getattr(self, name)!r} (expected >= 0)")

    def lr_at(self, step: int) -> float:
        """Learning rate for the update that makes step `step` (0-based): linear warmup,
        then cosine down to lr * min_lr_fraction. A pure function of the step, so a
        resumed run follows the same schedule."""
        # Warmup never takes more than a tenth of a short run.
        warmup = min(self.warmup_steps, self.steps // 10)
        if step < warmup:
            return self.lr * (step + 1) / warmup
        span = max(1, self.steps - warmup)
        progress = min(1.0, (step - warmup) / span)
        floor = self.lr * self.min_lr_fraction
        return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
