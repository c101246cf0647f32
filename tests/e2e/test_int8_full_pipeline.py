"""`lstm-edge pipeline --scheme int8-full` on a tiny char-lm run: calibration on the run's own
checkpoint, validation within the scheme's tolerances (ort skipped with a note), the cell
range in real values, and a summary that loads it on a backend that computes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.exporters.compare import TOLERANCES
from lstm_edge.runtime.integer import cell_values
from lstm_edge.toolchain.bench import _ort_graphs
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.data import encode, held_out_text, load_corpus

VALIDATE_STEPS = 1000


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("full")
    corpus = root / "corpus.txt"
    corpus.write_text(load_corpus(None).text[:30_000], encoding="utf-8")
    out = root / "bundle"
    result = CliRunner().invoke(
        app,
        [
            "pipeline", "--scheme", "int8-full", "--corpus", str(corpus), "--out", str(out),
            "--steps", "30", "--hidden", "32", "--layers", "2", "--embed", "16",
            "--seq-len", "32", "--batch-size", "8",
            "--validate-steps", str(VALIDATE_STEPS), "--no-bench",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, " ".join(result.output.split())


def _result(report: dict, name: str, backend: str) -> dict:
    (found,) = [
        r for r in report["results"] if Path(r["artifact"]).name == name and r["backend"] == backend
    ]
    return found


def test_the_bundle_is_calibrated_on_its_own_checkpoint(bundle):
    out, output = bundle
    art = rt.load(out / "model.int8-full.onnx", backend="numpy").artifact
    cal = art.integer.calibration
    assert (cal["data"], cal["split"]) == (str(out / "checkpoint"), "train")
    assert (
        f"calibrated on {cal['steps']:,} steps of the training split of {out / 'checkpoint'}"
        in (output)
    )
    # the training split of 30,000 characters has ~27,000: the default 16,384 steps fit
    assert cal["steps"] == 16_384 and cal["streams"] == 8


def test_validation_passes_with_the_schemes_tolerance_and_skips_ort(bundle):
    out, output = bundle
    report = json.loads((out / "validation/report.json").read_text())
    assert report["passed"] is True
    pairs = {(Path(r["artifact"]).name, r["backend"]) for r in report["results"]}
    assert pairs == {
        ("model.onnx", "numpy"),
        ("model.onnx", "ort"),
        ("model.int8-full.onnx", "numpy"),
    }
    (note,) = report["skipped"]
    assert "model.int8-full.onnx (ort)" in note and "onnxruntime does not compute" in note
    assert "skipped " + " ".join(note.split()) in output  # printed, not only recorded
    full = _result(report, "model.int8-full.onnx", "numpy")
    tol = TOLERANCES["int8-full"]
    assert full["tolerance"] == vars(tol)
    assert full["top1_agreement"] >= tol.min_top1
    assert full["bpc_artifact"] - full["bpc_torch"] <= tol.max_bpc_increase
    print(
        f"char-lm int8-full: top-1 {full['top1_agreement']:.4f}, bpc "
        f"{full['bpc_torch']:.4f} -> {full['bpc_artifact']:.4f}, max err {full['max_abs_err']:.3g}"
    )


def test_the_cell_range_is_in_real_values(bundle):
    """The report's cell range is the real cell state (codes x 2^-frac per unit), the same
    range the float model's cells span to within the cell formats' resolution."""
    out, _ = bundle
    report = json.loads((out / "validation/report.json").read_text())
    model = rt.load(out / "model.int8-full.onnx", backend="numpy")
    ckpt = load_checkpoint(out / "checkpoint")
    tokens = encode(held_out_text(ckpt.data, "test"), ckpt.config)[:VALIDATE_STEPS]
    state = model.initial_state(1)
    lo, hi = np.inf, -np.inf
    for t in tokens:
        _, state = model.step(np.array([t]), state)
        real = cell_values(model.artifact.integer, state.c)
        lo, hi = min(lo, real.min()), max(hi, real.max())
    full = _result(report, "model.int8-full.onnx", "numpy")
    assert (full["cell_min"], full["cell_max"]) == pytest.approx((lo, hi), abs=1e-6)
    float_run = _result(report, "model.onnx", "numpy")
    # real values, not codes (which reach thousands): close to the float model's cells
    assert full["cell_max"] == pytest.approx(float_run["cell_max"], abs=0.05)
    assert full["cell_min"] == pytest.approx(float_run["cell_min"], abs=0.05)


def test_the_summary_loads_it_on_a_backend_that_computes_it(bundle):
    out, _ = bundle
    summary = (out / "SUMMARY.md").read_text()
    assert "## Validation: PASSED" in summary and "`model.int8-full.onnx` | int8-full" in summary
    assert 'rt.load("model.int8-full.onnx", backend="numpy")  # or "c"' in summary
    assert 'backend="ort"' not in summary


def test_the_bench_times_no_onnxruntime_graph_for_the_scheme(bundle):
    """The int8-full file's graph is its weight-only approximation: the bench's peer loops
    (session.run, tract) time only the artifacts whose graph is the model."""
    out, _ = bundle
    models = [
        (out / name, backend, rt.load(out / name, backend=backend))
        for name, backend in (("model.onnx", "ort"), ("model.int8-full.onnx", "numpy"))
    ]
    assert _ort_graphs(models) == [out / "model.onnx"]
