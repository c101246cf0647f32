"""Shared pieces of the web tests: tool checks (a missing tool fails when CI is set) and
the sites the fixtures write."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULES = ("model.wasm", "model-relaxed.wasm")  # SIMD128, relaxed SIMD


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
    from lstm_edge.toolchain.web import COMPILERS, MULTIARCH_LIBC, SYSROOTS

    clang = any(shutil.which(c) for c in COMPILERS) or bool(os.environ.get("WASM_CC"))
    require("clang", clang, "apt-get install clang-19")
    sysroot = MULTIARCH_LIBC.is_file() or any((r / "include").is_dir() for r in SYSROOTS)
    require(
        "wasi-libc", sysroot or bool(os.environ.get("WASI_SYSROOT")), "apt-get install wasi-libc"
    )


def require_module(sites: Sites, module: str) -> None:
    """model-relaxed.wasm needs clang 19 at build time (CI installs it)."""
    from lstm_edge.toolchain.web import RELAXED_WASM_FILE

    if module == RELAXED_WASM_FILE:
        require("clang 19 (relaxed SIMD)", sites.relaxed, "apt-get install clang-19 lld-19")


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
    relaxed: bool  # the sites have model-relaxed.wasm
