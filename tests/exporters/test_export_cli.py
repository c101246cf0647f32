"""`lstm-edge export` and `lstm-edge quantize` through Typer's CliRunner: exit codes, messages."""

from __future__ import annotations

import onnx
import torch
from typer.testing import CliRunner

from lstm_edge.exporters import onnx_export
from lstm_edge.runtime.config import META_QUANTIZATION, ModelConfig
from lstm_edge.toolchain.checkpoint import save_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.model import EdgeLSTM

runner = CliRunner()
CFG = ModelConfig(vocab=("\ufffd", *"abcde "), embed_size=4, hidden_size=6, num_layers=2)


def checkpoint(folder):
    torch.manual_seed(0)
    save_checkpoint(folder, EdgeLSTM(CFG))
    return folder


def test_export_then_quantize_every_scheme(tmp_path):
    ck = checkpoint(tmp_path / "ck")
    out = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export", str(ck), "-o", str(out), "--check-steps", "200"])
    assert r.exit_code == 0, r.output
    assert "checked 200 steps" in r.output and out.is_file()
    for scheme in ("int8", "int8-dynamic", "fp16"):
        q = tmp_path / f"m.{scheme}.onnx"
        r = runner.invoke(app, ["quantize", str(out), "--scheme", scheme, "-o", str(q)])
        assert r.exit_code == 0, r.output
        assert "max abs error" in r.output and "lstm.0.W" in r.output
        meta = {p.key: p.value for p in onnx.load(str(q)).metadata_props}
        assert meta[META_QUANTIZATION] == scheme


def test_existing_output_exits_2_and_is_kept(tmp_path):
    ck = checkpoint(tmp_path / "ck")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    r = runner.invoke(app, ["export", str(ck), "-o", str(out), "--check-steps", "5"])
    assert r.exit_code == 2 and "--force" in r.output
    assert out.read_bytes() == b"old"
    r = runner.invoke(app, ["export", str(ck), "-o", str(out), "--check-steps", "5", "--force"])
    assert r.exit_code == 0, r.output
    q = tmp_path / "q.onnx"
    q.write_bytes(b"old q")
    r = runner.invoke(app, ["quantize", str(out), "--scheme", "int8", "-o", str(q)])
    assert r.exit_code == 2 and "--force" in r.output and q.read_bytes() == b"old q"


def test_bad_inputs_exit_2_with_a_message(tmp_path):
    r = runner.invoke(app, ["export", str(tmp_path / "nope"), "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 2 and "not a valid checkpoint" in r.output
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    r = runner.invoke(app, ["quantize", str(junk), "--scheme", "int8", "-o", str(tmp_path / "q")])
    assert r.exit_code == 2 and "not a valid ONNX model" in r.output
    r = runner.invoke(app, ["quantize", str(junk), "--scheme", "int4", "-o", str(tmp_path / "q")])
    assert r.exit_code == 2  # Typer's own usage error for an unknown scheme
    assert not (tmp_path / "q").exists()


def test_failed_self_check_exits_1_and_leaves_nothing(tmp_path, monkeypatch):
    ck = checkpoint(tmp_path / "ck")
    monkeypatch.setattr(onnx_export, "torch_to_onnx_gates", lambda w: w)  # an exporter bug
    out = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export", str(ck), "-o", str(out), "--check-steps", "50"])
    assert r.exit_code == 1, r.output
    assert "check failed" in r.output and "max abs logit error vs torch" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_help_says_int8_dynamic_is_onnx_runtime_only():
    r = runner.invoke(app, ["quantize", "--help"], env={"COLUMNS": "300"})
    assert r.exit_code == 0
    assert "ONNX RUNTIME ONLY" in r.output
