"""`lstm-edge pipeline --task classify --csv texts.csv --text-column ...` end to end on tiny
seeded text, then `lstm-edge classify MODEL TEXT...` and `--csv` on the bundle's models,
checked against the runtime directly and run without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain import classify_predict as cp
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.data import encode

runner = CliRunner()
WORDS = {
    "en": "the and house water green small light tree",
    "de": "und der haus wasser grün klein licht baum",
    "fi": "ja talo vesi vihreä pieni valo puu kylä",
}


def write_texts(path: Path, n: int, column: str) -> Path:
    """n seeded sentences of three word lists ("languages"), one per row."""
    rng = np.random.default_rng(0)
    lines = [f"{column},label"]
    for i in range(n):
        lang = list(WORDS)[i % 3]
        lines.append(" ".join(rng.choice(WORDS[lang].split(), rng.integers(2, 6))) + f",{lang}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TINY = ["--steps", "60", "--hidden", "16", "--embed", "8", "--batch-size", "8"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clstext")
    csv = write_texts(folder / "texts.csv", 120, column="body")
    out = folder / "bundle"
    args = ["pipeline", "--task", "classify", "--out", str(out), "--csv", str(csv)]
    result = runner.invoke(app, [*args, "--text-column", "body", *TINY, "--no-bench"])
    assert result.exit_code == 0, result.output
    return out, csv


def test_bundle_report_and_baselines(bundle):
    out, _ = bundle
    for rel in ("checkpoint/config.json", "model.onnx", "model.int8.onnx", "SUMMARY.md"):
        assert (out / rel).is_file(), rel
    config = json.loads((out / "checkpoint/config.json").read_text())
    assert config["task"] == "classify" and config["embed_size"] == 8 and "features" not in config
    report = json.loads((out / "validation/report.json").read_text())
    assert report["passed"] is True
    assert set(report["baselines"]) == {"majority class", "logistic regression (bag of characters)"}
    record = json.loads((out / "checkpoint/data.json").read_text())
    assert record["text_column"] == "body" and record["split_kind"] == "stratified by class"
    # the int8 artifact's reported accuracy is what the runtime gives on the test texts
    seqs, splits = cd.sequences_from_record(record)
    model = rt.load(out / "model.int8.onnx", backend="c")
    ids, labels = cd.select_inputs(seqs, model.config, splits["test"])
    pred = [model.step(x[None], model.initial_state(1))[0][0, -1].argmax() for x in ids]
    int8 = next(r for r in report["results"] if r["scheme"] == "int8" and r["backend"] == "ort")
    assert int8["artifact_scores"]["accuracy"] == pytest.approx(np.mean(np.array(pred) == labels))


def test_classify_texts_against_the_runtime(bundle):
    out, _ = bundle
    texts = ["the green tree", "wasser und baum", "talo ja puu"]
    got = cp.predict_texts(out / "model.int8.onnx", texts, threshold=0.5)
    model = rt.load(out / "model.int8.onnx", backend="numpy")
    for p, text in zip(got, texts, strict=True):
        logits, _ = model.step(encode(text, model.config)[None], model.initial_state(1))
        z = logits[0].astype(np.float64)
        prob = np.exp(z - z.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        assert p.predicted == model.config.classes[int(prob[-1].argmax())]
        assert p.probabilities[p.predicted] == pytest.approx(prob[-1].max(), abs=1e-5)
        assert p.confident_row == cp.confident_row(prob, 0.5) and p.rows == len(text)
    args = ["classify", str(out / "model.int8.onnx"), *texts, "--threshold", "0.5"]
    result = subprocess.run(  # the command itself, without torch
        [sys.executable, "-c", _without_torch(args)],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for p in got:
        assert f"{p.predicted} {p.probabilities[p.predicted]:.3f}" in result.stdout
        if p.confident_row is not None:
            assert f"char {p.confident_row} ({p.text[p.confident_row - 1]!r})" in result.stdout


def test_classify_csv_of_texts_and_refusals(bundle, tmp_path):
    out, csv = bundle
    result = runner.invoke(
        app, ["classify", str(out / "model.onnx"), "--csv", str(csv), "--text-column", "body"]
    )
    assert result.exit_code == 0, result.output
    assert "120 sequences" in result.output and "accuracy" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("body,label\nund der,de\nhej hej,sv\n", encoding="utf-8")
    result = runner.invoke(
        app, ["classify", str(out / "model.onnx"), "--csv", str(bad), "--text-column", "body"]
    )
    assert result.exit_code == 2 and "row 3, column 'label': label 'sv'" in result.output
    result = runner.invoke(app, ["classify", str(out / "model.onnx"), " "])
    assert result.exit_code == 2 and "text 1 is empty" in result.output
    result = runner.invoke(app, ["classify", str(out / "model.onnx")])
    assert result.exit_code == 2 and "either --csv FILE or TEXT" in result.output


def test_validate_on_a_csv_of_texts_and_refusals(bundle, tmp_path):
    out, csv = bundle
    ckpt, model = str(out / "checkpoint"), str(out / "model.int8.onnx")
    result = runner.invoke(app, ["validate", ckpt, model, "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    assert "120 sequences" in result.output and "validation passed" in result.output
    for args, message in (
        (["--task", "forecast", "--text-column", "body"], "--text-column applies to --task"),
        (["--task", "classify", "--text-column", "body"], "--text-column needs --csv"),
        (
            [
                "--task",
                "classify",
                "--csv",
                str(csv),
                "--text-column",
                "body",
                "--time-column",
                "t",
            ],
            "--time-column do(es)",
        ),
        (["--task", "classify", "--csv", str(csv)], "sequence column 'sequence' is not in"),
    ):
        result = runner.invoke(app, ["train", "-o", str(tmp_path / "r"), *args, "--steps", "2"])
        assert result.exit_code == 2 and message in result.output, result.output


def test_pipeline_from_a_text_checkpoint(bundle, tmp_path):
    out, _ = bundle
    again = tmp_path / "again"
    args = ["pipeline", "--task", "classify", "--from", str(out / "checkpoint"), "-o", str(again)]
    result = runner.invoke(app, [*args, "--no-bench"])
    assert result.exit_code == 0, result.output
    first = json.loads((out / "validation/report.json").read_text())["results"]
    second = json.loads((again / "validation/report.json").read_text())["results"]
    assert [r["artifact_scores"] for r in second] == [r["artifact_scores"] for r in first]


def _without_torch(args: list[str]) -> str:
    return (
        "import sys; from typer.testing import CliRunner; from lstm_edge.toolchain.cli import app;"
        f"r = CliRunner().invoke(app, {args!r});"
        "print(r.output); sys.exit(r.exit_code or ('torch' in sys.modules) * 3)"
    )
