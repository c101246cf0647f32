"""Phone-keyboard behaviour of the engine: accept inserts the word and a space, attaching
punctuation replaces that space, the word typed so far is a slot, next words before the
first letter; and the earlier no-space convention kept as an option."""

from __future__ import annotations

import numpy as np
import pytest
from typing_support import BOUNDARIES, VOCAB

from lstm_edge.runtime import InputError, Suggester
from lstm_edge.runtime.suggest import Suggestion

TEXT = "Tabac cab. abcab bacab ab Tabac\ncab abcab bac. Tab cab\n"


def _same(a: list[Suggestion], b: list[Suggestion]) -> None:
    assert [x.word for x in a] == [x.word for x in b]
    np.testing.assert_allclose([x.probability for x in a], [x.probability for x in b], rtol=1e-5)


def test_accept_inserts_the_rest_of_the_word_and_a_space(numpy_model):
    s = Suggester(numpy_model)
    s.type("ab ca")
    pick = next(x for x in s.suggestions(3) if x.completion)
    assert s.accept(pick) == pick.completion + " "
    assert s.text == "ab " + pick.word + " "
    # The state is that of the text typed by hand: same next-word slots.
    by_hand = Suggester(numpy_model)
    by_hand.type(s.text)
    _same(s.suggestions(3), by_hand.suggestions(3))
    assert all(x.word == x.completion for x in s.suggestions(3))  # next words: no prefix


def test_no_space_convention_inserts_the_rest_only(numpy_model):
    s = Suggester(numpy_model, auto_space=False)
    s.type("ab ca")
    pick = s.suggestions(3)[0]
    assert s.accept(pick) == pick.completion and s.text == "ab " + pick.word


@pytest.mark.parametrize("ch", [".", ",", "!", "?", ";", ":", ")"])
def test_attaching_punctuation_replaces_the_accepted_space(numpy_model, ch):
    s = Suggester(numpy_model)
    s.type("Tab")
    s.accept(Suggestion("Tabac", "ac", 0.5))
    assert s.replaces_space(ch)
    s.type(ch)
    assert s.text == "Tabac" + ch
    assert not s.replaces_space(ch)  # once only
    by_hand = Suggester(numpy_model)
    by_hand.type("Tabac" + ch)
    np.testing.assert_allclose(s.next_char_logprobs(), by_hand.next_char_logprobs(), rtol=1e-6)


@pytest.mark.parametrize(
    ("edit", "typed", "expected"),
    [
        (lambda s: None, "(", "cab ("),  # not attaching punctuation: the space stays
        (lambda s: (s.backspace(1), s.type(" ")), ".", "cab ."),  # a space the user typed
        (lambda s: s.type("a"), ".", "cab a."),
        (lambda s: s.sync(s.text), ".", "cab."),  # an editor re-syncing the same text
    ],
)
def test_only_punctuation_right_after_the_accept_replaces(numpy_model, edit, typed, expected):
    s = Suggester(numpy_model)
    s.type("ca")
    s.accept(Suggestion("cab", "b", 0.5))
    edit(s)
    s.type(typed)
    assert s.text == expected


def test_sync_sets_the_text_as_given(numpy_model):
    s = Suggester(numpy_model)
    s.type("ca")
    s.accept(Suggestion("cab", "b", 0.5))
    s.sync("cab .")  # an editor that already has the text decides; no replacement
    assert s.text == "cab ."


def test_the_word_typed_so_far_is_a_slot(numpy_model):
    s = Suggester(numpy_model)
    s.type("ab Tabac")
    lp = s.next_char_logprobs()
    boundary = [VOCAB.index(ch) for ch in BOUNDARIES]
    p_end = float(np.exp(np.logaddexp.reduce(lp[boundary])))
    got = s.suggestions(3)
    slot = [x for x in got if not x.completion]
    assert slot and slot[0].word == "Tabac"
    assert slot[0].probability == pytest.approx(p_end, rel=1e-9)
    # Accepting it inserts only the space.
    assert s.accept(slot[0]) == " " and s.text == "ab Tabac "
    # No such slot in the no-space convention, nor before a word's first letter.
    old = Suggester(numpy_model, auto_space=False)
    old.type("ab Tabac")
    assert all(x.completion for x in old.suggestions(3))
    assert all(x.completion for x in Suggester(numpy_model).suggestions(3))


def test_one_search_gives_both_strips(numpy_model):
    """eval-typing reads the no-space strip off the phone search (without its slot): it
    must equal the no-space engine's own strip at every position."""
    phone, old = Suggester(numpy_model), Suggester(numpy_model, auto_space=False)
    for i in range(len(TEXT) + 1):
        found = phone.suggestions(4, complete_word=True)
        _same([x for x in found if x.completion][:3], old.suggestions(3))
        if i < len(TEXT):
            phone.type(TEXT[i])
            old.type(TEXT[i])


@pytest.mark.parametrize("text", ["T", "Tab. T", "ab.\nT", "xyz", "Ünïcödé ab", "TABAC "])
def test_capitals_and_words_the_vocabulary_cannot_spell(numpy_model, text):
    s = Suggester(numpy_model)
    s.type(text)
    got = s.suggestions(3)
    assert all(0 < x.probability <= 1 for x in got)
    for x in got:
        s2 = Suggester(numpy_model)
        s2.type(text)
        s2.accept(x)
        assert s2.text == text + x.completion + " "


@pytest.mark.parametrize(
    "pick",
    [
        "not a suggestion",
        Suggestion("cab", "b", 0.5),  # does not complete "ab"
        Suggestion("abc", "b", 0.5),  # word and completion disagree with the text
    ],
)
def test_accept_refuses_what_does_not_complete_the_current_word(numpy_model, pick):
    s = Suggester(numpy_model)
    s.type("ab")
    with pytest.raises(InputError):
        s.accept(pick)
    assert s.text == "ab"


def test_auto_space_must_be_a_bool(numpy_model):
    with pytest.raises(InputError, match="auto_space"):
        Suggester(numpy_model, auto_space="yes")
