"""Predictive typing: word completions from a character LSTM, on any runtime backend.

`Suggester(model)` keeps the text typed so far as a stack of recurrent states, one per
typed character, so typing a character costs one `step` call and backspace costs none.
`suggestions(k)` returns the k most probable completions of the current word (or of the
next word, right after a space or punctuation) by a beam search over characters, with all
live beams batched into ONE `step` call per character position (`State.select`).

Probability semantics. For text typed so far `x` whose current word prefix is `w` (the
trailing run of word characters, possibly empty), a suggestion adds characters
`c1..cm` (m >= 1, all word characters, never the unknown-character token) and carries

    P(c1..cm, then any boundary character | x) = prod_i P(ci | x c1..ci-1) * P(B | x c1..cm)

where B is the set of boundary characters in the vocabulary (space, newline, punctuation:
every character that is not a word character, UNK excluded). So probabilities of different
suggestions are mutually exclusive events and sum to at most 1; the mass the model puts on
UNK and on words longer than `max_word_len` is not offered. Word characters are letters,
digits, "_" and the apostrophe (`is_word_char`), so "don't" and `os_path` are one word.

Phone behaviour (`auto_space=True`, the default). `accept(suggestion)` inserts the rest of
the word and a space, as phone keyboards do; punctuation that attaches to a word
(`ATTACHING_PUNCT`, e.g. "." and ",") typed right after that space replaces it ("word ." ->
"word."). Once the letters typed form a word of their own, that word is a slot too: a
`Suggestion` with an empty completion and probability P(boundary | text so far), ranked
with the longer forms, so "used" is offered as "used" rather than only "useded". Before the
first letter of a word the slots are the most likely next words. `auto_space=False` keeps
the earlier convention (accept inserts the rest of the word only; no complete-word slot).

Exactness. Pruning a beam whose probability is already below the k-th best finished word
is exact (extending a word never raises its probability); the only approximation is the
beam width, so with `beam_width` >= the number of live candidates the result equals a
brute-force enumeration. The result is deterministic: ties break by the order of the
vocabulary, then by the word.

Pasted text and memory. `type(text)` with several characters costs one prefill call (one
per `PREFILL_CHUNK` characters for huge pastes) and keeps only the state at its end: the
intermediate states are re-derived by one prefill from the state before the paste, and only
if the user backspaces into it (lazily, at the next call that needs them). That keeps a
paste at one call instead of one per character, and backspace over typed characters free.
States older than the last `history` segments are merged into segments of up to
`PREFILL_CHUNK` characters, so memory stays bounded on very long input while backspace
still works all the way to the start (re-deriving at most one chunk per backspace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lstm_edge.runtime.config import UNK_ID
from lstm_edge.runtime.errors import InputError
from lstm_edge.runtime.tasks.char_lm import CHAR_LM

# The model is primed with the first of these that is in its vocabulary, so the empty
# text already has a next-character distribution (a document starts after a line break).
START_CONTEXT = ("\n", " ")
DEFAULT_MAX_WORD_LEN = 24
DEFAULT_BEAM_WIDTH = 16
DEFAULT_HISTORY = 1024
PREFILL_CHUNK = 256
_WORD_PUNCT = frozenset("_'")
# Typed right after the space `accept` added, these replace it: "word ." -> "word.".
ATTACHING_PUNCT = frozenset(".,;:!?)]}%")


def is_word_char(ch: str) -> bool:
    """Characters that belong to a word; every other character ends one."""
    return bool(ch) and all(c.isalnum() or c in _WORD_PUNCT for c in ch)


@dataclass(frozen=True)
class Suggestion:
    word: str  # the whole word: the typed prefix + completion
    completion: str  # the characters to insert
    probability: float  # P(completion, then a boundary character | text so far)

    def to_dict(self) -> dict[str, Any]:
        return {"word": self.word, "completion": self.completion, "probability": self.probability}


@dataclass(frozen=True)
class _Node:
    state: Any  # runtime State after the text up to here, batch 1
    logprobs: np.ndarray | None  # float64 [vocab]: log P(next char); None if never primed


@dataclass
class _Segment:
    text: str
    tokens: np.ndarray  # int64 [len(text)]
    end: _Node | None  # None: re-derive by a prefill from the previous segment's end


class Suggester:
    """Word completions for text typed one keystroke at a time (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        *,
        max_word_len: int = DEFAULT_MAX_WORD_LEN,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        history: int = DEFAULT_HISTORY,
        auto_space: bool = True,
    ) -> None:
        for name, value in (
            ("max_word_len", max_word_len),
            ("beam_width", beam_width),
            ("history", history),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} is {value!r} (expected an integer >= 1)")
        if not isinstance(auto_space, bool):
            raise InputError(f"auto_space is {auto_space!r} (expected True or False)")
        CHAR_LM.require(model.config, "word suggestions", "step it with model.step instead")
        self.model = model
        self.max_word_len = max_word_len
        self.beam_width = beam_width
        self.history = history
        self.auto_space = auto_space
        self._space_at: int | None = None  # text length right after the space accept added
        vocab = model.config.vocab
        self._ids = {ch: i for i, ch in enumerate(vocab) if i != UNK_ID}
        self._chars = vocab
        self._word_ids = np.array(
            [i for i, ch in enumerate(vocab) if i != UNK_ID and is_word_char(ch)], np.int64
        )
        self._boundary_ids = np.array(
            [i for i, ch in enumerate(vocab) if i != UNK_ID and not is_word_char(ch)], np.int64
        )
        self.step_calls = 0  # every model.step this engine made (for tests and reports)
        self.prime = next((ch for ch in START_CONTEXT if ch in self._ids), None)
        state = model.initial_state(batch=1)
        logprobs = None
        if self.prime is not None:
            logits, state = self._step(np.array([self._ids[self.prime]], np.int64), state)
            logprobs = _log_softmax(logits[0])
        self._base = _Node(state, logprobs)
        self._segments: list[_Segment] = []
        self._merged = 0  # segments[:_merged] are old, already compacted ones
        self._length = 0

    # ---- text editing ---------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(s.text for s in self._segments)

    def __len__(self) -> int:
        return self._length

    def encode(self, text: str) -> np.ndarray:
        """Token ids; a character outside the vocabulary falls back to its other case, else UNK."""
        ids = self._ids
        out = np.empty(len(text), np.int64)
        for i, ch in enumerate(text):
            tok = ids.get(ch)
            if tok is None:
                tok = ids.get(ch.lower(), ids.get(ch.upper(), UNK_ID))
            out[i] = tok
        return out

    def type(self, text: str) -> None:
        """Append typed or pasted text: one step for a character, one prefill for a paste."""
        if not isinstance(text, str):
            raise InputError(f"typed text must be a str, found {type(text).__name__}")
        if text and self.replaces_space(text[0]):
            self.backspace(1)  # costs no step: the state before the space is kept
        self._insert(text)

    def _insert(self, text: str) -> None:
        if not text:
            return
        self._space_at = None
        tokens = self.encode(text)
        if len(text) == 1:
            prev = self._top()
            logits, state = self._step(tokens, prev.state)
            self._push(_Segment(text, tokens, _Node(state, _log_softmax(logits[0]))))
        else:
            # A pending (backspaced-into) segment is re-derived together with the new text,
            # so the paste still costs one call per chunk.
            if self._segments and self._segments[-1].end is None:
                last = self._segments.pop()
                self._length -= len(last.text)
                text = last.text + text
                tokens = np.concatenate([last.tokens, tokens])
            for start in range(0, len(text), PREFILL_CHUNK):
                chunk = slice(start, start + PREFILL_CHUNK)
                self._push(_Segment(text[chunk], tokens[chunk], None))
                self._top()
        self._compact()

    def backspace(self, n: int = 1) -> None:
        """Delete the last n characters (clamped at the start); costs no step call."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"backspace count is {n!r} (expected an integer >= 0)")
        n = min(n, self._length)
        if n:
            self._space_at = None
        while n and n >= len(self._segments[-1].text):
            seg = self._segments.pop()
            n -= len(seg.text)
            self._length -= len(seg.text)
        if n:
            seg = self._segments[-1]
            self._segments[-1] = _Segment(seg.text[:-n], seg.tokens[:-n], None)
            self._length -= n
        self._merged = min(self._merged, len(self._segments))

    def reset(self) -> None:
        """Forget all text; the primed start state is kept, so this costs no step."""
        self._segments.clear()
        self._merged = 0
        self._length = 0
        self._space_at = None

    def sync(self, text: str) -> None:
        """Make the typed text equal `text`, keeping the common prefix (for editors)."""
        if not isinstance(text, str):
            raise InputError(f"text must be a str, found {type(text).__name__}")
        old = self.text
        if text.startswith(old):
            common = len(old)
        else:
            common = 0
            limit = min(len(old), len(text))
            while common < limit and old[common] == text[common]:
                common += 1
        self.backspace(len(old) - common)
        self._insert(text[common:])  # the text as given: no punctuation replaces a space

    def accept(self, suggestion: Suggestion) -> str:
        """Insert a suggestion of the current word; returns the text inserted: the rest of
        the word, plus a space with `auto_space` (which the next attaching punctuation
        replaces, see `replaces_space`)."""
        if not isinstance(suggestion, Suggestion):
            raise InputError(f"accept takes a Suggestion, found {type(suggestion).__name__}")
        prefix = self.current_word()
        if prefix is None or suggestion.word != prefix + suggestion.completion:
            raise InputError(
                f"suggestion {suggestion.word!r} does not complete the current word "
                f"{prefix!r} (suggestions are valid until the text changes)"
            )
        inserted = suggestion.completion + (" " if self.auto_space else "")
        self.type(inserted)
        if self.auto_space:
            self._space_at = self._length
        return inserted

    def replaces_space(self, ch: str) -> bool:
        """Would typing `ch` now replace the space that `accept` just added?"""
        return self._space_at == self._length and ch in ATTACHING_PUNCT

    # ---- predictions ----------------------------------------------------------------------

    def current_word(self) -> str | None:
        """The trailing run of word characters ('' after a boundary); None if longer than
        `max_word_len` (no completion is offered for such a run)."""
        chars: list[str] = []
        for seg in reversed(self._segments):
            for ch in reversed(seg.text):
                if not is_word_char(ch):
                    return "".join(reversed(chars))
                chars.append(ch)
                if len(chars) > self.max_word_len:
                    return None
        return "".join(reversed(chars))

    def next_char_logprobs(self) -> np.ndarray | None:
        """log P(next character | text so far) over the vocabulary (float64), or None if the
        vocabulary has no start context and nothing was typed yet."""
        lp = self._top().logprobs
        return None if lp is None else lp.copy()

    def suggestions(self, k: int = 3, *, complete_word: bool | None = None) -> list[Suggestion]:
        """The k most probable completions of the current word, best first. With
        `complete_word` (default: `auto_space`) the word typed so far is a candidate too,
        with an empty completion."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k is {k!r} (expected an integer >= 1)")
        if complete_word is None:
            complete_word = self.auto_space
        prefix = self.current_word()
        node = self._top()
        if prefix is None or node.logprobs is None:
            return []
        if not len(self._word_ids) or not len(self._boundary_ids):
            return []
        max_new = self.max_word_len - len(prefix)
        finished: list[tuple[float, str]] = []
        if complete_word and prefix:
            finished.append((float(_logsumexp(node.logprobs[self._boundary_ids])), ""))
        texts = [""]
        scores = np.zeros(1)
        logprobs = node.logprobs[None, :]
        state = node.state
        for depth in range(1, max_new + 1):
            cand = (scores[:, None] + logprobs[:, self._word_ids]).ravel()
            threshold = _kth_best(finished, k)
            order = np.argsort(-cand, kind="stable")[: self.beam_width]
            order = order[cand[order] > threshold]
            if not len(order):
                break
            parents = order // len(self._word_ids)
            tokens = self._word_ids[order % len(self._word_ids)]
            logits, state = self._step(tokens, state.select(parents))
            logprobs = _log_softmax(logits)
            scores = cand[order]
            texts = [texts[p] + self._chars[t] for p, t in zip(parents, tokens, strict=True)]
            ends = scores + _logsumexp(logprobs[:, self._boundary_ids])
            finished.extend(zip(ends.tolist(), texts, strict=True))
            if depth == max_new:
                break
        finished.sort(key=lambda f: (-f[0], f[1]))
        return [
            Suggestion(word=prefix + t, completion=t, probability=float(np.exp(s)))
            for s, t in finished[:k]
        ]

    # ---- internals ------------------------------------------------------------------------

    def _step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        self.step_calls += 1
        return self.model.step(tokens, state)

    def _top(self) -> _Node:
        """The node after the last typed character, re-deriving a pending segment."""
        if not self._segments:
            return self._base
        seg = self._segments[-1]
        if seg.end is None:
            prev = self._segments[-2].end if len(self._segments) > 1 else self._base
            assert prev is not None  # invariant: only the last segment may be pending
            logits, state = self._step(seg.tokens[None, :], prev.state)
            seg.end = _Node(state, _log_softmax(logits[0, -1]))
        return seg.end

    def _push(self, seg: _Segment) -> None:
        self._segments.append(seg)
        self._length += len(seg.text)

    def _compact(self) -> None:
        """Merge segments older than the last `history` ones into chunks of PREFILL_CHUNK."""
        segs = self._segments
        while len(segs) - self._merged > self.history:
            seg = segs[self._merged]
            if self._merged and len(segs[self._merged - 1].text) + len(seg.text) <= PREFILL_CHUNK:
                prev = segs[self._merged - 1]
                segs[self._merged - 1] = _Segment(
                    prev.text + seg.text, np.concatenate([prev.tokens, seg.tokens]), seg.end
                )
                del segs[self._merged]
            else:
                self._merged += 1


def _kth_best(finished: list[tuple[float, str]], k: int) -> float:
    if len(finished) < k:
        return -np.inf
    return sorted((s for s, _ in finished), reverse=True)[k - 1]


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, np.float64)
    return x - _logsumexp(x)[..., None]
