"""Shared pieces of the predictive-typing tests: the tiny vocabulary and seeded EdgeLSTM
(exported float and int8 by the project's own exporter), and torch as the reference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstm_edge.runtime.config import UNK_CHAR, ModelConfig
from lstm_edge.toolchain.model import EdgeLSTM

# Word characters a, b, c, T; boundaries space, ".", newline (also the start context).
VOCAB = (UNK_CHAR, " ", ".", "\n", "a", "b", "c", "T")
WORD_CHARS = "abcT"
BOUNDARIES = " .\n"


@dataclass(frozen=True)
class Tiny:
    config: ModelConfig
    torch_model: EdgeLSTM
    float_path: Path
    int8_path: Path


# What the tiny model is trained on: a few words over WORD_CHARS, so that it has real
# word structure (completions worth accepting) while staying tiny and fast.
TRAIN_TEXT = (
    "Tabac cab bacab ab. Tabac abcab cab ab bacab.\n"
    "cab Tabac ab bacab. abcab Tabac cab.\nab abcab bacab cab Tabac.\n"
)


def tiny_model(seed: int = 0, steps: int = 120) -> EdgeLSTM:
    """A 2-layer EdgeLSTM (hidden 8) trained for a moment on TRAIN_TEXT; deterministic."""
    threads = torch.get_num_threads()
    # One thread: these matrices are tiny, and a thread pool on a shared 2-core machine
    # made this 10-20x slower.
    torch.set_num_threads(1)
    try:
        return _train(seed, steps)
    finally:
        torch.set_num_threads(threads)


def _train(seed: int, steps: int) -> EdgeLSTM:
    torch.manual_seed(seed)
    config = ModelConfig(vocab=VOCAB, embed_size=4, hidden_size=8, num_layers=2)
    model = EdgeLSTM(config)
    ids = torch.tensor([VOCAB.index(ch) for ch in TRAIN_TEXT * 4])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    seq = 32
    starts = torch.arange(0, len(ids) - seq - 1, 7)
    for _ in range(steps):
        x = torch.stack([ids[s : s + seq] for s in starts])
        y = torch.stack([ids[s + 1 : s + seq + 1] for s in starts])
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(VOCAB)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def torch_logprobs(model: EdgeLSTM, sequences: list[np.ndarray]) -> np.ndarray:
    """log-softmax after each token of equally long sequences: [n, time, vocab] float64."""
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(np.stack(sequences)))
    return torch.log_softmax(logits.double(), dim=-1).numpy()
