"""`lstm-edge validate` of an int8-full forecaster (tiny, on the built-in signal): within
the scheme's tolerances, MASE within 3% of the float model's (the issue's target), ort
skipped with a note, the cell range in real values."""

from __future__ import annotations

from pathlib import Path

import pytest
from integer_models import cli_validate_int8_full

from lstm_edge.exporters.compare import FORECAST_TOLERANCES

TINY = ["--task", "forecast", "--steps", "30", "--hidden", "8", "--seq-len", "32",
        "--batch-size", "4"]  # fmt: skip


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    return cli_validate_int8_full(tmp_path_factory.mktemp("fc"), *TINY, steps=300)


def _result(report: dict, name: str, backend: str) -> dict:
    (found,) = [
        r for r in report["results"] if Path(r["artifact"]).name == name and r["backend"] == backend
    ]
    return found


def test_int8_full_forecast_passes_validation(validated):
    report, output = validated
    assert report["passed"] is True and report["task"] == "forecast"
    full = _result(report, "m.int8-full.onnx", "numpy")
    floats = _result(report, "m.onnx", "numpy")
    assert full["tolerance"] == vars(FORECAST_TOLERANCES["int8-full"])
    assert full["mean_abs_err"] <= FORECAST_TOLERANCES["int8-full"].max_mean_err
    mase_full = full["artifact_truth"]["mase_mean"]
    mase_float = floats["artifact_truth"]["mase_mean"]
    assert abs(mase_full / mase_float - 1) <= 0.03, (mase_full, mase_float)
    print(
        f"forecast int8-full: MASE {mase_full:.4f} vs float {mase_float:.4f} "
        f"({100 * (mase_full / mase_float - 1):+.2f}%), mean err {full['mean_abs_err']:.3g} "
        f"max err {full['max_abs_err']:.3g} target std"
    )
    # ort cannot compute it: skipped with the reason, not failed
    assert [s.split(" (")[1].split(")")[0] for s in report["skipped"]] == ["ort"]
    assert "skipped" in output and "onnxruntime does not compute" in output


def test_the_cell_range_is_in_real_values(validated):
    report, _ = validated
    full = _result(report, "m.int8-full.onnx", "numpy")
    floats = _result(report, "m.onnx", "numpy")
    # int16 codes would span thousands; the real cells follow the float model's
    assert full["cell_min"] == pytest.approx(floats["cell_min"], abs=0.1)
    assert full["cell_max"] == pytest.approx(floats["cell_max"], abs=0.1)
