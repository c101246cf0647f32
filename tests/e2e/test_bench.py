"""`lstm-edge bench` on the tiny bundle: every section present, positive, ratios consistent.

No timing assertions: only that the numbers exist and relate to each other as stated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lstm_edge.runtime as rt
from lstm_edge.exporters.onnx_export import torch_to_onnx_gates
from lstm_edge.toolchain.bench import onnx_to_torch_gates, torch_from_weights
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.cli import app


@pytest.fixture(scope="module")
def bench_json(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = CliRunner().invoke(
        app,
        ["bench", str(bundle / "model.onnx"), str(bundle / "model.int8.onnx"),
         "-b", "ort", "-b", "numpy", "-b", "c", "--repeats", "2", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "per-step latency" in result.output and "file size" in result.output
    return json.loads(out.read_text())


def test_latency_rows_and_ratios(bench_json: dict, bundle: Path):
    rows = bench_json["latency"]
    names = [r["name"] for r in rows]
    for backend in ("ort", "numpy"):
        assert names.count(f"lstm_edge.runtime ({backend})") == 2  # one per artifact
    assert names.count("onnxruntime session.run loop") == 2
    for name in ("torch eager", "torch eager, oneDNN off", "BLAS matvec limit"):
        assert names.count(name) == 1
    for r in rows:
        assert 0 < r["p10_us"] <= r["median_us"] <= r["p90_us"]
    by = {(r["name"], r["artifact"] and Path(r["artifact"]).name): r for r in rows}
    torch_us = by[("torch eager", None)]["median_us"]
    matvec_us = by[("BLAS matvec limit", None)]["median_us"]
    for r in rows:
        # ratios are medians over the baselines' medians (rel: float rounding only)
        assert r["vs_torch"] == pytest.approx(r["median_us"] / torch_us, rel=1e-9)
        assert r["vs_matvec"] == pytest.approx(r["median_us"] / matvec_us, rel=1e-9)
        if r["artifact"] is None:
            assert r["vs_session_run"] is None
        else:
            plain = by[("onnxruntime session.run loop", Path(r["artifact"]).name)]
            assert r["vs_session_run"] == pytest.approx(r["median_us"] / plain["median_us"])


def test_runtime_overhead_columns(bench_json: dict):
    """The c backend's Model.step against the C step alone, and the ort backend against a
    plain session.run loop at the same thread count, each on its own artifact."""
    rows = bench_json["latency"]
    by = {(r["name"], r["artifact"] and Path(r["artifact"]).name): r for r in rows}
    threads = bench_json["settings"]["threads"]
    for artifact in ("model.onnx", "model.int8.onnx"):
        c_row = by[("lstm_edge.runtime (c)", artifact)]
        direct = by[("C library step (direct call)", artifact)]
        assert c_row["vs_c_step"] == pytest.approx(c_row["median_us"] / direct["median_us"])
        assert c_row["above_c_step_us"] == pytest.approx(c_row["median_us"] - direct["median_us"])
        ort_row = by[("lstm_edge.runtime (ort)", artifact)]
        plain = by[(f"onnxruntime session.run loop, {threads} thread(s)", artifact)]
        assert ort_row["vs_session_run_same_threads"] == pytest.approx(
            ort_row["median_us"] / plain["median_us"]
        )
    others = [r for r in rows if r["backend"] != "c" or r["kind"] != "runtime"]
    assert all(r["vs_c_step"] is None for r in others)


def test_throughput_process_and_sizes(bench_json: dict, bundle: Path):
    thr = bench_json["throughput"]
    runtime_modes = {
        (r["artifact"] and Path(r["artifact"]).name, r["mode"], r["tokens_per_call"])
        for r in thr
        if r["name"].startswith("lstm_edge.runtime")
    }
    for artifact in ("model.onnx", "model.int8.onnx"):
        for n in (1, 8, 64):
            assert (artifact, "streams", n) in runtime_modes
        assert (artifact, "prefill", 512) in runtime_modes
    for r in thr:
        rate = r["tokens_per_call"] / (r["median_us"] * 1e-6)
        assert r["median_tokens_per_s"] == pytest.approx(rate, rel=1e-9)
        assert 0 < r["p10_tokens_per_s"] <= r["median_tokens_per_s"] <= r["p90_tokens_per_s"]
    procs = {r["name"]: r for r in bench_json["process"]}
    assert any(n.startswith("runtime (ort)") for n in procs)
    assert any(n.startswith("torch") for n in procs)
    for r in procs.values():
        assert r["median_wall_s"] > 0 and r["import_s"] > 0 and r["peak_rss_mb"] > 0
    sizes = {Path(s["artifact"]).name: s for s in bench_json["sizes"]}
    for name in ("model.onnx", "model.int8.onnx"):
        assert sizes[name]["bytes"] == (bundle / name).stat().st_size
    assert sizes["model.int8.onnx"]["vs_float"] == pytest.approx(
        sizes["model.int8.onnx"]["bytes"] / sizes["model.onnx"]["bytes"]
    )
    assert bench_json["model"]["hidden"] == 32 and bench_json["machine"]["cpus"] > 0


def test_gate_permutation_round_trips():
    w = np.arange(4 * 3 * 2).reshape(12, 2)
    assert np.array_equal(onnx_to_torch_gates(torch_to_onnx_gates(w)), w)
    assert not np.array_equal(torch_to_onnx_gates(w), w)  # the permutation is not identity


def test_torch_baseline_from_artifact_weights_equals_the_checkpoint(bundle: Path):
    """Without --checkpoint the torch baseline is rebuilt from the float artifact."""
    ckpt = load_checkpoint(bundle / "checkpoint")
    artifact = rt.load(bundle / "model.onnx", backend="numpy").artifact
    rebuilt = torch_from_weights(artifact.config, artifact.weights)
    for name, value in ckpt.model.state_dict().items():
        # the same float32 values moved around: bit-identical
        assert torch.equal(rebuilt.state_dict()[name], value), name


def test_existing_json_is_refused_before_the_bench(tmp_path: Path):
    existing = tmp_path / "bench.json"
    existing.write_text("keep me")
    # The artifact does not even exist: the output is checked first, before any work.
    result = CliRunner().invoke(
        app, ["bench", str(tmp_path / "model.onnx"), "--json", str(existing)]
    )
    assert result.exit_code == 2, result.output
    assert "--force" in " ".join(result.output.split())
    assert existing.read_text() == "keep me"


def test_named_backends_skip_what_they_cannot_run(bundle: Path, tmp_path: Path):
    from lstm_edge.exporters.quantize import quantize_file

    dyn = tmp_path / "model.int8-dynamic.onnx"
    quantize_file(bundle / "model.onnx", dyn, "int8-dynamic")
    out = tmp_path / "bench.json"
    args = ["bench", str(bundle / "model.onnx"), str(dyn), "--repeats", "1"]
    result = CliRunner().invoke(app, [*args, "-b", "numpy", "-b", "ort", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = {(r["name"], Path(r["artifact"]).name) for r in json.loads(out.read_text())["latency"]
            if r["artifact"]}  # fmt: skip
    assert ("lstm_edge.runtime (ort)", dyn.name) in rows
    assert ("lstm_edge.runtime (numpy)", "model.onnx") in rows
    assert ("lstm_edge.runtime (numpy)", dyn.name) not in rows  # numpy has no contrib ops
    assert "skipped" in result.output
    # A named backend that can run none of the artifacts is an error naming it.
    result = CliRunner().invoke(app, ["bench", str(dyn), "-b", "numpy", "--repeats", "1"])
    assert result.exit_code == 2
    assert "numpy" in result.output and "Traceback" not in result.output
