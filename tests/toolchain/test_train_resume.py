"""Training runs: resume equals uninterrupted, Ctrl-C, NaN, refusals (rows 2-5, 22-23)."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.data import CorpusError
from lstm_edge.toolchain.train import (
    OutputFolderError,
    TrainingDiverged,
    TrainingError,
    TrainingInterrupted,
    load_resume_state,
    read_metrics,
    train,
)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _curve(out: Path) -> list[dict]:
    # chars_per_s is wall-clock time: the one field two identical runs do not share.
    return [{k: v for k, v in m.items() if k != "chars_per_s"} for m in read_metrics(out)]


def _interrupt_at(step: int):
    def hook(done: int, loss: float) -> None:
        if done == step:
            os.kill(os.getpid(), signal.SIGINT)

    return hook


def test_resume_equals_uninterrupted_run_exactly(tmp_path, short_corpus, tiny):
    # 12 steps over 5-step epochs: the interruption (after step 7, between evaluations
    # at 4 and 8) and the state resets at 5 and 10 are all exercised.
    full = train(tiny(tmp_path / "full", short_corpus))
    with pytest.raises(TrainingInterrupted) as e:
        train(tiny(tmp_path / "cut", short_corpus), on_step=_interrupt_at(6))
    # The signal arrives during step 6's hook; step 7 finishes, then the run saves and stops.
    assert e.value.step == 7
    _, state = load_resume_state(tmp_path / "cut")
    assert state["step"] == 7
    resumed = train(tiny(tmp_path / "cut", short_corpus, resume=True))

    assert resumed.steps == full.steps == 12
    # Same ops in the same order on the same thread count: bit-identical, no tolerance.
    assert _curve(tmp_path / "cut") == _curve(tmp_path / "full")
    assert len(_curve(tmp_path / "full")) == 12 + 4  # 12 train lines, val at 0, 4, 8, 12
    for sub in (".", "resume/000000012"):
        a = load_file(str(tmp_path / "full" / sub / "model.safetensors"))
        b = load_file(str(tmp_path / "cut" / sub / "model.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.best_val_bpc == full.best_val_bpc
    _, s_full = load_resume_state(tmp_path / "full")
    _, s_cut = load_resume_state(tmp_path / "cut")
    assert s_full["losses"] == s_cut["losses"]
    assert torch.equal(s_full["h"], s_cut["h"]) and torch.equal(s_full["c"], s_cut["c"])


def test_resume_refuses_changed_settings(tmp_path, short_corpus, tiny):
    train(tiny(tmp_path / "run", short_corpus, steps=4))
    with pytest.raises(TrainingError, match=r"hidden 32 \(the run has 16\)"):
        train(tiny(tmp_path / "run", short_corpus, hidden=32, resume=True))


def test_interrupt_saves_a_loadable_checkpoint_and_resume_state(tmp_path, short_corpus, tiny):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(tiny(out, short_corpus, eval_every=100), on_step=_interrupt_at(2))
    assert load_checkpoint(out).config.hidden_size == 16  # the step-0 best model
    _, state = load_resume_state(out)
    assert state["step"] == 3 and len(state["losses"]) == 3
    assert [m["step"] for m in read_metrics(out) if m["kind"] == "train"] == [1, 2, 3]


def test_second_ctrl_c_stops_at_once_and_keeps_the_last_save(tmp_path, short_corpus, tiny):
    out = tmp_path / "run"

    def twice(done: int, loss: float) -> None:
        if done == 2:
            os.kill(os.getpid(), signal.SIGINT)  # finish this step, then stop...
            os.kill(os.getpid(), signal.SIGINT)  # ...no: stop now

    with pytest.raises(KeyboardInterrupt):
        train(tiny(out, short_corpus, eval_every=100), on_step=twice)
    # Nothing was saved after step 0; that save is whole and resumable.
    assert load_resume_state(out)[1]["step"] == 0
    assert load_checkpoint(out).config.hidden_size == 16
    assert not list(out.rglob(".tmp-*"))
    assert train(tiny(out, short_corpus, eval_every=100, resume=True)).steps == 12


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path, short_corpus, tiny, monkeypatch
):
    out = tmp_path / "run"
    real = torch.nn.functional.cross_entropy
    calls = {"train": 0}
    snapshot = {}

    def poisoned(*args, **kwargs):
        loss = real(*args, **kwargs)
        if torch.is_grad_enabled():  # training steps only, not evaluation
            calls["train"] += 1
            if calls["train"] == 6:
                return loss * float("nan")
        return loss

    def hook(done: int, loss: float) -> None:
        if done == 5:  # after the save at step 4: what must survive unchanged
            snapshot.update(_snapshot(out))

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan .* at step 6") as e:
        train(tiny(out, short_corpus), on_step=hook)
    assert str(out) in str(e.value)
    assert _snapshot(out) == snapshot
    assert load_resume_state(out)[1]["step"] == 4


def test_disk_full_during_save_names_the_folder_and_keeps_the_old_files(
    tmp_path, short_corpus, tiny, monkeypatch
):
    out = tmp_path / "run"
    snapshot = {}

    write_bytes = Path.write_bytes

    def full_disk(self, data):
        if not self.name.startswith(".tmp-model.safetensors"):
            return write_bytes(self, data)
        write_bytes(self, b"partial")  # the temp file gets half written...
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    def hook(done: int, loss: float) -> None:
        if done == 5:  # after the save at step 4, the disk fills up
            snapshot.update(_snapshot(out))
            monkeypatch.setattr(Path, "write_bytes", full_disk)

    with pytest.raises(TrainingError, match="No space left on device") as e:
        train(tiny(out, short_corpus, steps=8), on_step=hook)
    assert str(out) in str(e.value)
    assert _snapshot(out) == snapshot  # ...and removed: no temp file, old files intact
    assert load_resume_state(out)[1]["step"] == 4


def test_existing_run_is_not_replaced_without_force(tmp_path, short_corpus, tiny):
    out = tmp_path / "run"
    train(tiny(out, short_corpus, steps=4))
    before = _snapshot(out)
    with pytest.raises(OutputFolderError, match=r"already holds a checkpoint.*--force"):
        train(tiny(out, short_corpus, steps=4, seed=1))
    assert _snapshot(out) == before
    result = train(tiny(out, short_corpus, steps=4, seed=1, force=True))
    assert result.steps == 4
    assert json.loads((out / "train.json").read_text())["run"]["seed"] == 1


def test_output_folder_below_a_file_is_named(tmp_path, short_corpus, tiny):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputFolderError, match=str(blocker / "out")):
        train(tiny(blocker / "out", short_corpus))
    with pytest.raises(OutputFolderError, match="is a file"):
        train(tiny(blocker, short_corpus))


def test_bad_corpus_fails_before_anything_is_written(tmp_path, tiny):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01binary")
    with pytest.raises(CorpusError, match="NUL"):
        train(tiny(tmp_path / "run", bad))
    too_short = tmp_path / "short.txt"
    too_short.write_text("only a few characters here", encoding="utf-8")
    with pytest.raises(CorpusError, match="too short"):
        train(tiny(tmp_path / "run", too_short))
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_training_learns_and_keeps_the_best(tmp_path, corpus, tiny):
    result = train(tiny(tmp_path / "run", corpus, steps=40, eval_every=10, lr=1e-2))
    evals = [m for m in read_metrics(tmp_path / "run") if m["kind"] == "val"]
    assert [e["step"] for e in evals] == [0, 10, 20, 30, 40]
    # An untrained model is near-uniform: log2(vocab) bits; 40 steps must beat that.
    vocab = load_checkpoint(tmp_path / "run").config.vocab_size
    assert abs(evals[0]["bpc"] - math.log2(vocab)) < 0.5
    assert result.best_val_bpc < evals[0]["bpc"] - 1.0
    best = min(evals, key=lambda e: e["loss"])
    assert result.best_step == best["step"]
    # The folder's model is the best one: its validation loss recomputed matches.
    from lstm_edge.toolchain.data import encode, held_out_text
    from lstm_edge.toolchain.train import evaluate

    ckpt = load_checkpoint(tmp_path / "run")
    ids = encode(held_out_text(ckpt.data, "val"), ckpt.config)
    # Same model, data and op order: equal to float rounding of the summed loss.
    assert evaluate(ckpt.model, ids, 2, 16) == pytest.approx(best["loss"], rel=1e-6)
    assert (tmp_path / "run" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_epochs_become_steps_over_the_training_split(tmp_path, short_corpus, tiny):
    # short_corpus: 360 training chars / 4 streams = 89 per stream -> 5 chunks of 16.
    result = train(tiny(tmp_path / "run", short_corpus, steps=None, epochs=1.5))
    assert result.steps == 8  # ceil(1.5 * 5)
