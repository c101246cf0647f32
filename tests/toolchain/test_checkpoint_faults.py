"""Broken, hostile and half-written checkpoints (rows 1, 7, 8, 9 of bad-inputs)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lstm_edge.toolchain.checkpoint import (
    InvalidCheckpointError,
    load_checkpoint,
    load_torch_state,
    read_weights_metadata,
)
from lstm_edge.toolchain.train import (
    TRAINER_FILE,
    TrainOptions,
    latest_resume_dir,
    load_resume_state,
    train,
)


class _Payload:
    """Unpickling this creates `marker`: the code a hostile checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def run(tmp_path, short_corpus, tiny) -> Path:
    out = tmp_path / "run"
    train(tiny(out, short_corpus, steps=4))
    return out


def test_the_payload_is_live(tmp_path):
    # Guard: the refusals below mean something only if plain unpickling runs the code.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


# torch warns about the plain pickle's protocol before refusing it: expected here.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("as_torch_save", [False, True])
def test_pickle_payload_is_refused_as_weights_and_as_trainer_state(tmp_path, run, as_torch_save):
    marker = tmp_path / "ran"

    def plant(path: Path) -> None:
        if as_torch_save:
            torch.save({"x": _Payload(marker)}, path)  # torch's zip format, pickle inside
        else:
            path.write_bytes(pickle.dumps(_Payload(marker)))

    plant(run / "model.safetensors")
    with pytest.raises(InvalidCheckpointError, match=r"model\.safetensors"):
        load_checkpoint(run)
    trainer = latest_resume_dir(run) / TRAINER_FILE
    plant(trainer)
    with pytest.raises(InvalidCheckpointError, match=r"trainer\.pt"):
        load_torch_state(trainer)
    with pytest.raises(InvalidCheckpointError, match=r"trainer\.pt"):
        load_resume_state(run)
    assert not marker.exists()


def test_truncated_zero_byte_and_missing_files_are_named(run):
    weights = run / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        InvalidCheckpointError, match=r"not a valid checkpoint: .*model\.safetensors"
    ):
        load_checkpoint(run)
    weights.write_bytes(b"")
    with pytest.raises(InvalidCheckpointError, match=r"model\.safetensors"):
        load_checkpoint(run)
    (run / "config.json").unlink()
    with pytest.raises(InvalidCheckpointError, match=r"config\.json is missing"):
        load_checkpoint(run)


def test_wrong_format_version_names_expected_and_found(run):
    cfg = json.loads((run / "config.json").read_text())
    cfg["format_version"] = 99
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InvalidCheckpointError, match=r"config\.json.*99.*expected 1"):
        load_checkpoint(run)


def test_config_weights_mismatch_names_the_keys(run):
    weights = load_file(str(run / "model.safetensors"))
    weights.pop("head.bias")
    weights["extra.weight"] = torch.zeros(2)
    weights["embedding.weight"] = torch.zeros(3, 3)
    save_file(weights, str(run / "model.safetensors"))
    with pytest.raises(InvalidCheckpointError) as e:
        load_checkpoint(run)
    msg = str(e.value)
    assert "missing ['head.bias']" in msg
    assert "unexpected ['extra.weight']" in msg
    assert "embedding.weight (3, 3)" in msg


def test_weights_metadata_records_the_best_step(run):
    meta = read_weights_metadata(run)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = min((e for e in evals if e["kind"] == "val"), key=lambda e: e["loss"])
    assert int(meta["step"]) == best["step"]
    assert float(meta["val_loss"]) == best["loss"]


# ---- kill -9 during a save (subprocess, deterministic: killed at a chosen os.replace) ------

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    target, nth = sys.argv[1], int(sys.argv[2])
    real, seen = os.replace, [0]

    def replace(src, dst, *a, **k):
        # The temp file is complete, the final name not yet replaced: die right here.
        if Path(dst).name == target:
            seen[0] += 1
            if seen[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)

    os.replace = replace
    from lstm_edge.toolchain.cli import app
    app(sys.argv[3:], prog_name="lstm-edge")
    """
)


@pytest.mark.parametrize(
    ("target", "nth"),
    [
        ("model.safetensors", 3),  # the best model (saves alternate best/resume weights)
        ("trainer.pt", 2),  # the resume state of step 4, its weights already written
        ("latest.json", 2),  # the commit point of the step-4 resume folder
    ],
)
def test_kill_during_save_leaves_the_previous_checkpoint(tmp_path, short_corpus, tiny, target, nth):
    out = tmp_path / "run"
    args = f"train --corpus {short_corpus} --out {out} --steps 8 --eval-every 4 --hidden 16 "
    args += "--layers 1 --embed 8 --seq-len 16 --batch-size 4 --threads 1 --no-progress"
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, target, str(nth), *args.split()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr  # it really was killed mid-save
    ckpt = load_checkpoint(out)  # the previous good best model
    assert int(read_weights_metadata(out)["step"]) in (0, 4)
    _, state = load_resume_state(out)
    assert state["step"] in (0, 4)
    assert list(out.rglob(".tmp-*")), "the kill should have left a temp file"
    # The next start cleans up and resumes to the end.
    resumed = train(TrainOptions(out=out, resume=True, threads=1, progress=False))
    assert resumed.steps == 8
    assert not list(out.rglob(".tmp-*"))
    assert [p.name for p in (out / "resume").iterdir() if p.is_dir()] == ["000000008"]
    assert load_checkpoint(out).config == ckpt.config
