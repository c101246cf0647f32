"""A classify model on the emulated Cortex-M4: its int8 C build steps one held-out sequence of
the built-in set row by row under qemu-system-arm; the printed logits match the numpy
reference and the class after the last row is numpy's (and torch's). Skipped without the
tools, except in CI (env CI set)."""

from __future__ import annotations

import numpy as np
import onnx
import torch

import lstm_edge.runtime as rt
from lstm_edge.exporters import c_codegen as cg
from lstm_edge.exporters.quantize import quantize_proto
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM


def test_held_out_sequence_under_qemu_gives_numpys_class(tmp_path, require_tools):
    require_tools("cc", cg.ARM_CC, cg.QEMU_CMD[0])
    seqs = cd.builtin_sequences(40, seed=7)
    splits = cd.split_sequences(seqs, 0.2, 0.2, seed=0)
    mean, std = cd.feature_stats(seqs, splits["train"], seqs.columns)
    config = ModelConfig(
        task="classify",
        hidden_size=16,
        num_layers=1,
        features=seqs.columns,
        classes=seqs.classes,
        feature_mean=mean,
        feature_std=std,
    )
    torch.manual_seed(0)
    model = EdgeLSTM(config).eval()
    with torch.no_grad():
        for p in model.lstm.parameters():
            p.mul_(3.0)
    int8 = tmp_path / "cls.int8.onnx"
    onnx.save(quantize_proto(build_onnx(model, source_sha256="0" * 64), "int8"), int8)
    test = [i for i in splits["test"] if seqs.lengths[i] >= 20]
    seq = np.ascontiguousarray(seqs.rows(test[0]), dtype=np.float32)
    stream = cg.ExampleStream(seq, f"held-out sequence {seqs.ids[test[0]]}")
    report = cg.codegen(
        int8,
        tmp_path / "b",
        cg.CodegenOptions(name="cls", target="cortex-m4", steps=len(seq), check=True),
        lambda c: stream,
    )
    (check,) = report.checks
    assert check.runs_on == "cortex-m4 (qemu)" and check.passed, check.failures
    m4 = cg.run_qemu(tmp_path / "b" / "cls.elf", len(config.classes))
    last = len(seq) - 1
    assert last in m4.outputs
    numpy_model = rt.load(int8, backend="numpy")
    ref, _ = numpy_model.step(seq[None], numpy_model.initial_state(1))
    assert int(m4.outputs[last].argmax()) == int(ref[0, -1].argmax())
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(seq)[None])[0][0, -1].numpy()
    assert int(ref[0, -1].argmax()) == int(torch_logits.argmax())
