"""`lstm-edge demo` driven the way a person uses it: through a pseudo-terminal.

pexpect runs the real command in a pty; pyte plays the terminal, so the assertions read
the screen a person would see (editor line, suggestion strip, latency line).
"""

from __future__ import annotations

import os
import sys
import time

import pexpect
import pyte
import pytest
from typer.testing import CliRunner

from lstm_edge.runtime import Suggester
from lstm_edge.toolchain.cli import app
from lstm_edge.toolchain.demo import format_probability

COLS, ROWS = 100, 24
F2 = "\x1bOQ"  # what xterm sends for F2
# Generous: the child imports the CLI and onnx/numpy on a shared, busy 2-core machine.
TIMEOUT = 60.0


class Terminal:
    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
        self.child = pexpect.spawn(
            sys.executable, ["-m", "lstm_edge.toolchain", *args], env=env, dimensions=(ROWS, COLS)
        )
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_for(self, predicate, what: str) -> list[str]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            lines = self.lines()
            if predicate(lines):
                return lines
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.2))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                break
        raise AssertionError(
            f"screen never showed {what} (or the app exited):\n" + "\n".join(self.lines())
        )


def strip_shows(suggestions):
    """The strip line lists these suggestions, in order, with their probabilities."""
    parts = [f"{s.word} {format_probability(s.probability)}" for s in suggestions]

    def check(lines: list[str]) -> bool:
        strip = next((line for line in lines if "Tab/F1" in line and "%" in line), "")
        positions = [strip.find(p) for p in parts]
        return all(p >= 0 for p in positions) and positions == sorted(positions)

    return check


def expected_after(model, text: str):
    s = Suggester(model)
    for ch in text:  # the demo sees one keystroke at a time
        s.type(ch)
    return s.suggestions(3)


def editor_line(lines: list[str]) -> str:
    return lines[1]  # line 0 is the title


def test_type_accept_and_quit(tiny, numpy_model):
    term = Terminal(["demo", str(tiny.float_path), "--backend", "numpy"])
    try:
        term.wait_for(lambda ls: "lstm-edge demo" in ls[0], "the title")
        term.wait_for(strip_shows(expected_after(numpy_model, "")), "next-word suggestions")

        term.child.send("Tabac c")
        shown = expected_after(numpy_model, "Tabac c")
        lines = term.wait_for(strip_shows(shown), "suggestions for 'Tabac c'")
        assert editor_line(lines) == "Tabac c"
        assert "keystroke" in lines[-1] and " ms " in lines[-1]

        term.child.send("\t")  # Tab accepts the first suggestion: the word and a space
        text = "Tabac c" + shown[0].completion + " "
        # The screen shows no trailing space; the next-word strip shows it was inserted.
        term.wait_for(lambda ls: editor_line(ls) == text.rstrip(), f"{text!r} after Tab")
        term.wait_for(strip_shows(expected_after(numpy_model, text)), "next-word suggestions")

        term.child.send("ab")
        second = expected_after(numpy_model, text + "ab")[1]
        term.child.send(F2)  # F2 accepts the second suggestion
        text += "ab" + second.completion + " "
        lines = term.wait_for(lambda ls: editor_line(ls) == text.rstrip(), f"{text!r} after F2")
        term.wait_for(strip_shows(expected_after(numpy_model, text)), "the new suggestions")

        term.child.send(".")  # punctuation replaces the space the accept added
        text = text[:-1] + "."
        term.wait_for(lambda ls: editor_line(ls) == text, f"{text!r} after '.'")

        term.child.sendcontrol("d")
        term.child.expect(pexpect.EOF, timeout=TIMEOUT)
        assert text in term.child.before.decode()  # the text is printed on exit
        term.child.wait()
        assert term.child.exitstatus == 0
    finally:
        term.child.close(force=True)


def test_no_default_model_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "runs/default/model.int8.onnx does not exist" in out
    assert "lstm-edge pipeline --out runs/default" in out


def test_needs_a_terminal(tiny):
    result = CliRunner().invoke(app, ["demo", str(tiny.int8_path)])
    assert result.exit_code == 2
    assert "interactive terminal" in " ".join(result.output.split())


@pytest.mark.parametrize("k", ["0", "4"])
def test_k_out_of_range(tiny, k):
    assert CliRunner().invoke(app, ["demo", str(tiny.int8_path), "-k", k]).exit_code == 2
