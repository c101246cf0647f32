"""scripts/typing_ceiling.py: its ceilings and word bigram, by hand on a tiny text."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lstm_edge.toolchain.typing_eval import word_spans

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "typing_ceiling.py"


def _script():
    spec = importlib.util.spec_from_file_location("typing_ceiling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEXT = "the cat sat.\nan owl("  # "." attaches; "(" costs a keystroke deleting the space
TRAIN = "the cat sat. the cat ran. an owl"


def test_ceilings_count_what_each_accept_saves():
    tc = _script()
    spans = word_spans(TEXT)  # the cat sat an owl
    # Before the first letter: the 2+1 (space), cat 2+1, sat 2+0 ("."), an 1+1, owl 2-1.
    assert tc.ceiling(TEXT, spans, lambda w: True, 0) == 3 + 3 + 2 + 2 + 1
    known = {"the", "cat"}.__contains__
    assert tc.ceiling(TEXT, spans, known, 0) == 6
    # After one letter: the 1+1, cat 1+1.
    assert tc.ceiling(TEXT, spans, known, 1) == 4
    # "owl(" after one letter would save 1 - 1: not accepted; "an" saves 0 + 1.
    assert tc.ceiling(TEXT, spans, {"an", "owl"}.__contains__, 1) == 1


def test_word_bigram_ranks_followers_then_frequency():
    tc = _script()
    model = tc.WordBigram(TRAIN)
    # After "cat": sat and ran follow once each (0.5 * 1/2 + 0.5 * 1/8), above cat and the
    # (0.5 * 2/8); ties in alphabetical order.
    assert model.top("cat", "", 3) == ["ran", "sat", "cat"]
    assert model.top("cat", "s", 3) == ["sat"]
    assert model.top(None, "", 2) == ["cat", "the"]
    spans = word_spans(TEXT)
    # the, cat (follows the), sat (follows cat) before their first letter; after "sat" the
    # strip is the, cat, sat (frequency, then first seen), so "an" comes after its "a"
    # (0 + 1 saved); owl follows an (2 - 1 before "(").
    assert tc.bigram_saved(TEXT, spans, model, 3) == 3 + 3 + 2 + 1 + 1
