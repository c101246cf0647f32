"""The runtime deploys without the training stack: importing it, loading a model and
stepping it must not pull torch, typer, onnx or the toolchain/exporters into sys.modules."""

import subprocess
import sys

import pytest

FORBIDDEN = (
    "torch",
    "typer",
    "onnx",  # the python package; onnxruntime is a different top-level name
    "onnxscript",
    "lstm_edge.toolchain",
    "lstm_edge.exporters",
)


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
    assert "onnxruntime" not in modules  # only the ort backend needs it, on first use


@pytest.mark.parametrize("backend", ["numpy", "ort"])
def test_load_and_step_pull_in_no_training_stack(artifacts, backend):
    code = (
        "import numpy as np, lstm_edge.runtime as rt\n"
        f"m = rt.load({str(artifacts['int8'])!r}, {backend!r})\n"
        "logits, s = m.step(np.array([1, 2]), m.initial_state(2))\n"
        "assert np.isfinite(logits).all() and logits.shape == (2, 12)\n"
    )
    modules = _modules_after(code)
    assert "lstm_edge.runtime.backends.numpy_ref" in modules or backend != "numpy"
    assert _leaks(modules) == []
    assert ("onnxruntime" in modules) == (backend == "ort")


def test_probe_detects_a_leak():
    # Guard against a probe that can never fail: importing the toolchain must be flagged.
    modules = _modules_after("import lstm_edge.toolchain.model")
    assert "torch" in _leaks(modules)
