"""examples/predictive_typing runs on an int8 model with the runtime alone (no torch)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
from example_probe import EXAMPLES, run_example

from lstm_edge.runtime import Suggester, load

EXAMPLE = EXAMPLES / "predictive_typing" / "complete.py"
LINES = ["Tabac c", "Tabac ca", "", "ab€ T", "x" * 40]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return run_example(EXAMPLE, *args, stdin=stdin)


def test_completes_lines_from_stdin_on_int8(tiny):
    result = run(str(tiny.int8_path), "--json", "-k", "3", stdin="\n".join(LINES) + "\n")
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["text"] for o in outputs] == LINES
    model = load(tiny.int8_path, backend="ort")
    for out in outputs:
        s = Suggester(model)
        s.type(out["text"])
        expected = s.suggestions(3)
        assert [x["word"] for x in out["suggestions"]] == [x.word for x in expected]
        # The example reuses its engine across lines (one prefill of the new characters),
        # the reference pastes each line: same math, float32 rounding in a different order.
        np.testing.assert_allclose(
            [x["probability"] for x in out["suggestions"]],
            [x.probability for x in expected],
            rtol=1e-5,
        )
    assert outputs[-1]["suggestions"] == []  # a 40-letter "word": nothing to complete


def test_plain_output_and_bad_model(tmp_path, tiny):
    result = run(str(tiny.int8_path), "-k", "2", stdin="Tabac c\n")
    assert result.returncode == 0, result.stderr
    s = Suggester(load(tiny.int8_path, backend="ort"))
    s.type("Tabac c")
    first = s.suggestions(2)[0]
    assert result.stdout.startswith(f"Tabac c|{first.completion} {first.probability:.1%}")
    missing = run(str(tmp_path / "none.onnx"))
    assert missing.returncode == 2 and "none.onnx" in missing.stderr


def test_bad_arguments_exit_2_without_a_traceback(tiny):
    for args in (["-k", "0"], ["--backend", "no-such"]):
        result = run(str(tiny.int8_path), *args, stdin="Tabac c\n")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and args[0] in result.stderr
