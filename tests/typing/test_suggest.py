"""The suggestion engine against a brute-force enumeration, and its editing behaviour."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typing_support import BOUNDARIES, VOCAB, WORD_CHARS, torch_logprobs

from lstm_edge.runtime import InputError, State, Suggester, load
from lstm_edge.runtime.config import UNK_CHAR, UNK_ID, ModelConfig
from lstm_edge.runtime.suggest import PREFILL_CHUNK, is_word_char

# Torch (the reference) and the numpy backend both compute in float32 but in different
# orders; over the <= 6 steps of a word their logits differ by ~1e-6, so the probability
# of a word (a product of <= 4 softmaxes) agrees to ~1e-5 relative.
BRUTE_RTOL = 1e-5
# Same backend, same math, different batch shapes (or prefill vs single steps): BLAS may
# round a row of a batched product differently from the same row alone, a few float32 ulps
# of logits of magnitude ~10 (~1e-6 absolute) per character; a word's probability is the
# exp of a sum of <= 6 such log-probabilities, so it agrees to ~1e-5 relative.
BATCH_RTOL = 1e-5


def brute_force(tiny, prefix: str, max_new: int, complete_word: bool) -> list[tuple[str, float]]:
    """Every completion of 1..max_new word characters (0.. with `complete_word` after a word
    character: the word as typed), scored by the torch model."""
    ids = {ch: i for i, ch in enumerate(VOCAB)}
    context = [ids["\n"]] + [ids[ch] for ch in prefix]
    boundary = [ids[ch] for ch in BOUNDARIES]
    scored = []
    shortest = 0 if complete_word and prefix and is_word_char(prefix[-1]) else 1
    for length in range(shortest, max_new + 1):
        words = ["".join(w) for w in itertools.product(WORD_CHARS, repeat=length)]
        seqs = [np.array(context + [ids[ch] for ch in w], np.int64) for w in words]
        lp = torch_logprobs(tiny.torch_model, seqs)
        start = len(context) - 1  # position whose output predicts the first new character
        for w, seq, row in zip(words, seqs, lp, strict=True):
            chars = sum(row[start + i, seq[start + 1 + i]] for i in range(length))
            end = np.logaddexp.reduce(row[start + length, boundary])
            scored.append((w, float(np.exp(chars + end))))
    scored.sort(key=lambda s: -s[1])
    return scored


@pytest.mark.parametrize("auto_space", [True, False])
@pytest.mark.parametrize("prefix", ["", "ab", "ab c", "T", "b.a", "cc\n"])
def test_beam_search_equals_brute_force(tiny, numpy_model, prefix, auto_space):
    current = len(prefix) - max(prefix.rfind(ch) for ch in " .\n") - 1
    max_new = 3
    expected = brute_force(tiny, prefix, max_new, complete_word=auto_space)
    # 4 word characters: at most 4**3 = 64 live candidates, so width 64 is exhaustive.
    s = Suggester(numpy_model, max_word_len=current + max_new, beam_width=64, auto_space=auto_space)
    s.type(prefix)
    got = s.suggestions(k=8)
    assert [g.completion for g in got] == [w for w, _ in expected[:8]]
    np.testing.assert_allclose(
        [g.probability for g in got], [p for _, p in expected[:8]], rtol=BRUTE_RTOL
    )
    word_prefix = prefix[len(prefix) - current :]
    assert all(g.word == word_prefix + g.completion for g in got)
    # The default beam (16 wide) finds the same top 3 here.
    narrow = Suggester(numpy_model, max_word_len=current + max_new, auto_space=auto_space)
    narrow.type(prefix)
    assert [g.completion for g in narrow.suggestions(3)] == [w for w, _ in expected[:3]]


class Unbatched:
    """A model wrapper that runs every beam by itself: the unbatched reference."""

    def __init__(self, model):
        self.model = model
        self.config = model.config
        self.batches: list[int] = []  # batch of every call made to this wrapper
        self.inner_calls = 0

    def initial_state(self, batch=1):
        return self.model.initial_state(batch)

    def step(self, tokens, state):
        tokens = np.asarray(tokens)
        self.batches.append(tokens.shape[0])
        self.inner_calls += len(tokens)
        rows = [self.model.step(tokens[i : i + 1], state.select([i])) for i in range(len(tokens))]
        return np.concatenate([r[0] for r in rows]), State.stack([r[1] for r in rows])


class Recording(Unbatched):
    def step(self, tokens, state):
        self.batches.append(np.asarray(tokens).shape[0])
        return self.model.step(tokens, state)


@pytest.mark.parametrize("prefix", ["", "ab c", "Tb"])
def test_batched_beams_equal_unbatched_and_use_one_call_per_position(numpy_model, prefix):
    batched, single = Recording(numpy_model), Unbatched(numpy_model)
    results = []
    for model in (batched, single):
        s = Suggester(model, max_word_len=8)
        s.type(prefix)
        model.batches.clear()
        model.inner_calls = 0
        results.append(s.suggestions(5))
    a, b = results
    assert [x.word for x in a] == [x.word for x in b]
    np.testing.assert_allclose(
        [x.probability for x in a], [x.probability for x in b], rtol=BATCH_RTOL
    )
    # One step call per character position of the search, several beams in it.
    depth = max(len(x.completion) for x in a)
    assert depth <= len(batched.batches) <= 8 - len(prefix.split(" ")[-1])
    assert max(batched.batches) > 1
    assert single.inner_calls == sum(batched.batches)


def test_backspace_restores_exactly_and_costs_no_step(numpy_model):
    s = Suggester(numpy_model)
    for ch in "ab c":
        s.type(ch)
    before = s.suggestions(3)
    s.type("b")
    s.type("a")
    calls = s.step_calls
    s.backspace(2)
    assert s.step_calls == calls
    assert s.text == "ab c"
    assert s.suggestions(3) == before  # the very same states: exactly equal


def test_backspace_into_a_paste_rederives_it_with_one_prefill(numpy_model):
    pasted = Suggester(numpy_model)
    pasted.type("ab cab")
    calls = pasted.step_calls
    pasted.backspace(2)
    assert pasted.step_calls == calls
    direct = Suggester(numpy_model)
    direct.type("ab c")
    direct_calls = direct.step_calls
    got, expected = pasted.suggestions(3), direct.suggestions(3)
    assert got == expected  # same prefill of "ab c" from the same state: exactly equal
    # The re-derivation is one prefill, on top of the same beam search.
    assert pasted.step_calls - calls == 1 + direct.step_calls - direct_calls


def test_paste_is_one_call_per_chunk(numpy_model):
    s = Suggester(numpy_model)
    calls = s.step_calls
    s.type("ab c" * 10)
    assert s.step_calls - calls == 1
    s.type("a" * (2 * PREFILL_CHUNK + 1))
    assert s.step_calls - calls == 1 + 3


def test_typing_equals_stepping_by_hand(tiny, numpy_model):
    """next_char_logprobs after typed text == log-softmax of torch over start + text."""
    s = Suggester(numpy_model)
    text = "ab c.Tb\nca"
    for ch in text:
        s.type(ch)
    ids = {ch: i for i, ch in enumerate(VOCAB)}
    lp = torch_logprobs(tiny.torch_model, [np.array([ids[c] for c in "\n" + text])])
    np.testing.assert_allclose(s.next_char_logprobs(), lp[0, -1], atol=1e-5)  # see BRUTE_RTOL


def test_deterministic(numpy_model):
    runs = []
    for _ in range(2):
        s = Suggester(numpy_model)
        s.type("ab ")
        runs.append(s.suggestions(5))
    assert runs[0] == runs[1]


def test_sync_edits_keep_the_common_prefix(numpy_model):
    s = Suggester(numpy_model)
    s.sync("ab cab")
    s.sync("ab Tc")  # an edit in the middle: backspace to "ab ", type "Tc"
    assert s.text == "ab Tc"
    direct = Suggester(numpy_model)
    for ch in "ab Tc":
        direct.type(ch)
    a, b = s.suggestions(3), direct.suggestions(3)
    assert [x.word for x in a] == [x.word for x in b]
    np.testing.assert_allclose(
        [x.probability for x in a], [x.probability for x in b], rtol=BATCH_RTOL
    )


def test_compaction_keeps_memory_bounded_and_backspace_working(numpy_model):
    text = "ab ca.bc Tab cc\n" * 40  # 640 characters typed one at a time
    s = Suggester(numpy_model, history=8)
    for ch in text:
        s.type(ch)
    assert len(s._segments) <= 8 + len(text) // PREFILL_CHUNK + 2
    s.backspace(397)  # deep into the merged, old segments
    direct = Suggester(numpy_model)
    for ch in text[:-397]:
        direct.type(ch)
    a, b = s.suggestions(3), direct.suggestions(3)
    assert s.text == text[:-397]
    assert [x.word for x in a] == [x.word for x in b]
    np.testing.assert_allclose(
        [x.probability for x in a], [x.probability for x in b], rtol=BATCH_RTOL
    )


edits = st.lists(
    st.one_of(
        st.text(alphabet="abcT .\n€x\ufffd", max_size=5).map(lambda t: ("type", t)),
        st.integers(0, 7).map(lambda n: ("backspace", n)),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(edits)
def test_any_edit_sequence_equals_typing_the_final_text(numpy_model, ops):
    s = Suggester(numpy_model, history=3)
    text = ""
    for op, arg in ops:
        if op == "type":
            s.type(arg)
            text += arg
        else:
            s.backspace(arg)
            text = text[: max(0, len(text) - arg)]
    assert s.text == text and len(s) == len(text)
    direct = Suggester(numpy_model)
    for ch in text:
        direct.type(ch)
    a, b = s.suggestions(3), direct.suggestions(3)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        # Equal words, unless two probabilities tie within the batch rounding.
        assert x.word == y.word or abs(x.probability - y.probability) < BATCH_RTOL
        np.testing.assert_allclose(x.probability, y.probability, rtol=BATCH_RTOL)


# ---- row 24 of bad-inputs: never a crash, never UNK ---------------------------------------


def _check(suggestions, k=3):
    assert len(suggestions) <= k
    probs = [s.probability for s in suggestions]
    assert probs == sorted(probs, reverse=True)
    assert all(0 < p <= 1 for p in probs) and sum(probs) <= 1 + 1e-9
    for s in suggestions:
        # An empty completion is the complete-word slot: the word typed so far.
        assert s.completion or s.word
        assert all(ch in WORD_CHARS for ch in s.completion)
        assert UNK_CHAR not in s.completion
        assert s.word.endswith(s.completion)


def test_empty_prefix_suggests_next_words(numpy_model):
    s = Suggester(numpy_model)
    got = s.suggestions(3)
    assert len(got) == 3
    _check(got)
    assert all(g.word == g.completion for g in got)


@pytest.mark.parametrize(
    "text", ["€€ ab", "ab\x00c", "😀", "a\u0301b", UNK_CHAR * 3, "TAB", "ab\r\n", "x" * 30]
)
def test_unknown_characters(numpy_model, text):
    s = Suggester(numpy_model)
    s.type(text)
    got = s.suggestions(3)
    _check(got)
    s.backspace(1)
    _check(s.suggestions(3))


def test_other_case_stands_in_for_a_missing_character(numpy_model):
    s = Suggester(numpy_model)
    ids = {ch: i for i, ch in enumerate(VOCAB)}
    assert list(s.encode("tA€")) == [ids["T"], ids["a"], UNK_ID]


def test_very_long_input(numpy_model):
    s = Suggester(numpy_model, history=16)
    s.type("ab ca " * 5000)  # 30,000 characters pasted: chunked prefills
    _check(s.suggestions(3))
    assert len(s._segments) <= 16 + 30_000 // PREFILL_CHUNK + 2
    s.type("b" * 100)  # a "word" longer than max_word_len: nothing to complete
    assert s.current_word() is None and s.suggestions(3) == []
    s.type(" ")
    assert len(s.suggestions(3)) == 3


def test_backspace_past_start(numpy_model):
    start = Suggester(numpy_model).suggestions(3)
    s = Suggester(numpy_model)
    s.backspace(5)
    s.type("ab")
    s.backspace(10**9)
    assert s.text == "" and len(s) == 0
    assert s.suggestions(3) == start
    s.reset()
    assert s.suggestions(3) == start


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.backspace(-1),
        lambda s: s.backspace(1.5),
        lambda s: s.suggestions(0),
        lambda s: s.suggestions(True),
        lambda s: s.type(b"ab"),
        lambda s: s.sync(None),
    ],
)
def test_bad_arguments_raise_input_error(numpy_model, call):
    s = Suggester(numpy_model)
    with pytest.raises(InputError):
        call(s)


def test_vocabulary_without_boundaries_or_start_context(tmp_path):
    """No space/newline to prime with and nothing that ends a word: no suggestions, no crash."""
    import onnx

    from lstm_edge.toolchain.export import build_onnx
    from lstm_edge.toolchain.model import EdgeLSTM

    config = ModelConfig(vocab=(UNK_CHAR, "a", "b"), embed_size=2, hidden_size=3, num_layers=1)
    onnx.save(build_onnx(EdgeLSTM(config)), tmp_path / "m.onnx")
    s = Suggester(load(tmp_path / "m.onnx", backend="numpy"))
    assert s.prime is None and s.next_char_logprobs() is None
    assert s.suggestions(3) == []
    s.type("ab")
    assert s.next_char_logprobs() is not None
    assert s.suggestions(3) == []


def test_word_characters():
    assert all(is_word_char(c) for c in "aZ9_'éß")
    assert not any(is_word_char(c) for c in " .,\n-()€" + UNK_CHAR)


def test_ort_int8_agrees_with_numpy_int8(tiny):
    got = []
    for backend in ("numpy", "ort"):
        s = Suggester(load(tiny.int8_path, backend=backend))
        s.type("ab c")
        got.append(s.suggestions(3))
    assert [x.word for x in got[0]] == [x.word for x in got[1]]
    # Same dequantized weights, float32 in both, different summation order.
    np.testing.assert_allclose(
        [x.probability for x in got[0]], [x.probability for x in got[1]], rtol=1e-5
    )
