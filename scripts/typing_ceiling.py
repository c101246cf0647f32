"""How far word suggestions could go on a char-lm run's held-out text: ceilings and a word
baseline for `lstm-edge eval-typing`'s phone convention (k suggestions, accepting costs one
keystroke and inserts the word and a space; toolchain/typing_eval.py).

For the run's test split (its checkpoint's data.json), the first `--max-chars` characters:
- the text's make-up: the share of word characters (what suggestions can save at all);
- ceiling, every word: a perfect engine that shows the intended word before its first
  letter, every time;
- ceiling, known words: the same for words that occur in the training split (exact
  case); any engine trained on that split has to spell the others letter by letter;
- ceiling, after one letter: known words shown once their first letter is typed;
- word bigram: counts of word pairs and words in the training split, each candidate
  scored 0.5 * P(word | previous word) + 0.5 * P(word), the k best that start with the
  letters typed so far shown before every keystroke; a classical baseline of the kind
  the keyboard literature starts from.
Each ceiling user accepts a word only where accepting saves a keystroke (a one-letter
word followed by "(" would cost one); the bigram's user accepts as eval-typing's does.

    python3 scripts/typing_ceiling.py runs/default/checkpoint [--max-chars 5000] [--k 3]

Numbers to compare with `lstm-edge eval-typing MODEL --max-chars N` (same text).
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter, defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lstm_edge.runtime.suggest import ATTACHING_PUNCT, is_word_char
from lstm_edge.toolchain.typing_eval import held_out, saved_keystrokes, word_spans

BIGRAM_WEIGHT = 0.5


def ceiling(text: str, spans: list, known, typed: int) -> int:
    """Keystrokes saved when each known word is shown after exactly `typed` letters (and
    accepted where that saves)."""
    accepted = []
    for start, end in spans:
        word = text[start:end]
        gain = (end - start) - typed - 1
        if end < len(text):
            gain += 1 if text[end] == " " else (0 if text[end] in ATTACHING_PUNCT else -1)
        accepted.append(typed if known(word) and end - start > typed and gain > 0 else -1)
    return saved_keystrokes(text, spans, accepted, auto_space=True)


class WordBigram:
    """Word pairs and words of the training text; `top(previous, prefix, k)`."""

    def __init__(self, train: str) -> None:
        words = [train[s:e] for s, e in word_spans(train)]
        self.unigram = Counter(words)
        self.total = len(words)
        self.pairs: dict[str, Counter] = defaultdict(Counter)
        for a, b in itertools.pairwise(words):
            self.pairs[a][b] += 1
        # prefix -> words with it, most frequent first (enough of them for any k)
        self.by_prefix: dict[str, list[str]] = defaultdict(list)
        for word, _ in self.unigram.most_common():
            for n in range(len(word) + 1):
                if len(self.by_prefix[word[:n]]) < 16:
                    self.by_prefix[word[:n]].append(word)

    def score(self, previous: str | None, word: str) -> float:
        followers = self.pairs.get(previous) if previous is not None else None
        p_pair = followers[word] / sum(followers.values()) if followers else 0.0
        return BIGRAM_WEIGHT * p_pair + (1 - BIGRAM_WEIGHT) * self.unigram[word] / self.total

    def top(self, previous: str | None, prefix: str, k: int) -> list[str]:
        # Outside the pairs, the score orders words as the unigram does: the k most
        # frequent with the prefix and every follower with it hold the k best.
        candidates = set(self.by_prefix.get(prefix, [])[:k])
        followers = self.pairs.get(previous, {}) if previous is not None else {}
        candidates.update(w for w in followers if w.startswith(prefix))
        return sorted(candidates, key=lambda w: (-self.score(previous, w), w))[:k]


def bigram_saved(text: str, spans: list, model: WordBigram, k: int) -> int:
    accepted = []
    previous = None
    for start, end in spans:
        word = text[start:end]
        at = -1
        for typed in range(end - start):
            if word in model.top(previous, word[:typed], k):
                at = typed
                break
        accepted.append(at)
        previous = word
    return saved_keystrokes(text, spans, accepted, auto_space=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a char-lm run's checkpoint folder")
    parser.add_argument("--max-chars", type=int, default=5000)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    text = held_out(args.checkpoint, "test")[: args.max_chars]
    train = held_out(args.checkpoint, "train")
    spans = word_spans(text)
    vocabulary = {train[s:e] for s, e in word_spans(train)}
    n = len(text)

    def known(word: str) -> bool:
        return word in vocabulary

    rows = [
        ("word characters (what suggestions can save)", sum(map(is_word_char, text)) / n),
        (
            "ceiling: every word shown before its first letter",
            ceiling(text, spans, lambda word: True, 0) / n,
        ),
        ("ceiling: known words before their first letter", ceiling(text, spans, known, 0) / n),
        ("ceiling: known words after one letter", ceiling(text, spans, known, 1) / n),
        (
            "word bigram (training split), phone",
            bigram_saved(text, spans, WordBigram(train), args.k) / n,
        ),
    ]
    table = Table(title=f"{args.checkpoint}: test split, first {n} characters, k = {args.k}")
    table.add_column("keystroke savings, phone convention")
    table.add_column("share of the text", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:.1%}")
    Console().print(table)


if __name__ == "__main__":
    main()
