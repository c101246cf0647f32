"""int8-full artifacts for the tests: a float artifact calibrated on random inputs and
quantized through the same functions `lstm-edge quantize --scheme int8-full` calls.

Random inputs stand in for a checkpoint's training split (no training run needed); the
ranges they give are real ranges of the float model, so the parameters are realistic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize import quantize_file
from lstm_edge.toolchain.calibrate import measure


def random_inputs(config, streams: int, steps: int, seed: int = 0) -> np.ndarray:
    """Token ids [streams, steps] or raw feature rows float32 [streams, steps, F]."""
    rng = np.random.default_rng(seed)
    if config.spec.input_dtype == np.int64:
        return rng.integers(0, config.vocab_size, (streams, steps))
    # raw rows around the training statistics, as the model's own data would be
    mean, std = np.asarray(config.feature_mean), np.asarray(config.feature_std)
    return (mean + std * rng.normal(size=(streams, steps, config.input_size))).astype(np.float32)


def int8_full(float_path: Path, out: Path, *, streams: int = 4, steps: int = 128) -> Path:
    """Quantize the float artifact `float_path` to int8-full at `out`, calibrated on
    random inputs."""
    config = rt.load(float_path, backend="numpy").config
    summary = {"data": "random inputs (test)", "split": "train"}
    ranges = measure(float_path, random_inputs(config, streams, steps), summary)
    quantize_file(float_path, out, "int8-full", ranges=ranges)
    return out


def cli_validate_int8_full(
    root: Path, *train_args: str, steps: int = 300, calibration_steps: int = 2048
) -> tuple[dict, str]:
    """train (tiny) -> export -> quantize int8-full calibrated on the run -> validate the
    int8-full and the float artifact on the default backends, all through the CLI:
    (report.json, validate's output with its words one space apart)."""
    import json

    from typer.testing import CliRunner

    from lstm_edge.toolchain.cli import app

    def cli(*args: object) -> str:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.replace("│", " ").split())

    run, model, full = root / "run", root / "m.onnx", root / "m.int8-full.onnx"
    cli("train", "--out", run, "--no-progress", *train_args)
    cli("export", run, "-o", model, "--check-steps", 50)
    cli("quantize", model, "--scheme", "int8-full", "--calibrate", run, "-o", full,
        "--calibration-steps", calibration_steps)  # fmt: skip
    output = cli("validate", run, full, model, "--steps", steps, "--report", root / "report")
    return json.loads((root / "report" / "report.json").read_text()), output
