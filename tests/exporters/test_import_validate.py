"""`lstm-edge validate SOURCE.onnx ARTIFACT...`: the source file (onnxruntime) is the
reference; the same table, report and verdict as against a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_import_torch import Case, export_source
from typer.testing import CliRunner

from lstm_edge.toolchain.cli import app


def test_validate_against_the_source_file(tmp_path: Path) -> None:
    case = Case("torchscript", tokens=False, batch_first=True, layers=2, bias=True, state=True)
    source, _ = export_source(case, tmp_path)
    out, q = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(source), "-o", str(out)]).exit_code == 0
    assert (
        runner.invoke(app, ["quantize", str(out), "--scheme", "int8", "-o", str(q)]).exit_code == 0
    )
    rows = np.random.default_rng(4).normal(size=(300, 5))
    csv = tmp_path / "series.csv"
    csv.write_text("x0,x1,x2,y0,y1\n" + "\n".join(",".join(f"{v:.5f}" for v in r) for r in rows))
    report = tmp_path / "report"
    args = ["validate", str(source), str(out), str(q), "--csv", str(csv), "--steps", "300"]
    r = runner.invoke(app, [*args, "--report", str(report)])
    assert r.exit_code == 0, r.output
    data = json.loads((report / "report.json").read_text())
    results = data["results"]
    float_runs = [x for x in results if x["scheme"] == "none"]
    assert float_runs and all(x["max_abs_err"] <= 1e-5 for x in float_runs), float_runs
    assert any(x["scheme"] == "int8" and x["max_abs_err"] > 0 for x in results)
    # A file that is not the artifact's source is held to the same tolerances and fails.
    other, _ = export_source(case, tmp_path / "other" if (tmp_path / "other").mkdir() is None
                             else tmp_path, seed=9)  # fmt: skip
    r = runner.invoke(app, ["validate", str(other), str(out), "--csv", str(csv), "--steps", "300"])
    assert r.exit_code == 1, r.output


def test_validate_against_a_source_needs_a_stream(tmp_path: Path) -> None:
    case = Case("torchscript", tokens=True, batch_first=True, layers=1, bias=True, state=False)
    source, _ = export_source(case, tmp_path)
    out = tmp_path / "m.onnx"
    assert CliRunner().invoke(app, ["import", str(source), "-o", str(out)]).exit_code == 0
    r = CliRunner().invoke(app, ["validate", str(source), str(out)])
    assert r.exit_code == 2 and "give the stream with --text" in r.output, r.output


def test_validate_a_token_model_against_its_source_on_ids(tmp_path: Path) -> None:
    case = Case("torchscript", tokens=True, batch_first=True, layers=2, bias=True, state=True)
    source, _ = export_source(case, tmp_path)
    out = tmp_path / "m.onnx"
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(source), "-o", str(out)]).exit_code == 0
    from lstm_edge.runtime import load

    tokens = load(out, "numpy").config.tokens
    ids = np.random.default_rng(5).integers(0, tokens, 400)
    text = tmp_path / "ids.txt"
    text.write_text(" ".join(map(str, ids[:200])) + "\n" + " ".join(map(str, ids[200:])))
    report = tmp_path / "report"
    args = ["validate", str(source), str(out), "--text", str(text), "--steps", "300"]
    r = runner.invoke(app, [*args, "--report", str(report), "-b", "numpy", "-b", "c"])
    assert r.exit_code == 0, r.output
    results = json.loads((report / "report.json").read_text())["results"]
    assert len(results) == 2 and all(x["max_abs_err"] <= 1e-5 for x in results), results
    # An id outside the vocabulary (or a word) is named with the file; exit 2.
    for bad in (str(tokens), "seven"):
        text.write_text(f"1 2 {bad} 3")
        r = runner.invoke(app, ["validate", str(source), str(out), "--text", str(text)])
        assert r.exit_code == 2, r.output
        msg = " ".join(r.output.split())
        assert f"token 3 is '{bad}'" in msg and "ids.txt" in msg and f"0 to {tokens - 1}" in msg
