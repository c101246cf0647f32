"""Forecast training: CLI runs on the built-in signal and a CSV, normalization statistics,
resume equals an uninterrupted run, and a little training beats the untrained model."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.series import (
    BUILTIN_COLUMNS,
    BUILTIN_TARGETS,
    builtin_signal,
    held_out_series,
    write_csv,
)
from lstm_edge.toolchain.train import (
    Objective,
    Pairs,
    TrainingError,
    TrainingInterrupted,
    TrainOptions,
    evaluate,
    load_resume_state,
    read_metrics,
    train,
)

runner = CliRunner()
# Tiny: each run below is well under a second of compute.
TINY_ARGS = ["--hidden", "8", "--seq-len", "16", "--batch-size", "4", "--threads", "1"]
TINY_ARGS += ["--log-every", "1", "--no-progress"]
TINY = dict(hidden=8, seq_len=8, batch_size=4, log_every=1, threads=1, progress=False)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    """400 rows (~4 days) of the machine signal as CSV: time and label columns included."""
    path = tmp_path / "machine.csv"
    write_csv(builtin_signal(400, seed=5), path)
    return path


def _invoke(*args: str):
    return runner.invoke(app, ["train", *args])


def _train_stats(values: np.ndarray, rows: int, cols: list[int]):
    block = values[:rows][:, cols]
    return tuple(block.mean(axis=0)), tuple(block.std(axis=0))


def test_cli_trains_on_the_builtin_signal(tmp_path):
    out = tmp_path / "run"
    r = _invoke("--task", "forecast", "--out", str(out), *TINY_ARGS, "--steps", "4")
    assert r.exit_code == 0, r.output
    assert "normalized RMSE (persistence" in " ".join(r.output.split())  # rich wraps lines
    ckpt = load_checkpoint(out)
    cfg = ckpt.config
    assert cfg.task == "forecast" and cfg.horizon == 1
    assert cfg.features == BUILTIN_COLUMNS and cfg.targets == BUILTIN_TARGETS
    s = builtin_signal()
    # The statistics are numpy's float64 mean/std over exactly the training rows (90%).
    mean, std = _train_stats(s.values, 18000, list(range(5)))
    assert cfg.feature_mean == mean and cfg.feature_std == std
    assert (cfg.target_mean, cfg.target_std) == _train_stats(s.values, 18000, [3, 4])
    assert ckpt.data["split"] == {
        "train": [0, 18000],
        "val": [18000, 19000],
        "test": [19000, 20000],
    }
    assert ckpt.data["season"] == 96
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics if m["kind"] == "val"] == [0, 4]
    assert all("nrmse" in m and "rows_per_s" in m for m in metrics if m["kind"] == "train")


def test_cli_trains_on_a_csv_with_mae(tmp_path, csv_file):
    out = tmp_path / "run"
    args = ["--csv", str(csv_file), "--target", "vibration", "--features", "load,vibration"]
    args += ["--time-column", "time", "--label-column", "fault", "--season", "96"]
    args += ["--horizon", "2", "--loss", "mae", "--steps", "3", "--eval-every", "3"]
    r = _invoke("--task", "forecast", "--out", str(out), *TINY_ARGS, *args)
    assert r.exit_code == 0, r.output
    assert "normalized MAE" in " ".join(r.output.split())
    ckpt = load_checkpoint(out)
    cfg = ckpt.config
    assert (cfg.features, cfg.targets, cfg.horizon) == (("load", "vibration"), ("vibration",), 2)
    s = builtin_signal(400, seed=5)
    assert (cfg.feature_mean, cfg.feature_std) == _train_stats(s.values, 360, [0, 4])
    assert ckpt.data["season"] == 96 and ckpt.data["time_column"] == "time"
    val = held_out_series(ckpt.data, cfg, "val")
    assert np.array_equal(val.targets[:, 0], s.values[360:380, 4].astype(np.float32))
    # The best model's recorded validation loss is what evaluate() gives for it; with
    # horizon 2 the model forecasts each step ahead: the targets at t + 1 and t + 2.
    assert cfg.horizon_outputs == "each" and cfg.output_size == 2
    best = [m for m in read_metrics(out) if m["kind"] == "val" and m["best"]][-1]
    ahead = np.concatenate([val.targets[1:-1], val.targets[2:]], axis=1)
    # The linear highway by default (season 96: 97 lagged changes): the head learns the
    # normalized targets minus the highway's forecast over the split as one stream, its
    # history filled by the training split's last 97 rows.
    assert cfg.ar_lags == 97 and ckpt.data["ar_lags_source"].startswith("auto")
    x = torch.from_numpy(val.features[:-2])
    tail = torch.from_numpy(held_out_series(ckpt.data, cfg, "train").features[-97:])
    with torch.no_grad():
        _, history = ckpt.model.stages.highway(ckpt.model, tail[None], None)
        highway, _ = ckpt.model.stages.highway(ckpt.model, x[None], history)
        target = ckpt.model.normalize_targets(torch.from_numpy(ahead), x)
    pairs = Pairs(val.features[:-2], (target - highway[0]).numpy())
    mae = Objective("mae", "nmae", "normalized MAE", "rows_per_s")
    # Same model, data and op order: equal to float rounding of the summed loss.
    assert evaluate(ckpt.model, pairs, 1, 16, mae) == pytest.approx(best["loss"], rel=1e-6)
    # ... which is the deployed model's error (highway included, its history carried from
    # the training rows; the LSTM from zeros) in the loss's units.
    with torch.no_grad():
        h0 = ckpt.model.initial_state(1)
        y, _ = ckpt.model(x[None], (*h0, history))
        err = ckpt.model.normalize_targets(y[0], x) - target
    assert float(err.abs().mean()) == pytest.approx(best["loss"], rel=1e-5)
    assert json.loads((out / "train.json").read_text())["run"]["loss"] == "mae"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "rpm"], r"target column 'rpm' not in .*columns: load, ambient_temp"),
        (["--embed", "8"], r"--embed applies to --task char-lm/classify only"),
        (["--csv", "missing.csv"], r"missing.csv does not exist"),
        (["--target", "a,,b"], r"has an empty name"),
    ],
)
def test_cli_refuses_bad_forecast_options(tmp_path, args, message):
    out = tmp_path / "run"
    r = _invoke("--task", "forecast", "--out", str(out), *TINY_ARGS, "--steps", "1", *args)
    assert r.exit_code == 2, r.output
    assert re.search(message, " ".join(r.output.split())), r.output  # rich wraps lines
    assert not (out / "model.safetensors").exists()


def test_cli_refuses_forecast_options_for_char_lm(tmp_path, csv_file):
    r = _invoke("--out", str(tmp_path / "run"), "--csv", str(csv_file))
    assert r.exit_code == 2 and "--csv applies to --task forecast only" in r.output
    r = _invoke("--out", str(tmp_path / "run"), "--horizon", "3")
    assert r.exit_code == 2 and "--horizon applies to --task forecast only" in r.output


def _curve(out: Path) -> list[dict]:
    # rows_per_s is wall-clock time: the one field two identical runs do not share.
    return [{k: v for k, v in m.items() if k != "rows_per_s"} for m in read_metrics(out)]


# 359 pairs / 4 streams: 8-row chunks give 11 steps per pass (contiguous streams, the
# state reset at step 11 is crossed); 64-row ones a single chunk per stream, which the
# forecast task reads as random windows (their starts must follow the step on resume).
@pytest.mark.parametrize("seq_len", [8, 64], ids=["streams", "random-windows"])
def test_resume_equals_uninterrupted_run_exactly(tmp_path, csv_file, seq_len):
    def options(out: Path, **kw) -> TrainOptions:
        base = dict(task="forecast", csv=csv_file, target=("motor_temp", "vibration"))
        base |= dict(time_column="time", label_column="fault", steps=14, eval_every=5)
        return TrainOptions(out=out, **{**base, **TINY, "seq_len": seq_len, **kw})

    def interrupt(done: int, loss: float) -> None:
        if done == 6:
            os.kill(os.getpid(), signal.SIGINT)

    full = train(options(tmp_path / "full"))
    with pytest.raises(TrainingInterrupted) as e:
        train(options(tmp_path / "cut"), on_step=interrupt)
    assert e.value.step == 7  # the step in flight finishes, then the run saves and stops
    resumed = train(TrainOptions(out=tmp_path / "cut", resume=True, threads=1, progress=False))
    assert resumed.steps == full.steps == 14
    # Same ops in the same order on the same thread count: bit-identical, no tolerance.
    assert _curve(tmp_path / "cut") == _curve(tmp_path / "full")
    for sub in (".", "resume/000000014"):
        a = load_file(str(tmp_path / "full" / sub / "model.safetensors"))
        b = load_file(str(tmp_path / "cut" / sub / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.best_val == full.best_val and resumed.metric == "nrmse"
    _, s_full = load_resume_state(tmp_path / "full")
    _, s_cut = load_resume_state(tmp_path / "cut")
    assert torch.equal(s_full["h"], s_cut["h"]) and torch.equal(s_full["c"], s_cut["c"])
    with pytest.raises(TrainingError, match="--target differs from the run being resumed"):
        train(options(tmp_path / "cut", target=("vibration",), resume=True, steps=None))


def test_a_little_training_beats_the_untrained_model_and_persistence(tmp_path):
    # The built-in signal: 300 steps of a 1x16 model, ~3 s on one thread.
    result = train(
        TrainOptions(
            out=tmp_path / "run",
            task="forecast",
            hidden=16,
            seq_len=32,
            batch_size=8,
            steps=300,
            eval_every=100,
            lr=1e-2,
            threads=1,
            progress=False,
        )
    )
    evals = [m for m in read_metrics(tmp_path / "run") if m["kind"] == "val"]
    # The built-in signal stays in its training range: level targets by default.
    assert load_checkpoint(tmp_path / "run").config.target_kind == "level"
    # A new model is the linear highway alone (its head at zero): step 0 scores the
    # linear baseline, already below persistence (measured 0.448 vs 0.541) ...
    assert result.baseline is not None and 0.3 < evals[0]["nrmse"] < 0.9 * result.baseline
    # ... and a few hundred steps of the LSTM improve on it.
    assert result.best_val < 0.97 * evals[0]["nrmse"]


def test_without_the_highway_training_starts_from_an_untrained_lstm(tmp_path):
    train(
        TrainOptions(
            out=tmp_path / "run", task="forecast", ar_lags="0", hidden=16, seq_len=32,
            batch_size=8, steps=1, eval_every=100, threads=1, progress=False,
        )
    )  # fmt: skip
    evals = [m for m in read_metrics(tmp_path / "run") if m["kind"] == "val"]
    # Untrained outputs are ~0 in standard units: their RMSE is about the targets' own
    # spread on val (~1).
    assert 0.7 < evals[0]["nrmse"] < 1.5


def _pairs(rows: int) -> Pairs:
    """Row i holds i (input) and 1000 + i (target): a window's rows can be read off it."""
    x = np.arange(rows, dtype=np.float32)[:, None]
    return Pairs(x, 1000 + x)


