"""Run an example script as a user would, and fail if it imported the training stack.

Shared by the example tests (predictive typing, sensor monitoring): the examples promise
to need `lstm_edge.runtime` alone, so torch, typer, onnx and the toolchain/exporters
packages must never reach `sys.modules` of the process that runs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

_PROBE = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code
leaked = [m for m in sys.modules if m.split(".")[0] in ("torch", "typer", "onnx")
          or m.startswith(("lstm_edge.toolchain", "lstm_edge.exporters"))]
if leaked:
    sys.exit(f"imported {leaked}")
sys.exit(code)
"""


def run_example(
    script: Path, *args: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess:
    """`python script args...` in a fresh interpreter; exit status 1 and "imported [...]"
    on stderr if it loaded any of the training stack."""
    return subprocess.run(
        [sys.executable, "-c", _PROBE, str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
