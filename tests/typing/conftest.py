"""Fixtures of the predictive-typing tests: the tiny model as float and int8 artifacts."""

from __future__ import annotations

import onnx
import pytest
from typing_support import Tiny, tiny_model

from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.toolchain.export import build_onnx


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Tiny:
    folder = tmp_path_factory.mktemp("typing-models")
    model = tiny_model()
    proto = build_onnx(model)
    float_path = folder / "tiny.onnx"
    int8_path = folder / "tiny.int8.onnx"
    onnx.save(proto, float_path)
    onnx.save(quantize_proto(proto, "int8"), int8_path)
    return Tiny(model.config, model, float_path, int8_path)


@pytest.fixture(scope="session")
def numpy_model(tiny):
    from lstm_edge.runtime import load

    return load(tiny.float_path, backend="numpy")