def test_a_short_training_split_is_read_as_random_windows():
    from lstm_edge.toolchain.distributed import Dist
    from lstm_edge.toolchain.run_config import run_config
    from lstm_edge.toolchain.streams import RandomWindows, train_streams
    from lstm_edge.toolchain.tasks.forecast import TRAINING

    # 100 pairs, 4 streams of 25: 20-row chunks fit once per stream (random windows),
    # 12-row ones twice (contiguous streams, the state carried from one to the next).
    pairs = _pairs(100)
    run = run_config("forecast", dict(seq_len=20, batch_size=4, seed=3))
    batches = TRAINING.train_batches(pairs, run, Dist())
    assert isinstance(batches, RandomWindows)
    assert TRAINING.train_batches(pairs, run_config("forecast", dict(seq_len=12, batch_size=4)),
                                  Dist()) is None  # fmt: skip

    seen = np.zeros(100, bool)
    for step in range(200):
        x, y = batches.chunk(step)
        assert batches.starts_fresh(step) and x.shape == (4, 20, 1)
        x = x[..., 0].numpy()
        # Each window: 20 consecutive pairs of the split, targets aligned with inputs.
        assert (np.diff(x, axis=1) == 1).all() and x.min() >= 0 and x.max() <= 99
        assert np.array_equal(y[..., 0].numpy(), 1000 + x)
        seen[x.astype(int).ravel()] = True
    # Every pair is read, where contiguous streams read rows 0-19, 25-44, ... only.
    assert seen.all()
    fixed = train_streams(pairs, run, Dist()).chunk(0)[0][..., 0].numpy()
    assert np.unique(fixed).size == 80 and not np.isin([20, 45, 70, 95], fixed).any()
    # The windows follow (seed, step) alone: the same after a resume, new at each step;
    # two ranks read the two halves of the one-rank batch.
    again = TRAINING.train_batches(pairs, run, Dist())
    assert torch.equal(again.chunk(7)[0], batches.chunk(7)[0])
    assert not torch.equal(batches.chunk(8)[0], batches.chunk(7)[0])
    halves = [TRAINING.train_batches(pairs, run, Dist(rank=r, world=2)).chunk(7)[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), batches.chunk(7)[0])
    # 4 streams of 30 rows do not fit in 100 (no contiguous stream at all): windows still do.
    wide = TRAINING.train_batches(pairs, run_config("forecast", dict(seq_len=30, batch_size=4)),
                                  Dist())  # fmt: skip
    x = wide.chunk(0)[0][..., 0].numpy()
    assert x.shape == (4, 30) and (np.diff(x, axis=1) == 1).all() and x.max() <= 99
