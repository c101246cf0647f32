"""Shared pieces of the web tests: tool checks (a missing tool fails when CI is set) and
the sites the fixtures write."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest


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
