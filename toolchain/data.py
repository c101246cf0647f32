"""Corpora for the character model: read and check them, split them, build the vocabulary.

A corpus is a UTF-8 text file, a folder of `.txt` files, or (the default) the CPython
documentation text that ships in `pydoc_data.topics`, so training needs no download. It is
split into contiguous train/val/test blocks; the split, the source and the SHA-256 of the
text go into the checkpoint's `data.json`, so later commands (`held_out_text`) evaluate on
exactly the text the model never saw. No torch here: only numpy.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lstm_edge.runtime.config import UNK_CHAR, UNK_ID, ModelConfig
from lstm_edge.runtime.errors import InvalidConfigError, LstmEdgeError

BUILTIN_SOURCE = "builtin:pydoc_data"
SPLITS = ("train", "val", "test")
DATA_FORMAT = 1  # version of the data.json layout written by `data_record`

# A text file has almost no control characters besides whitespace; more than this share
# of them means the bytes were not meant as text (an image that happens to decode, say).
MAX_CONTROL_SHARE = 0.01
# Unicode category Cc (C0, DEL, C1) minus the whitespace controls \t \n \v \f \r: one
# regex pass, ~30x faster than asking unicodedata per character of a large corpus.
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


class CorpusError(LstmEdgeError):
    """A corpus that cannot be trained on (missing, empty, binary, not UTF-8, too short)."""


@dataclass(frozen=True)
class Corpus:
    text: str
    source: str  # BUILTIN_SOURCE or the absolute path of the file/folder
    sha256: str  # of `text` encoded as UTF-8
    files: int  # how many files the text came from


@dataclass(frozen=True)
class Split:
    """Contiguous character ranges [start, end) of the corpus text."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def text(self, corpus_text: str, name: str) -> str:
        if name not in SPLITS:
            raise CorpusError(f"split {name!r} is unknown (expected one of {SPLITS})")
        start, end = getattr(self, name)
        return corpus_text[start:end]


@dataclass(frozen=True)
class VocabOptions:
    max_size: int | None = None  # cap on the vocabulary, the unknown character included
    min_count: int = 1  # characters seen fewer times in the training split become UNK


# ---- reading ------------------------------------------------------------------------------


def _decode(raw: bytes, name: str) -> str:
    """Bytes of one file -> text, refusing binary and non-UTF-8 content (naming `name`)."""
    if not raw:
        raise CorpusError(f"corpus file {name} is empty")
    if b"\x00" in raw:
        raise CorpusError(
            f"corpus file {name} contains NUL bytes: it looks binary (or UTF-16); "
            "expected UTF-8 text"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"corpus file {name} is not UTF-8 text (invalid byte {raw[e.start]:#04x} at "
            f"offset {e.start})"
        ) from None
    # One line-ending convention, so a Windows file does not add '\r' to the vocabulary.
    text = text.replace("\r\n", "\n")
    controls = sum(1 for _ in _BINARY_CONTROLS.finditer(text))
    if controls > MAX_CONTROL_SHARE * len(text):
        raise CorpusError(
            f"corpus file {name} is {controls / len(text):.0%} control characters: it "
            "looks binary; expected text"
        )
    return text


def _builtin_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip("\n") for k in sorted(topics)) + "\n"


def load_corpus(source: str | Path | None = None) -> Corpus:
    """Read a text file, a folder of .txt files, or (None / BUILTIN_SOURCE) the built-in text."""
    if source is None or str(source) == BUILTIN_SOURCE:
        text = _builtin_text()
        return Corpus(text, BUILTIN_SOURCE, _sha256(text), files=1)
    path = Path(source).expanduser().resolve()
    if path.is_dir():
        files = sorted((p for p in path.rglob("*.txt") if p.is_file()), key=lambda p: p.as_posix())
        if not files:
            raise CorpusError(f"corpus folder {path} holds no .txt files")
        parts = []
        for p in files:
            raw = p.read_bytes()
            if raw.strip():  # an empty file among others adds nothing; all empty is refused
                part = _decode(raw, str(p))
                parts.append(part if part.endswith("\n") else part + "\n")
        if not parts:
            raise CorpusError(f"corpus folder {path}: every .txt file in it is empty")
        text = "".join(parts)
        return Corpus(text, str(path), _sha256(text), files=len(parts))
    if not path.exists():
        raise CorpusError(f"corpus {path} does not exist (expected a text file or a folder)")
    if not path.is_file():
        raise CorpusError(f"corpus {path} is neither a regular file nor a folder")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from None
    text = _decode(raw, str(path))
    if not text.strip():
        raise CorpusError(f"corpus file {path} holds only whitespace")
    return Corpus(text, str(path), _sha256(text), files=1)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- split and vocabulary -----------------------------------------------------------------


def split_corpus(n_chars: int, val_fraction: float = 0.05, test_fraction: float = 0.05) -> Split:
    """Train = first block, val = next, test = last; contiguous, so no leakage by overlap."""
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < f < 0.5:
            raise CorpusError(f"{name} is {f!r} (expected a number between 0 and 0.5)")
    test_start = n_chars - int(n_chars * test_fraction)
    val_start = test_start - int(n_chars * val_fraction)
    return Split(train=(0, val_start), val=(val_start, test_start), test=(test_start, n_chars))


