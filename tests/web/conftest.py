"""Fixtures of the web tests: the tiny typing model (tests/typing) as float and int8 sites
written by `lstm-edge web`, and the tools they need (missing ones fail when CI is set)."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "typing"))
from typing_support import tiny_model

from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.toolchain.export import build_onnx

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require(tool: str, present: bool, install: str) -> None:
    """Skip (with the reason) when a tool is missing, but fail when CI is set: CI installs
    them (.ci/run), so a missing one there is a broken setup, not a reason to skip."""
    if present:
        return
    message = f"{tool} is missing (install: {install})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_wasm_tools() -> None:
    from lstm_edge.toolchain.web import MULTIARCH_LIBC, SYSROOTS

    require("clang", shutil.which("clang") is not None, "apt-get install clang")
    require("wasm-ld", shutil.which("wasm-ld") is not None, "apt-get install lld")
    sysroot = MULTIARCH_LIBC.is_file() or any((r / "include").is_dir() for r in SYSROOTS)
    require(
        "wasi-libc", sysroot or bool(os.environ.get("WASI_SYSROOT")), "apt-get install wasi-libc"
    )


def require_node() -> str:
    node = shutil.which("node")
    require("node", node is not None, "apt-get install nodejs")
    return node  # type: ignore[return-value]


@dataclass(frozen=True)
class Sites:
    float_path: Path
    int8_path: Path
    float_site: Path
    int8_site: Path


@pytest.fixture(scope="session")
def sites(tmp_path_factory) -> Sites:
    require_wasm_tools()
    from lstm_edge.toolchain.web import write_site

    folder = tmp_path_factory.mktemp("web")
    proto = build_onnx(tiny_model())
    float_path, int8_path = folder / "tiny.onnx", folder / "tiny.int8.onnx"
    onnx.save(proto, float_path)
    onnx.save(quantize_proto(proto, "int8"), int8_path)
    write_site(float_path, folder / "site")
    write_site(int8_path, folder / "site-int8")
    return Sites(float_path, int8_path, folder / "site", folder / "site-int8")
