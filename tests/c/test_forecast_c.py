"""Forecast models in the embedded C path: the C library (through the c backend and through
the generated example) against the numpy reference over a long raw sensor stream, the C
API's forecast contract (api_forecast_test.c), codegen --check against numpy and torch, and
the int8 model's example under QEMU on the emulated Cortex-M4."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lstm_edge.exporters import c_codegen as cg
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.backends import c as cbackend
from lstm_edge.runtime.backends.c_source import model_sources
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InputError
from lstm_edge.runtime.model import load
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.codegen import codegen as tc_codegen

HERE = Path(__file__).resolve().parent
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
STEPS = 2000

# Errors are compared in target standard units (|C - numpy| / target_std): raw outputs are
# ~100 with stds 5..50, so an absolute bound would mean different things per target. C and
# numpy run the same float32 math on the same (dequantized) weights and the normalization is
# the same two float32 roundings; only the LSTM's summation order and expf vs numpy's tanh
# differ. Measured ~2e-6 std over 2,000 steps; 1e-4 is ~50x that, while a wrong statistic,
# scale, gate or transpose is off by O(0.1..1) std.
ATOL_STD = 1e-4
# Host vs Cortex-M4 run the same C in the same order; only libm's expf differs (glibc vs
# newlib, each within ~1 ulp): ~1e-6 std. Same bound as above.
HOST_VS_M4_ATOL_STD = 1e-4


@dataclass(frozen=True)
class ForecastModels:
    config: ModelConfig
    float_path: Path
    int8_path: Path
    stream: np.ndarray  # float32 [STEPS, F] raw sensor rows


def forecast_config() -> ModelConfig:
    # Three features at very different raw scales (means ~100, stds 5..50) so a wrong or
    # missing normalization shows; odd hidden size and two layers exercise the kernels'
    # remainder loops and the layer hand-over; targets are a subset, in another order.
    return ModelConfig(
        task="forecast",
        hidden_size=13,
        num_layers=2,
        features=("load", "temp", "current"),
        targets=("current", "load"),
        horizon=2,
        feature_mean=(100.0, 85.0, 120.0),
        feature_std=(5.0, 50.0, 20.0),
        target_mean=(120.0, 100.0),
        target_std=(20.0, 5.0),
    )


def raw_stream(config: ModelConfig, steps: int, seed: int = 1) -> np.ndarray:
    """Raw rows around the config's statistics: a slow sine per column plus noise."""
    return config.spec.synthetic_inputs(config, steps, seed)


@pytest.fixture(scope="module", autouse=True)
def _compiler(require_tools):
    require_tools("cc")


@pytest.fixture(scope="module")
def fc(tmp_path_factory, model_factory) -> ForecastModels:
    _, write_models = model_factory
    config = forecast_config()
    float_path, int8_path = write_models(tmp_path_factory.mktemp("forecast"), config, seed=2)
    return ForecastModels(config, float_path, int8_path, raw_stream(config, STEPS))


def _std_err(got: np.ndarray, want: np.ndarray, config: ModelConfig) -> float:
    return float((np.abs(got.astype(np.float64) - want) / np.asarray(config.target_std)).max())


def _single_steps(model, stream):
    state = model.initial_state(1)
    out = []
    for row in stream:
        y, state = model.step(row[None, :], state)
        out.append(y[0])
    return np.stack(out), state


# ---- the c backend --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["float_path", "int8_path"])
def test_c_backend_long_stream_matches_numpy(fc, which):
    path = getattr(fc, which)
    c_model, ref = load(path, backend="c"), load(path, backend="numpy")
    got, c_state = _single_steps(c_model, fc.stream)
    want, ref_state = ref.step(fc.stream[None], ref.initial_state(1))
    want = want[0]
    # The outputs move by several target stds along the stream (not a constant the C
    # could hit by accident) and sit at the raw scale (the denormalization ran).
    assert (want.std(axis=0) / np.asarray(fc.config.target_std)).min() > 0.05
    assert np.abs(want.mean(axis=0) - np.asarray(fc.config.target_mean)).max() < 10 * max(
        fc.config.target_std
    )
    assert _std_err(got, want, fc.config) <= ATOL_STD
    np.testing.assert_allclose(c_state.h, ref_state.h, rtol=0, atol=ATOL_STD)
    np.testing.assert_allclose(c_state.c, ref_state.c, rtol=0, atol=ATOL_STD)


