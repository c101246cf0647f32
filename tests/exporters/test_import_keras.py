"""A Keras model converted by tf2onnx (committed fixture, see tests/data/import/README.md)
imports, and the artifact reproduces the Keras model's own outputs on every backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from typer.testing import CliRunner

from lstm_edge.runtime import load
from lstm_edge.toolchain.cli import app

DATA = Path(__file__).resolve().parents[1] / "data" / "import"


def test_keras_tf2onnx_file_imports_and_matches_keras(tmp_path: Path) -> None:
    source = DATA / "keras_lstm.onnx"
    assert "ai.onnx.ml" in [o.domain for o in onnx.load(str(source)).opset_import]
    out = tmp_path / "keras.onnx"
    r = CliRunner().invoke(app, ["import", str(source), "-o", str(out)])
    assert r.exit_code == 0, r.output
    ref = np.load(DATA / "keras_reference.npz")
    for backend in ("numpy", "ort", "c"):
        model = load(out, backend=backend)
        assert (model.config.tokens, model.config.num_layers, model.config.hidden_size) == (
            12,
            2,
            6,
        )
        got, _ = model.step(ref["tokens"], model.initial_state(1))
        # TensorFlow's kernels vs ours, float32 both: rounding only.
        assert float(np.abs(got - ref["outputs"]).max()) <= 1e-5, backend
