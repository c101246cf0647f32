"""Measure predictive typing on held-out text: a simulated user types it through `Suggester`.

Conventions (both in every report, from one pass):
- The user types the text character by character. Before each keystroke the engine shows
  the k best suggestions for the current word (`Suggester.suggestions`).
- As soon as the intended word (the maximal run of word characters the user is typing,
  `is_word_char`) is among the k shown and at least one of its characters is still to be
  typed, the user accepts it, which costs ONE keystroke.
- phone (the headline; `Suggester(auto_space=True)`, as phone keyboards behave): accepting
  inserts the rest of the word and a space. The strip also offers the word typed so far
  as a slot, and next words before the first letter. If the text goes on with a space, that
  space was typed by the accept; attaching punctuation (`ATTACHING_PUNCT`) replaces the
  space at no extra cost; any other character costs one more keystroke (deleting the
  space); at the end of the text the space is left.
- no-space (the earlier convention, `auto_space=False`): accepting inserts the rest of the
  word only; the user types the following space or punctuation; no complete-word slot.
- Keystroke savings rate (KSR) = 1 - keystrokes / characters of the text.

The simulation is one pass that types every character (the LSTM state after accepting a
word equals the state after typing its characters, and the phone strip without its
complete-word slot is the no-space strip, so neither convention needs a run of its own);
from that pass it also reports:
- word top-1 / top-3 at word start: over every word, the share where it is the first /
  among the first three next-word predictions shown before its first letter;
- word-completion top-1 / top-3 per position (no-space strip): over every position inside
  a word with at least one character left, the same shares;
- next-character top-1 accuracy and bits per character, both over the engine's tokens
  (the model's vocabulary; a character outside it maps to its other case, else UNK), with
  the model primed by `Suggester.prime` as the context before the first character;
- latency per keystroke: wall time of `type(char)` + the strip's suggestions, as in an app.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstm_edge.runtime import load
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.suggest import ATTACHING_PUNCT, Suggester, is_word_char

DEFAULT_K = 3
DEFAULT_MAX_CHARS = 20_000
CONVENTION = (
    "accepting costs 1 keystroke, as soon as the intended word is among the k shown; phone: "
    "it inserts the rest of the word and a space (punctuation replaces the space); no-space: "
    "the rest of the word only"
)


def scheme_label(scheme: str) -> str:
    """How a quantization scheme is shown to people ("none" is the float model)."""
    return "float" if scheme == "none" else scheme


class TypingEvalError(LstmEdgeError):
    """No usable text to evaluate on."""


@dataclass(frozen=True)
class TypingReport:
    model: str
    scheme: str
    backend: str
    k: int
    chars: int
    words: int
    keystrokes: int  # phone convention
    keystroke_savings: float  # 1 - keystrokes / chars
    words_accepted: int
    keystrokes_no_space: int  # the no-space convention
    keystroke_savings_no_space: float
    words_accepted_no_space: int
    word_start_top1: float  # over every word, before its first letter
    word_start_top3: float
    word_top1: float  # over every in-word position with >= 1 character left (no-space strip)
    word_top3: float
    next_char_top1: float
    bpc: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    step_calls_per_keystroke: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def word_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of every maximal run of word characters."""
    spans = []
    start = None
    for i, ch in enumerate(text):
        if is_word_char(ch):
            if start is None:
                start = i
        elif start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(text)))
    return spans