def test_single_steps_chunks_and_batches_equal_one_call_exactly(fc):
    # The C code runs the same operations in the same order either way: bit-identical.
    model = load(fc.int8_path, backend="c")
    stream = fc.stream[:300]
    single, single_state = _single_steps(model, stream)
    whole, whole_state = model.step(stream[None], model.initial_state(1))
    np.testing.assert_array_equal(whole[0], single)
    np.testing.assert_array_equal(whole_state.h, single_state.h)
    state, parts = model.initial_state(1), []
    for lo, hi in ((0, 7), (7, 150), (150, 300)):
        y, state = model.step(stream[None, lo:hi], state)
        parts.append(y[0])
    np.testing.assert_array_equal(np.concatenate(parts), single)
    np.testing.assert_array_equal(state.c, single_state.c)
    # Six streams (one block of 4 and a partial one) == each stream alone.
    batch = np.stack([np.roll(stream, 11 * b, axis=0) for b in range(6)])
    together, _ = model.step(batch, model.initial_state(6))
    for b in range(6):
        alone, _ = model.step(batch[b : b + 1], model.initial_state(1))
        np.testing.assert_array_equal(together[b], alone[0])


def test_runner_refuses_nonfinite_input_and_leaves_state(fc):
    runner = cbackend.load(read_artifact(fc.float_path))
    cfg = fc.config
    x = np.ascontiguousarray(fc.stream[None, :5])
    x[0, 3, 1] = np.nan
    h = np.full((cfg.num_layers, 1, cfg.hidden_size), 0.5, np.float32)
    c = h.copy()
    with pytest.raises(InputError, match="NaN or Inf"):
        runner.run(x, h, c)
    assert (h == 0.5).all() and (c == 0.5).all()


# ---- codegen: the generated model and example -----------------------------------------------


@pytest.mark.parametrize("which", ["float_path", "int8_path"])
def test_generated_example_matches_numpy_every_step(fc, tmp_path, which):
    report = cg.codegen(
        getattr(fc, which), tmp_path / "b", cg.CodegenOptions(name="fc", steps=STEPS, check=True)
    )
    (check,) = report.checks
    assert check.against == "numpy" and check.unit == "target std"
    assert check.steps == STEPS  # the check build prints every step
    assert check.top1_agreement is None
    assert check.passed, check.failures
    assert check.max_abs_err <= ATOL_STD
    assert report.stream_source.startswith("seeded")


def test_model_header_and_footprint(fc, tmp_path):
    cfg = fc.config
    f, t, h = cfg.input_size, cfg.output_size, cfg.hidden_size
    report = cg.codegen(fc.int8_path, tmp_path / "b", cg.CodegenOptions(name="fc", steps=10))
    header = (tmp_path / "b" / "fc_model.h").read_text()
    for line in ("FC_TASK LSTM_EDGE_TASK_FORECAST", "FC_INPUT_SIZE 3", "FC_OUTPUT_SIZE 2",
                 "FC_HORIZON 2", "FC_HIDDEN 13", "FC_LAYERS 2"):  # fmt: skip
        assert f"#define {line}\n" in header
    assert "FC_VOCAB" not in header
    source = (tmp_path / "b" / "fc_model.c").read_text()
    block = source.split("fc_target_names[FC_OUTPUT_SIZE] = {")[1]
    assert re.findall(r'"(\w+)"', block) == list(cfg.targets)
    int8 = (4 * h * f + 4 * 4 * h) + (4 * h * h + 4 * 4 * h) + 4 * 4 * h  # layer 0 W, R, bias
    int8 += (4 * h * h + 4 * 4 * h) * 2 + 4 * 4 * h  # layer 1
    int8 += h * t + 4 * t + 4 * t  # head weight, its scales, bias
    int8 += 4 * (2 * f + 2 * t)  # the four normalization vectors, float32
    assert report.footprint.weight_bytes == int8
    assert report.footprint.scratch_bytes == 4 * (8 * h + f)
    assert f"#define FC_WEIGHT_BYTES {int8}\n" in header


def _compilers() -> list[str]:
    return [c for c in ("gcc", "clang") if shutil.which(c)] or ["cc"]


