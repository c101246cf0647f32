"""The classify artifact: class logits at every step with the state carried, the same on
torch, numpy, onnxruntime and C, float and int8; per-step logits equal the prefill; a fresh
state starts each sequence; the C header names the classes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InputError, InvalidConfigError
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM

CLASSES = ("normal", "cooling", "bearing")


def classify_config(**over) -> ModelConfig:
    values = dict(
        task="classify",
        hidden_size=12,
        num_layers=2,
        features=("load", "temp"),
        classes=CLASSES,
        feature_mean=(0.5, 40.0),
        feature_std=(0.2, 8.0),
    )
    values.update(over)
    return ModelConfig(**values)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    config = classify_config()
    torch.manual_seed(0)
    model = EdgeLSTM(config).eval()
    with torch.no_grad():  # saturating gates: a wiring bug cannot hide near 0.5
        for p in model.lstm.parameters():
            p.mul_(4.0)
    folder = tmp_path_factory.mktemp("classify")
    proto = build_onnx(model, source_sha256="0" * 64)
    paths = {"none": folder / "m.onnx", "int8": folder / "m.int8.onnx"}
    onnx.save(proto, paths["none"])
    onnx.save(quantize_proto(proto, "int8"), paths["int8"])
    return model, paths


def _rows(config: ModelConfig, n: int, seed: int) -> np.ndarray:
    return config.spec.synthetic_inputs(config, n, seed)


def test_config_round_trip_and_checks():
    config = classify_config()
    assert ModelConfig.from_json(config.to_json()) == config
    assert config.output_size == 3 and config.input_size == 2
    with pytest.raises(InvalidConfigError, match="classes has 1 names"):
        classify_config(classes=("only",))
    with pytest.raises(InvalidConfigError, match="feature_std of column 'temp' is 0"):
        classify_config(feature_std=(0.2, 0))
    with pytest.raises(InvalidConfigError, match="belongs to task 'forecast'"):
        classify_config(targets=("temp",))


@pytest.mark.parametrize("backend", ["numpy", "ort", "c"])
@pytest.mark.parametrize("scheme", ["none", "int8"])
def test_per_step_logits_equal_prefill_and_torch(artifacts, backend, scheme):
    model, paths = artifacts
    m = rt.load(paths[scheme], backend=backend)
    x = _rows(m.config, 40, seed=1)
    prefill, end = m.step(x[None], m.initial_state(1))
    state, steps = m.initial_state(1), []
    for row in x:
        y, state = m.step(row[None], state)
        steps.append(y[0])
    # One call over T rows equals T single steps (the same float32 recurrence).
    np.testing.assert_allclose(np.array(steps), prefill[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(state.h, end.h, rtol=0, atol=1e-5)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None])[0][0].numpy()
    if scheme == "none":
        np.testing.assert_allclose(prefill[0], ref, rtol=0, atol=1e-4)
    else:  # int8 weights: logits move a little; the running class rarely does
        assert np.abs(prefill[0] - ref).max() < 0.5
        assert (prefill[0].argmax(-1) == ref.argmax(-1)).mean() >= 0.9


def test_backends_agree_and_fresh_state_restarts(artifacts):
    _, paths = artifacts
    models = {b: rt.load(paths["none"], backend=b) for b in ("numpy", "ort", "c")}
    a, b = _rows(models["numpy"].config, 25, 2), _rows(models["numpy"].config, 17, 3)
    out = {}
    for name, m in models.items():
        ya, _ = m.step(a[None], m.initial_state(1))
        yb, _ = m.step(b[None], m.initial_state(1))
        out[name] = (ya[0], yb[0])
        # a second sequence from a fresh state equals it run alone: nothing leaks
        yab, _ = m.step(np.concatenate([a, b])[None], m.initial_state(1))
        assert not np.allclose(yab[0, len(a) :], yb[0], atol=1e-3)
    for name in ("ort", "c"):
        for got, want in zip(out[name], out["numpy"], strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_bad_rows_are_refused(artifacts):
    _, paths = artifacts
    m = rt.load(paths["none"], backend="numpy")
    with pytest.raises(InputError, match="expected \\[batch, 2\\]"):
        m.step(np.zeros((1, 3), np.float32), m.initial_state(1))
    with pytest.raises(InputError, match="not finite"):
        m.step(np.array([[np.nan, 1.0]], np.float32), m.initial_state(1))


def test_c_header_names_the_classes(artifacts, tmp_path):
    from lstm_edge.exporters import c_codegen as cg

    _, paths = artifacts
    report = cg.codegen(
        paths["int8"], tmp_path / "b", cg.CodegenOptions(name="cls", steps=50, check=True)
    )
    header = (tmp_path / "b" / "cls_model.h").read_text()
    assert "#define CLS_CLASSES 3" in header
    assert "LSTM_EDGE_TASK_CLASSIFY" in header
    source = (tmp_path / "b" / "cls_model.c").read_text()
    for name in CLASSES:
        assert f'"{name}"' in source
    (check,) = report.checks
    assert check.passed, check.failures  # the host build's logits vs numpy
