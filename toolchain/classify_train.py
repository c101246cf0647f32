"""classify's torch side of training: padded sequence batches, the loss, the validation loss.

Batches are padded, not packed: sequences of one batch are right-padded to the longest, and
since the LSTM is causal, a padded step never changes the outputs at a real one; the loss
ignores padded steps (target -1), so a padded batch gives exactly the loss of its sequences
run alone (tests/toolchain/test_classify_train.py checks it). Each pass shuffles the
sequences, groups them by length (buckets of 20 batches) so little padding is computed, and
shuffles the batch order; every batch starts from a zero state.

The loss (`ClassifyObjective`): the class-weighted cross-entropy of the running prediction at
every step, step t of a sequence of length L weighted (t + 1) / L (normalized to sum to one
per sequence), averaged over the sequences. The last step (the
sequence's prediction) counts most, but a correct answer earlier lowers the loss too, which
is what a device acting on the running answer needs; steps before any evidence (a fault that
begins in the middle) weigh little, so the model is not pushed to guess there. Class weights
are "balanced" (n / (K * count) of the training split), so a rare class costs as much as the
majority in total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lstm_edge.toolchain.model import EdgeLSTM
from lstm_edge.toolchain.objective import Objective
from lstm_edge.toolchain.tasks.training_base import Pairs

PAD = -1  # the target of a padded step
BUCKET_BATCHES = 20  # length buckets hold this many batches


def pad(seqs: list[np.ndarray], labels: np.ndarray) -> Pairs:
    """Sequences [len_i, F] (rows) or [len_i] (token ids) -> Pairs(inputs [n, max_len(, F)]
    zero-padded, targets [n, max_len] the label at every real step and PAD after)."""
    n, longest = len(seqs), max(len(s) for s in seqs)
    x = np.zeros((n, longest, *seqs[0].shape[1:]), seqs[0].dtype)
    y = np.full((n, longest), PAD, np.int64)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
        y[i, : len(s)] = labels[i]
    return Pairs(x, y)


def balanced_weights(labels: np.ndarray, classes: int) -> tuple[float, ...]:
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    return tuple(float(v) for v in len(labels) / (classes * np.maximum(counts, 1)))


@dataclass(frozen=True)
class ClassifyObjective(Objective):
    """Class-weighted per-step cross-entropy, step t of L weighted (t + 1) / L (module
    docstring), averaged over each sequence's steps and then over the sequences; `value`
    is the loss itself (nats). Per sequence, not per step: every rank of a torchrun holds
    the same number of sequences, so the mean of the ranks' losses is the whole batch's."""

    class_weights: tuple[float, ...] = ()

    def step_weights(self, y: torch.Tensor) -> torch.Tensor:
        """[B, T]: class weight x (t + 1) / sum over the sequence's steps of (t + 1), so a
        sequence's weights sum to its class weight; 0 on padding."""
        real = y != PAD
        lengths = real.sum(dim=1, keepdim=True).clamp(min=1)
        t = torch.arange(1, y.shape[1] + 1, dtype=torch.float32).expand_as(y)
        cw = torch.tensor(self.class_weights, dtype=torch.float32)[y.clamp(min=0)]
        ramp = 2.0 * t / (lengths * (lengths + 1))
        return torch.where(real, cw * ramp, torch.zeros(()))

    def __call__(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        ce = nn.functional.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.clamp(min=0).reshape(-1), reduction="none"
        ).reshape(y.shape)
        per_sequence = (ce * self.step_weights(y)).sum(dim=1)
        return per_sequence.sum() if reduction == "sum" else per_sequence.mean()

    def value(self, loss: float) -> float:
        return loss


class SequenceBatches:
    """This rank's padded batches of whole sequences (module docstring)."""

    def __init__(self, pairs: Pairs, batch_size: int, seed: int, rank: int, world: int) -> None:
        self.x, self.y = torch.from_numpy(pairs.inputs), torch.from_numpy(pairs.targets)
        self.lengths = (pairs.targets != PAD).sum(axis=1)
        self.batch_size, self.seed = batch_size, seed
        self.per = batch_size // world
        self.mine = slice(rank * self.per, (rank + 1) * self.per)
        self.chunks = max(1, len(self.lengths) // batch_size)  # full batches per pass
        self._order: tuple[int, list[np.ndarray]] | None = None

    def starts_fresh(self, step: int) -> bool:
        return True  # every batch is whole sequences

    def _batches(self, epoch: int) -> list[np.ndarray]:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.lengths))
            bucket = BUCKET_BATCHES * self.batch_size
            for a in range(0, len(order), bucket):  # sort by length inside each bucket
                part = order[a : a + bucket]
                order[a : a + bucket] = part[np.argsort(self.lengths[part], kind="stable")]
            batches = [
                order[k * self.batch_size : (k + 1) * self.batch_size] for k in range(self.chunks)
            ]
            self._order = (epoch, [batches[i] for i in rng.permutation(len(batches))])
        return self._order[1]

    def chunk(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self._batches(step // self.chunks)[step % self.chunks][self.mine]
        longest = int(self.lengths[rows].max())
        return self.x[rows, :longest], self.y[rows, :longest]


@torch.no_grad()
def validation_loss(model: EdgeLSTM, pairs: Pairs, objective: Objective, batch: int = 64) -> float:
    """The objective's weighted mean over every sequence of `pairs` (padded batches, in
    length order: the result does not depend on the batching)."""
    lengths = (pairs.targets != PAD).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    was_training = model.training
    model.eval()
    total = 0.0
    for a in range(0, len(order), batch):
        rows = order[a : a + batch]
        longest = int(lengths[rows].max())
        x = torch.from_numpy(pairs.inputs[rows, :longest])
        y = torch.from_numpy(pairs.targets[rows, :longest])
        out, _ = model.forward_normalized(x)
        total += float(objective(out, y, reduction="sum"))
    model.train(was_training)
    return total / len(order) if len(order) else math.nan