def simulate(
    suggester: Suggester,
    text: str,
    k: int = DEFAULT_K,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Type `text` through a fresh `suggester`; return the raw counts and metrics."""
    if not text:
        raise TypingEvalError("the text to type is empty")
    suggester.reset()
    shown_k = max(k, 3)
    spans = word_spans(text)
    word_of = np.full(len(text), -1, np.int64)  # index of the word covering each position
    for w, (s, e) in enumerate(spans):
        word_of[s:e] = w
    accepted = {"phone": [-1] * len(spans), "no-space": [-1] * len(spans)}
    tokens = suggester.encode(text)
    latencies = np.empty(len(text))
    nll = 0.0
    predicted = char_hits = 0
    hits = {"top1": 0, "top3": 0, "start1": 0, "start3": 0}
    calls_before = suggester.step_calls
    for i in range(len(text)):
        t0 = time.perf_counter()
        if i:
            suggester.type(text[i - 1])
        # One search serves both strips: the phone strip is its first k; dropping the
        # complete-word slot (empty completion, at most one) leaves the no-space strip.
        found = suggester.suggestions(shown_k + 1, complete_word=True)
        latencies[i] = time.perf_counter() - t0
        strips = {
            "phone": [x.word for x in found[:shown_k]],
            "no-space": [x.word for x in found if x.completion][:shown_k],
        }
        logprobs = suggester.next_char_logprobs()
        if logprobs is not None:
            nll -= logprobs[tokens[i]]
            char_hits += int(np.argmax(logprobs) == tokens[i])
            predicted += 1
        w = word_of[i]
        if w >= 0:
            start, end = spans[w]
            intended = text[start:end]
            _count_hits(i - start, intended, strips["no-space"], hits)
            for name, strip in strips.items():
                if accepted[name][w] < 0 and intended in strip[:k]:
                    accepted[name][w] = i - start
        if progress is not None and (i % 100 == 99 or i == len(text) - 1):
            progress(i + 1)
    phone = saved_keystrokes(text, spans, accepted["phone"], auto_space=True)
    no_space = saved_keystrokes(text, spans, accepted["no-space"], auto_space=False)
    positions = int((word_of >= 0).sum())
    # The first keystroke has no `type` in it (nothing typed yet); every other one does.
    keystroke_lat = latencies[1:] if len(text) > 1 else latencies
    return {
        "chars": len(text),
        "words": len(spans),
        "keystrokes": len(text) - phone,
        "keystroke_savings": phone / len(text),
        "words_accepted": sum(j >= 0 for j in accepted["phone"]),
        "keystrokes_no_space": len(text) - no_space,
        "keystroke_savings_no_space": no_space / len(text),
        "words_accepted_no_space": sum(j >= 0 for j in accepted["no-space"]),
        "word_start_top1": hits["start1"] / len(spans) if spans else 0.0,
        "word_start_top3": hits["start3"] / len(spans) if spans else 0.0,
        "word_top1": hits["top1"] / positions if positions else 0.0,
        "word_top3": hits["top3"] / positions if positions else 0.0,
        "next_char_top1": char_hits / predicted if predicted else 0.0,
        "bpc": nll / predicted / math.log(2) if predicted else float("nan"),
        "latency_p50_ms": float(np.percentile(keystroke_lat, 50) * 1e3),
        "latency_p99_ms": float(np.percentile(keystroke_lat, 99) * 1e3),
        "latency_max_ms": float(keystroke_lat.max() * 1e3),
        "step_calls_per_keystroke": (suggester.step_calls - calls_before) / len(text),
    }


def _count_hits(typed: int, intended: str, shown: list[str], hits: dict[str, int]) -> None:
    """Top-1/top-3 hits at one in-word position, `typed` characters into the word."""
    first = bool(shown) and shown[0] == intended
    top3 = intended in shown[:3]
    hits["top1"] += first
    hits["top3"] += top3
    if typed == 0:
        hits["start1"] += first
        hits["start3"] += top3


def saved_keystrokes(
    text: str, spans: list[tuple[int, int]], accepted_at: list[int], auto_space: bool
) -> int:
    """Keystrokes saved by the accepted words (-1: never accepted) under one convention."""
    saved = 0
    for (start, end), j in zip(spans, accepted_at, strict=True):
        if j < 0:
            continue
        saved += (end - start) - j - 1  # the rest of the word for one keystroke
        if auto_space and end < len(text):
            after = text[end]
            if after == " ":
                saved += 1  # the accept typed it
            elif after not in ATTACHING_PUNCT:
                saved -= 1  # the user deletes the space first
    return saved


def evaluate_model(
    path: Path,
    text: str,
    *,
    backend: str = "ort",
    k: int = DEFAULT_K,
    progress: Callable[[int], None] | None = None,
) -> TypingReport:
    model = load(path, backend=backend)
    result = simulate(Suggester(model), text, k, progress)
    return TypingReport(model=str(path), scheme=model.scheme, backend=backend, k=k, **result)


def held_out(checkpoint: Path, split: str = "test") -> str:
    """The held-out split recorded in a checkpoint's data.json."""
    from lstm_edge.toolchain.checkpoint import load_checkpoint
    from lstm_edge.toolchain.data import held_out_text
    from lstm_edge.toolchain.tasks.char_lm_eval import EVAL as CHAR_LM_EVAL

    ckpt = load_checkpoint(checkpoint)
    CHAR_LM_EVAL.require(
        ckpt.config,
        TypingEvalError,
        f"{checkpoint} holds a {ckpt.config.task!r} model (typing needs a 'char-lm' "
        "checkpoint and its held-out text)",
    )
    return held_out_text(ckpt.data, split)


def checkpoint_beside(model: Path) -> Path:
    """The checkpoint a model was made from, where the CLI puts it: the model's folder
    (`lstm-edge train --out DIR` + export) or its checkpoint/ subfolder (`lstm-edge pipeline`)."""
    from lstm_edge.toolchain.checkpoint import CONFIG_FILE
    from lstm_edge.toolchain.pipeline import CHECKPOINT_DIR

    for folder in (model.parent, model.parent / CHECKPOINT_DIR):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise TypingEvalError(
        f"no checkpoint beside {model} (looked for {CONFIG_FILE} in {model.parent} and "
        f"{model.parent / CHECKPOINT_DIR}): give --checkpoint CKPT (its held-out split is "
        "typed) or --text FILE"
    )


def find_text(
    models: list[Path], checkpoint: Path | None, text_file: Path | None, max_chars: int
) -> tuple[str, str]:
    """The text to type and where it came from: --text, --checkpoint, or the checkpoint
    beside the first model."""
    if checkpoint is not None and text_file is not None:
        raise TypingEvalError("give either --checkpoint or --text, not both")
    if max_chars < 1:
        raise TypingEvalError(f"--max-chars is {max_chars} (expected >= 1)")
    if text_file is not None:
        from lstm_edge.toolchain.data import load_corpus

        text = load_corpus(text_file).text  # the corpus checks: empty, binary, not UTF-8
        source = str(text_file)
    else:
        if checkpoint is None:
            checkpoint = checkpoint_beside(Path(models[0]))
        text = held_out(checkpoint)
        source = f"{checkpoint} (test split)"
    if not text:
        raise TypingEvalError(f"{source} holds no text to type")
    return text[:max_chars], source


def check_json_path(path: Path, force: bool) -> Path:
    """Refuse an existing --json file without --force before the (long) run, not after."""
    from lstm_edge.runtime.files import check_output_path

    return check_output_path(Path(path), force)


def write_json(path: Path, reports: list[TypingReport], source: str, force: bool) -> None:
    from lstm_edge.runtime.files import atomic_write_json

    path = check_json_path(path, force)
    body = {
        "convention": CONVENTION,
        "text": source,
        "reports": [r.to_dict() for r in reports],
    }
    atomic_write_json(path, body)


ROWS = (
    ("keystroke savings, phone", "keystroke_savings", "{:.1%}"),
    ("keystroke savings, no-space", "keystroke_savings_no_space", "{:.1%}"),
    ("keystrokes / chars, phone", None, None),
    ("words accepted / words, phone", None, None),
    ("word top-1 at word start", "word_start_top1", "{:.1%}"),
    ("word top-3 at word start", "word_start_top3", "{:.1%}"),
    ("word top-1 (per position)", "word_top1", "{:.1%}"),
    ("word top-3 (per position)", "word_top3", "{:.1%}"),
    ("next-char top-1", "next_char_top1", "{:.1%}"),
    ("bits per char", "bpc", "{:.3f}"),
    ("latency p50 / keystroke", "latency_p50_ms", "{:.2f} ms"),
    ("latency p99 / keystroke", "latency_p99_ms", "{:.2f} ms"),
    ("step calls / keystroke", "step_calls_per_keystroke", "{:.2f}"),
)


def report_table(reports: list[TypingReport], source: str):
    from rich.table import Table

    table = Table(title=f"predictive typing on {source}, k = {reports[0].k}")
    table.add_column("metric")
    for r in reports:
        table.add_column(
            f"{Path(r.model).name}\n{scheme_label(r.scheme)}, {r.backend}", justify="right"
        )
    for label, key, fmt in ROWS:
        if key is not None:
            cells = [fmt.format(getattr(r, key)) for r in reports]
        elif label.startswith("keystrokes"):
            cells = [f"{r.keystrokes:,} / {r.chars:,}" for r in reports]
        else:
            cells = [f"{r.words_accepted:,} / {r.words:,}" for r in reports]
        table.add_row(label, *cells)
    table.caption = CONVENTION
    return table
