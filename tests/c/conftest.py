"""Tiny models for the C tests: float and int8 artifacts of a EdgeLSTM whose weights are
scaled up so the gates leave their linear range and the logits spread (a freshly
initialized model's logits are all near 0, which would make any comparison weak)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM

IN_CI = bool(os.environ.get("CI"))


@dataclass(frozen=True)
class TinyModels:
    config: ModelConfig
    float_path: Path
    int8_path: Path
    stream: np.ndarray  # int64 token ids, a long pseudo-random stream


def tiny_model(config: ModelConfig, seed: int = 0, gain: float = 3.0) -> EdgeLSTM:
    torch.manual_seed(seed)
    model = EdgeLSTM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gain)
    return model


def write_models(folder: Path, config: ModelConfig, seed: int = 0) -> tuple[Path, Path]:
    proto = build_onnx(tiny_model(config, seed))
    float_path, int8_path = folder / "tiny.onnx", folder / "tiny.int8.onnx"
    float_path.write_bytes(proto.SerializeToString())
    int8_path.write_bytes(quantize_proto(proto, "int8").SerializeToString())
    return float_path, int8_path


@pytest.fixture(scope="session", autouse=True)
def c_cache(tmp_path_factory):
    """Compiled libraries go to a temp folder, never to the user's ~/.cache."""
    old = os.environ.get("LSTM_EDGE_CACHE")
    os.environ["LSTM_EDGE_CACHE"] = str(tmp_path_factory.mktemp("c-cache"))
    yield Path(os.environ["LSTM_EDGE_CACHE"])
    if old is None:
        del os.environ["LSTM_EDGE_CACHE"]
    else:
        os.environ["LSTM_EDGE_CACHE"] = old


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyModels:
    # Odd sizes (embed 6, hidden 13) exercise the kernels' remainder loops (inputs not a
    # multiple of 4); two layers exercise the layer-to-layer hand-over.
    config = ModelConfig(
        vocab=(UNK_CHAR, *"abcdefgh ijklmno.,"), embed_size=6, hidden_size=13, num_layers=2
    )
    float_path, int8_path = write_models(tmp_path_factory.mktemp("tiny"), config)
    stream = np.random.default_rng(1).integers(0, config.vocab_size, size=3000)
    return TinyModels(config, float_path, int8_path, stream)


def _require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"{missing} not installed (CI installs them; see the README)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def require_tools():
    """require_tools(*names): skip when a tool is missing, except in CI (env CI set),
    where the test fails instead: CI installs them."""
    return _require_tools


@pytest.fixture(scope="session")
def model_factory():
    """(tiny_model, write_models) for tests that need a model of their own."""
    return tiny_model, write_models
