"""The token classify artifact (a classify config with a vocabulary): an embedding Gather in,
class logits at every step out, the same on torch, numpy, onnxruntime and C, float and int8;
per-step logits equal the prefill; the C header names the classes and the vocabulary."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig
from lstm_edge.runtime.errors import InputError, InvalidConfigError
from lstm_edge.runtime.tasks.classify import CLASSIFY, TOKEN_CLASSIFY
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM

CLASSES = ("en", "de", "fi")
VOCAB = (UNK_CHAR, " ", "a", "d", "e", "i", "k", "n", "s", "t")


def token_config(**over) -> ModelConfig:
    values = dict(
        task="classify", hidden_size=12, num_layers=2, vocab=VOCAB, embed_size=6, classes=CLASSES
    )
    values.update(over)
    return ModelConfig(**values)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    torch.manual_seed(0)
    model = EdgeLSTM(token_config()).eval()
    with torch.no_grad():  # saturating gates: a wiring bug cannot hide near 0.5
        for p in model.lstm.parameters():
            p.mul_(4.0)
    folder = tmp_path_factory.mktemp("classify-tokens")
    proto = build_onnx(model, source_sha256="0" * 64)
    paths = {"none": folder / "m.onnx", "int8": folder / "m.int8.onnx"}
    onnx.save(proto, paths["none"])
    onnx.save(quantize_proto(proto, "int8"), paths["int8"])
    return model, paths


def test_config_resolves_to_the_token_spec_and_round_trips():
    config = token_config()
    assert config.spec is TOKEN_CLASSIFY and config.task == "classify"
    assert config.input_size == 6 and config.output_size == 3
    assert config.to_dict().keys() == {
        "format_version", "task", "hidden_size", "num_layers", "vocab", "embed_size", "classes"
    }  # fmt: skip
    assert ModelConfig.from_json(config.to_json()) == config
    with pytest.raises(InvalidConfigError, match="features is set, but a token classifier"):
        token_config(features=("a",), feature_mean=(0.0,), feature_std=(1.0,))
    with pytest.raises(InvalidConfigError, match="classes has 1 names"):
        token_config(classes=("en",))
    with pytest.raises(InvalidConfigError, match="embed_size is 0"):
        token_config(embed_size=0)
    with pytest.raises(InvalidConfigError, match="embed_size is set, but a feature"):
        ModelConfig(
            task="classify", hidden_size=4, num_layers=1, features=("x",), classes=("a", "b"),
            feature_mean=(0.0,), feature_std=(1.0,), embed_size=3,
        )  # fmt: skip
    CLASSIFY.require(config, "class predictions")  # both input kinds are the classify task


@pytest.mark.parametrize("backend", ["numpy", "ort", "c"])
@pytest.mark.parametrize("scheme", ["none", "int8"])
def test_per_step_logits_equal_prefill_and_torch(artifacts, backend, scheme):
    model, paths = artifacts
    m = rt.load(paths[scheme], backend=backend)
    assert m.config.spec is TOKEN_CLASSIFY
    x = np.random.default_rng(1).integers(0, len(VOCAB), 40)
    prefill, end = m.step(x[None], m.initial_state(1))
    state, steps = m.initial_state(1), []
    for token in x:
        y, state = m.step(np.array([token]), state)
        steps.append(y[0])
    assert prefill.shape == (1, 40, 3)
    np.testing.assert_allclose(np.array(steps), prefill[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(state.h, end.h, rtol=0, atol=1e-5)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None])[0][0].numpy()
    if scheme == "none":
        np.testing.assert_allclose(prefill[0], ref, rtol=0, atol=1e-4)
    else:  # int8 weights and embedding: logits move a little; the running class rarely does
        assert np.abs(prefill[0] - ref).max() < 0.5
        assert (prefill[0].argmax(-1) == ref.argmax(-1)).mean() >= 0.9


def test_backends_agree_and_bad_tokens_are_refused(artifacts):
    _, paths = artifacts
    x = np.random.default_rng(2).integers(0, len(VOCAB), (3, 17))
    out = {}
    for backend in ("numpy", "ort", "c"):
        m = rt.load(paths["int8"], backend=backend)
        out[backend], _ = m.step(x, m.initial_state(3))
        with pytest.raises(InputError, match="out of range"):
            m.step(np.array([len(VOCAB)]), m.initial_state(1))
        with pytest.raises(InputError, match="integer dtype"):
            m.step(np.zeros((1, 2), np.float32), m.initial_state(1))
    for backend in ("ort", "c"):
        np.testing.assert_allclose(out[backend], out["numpy"], rtol=0, atol=1e-5)


def test_c_header_names_the_classes_and_codegen_checks(artifacts, tmp_path):
    from lstm_edge.exporters import c_codegen as cg

    _, paths = artifacts
    report = cg.codegen(
        paths["int8"], tmp_path / "b", cg.CodegenOptions(name="txt", steps=50, check=True)
    )
    header = (tmp_path / "b" / "txt_model.h").read_text()
    assert "#define TXT_CLASSES 3" in header and "#define TXT_VOCAB 10" in header
    assert "LSTM_EDGE_TASK_CLASSIFY" in header
    source = (tmp_path / "b" / "txt_model.c").read_text()
    for name in CLASSES:
        assert f'"{name}"' in source
    (check,) = report.checks
    assert check.passed, check.failures  # the host build's logits vs numpy
