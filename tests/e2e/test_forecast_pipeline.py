"""`lstm-edge pipeline --task forecast` end to end: on the built-in signal and on a CSV file.

Tiny models and few steps keep it fast; the bundle's numbers are checked against the
reports they summarize and against a recomputation through the runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from example_probe import EXAMPLES, run_example
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.series import builtin_signal, held_out_series, write_csv

runner = CliRunner()
TINY = ["--steps", "60", "--hidden", "8", "--seq-len", "32", "--batch-size", "4"]
VALIDATE_STEPS = "300"


def _pipeline(out: Path, *extra: str) -> None:
    result = runner.invoke(
        app,
        [
            *("pipeline", "--task", "forecast", "--out", str(out), *TINY, "--no-bench"),
            *("--validate-steps", VALIDATE_STEPS, *extra),
        ],
    )
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def builtin_bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fc") / "bundle"
    _pipeline(out)
    return out


def test_builtin_bundle_files_and_summary(builtin_bundle: Path):
    for rel in (
        "checkpoint/config.json",
        "model.onnx",
        "model.int8.onnx",
        "validation/report.json",
        "detect/report.json",
        "detect/scores.csv",
        "detect/detect.png",
        "SUMMARY.md",
    ):
        assert (builtin_bundle / rel).is_file(), rel
    summary = (builtin_bundle / "SUMMARY.md").read_text()
    assert "Model (forecast)" in summary and "## Validation: PASSED" in summary
    assert "motor_temp" in summary and "## Anomaly detection" in summary
    # Why levels: the validation rows stay in the training range (data.json says so too).
    data = json.loads((builtin_bundle / "checkpoint/data.json").read_text())
    assert data["target_kind_source"].startswith("validation split: 0% of ")
    assert f"Target kind level: {data['target_kind_source']}." in summary
    # The SUMMARY's MASE is the validation report's, to the printed digits.
    report = json.loads((builtin_bundle / "validation/report.json").read_text())
    assert report["passed"] is True
    first = report["results"][0]
    mase = f"{first['torch_truth']['mase_mean']:.3f} -> {first['artifact_truth']['mase_mean']:.3f}"
    assert mase in summary


def test_builtin_detect_report_matches_a_recomputation(builtin_bundle: Path):
    """The detect stage's flags, recomputed from the runtime's forecasts and the artifact's
    own calibration over the same held-out rows."""
    report = json.loads((builtin_bundle / "detect/report.json").read_text())
    model = rt.load(builtin_bundle / "model.int8.onnx", backend="numpy")
    calibration = model.artifact.calibration
    assert calibration is not None and report["threshold"] == calibration["threshold"]
    ckpt = load_checkpoint(builtin_bundle / "checkpoint")
    data = held_out_series(ckpt.data, ckpt.config, "held-out")
    assert report["rows"] == data.features.shape[0]
    out, _ = model.step(data.features[None], model.initial_state(1))
    scores = fe.anomaly_scores(
        out[0], data.targets, ckpt.config.horizon, calibration["residual_scale"]
    )
    # Flags are compared where detect scores (it skips a short warm-up after the zero state).
    # The report ran on ort, this recomputation on numpy: float32 summation order moves a
    # score by ~1e-6 relative, so steps within 1e-4 of the threshold may go either way.
    threshold = report["threshold"]
    flagged = np.zeros(len(scores), bool)
    for run in report["flag_runs"]:
        flagged[run["start"] : run["stop"]] = True
    assert np.all(scores[flagged] > threshold * (1 - 1e-4))
    # ...and the other way: every step clearly above it (after the warm-up) is flagged.
    scored = np.arange(len(scores)) >= ckpt.config.horizon + fe.DETECT_WARMUP
    with np.errstate(invalid="ignore"):
        clearly = scored & (scores > threshold * (1 + 1e-4))
    assert clearly.any() and np.array_equal(clearly, clearly & flagged)
    assert report["flagged_steps"] == int(flagged.sum())
    assert report["labelled"] is True and report["events"]["events"] == len(report["fault_events"])


def test_csv_bundle(tmp_path: Path):
    """The same pipeline on a CSV with a time and a label column."""
    csv_path = tmp_path / "machine.csv"
    write_csv(builtin_signal(rows=3000, seed=3), csv_path)
    out = tmp_path / "bundle"
    _pipeline(
        out,
        "--csv",
        str(csv_path),
        "--target",
        "motor_temp",
        "--time-column",
        "time",
        "--label-column",
        "fault",
        "--horizon",
        "2",
    )
    config = json.loads((out / "checkpoint/config.json").read_text())
    assert config["targets"] == ["motor_temp"] and config["horizon"] == 2
    assert "fault" not in config["features"] and "time" not in config["features"]
    report = json.loads((out / "validation/report.json").read_text())
    assert report["passed"] is True
    detect = json.loads((out / "detect/report.json").read_text())
    # The detect stage scores the rows training never saw (val + test of the CSV, 5% + 5%),
    # with the CSV's fault labels, as it does for the built-in signal.
    ckpt = load_checkpoint(out / "checkpoint")
    held_out = held_out_series(ckpt.data, ckpt.config, "held-out")
    assert detect["rows"] == held_out.features.shape[0] == 300
    assert detect["labelled"] is True
    assert detect["fault_events"] == [[a, b] for a, b in fe.runs(held_out.faults)]


def test_from_checkpoint_of_the_other_task_is_refused(builtin_bundle: Path, tmp_path: Path):
    result = runner.invoke(
        app,
        ["pipeline", "--out", str(tmp_path / "b"), "--from", str(builtin_bundle / "checkpoint")],
    )
    assert result.exit_code == 2
    assert "forecast model" in result.output and "--task forecast" in result.output


MONITOR = EXAMPLES / "sensor_monitoring" / "monitor.py"


def test_monitor_example_alerts_on_the_rows_detect_flags(builtin_bundle: Path, tmp_path: Path):
    """examples/sensor_monitoring streams rows one at a time with the runtime alone; its
    alerts are exactly the steps `lstm-edge detect` flags over the same file."""
    csv_path = tmp_path / "machine.csv"
    write_csv(builtin_signal(rows=4000, seed=5), csv_path)
    model = builtin_bundle / "model.int8.onnx"
    threshold = "3"  # low, so the tiny model gives a good number of alerts to compare
    result = run_example(
        MONITOR, str(model), "--csv", str(csv_path), "--backend", "numpy", "--threshold", threshold
    )
    assert result.returncode == 0, result.stderr
    alerted = {int(line.split(":")[0].split()[1]) - 2 for line in result.stdout.splitlines()}
    out = tmp_path / "detect"
    detected = runner.invoke(
        app,
        [
            *("detect", str(model), "--csv", str(csv_path), "--time-column", "time"),
            *("--label-column", "fault", "--backend", "numpy", "--threshold", threshold),
            *("--out", str(out)),
        ],
    )
    assert detected.exit_code == 0, detected.output
    report = json.loads((out / "report.json").read_text())
    flagged = {s for run in report["flag_runs"] for s in range(run["start"], run["stop"])}
    assert len(flagged) >= 10
    assert alerted == flagged
