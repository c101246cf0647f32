"""The runtime deploys without the training stack: importing it must not pull torch & co."""

import subprocess
import sys

FORBIDDEN = ("torch", "typer", "onnxscript", "lstm_edge.toolchain", "lstm_edge.exporters")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def _leaks(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


def test_import_runtime_pulls_in_no_training_stack():
    modules = _modules_after("import lstm_edge.runtime")
    assert "lstm_edge.runtime" in modules  # the probe itself worked
    assert _leaks(modules) == []


def test_probe_detects_a_leak():
    # Guard against a probe that can never fail: importing the toolchain must be flagged.
    modules = _modules_after("import lstm_edge.toolchain.model")
    assert "torch" in _leaks(modules)
