"""engine.js (run in Node on each of the site's modules) suggests what the Python engine
(runtime/suggest.py on the numpy backend) suggests: the same words in the same order, the
same probabilities (relative 1e-3), the same inserted text and the same number of model
calls, over scripts of typing, pasting, backspacing, syncing and accepting that cover
capitals, characters outside the vocabulary, the empty text, accepted words and the
punctuation that replaces their space."""

from __future__ import annotations

import pytest
from node_engine import run_node
from web_support import MODULES, require_module, require_node

from lstm_edge.runtime import Suggester, load

# Each script is a list of [op, argument]; "accept" takes the index of the last suggestions.
SCRIPTS = {
    "empty text: next-word slots": [["suggest", 3]],
    "a word prefix": [["type", "Tab"], ["suggest", 3]],
    "accept adds a space; '.' replaces it": [
        ["type", "Tabac ca"],
        ["suggest", 3],
        ["accept", 0],
        ["text", None],
        ["replaces", "."],
        ["suggest", 3],
        ["type", "."],
        ["text", None],
        ["suggest", 3],
    ],
    "accept the complete-word slot, then a letter keeps the space": [
        ["type", "cab"],
        ["suggest", 3],
        ["accept", 0],
        ["replaces", "a"],
        ["type", "a"],
        ["text", None],
        ["suggest", 3],
    ],
    "capitals fall back to the vocabulary's case": [["type", "TABAC C"], ["suggest", 3]],
    "characters the vocabulary cannot spell": [
        ["type", "xyz é"],
        ["suggest", 3],
        ["type", " 😀 ba"],
        ["suggest", 3],
        ["type", "ß"],
        ["suggest", 3],
    ],
    "paste, backspace into it, type again": [
        ["type", "Tabac cab ab bacab.\nabcab Tab"],
        ["suggest", 5],
        ["backspace", 6],
        ["suggest", 3],
        ["type", "b"],
        ["suggest", 3],
    ],
    "sync as an editor does": [
        ["sync", "ab cab"],
        ["suggest", 3],
        ["sync", "ab ca"],
        ["suggest", 3],
        ["sync", "ab cabac ab"],
        ["suggest", 3],
        ["sync", ""],
        ["suggest", 3],
    ],
    "a run longer than max_word_len has no completion": [["type", "ab" * 13], ["suggest", 3]],
    "k larger than the candidates": [["type", "T"], ["suggest", 12]],
}


def python_script(model, ops: list, options: dict) -> dict:
    """What node_runner.mjs does, on the Python engine."""
    s = Suggester(model, **options)
    results: list = []
    last: list = []
    for op, arg in ops:
        if op == "type":
            s.type(arg)
        elif op == "sync":
            s.sync(arg)
        elif op == "backspace":
            s.backspace(arg)
        elif op == "accept":
            results.append(s.accept(last[arg]))
        elif op == "replaces":
            results.append(s.replaces_space(arg))
        elif op == "text":
            results.append(s.text)
        elif op == "suggest":
            last = s.suggestions(arg)
            results.append([[x.word, x.completion, x.probability] for x in last])
    return {"results": results, "step_calls": s.step_calls}


def assert_same(js: dict, py: dict) -> None:
    assert js["step_calls"] == py["step_calls"]
    assert len(js["results"]) == len(py["results"])
    for got, want in zip(js["results"], py["results"], strict=True):
        if isinstance(want, list):  # suggestions
            assert [g[:2] for g in got] == [w[:2] for w in want]
            for g, w in zip(got, want, strict=True):
                assert g[2] == pytest.approx(w[2], rel=1e-3)
        else:
            assert got == want


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("scheme", ["float", "int8"])
@pytest.mark.parametrize("options", [{}, {"auto_space": False}, {"beam_width": 2}])
def test_engine_js_equals_the_python_engine(sites, scheme, options, module):
    node = require_node()
    require_module(sites, module)
    path = sites.float_path if scheme == "float" else sites.int8_path
    site = sites.float_site if scheme == "float" else sites.int8_site
    model = load(path, backend="numpy")
    js_options = {
        {"auto_space": "autoSpace", "beam_width": "beamWidth"}[k]: v for k, v in options.items()
    }
    for name, ops in SCRIPTS.items():
        if options.get("auto_space") is False and "accept" in name:
            continue  # those scripts assert phone behaviour (covered with the default)
        js = run_node(node, site, {"mode": "script", "options": js_options, "ops": ops}, module)
        py = python_script(model, ops, options)
        assert py["results"], name
        try:
            assert_same(js, py)
        except AssertionError as e:
            raise AssertionError(f"{name}: js {js} != python {py}") from e


def test_the_scripts_exercise_what_they_name(sites):
    """Guard against a script that tests nothing: the Python engine's answers show the
    behaviours (next-word slots, a space replaced, a complete-word slot, no completion)."""
    model = load(sites.float_path, backend="numpy")
    py = {name: python_script(model, ops, {})["results"] for name, ops in SCRIPTS.items()}
    assert len(py["empty text: next-word slots"][0]) == 3
    accepted = py["accept adds a space; '.' replaces it"]
    assert accepted[1].endswith(" ") and accepted[2] == "Tabac ca" + accepted[1]
    assert accepted[3] is True and accepted[5] == accepted[2][:-1] + "."
    complete = py["accept the complete-word slot, then a letter keeps the space"]
    assert complete[0][0][:2] == ["cab", ""] and complete[1] == " " and complete[2] is False
    assert complete[3] == "cab a"
    assert py["a run longer than max_word_len has no completion"] == [[]]
    assert all(py["characters the vocabulary cannot spell"])


def test_word_characters_are_pythons(sites):
    """isWordChar (a Unicode property regex) agrees with is_word_char (str.isalnum) on
    every assigned code point below U+3000 and a sample above (letters, digits, marks,
    punctuation, symbols of many scripts; emoji)."""
    import unicodedata

    from lstm_edge.runtime.suggest import is_word_char

    node = require_node()
    points = [*range(0x20, 0x3000), *range(0xAC00, 0xAC40), *range(0x1F600, 0x1F610), 0x10400]
    chars = "".join(chr(p) for p in points if unicodedata.category(chr(p)) not in ("Cn", "Cs"))
    got = run_node(node, sites.float_site, {"mode": "word_chars", "chars": chars})
    want = [is_word_char(ch) for ch in chars]
    differ = [f"U+{ord(c):04X}" for c, g, w in zip(chars, got, want, strict=True) if g != w]
    assert not differ, differ[:20]
    assert sum(want) > 1000  # letters and digits of many scripts, not a trivial sample
