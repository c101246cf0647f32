"""Helpers for the exporter tests: a small corpus, a tiny trainer, torch reference logits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import torch

from lstm_edge.runtime.config import UNK_CHAR, UNK_ID, ModelConfig
from lstm_edge.toolchain.model import EdgeLSTM

STREAM_STEPS = 2000
TRAIN_CHARS = 60_000
TRAIN_STEPS = 200


@dataclass(frozen=True)
class Trained:
    model: EdgeLSTM
    stream: np.ndarray  # held-out int64 ids, STREAM_STEPS long
    onnx_path: Path  # float export of `model`


def corpus_text() -> str:
    """The CPython documentation text that ships with Python: no download, stable per version."""
    return "".join(topics[k] for k in sorted(topics))


def make_config(text: str, embed: int, hidden: int, layers: int) -> ModelConfig:
    counts = Counter(text)
    counts.pop(UNK_CHAR, None)
    chars = sorted(ch for ch, n in counts.items() if n >= 5)
    return ModelConfig(
        vocab=(UNK_CHAR, *chars), embed_size=embed, hidden_size=hidden, num_layers=layers
    )


def encode(text: str, config: ModelConfig) -> np.ndarray:
    ids = {ch: i for i, ch in enumerate(config.vocab)}
    return np.array([ids.get(ch, UNK_ID) for ch in text], dtype=np.int64)


def train_small(ids: np.ndarray, config: ModelConfig, steps: int, seed: int = 0) -> EdgeLSTM:
    """Plain truncated-BPTT training; enough to make the logits peaked like a real model's."""
    torch.manual_seed(seed)
    model = EdgeLSTM(config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = torch.from_numpy(ids)
    rng = np.random.default_rng(seed)
    batch, seq = 16, 64
    for _ in range(steps):
        starts = rng.integers(0, len(ids) - seq - 1, size=batch)
        x = torch.stack([data[s : s + seq] for s in starts])
        y = torch.stack([data[s + 1 : s + seq + 1] for s in starts])
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, config.vocab_size), y.reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def torch_logits(model: EdgeLSTM, tokens: np.ndarray, state=None) -> np.ndarray:
    """Torch logits [batch, time, vocab] for int64 tokens [batch, time]."""
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(tokens), state)
    return logits.numpy()
