"""`lstm-edge codegen`: sanitized names, C that compiles with -Werror on every compiler at
hand, the C API's contract (api_test.c), the host check against numpy and torch, the
footprint, and the CLI's exit statuses."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lstm_edge.exporters import c_codegen as cg
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.backends.c_source import C_RESERVED, MAX_NAME, c_string, sanitize_name
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig
from lstm_edge.runtime.tasks.char_lm import SAMPLE_TEXT
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.codegen import codegen as tc_codegen

HERE = Path(__file__).resolve().parent
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@pytest.fixture(scope="module", autouse=True)
def _compiler(require_tools):
    require_tools("cc")


# ---- names and literals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ('my "model" */\nint', "my_model_int"),
        ("int", "m_int"),
        ("while", "m_while"),
        ("2x256", "m_2x256"),
        ("lstm_edge", "m_lstm_edge"),
        ("__init__", "init"),
        ("", "model"),
        ("*/", "model"),
        ("m.int8", "m_int8"),
        ("café", "caf"),
    ],
)
def test_sanitize_name_examples(raw, want):
    assert sanitize_name(raw) == want


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_sanitize_name_always_a_safe_identifier(raw):
    name = sanitize_name(raw)
    assert IDENT.fullmatch(name)
    assert name not in C_RESERVED
    assert len(name) <= MAX_NAME
    assert not name.lower().startswith("lstm_edge")


def _unescape(literal: str) -> bytes:
    body = literal[1:-1]
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), body).encode("latin-1")


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_c_string_escapes_everything_unsafe(text):
    literal = c_string(text)
    body = literal[1:-1]
    assert not re.search(r'["?\n\r]|\*/', body)
    assert re.fullmatch(r"([^\\]|\\[0-7]{3})*", body)  # a backslash only starts an octal escape
    assert _unescape(literal) == text.encode("utf-8")


# ---- generated C ----------------------------------------------------------------------------


def _compilers() -> list[str]:
    # Fall back to cc (the fixture requires it) so the loop below never runs zero times.
    return [c for c in ("gcc", "clang") if shutil.which(c)] or ["cc"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, model_factory):
    """A model whose name and vocabulary are made of what breaks naive C generation."""
    _, write_models = model_factory
    vocab = (UNK_CHAR, '"', "\\", "*", "/", "?", "\n", "\t", "a", "é", "'", "%")
    config = ModelConfig(vocab=vocab, embed_size=5, hidden_size=7, num_layers=1)
    folder = tmp_path_factory.mktemp("hostile")
    return write_models(folder, config, seed=3)


@pytest.mark.parametrize("which", [0, 1], ids=["float", "int8"])
def test_hostile_names_compile_with_werror_and_check(hostile, tmp_path, which):
    out = tmp_path / "bundle"
    report = cg.codegen(
        hostile[which],
        out,
        cg.CodegenOptions(name='int "x" */\n/* y', steps=200, check=True),
    )
    assert report.name == "int_x_y"
    assert report.passed, report.checks
    assert report.checks[0].steps == 200
    header = (out / "int_x_y_model.h").read_text()
    assert "#define INT_X_Y_VOCAB 12" in header
    # The vocabulary arrives intact: decode the generated string literals.
    source = (out / "int_x_y_model.c").read_text()
    vocab_block = source.split("int_x_y_vocab[INT_X_Y_VOCAB] = {")[1]
    literals = re.findall(r'"(?:[^"\\]|\\[0-7]{3})*"', vocab_block)
    assert [_unescape(s).decode() for s in literals] == list(
        read_artifact(hostile[which]).config.vocab
    )


@pytest.mark.parametrize("which", ["float_path", "int8_path"])
def test_api_contract_on_every_compiler(tiny, tmp_path, which):
    out = tmp_path / "bundle"
    cg.codegen(getattr(tiny, which), out, cg.CodegenOptions(name="tiny", steps=300))
    for cc in _compilers():
        exe = tmp_path / f"api_{cc}"
        build = subprocess.run(
            [cc, *STRICT, "-O2", f"-I{out}", "-o", str(exe), str(HERE / "api_test.c"),
             str(out / "tiny_model.c"), str(out / "lstm_edge.c"), "-lm"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr
        run = subprocess.run([str(exe)], capture_output=True, text=True)
        assert run.returncode == 0 and run.stdout.strip() == "api ok", run.stdout


def test_makefile_builds_the_example(tiny, tmp_path, require_tools):
    require_tools("make")
    out = tmp_path / "bundle"
    cg.codegen(tiny.int8_path, out, cg.CodegenOptions(name="tiny", steps=50))
    (out / "tiny").unlink()
    subprocess.run(["make", "-s", "-C", str(out)], check=True, capture_output=True)
    run = subprocess.run([str(out / "tiny")], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines()[-1] == "ok 50"


def test_footprint_counts_every_array(tiny, tmp_path):
    cfg = tiny.config
    v, e, h = cfg.vocab_size, cfg.embed_size, cfg.hidden_size
    report = cg.codegen(tiny.int8_path, tmp_path / "b", cg.CodegenOptions(steps=10))
    int8 = v * e + 4 * v  # embedding rows + scales
    int8 += (4 * h * e + 4 * 4 * h) + (4 * h * h + 4 * 4 * h) + 4 * 4 * h  # layer 0 W, R, bias
    int8 += (4 * h * h + 4 * 4 * h) * 2 + 4 * 4 * h  # layer 1
    int8 += h * v + 4 * v + 4 * v  # head weight, its scales, bias
    assert report.footprint.weight_bytes == int8
    assert report.footprint.state_bytes == 4 * 2 * 2 * h
    assert report.footprint.scratch_bytes == 4 * (8 * h + e)
    header = next(tmp_path.glob("b/*_model.h")).read_text()
    assert f"_WEIGHT_BYTES {int8}\n" in header


def test_check_against_torch_with_a_checkpoint(tmp_path, model_factory):
    from lstm_edge.toolchain.checkpoint import save_checkpoint
    from lstm_edge.toolchain.data import (
        VocabOptions,
        build_vocab,
        data_record,
        load_corpus,
        split_corpus,
    )

    tiny_model, _ = model_factory
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("the cat sat on the mat, then ran off to see a dog. " * 60)
    corpus = load_corpus(corpus_file)
    split = split_corpus(len(corpus.text))
    vocab = build_vocab(split.text(corpus.text, "train"), VocabOptions())
    config = ModelConfig(vocab=vocab, embed_size=8, hidden_size=12, num_layers=2)
    model = tiny_model(config, seed=5)
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, model, data_record(corpus, split, vocab, VocabOptions()))
    from lstm_edge.toolchain.export import build_onnx

    path = tmp_path / "m.onnx"
    path.write_bytes(build_onnx(model).SerializeToString())
    report = tc_codegen(path, tmp_path / "b", cg.CodegenOptions(check=True, steps=300), ckpt)
    assert [c.against for c in report.checks] == ["numpy", "torch"]
    assert report.passed, report.checks
    assert "held-out" in report.stream_source


# ---- CLI ------------------------------------------------------------------------------------


def _text(result) -> str:
    """CLI output with rich's line wrapping undone (it breaks long lines at any width)."""
    return " ".join(result.output.split())


