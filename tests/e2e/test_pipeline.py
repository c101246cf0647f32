"""`lstm-edge pipeline` and `lstm-edge validate` end to end, checked against a recomputation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.exporters.onnx_export import stamp_digest
from lstm_edge.runtime.config import HEAD_WEIGHT, QUANT_SUFFIX
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.data import encode, held_out_text
from lstm_edge.toolchain.pipeline import PipelineOptions, StageFailed, run_pipeline
from lstm_edge.toolchain.validate import (
    TOLERANCES,
    Tolerance,
    ValidateOptions,
    onednn,
    validate,
)

runner = CliRunner()


def _report(bundle: Path) -> dict:
    return json.loads((bundle / "validation" / "report.json").read_text())


def _result(report: dict, name: str, backend: str) -> dict:
    (found,) = [
        r for r in report["results"] if Path(r["artifact"]).name == name and r["backend"] == backend
    ]
    return found


def test_bundle_has_every_artifact(bundle: Path):
    for rel in (
        "checkpoint/config.json",
        "checkpoint/model.safetensors",
        "model.onnx",
        "model.int8.onnx",
        "validation/report.json",
        "bench.json",
        "SUMMARY.md",
    ):
        assert (bundle / rel).is_file(), rel
    assert (bundle / "validation/error_vs_timestep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (bundle / "SUMMARY.md").read_text()
    assert "## Validation: PASSED" in summary
    assert 'rt.load("model.int8.onnx"' in summary
    # the sizes in the summary are the files' sizes
    assert f"{(bundle / 'model.int8.onnx').stat().st_size:,}" in summary
    bench = json.loads((bundle / "bench.json").read_text())
    kinds = {r["kind"] for r in bench["latency"]}
    expected = {"runtime", "torch", "session_run", "session_run_threads", "matvec"}
    assert expected <= kinds <= expected | {"tract"}  # tract: only where it is installed


def test_report_passes_and_covers_both_artifacts_and_backends(bundle: Path, validate_steps: int):
    report = _report(bundle)
    assert report["passed"] is True
    assert report["steps"] == validate_steps
    pairs = {(Path(r["artifact"]).name, r["backend"]) for r in report["results"]}
    assert pairs == {(a, b) for a in ("model.onnx", "model.int8.onnx") for b in ("numpy", "ort")}
    for r in report["results"]:
        assert r["passed"] and r["failures"] == []
        assert r["tolerance"] == vars(TOLERANCES[r["scheme"]])


def _stream(ckpt, steps: int) -> np.ndarray:
    ids = encode(held_out_text(ckpt.data, "test"), ckpt.config)
    assert ids.size > steps  # the tiny corpus' test split needs no cycling
    return ids[: steps + 1]


def test_report_values_agree_with_a_direct_recomputation(bundle: Path, validate_steps: int):
    """Recompute, without validate.py: torch in one call vs the numpy backend step by step."""
    ckpt = load_checkpoint(bundle / "checkpoint")
    tokens = _stream(ckpt, validate_steps)
    with torch.no_grad(), onednn(False):
        ref, _ = ckpt.model(torch.from_numpy(tokens[None, :-1]))
    ref = ref[0].double().numpy()
    targets = tokens[1:]

    def ce_bits(logits: np.ndarray) -> float:
        m = logits.max(1, keepdims=True)
        lse = (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]
        return float(np.mean(lse - logits[np.arange(len(targets)), targets])) / math.log(2)

    report = _report(bundle)
    for name in ("model.onnx", "model.int8.onnx"):
        model = rt.load(bundle / name, backend="numpy")
        state = model.initial_state(1)
        got, cmin, cmax = [], math.inf, -math.inf
        for t in tokens[:-1]:
            logits, state = model.step(np.array([t]), state)
            got.append(logits[0])
            cmin, cmax = min(cmin, state.c.min()), max(cmax, state.c.max())
        got = np.asarray(got, dtype=np.float64)
        err = np.abs(got - ref).max(1)
        r = _result(report, name, "numpy")
        # Same torch kernel and the same numpy backend on the same tokens: the only
        # difference is torch over one call vs validate's chunks, which run the same
        # recurrence; allow float32 rounding of the logits (~1e-7 relative) on top.
        assert r["max_abs_err"] == pytest.approx(err.max(), rel=1e-3, abs=1e-6)
        assert r["mean_abs_err"] == pytest.approx(err.mean(), rel=1e-3, abs=1e-6)
        k = validate_steps // 10
        assert r["err_first"] == pytest.approx(err[:k].mean(), rel=1e-3, abs=1e-6)
        assert r["err_last"] == pytest.approx(err[-k:].mean(), rel=1e-3, abs=1e-6)
        agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
        assert r["top1_agreement"] == pytest.approx(agree, abs=1.5 / validate_steps)
        assert r["bpc_torch"] == pytest.approx(ce_bits(ref), abs=1e-5)
        assert r["bpc_artifact"] == pytest.approx(ce_bits(got), abs=1e-5)
        # the cell range comes from the numpy backend itself: identical computation
        assert r["cell_min"] == pytest.approx(float(cmin), abs=1e-6)
        assert r["cell_max"] == pytest.approx(float(cmax), abs=1e-6)
    # The tiny float model stays far inside the 1e-3 float tolerance: check the number itself.
    assert _result(report, "model.onnx", "numpy")["max_abs_err"] <= 1e-4


def _negated_head(src: Path, dst: Path) -> Path:
    """A deliberately broken int8 artifact: the head's int8 weights negated (a sign bug).

    Loads fine (scales and shapes are valid), but every prediction is turned upside down.
    """
    proto = onnx.load(str(src))
    for init in proto.graph.initializer:
        if init.name == HEAD_WEIGHT + QUANT_SUFFIX:
            q = numpy_helper.to_array(init).astype(np.int16)
            flipped = np.clip(-q, -127, 127).astype(np.int8)
            init.CopyFrom(numpy_helper.from_array(flipped, init.name))
            break
    else:
        raise AssertionError("no int8 head weight initializer in the int8 artifact")
    stamp_digest(proto)  # as a buggy exporter would write it: the digest holds
    onnx.save(proto, str(dst))
    return dst


def test_broken_artifact_makes_validate_exit_1(bundle: Path, tmp_path: Path):
    broken = _negated_head(bundle / "model.int8.onnx", tmp_path / "broken.int8.onnx")
    result = runner.invoke(
        app,
        ["validate", str(bundle / "checkpoint"), str(broken), "--backend", "numpy",
         "--steps", "300", "--report", str(tmp_path / "rep")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "validation failed" in result.output
    assert "top-1 agreement" in result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["passed"] is False
    assert report["results"][0]["top1_agreement"] < TOLERANCES["int8"].min_top1


def test_stricter_tolerance_fails(bundle: Path):
    opts = ValidateOptions(steps=200, backends=("numpy",))
    report = validate(bundle / "checkpoint", [bundle / "model.onnx"], opts)
    measured = report.results[0].summary.max_abs_err
    assert report.passed and measured > 0  # float32 summation order differs from torch's
    strict = ValidateOptions(
        steps=200, backends=("numpy",), tolerances={"none": Tolerance(max_abs_err=measured / 2)}
    )
    report = validate(bundle / "checkpoint", [bundle / "model.onnx"], strict)
    assert not report.passed
    assert "max abs logit error" in report.results[0].failures[0]


def test_short_text_is_cycled(bundle: Path, tmp_path: Path):
    text = tmp_path / "short.txt"
    text.write_text("the state is carried.\n", encoding="utf-8")
    result = runner.invoke(
        app,
        ["validate", str(bundle / "checkpoint"), str(bundle / "model.onnx"), "-b", "numpy",
         "--steps", "100", "--text", str(text), "--report", str(tmp_path / "rep")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cycling it" in result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["text_cycled"] is True and report["text_tokens"] == 22
    assert report["steps"] == 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "{one_char}"], "expected at least 2"),
        (["--report", "{existing}"], "pass --force"),
        (["--backend", "no-such-backend"], "no-such-backend"),
    ],
)
def test_validate_bad_input_exits_2(bundle: Path, tmp_path: Path, args, message):
    one_char = tmp_path / "one.txt"
    one_char.write_text("x", encoding="utf-8")
    existing = tmp_path / "rep"
    existing.mkdir()
    (existing / "report.json").write_text("{}")
    args = [a.format(one_char=one_char, existing=existing) for a in args]
    result = runner.invoke(
        app, ["validate", str(bundle / "checkpoint"), str(bundle / "model.onnx"), *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert (existing / "report.json").read_text() == "{}"  # not overwritten


def test_pipeline_refuses_to_overwrite_a_bundle(bundle: Path):
    before = (bundle / "model.onnx").read_bytes()
    with pytest.raises(StageFailed, match="pass --force") as e:
        run_pipeline(PipelineOptions(out=bundle, from_checkpoint=bundle / "checkpoint"))
    assert e.value.exit_code == 2
    assert (bundle / "model.onnx").read_bytes() == before


def test_pipeline_failing_stage_stops_and_keeps_earlier_outputs(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """--from a checkpoint, validation out of tolerance: exit 1, exported files kept."""
    import lstm_edge.toolchain.validate as v

    # An unreachable int8 bound (ValidateOptions copies the module's table when built).
    monkeypatch.setattr(v, "TOLERANCES", {**v.TOLERANCES, "int8": Tolerance(min_top1=1.01)})
    out = tmp_path / "b2"
    result = runner.invoke(
        app,
        ["pipeline", "--from", str(bundle / "checkpoint"), "--out", str(out),
         "--validate-steps", "100", "--no-bench"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "stage 'validate' failed" in result.output
    assert (out / "model.onnx").is_file() and (out / "model.int8.onnx").is_file()
    assert (out / "validation" / "report.json").is_file()
    assert not (out / "SUMMARY.md").exists()
    assert not (out / "checkpoint").exists()  # --from: nothing trained


def test_pipeline_unknown_scheme_is_a_usage_error(tmp_path: Path):
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path / "b"), "--scheme", "int4"])
    assert result.exit_code == 2, result.output
    assert "int4" in result.output and "int8-dynamic" in result.output
    assert not (tmp_path / "b").exists()  # refused before anything is written
