"""Issue 16 point 3 and 5 through the CLI: hostile JSON, disk full, bad numbers, bad weights.

Every case exits 2 with one line naming the file or value, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from lstm_edge.exporters.onnx_export import stamp_digest
from lstm_edge.runtime.config import META_CONFIG
from lstm_edge.toolchain.cli import app

runner = CliRunner()
TINY_ARGS = "--hidden 16 --layers 1 --embed 8 --seq-len 16 --batch-size 4 --threads 1"
DEEP = "[" * 100_000 + "]" * 100_000
LONG_INT = "1" * 5000


def _invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    result.flat = result.output.replace("\n", "")
    return result


def _one_line_exit_2(r, name: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    assert name in r.flat, r.output
    assert "not valid JSON" in r.flat, r.output


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    """A 2-step run (with resume/) and its float export, shared read-only."""
    root = tmp_path_factory.mktemp("faults")
    corpus = root / "corpus.txt"
    from lstm_edge.toolchain.data import load_corpus

    corpus.write_text(load_corpus(None).text[:6000], encoding="utf-8")
    run = root / "run"
    r = _invoke("train", "--corpus", corpus, "--out", run, "--steps", 2, *TINY_ARGS.split(),
                "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    onnx_path = root / "m.onnx"
    r = _invoke("export", run, "--out", onnx_path)
    assert r.exit_code == 0, r.output
    return run, onnx_path


@pytest.fixture
def run(base, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(base[0], out)
    return out


def _corrupt(path: Path, bad: str) -> None:
    text = path.read_text(encoding="utf-8")
    if path.name == "latest.json":
        path.write_text('{"dir": ' + bad + "}", encoding="utf-8")
    else:  # a JSON object: the first value replaced by the hostile one
        key_end = text.index(":") + 1
        path.write_text(text[:key_end] + bad + ", " + text[key_end:].lstrip(), encoding="utf-8")


def _resume_latest(run: Path) -> Path:
    return run / "resume" / "latest.json"


# Each command with the run files it reads (export does not read resume/latest.json).
READS = [
    (command, file)
    for command in ("info", "export", "resume")
    for file in ("config.json", "data.json", "latest.json")
    if (command, file) != ("export", "latest.json")
]


@pytest.mark.parametrize("bad", [DEEP, LONG_INT], ids=["deep", "long-int"])
@pytest.mark.parametrize(("command", "file"), READS)
def test_hostile_json_in_a_run_folder_is_named(run, tmp_path, bad, file, command):
    path = _resume_latest(run) if file == "latest.json" else run / file
    _corrupt(path, bad)
    if command == "info":
        r = _invoke("info", run)
    elif command == "export":
        r = _invoke("export", run, "--out", tmp_path / "x.onnx")
        assert not (tmp_path / "x.onnx").exists()
    else:
        r = _invoke("train", "--out", run, "--resume", "--steps", 4, "--no-progress")
    _one_line_exit_2(r, str(path))


def _with_meta(src: Path, dst: Path, key: str, value: str) -> Path:
    """A copy with metadata `key` set to `value`, restamped with a valid content digest as
    a forger would, so the metadata reader (not the digest) is what gets tested."""
    proto = onnx.load(str(src))
    for p in proto.metadata_props:
        if p.key == key:
            p.value = value
    stamp_digest(proto)
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("bad", [DEEP, '{"a": ' + LONG_INT + "}"], ids=["deep", "long-int"])
@pytest.mark.parametrize("command", ["info", "suggest", "detect"])
def test_hostile_json_in_artifact_metadata_is_named(base, tmp_path, bad, command):
    path = _with_meta(base[1], tmp_path / "odd.onnx", META_CONFIG, bad)
    args = {"info": ["info", path], "suggest": ["suggest", path, "the qu"]}
    r = _invoke(*args.get(command, [command, path]))
    _one_line_exit_2(r, str(path))


# ---- disk full -----------------------------------------------------------------------------


def _disk_full(monkeypatch, part: str = "", after: int = 0) -> None:
    """os.fsync of a temp file whose name contains `part` fails as on a full disk (the
    write itself may have been buffered; fsync is where a full disk shows up at the latest),
    from the (after+1)-th such file on."""
    import errno
    import os

    real = os.fsync
    seen = []

    def fsync(fd):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".tmp-") and part in name:
            seen.append(name)
            if len(seen) > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _full_disk_message(r, path: Path) -> None:
    assert r.exit_code == 2, (r.output, r.exception)
    assert "Traceback" not in r.output
    assert f"cannot write {path}: No space left on device" in r.flat, r.output


def test_atomic_write_names_the_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    from lstm_edge.runtime.files import WriteError, atomic_write_bytes

    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    _disk_full(monkeypatch)
    with pytest.raises(WriteError) as e:
        atomic_write_bytes(path, b"new")
    assert str(e.value) == f"cannot write {path}: No space left on device"
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left


def test_export_on_a_full_disk_names_the_file(base, tmp_path, monkeypatch):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    _disk_full(monkeypatch)
    _full_disk_message(_invoke("export", base[0], "--out", out, "--force"), out)
    assert out.read_bytes() == b"old"


def test_codegen_on_a_full_disk_names_the_file(base, tmp_path, monkeypatch):
    _disk_full(monkeypatch, "_model.c")
    r = _invoke("codegen", base[1], "-o", tmp_path / "b", "--name", "m")
    _full_disk_message(r, tmp_path / "b" / "m_model.c")


def test_validate_report_on_a_full_disk_names_the_file(base, tmp_path, monkeypatch):
    _disk_full(monkeypatch, "report.json")
    r = _invoke("validate", base[0], base[1], "--steps", 20, "--report", tmp_path / "r")
    _full_disk_message(r, tmp_path / "r" / "report.json")


def test_bench_json_on_a_full_disk_names_the_file(base, tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    _disk_full(monkeypatch, "bench.json")
    r = _invoke("bench", base[1], "-b", "numpy", "--repeats", 1, "--json", out)
    _full_disk_message(r, out)
    assert not out.exists()


def test_train_on_a_full_disk_keeps_the_last_resume_state(base, tmp_path, monkeypatch):
    from lstm_edge.toolchain.train import latest_resume_dir, load_resume_state

    out = tmp_path / "run"
    corpus = base[0].parent / "corpus.txt"
    _disk_full(monkeypatch, "trainer.pt", after=2)  # steps 0 and 2 save, 4 finds the disk full
    r = _invoke("train", "--corpus", corpus, "--out", out, "--steps", 4, "--eval-every", 2,
                *TINY_ARGS.split(), "--no-progress")  # fmt: skip
    assert r.exit_code == 2, (r.output, r.exception)
    step4 = out / "resume" / "000000004"
    assert f"cannot write {step4 / 'trainer.pt'}: No space left on device" in r.flat, r.output
    assert "previous checkpoint is intact" in r.flat
    assert "Traceback" not in r.output
    assert not step4.exists()  # no step folder without its trainer.pt
    assert latest_resume_dir(out) == out / "resume" / "000000002"
    assert load_resume_state(out)[1]["step"] == 2


# ---- non-finite and out-of-range numbers -----------------------------------------------------


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--lr", "inf", "lr is inf (expected a finite number > 0)"),
        ("--lr", "nan", "lr is nan (expected a finite number > 0)"),
        ("--lr", "-1", "lr is -1.0 (expected a finite number > 0)"),
        ("--lr", "1e38", "lr is 1e+38 (expected at most 1000)"),
        ("--grad-clip", "inf", "grad_clip is inf (expected a finite number > 0)"),
        ("--weight-decay", "inf", "weight_decay is inf (expected a finite number >= 0)"),
        ("--epochs", "inf", "epochs is inf (expected a finite number > 0)"),
        ("--epochs", "nan", "epochs is nan (expected a finite number > 0)"),
        ("--epochs", "-1", "epochs is -1.0 (expected a finite number > 0)"),
        ("--steps", "10000000000", "steps is 10000000000 (expected at most 1000000000)"),
    ],
)
def test_non_finite_or_out_of_range_numbers_are_refused(base, tmp_path, option, value, message):
    corpus = base[0].parent / "corpus.txt"
    args = ["train", "--corpus", corpus, "--out", tmp_path / "r", *TINY_ARGS.split()]
    if option != "--steps" and option != "--epochs":
        args += ["--steps", 2]
    r = _invoke(*args, option, value, "--no-progress")
    assert r.exit_code == 2, (r.output, r.exception)
    assert r.flat.strip() == f"error: {message}"
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_epochs_beyond_the_step_bound_are_refused(base, tmp_path):
    corpus = base[0].parent / "corpus.txt"
    r = _invoke("train", "--corpus", corpus, "--out", tmp_path / "r", *TINY_ARGS.split(),
                "--epochs", "1e300", "--no-progress")  # fmt: skip
    assert r.exit_code == 2, (r.output, r.exception)
    assert "epochs is 1e+300" in r.flat and "expected at most 1000000000 steps" in r.flat


def test_an_update_to_non_finite_weights_stops_and_keeps_the_last_good_state(
    base, tmp_path, monkeypatch
):
    # lr 1e30 did this (now refused as an option): the loss of the step was finite, the
    # update made the weights Inf, and the resume state saved after it held them.
    import torch

    from lstm_edge.toolchain.train import load_resume_state

    real_step = torch.optim.AdamW.step
    calls = []

    def step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][-1].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    corpus = base[0].parent / "corpus.txt"
    out = tmp_path / "r"
    r = _invoke("train", "--corpus", corpus, "--out", out, *TINY_ARGS.split(),
                "--steps", 6, "--eval-every", 1, "--no-progress")  # fmt: skip
    assert r.exit_code == 2, (r.output, r.exception)
    assert r.flat.startswith("error: weights became NaN or Inf (head.bias) in the update of step 3")
    assert "try a lower --lr" in r.flat
    model, state = load_resume_state(out)
    assert state["step"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---- checkpoints: non-finite and non-float32 weights (issue point 5) ---------------------


def _rewrite_weights(run: Path, edit) -> str:
    """Rewrite the run's model.safetensors with `edit(weights)` applied; returns the name of
    the tensor it changed."""
    from safetensors.torch import load_file, save_file

    path = run / "model.safetensors"
    weights = load_file(str(path))
    name = edit(weights)
    save_file(weights, str(path))
    return name


def test_info_refuses_a_checkpoint_with_nan_weights_naming_the_tensor(run):
    def nan(weights):
        weights["head.bias"][1] = float("nan")
        return "head.bias"

    name = _rewrite_weights(run, nan)
    r = _invoke("info", run)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert f"'{name}'" in r.flat and "NaN/Inf" in r.flat and "model.safetensors" in r.flat


@pytest.mark.parametrize("dtype", ["int32", "float64", "float16"])
@pytest.mark.parametrize("command", ["info", "export"])
def test_non_float32_weights_are_refused_naming_tensor_and_dtype(run, tmp_path, dtype, command):
    import torch

    def cast(weights):
        weights["head.weight"] = weights["head.weight"].to(getattr(torch, dtype))
        return "head.weight"

    name = _rewrite_weights(run, cast)
    args = ("export", run, "--out", tmp_path / "x.onnx") if command == "export" else ("info", run)
    r = _invoke(*args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert f"'{name}'" in r.flat and f"torch.{dtype}" in r.flat and "float32" in r.flat
    assert not (tmp_path / "x.onnx").exists()
