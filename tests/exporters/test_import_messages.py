"""A file without lstm-edge metadata gets one message from load, info, quantize and
codegen, and it names `lstm-edge import`."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_import_refusals import build
from typer.testing import CliRunner

from lstm_edge.runtime import load
from lstm_edge.runtime.errors import InvalidArtifactError
from lstm_edge.toolchain.cli import app


def test_foreign_file_message_is_the_same_everywhere(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(build().SerializeToString())
    with pytest.raises(InvalidArtifactError) as e:
        load(foreign)
    message = str(e.value)
    assert "has no lstm-edge metadata" in message and "`lstm-edge import`" in message
    runner = CliRunner()
    for args in (
        ["info", str(foreign)],
        ["quantize", str(foreign), "--scheme", "int8", "-o", str(tmp_path / "q.onnx")],
        ["codegen", str(foreign), "-o", str(tmp_path / "c")],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, r.output
        assert r.output == f"error: {message}\n", (args[0], r.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.onnx"]
