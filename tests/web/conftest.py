"""Fixtures of the web tests: the tiny typing model (tests/typing) as float and int8 sites
written by `lstm-edge web` (helpers in web_support.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from web_support import Sites, require_wasm_tools

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "typing"))
from typing_support import tiny_model

from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.toolchain.export import build_onnx


@pytest.fixture(scope="session")
def sites(tmp_path_factory) -> Sites:
    require_wasm_tools()
    from lstm_edge.toolchain.web import write_site

    folder = tmp_path_factory.mktemp("web")
    proto = build_onnx(tiny_model())
    float_path, int8_path = folder / "tiny.onnx", folder / "tiny.int8.onnx"
    onnx.save(proto, float_path)
    onnx.save(quantize_proto(proto, "int8"), int8_path)
    site = write_site(float_path, folder / "site")
    write_site(int8_path, folder / "site-int8")
    return Sites(float_path, int8_path, folder / "site", folder / "site-int8", site.relaxed)