def test_cli_codegen_check_passes_then_refuses_to_overwrite(tiny, tmp_path):
    runner = CliRunner()
    args = ["codegen", str(tiny.int8_path), "-o", str(tmp_path / "b"), "--check", "--steps", "100"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "pass" in _text(first) and "flash: weights" in _text(first)
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "--force" in _text(again)
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output


def test_cli_codegen_failed_check_exits_1(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(cg, "C_VS_NUMPY_TOLERANCE", -1.0)  # no result can be within it
    result = CliRunner().invoke(
        app, ["codegen", str(tiny.float_path), "-o", str(tmp_path / "b"), "--check"]
    )
    assert result.exit_code == 1, result.output
    assert "FAIL" in _text(result)


def test_cli_codegen_refuses_int8_dynamic(tiny, tmp_path):
    from lstm_edge.exporters.quantize import quantize_file

    dyn = tmp_path / "dyn.onnx"
    quantize_file(tiny.float_path, dyn, "int8-dynamic")
    result = CliRunner().invoke(app, ["codegen", str(dyn), "-o", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "int8-dynamic" in _text(result) and "no C form" in _text(result)
    assert not (tmp_path / "b").exists()


def test_stream_ids_are_the_sample_text(tiny):
    stream = cg.builtin_stream(tiny.config, 50)
    ids, source = stream.inputs, stream.source
    assert source == "built-in sample text" and stream.torch_outputs is None
    lookup = {ch: i for i, ch in enumerate(tiny.config.vocab)}
    want = np.array([lookup.get(ch, 0) for ch in SAMPLE_TEXT[:50]])
    np.testing.assert_array_equal(ids, want)


@pytest.mark.parametrize("check", [False, True])
def test_codegen_without_checkpoint_imports_no_torch(tiny, tmp_path, check):
    """`lstm-edge codegen` of an artifact (no --checkpoint) runs without torch: the CLI
    path in a fresh interpreter, then a look at what it imported."""
    import json
    import sys
    import textwrap

    args = ["codegen", str(tiny.int8_path), "-o", str(tmp_path / "b"), *(["--check"] * check)]
    code = f"""
        import json, sys
        from typer.testing import CliRunner
        from lstm_edge.toolchain.cli import app
        result = CliRunner().invoke(app, {args!r})
        print(json.dumps([result.exit_code, "torch" in sys.modules]))
        """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [0, False]
