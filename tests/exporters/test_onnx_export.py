"""The float export: torch vs onnxruntime vs onnx.reference, streaming, metadata, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from export_helpers import STREAM_STEPS, torch_logits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx.reference import ReferenceEvaluator

from lstm_edge.exporters import onnx_export
from lstm_edge.exporters.onnx_export import (
    CHECK_TOLERANCE,
    NonFiniteWeightError,
    OutputExistsError,
    SelfCheckError,
    run_session,
    run_steps,
)
from lstm_edge.runtime.config import (
    FORMAT_VERSION,
    INPUT_C0,
    INPUT_H0,
    INPUT_TOKENS,
    META_CONFIG,
    META_FORMAT_VERSION,
    META_PRODUCER_VERSION,
    META_QUANTIZATION,
    META_SOURCE_SHA256,
    ModelConfig,
)
from lstm_edge.runtime.format import __version__
from lstm_edge.toolchain.checkpoint import InvalidCheckpointError, save_checkpoint, sha256_file
from lstm_edge.toolchain.export import build_onnx, export_checkpoint
from lstm_edge.toolchain.model import EdgeLSTM

TINY = ModelConfig(vocab=("\ufffd", *"abcdefgh "), embed_size=4, hidden_size=6, num_layers=2)


def zeros_state(model: EdgeLSTM, batch: int = 1) -> np.ndarray:
    cfg = model.config
    return np.zeros((cfg.num_layers, batch, cfg.hidden_size), np.float32)


def tiny_checkpoint(folder, seed: int = 0, config: ModelConfig = TINY):
    torch.manual_seed(seed)
    model = EdgeLSTM(config).eval()
    save_checkpoint(folder, model)
    return model


# ---- numerics ----------------------------------------------------------------------------


def test_float_export_matches_torch_over_the_held_out_stream(trained, float_session):
    tokens = trained.stream[None]
    assert tokens.shape[1] == STREAM_STEPS
    want = torch_logits(trained.model, tokens)
    h0 = zeros_state(trained.model)
    prefill, _, _ = run_session(float_session, tokens, h0, h0)
    steps, _, _ = run_steps(float_session, tokens, h0, h0)
    # The acceptance bound of the issue; float32 kernels that sum in different orders.
    assert np.abs(prefill - want).max() <= 1e-4
    assert np.abs(steps - want).max() <= 1e-4


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20))
def test_any_chunking_equals_one_prefill(trained, float_session, chunks):
    tokens = trained.stream[None, :300]
    h0 = zeros_state(trained.model)
    whole, h_whole, c_whole = run_session(float_session, tokens, h0, h0)
    parts, h, c, t, k = [], h0, h0, 0, 0
    while t < tokens.shape[1]:
        size = chunks[k % len(chunks)]
        logits, h, c = run_session(float_session, tokens[:, t : t + size], h, c)
        parts.append(logits)
        t, k = t + size, k + 1
    # Same kernel, same inputs; only the GEMM blocking over time differs: ~1e-7.
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-5)
    np.testing.assert_allclose(h, h_whole, atol=1e-5)
    np.testing.assert_allclose(c, c_whole, atol=1e-5)


def test_batch_of_independent_streams_with_their_own_state(trained, float_session):
    batch, steps = 4, 400
    tokens = np.stack([trained.stream[i * steps : (i + 1) * steps] for i in range(batch)])
    # Each stream starts from its own real state, so h/c or layer mix-ups show up.
    h0, c0 = warm_state(trained, batch)
    got, hn, cn = run_session(float_session, tokens, h0, c0)
    for b in range(batch):
        state = (torch.from_numpy(h0[:, b : b + 1]), torch.from_numpy(c0[:, b : b + 1]))
        with torch.no_grad():
            want, (h, c) = trained.model(torch.from_numpy(tokens[b : b + 1]), state)
        # Same float32 bound as the single-stream check.
        np.testing.assert_allclose(got[b : b + 1], want.numpy(), atol=1e-4)
        np.testing.assert_allclose(hn[:, b : b + 1], h.numpy(), atol=1e-4)
        # The cell state is unbounded (|c| reaches ~200 here): float32 rounding is relative.
        np.testing.assert_allclose(cn[:, b : b + 1], c.numpy(), rtol=1e-5, atol=1e-4)


def warm_state(trained, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Real (h, c) [layers, batch, hidden]: stream b after a prefix of 20 + 30 * b tokens."""
    warm = [trained.stream[-(20 + 30 * b) :][None] for b in range(batch)]
    with torch.no_grad():
        states = [trained.model(torch.from_numpy(w))[1] for w in warm]
    return (
        torch.cat([h for h, _ in states], dim=1).numpy(),
        torch.cat([c for _, c in states], dim=1).numpy(),
    )


def assert_reference_agrees(proto: onnx.ModelProto, session, trained, steps: int = 100):
    """onnx.reference vs onnxruntime on the same graph, from a warm 2-stream state."""
    tokens = np.stack([trained.stream[:steps], trained.stream[steps : 2 * steps]])
    h0, c0 = warm_state(trained, 2)
    want = ReferenceEvaluator(proto).run(None, {INPUT_TOKENS: tokens, INPUT_H0: h0, INPUT_C0: c0})
    got = run_session(session, tokens, h0, c0)
    for w, g in zip(want, got, strict=True):
        # Both float32, different summation order: rounding only, relative for the
        # unbounded cell state. (onnx.reference is slow, hence 100 steps.)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)


