"""`lstm-edge web` on bad inputs: one-line errors and exit status 2, nothing written; and
what it writes on good ones (the site's files, the engine defaults from the Python engine)."""

from __future__ import annotations

import json

import onnx
import pytest
from typer.testing import CliRunner
from web_support import require, require_module

from lstm_edge.runtime import suggest
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.web import SITE_FILES, WebError, wasm_compiler

runner = CliRunner()


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_missing_model(tmp_path):
    line = one_line_error(
        runner.invoke(app, ["web", str(tmp_path / "no.onnx"), "-o", str(tmp_path / "site")])
    )
    assert "no.onnx does not exist" in line
    assert not (tmp_path / "site").exists()


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a model")
    line = one_line_error(runner.invoke(app, ["web", str(bad), "-o", str(tmp_path / "site")]))
    assert "bad.onnx" in line
    assert not (tmp_path / "site").exists()


def test_a_forecast_model_is_refused(tmp_path):
    from lstm_edge.runtime.config import ModelConfig
    from lstm_edge.toolchain.export import build_onnx
    from lstm_edge.toolchain.model import build_model

    config = ModelConfig(
        task="forecast", hidden_size=4, num_layers=1, features=("a", "b"), targets=("b",),
        feature_mean=(0.0, 1.0), feature_std=(1.0, 2.0), target_mean=(1.0,), target_std=(2.0,),
    )  # fmt: skip
    path = tmp_path / "fc.onnx"
    onnx.save(build_onnx(build_model(config)), path)
    line = one_line_error(runner.invoke(app, ["web", str(path), "-o", str(tmp_path / "site")]))
    assert "'char-lm' model" in line and "'forecast'" in line


def test_an_existing_folder_needs_force(tmp_path, sites):
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    line = one_line_error(runner.invoke(app, ["web", str(sites.float_path), "-o", str(out)]))
    assert "--force" in line
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = runner.invoke(app, ["web", str(sites.int8_path), "-o", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted([*SITE_FILES, "notes.txt"])
    assert (out / "notes.txt").read_text() == "keep me"
    # a folder holding only an earlier site is written again without --force (--serve twice)
    result = runner.invoke(app, ["web", str(sites.float_path), "-o", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["web", str(sites.int8_path), "-o", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "again" / "model.json").read_text())["scheme"] == "int8"
    config = json.loads((out / "model.json").read_text())
    assert config["scheme"] == "int8"
    assert config["engine"]["beam_width"] == suggest.DEFAULT_BEAM_WIDTH
    assert config["engine"]["max_word_len"] == suggest.DEFAULT_MAX_WORD_LEN
    assert set(config["engine"]["attaching_punct"]) == suggest.ATTACHING_PUNCT


def test_int8_full_is_refused_clearly(tmp_path, sites):
    from integer_models import int8_full

    path = int8_full(sites.float_path, tmp_path / "tiny.int8full.onnx")
    line = one_line_error(runner.invoke(app, ["web", str(path), "-o", str(tmp_path / "site")]))
    assert "int8-full" in line and "model.int8.onnx" in line


def test_missing_tools_name_the_debian_packages(monkeypatch, tmp_path, sites):
    monkeypatch.setenv("PATH", str(tmp_path))  # no clang, no wasm-ld
    monkeypatch.delenv("WASM_CC", raising=False)
    out = tmp_path / "site"
    line = one_line_error(runner.invoke(app, ["web", str(sites.float_path), "-o", str(out)]))
    assert "clang not found" in line and "apt-get install clang-19 lld-19 wasi-libc" in line
    assert not out.exists()
    with pytest.raises(WebError, match="apt-get install clang-19 lld-19 wasi-libc"):
        wasm_compiler()
    monkeypatch.setenv("WASI_SYSROOT", str(tmp_path / "nowhere"))
    fake = tmp_path / "wasm-ld"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("WASM_CC", "/usr/bin/clang")
    with pytest.raises(WebError, match="wasi-libc"):
        wasm_compiler()


def test_require_fails_under_ci_and_skips_otherwise(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        require("chromium", False, "apt-get install chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require("chromium", False, "apt-get install chromium")
    require("chromium", True, "unused")  # present: nothing happens


def test_serve_prints_the_url_serves_the_site_and_stops_on_ctrl_c(tmp_path, sites):
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    out = tmp_path / "site"
    # Ctrl-C as an interactive shell delivers it: a shell without job control starts
    # background commands with SIGINT ignored, and Python then keeps it ignored, so a suite
    # run in the background (`... &`) would otherwise wait out the timeout below.
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstm_edge.toolchain", "web", str(sites.float_path), "-o",
         str(out), "--serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        url = None
        for line in proc.stdout:  # type: ignore[union-attr]
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if found:
                url = found.group(0)
                break
        assert url, proc.stderr.read()  # type: ignore[union-attr]
        with urllib.request.urlopen(url + "model.wasm", timeout=10) as r:
            assert r.headers["Content-Type"] == "application/wasm"
            assert r.read() == (out / "model.wasm").read_bytes()
        with urllib.request.urlopen(url, timeout=10) as r:
            assert b'<textarea id="text"' in r.read()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    assert code == 0


def test_serve_on_a_busy_port_is_refused_before_anything_is_written(tmp_path, sites):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = tmp_path / "site"
        result = runner.invoke(
            app, ["web", str(sites.float_path), "-o", str(out), "--serve", "--port", str(port)]
        )
    line = one_line_error(result)
    assert f"cannot serve on 127.0.0.1:{port}" in line
    assert not out.exists()


def test_the_page_ships_as_package_data():
    """pyproject.toml's package data covers every asset (one flat folder), so an installed
    lstm-edge can write the site."""
    from pathlib import Path

    from lstm_edge.toolchain.web import ASSETS, SHIM, STATIC_FILES

    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"lstm_edge.toolchain" = ["web_assets/*"]' in pyproject.splitlines()
    assert sorted(p.name for p in ASSETS.iterdir()) == sorted([*STATIC_FILES, SHIM])


def test_the_relaxed_module_is_written_where_clang_can_build_it(tmp_path, sites, monkeypatch):
    """clang 19 builds model-relaxed.wasm and model.json names it; an older clang writes
    model.wasm alone (and drops an earlier site's relaxed module, which model.json no
    longer names)."""
    import lstm_edge.toolchain.web as web

    require_module(sites, web.RELAXED_WASM_FILE)
    out = tmp_path / "site"
    site = web.write_site(sites.int8_path, out)
    assert site.relaxed and (out / web.RELAXED_WASM_FILE).is_file()
    assert json.loads((out / "model.json").read_text())["wasm_relaxed"] == web.RELAXED_WASM_FILE
    monkeypatch.setattr(web, "RELAXED_MIN_CLANG", 1000)  # as an old clang
    site = web.write_site(sites.int8_path, out)
    assert not site.relaxed and not (out / web.RELAXED_WASM_FILE).exists()
    assert json.loads((out / "model.json").read_text())["wasm_relaxed"] is None
    assert sorted(p.name for p in out.iterdir()) == sorted(
        n for n in SITE_FILES if n != web.RELAXED_WASM_FILE
    )