@pytest.mark.parametrize("which", ["float_path", "int8_path"])
def test_forecast_api_contract_on_every_compiler(fc, tmp_path, which):
    out = tmp_path / "bundle"
    cg.codegen(getattr(fc, which), out, cg.CodegenOptions(name="fc", steps=300))
    for cc in _compilers():
        exe = tmp_path / f"api_{cc}"
        build = subprocess.run(
            [cc, *STRICT, "-O2", f"-I{out}", "-o", str(exe), str(HERE / "api_forecast_test.c"),
             str(out / "fc_model.c"), str(out / "lstm_edge.c"), "-lm"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr
        run = subprocess.run([str(exe)], capture_output=True, text=True)
        assert run.returncode == 0 and run.stdout.strip() == "api ok", run.stdout


def test_makefile_builds_the_forecast_example(fc, tmp_path, require_tools):
    require_tools("make")
    out = tmp_path / "bundle"
    cg.codegen(fc.float_path, out, cg.CodegenOptions(name="fc", steps=50))
    (out / "fc").unlink()
    subprocess.run(["make", "-s", "-C", str(out)], check=True, capture_output=True)
    run = subprocess.run([str(out / "fc")], capture_output=True, text=True, check=True)
    lines = run.stdout.splitlines()
    assert "forecasts 2 steps ahead of: current load" in lines[0]
    assert lines[-1] == "ok 50"


def _forecast_checkpoint(folder: Path, model_factory) -> Path:
    """A forecast checkpoint on a short built-in signal (random weights: no training)."""
    from lstm_edge.toolchain import series as sr
    from lstm_edge.toolchain.checkpoint import save_checkpoint

    tiny_model, _ = model_factory
    rows = 2000
    signal = sr.builtin_signal(rows, seed=0)
    split = sr.split_rows(rows)
    features, targets = ("load", "ambient_temp", "motor_temp"), ("motor_temp",)
    f_mean, f_std = sr.column_stats(signal, features, split)
    t_mean, t_std = sr.column_stats(signal, targets, split)
    config = ModelConfig(
        task="forecast", hidden_size=12, num_layers=2, features=features, targets=targets,
        feature_mean=f_mean, feature_std=f_std, target_mean=t_mean, target_std=t_std,
    )  # fmt: skip
    record = sr.data_record(
        signal, split, csv_path=None, time_column=None, label_column=None,
        builtin_rows=rows, builtin_seed=0, season=None,
    )  # fmt: skip
    ckpt = folder / "ckpt"
    save_checkpoint(ckpt, tiny_model(config, seed=5), record)
    return ckpt


def test_check_against_torch_on_the_held_out_split(tmp_path, model_factory):
    from lstm_edge.exporters.quantize import quantize_proto
    from lstm_edge.toolchain.checkpoint import load_checkpoint
    from lstm_edge.toolchain.export import build_onnx

    ckpt = _forecast_checkpoint(tmp_path, model_factory)
    proto = build_onnx(load_checkpoint(ckpt).model)
    for scheme, proto_s in (("none", proto), ("int8", quantize_proto(proto, "int8"))):
        path = tmp_path / f"m.{scheme}.onnx"
        path.write_bytes(proto_s.SerializeToString())
        report = tc_codegen(path, tmp_path / scheme, cg.CodegenOptions(check=True, steps=100), ckpt)
        assert [c.against for c in report.checks] == ["numpy", "torch"]
        assert report.passed, report.checks
        assert "held-out" in report.stream_source
        # int8 moves the predictions (weight rounding), float does not.
        torch_err = report.checks[1].max_abs_err
        assert torch_err < 1e-4 if scheme == "none" else torch_err > 1e-4


def _text(result) -> str:
    return " ".join(result.output.split())


def test_cli_codegen_check_forecast(fc, tmp_path):
    args = ["codegen", str(fc.int8_path), "-o", str(tmp_path / "b"), "--check", "--steps", "200"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "target std" in _text(result) and "pass" in _text(result)


# ---- the emulated Cortex-M4 -----------------------------------------------------------------


def test_int8_forecast_under_qemu_matches_numpy_and_host(fc, tmp_path, require_tools):
    require_tools(cg.ARM_CC, cg.QEMU_CMD[0])
    out = tmp_path / "m4"
    report = cg.codegen(
        fc.int8_path, out, cg.CodegenOptions(name="fc", target="cortex-m4", steps=300, check=True)
    )
    (check,) = report.checks
    assert check.runs_on == "cortex-m4 (qemu)" and check.unit == "target std"
    assert check.steps == 6  # steps 0, 64, ..., 256 and the last (299) are printed
    assert check.passed, check.failures
    # The model's const arrays are in flash (.text holds .rodata), not copied into RAM.
    assert report.sections[".text"] > report.footprint.weight_bytes
    assert report.sections[".data"] < report.footprint.weight_bytes
    width = fc.config.output_size
    m4 = cg.run_qemu(out / "fc.elf", width)
    host = cg.run_example([str(cg.build_host(out, "fc", tmp_path / "fc"))], width, 60)
    assert sorted(m4.outputs) == sorted(host.outputs) == [0, 64, 128, 192, 256, 299]
    for step, values in m4.outputs.items():
        assert _std_err(values, host.outputs[step], fc.config) <= HOST_VS_M4_ATOL_STD


def test_check_against_torch_without_the_data_uses_a_seeded_stream(tmp_path, model_factory):
    from lstm_edge.toolchain.checkpoint import DATA_FILE, load_checkpoint
    from lstm_edge.toolchain.export import build_onnx

    ckpt = _forecast_checkpoint(tmp_path, model_factory)
    (ckpt / DATA_FILE).unlink()  # the series cannot be found again
    path = tmp_path / "m.onnx"
    path.write_bytes(build_onnx(load_checkpoint(ckpt).model).SerializeToString())
    report = tc_codegen(path, tmp_path / "b", cg.CodegenOptions(check=True, steps=100), ckpt)
    assert report.stream_source.startswith("seeded") and "unavailable" in report.stream_source
    assert [c.against for c in report.checks] == ["numpy", "torch"]
    assert report.passed, report.checks


# ---- anomaly scoring on the device ------------------------------------------------------------


def _calibrated(path: Path, out: Path, calibration: dict) -> Path:
    """A copy of the artifact at `path` carrying `calibration` (as export writes it)."""
    import json

    import onnx
    from onnx import helper

    from lstm_edge.exporters.onnx_export import stamp_digest
    from lstm_edge.runtime.config import META_CALIBRATION

    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props[META_CALIBRATION] = json.dumps(calibration)
    del proto.metadata_props[:]
    helper.set_model_props(proto, props)
    stamp_digest(proto)
    onnx.save(proto, str(out))
    return out


def test_anomaly_score_matches_detect_and_codegen_carries_the_calibration(fc, tmp_path):
    """lstm_edge_anomaly_score is the score `detect` computes (forecast_eval), and codegen
    writes the artifact's residual scales and threshold as exact float literals."""
    from lstm_edge.toolchain import forecast_eval as fe

    # Scales that are not exact in binary and differ per target, so a swapped, rounded or
    # dropped value shows.
    calibration = {"residual_scale": [0.37, 2.9], "threshold": 4.6, "split": "train"}
    path = _calibrated(fc.int8_path, tmp_path / "cal.onnx", calibration)
    lib = load(path, backend="c").runner._lib
    c_score = lib.lstm_edge_anomaly_score
    c_score.restype = ctypes.c_int
    c_score.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int32, ctypes.c_void_p]

    def score(forecast, actual, scale, n, want_status=0):
        out = ctypes.c_float(-2.0)
        assert c_score(forecast, actual, scale, n, ctypes.byref(out)) == want_status
        return out.value

    rng = np.random.default_rng(0)
    forecast = rng.normal(100, 10, size=(200, 2)).astype(np.float32)
    actual = (forecast + rng.normal(0, 3, size=(200, 2))).astype(np.float32)
    scale = np.asarray(calibration["residual_scale"], np.float32)
    got = [
        score(forecast[t].ctypes.data, actual[t].ctypes.data, scale.ctypes.data, 2)
        for t in range(200)
    ]
    # forecast_eval.anomaly_scores indexes a score by the row it judges: horizon 0 pairs
    # forecast[t] with actual[t], exactly what the C function is given.
    want = fe.anomaly_scores(forecast, actual, 0, calibration["residual_scale"])
    # float32 division in C vs float64 in numpy: ~1e-7 relative.
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # A bad call is a status code (LSTM_EDGE_ERR_NULL, _BAD_SIZE); the score is not written.
    assert score(None, actual[0].ctypes.data, scale.ctypes.data, 2, want_status=1) == -2.0
    assert score(forecast[0].ctypes.data, actual[0].ctypes.data, scale.ctypes.data, 0, 3) == -2.0
    row = (forecast[0].ctypes.data, actual[0].ctypes.data, scale.ctypes.data, 2)
    assert c_score(*row, None) == 1
    nan_row = np.array([np.nan, 0.0], np.float32)
    assert np.isnan(score(nan_row.ctypes.data, actual[0].ctypes.data, scale.ctypes.data, 2))

    sources = model_sources(read_artifact(path), "fc")
    assert "#define FC_ANOMALY_THRESHOLD 4.6f" in sources.header
    body = re.search(r"fc_residual_scale\[FC_OUTPUT_SIZE\] = \{([^}]*)\}", sources.source)
    values = [float(v.strip().rstrip("f")) for v in body.group(1).split(",")]
    assert np.array_equal(np.float32(values), scale)
    # Without calibration there is nothing to score with: no constants are emitted.
    plain = model_sources(read_artifact(fc.int8_path), "fc")
    assert "ANOMALY_THRESHOLD" not in plain.header and "residual_scale" not in plain.source


# ---- change targets: raw in, raw out in every backend ------------------------------------


def change_config() -> ModelConfig:
    """Change targets: the head predicts target[t + 2] - target[t] in units of the
    training split's change std; the graph adds the last observed value (features
    `current` and `load`) back. Targets in another order than the features, so a wrong
    last_index shows."""
    return replace(
        forecast_config(), target_kind="change", change_mean=(0.5, -0.2), change_std=(3.0, 0.7)
    )


def trending_stream(config: ModelConfig, steps: int) -> np.ndarray:
    """Raw rows that climb far above the training range (a trend of 20 stds over the
    stream): the forecasts must follow the last values, not the training mean."""
    ramp = np.linspace(0.0, 20.0, steps)[:, None] * np.asarray(config.feature_std)
    return (raw_stream(config, steps) + ramp).astype(np.float32)


def test_change_targets_raw_in_raw_out_match_torch_on_every_backend(tmp_path, model_factory):
    tiny_model, write_models = model_factory
    config = change_config()
    model = tiny_model(config, seed=3)
    float_path, int8_path = write_models(tmp_path, config, seed=3)
    stream = trending_stream(config, 400)
    with torch.no_grad():
        want = model(torch.from_numpy(stream[None]))[0][0].numpy().astype(np.float64)
    last = stream[:, [2, 0]].astype(np.float64)  # current, load: the targets' last values
    change = (want - last) / np.asarray(config.change_std)
    # The forecast is the last value plus a change of the order of the change std, so it
    # follows the trend; a model that dropped the last value would sit near 0 here.
    assert np.abs(change).max() < 20 and np.abs(want - last).max() < 100
    far = np.abs(want[-1] - np.asarray(config.target_mean)) / np.asarray(config.target_std)
    assert far.min() > 10  # target stds above the training mean: a level model saturates
    for backend in ("numpy", "ort", "c"):
        got, _ = _single_steps(load(float_path, backend=backend), stream)
        assert _std_err(got, want, config) <= ATOL_STD, backend
        q, _ = _single_steps(load(int8_path, backend=backend), stream)
        # int8 weights move the change by a fraction of its std, never the last value.
        assert np.abs((q - want) / np.asarray(config.change_std)).max() < 1.0, backend


def test_change_targets_under_qemu_match_torch(tmp_path, require_tools, model_factory):
    """The Cortex-M4 build of a change-target model: codegen's example stream (the seeded
    synthetic rows) through QEMU, raw forecasts compared with torch on the same rows."""
    require_tools(cg.ARM_CC, cg.QEMU_CMD[0])
    tiny_model, write_models = model_factory
    config = change_config()
    model = tiny_model(config, seed=3)
    float_path, _ = write_models(tmp_path, config, seed=3)
    out = tmp_path / "m4"
    report = cg.codegen(
        float_path, out, cg.CodegenOptions(name="chg", target="cortex-m4", steps=300, check=True)
    )
    assert report.checks[0].passed, report.checks[0].failures
    assert "last_index" in (out / "chg_model.c").read_text()
    stream, _ = config.spec.c_example_inputs(config, 300)
    with torch.no_grad():
        want = model(torch.from_numpy(stream[None]))[0][0].numpy()
    m4 = cg.run_qemu(out / "chg.elf", config.output_size)
    assert sorted(m4.outputs) == [0, 64, 128, 192, 256, 299]
    for step, values in m4.outputs.items():
        assert _std_err(values, want[step], config) <= ATOL_STD, step
