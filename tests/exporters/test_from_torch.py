"""`from_torch` of a user's own module (their names, their layout): the checkpoint exports,
`export --check-against` holds it against the user's torch.onnx.export of the same module,
and the artifact agrees with the user's module in torch over 500 steps on every backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_import_torch import AGREE, STEPS, Case, UserLSTM, export_source, stepped
from typer.testing import CliRunner

from lstm_edge.exporters.import_onnx import ImportRefusedError
from lstm_edge.runtime import load
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.from_torch import from_torch

KINDS = [
    Case("torchscript", tokens=True, batch_first=False, layers=2, bias=False, state=True),
    Case("torchscript", tokens=False, batch_first=True, layers=3, bias=True, state=False),
    Case("torchscript", tokens=False, batch_first=False, layers=1, bias=True, state=True),
]


def module_outputs(module: UserLSTM, x: np.ndarray) -> np.ndarray:
    """The user's own forward over the stream in one call: [steps, out]."""
    t = torch.from_numpy(x)[None]
    if not module.case.batch_first:
        t = t.transpose(0, 1)
    with torch.no_grad():
        y = module(t)[0]
    return (y if module.case.batch_first else y.transpose(0, 1))[0].numpy()


@pytest.mark.parametrize("case", KINDS, ids=["tokens", "features", "features-tf"])
def test_user_module_round_trips(case: Case, tmp_path: Path) -> None:
    source, module = export_source(case, tmp_path)  # the user's own ONNX export
    report = from_torch(module, tmp_path / "ckpt")
    assert report.max_abs_err <= 1e-5
    out = tmp_path / "model.onnx"
    r = CliRunner().invoke(
        app,
        [
            "export",
            str(tmp_path / "ckpt"),
            "-o",
            str(out),
            "--check-steps",
            "300",
            "--check-against",
            str(source),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "against" in r.output and str(source.name) in r.output
    model = load(out)
    x = model.config.spec.synthetic_inputs(model.config, STEPS, seed=5)
    want = module_outputs(module, x)
    for backend in ("numpy", "ort", "c"):
        got = stepped(load(out, backend=backend), x)
        assert float(np.abs(got - want).max()) <= AGREE, backend


def test_feature_statistics_make_a_raw_value_model(tmp_path: Path) -> None:
    module = UserLSTM(KINDS[1]).eval()
    stats = {"feature_mean": (5.0, 0.0, -1.0), "feature_std": (2.0, 1.0, 0.5)}
    report = from_torch(module, tmp_path / "ckpt", stats=stats)
    assert report.task == "forecast" and report.max_abs_err <= 1e-5


def test_check_against_a_different_model_fails(tmp_path: Path) -> None:
    case = KINDS[1]
    source, _ = export_source(case, tmp_path, seed=1)  # another module's weights
    from_torch(UserLSTM(case).eval(), tmp_path / "ckpt")
    out = tmp_path / "model.onnx"
    r = CliRunner().invoke(
        app,
        [
            "export",
            str(tmp_path / "ckpt"),
            "-o",
            str(out),
            "--check-steps",
            "300",
            "--check-against",
            str(source),
        ],
    )
    assert r.exit_code == 1 and "differs from" in r.output, r.output


class TwoLSTMs(torch.nn.Module):
    def __init__(self, **lstm_kwargs):
        super().__init__()
        self.a = torch.nn.LSTM(3, 4, **lstm_kwargs)
        self.b = torch.nn.LSTM(3, 4)
        self.out = torch.nn.Linear(4, 2)


def test_what_cannot_stream_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportRefusedError, match=r"2 LSTM layers \('a', 'b'\); name the one"):
        from_torch(TwoLSTMs(), tmp_path / "c")
    for kwargs, message in (
        ({"bidirectional": True}, "bidirectional=True"),
        ({"proj_size": 2}, "proj_size=2"),
    ):
        with pytest.raises(ImportRefusedError, match=message):
            from_torch(TwoLSTMs(**kwargs), tmp_path / "c", lstm="a")
    assert not (tmp_path / "c").exists()
    with pytest.raises(ImportRefusedError, match="no Linear named 'nope'"):
        from_torch(TwoLSTMs(), tmp_path / "c", lstm="b", head="nope")


def test_typing_commands_refuse_a_token_model(tmp_path: Path) -> None:
    _, module = export_source(KINDS[0], tmp_path)
    from_torch(module, tmp_path / "ckpt")
    out = tmp_path / "m.onnx"
    assert (
        CliRunner().invoke(app, ["export", str(tmp_path / "ckpt"), "-o", str(out)]).exit_code == 0
    )
    r = CliRunner().invoke(app, ["suggest", str(out), "hel"])
    assert r.exit_code == 2, r.output
    assert "word suggestions need a character model; this model is a token model of 13 ids" in (
        r.output
    )
