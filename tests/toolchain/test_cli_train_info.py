"""`lstm-edge train` and `lstm-edge info` through the CLI: files, messages, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.train import load_resume_state

runner = CliRunner()
TINY_ARGS = "--hidden 16 --layers 1 --embed 8 --seq-len 16 --batch-size 4 --threads 1"


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    # rich wraps long messages at the terminal width; tests read them unwrapped.
    result.flat = result.output.replace("\n", "")
    return result


def test_train_leaves_a_checkpoint_that_info_describes(tmp_path, corpus):
    out = tmp_path / "run"
    r = _invoke(
        "train", "--corpus", corpus, "--out", out, "--steps", 50, "--hidden", 32,
        "--layers", 1, "--no-progress",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "trained 50 steps" in r.output
    for name in ("config.json", "model.safetensors", "data.json", "metrics.jsonl", "loss.png"):
        assert (out / name).is_file(), name
    _, state = load_resume_state(out)
    assert state["step"] == 50 and "optimizer" in state

    r = _invoke("info", out, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    model = load_checkpoint(out).model
    assert info["config"]["hidden_size"] == 32 and info["config"]["num_layers"] == 1
    assert info["config"]["vocab_size"] == model.config.vocab_size
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["files"]["model.safetensors"] == (out / "model.safetensors").stat().st_size
    assert info["last_train"]["step"] == 50 and info["resume"]["step"] == 50
    assert info["best"]["step"] in (0, 50)

    r = _invoke("info", out)  # the table
    assert r.exit_code == 0 and "hidden_size" in r.output and "parameters" in r.output


def test_info_refuses_broken_and_foreign_folders(tmp_path, corpus):
    out = tmp_path / "run"
    assert _invoke("train", "--corpus", corpus, "--out", out, "--steps", 2, *TINY_ARGS.split(),
                   "--no-progress").exit_code == 0  # fmt: skip
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    r = _invoke("info", out)
    assert r.exit_code == 2
    assert "not a valid checkpoint" in r.flat and "model.safetensors" in r.flat
    (tmp_path / "empty").mkdir()
    r = _invoke("info", tmp_path / "empty")
    assert r.exit_code == 2 and "config.json is missing" in r.flat
    r = _invoke("info", corpus)
    assert r.exit_code == 2 and "not something lstm-edge knows" in r.flat


def test_train_refusals_exit_2_with_a_message(tmp_path, corpus):
    out = tmp_path / "run"
    base = ["train", "--corpus", corpus, "--steps", 2, *TINY_ARGS.split(), "--no-progress"]
    assert _invoke(*base, "--out", out).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = _invoke(*base, "--out", out)
    assert r.exit_code == 2 and "already holds a checkpoint" in r.flat
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = _invoke(*base, "--out", blocker / "sub")
    assert r.exit_code == 2 and str(blocker / "sub") in r.flat

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00\x01")
    r = _invoke("train", "--corpus", bad, "--out", tmp_path / "x", "--no-progress")
    assert r.exit_code == 2 and "bad.txt" in r.flat and "NUL" in r.flat

    r = _invoke(*base, "--out", tmp_path / "y", "--epochs", 1)
    assert r.exit_code == 2 and "--steps or --epochs" in r.flat


def test_help_shows_defaults():
    r = _invoke("train", "--help")
    assert r.exit_code == 0
    assert "default 256" in r.output and "torchrun" in r.output


def test_ctrl_c_exits_130_and_keeps_a_resumable_state(tmp_path, corpus):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lstm_edge.toolchain", "train", "--corpus", str(corpus),
           "--out", str(out), "--steps", "100000", "--eval-every", "100000",
           *TINY_ARGS.split(), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # generous: the machine may be busy
    while not (out / "resume" / "latest.json").exists():  # the step-0 save is done
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no step-0 save: {proc.communicate()}")
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted after step" in err and "--resume" in err
    _, state = load_resume_state(out)
    stopped = state["step"]
    assert stopped >= 1  # saved after the finished step, not at the old step-0 state
    assert load_checkpoint(out).config.hidden_size == 16
    # --resume with a new end point is refused (the schedule depends on it)...
    r = _invoke("train", "--out", out, "--resume", "--steps", stopped + 3, "--no-progress")
    assert r.exit_code == 2 and "steps" in r.output


def test_cli_import_does_not_load_torch():
    # --help, suggest and demo must not pay ~1 s for torch; train's defaults in --help come
    # from the torch-free run_config module.
    code = "import sys, lstm_edge.toolchain.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_ctrl_c_in_any_command_exits_130_without_a_traceback(tmp_path, monkeypatch):
    import lstm_edge.toolchain.info as info

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "describe", interrupted)
    r = _invoke("info", tmp_path)
    assert r.exit_code == 130, r.output
    assert "interrupted" in r.output and "Traceback" not in r.output
