"""Forecasts of each step ahead (horizon_outputs "each"): a tiny horizon-3 model whose
outputs are the targets at t + 1, t + 2, t + 3, step-major, raw values in and raw forecasts
out, against torch on numpy, onnxruntime and the C library, with level and change targets;
the C header and the runtime name each output."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lstm_edge.exporters import c_codegen as cg
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InvalidConfigError
from lstm_edge.runtime.model import load
from lstm_edge.runtime.tasks.forecast import normalization_tensors, output_names, step_block
from tests.c.test_forecast_c import ATOL_STD, _single_steps, forecast_config, trending_stream

H = 3


def each_config(kind: str) -> ModelConfig:
    """forecast_config's columns (targets current, load) at horizon 3, each step ahead."""
    cfg = replace(forecast_config(), horizon=H, horizon_outputs="each")
    if kind == "change":  # one change statistic per output: steps ahead scale the change
        mean = (0.5, -0.2, 1.0, -0.4, 1.5, -0.6)
        std = (3.0, 0.7, 4.2, 1.0, 5.1, 1.2)
        cfg = replace(cfg, target_kind="change", change_mean=mean, change_std=std)
    return cfg


@pytest.fixture(scope="module", autouse=True)
def _compiler(require_tools):
    require_tools("cc")


def test_each_step_outputs_are_named_and_normalized_per_output():
    cfg = each_config("change")
    assert cfg.output_size == 6
    names = ("current+1", "load+1", "current+2", "load+2", "current+3", "load+3")
    assert output_names(cfg) == names
    t = normalization_tensors(cfg)
    assert t["norm.out.scale"].tolist() == pytest.approx(cfg.change_std)
    # every step block adds the same targets' last values: current is feature 2, load 0
    assert np.argmax(t["norm.last.select"], axis=0).tolist() == [2, 0] * H
    level = each_config("level")
    assert normalization_tensors(level)["norm.out.shift"].tolist() == [120.0, 100.0] * H
    out = np.arange(12.0).reshape(2, 6)
    assert step_block(level, out, 2).tolist() == [[2.0, 3.0], [8.0, 9.0]]
    # one change statistic per output, not per target
    with pytest.raises(InvalidConfigError, match=r"change_mean has 2 values \(expected 6"):
        replace(cfg, change_mean=(0.5, -0.2))
    with pytest.raises(InvalidConfigError, match="horizon_outputs is 'all'"):
        replace(level, horizon_outputs="all")


@pytest.mark.parametrize("kind", ["level", "change"])
def test_each_step_ahead_raw_in_raw_out_match_torch_on_every_backend(tmp_path, model_factory, kind):
    tiny_model, write_models = model_factory
    config = each_config(kind)
    model = tiny_model(config, seed=4)
    float_path, int8_path = write_models(tmp_path, config, seed=4)
    stream = trending_stream(config, 300) if kind == "change" else None
    if stream is None:
        stream = config.spec.synthetic_inputs(config, 300, seed=1)
    with torch.no_grad():
        want = model(torch.from_numpy(stream[None]))[0][0].numpy().astype(np.float64)
    assert want.shape == (300, 6)
    scale = np.asarray(config.target_std * H)
    # the step blocks differ (distinct heads), so a backend that repeated one block fails
    assert np.abs(want[:, :2] - want[:, 4:]).max() / scale.min() > 1e-3
    if kind == "change":  # every block follows the trend through the last values
        last = np.tile(stream[:, [2, 0]].astype(np.float64), H)
        assert np.abs((want - last) / np.asarray(config.change_std)).max() < 20
    for backend in ("numpy", "ort", "c"):
        got, _ = _single_steps(load(float_path, backend=backend), stream)
        assert got.shape == want.shape, backend
        assert (np.abs(got - want) / scale).max() <= ATOL_STD, backend
        q, _ = _single_steps(load(int8_path, backend=backend), stream)
        assert (np.abs(q - want) / scale).max() < 1.0, backend


def test_each_step_model_c_header_names_the_outputs(tmp_path, model_factory):
    _, write_models = model_factory
    config = each_config("change")
    float_path, _ = write_models(tmp_path, config, seed=4)
    out = tmp_path / "c"
    report = cg.codegen(float_path, out, cg.CodegenOptions(name="hz", steps=50, check=True))
    assert report.checks[0].passed, report.checks[0].failures
    header = (out / "hz_model.h").read_text()
    assert "#define HZ_HORIZON 3" in header and "#define HZ_TARGETS 2" in header
    assert "#define HZ_OUTPUT_SIZE 6" in header
    data = (out / "hz_model.c").read_text()
    assert '"current+1"' in data and '"load+3"' in data
    assert "{ 2, 0, 2, 0, 2, 0 }" in data  # last_index per output


def test_each_step_ahead_under_qemu_matches_torch(tmp_path, require_tools, model_factory):
    """The Cortex-M4 build of the horizon-3 change model: codegen's example stream through
    QEMU, all six outputs (three steps ahead x two targets) against torch."""
    require_tools(cg.ARM_CC, cg.QEMU_CMD[0])
    tiny_model, write_models = model_factory
    config = each_config("change")
    model = tiny_model(config, seed=4)
    float_path, _ = write_models(tmp_path, config, seed=4)
    out = tmp_path / "m4"
    report = cg.codegen(
        float_path, out, cg.CodegenOptions(name="hz", target="cortex-m4", steps=200, check=True)
    )
    assert report.checks[0].passed, report.checks[0].failures
    stream, _ = config.spec.c_example_inputs(config, 200)
    with torch.no_grad():
        want = model(torch.from_numpy(stream[None]))[0][0].numpy()
    m4 = cg.run_qemu(out / "hz.elf", config.output_size)
    scale = np.asarray(config.target_std * H)
    assert len(m4.outputs) > 3
    for step, values in m4.outputs.items():
        assert values.shape == (6,)
        assert (np.abs(values - want[step]) / scale).max() <= ATOL_STD, step
