"""`lstm-edge import` of files written during the test by both PyTorch exporters
(TorchScript, dynamo): the imported artifact agrees with onnxruntime on the source file
within 1e-5 over 500 steps on numpy, ort and c; int8 quantize and `codegen --check` pass."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lstm_edge.exporters.import_check import SourceModel
from lstm_edge.exporters.import_onnx import analyze, load_source
from lstm_edge.runtime import load
from lstm_edge.toolchain.cli import app

STEPS = 500
# Both files compute in float32 with the same op order for the LSTM; what remains is
# summation order in the matmuls of onnxruntime, numpy and C (a few 1e-7 on logits of size ~1).
AGREE = 1e-5


@dataclass(frozen=True)
class Case:
    exporter: str  # "torchscript" or "dynamo"
    tokens: bool  # embedding input (else float features)
    batch_first: bool
    layers: int
    bias: bool
    state: bool  # h0/c0 inputs


class UserLSTM(torch.nn.Module):
    """A user's own module: their names, [Embedding ->] LSTM -> Linear."""

    def __init__(self, case: Case, vocab: int = 13, features: int = 3, outputs: int = 2):
        super().__init__()
        self.case = case
        width = 6 if case.tokens else features
        self.encoder = torch.nn.Embedding(vocab, width) if case.tokens else None
        self.rnn = torch.nn.LSTM(
            width, 8, case.layers, batch_first=case.batch_first, bias=case.bias
        )
        self.decoder = torch.nn.Linear(8, vocab if case.tokens else outputs)

    def forward(self, x, h0=None, c0=None):
        if self.encoder is not None:
            x = self.encoder(x)
        y, (h, c) = self.rnn(x, None if h0 is None else (h0, c0))
        return self.decoder(y), h, c


def export_source(case: Case, folder: Path, seed: int = 0) -> tuple[Path, UserLSTM]:
    """Write the case's module with torch.onnx.export, dynamic batch and time axes."""
    torch.manual_seed(seed)
    module = UserLSTM(case).eval()
    # The dynamo exporter of torch 2.13 writes the example's time length into a Reshape
    # after a time-major LSTM (while declaring the axis dynamic), so such a file runs only
    # at that length: export it at one step, which the import check steps.
    batch, time = 2, (5 if case.batch_first or case.exporter != "dynamo" else 1)
    shape = (batch, time) if case.batch_first else (time, batch)
    x = torch.randint(0, 13, shape) if case.tokens else torch.randn(*shape, 3)
    state = torch.zeros(case.layers, batch, 8)
    args = (x, state, state.clone()) if case.state else (x,)
    names = ["x", "h0", "c0"][: len(args)]
    bt = (0, 1) if case.batch_first else (1, 0)
    path = folder / f"{case.exporter}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.exporter == "dynamo":
            b, t = torch.export.Dim("batch"), torch.export.Dim("time")
            shapes = [{bt[0]: b, bt[1]: t}] + [{1: b}] * (len(args) - 1)
            torch.onnx.export(
                module, args, path, dynamo=True, input_names=names, dynamic_shapes=shapes,
                output_names=["y", "hn", "cn"], verbose=False,
            )  # fmt: skip
        else:
            axes = {"x": {bt[0]: "batch", bt[1]: "time"}, "y": {bt[0]: "batch", bt[1]: "time"}}
            axes.update({n: {1: "batch"} for n in names[1:]})
            torch.onnx.export(
                module, args, path, dynamo=False, input_names=names, dynamic_axes=axes,
                output_names=["y", "hn", "cn"],
            )  # fmt: skip
    return path, module


def source_reference(path: Path, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The source file in onnxruntime over a seeded stream: (inputs, outputs [steps, out]),
    stepped with its state fed back where it has state inputs, else one call."""
    proto = load_source(path)
    imp = analyze(proto, str(path))
    src = SourceModel(proto, imp, str(path))
    if not src.stateful and src.fixed_time:
        # The dynamo exporter sometimes fixes the time length of a stateless file (seen
        # when the same module was exported earlier in the process): it runs only there.
        steps = src.fixed_time
    x = imp.config.spec.synthetic_inputs(imp.config, steps, seed=7)
    y = src.stream(x, 1) if src.stateful else src.call(x, src.zero_state())[0]
    return x, y


def stepped(model, x: np.ndarray) -> np.ndarray:
    """One model.step per element of `x`, state carried: outputs [steps, out]."""
    state, out = model.initial_state(1), []
    for t in range(len(x)):
        y, state = model.step(x[None, t], state)
        out.append(y[0])
    return np.stack(out)


CASES = [
    Case("torchscript", tokens=True, batch_first=True, layers=2, bias=True, state=True),
    Case("torchscript", tokens=True, batch_first=False, layers=1, bias=False, state=False),
    Case("torchscript", tokens=False, batch_first=True, layers=3, bias=True, state=False),
    Case("dynamo", tokens=True, batch_first=True, layers=2, bias=True, state=False),
    Case("dynamo", tokens=False, batch_first=False, layers=1, bias=False, state=True),
    Case("dynamo", tokens=True, batch_first=False, layers=3, bias=True, state=True),
]


def _id(case: Case) -> str:
    return (
        f"{case.exporter}-{'tokens' if case.tokens else 'features'}-"
        f"{'bf' if case.batch_first else 'tf'}-{case.layers}l-"
        f"{'bias' if case.bias else 'nobias'}-{'state' if case.state else 'nostate'}"
    )


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_torch_export_imports_and_agrees_on_every_backend(case: Case, tmp_path: Path) -> None:
    source, _ = export_source(case, tmp_path)
    out = tmp_path / "model.onnx"
    r = CliRunner().invoke(app, ["import", str(source), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "checked 300 steps" in r.output
    x, want = source_reference(source, STEPS)
    for backend in ("numpy", "ort", "c"):
        model = load(out, backend=backend)
        assert model.config.num_layers == case.layers
        got = stepped(model, x)
        err = float(np.abs(got - want).max())
        assert err <= AGREE, f"{backend}: max abs error {err:.3g} vs the source"
        prefill, _ = model.step(x[None], model.initial_state(1))
        err = float(np.abs(prefill[0] - want).max())
        assert err <= AGREE, f"{backend} prefill: max abs error {err:.3g} vs the source"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_imported_model_quantizes_and_codegen_checks(case: Case, tmp_path: Path) -> None:
    source, _ = export_source(case, tmp_path)
    out, q = tmp_path / "model.onnx", tmp_path / "model.int8.onnx"
    runner = CliRunner()
    for args in (
        ["import", str(source), "-o", str(out)],
        ["quantize", str(out), "--scheme", "int8", "-o", str(q)],
        ["codegen", str(q), "-o", str(tmp_path / "c"), "--check", "--steps", "120"],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, f"{args[0]}: {r.output}"
    # The int8 artifact stays close to the float source (weight rounding only).
    x, want = source_reference(source, 200)
    got = stepped(load(q, backend="c"), x)
    assert float(np.abs(got - want).max()) < 0.05


def test_token_model_config_has_no_characters(tmp_path: Path) -> None:
    source, _ = export_source(CASES[0], tmp_path)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"event{i}" for i in range(13)) + "\n")
    out = tmp_path / "m.onnx"
    r = CliRunner().invoke(
        app, ["import", str(source), "-o", str(out), "--token-names", str(names)]
    )
    assert r.exit_code == 0, r.output
    config = load(out).config
    assert (config.vocab, config.tokens, config.vocab_size) == ((), 13, 13)
    assert config.token_names[12] == "event12"
