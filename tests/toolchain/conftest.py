"""Shared fixtures for the training-side tests: tiny real-text corpora and tiny runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstm_edge.toolchain.data import load_corpus
from lstm_edge.toolchain.train import TrainOptions

# Tiny model and data: every run below takes well under a second of compute.
TINY = dict(
    hidden=16,
    layers=1,
    embed=8,
    seq_len=16,
    batch_size=4,
    steps=12,
    eval_every=4,
    eval_streams=2,
    log_every=1,
    threads=1,
    progress=False,
)


def real_text(n: int) -> str:
    """The first n characters of the built-in corpus: real text, no download."""
    return load_corpus(None).text[:n]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """About 6 KB: enough for the CLI defaults (32 streams x 128 chars) to take a step."""
    path = tmp_path / "corpus.txt"
    path.write_text(real_text(6000), encoding="utf-8")
    return path


@pytest.fixture
def short_corpus(tmp_path: Path) -> Path:
    """So short that a pass over it is 5 steps of TINY: tests cross epoch boundaries."""
    path = tmp_path / "short.txt"
    path.write_text(real_text(400), encoding="utf-8")
    return path


@pytest.fixture
def tiny():
    """Factory of TrainOptions for a tiny run (test modules cannot import conftest)."""

    def make(out: Path, corpus: Path, **overrides) -> TrainOptions:
        return TrainOptions(out=out, corpus=corpus, **{**TINY, **overrides})

    return make
