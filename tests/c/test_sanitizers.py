"""The C library under gcc's AddressSanitizer and UndefinedBehaviorSanitizer (issue 16,
point 4): hostile model structs, NULL pointers and overflowing sizes return their status
(bad_args_test.c) instead of reading out of bounds or overflowing; generated bundles pass
their API contract under the sanitizers; a generated array shorter than its dimensions is
refused by lstm_edge_check_model."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lstm_edge.exporters import c_codegen as cg
from lstm_edge.runtime.backends.c_build import LIBRARY_DIR
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig

HERE = Path(__file__).resolve().parent
SANITIZE = (
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-g",
    "-O1",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
)
# A sanitizer report on stderr (a report also makes the exit status nonzero).
REPORT = re.compile(r"runtime error|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer")


@pytest.fixture(scope="module", autouse=True)
def _gcc(require_tools):
    require_tools("gcc")


def _build_and_run(
    tmp_path: Path, sources: list[Path], include: Path
) -> subprocess.CompletedProcess:
    exe = tmp_path / "sanitized"
    build = subprocess.run(
        ["gcc", *SANITIZE, f"-I{include}", "-o", str(exe), *map(str, sources), "-lm"],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    return subprocess.run(
        [str(exe)],
        capture_output=True,
        text=True,
        env={"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"},
        timeout=120,
    )


def _assert_clean(run: subprocess.CompletedProcess, want: str) -> None:
    assert not REPORT.search(run.stderr), run.stderr[-4000:]
    assert run.returncode == 0, (run.stdout[-4000:], run.stderr[-4000:])
    assert run.stdout.strip().splitlines()[-1] == want, run.stdout


def test_bad_arguments_return_their_status_under_sanitizers(tmp_path):
    run = _build_and_run(
        tmp_path, [HERE / "bad_args_test.c", LIBRARY_DIR / "lstm_edge.c"], LIBRARY_DIR
    )
    _assert_clean(run, "bad args ok")


def _forecast_config() -> ModelConfig:
    return ModelConfig(
        task="forecast",
        hidden_size=5,
        num_layers=2,
        features=("a", "b", "c"),
        targets=("c", "a"),
        horizon=1,
        feature_mean=(1.0, 2.0, 3.0),
        feature_std=(1.0, 2.0, 3.0),
        target_mean=(3.0, 1.0),
        target_std=(3.0, 1.0),
    )


def _char_lm_config() -> ModelConfig:
    return ModelConfig(vocab=(UNK_CHAR, *"abcdefg ."), embed_size=5, hidden_size=7, num_layers=2)


CASES = {
    "char-lm": (_char_lm_config, "api_test.c"),
    "forecast": (_forecast_config, "api_forecast_test.c"),
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, model_factory):
    """task -> (float artifact, int8 artifact)."""
    _, write_models = model_factory
    return {
        task: write_models(tmp_path_factory.mktemp(task), make(), seed=3)
        for task, (make, _) in CASES.items()
    }


@pytest.mark.parametrize("scheme", [0, 1], ids=["float", "int8"])
@pytest.mark.parametrize("task", list(CASES))
def test_generated_bundles_pass_the_api_contract_under_sanitizers(bundles, tmp_path, task, scheme):
    out = tmp_path / "bundle"
    cg.codegen(bundles[task][scheme], out, cg.CodegenOptions(name="m", steps=50))
    source = (out / "m_model.c").read_text()
    # every array's length reaches the struct, computed by the compiler from the array
    assert "static const float head_bias[] = {" in source
    assert ".n_layers_stored = LSTM_EDGE_COUNT(layers)" in source
    assert ".n_head_bias = LSTM_EDGE_COUNT(head_bias)" in source
    assert "LSTM_EDGE_COUNT(l1_bias) }" in source
    run = _build_and_run(
        tmp_path,
        [HERE / CASES[task][1], out / "m_model.c", out / "lstm_edge.c"],
        out,
    )
    _assert_clean(run, "api ok")


def _drop_last_value(source: str, ident: str) -> str:
    """The generated array `ident` with its last value removed (a truncated flash image)."""
    pattern = re.compile(rf"(static const \w+ {ident}\[\] = \{{\n.*?)(,\s*[^,\s]+)(\n\}};)", re.S)
    shorter, n = pattern.subn(r"\1\3", source, count=1)
    assert n == 1, ident
    return shorter


@pytest.mark.parametrize("ident", ["head_bias", "l1_r_q", "l1_r_scale", "embedding_q"])
def test_a_truncated_generated_array_is_refused_by_check_model(bundles, tmp_path, ident):
    out = tmp_path / "bundle"
    cg.codegen(bundles["char-lm"][1], out, cg.CodegenOptions(name="m", steps=50))
    model_c = out / "m_model.c"
    model_c.write_text(_drop_last_value(model_c.read_text(), ident))
    run = _build_and_run(tmp_path, [HERE / "api_test.c", model_c, out / "lstm_edge.c"], out)
    assert not REPORT.search(run.stderr), run.stderr[-4000:]
    assert run.returncode == 1
    assert "lstm_edge_check_model(m) == LSTM_EDGE_OK" in run.stdout.splitlines()[0], run.stdout
