"""`lstm-edge info` on ONNX artifacts: config, scheme and sizes, and refusal of broken files."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from lstm_edge.exporters.quantize import quantize_file
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.toolchain.checkpoint import save_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.export import export_checkpoint
from lstm_edge.toolchain.model import EdgeLSTM

runner = CliRunner()
CFG = ModelConfig(vocab=("\ufffd", *"abcdef "), embed_size=5, hidden_size=7, num_layers=2)


def _artifacts(tmp_path):
    torch.manual_seed(0)
    model = EdgeLSTM(CFG)
    save_checkpoint(tmp_path / "ck", model)
    float_path = tmp_path / "m.onnx"
    export_checkpoint(tmp_path / "ck", float_path, check_steps=50)
    int8_path = tmp_path / "m.int8.onnx"
    quantize_file(float_path, int8_path, "int8")
    return model, float_path, int8_path


def test_info_describes_float_and_int8_artifacts(tmp_path):
    model, float_path, int8_path = _artifacts(tmp_path)
    params = sum(p.numel() for p in model.parameters())
    # torch keeps two LSTM bias vectors per layer, as does ONNX's B (Wb then Rb): same count.
    for path, scheme in ((float_path, "none"), (int8_path, "int8")):
        r = runner.invoke(app, ["info", str(path), "--json"])
        assert r.exit_code == 0, r.output
        got = json.loads(r.output)
        assert got["kind"] == "onnx" and got["scheme"] == scheme
        assert got["config"]["hidden_size"] == CFG.hidden_size
        assert got["config"]["vocab_size"] == CFG.vocab_size
        assert got["parameters"] == params
        assert got["file_bytes"] == path.stat().st_size
    got = json.loads(runner.invoke(app, ["info", str(int8_path), "--json"]).output)
    # The quantization table: the int8 W of layer 0 is 1 byte a weight plus 4+1 per row.
    rows = 4 * CFG.hidden_size
    assert got["tensors"]["lstm.0.W"]["bytes"] == (
        f"{rows * CFG.embed_size * 4:,} -> {rows * CFG.embed_size + rows * 5:,}"
    )
    r = runner.invoke(app, ["info", str(int8_path)])
    assert r.exit_code == 0 and "int8" in r.output


def test_info_refuses_a_broken_onnx_file(tmp_path):
    _, float_path, _ = _artifacts(tmp_path)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(float_path.read_bytes()[:200])
    r = runner.invoke(app, ["info", str(broken)])
    assert r.exit_code == 2
    assert "not a valid ONNX model" in r.output
    assert "Traceback" not in r.output
