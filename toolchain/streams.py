"""The training data as the loop reads it: aligned pairs cut into contiguous streams.

The training split is cut into B contiguous streams (B = batch size); step k reads the k-th
chunk of `seq_len` positions of every stream, each rank its share of the streams.
`evaluate` reads a split the same way with the state carried."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lstm_edge.toolchain.distributed import Dist
from lstm_edge.toolchain.model import EdgeLSTM
from lstm_edge.toolchain.objective import Objective
from lstm_edge.toolchain.run_config import RunConfig
from lstm_edge.toolchain.tasks.training_base import Pairs


@dataclass(frozen=True)
class Streams:
    """This rank's streams: inputs/targets [local streams, chunks * seq_len (, width)]."""

    x: torch.Tensor
    y: torch.Tensor
    chunks: int  # chunks per pass over the data (steps per epoch)
    seq_len: int

    def starts_fresh(self, step: int) -> bool:
        """A new pass over the data starts from zeros; within it the state is carried."""
        return step % self.chunks == 0

    def chunk(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = step % self.chunks
        cols = slice(j * self.seq_len, (j + 1) * self.seq_len)
        return self.x[:, cols], self.y[:, cols]


def make_streams(pairs: Pairs, n: int, length: int, seq_len: int | None = None) -> Streams:
    """n contiguous streams of `length` positions each."""
    stride = len(pairs) // n
    x = np.stack([pairs.inputs[i * stride : i * stride + length] for i in range(n)])
    y = np.stack([pairs.targets[i * stride : i * stride + length] for i in range(n)])
    seq = seq_len or length
    return Streams(torch.from_numpy(x), torch.from_numpy(y), length // seq, seq)


def chunks_per_pass(pairs: Pairs, run: RunConfig) -> int:
    """Steps per pass over the training split."""
    return (len(pairs) // run.batch_size) // run.seq_len


@dataclass(frozen=True)
class RandomWindows:
    """Every step: `batch_size` windows of `seq_len` positions at random starts, each from a
    zero state (this rank's share of them). For a training split too short to cut into
    streams of several chunks: there, contiguous streams would give the same few windows
    at every step (weekly CO2, 2,055 training rows, 16 streams of 96: one fixed window per
    stream, a quarter of the rows never read, the state reset at every step anyway).
    The starts are a function of (seed, step), so a resumed run reads the same windows."""

    x: torch.Tensor  # [positions, width] the whole split
    y: torch.Tensor
    chunks: int  # steps per pass: positions / (batch_size * seq_len)
    seq_len: int
    batch_size: int
    seed: int
    mine: slice  # this rank's windows

    def starts_fresh(self, step: int) -> bool:
        return True

    def starts(self, step: int) -> np.ndarray:
        """The start positions of step `step`'s windows (all ranks')."""
        rng = np.random.default_rng([self.seed, step])
        return rng.integers(0, self.x.shape[0] - self.seq_len + 1, self.batch_size)

    def chunk(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.starts(step)[self.mine, None] + np.arange(self.seq_len)
        index = torch.from_numpy(rows)
        return self.x[index], self.y[index]


def random_windows(pairs: Pairs, run: RunConfig, d: Dist) -> RandomWindows:
    per = run.batch_size // d.world
    return RandomWindows(
        torch.from_numpy(pairs.inputs),
        torch.from_numpy(pairs.targets),
        max(1, chunks_per_pass(pairs, run)),
        run.seq_len,
        run.batch_size,
        run.seed,
        slice(d.rank * per, (d.rank + 1) * per),
    )


def train_streams(pairs: Pairs, run: RunConfig, d: Dist) -> Streams:
    chunks = chunks_per_pass(pairs, run)
    full = make_streams(pairs, run.batch_size, chunks * run.seq_len, run.seq_len)
    per = run.batch_size // d.world
    mine = slice(d.rank * per, (d.rank + 1) * per)
    return Streams(full.x[mine], full.y[mine], chunks, run.seq_len)


@torch.no_grad()
def evaluate(
    model: EdgeLSTM,
    pairs: Pairs | np.ndarray,
    streams: int,
    seq_len: int,
    objective: Objective | None = None,
) -> float:
    """Mean loss (char-lm: nats/char) over `pairs` read as contiguous streams, state carried.

    `pairs` may be a char-lm id array (each id predicts the next); the objective defaults
    to the task's default (cross-entropy; forecast: MSE in standard units)."""
    if isinstance(pairs, np.ndarray):
        pairs = Pairs(pairs[:-1], pairs[1:])
    objective = objective or Objective.of(RunConfig(task=model.config.task))
    n = max(1, min(streams, len(pairs)))
    length = len(pairs) // n
    s = make_streams(pairs, n, length)
    was_training = model.training
    model.eval()
    state = model.initial_state(n)
    total, count = 0.0, 0
    for start in range(0, length, seq_len):
        x, y = s.x[:, start : start + seq_len], s.y[:, start : start + seq_len]
        out, state = model.forward_normalized(x, state)
        total += objective(out, y, reduction="sum").item()
        count += y.numel()
    model.train(was_training)
    return total / count
