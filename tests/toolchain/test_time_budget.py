"""Training to a time budget: the timing probe fixes the step count before step 1, the run
records it, --resume keeps it without probing, --steps N reruns the run exactly."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lstm_edge.toolchain import budget
from lstm_edge.toolchain.budget import Budget, measure, steps_for
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.info import describe
from lstm_edge.toolchain.run_config import RunConfig
from lstm_edge.toolchain.train import (
    TrainingInterrupted,
    load_resume_state,
    read_metrics,
    train,
)

TINY_ARGS = "--hidden 16 --layers 1 --embed 8 --seq-len 16 --batch-size 4 --threads 1"


class FakeClock:
    """A clock that moves only when a fake step or evaluation says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _probe(seconds: float, step_s: float, eval_s: float, eval_every: int, **kw) -> tuple:
    clock, calls = FakeClock(), {"step": 0, "eval": 0}

    def step() -> None:
        calls["step"] += 1
        clock.advance(step_s)

    def evaluate() -> None:
        calls["eval"] += 1
        clock.advance(eval_s)

    return measure(seconds, step, evaluate, eval_every, clock, **kw), calls


def test_the_probe_fixes_the_step_count_from_the_measured_times():
    b, calls = _probe(600, 0.25, 1.0, 250)
    # 2 warm-up steps (0.5 s) untimed; 12 timed (3 s: the limit); 1 validation.
    assert calls == {"step": 14, "eval": 1}
    # Left for training: (600 - 4.5 probe) * 0.95 - 1 (step-0 validation) = 564.725 s;
    # per step 0.25 + 1/250 (a validation every 250 steps): 2223 steps, rounded to 2220.
    assert b == Budget(600, 0.25, 1.0, 4.5, 2220, None)
    # A fast step: PROBE_STEPS timed steps are enough.
    _, calls = _probe(600, 0.01, 0.1, 250)
    assert calls["step"] == 2 + budget.PROBE_STEPS
    assert b.line().startswith("timing probe: 0.25 s/step -> 2,220 steps in 600 s")
    assert "rerun with --steps 2220" in b.line()


def test_a_slow_step_ends_the_timing_early_unless_ranks_must_agree():
    b, calls = _probe(600, 2.0, 5.0, 250)
    assert calls["step"] == 2 + 2  # warm-up, then the minimum: 4 s is past the 3 s limit
    assert b.s_per_step == 2.0 and b.probe_s == 4 + 4 + 5
    b, calls = _probe(600, 2.0, 5.0, 250, adaptive=False)  # torchrun: a fixed count
    assert calls["step"] == 2 + budget.PROBE_STEPS
    # A short budget times for at most PROBE_SHARE of it.
    _, calls = _probe(50, 0.4, 0.0, 250)
    assert calls["step"] == 2 + 3  # 1.2 s >= 0.02 * 50 s after 3 timed steps


def test_the_step_count_is_clamped_and_says_so():
    assert steps_for(10, 1.0, 0.1, 250, 1.0) == (budget.MIN_STEPS_FIT, "minimum")
    assert steps_for(5, 1.0, 0.1, 250, 9.0) == (budget.MIN_STEPS_FIT, "minimum")  # probe > budget
    assert steps_for(1e6, 1e-4, 0.0, 250, 0.1) == (budget.MAX_STEPS_FIT, "maximum")
    assert steps_for(600, 0.0, 0.0, 250, 0.0) == (budget.MAX_STEPS_FIT, "maximum")
    low = Budget(10, 1.0, 0.1, 1.0, budget.MIN_STEPS_FIT, "minimum").line()
    assert "raised to the minimum of 200 steps: expect more than the budget" in low
    high = Budget(1e6, 1e-4, 0.0, 0.1, budget.MAX_STEPS_FIT, "maximum").line()
    assert "capped at 200,000 steps: expect less than the budget" in high


# ---- the trainer -----------------------------------------------------------------------------

# The fake probe's numbers: a 0.5 s step, a 2 s validation, every 50 steps, a 142 s budget:
# 2 warm-up + 6 timed steps (3 s >= 2.84 s, 2% of the budget) + 1 validation = a 6 s probe;
# (142 - 6) * 0.95 - 2 = 127.2 s at 0.5 + 2/50 s per step: 235 steps, rounded to 230.
FAKE = dict(seconds=142.0, step_s=0.5, eval_s=2.0, eval_every=50, steps=230)


