"""`torchrun --nproc-per-node 2` on loopback computes what one process computes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.train import TrainOptions, read_metrics, train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(out: Path, kind: str) -> list[float]:
    return [m["loss"] for m in read_metrics(out) if m["kind"] == kind]


def _torchrun_train(out: Path, args: list[str]) -> None:
    """`lstm-edge train` under torchrun with 2 local ranks; asserts both exit cleanly."""
    # A torchrun variable left in the environment (e.g. by a CI job that itself runs under
    # torchrun) would override what the launcher sets up for its own workers.
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc-per-node", "2", "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        "-m", "lstm_edge.toolchain", "train", "--out", str(out), *args,
        "--log-every", "1", "--threads", "1", "--dropout", "0", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    # Both ranks must also get through interpreter shutdown: a rank that aborted after
    # training ("terminate called without an active exception") fails the whole job.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "terminate called" not in proc.stderr, proc.stderr
    assert proc.stdout.count("trained ") == 1  # rank 0 alone reports


_TORCHRUN_VARS = {
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
    "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT",
}  # fmt: skip


def _assert_same_run(single: Path, double: Path, steps: int) -> None:
    """Same global batch, gradients averaged by DDP: losses equal up to float32 summation
    order (each rank sums half of the streams, then the halves are averaged), ~1e-7
    relative per step, grown a little by a few Adam steps; hence rel=1e-5."""
    one, two = _losses(single, "train"), _losses(double, "train")
    assert len(one) == len(two) == steps
    assert two == pytest.approx(one, rel=1e-5)
    assert _losses(double, "val") == pytest.approx(_losses(single, "val"), rel=1e-5)
    # Rank 0 wrote one complete checkpoint; the weights agree with the single process.
    a, b = load_checkpoint(single).model, load_checkpoint(double).model
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert (p - q).abs().max().item() < 1e-4, name  # Adam steps of lr 3e-3: see above


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, corpus, tiny):
    steps = 6
    single = tmp_path / "single"
    # eval_streams: the CLI default (the command below does not set it). Dropout off: each
    # rank draws its own masks, so with dropout the runs agree only in distribution.
    train(tiny(single, corpus, steps=steps, eval_every=3, eval_streams=None, dropout=0.0))

    double = tmp_path / "double"
    args = ["--corpus", str(corpus), "--steps", str(steps), "--eval-every", "3"]
    args += ["--hidden", "16", "--layers", "1", "--embed", "8", "--seq-len", "16"]
    _torchrun_train(double, [*args, "--batch-size", "4"])
    _assert_same_run(single, double, steps)
    train_losses = _losses(double, "train")
    assert train_losses[-1] < train_losses[0]  # and it is learning, not a constant


def test_two_processes_match_one_on_a_forecast_run(tmp_path):
    steps = 4
    tiny = dict(hidden=8, seq_len=16, batch_size=4, steps=steps, eval_every=2, dropout=0.0)
    single = tmp_path / "single"
    train(TrainOptions(single, task="forecast", log_every=1, threads=1, progress=False, **tiny))

    double = tmp_path / "double"
    args = ["--task", "forecast", "--hidden", "8", "--seq-len", "16", "--batch-size", "4"]
    _torchrun_train(double, [*args, "--steps", str(steps), "--eval-every", "2"])
    _assert_same_run(single, double, steps)
    # Learning: 4 steps of 4 windows are too noisy to compare train losses; validation
    # (the same 1000 rows each time) went 1.16 -> 1.12 normalized RMSE when written.
    val = _losses(double, "val")
    assert val[-1] < val[0]
    # The normalization statistics come from the data, identically on every rank.
    assert load_checkpoint(double).config == load_checkpoint(single).config
