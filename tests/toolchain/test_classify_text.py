"""classify of text: the CSV of texts (every bad cell named by file, row and column), the
stratified split and its record, the vocabulary by char-lm's rules, padding invariance with
token ids, and the bag-of-characters baseline features."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from lstm_edge.runtime.config import UNK_CHAR, UNK_ID, ModelConfig
from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain import classify_metrics as cm
from lstm_edge.toolchain.classify_train import PAD, ClassifyObjective, pad
from lstm_edge.toolchain.model import EdgeLSTM

WORDS = {
    "en": "the and house water green small light tree",
    "de": "und der haus wasser grün klein licht baum",
    "fi": "ja talo vesi vihreä pieni valo puu kylä",
}


def write_texts(path: Path, n: int = 60, seed: int = 0, column: str = "text") -> Path:
    """n seeded sentences of three word lists ("languages"), one per row."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([column, "label"])
        for i in range(n):
            lang = list(WORDS)[i % 3]
            w.writerow([" ".join(rng.choice(WORDS[lang].split(), rng.integers(2, 6))), lang])
    return path


def test_reads_texts_and_detects_the_kind(tmp_path):
    path = write_texts(tmp_path / "t.csv", 30)
    assert cd.text_column_of(path, None) == "text"
    assert cd.text_column_of(path, "body") == "body"
    seqs = cd.read_text_csv(path)
    assert len(seqs) == 30 and seqs.classes == ("de", "en", "fi")
    rows = list(csv.reader(path.open(encoding="utf-8")))[1:]
    assert cd.texts(seqs, range(30)) == [r[0] for r in rows]
    assert [seqs.classes[k] for k in seqs.labels] == [r[1] for r in rows]
    assert seqs.ids[0] == "row 2" and seqs.lengths.tolist() == [len(r[0]) for r in rows]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("text,label\nhello,en\n ,de\n", "row 3, column 'text' is empty"),
        ("text,label\nhello,en\nhallo,\n", "row 3, column 'label' is empty"),
        ("text,label,split\nhello,en,train\nhallo,de,later\n", "row 3, column 'split': 'later'"),
        ("body,label\nhello,en\nhallo,de\n", "text column 'text' is not in the header"),
        ("text,label\nhello,en\nhallo,en\n", "every row has label 'en'"),
        ("text,label\nhello,en\nhallo\n", "row 3 has 1 cells"),
    ],
)
def test_bad_cells_name_file_row_and_column(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(cd.ClassifyDataError) as e:
        cd.read_text_csv(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_unknown_label_at_evaluation_and_class_without_training_example(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nhello,en\nhallo,de\nhej,sv\n", encoding="utf-8")
    with pytest.raises(cd.ClassifyDataError, match="row 4, column 'label': label 'sv' is not"):
        cd.read_text_csv(path, classes=("de", "en"))
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("text\nhello\n", encoding="utf-8")
    assert cd.read_text_csv(unlabelled, classes=("de", "en"), unlabelled=True).labels.tolist() == [
        -1
    ]
    split = tmp_path / "s.csv"
    split.write_text(
        "text,label,split\nhello,en,train\nhallo,de,val\nhi,en,test\nhej,de,test\n",
        encoding="utf-8",
    )
    with pytest.raises(cd.ClassifyDataError, match="class 'de' has no training sequence"):
        cd.split_sequences(cd.read_text_csv(split), 0.2, 0.2)


def test_stratified_split_record_and_sha256(tmp_path):
    path = write_texts(tmp_path / "t.csv", 90)
    seqs = cd.read_text_csv(path)
    splits = cd.split_sequences(seqs, 0.2, 0.2, seed=3)
    for s in ("train", "val", "test"):  # each class in its share: 30 per class
        counts = np.bincount(seqs.labels[splits[s]], minlength=3)
        assert counts.tolist() == [{"train": 18, "val": 6, "test": 6}[s]] * 3
    record = cd.data_record(
        seqs, splits, csv_path=path, columns=cd.CsvColumns(), count=0, seed=0, text_column="text"
    )
    again, again_splits = cd.sequences_from_record(record)
    assert cd.texts(again, range(len(again))) == cd.texts(seqs, range(len(seqs)))
    assert all((again_splits[s] == splits[s]).all() for s in splits)
    path.write_text(path.read_text(encoding="utf-8") + "extra,en\n", encoding="utf-8")
    with pytest.raises(cd.ClassifyDataError, match="changed since training"):
        cd.sequences_from_record(record)


def test_token_inputs_use_the_vocabulary_and_unk(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nabc,x\nabz,y\n", encoding="utf-8")
    seqs = cd.read_text_csv(path)
    config = ModelConfig(
        task="classify", hidden_size=4, num_layers=1, vocab=(UNK_CHAR, "a", "b", "c"),
        embed_size=2, classes=("x", "y"),
    )  # fmt: skip
    ids, labels = cd.select_inputs(seqs, config, np.array([1, 0]))
    assert [i.tolist() for i in ids] == [[1, 2, UNK_ID], [1, 2, 3]] and labels.tolist() == [1, 0]


def test_padded_token_batch_equals_each_sequence_alone():
    config = ModelConfig(
        task="classify", hidden_size=8, num_layers=2, vocab=(UNK_CHAR, *"abcdef"),
        embed_size=4, classes=("x", "y", "z"),
    )  # fmt: skip
    objective = ClassifyObjective("weighted-ce", "wce", "nats", "rows_per_s", (0.5, 1.0, 3.0))
    torch.manual_seed(0)
    model = EdgeLSTM(config).eval()
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 7, n) for n in (3, 11, 1, 7)]
    labels = np.array([0, 2, 1, 2])
    batch = pad(seqs, labels)
    assert batch.inputs.shape == (4, 11) and batch.inputs.dtype == np.int64
    assert (batch.targets == PAD).sum() == 4 * 11 - 22
    x, y = torch.from_numpy(batch.inputs), torch.from_numpy(batch.targets)
    with torch.no_grad():
        out, _ = model.forward_normalized(x)
        alone = 0.0
        for i, s in enumerate(seqs):
            one, _ = model.forward_normalized(torch.from_numpy(s)[None])
            torch.testing.assert_close(out[i, : len(s)], one[0], rtol=0, atol=1e-6)
            alone += float(objective(one, torch.full((1, len(s)), int(labels[i])), "sum"))
        assert float(objective(out, y, "sum")) == pytest.approx(alone, rel=1e-6)


def test_bag_of_characters_against_hand_counts():
    got = cm.bag_of_characters([np.array([1, 1, 2, 0]), np.array([3])], 4)
    np.testing.assert_array_equal(got, [[0.25, 0.5, 0.25, 0.0], [0.0, 0.0, 0.0, 1.0]])