def build_vocab(train_text: str, options: VocabOptions = VocabOptions()) -> tuple[str, ...]:
    """UNK_CHAR first, then the kept characters in code-point order.

    Kept: characters seen at least `min_count` times; if more than `max_size - 1` remain,
    the most frequent ones (ties broken by code point, so the result is deterministic).
    """
    if options.min_count < 1:
        raise CorpusError(f"min_count is {options.min_count!r} (expected 1 or more)")
    if options.max_size is not None and options.max_size < 2:
        raise CorpusError(f"max vocabulary size is {options.max_size!r} (expected 2 or more)")
    counts = Counter(train_text)
    counts.pop(UNK_CHAR, None)  # it already has id UNK_ID
    kept = [ch for ch, n in counts.items() if n >= options.min_count]
    if options.max_size is not None and len(kept) > options.max_size - 1:
        kept = sorted(kept, key=lambda ch: (-counts[ch], ch))[: options.max_size - 1]
    if not kept:
        raise CorpusError(
            f"no character occurs {options.min_count} times or more in the training split"
        )
    return (UNK_CHAR, *sorted(kept))  # UNK_CHAR lands at UNK_ID == 0


@lru_cache(maxsize=8)
def _lookup(vocab: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    if any(len(ch) != 1 for ch in vocab):
        bad = next(ch for ch in vocab if len(ch) != 1)
        raise InvalidConfigError(f"vocab entry {bad!r} is not a single character")
    codes = np.array([ord(ch) for ch in vocab], dtype=np.uint32)
    order = np.argsort(codes, kind="stable")
    return codes[order], order.astype(np.int64)


def encode(text: str, config: ModelConfig) -> np.ndarray:
    """Text -> int64 ids of `config.vocab`; characters outside it become UNK_ID."""
    codes, ids = _lookup(config.vocab)
    points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    pos = np.searchsorted(codes, points).clip(max=len(codes) - 1)
    return np.where(codes[pos] == points, ids[pos], UNK_ID).astype(np.int64)


def decode(ids: Any, config: ModelConfig) -> str:
    """Ids -> text (UNK_ID gives UNK_CHAR)."""
    return "".join(config.vocab[int(i)] for i in np.asarray(ids).reshape(-1))


def check_long_enough(corpus: Corpus, split: Split, seq_len: int, streams: int) -> None:
    """Refuse, before training, a corpus whose training split cannot fill one step.

    One step reads `seq_len` characters (plus the next one as target) from each of
    `streams` contiguous streams; validation needs at least one character pair.
    """
    train_len = split.train[1] - split.train[0]
    needed = streams * seq_len + 1
    if train_len < needed:
        raise CorpusError(
            f"corpus {corpus.source} is too short: its training split has {train_len} "
            f"characters, one training step needs {needed} ({streams} streams x {seq_len} "
            "characters + 1); use a longer corpus or a smaller --batch-size/--seq-len"
        )
    if split.val[1] - split.val[0] < 2:
        raise CorpusError(
            f"corpus {corpus.source} is too short: its validation split has fewer than 2 characters"
        )


# ---- the record in the checkpoint ---------------------------------------------------------


def data_record(
    corpus: Corpus, split: Split, vocab: tuple[str, ...], options: VocabOptions
) -> dict[str, Any]:
    """What data.json holds: enough to re-read the corpus and cut the same held-out text."""
    train = split.text(corpus.text, "train")
    val = split.text(corpus.text, "val")
    vocab_set = set(vocab)
    return {
        "format": DATA_FORMAT,
        "source": corpus.source,
        "sha256": corpus.sha256,
        "chars": len(corpus.text),
        "files": corpus.files,
        "split": {name: list(getattr(split, name)) for name in SPLITS},
        "vocab": {
            "size": len(vocab),
            "max_size": options.max_size,
            "min_count": options.min_count,
            # Share of characters that map to UNK: how much the vocabulary options cost.
            "unk_share_train": _unk_share(train, vocab_set),
            "unk_share_val": _unk_share(val, vocab_set),
        },
    }


def _unk_share(text: str, vocab: set[str]) -> float:
    if not text:
        return 0.0
    return round(sum(1 for ch in text if ch not in vocab) / len(text), 6)


def split_from_record(data: dict[str, Any]) -> Split:
    try:
        ranges = {name: tuple(int(v) for v in data["split"][name]) for name in SPLITS}
    except (KeyError, TypeError, ValueError):
        raise CorpusError(
            f"data.json has no valid 'split' record (expected {{{', '.join(SPLITS)}}} ranges)"
        ) from None
    return Split(**ranges)


def corpus_from_record(data: dict[str, Any]) -> Corpus:
    """Re-read the corpus a checkpoint was trained on and check it is unchanged."""
    if not isinstance(data, dict) or "source" not in data or "sha256" not in data:
        raise CorpusError(
            "data.json is missing or has no 'source'/'sha256': cannot find the corpus"
        )
    corpus = load_corpus(data["source"])
    if corpus.sha256 != data["sha256"]:
        raise CorpusError(
            f"corpus {data['source']} changed since training: SHA-256 is {corpus.sha256}, "
            f"the checkpoint recorded {data['sha256']}"
        )
    return corpus


def held_out_text(data: dict[str, Any], split: str = "test") -> str:
    """The text of one split ("train", "val", "test") of the corpus recorded in data.json."""
    if split not in SPLITS:
        raise CorpusError(f"split {split!r} is unknown (expected one of {SPLITS})")
    ranges = split_from_record(data)
    return ranges.text(corpus_from_record(data).text, split)
