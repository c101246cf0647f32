"""`lstm-edge validate` and `lstm-edge detect` on a tiny forecast model, end to end.

The checkpoint is built directly (a seeded 1x8 EdgeLSTM on a 2,000-row built-in signal,
briefly fitted so its forecasts mean something), exported and quantized through the CLI;
every number the commands report is checked against a recomputation that does not go
through validate.py / detect.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.exporters.onnx_export import stamp_digest
from lstm_edge.runtime.config import HEAD_WEIGHT, META_CALIBRATION, QUANT_SUFFIX, ModelConfig
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain import series as S
from lstm_edge.toolchain.checkpoint import load_checkpoint, save_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.model import build_model
from lstm_edge.toolchain.validate import (
    FORECAST_TOLERANCES,
    ForecastTolerance,
    ValidateOptions,
    onednn,
    validate,
)

runner = CliRunner()
ROWS = 2000  # 10% val, 10% test: 200 rows each
SEED = 3


def _fit(model, features: np.ndarray, targets: np.ndarray, steps: int = 60) -> None:
    """A few full-batch Adam steps on the training rows: enough to beat a random model."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    x = torch.from_numpy(features[None, :-1])
    y = model.normalize_targets(torch.from_numpy(targets[None, 1:]), x)
    for _ in range(steps):
        opt.zero_grad()
        pred, _ = model.forward_normalized(x)
        loss = torch.mean((pred - y) ** 2)
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def fc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fc")
    series = S.builtin_signal(ROWS, seed=SEED)
    split = S.split_rows(ROWS, 0.1, 0.1)
    features, targets = S.choose_columns(series, None, None, builtin=True)
    config = S.forecast_config(
        series, split, features, targets, horizon=1, hidden_size=8, num_layers=1
    )
    torch.manual_seed(0)
    model = build_model(config)
    train = S.select(series, config, *split.train)
    with onednn(False):
        _fit(model, train.features, train.targets)
    record = S.data_record(series, split, csv_path=None, time_column=None, label_column=None,
                           builtin_rows=ROWS, builtin_seed=SEED, season=None)  # fmt: skip
    save_checkpoint(root / "ckpt", model, record)
    for args in (
        ["export", str(root / "ckpt"), "-o", str(root / "model.onnx")],
        ["quantize", str(root / "model.onnx"), "--scheme", "int8", "-o",
         str(root / "model.int8.onnx")],
    ):  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return root


def _torch_truth(fc: Path, steps: int) -> tuple[np.ndarray, S.SplitData]:
    ckpt = load_checkpoint(fc / "ckpt")
    test = S.held_out_series(ckpt.data, ckpt.config, "test")
    assert test.features.shape[0] >= steps  # no cycling in these tests
    with torch.no_grad(), onednn(False):
        ref, _ = ckpt.model(torch.from_numpy(test.features[None, :steps]))
    return ref[0].double().numpy(), test


