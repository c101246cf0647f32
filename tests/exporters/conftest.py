"""Shared fixtures: a small EdgeLSTM trained for a few hundred steps, its float export, and
a held-out token stream. Built once per session; training takes a few seconds on one core."""

from __future__ import annotations

import pytest
import torch
from export_helpers import (
    STREAM_STEPS,
    TRAIN_CHARS,
    TRAIN_STEPS,
    Trained,
    corpus_text,
    encode,
    make_config,
    train_small,
)

from lstm_edge.exporters.onnx_export import ort_session
from lstm_edge.toolchain.export import build_onnx


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    text = corpus_text()
    train_text = text[:TRAIN_CHARS]
    held_out = text[TRAIN_CHARS : TRAIN_CHARS + STREAM_STEPS]
    config = make_config(train_text, embed=32, hidden=128, layers=2)
    # One thread: deterministic, and fair to the other jobs on a small CI machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train_small(encode(train_text, config), config, TRAIN_STEPS)
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("trained") / "model.onnx"
    path.write_bytes(build_onnx(model).SerializeToString())
    return Trained(model=model, stream=encode(held_out, config), onnx_path=path)


@pytest.fixture(scope="session")
def float_session(trained):
    return ort_session(trained.onnx_path)