def test_reference_evaluator_agrees_with_onnxruntime(trained, float_session):
    assert_reference_agrees(onnx.load(str(trained.onnx_path)), float_session, trained)


def test_graph_uses_only_the_allowed_ops_and_has_dynamic_axes(trained):
    proto = onnx.load(str(trained.onnx_path))
    ops = {n.op_type for n in proto.graph.node}
    assert ops == {"Gather", "Transpose", "Slice", "LSTM", "Squeeze", "Concat", "MatMul", "Add"}
    assert sum(n.op_type == "LSTM" for n in proto.graph.node) == trained.model.config.num_layers
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time"]
    assert proto.opset_import[0].version == 17 and proto.ir_version == 8


def test_single_layer_graph_uses_identity_and_matches_torch(tmp_path):
    cfg = ModelConfig(vocab=TINY.vocab, embed_size=3, hidden_size=5, num_layers=1)
    model = tiny_checkpoint(tmp_path / "ck", config=cfg)
    report = export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx", check_steps=50)
    ops = [n.op_type for n in onnx.load(str(report.path)).graph.node]
    assert "Identity" in ops and "Concat" not in ops
    assert report.max_abs_err_steps <= CHECK_TOLERANCE
    assert isinstance(model, EdgeLSTM)


# ---- export_checkpoint: metadata, stream, bad inputs -------------------------------------


def test_metadata_round_trips(tmp_path):
    model = tiny_checkpoint(tmp_path / "ck")
    report = export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx", check_steps=100)
    meta = {p.key: p.value for p in onnx.load(str(report.path)).metadata_props}
    assert ModelConfig.from_json(meta[META_CONFIG]) == model.config
    assert meta[META_FORMAT_VERSION] == str(FORMAT_VERSION)
    assert meta[META_QUANTIZATION] == "none"
    assert meta[META_SOURCE_SHA256] == sha256_file(tmp_path / "ck" / "model.safetensors")
    assert meta[META_PRODUCER_VERSION] == __version__
    assert report.steps_checked == 100 and "random" in report.stream
    assert report.bytes == (tmp_path / "m.onnx").stat().st_size
    assert report.max_abs_err_prefill <= CHECK_TOLERANCE


def test_check_uses_the_held_out_split_when_the_checkpoint_records_its_corpus(tmp_path):
    data = pytest.importorskip("lstm_edge.toolchain.data")
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    corpus = data.load_corpus(corpus_file)
    split = data.split_corpus(len(corpus.text))
    vocab = data.build_vocab(split.text(corpus.text, "train"))
    torch.manual_seed(0)
    model = EdgeLSTM(ModelConfig(vocab=vocab, embed_size=4, hidden_size=8, num_layers=2))
    save_checkpoint(
        tmp_path / "ck", model, data.data_record(corpus, split, vocab, data.VocabOptions())
    )
    report = export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx", check_steps=300)
    assert report.stream.startswith("held-out test split")
    test_len = split.test[1] - split.test[0]
    assert report.steps_checked == min(300, test_len)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad):
    torch.manual_seed(0)
    model = EdgeLSTM(TINY)
    with torch.no_grad():
        model.lstm.weight_hh_l1[3, 2] = bad
    with pytest.raises(NonFiniteWeightError, match=r"lstm\.weight_hh_l1"):
        build_onnx(model)
    save_checkpoint(tmp_path / "ck", model)
    with pytest.raises(NonFiniteWeightError, match=r"lstm\.weight_hh_l1"):
        export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_existing_output_is_kept_without_force_and_replaced_with_it(tmp_path):
    tiny_checkpoint(tmp_path / "ck")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--force"):
        export_checkpoint(tmp_path / "ck", out, check_steps=10)
    assert out.read_bytes() == b"precious"
    export_checkpoint(tmp_path / "ck", out, force=True, check_steps=10)
    assert onnx.load(str(out)).graph.node


def test_failed_self_check_leaves_no_file_and_says_by_how_much(tmp_path, monkeypatch):
    tiny_checkpoint(tmp_path / "ck")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous good model")
    # A real exporter bug: forget the gate permutation. The check must catch it.
    monkeypatch.setattr(onnx_export, "torch_to_onnx_gates", lambda w: w)
    with pytest.raises(SelfCheckError, match=r"max abs logit error vs torch is \d") as e:
        export_checkpoint(tmp_path / "ck", out, force=True, check_steps=50)
    assert "tolerance 0.0001" in str(e.value)
    assert out.read_bytes() == b"previous good model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "m.onnx"]  # no temp files


def test_output_folder_must_exist(tmp_path):
    tiny_checkpoint(tmp_path / "ck")
    with pytest.raises(OutputExistsError, match="does not exist"):
        export_checkpoint(tmp_path / "ck", tmp_path / "nowhere" / "m.onnx")


def test_bad_checkpoint_is_named(tmp_path):
    (tmp_path / "ck").mkdir()
    with pytest.raises(InvalidCheckpointError, match=r"not a valid checkpoint: .*config\.json"):
        export_checkpoint(tmp_path / "ck", tmp_path / "m.onnx")


def test_metadata_config_is_json_with_the_vocabulary(trained):
    meta = {p.key: p.value for p in onnx.load(str(trained.onnx_path)).metadata_props}
    assert json.loads(meta[META_CONFIG])["vocab"] == list(trained.model.config.vocab)