def test_validate_report_agrees_with_a_direct_recomputation(fc: Path, tmp_path: Path):
    steps = 200
    result = runner.invoke(
        app,
        ["validate", str(fc / "ckpt"), str(fc / "model.onnx"), str(fc / "model.int8.onnx"),
         "--steps", str(steps), "--report", str(tmp_path / "rep")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "validation passed" in result.output and "MASE" in result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["task"] == "forecast" and report["steps"] == steps
    assert report["series_cycled"] is False and report["season"] == S.ROWS_PER_DAY
    ref, test = _torch_truth(fc, steps)
    std = np.asarray(load_checkpoint(fc / "ckpt").config.target_std)
    y = test.targets[:steps].astype(np.float64)
    truth_err = ref[:-1] - y[1:]  # horizon 1
    persist_err = y[:-1] - y[1:]
    for r in report["results"]:
        model = rt.load(fc / Path(r["artifact"]).name, backend=r["backend"])
        state, got = model.initial_state(1), []
        for row in test.features[:steps]:
            out, state = model.step(row[None, :], state)
            got.append(out[0])
        got = np.asarray(got, dtype=np.float64)
        err = (np.abs(got - ref) / std).max(axis=1)
        # Same torch model and backend on the same rows; float32 rounding of the outputs
        # (~1e-7 relative of values ~50) is all that may differ.
        assert r["max_abs_err"] == pytest.approx(err.max(), rel=1e-3, abs=1e-6)
        assert r["mean_abs_err"] == pytest.approx(err.mean(), rel=1e-3, abs=1e-6)
        assert r["mae_vs_torch"] == pytest.approx(np.abs(got - ref).mean(0), rel=1e-3, abs=1e-6)
        t = r["torch_truth"]
        assert t["mae"] == pytest.approx(np.abs(truth_err).mean(0), rel=1e-5)
        assert t["persistence_mae"] == pytest.approx(np.abs(persist_err).mean(0), rel=1e-5)
        mase = np.abs(truth_err).mean(0) / np.abs(persist_err).mean(0)
        assert t["mase"] == pytest.approx(mase, rel=1e-5)
        a = r["artifact_truth"]
        assert r["mae_increase"] == pytest.approx(a["mae_std"] - t["mae_std"], abs=1e-12)
        assert r["tolerance"] == vars(FORECAST_TOLERANCES[r["scheme"]])
    # the fitted model beats persistence on at least one target (sanity of the fixture)
    assert min(report["results"][0]["torch_truth"]["mase"]) < 1.0


def _negated_head(src: Path, dst: Path) -> Path:
    """A deliberately broken int8 artifact: the head's int8 weights negated (a sign bug)."""
    proto = onnx.load(str(src))
    for init in proto.graph.initializer:
        if init.name == HEAD_WEIGHT + QUANT_SUFFIX:
            q = numpy_helper.to_array(init).astype(np.int16)
            init.CopyFrom(
                numpy_helper.from_array(np.clip(-q, -127, 127).astype(np.int8), init.name)
            )
            break
    else:
        raise AssertionError("no int8 head weight initializer")
    stamp_digest(proto)  # as a buggy exporter would write it: the digest holds
    onnx.save(proto, str(dst))
    return dst


def test_broken_forecast_artifact_fails_validation(fc: Path, tmp_path: Path):
    broken = _negated_head(fc / "model.int8.onnx", tmp_path / "broken.int8.onnx")
    result = runner.invoke(
        app, ["validate", str(fc / "ckpt"), str(broken), "-b", "numpy", "--steps", "150"]
    )
    assert result.exit_code == 1, result.output
    assert "validation failed" in result.output
    assert "mean forecast error vs torch" in result.output


def test_stricter_forecast_tolerance_fails(fc: Path):
    opts = ValidateOptions(steps=150, backends=("numpy",))
    report = validate(fc / "ckpt", [fc / "model.onnx"], opts)
    measured = report.results[0].summary.max_abs_err
    assert report.passed and measured > 0  # float32 summation order differs from torch's
    strict = ValidateOptions(
        steps=150,
        backends=("numpy",),
        forecast_tolerances={"none": ForecastTolerance(max_abs_err=measured / 2)},
    )
    report = validate(fc / "ckpt", [fc / "model.onnx"], strict)
    assert not report.passed
    assert "max forecast error vs torch" in report.results[0].failures[0]


def test_long_stream_cycles_the_split(fc: Path):
    opts = ValidateOptions(steps=450, backends=("numpy",))
    report = validate(fc / "ckpt", [fc / "model.onnx"], opts)
    d = report.to_dict()
    assert d["series_cycled"] is True and d["series_rows"] == 200 and d["steps"] == 450
    assert report.passed


def test_validate_text_on_a_forecast_model_exits_2(fc: Path, tmp_path: Path):
    text = tmp_path / "t.txt"
    text.write_text("some text\n", encoding="utf-8")
    result = runner.invoke(
        app, ["validate", str(fc / "ckpt"), str(fc / "model.onnx"), "--text", str(text)]
    )
    assert result.exit_code == 2, result.output
    assert "use --csv" in result.output


# ---- detect --------------------------------------------------------------------------------


def _read_scores(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_detect_scores_match_a_recomputation(fc: Path, tmp_path: Path):
    out = tmp_path / "det"
    result = runner.invoke(app, ["detect", str(fc / "model.onnx"), "--backend", "numpy",
                                 "--threshold", "4", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "recall" in result.output and "precision" in result.output
    assert (out / "detect.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    model = rt.load(fc / "model.onnx", backend="numpy")
    cal = model.artifact.calibration
    assert report["calibration"] == cal and report["threshold"] == 4.0
    # The default input: rows [val start, test end) of the default built-in signal.
    series = S.builtin_signal()
    split = S.split_rows(series.rows)
    data = S.select(series, model.config, split.val[0], split.test[1])
    y, _ = model.step(data.features[None], model.initial_state(1))
    y = y[0].astype(np.float64)
    scale = np.asarray(cal["residual_scale"])
    score = np.full(len(y), np.nan)
    score[1:] = (np.abs(y[:-1] - data.targets[1:]) / scale).max(axis=1)
    rows = _read_scores(out / "scores.csv")
    w = 1 + fe.DETECT_WARMUP  # horizon + warm-up: not scored
    assert len(rows) == len(y) and all(r["score"] == "" for r in rows[:w])
    got = np.array([float(r["score"]) for r in rows[w:]])
    # repr() of float64 round-trips exactly; the runtime ran the same numpy path
    assert got == pytest.approx(score[w:], rel=1e-6)
    flagged = np.array([r["flagged"] == "1" for r in rows])
    assert not flagged[:w].any() and (flagged[w:] == (score[w:] > 4)).all()
    assert [r["fault"] == "1" for r in rows] == data.faults.tolist()
    # event scoring, recomputed with a plain loop over the labelled events
    lag, detected, events = 5, 0, 0
    faults = data.faults
    i = 0
    while i < len(faults):
        if faults[i]:
            j = i
            while j < len(faults) and faults[j]:
                j += 1
            events += 1
            detected += bool(flagged[i : j + lag].any())
            i = j
        else:
            i += 1
    assert report["events"]["events"] == events
    assert report["events"]["detected"] == detected


def test_detect_finds_a_planted_spike_in_a_labelled_csv(fc: Path, tmp_path: Path):
    series = S.builtin_signal(400, seed=7)
    values = series.values.copy()
    j = series.columns.index("vibration")
    values[200, j] += 40.0  # ~60 noise sds: unmistakable
    labels = np.zeros(400, bool)
    labels[200] = True
    path = tmp_path / "planted.csv"
    S.write_csv(S.Series(series.columns, values, labels, "planted", None), path)
    result = runner.invoke(app, ["detect", str(fc / "model.onnx"), "--csv", str(path),
                                 "--label-column", "fault", "--threshold", "30",
                                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["events"]["events"] == 1 and report["events"]["detected"] == 1
    peak = [r for r in report["flag_runs"] if r["start"] <= 200 < r["stop"]]
    assert peak and peak[0]["peak_target"] == "vibration" and peak[0]["in_fault"] is True


def test_detect_without_calibration_is_a_clear_error(fc: Path, tmp_path: Path):
    proto = onnx.load(str(fc / "model.onnx"))
    kept = [p for p in proto.metadata_props if p.key != META_CALIBRATION]
    assert len(kept) < len(proto.metadata_props)
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    bare = tmp_path / "bare.onnx"
    stamp_digest(proto)  # exported without calibration
    onnx.save(proto, str(bare))
    result = runner.invoke(app, ["detect", str(bare)])
    assert result.exit_code == 2, result.output
    assert "no anomaly calibration" in result.output


def test_detect_refuses_to_overwrite_outputs(fc: Path, tmp_path: Path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "report.json").write_text("{}")
    result = runner.invoke(app, ["detect", str(fc / "model.onnx"), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "pass --force" in result.output
    assert (out / "report.json").read_text() == "{}"


def test_config_mismatch_of_the_other_task_names_only_the_task():
    from lstm_edge.toolchain.validate import _config_differences

    forecast = ModelConfig(
        task="forecast", hidden_size=4, num_layers=1, features=("a",), targets=("a",),
        feature_mean=(0.0,), feature_std=(1.0,), target_mean=(0.0,), target_std=(1.0,),
    )  # fmt: skip
    char_lm = ModelConfig(vocab=("\ufffd", "a"), embed_size=2, hidden_size=4, num_layers=1)
    assert _config_differences(forecast, char_lm) == "task 'forecast' vs 'char-lm'"
    wider = ModelConfig(**{**forecast.__dict__, "hidden_size": 8})
    assert _config_differences(forecast, wider) == "hidden_size 4 vs 8"
