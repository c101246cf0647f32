"""`lstm-edge pipeline --task classify` end to end on a small CSV, then `lstm-edge classify`
on the bundle's int8 model without torch, checked against the runtime directly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain.cli import app

runner = CliRunner()
TINY = ["--steps", "40", "--hidden", "12", "--batch-size", "8"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, cd.Sequences]:
    seqs = cd.builtin_sequences(260, seed=5)
    keep = [i for i in range(len(seqs)) if seqs.lengths[i] <= 40]
    path = tmp_path_factory.mktemp("cls") / "seqs.csv"
    cd.write_csv(seqs, path, keep)
    return path, cd.read_csv(path, cd.CsvColumns(time="time"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, data) -> Path:
    out = tmp_path_factory.mktemp("clsb") / "bundle"
    args = ["pipeline", "--task", "classify", "--out", str(out), "--csv", str(data[0])]
    result = runner.invoke(app, [*args, "--time-column", "time", *TINY, "--no-bench"])
    assert result.exit_code == 0, result.output
    return out


def test_bundle_files_summary_and_report(bundle: Path, data):
    for rel in (
        "checkpoint/config.json",
        "model.onnx",
        "model.int8.onnx",
        "SUMMARY.md",
        "validation/report.json",
        "validation/confusion.png",
        "validation/early_decision.png",
    ):
        assert (bundle / rel).is_file(), rel
    report = json.loads((bundle / "validation/report.json").read_text())
    assert report["passed"] is True and report["task"] == "classify"
    record = json.loads((bundle / "checkpoint/data.json").read_text())
    assert report["sequences"] == len(record["split"]["test"])
    assert set(report["baselines"]) == {"majority class", "logistic regression (summary features)"}
    summary = (bundle / "SUMMARY.md").read_text()
    assert "Model (classify)" in summary and "## Validation: PASSED" in summary
    first = report["results"][0]
    assert f"| {100 * first['torch_scores']['macro_f1']:.1f} |" in summary
    # the int8 artifact's reported accuracy is what the runtime gives on the test sequences
    seqs, splits = cd.sequences_from_record(record)
    int8 = next(r for r in report["results"] if r["scheme"] == "int8" and r["backend"] == "ort")
    model = rt.load(bundle / "model.int8.onnx", backend="ort")
    rows, labels = cd.select(seqs, model.config.features, splits["test"])
    pred = [model.step(r[None], model.initial_state(1))[0][0, -1].argmax() for r in rows]
    assert int8["artifact_scores"]["accuracy"] == pytest.approx(np.mean(np.array(pred) == labels))


def test_classify_command_runs_without_torch(bundle: Path, data, tmp_path):
    path, seqs = data
    code = (
        "import sys; from typer.testing import CliRunner; from lstm_edge.toolchain.cli import app;"
        f"r = CliRunner().invoke(app, ['classify', {str(bundle / 'model.int8.onnx')!r}, '--csv',"
        f"{str(path)!r}, '--time-column', 'time', '--threshold', '0.6']);"
        "print(r.output); sys.exit(r.exit_code or ('torch' in sys.modules) * 3)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(seqs)} sequences" in result.stdout and "accuracy" in result.stdout
    assert seqs.ids[0] in result.stdout


def test_classify_command_refuses_bad_input(bundle: Path, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "sequence,load,ambient_temp,current,motor_temp,vibration,label\n"
        "a,1,2,3,4,5,normal\na,1,2,3,4,5,fire\n"
    )
    result = runner.invoke(app, ["classify", str(bundle / "model.onnx"), "--csv", str(bad)])
    assert result.exit_code == 2
    assert "row 3, column 'label'" in result.output and "differs" in result.output
    result = runner.invoke(
        app, ["classify", str(bundle / "model.onnx"), "--csv", str(bad), "--threshold", "1.5"]
    )
    assert result.exit_code == 2 and "--threshold is 1.5" in result.output


def test_stream_example_matches_the_classify_command(bundle: Path, data):
    """examples/classify_stream steps rows one at a time with the runtime alone; its final
    classes and confident rows are those of `lstm-edge classify` (prefill per sequence)."""
    from example_probe import EXAMPLES, run_example

    from lstm_edge.toolchain.classify_predict import predict_csv

    path, seqs = data
    model = bundle / "model.int8.onnx"
    result = run_example(
        EXAMPLES / "classify_stream" / "classify_stream.py",
        str(model),
        "--csv",
        str(path),
        "--threshold",
        "0.6",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    done = [line.split() for line in result.stdout.splitlines() if " done after " in line]
    expected = predict_csv(model, path, threshold=0.6, time_column="time")
    assert [d[0] for d in done] == [p.sequence for p in expected] == list(seqs.ids)
    for d, p in zip(done, expected, strict=True):
        assert d[5] == p.predicted
        if p.confident_row is None:
            assert "never confident" in " ".join(d)
        else:
            assert d[-1] == str(p.confident_row)


def test_validate_on_a_csv_of_labelled_sequences(bundle: Path, data, tmp_path):
    """validate --csv reads every sequence of a long-format file with the model's classes;
    a label the model does not know is refused naming its row."""
    from lstm_edge.toolchain.validate import ValidateOptions, validate

    path, seqs = data
    report = validate(
        bundle / "checkpoint",
        [bundle / "model.onnx"],
        ValidateOptions(csv=path, backends=("numpy",)),
    )
    assert report.passed and report.stream.source_size == len(seqs)
    assert report.stream.steps == int(seqs.lengths.sum())
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().replace(",sensor\n", ",smoke\n"))
    with pytest.raises(
        LstmEdgeError, match=r"row \d+, column 'label': label 'smoke' is not a class"
    ):
        validate(bundle / "checkpoint", [bundle / "model.onnx"], ValidateOptions(csv=bad))
