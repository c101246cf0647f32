"""`lstm-edge quantize --scheme int8-full --calibrate`: what calibration refuses, through the
CLI (bad-inputs row 19). Every case exits 2 with a message naming the value at fault, no
traceback, and no output file (nor a temp file) left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.exporters.quantize_full import CalibrationError
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.toolchain.calibrate import MIN_CHUNK, chunks
from lstm_edge.toolchain.cli import app

runner = CliRunner()
TINY_ARGS = "--layers 1 --embed 8 --seq-len 16 --batch-size 4 --threads 1 --no-progress"


def _invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    # rich wraps lines, and frames usage errors in a box: words only, one space apart
    result.flat = " ".join(result.output.replace("│", " ").split())
    return result


def _train(root: Path, name: str, hidden: int) -> Path:
    corpus = root / "corpus.txt"
    if not corpus.exists():
        from lstm_edge.toolchain.data import load_corpus

        corpus.write_text(load_corpus(None).text[:6000], encoding="utf-8")
    run = root / name
    r = _invoke("train", "--corpus", corpus, "--out", run, "--steps", 2, "--hidden", hidden,
                *TINY_ARGS.split())  # fmt: skip
    assert r.exit_code == 0, r.output
    return run


def _export(run: Path, out: Path) -> Path:
    r = _invoke("export", run, "--out", out, "--check-steps", 50)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A 2-step run (1 x 16), its float export, and a run of another model (1 x 8)."""
    root = tmp_path_factory.mktemp("calib")
    run = _train(root, "run", 16)
    other = _train(root, "other", 8)
    return run, _export(run, root / "m.onnx"), other