def _fake_measure(monkeypatch, calls: list[int]) -> None:
    """The real probe around the trainer's real step and validation, on a fake clock."""
    real = budget.measure

    def fake(seconds, step, evaluate, eval_every, clock=None, **kw):
        calls.append(1)
        fake_clock = FakeClock()

        def timed_step():
            step()
            fake_clock.advance(FAKE["step_s"])

        def timed_eval():
            evaluate()
            fake_clock.advance(FAKE["eval_s"])

        return real(seconds, timed_step, timed_eval, eval_every, fake_clock, **kw)

    monkeypatch.setattr(budget, "measure", fake)


def _never_probe(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("a resumed run must not probe again")

    monkeypatch.setattr(budget, "measure", fail)


def _curve(out: Path) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "chars_per_s"} for m in read_metrics(out)]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def _interrupt_at(step: int):
    def hook(done: int, loss: float) -> None:
        if done == step:
            os.kill(os.getpid(), signal.SIGINT)

    return hook


def test_a_budget_run_records_its_count_resumes_without_probing_and_reruns_with_steps(
    tmp_path, corpus, tiny, monkeypatch
):
    calls: list[int] = []
    _fake_measure(monkeypatch, calls)
    options = dict(steps=None, time_budget=FAKE["seconds"], eval_every=FAKE["eval_every"])
    options["log_every"] = 10
    r = train(tiny(tmp_path / "budget", corpus, **options))
    assert calls == [1] and r.steps == FAKE["steps"]
    expected = steps_for(FAKE["seconds"], 0.5, 2.0, FAKE["eval_every"], 6.0)
    assert expected == (FAKE["steps"], None)

    # Recorded: the run settings, the probe, in train.json, the resume state, info, the report.
    want = Budget(FAKE["seconds"], 0.5, 2.0, 6.0, FAKE["steps"])
    assert r.budget == want
    assert "rerun with --steps 230" in r.report()
    run_file = json.loads((tmp_path / "budget" / "train.json").read_text())
    assert run_file["run"]["steps"] == 230 and run_file["run"]["time_budget"] == 142.0
    assert Budget.from_record(run_file["budget"]) == want
    _, state = load_resume_state(tmp_path / "budget")
    assert state["run"]["steps"] == 230 and Budget.from_record(state["budget"]) == want
    info = describe(tmp_path / "budget")
    assert info["budget"]["steps"] == 230 and info["run"]["steps"] == 230

    # The schedule is the normal one for 230 steps: warm-up 23, cosine to the floor at 230.
    run = RunConfig(**state["run"])
    lrs = [(m["step"], m["lr"]) for m in read_metrics(tmp_path / "budget") if m["kind"] == "train"]
    assert lrs and all(lr == run.lr_at(step - 1) for step, lr in lrs)
    assert lrs[-1][0] == 230  # the last update is at the floor of the decay, not cut short
    assert lrs[-1][1] == pytest.approx(run.lr * run.min_lr_fraction, rel=1e-3)
    assert RunConfig(steps=230).lr_at(22) == pytest.approx(run.lr)  # warm-up ends at 23
    assert RunConfig(steps=230).lr_at(21) < run.lr

    # --steps 230 reruns it exactly: the probe's steps left nothing behind.
    fixed = {**options, "steps": 230, "time_budget": None}
    again = train(tiny(tmp_path / "steps", corpus, **fixed))
    assert again.budget is None and calls == [1]
    assert _curve(tmp_path / "steps") == _curve(tmp_path / "budget")
    a, b = _weights(tmp_path / "budget"), _weights(tmp_path / "steps")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # Interrupted and resumed: the recorded 230 steps, no second probe, the same run.
    with pytest.raises(TrainingInterrupted):
        train(tiny(tmp_path / "cut", corpus, **options), on_step=_interrupt_at(100))
    assert calls == [1, 1]
    _never_probe(monkeypatch)
    resumed = train(tiny(tmp_path / "cut", corpus, **options, resume=True))
    assert resumed.steps == 230 and resumed.budget == want
    assert _curve(tmp_path / "cut") == _curve(tmp_path / "budget")
    c = _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_steps_given_replace_the_default_budget(tmp_path, corpus, tiny, monkeypatch):
    _never_probe(monkeypatch)
    r = train(tiny(tmp_path / "run", corpus, steps=3))  # char-lm, whose default is a budget
    assert r.steps == 3 and r.budget is None
    assert json.loads((tmp_path / "run" / "train.json").read_text())["run"]["time_budget"] is None


