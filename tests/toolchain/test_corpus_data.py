"""Corpora: reading and refusing (row 6 of bad-inputs), split, vocabulary, encode, held-out."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_edge.runtime.config import UNK_CHAR, UNK_ID, ModelConfig
from lstm_edge.toolchain import data
from lstm_edge.toolchain.data import CorpusError


def _config(vocab: tuple[str, ...]) -> ModelConfig:
    return ModelConfig(vocab=vocab, embed_size=4, hidden_size=4, num_layers=1)


# ---- bad corpora: refused with the file named, before any training ----------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (b"abc\x00def" * 10, "NUL bytes"),
        ("hello wörld".encode("utf-16"), "NUL bytes"),  # UTF-16 text: not UTF-8
        (b"caf\xe9 au lait " * 10, "not UTF-8"),  # Latin-1
        (bytes(range(1, 32)) * 20, "control characters"),  # decodes, but is not text
        (b"   \n\n  ", "only whitespace"),
    ],
)
def test_bad_corpus_file_is_refused_naming_it(tmp_path, content, words):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=words) as e:
        data.load_corpus(path)
    assert str(path) in str(e.value)


def test_binary_controls_are_category_cc_minus_whitespace():
    import sys
    import unicodedata

    cc = {chr(i) for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)) == "Cc"}
    matched = {chr(i) for i in range(sys.maxunicode + 1) if data._BINARY_CONTROLS.match(chr(i))}
    assert matched == cc - set("\t\n\r\f\v")


def test_missing_corpus_and_empty_folder_are_refused(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        data.load_corpus(tmp_path / "nope.txt")
    (tmp_path / "d").mkdir()
    with pytest.raises(CorpusError, match=r"holds no \.txt files"):
        data.load_corpus(tmp_path / "d")
    (tmp_path / "d" / "a.txt").write_bytes(b"")
    with pytest.raises(CorpusError, match=r"every \.txt file in it is empty"):
        data.load_corpus(tmp_path / "d")


def test_binary_file_inside_a_folder_is_named(tmp_path):
    (tmp_path / "a.txt").write_text("good text\n", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(CorpusError, match=r"b\.txt"):
        data.load_corpus(tmp_path)


def test_corpus_shorter_than_one_training_step_is_refused(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("x" * 100, encoding="utf-8")
    corpus = data.load_corpus(path)
    split = data.split_corpus(len(corpus.text))
    with pytest.raises(CorpusError, match=r"too short.*needs 129") as e:
        data.check_long_enough(corpus, split, seq_len=32, streams=4)
    assert str(path) in str(e.value)
    data.check_long_enough(corpus, split, seq_len=8, streams=4)  # 33 <= 90: fits


# ---- reading ------------------------------------------------------------------------------


def test_folder_is_read_in_path_order_and_hashed(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first\r\n", encoding="utf-8")
    (tmp_path / "sub" / "c.txt").write_text("third\n", encoding="utf-8")
    (tmp_path / "skip.md").write_text("not a .txt", encoding="utf-8")
    corpus = data.load_corpus(tmp_path)
    assert corpus.text == "first\nsecond\nthird\n"  # CRLF -> LF, a newline between files
    assert corpus.files == 3
    import hashlib

    assert corpus.sha256 == hashlib.sha256(corpus.text.encode()).hexdigest()


def test_builtin_corpus_is_the_python_docs():
    corpus = data.load_corpus(None)
    assert corpus.source == data.BUILTIN_SOURCE
    assert len(corpus.text) > 100_000
    from pydoc_data.topics import topics

    assert topics["assert"].strip() in corpus.text
    assert data.load_corpus(data.BUILTIN_SOURCE) == corpus


# ---- split and vocabulary -----------------------------------------------------------------


def test_split_is_contiguous_and_deterministic():
    s = data.split_corpus(1000, 0.1, 0.05)
    assert (s.train, s.val, s.test) == ((0, 850), (850, 950), (950, 1000))
    assert data.split_corpus(1000, 0.1, 0.05) == s
    text = "".join(chr(65 + i % 26) for i in range(1000))
    assert "".join(s.text(text, n) for n in data.SPLITS) == text


def test_vocab_keeps_unk_first_and_applies_cap_and_min_count():
    text = "aaaa bbb cc d" + UNK_CHAR
    assert data.build_vocab(text) == (UNK_CHAR, " ", "a", "b", "c", "d")
    # min_count 2 drops 'd'; a cap of 4 keeps the 3 most frequent: a(4) b(3) ' '(3)
    assert data.build_vocab(text, data.VocabOptions(min_count=2)) == (
        UNK_CHAR,
        " ",
        "a",
        "b",
        "c",
    )
    assert data.build_vocab(text, data.VocabOptions(max_size=4)) == (UNK_CHAR, " ", "a", "b")
    with pytest.raises(CorpusError, match="no character occurs 99 times"):
        data.build_vocab(text, data.VocabOptions(min_count=99))


def test_encode_matches_a_dict_lookup_and_decode_inverts_it():
    vocab = (UNK_CHAR, "\n", " ", "a", "é", "中", "😀")
    cfg = _config(vocab)
    text = "a é\n中😀zZ" + UNK_CHAR + "a"
    ids = data.encode(text, cfg)
    lookup = {ch: i for i, ch in enumerate(vocab)}
    assert ids.dtype == np.int64
    assert ids.tolist() == [lookup.get(ch, UNK_ID) for ch in text]
    assert data.decode(ids, cfg) == "".join(ch if ch in lookup else UNK_CHAR for ch in text)
    assert data.encode("", cfg).tolist() == []


# ---- the record and the held-out text -----------------------------------------------------


def test_held_out_text_rereads_the_same_split(tmp_path):
    path = tmp_path / "c.txt"
    text = "".join(f"line {i} of the corpus\n" for i in range(200))
    path.write_text(text, encoding="utf-8")
    corpus = data.load_corpus(path)
    split = data.split_corpus(len(corpus.text))
    vocab = data.build_vocab(split.text(corpus.text, "train"))
    record = data.data_record(corpus, split, vocab, data.VocabOptions())
    assert data.held_out_text(record, "test") == text[split.test[0] :]
    assert data.held_out_text(record, "val") == text[split.val[0] : split.val[1]]
    # The corpus changed since: refused, naming both hashes.
    path.write_text(text + "more", encoding="utf-8")
    with pytest.raises(CorpusError, match="changed since training"):
        data.held_out_text(record)
    with pytest.raises(CorpusError, match="unknown"):
        data.held_out_text(record, "nope")
    with pytest.raises(CorpusError, match=r"data\.json"):
        data.held_out_text({})
