"""`torchrun --nproc-per-node 2` on loopback computes what one process computes."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.train import read_metrics, train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_losses(out) -> list[float]:
    return [m["loss"] for m in read_metrics(out) if m["kind"] == "train"]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, corpus, tiny):
    steps = 6
    single = tmp_path / "single"
    # eval_streams: the CLI default (the command below does not set it). Dropout off: each
    # rank draws its own masks, so with dropout the runs agree only in distribution.
    train(tiny(single, corpus, steps=steps, eval_every=3, eval_streams=None, dropout=0.0))

    double = tmp_path / "double"
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc-per-node", "2", "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        "-m", "lstm_edge.toolchain", "train",
        "--corpus", str(corpus), "--out", str(double), "--steps", str(steps),
        "--eval-every", "3", "--hidden", "16", "--layers", "1", "--embed", "8",
        "--seq-len", "16", "--batch-size", "4", "--log-every", "1", "--threads", "1",
        "--dropout", "0", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("trained 6 steps") == 1  # rank 0 alone reports

    one, two = _train_losses(single), _train_losses(double)
    assert len(one) == len(two) == steps
    # Same global batch, gradients averaged by DDP: equal up to float32 summation order
    # (each rank sums half of the streams, then the halves are averaged), ~1e-7 relative
    # per step, grown a little by 6 Adam steps.
    assert two == pytest.approx(one, rel=1e-5)
    assert two[-1] < two[0]  # and it is learning, not a constant
    val_one = [m["loss"] for m in read_metrics(single) if m["kind"] == "val"]
    val_two = [m["loss"] for m in read_metrics(double) if m["kind"] == "val"]
    assert val_two == pytest.approx(val_one, rel=1e-5)
    # Rank 0 wrote one complete checkpoint; the weights agree with the single process.
    a, b = load_checkpoint(single).model, load_checkpoint(double).model
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert (p - q).abs().max().item() < 1e-4, name  # Adam steps of lr 3e-3: see above