# ---- the command line ------------------------------------------------------------------------


def _invoke(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args])
    result.flat = result.output.replace("\n", "")
    return result


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--time-budget", "0"], "time budget is 0.0 (expected a finite number of seconds > 0"),
        (["--time-budget", "-5"], "time budget is -5.0 (expected a finite number of seconds > 0"),
        (["--time-budget", "nan"], "time budget is nan (expected a finite number of seconds"),
        (["--time-budget", "inf"], "time budget is inf (expected a finite number of seconds"),
        (["--time-budget", "1e9"], "time budget is 1000000000.0 (expected a finite number"),
        (
            ["--time-budget", "30", "--steps", "40"],
            "pass --steps or --time-budget, not both (--steps 40 fixes the step count; "
            "--time-budget 30 lets a timing probe choose it)",
        ),
        (
            ["--time-budget", "30", "--epochs", "2"],
            "pass --epochs or --time-budget, not both (--epochs 2 fixes",
        ),
    ],
)
def test_bad_budgets_are_refused_in_one_line(tmp_path, corpus, extra, message):
    out = tmp_path / "r"
    r = _invoke("train", "--corpus", corpus, "--out", out, *TINY_ARGS.split(), *extra,
                "--no-progress")  # fmt: skip
    assert r.exit_code == 2, (r.output, r.exception)
    assert r.flat.startswith(f"error: {message}"), r.output  # one message, wrapped by rich
    assert r.output.count("error:") == 1 and "Traceback" not in r.output
    assert not out.exists()


def test_pipeline_trains_to_a_real_budget_and_records_it(tmp_path, corpus):
    """A real 3 s budget on a tiny model, end to end: probe, train, export, summary."""
    out = tmp_path / "bundle"
    r = _invoke("pipeline", "--corpus", corpus, "--out", out, "--time-budget", 3,
                "--hidden", 16, "--layers", 1, "--embed", 8, "--seq-len", 16, "--batch-size", 4,
                "--validate-steps", 50, "--no-bench")  # fmt: skip
    assert r.exit_code == 0, r.output
    ckpt = out / "checkpoint"
    recorded = Budget.from_record(json.loads((ckpt / "train.json").read_text())["budget"])
    assert recorded is not None and recorded.seconds == 3.0
    assert 0 < recorded.s_per_step < recorded.seconds and 0 < recorded.probe_s < 3.0
    assert recorded.steps == steps_for(3.0, recorded.s_per_step, recorded.eval_s, 250,
                                       recorded.probe_s)[0]  # fmt: skip
    _, state = load_resume_state(ckpt)
    assert state["step"] == state["run"]["steps"] == recorded.steps
    assert "timing probe:" in r.output  # the progress bar's line (wrapped at 80 columns)
    summary = (out / "SUMMARY.md").read_text(encoding="utf-8")
    trained = f"Trained {recorded.steps} steps (fixed by a time budget of 3 s; rerun with "
    assert trained + f"--steps {recorded.steps})" in summary
    assert f"Timing probe: {recorded.s_per_step:.3g} s/step -> {recorded.steps:,} steps" in summary


def test_torchrun_ranks_train_rank_0s_count(tmp_path, corpus):
    """Two ranks time the same fixed number of probe steps (their collectives must pair up)
    and both train the count rank 0 fixed; a hang here is a mismatch."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--nnodes", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
           "-m", "lstm_edge.toolchain", "train", "--out", str(out), "--corpus", str(corpus),
           "--time-budget", "2", *TINY_ARGS.split(), "--no-progress"]  # fmt: skip
    # A launcher's variables left in the environment would override this job's own.
    launched = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                "ROLE_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
                "TORCHELASTIC_RESTART_COUNT")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in launched}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recorded = json.loads((out / "train.json").read_text())
    assert recorded["world_size"] == 2
    assert recorded["run"]["steps"] == recorded["budget"]["steps"] >= budget.MIN_STEPS_FIT
    _, state = load_resume_state(out)
    assert state["step"] == recorded["budget"]["steps"]
    assert f"rerun with --steps {recorded['budget']['steps']}" in " ".join(proc.stdout.split())
