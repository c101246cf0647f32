"""`lstm-edge info` on an int8-full artifact: the scheme's parameters, readable, and equal to
the ones the runtime reads from the file."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from integer_models import int8_full
from typer.testing import CliRunner

from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.info import cell_formats, describe
from lstm_edge.toolchain.model import EdgeLSTM

TOKENS = ModelConfig(vocab=(UNK_CHAR, *"abcdefghijk"), embed_size=8, hidden_size=16, num_layers=2)
FEATURES = ModelConfig(
    task="forecast",
    hidden_size=6,
    num_layers=1,
    features=("a", "b", "c"),
    targets=("a",),
    feature_mean=(100.0, 95.0, 120.0),
    feature_std=(5.0, 20.0, 50.0),
    target_mean=(100.0,),
    target_std=(5.0,),
)


@pytest.fixture(scope="module", params=["tokens", "features"])
def full(request, tmp_path_factory):
    import torch

    config = TOKENS if request.param == "tokens" else FEATURES
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(request.param)
    float_path = folder / "m.onnx"
    float_path.write_bytes(build_onnx(EdgeLSTM(config).eval(), source_sha256="0" * 64)
                           .SerializeToString())  # fmt: skip
    path = int8_full(float_path, folder / "m.int8-full.onnx")
    return path, read_artifact(path)


def test_cell_formats_by_hand():
    assert cell_formats(np.array([11] * 200 + [5] * 3)) == "Q4.11 x 200, Q10.5 x 3"
    # equal counts: the finer format first
    assert cell_formats(np.array([12, 15, 0])) == "Q0.15 x 1, Q3.12 x 1, Q15.0 x 1"


def _range(text: str) -> tuple[float, float]:
    """ "a .. b (M x 2^-S, ...)" or "a (M x 2^-S, ...)" -> (a, b)."""
    values = text.split(" (")[0].split(" .. ")
    return float(values[0]), float(values[-1])


def test_info_shows_the_parameters_the_runtime_reads(full):
    path, art = full
    scheme, cfg = art.integer, art.config
    got = describe(path)["integer"]
    for k, lay in enumerate(scheme.layers):
        shown = got[f"layer{k}"]
        assert float(shown["x_scale"]) == pytest.approx(lay.x_scale, rel=1e-5)
        assert float(shown["h_scale"]) == pytest.approx(lay.h_scale, rel=1e-5)
        counts = Counter(int(f) for f in lay.cell_frac)
        histogram = dict(
            (part.split(" x ")[0], int(part.split(" x ")[1]))
            for part in shown["cell_formats"].split(", ")
        )
        assert histogram == {f"Q{15 - f}.{f}": n for f, n in counts.items()}
        real_x = lay.x_mult * 2.0 ** -lay.x_shift.astype(np.float64)
        lo, hi = _range(shown["input_rescale"])
        assert lo == pytest.approx(real_x.min(), rel=1e-3)
        assert hi == pytest.approx(real_x.max(), rel=1e-3)
        real_h = lay.h_mult * 2.0 ** -lay.h_shift.astype(np.float64)
        assert _range(shown["recurrent_rescale"]) == pytest.approx(
            (real_h.min(), real_h.max()), rel=1e-3
        )
        # h's rescale turns o x tanh(c) in Q0.30 into h codes: 1 / (2^30 x h_scale)
        out = _range(shown["h_rescale"])[0]
        assert out == pytest.approx(1 / (2**30 * lay.h_scale), rel=1e-3)
        assert f"S {lay.out_shift})" in shown["h_rescale"]
    if cfg.num_layers > 1:  # layer 1 reads layer 0's h codes
        assert got["layer1"]["x_scale"] == got["layer0"]["h_scale"]
    assert got["tables"] == "sigmoid + tanh: 2 x 257 int16 = 1,028 bytes"
    layers, hidden = cfg.num_layers, cfg.hidden_size
    assert got["ram_per_stream"] == (
        f"{layers * hidden * 3} bytes ({layers} x {hidden} x 3: int8 h + int16 c); "
        f"float: {layers * hidden * 8} bytes (x 8)"
    )
    cal = scheme.calibration
    assert got["calibration"]["data"] == cal["data"] == "random inputs (test)"
    assert got["calibration"]["split"] == "train"
    assert (got["calibration"]["steps"], got["calibration"]["streams"]) == (512, 4)
    h_max = ", ".join(f"{v:.4g}" for v in cal["h_absmax"])
    assert f"max|h| per layer {h_max}" in got["calibration"]["ranges"]
    if scheme.embedding_q is not None:
        assert got["input_stage"] == "int8 embedding codes 12 x 8"
        assert "max|input|" not in got["calibration"]["ranges"]
    else:
        inv = float(got["input_stage"].split(" x ")[1].split(" + ")[0])
        assert inv == pytest.approx(float(scheme.input_inv_scale), rel=1e-5)
        assert f"max|input| {cal['input_absmax']:.4g}" in got["calibration"]["ranges"]
        # the input scale is the calibrated range over 127
        assert scheme.input_scale == pytest.approx(cal["input_absmax"] / 127)


def test_the_cli_table_and_json(full):
    path, art = full
    r = CliRunner().invoke(app, ["info", str(path)])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.replace("│", " ").split())
    formats = cell_formats(art.integer.layers[0].cell_frac)
    assert formats.split(", ")[0] in flat
    assert "integer.ram_per_stream" in flat and "integer.layer0.cell_formats" in flat
    r = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["integer"]["layer0"]["cell_formats"] == formats