def _refused(r, out: Path, *words: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output and not isinstance(r.exception, AssertionError)
    for w in words:
        assert w in r.flat, (w, r.output)
    assert sorted(p.name for p in out.parent.iterdir()) == [], list(out.parent.iterdir())


def _quantize(model: Path, out: Path, *extra: object):
    return _invoke("quantize", model, "--scheme", "int8-full", "-o", out, *extra)


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder / "m.int8-full.onnx"


def test_it_works_with_the_run_folder_or_its_checkpoint(base, tmp_path):
    """The case every refusal below departs from (the run folder is the checkpoint)."""
    run, model, _ = base
    out = tmp_path / "m.int8-full.onnx"
    r = _quantize(model, out, "--calibrate", run, "--calibration-steps", 512)
    assert r.exit_code == 0, r.output
    art = read_artifact(out)
    assert art.scheme == "int8-full"
    cal = art.integer.calibration
    assert (cal["split"], cal["data"], cal["steps"]) == ("train", str(run), 512)
    assert rt.load(out, backend="numpy").scheme == "int8-full"


def test_int8_full_without_calibrate(base, out):
    r = _quantize(base[1], out)
    _refused(r, out, "int8-full needs --calibrate CHECKPOINT", "--calibrate")


def test_calibrate_with_another_scheme(base, out):
    run, model, _ = base
    r = _invoke("quantize", model, "--scheme", "int8", "-o", out, "--calibrate", run)
    _refused(r, out, "--calibrate applies to scheme int8-full only (not int8)")


def test_calibrate_with_a_folder_that_is_not_a_checkpoint(base, out, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _quantize(base[1], out, "--calibrate", empty)
    _refused(r, out, "not a valid checkpoint", str(empty))


def test_calibrate_with_a_file(base, out):
    model = base[1]
    r = _quantize(model, out, "--calibrate", model)
    _refused(r, out, f"--calibrate {model}: expected the checkpoint the model was exported from")


def test_calibrate_with_a_missing_path(base, out, tmp_path):
    r = _quantize(base[1], out, "--calibrate", tmp_path / "nowhere")
    _refused(r, out, "nowhere: expected the checkpoint")


def test_calibrate_with_the_checkpoint_of_another_model(base, out):
    _, model, other = base
    r = _quantize(model, out, "--calibrate", other)
    _refused(r, out, f"--calibrate {other}: its config differs from the model's")


@pytest.mark.parametrize("steps", [MIN_CHUNK - 1, 0, -5])
def test_calibration_steps_below_the_minimum(base, out, steps):
    run, model, _ = base
    r = _quantize(model, out, "--calibrate", run, "--calibration-steps", steps)
    _refused(r, out, f"--calibration-steps {steps}: at least {MIN_CHUNK} are needed")


def _zeroed(base, tmp_path: Path, prefix: str) -> tuple[Path, Path]:
    """A copy of the run with every weight whose name starts with `prefix` set to 0, and
    its float export."""
    run = tmp_path / "zeroed"
    shutil.copytree(base[0], run)
    weights = load_file(run / "model.safetensors")
    hit = [k for k in weights if k.startswith(prefix)]
    assert hit, sorted(weights)
    save_file({k: v * 0 if k in hit else v for k, v in weights.items()}, run / "model.safetensors")
    return run, _export(run, tmp_path / "zeroed.onnx")


def test_an_all_zero_embedding_is_a_zero_range(base, out, tmp_path):
    run, model = _zeroed(base, tmp_path, "embedding")
    r = _quantize(model, out, "--calibrate", run, "--calibration-steps", 256)
    _refused(r, out, "calibration saw the embedding always 0.0: a zero range has no int8 scale")


def test_an_lstm_that_never_moves_is_a_zero_range(base, out, tmp_path):
    """All LSTM weights and biases 0: every gate is 1/2 and the candidate 0, so c and h stay
    at 0 whatever the input."""
    run, model = _zeroed(base, tmp_path, "lstm")
    r = _quantize(model, out, "--calibrate", run, "--calibration-steps", 256)
    _refused(r, out, "calibration saw h of layer 0 always 0.0: a zero range")


def test_an_existing_output_is_refused_before_calibrating(base, out):
    run, model, _ = base
    out.write_bytes(b"keep me")
    r = _quantize(model, out, "--calibrate", run)
    assert r.exit_code == 2 and "--force" in r.flat, r.output
    assert out.read_bytes() == b"keep me"
    assert "calibrating" not in r.output


# ---- the same errors below the CLI ------------------------------------------------------------


def test_short_or_empty_calibration_data():
    for n in (0, 1, MIN_CHUNK - 1):
        with pytest.raises(CalibrationError, match=f"has {n} steps \\(at least {MIN_CHUNK}"):
            chunks(np.zeros(n, np.int64), 1000)
    # enough: equal chunks spread over the whole stream, the last one ending at its end
    got = chunks(np.arange(1000), 256)
    assert got.shape == (4, 64) and got[0, 0] == 0 and got[-1, -1] == 999


def test_constant_feature_rows_are_a_zero_range(tmp_path):
    """A sensor model calibrated on data that never moves from the training mean: every
    normalized input is 0, so layer 0's input has no scale. The error names the input
    (never a division by zero) and no file is written."""
    import torch

    from lstm_edge.exporters.quantize import quantize_file
    from lstm_edge.runtime.config import ModelConfig
    from lstm_edge.toolchain.calibrate import measure
    from lstm_edge.toolchain.export import build_onnx
    from lstm_edge.toolchain.model import EdgeLSTM

    config = ModelConfig(
        task="forecast",
        hidden_size=6,
        num_layers=1,
        features=("a", "b"),
        targets=("a",),
        feature_mean=(0.0, 0.0),
        feature_std=(1.0, 2.0),
        target_mean=(0.0,),
        target_std=(1.0,),
    )
    torch.manual_seed(0)
    float_path = tmp_path / "m.onnx"
    float_path.write_bytes(build_onnx(EdgeLSTM(config).eval(), source_sha256="0" * 64)
                           .SerializeToString())  # fmt: skip
    constant = np.zeros((4, 64, 2), np.float32)  # at the training mean: normalized to 0
    with np.errstate(all="raise"):  # a division by zero would raise here, not a message
        ranges = measure(float_path, constant, {"data": "constant", "split": "train"})
        assert ranges.input_absmax == 0.0 and min(ranges.h_absmax) > 0  # biases move h
        out = tmp_path / "m.int8-full.onnx"
        with pytest.raises(CalibrationError, match=r"layer 0's normalized input always 0\.0"):
            quantize_file(float_path, out, "int8-full", ranges=ranges)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
