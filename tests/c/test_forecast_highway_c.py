"""The forecast linear highway in the C library: the c backend against the numpy reference
(prefill, single steps, batches; outputs and the history state), a model whose LSTM head is
zero against the linear AR baseline it carries, the C API's highway contract
(api_highway_test.c, also under the sanitizers), and the generated example on the host and
on the emulated Cortex-M4 against numpy (raw sensor rows in, raw forecasts out)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_forecast_c import ATOL_STD, HOST_VS_M4_ATOL_STD, STRICT, _compilers
from test_forecast_c import forecast_config as base_config
from test_sanitizers import REPORT, SANITIZE

from lstm_edge.exporters import c_codegen as cg
from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.model import load
from lstm_edge.runtime.tasks.forecast import output_ahead
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.export import build_onnx

HERE = Path(__file__).resolve().parent
STEPS = 160  # three times the longest lag window below
SCHEMES = ("none", "int8", "fp16")


def highway_config(lags: int, horizon: int, kind: str, seed: int = 0) -> ModelConfig:
    """The C forecast test model (3 features at different scales, 2 targets in another
    order, hidden 13, 2 layers) with a highway of `lags` random AR coefficients; horizon 3
    outputs each step ahead (6 outputs)."""
    each = horizon > 1
    n = 2 * (horizon if each else 1)
    rng = np.random.default_rng(seed)
    fields = {
        "horizon": horizon,
        "horizon_outputs": "each" if each else "last",
        "ar_lags": lags,
        "ar_coef": tuple(float(v) for v in rng.normal(0.0, 0.3, n * (1 + lags))),
    }
    if kind == "change":
        fields |= {
            "target_kind": "change",
            "change_mean": tuple(float(v) for v in np.linspace(-0.3, 0.5, n)),
            "change_std": tuple(float(v) for v in np.linspace(0.7, 3.0, n)),
        }
    return replace(base_config(), **fields)


CASES = {
    "lags5-h1-level": (5, 1, "level"),
    "lags5-h3each-change": (5, 3, "change"),
    "lags53-h1-change": (53, 1, "change"),
    "lags53-h3each-level": (53, 3, "level"),
}


@dataclass(frozen=True)
class HighwayModels:
    config: ModelConfig
    paths: dict[str, Path]  # scheme -> artifact
    stream: np.ndarray  # float32 [3, STEPS, F] raw rows of three streams


def _models(case: str, tmp_path_factory, model_factory) -> HighwayModels:
    tiny_model, _ = model_factory
    config = highway_config(*CASES[case])
    folder = tmp_path_factory.mktemp(case)
    proto = build_onnx(tiny_model(config, seed=3))
    paths = {}
    for scheme in SCHEMES:
        paths[scheme] = folder / f"hw.{scheme}.onnx"
        graph = proto if scheme == "none" else quantize_proto(proto, scheme)
        paths[scheme].write_bytes(graph.SerializeToString())
    stream = np.stack([config.spec.synthetic_inputs(config, STEPS, seed) for seed in (1, 2, 3)])
    return HighwayModels(config, paths, stream.astype(np.float32))


@pytest.fixture(scope="module", params=sorted(CASES))
def hw(request, tmp_path_factory, model_factory) -> HighwayModels:
    return _models(request.param, tmp_path_factory, model_factory)


# One QEMU run per lag count is enough: the 53-lag models run it.
@pytest.fixture(scope="module", params=sorted(k for k, v in CASES.items() if v[0] == 53))
def hw53(request, tmp_path_factory, model_factory) -> HighwayModels:
    return _models(request.param, tmp_path_factory, model_factory)


def _err(config: ModelConfig, got: np.ndarray, want: np.ndarray) -> float:
    """Max |got - want| in target standard units (outputs step-major, targets repeat)."""
    std = np.tile(np.asarray(config.target_std), config.output_size // len(config.targets))
    return float((np.abs(got.astype(np.float64) - want) / std).max())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_c_backend_equals_numpy_prefill_single_steps_and_batches(hw, scheme):
    ref = load(hw.paths[scheme], "numpy")
    c = load(hw.paths[scheme], "c")
    want, want_state = ref.step(hw.stream, ref.initial_state(3))
    size = 1 + hw.config.ar_lags * hw.config.output_size
    assert want_state.history.shape == (3, size)

    # one call over every step of three streams (a prefill of a batch)
    got, state = c.step(hw.stream, c.initial_state(3))
    assert _err(hw.config, got, want) <= ATOL_STD
    np.testing.assert_array_equal(state.history, want_state.history)
    np.testing.assert_allclose(state.h, want_state.h, rtol=0, atol=ATOL_STD)
    np.testing.assert_allclose(state.c, want_state.c, rtol=0, atol=ATOL_STD)

    # single steps of the batch, and of one stream: the same bits as the one call
    state3, state1, rows3, rows1 = c.initial_state(3), c.initial_state(1), [], []
    for t in range(STEPS):
        y3, state3 = c.step(hw.stream[:, t], state3)
        y1, state1 = c.step(hw.stream[1:2, t], state1)
        rows3.append(y3)
        rows1.append(y1)
    np.testing.assert_array_equal(np.stack(rows3, 1), got)
    np.testing.assert_array_equal(np.stack(rows1, 1), got[1:2])
    np.testing.assert_array_equal(state3.history, state.history)
    np.testing.assert_array_equal(state1.history, state.history[1:2])

    # a prefill split in two calls carries the history across them
    first, mid = c.step(hw.stream[2:, :70], c.initial_state(1))
    second, end = c.step(hw.stream[2:, 70:], mid)
    np.testing.assert_array_equal(np.concatenate([first, second], 1), got[2:])
    np.testing.assert_array_equal(end.history, state.history[2:])

    # the state in is never written, and a given mid-stream state is carried as numpy does
    ref_second, ref_end = ref.step(hw.stream[2:, 70:], mid)
    assert _err(hw.config, second, ref_second) <= ATOL_STD
    np.testing.assert_array_equal(end.history, ref_end.history)


def test_reset_starts_the_history_over(hw):
    c = load(hw.paths["none"], "c")
    first, state = c.step(hw.stream[:1], c.initial_state(1))
    again, _ = c.step(hw.stream[:1], c.initial_state(1))
    np.testing.assert_array_equal(first, again)
    # after a reset the past is the first value itself: a stream that starts at another
    # step forecasts as if it had stood still there (the numpy spec)
    later, _ = c.step(hw.stream[:1, 40:], c.initial_state(1))
    ref = load(hw.paths["none"], "numpy")
    want, _ = ref.step(hw.stream[:1, 40:], ref.initial_state(1))
    assert _err(hw.config, later, want) <= ATOL_STD
    assert state.history[0, 0] == 1.0


def test_zero_head_is_the_linear_ar_baseline(hw, tmp_path, model_factory):
    """With the LSTM head at zero the C forecast IS the AR the config carries
    (toolchain.forecast_eval.linear_ar_forecast) once `lags` steps of history exist."""
    tiny_model, _ = model_factory
    cfg = hw.config
    model = tiny_model(cfg, seed=3)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    path = tmp_path / "zero_head.onnx"
    path.write_bytes(build_onnx(model).SerializeToString())
    c = load(path, "c")
    got, _ = c.step(hw.stream, c.initial_state(3))
    lags, n_targets = cfg.ar_lags, len(cfg.targets)
    coef = np.asarray(cfg.ar_coef).reshape(cfg.output_size, 1 + lags)
    columns = [cfg.features.index(t) for t in cfg.targets]
    for o, ahead in enumerate(np.repeat(output_ahead(cfg), n_targets)):
        k = o % n_targets
        ar = fe.LinearAR(int(ahead), lags, coef[o : o + 1])
        for b in range(3):
            series = hw.stream[b][:, [columns[k]]].astype(np.float64)
            want = fe.linear_ar_forecast(ar, series)[:, 0]
            err = np.abs(got[b, lags:, o] - want[lags:]) / cfg.target_std[k]
            assert err.max() <= ATOL_STD, (o, b, err.max())


def _bundle(hw, tmp_path: Path, scheme: str, steps: int = 300, **options) -> Path:
    out = tmp_path / f"bundle-{scheme}"
    cg.codegen(hw.paths[scheme], out, cg.CodegenOptions(name="hw", steps=steps, **options))
    return out


def test_generated_header_sizes_the_history(hw, tmp_path):
    out = _bundle(hw, tmp_path, "none", steps=100)
    header = (out / "hw_model.h").read_text()
    size = 1 + hw.config.ar_lags * hw.config.output_size
    assert f"#define HW_HISTORY_FLOATS {size}\n" in header
    source = (out / "hw_model.c").read_text()
    assert ".output.highway = { " + str(hw.config.ar_lags) in source


@pytest.mark.parametrize("scheme", ["none", "int8"])
def test_highway_api_contract_on_every_compiler(hw, tmp_path, scheme):
    out = _bundle(hw, tmp_path, scheme, steps=100)
    for cc in _compilers():
        exe = tmp_path / f"api_{cc}"
        build = subprocess.run(
            [cc, *STRICT, "-O2", f"-I{out}", "-o", str(exe), str(HERE / "api_highway_test.c"),
             str(out / "hw_model.c"), str(out / "lstm_edge.c"), "-lm"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr
        run = subprocess.run([str(exe)], capture_output=True, text=True)
        assert run.returncode == 0 and run.stdout.strip() == "api ok", run.stdout


def test_highway_api_contract_under_sanitizers(hw, tmp_path, require_tools):
    require_tools("gcc")
    out = _bundle(hw, tmp_path, "none", steps=100)
    exe = tmp_path / "api_san"
    subprocess.run(
        ["gcc", *SANITIZE, f"-I{out}", "-o", str(exe), str(HERE / "api_highway_test.c"),
         str(out / "hw_model.c"), str(out / "lstm_edge.c"), "-lm"],
        check=True, capture_output=True,
    )  # fmt: skip
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert not REPORT.search(run.stderr), run.stderr
    assert run.returncode == 0 and run.stdout.strip() == "api ok", run.stdout


def test_generated_example_on_the_host_matches_numpy(hw, tmp_path):
    report = cg.codegen(
        hw.paths["none"], tmp_path / "host", cg.CodegenOptions(name="hw", steps=300, check=True)
    )
    (check,) = report.checks
    assert check.against == "numpy" and check.unit == "target std"
    assert check.steps == 300 and check.passed, check.failures  # every step on the host


def test_highway_model_under_qemu_matches_numpy_and_host(hw53, tmp_path, require_tools):
    """Raw rows in, raw forecasts out on the emulated Cortex-M4 (int8 weights, float32
    highway), against numpy and the same bundle built for the host."""
    hw = hw53
    require_tools(cg.ARM_CC, cg.QEMU_CMD[0])
    out = tmp_path / "m4"
    report = cg.codegen(
        hw.paths["int8"], out, cg.CodegenOptions(name="hw", target="cortex-m4", steps=300,
                                                 check=True),
    )  # fmt: skip
    (check,) = report.checks
    assert check.runs_on == "cortex-m4 (qemu)" and check.against == "numpy"
    assert check.steps == 6 and check.passed, check.failures
    width = hw.config.output_size
    m4 = cg.run_qemu(out / "hw.elf", width)
    host = cg.run_example([str(cg.build_host(out, "hw", tmp_path / "hw"))], width, 60)
    assert sorted(m4.outputs) == sorted(host.outputs) == [0, 64, 128, 192, 256, 299]
    for step, values in m4.outputs.items():
        assert _err(hw.config, values, host.outputs[step]) <= HOST_VS_M4_ATOL_STD
