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


def test_a_highway_model_stays_within_the_int8_full_tolerance(validated, tmp_path):
    """The trained tiny forecaster with a linear highway (an AR fitted on a stream of its
    statistics) quantized to int8-full: within the scheme's mean-error tolerance of the
    float highway model, and its error exactly the one of the same model without the
    highway (the highway is float32 in both: it adds no quantization error, only float32
    rounding of the raw values)."""
    import dataclasses

    import numpy as np
    from integer_models import random_inputs

    import lstm_edge.runtime as rt
    from lstm_edge.exporters.quantize import quantize_file
    from lstm_edge.runtime.tasks.forecast import output_ahead
    from lstm_edge.toolchain import forecast_eval as fe
    from lstm_edge.toolchain.calibrate import measure
    from lstm_edge.toolchain.checkpoint import load_checkpoint
    from lstm_edge.toolchain.export import build_onnx
    from lstm_edge.toolchain.model import EdgeLSTM

    report, _ = validated
    run = Path(report["results"][0]["artifact"]).parent / "run"
    ckpt = load_checkpoint(run)
    cfg = ckpt.config
    lags = 7
    fit_stream = cfg.spec.synthetic_inputs(cfg, 3000, seed=2)
    targets = fit_stream[:, [cfg.features.index(t) for t in cfg.targets]].astype(np.float64)
    coef = np.concatenate([fe.fit_linear_ar(targets, a, lags).coef for a in output_ahead(cfg)])
    hw_cfg = dataclasses.replace(cfg, ar_lags=lags, ar_coef=tuple(float(v) for v in coef.ravel()))
    hw_model = EdgeLSTM(hw_cfg).eval()
    hw_model.load_state_dict(ckpt.model.state_dict())
    paths = {}
    for name, model in (("plain", ckpt.model), ("hw", hw_model)):
        paths[name] = tmp_path / f"{name}.onnx"
        paths[name].write_bytes(build_onnx(model).SerializeToString())
    # one calibration for both: the LSTM (all the ranges measure) is the same
    ranges = measure(paths["plain"], random_inputs(cfg, 4, 256), {"data": "random (test)"})
    stream = cfg.spec.synthetic_inputs(cfg, 2000, seed=3)[None]
    errors = {}
    for name, path in paths.items():
        full = tmp_path / f"{name}.int8-full.onnx"
        quantize_file(path, full, "int8-full", ranges=ranges)
        outs = {}
        for label, p in (("float", path), ("full", full)):
            model = rt.load(p, backend="numpy")
            outs[label], _ = model.step(stream, model.initial_state(1))
        errors[name] = np.abs(outs["full"] - outs["float"]) / cfg.spec.error_scale(cfg)
    tolerance = FORECAST_TOLERANCES["int8-full"].max_mean_err
    assert errors["hw"].mean() <= tolerance, (errors["hw"].mean(), tolerance)
    np.testing.assert_allclose(errors["hw"], errors["plain"], rtol=0, atol=1e-4)
    print(
        f"forecast int8-full with a {lags}-lag highway: mean err {errors['hw'].mean():.3g} "
        f"max {errors['hw'].max():.3g} target std (without: {errors['plain'].mean():.3g})"
    )
