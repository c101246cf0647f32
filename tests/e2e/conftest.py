"""One tiny pipeline run shared by the end-to-end tests (tiny corpus, tiny model)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_edge.toolchain.cli import app

WORDS = [
    "the",
    "state",
    "is",
    "owned",
    "by",
    "the",
    "caller",
    "and",
    "carried",
    "from",
    "step",
    "to",
    "step",
    "while",
    "the",
    "model",
    "stays",
    "immutable",
    "so",
    "many",
    "streams",
    "can",
    "share",
    "one",
    "model",
    "and",
    "a",
    "beam",
    "can",
    "branch",
    "cheaply",
]
VALIDATE_STEPS = 1200  # the test split of the 30k-char corpus is 1500 characters


def tiny_corpus(path: Path, chars: int = 30_000) -> Path:
    """Seeded pseudo-sentences: enough structure for 30 training steps to learn something."""
    rng = random.Random(0)
    parts: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        sentence = sentence.capitalize() + ".\n"
        parts.append(sentence)
        size += len(sentence)
    path.write_text("".join(parts), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def validate_steps() -> int:
    return VALIDATE_STEPS


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`lstm-edge pipeline` end to end: train 30 steps of a 1x32 LSTM, export, int8, validate."""
    root = tmp_path_factory.mktemp("e2e")
    corpus = tiny_corpus(root / "corpus.txt")
    out = root / "bundle"
    result = CliRunner().invoke(
        app,
        [
            "pipeline",
            "--corpus", str(corpus),
            "--out", str(out),
            "--steps", "30",
            "--hidden", "32",
            "--layers", "1",
            "--embed", "16",
            "--seq-len", "32",
            "--batch-size", "8",
            "--validate-steps", str(VALIDATE_STEPS),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out
