"""classify's data: the built-in set, the long-format CSV reader (every bad cell named by
file, row and column), stratified splits by sequence and the data.json record."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.toolchain import classify_data as cd

HEADER = "sequence,time,a,b,label"


def write(tmp_path, rows: list[str], header: str = HEADER):
    path = tmp_path / "d.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


GOOD = ["s1,0,1.0,2.0,x", "s1,1,1.5,2.5,x", "s2,0,3.0,1.0,y", "s2,1,3.5,1.5,y", "s2,2,4,0,y"]


def test_reads_long_format(tmp_path):
    seqs = cd.read_csv(write(tmp_path, GOOD), cd.CsvColumns(time="time"))
    assert seqs.columns == ("a", "b") and seqs.classes == ("x", "y")
    assert seqs.ids == ("s1", "s2") and seqs.lengths.tolist() == [2, 3]
    np.testing.assert_array_equal(seqs.rows(1), [[3.0, 1.0], [3.5, 1.5], [4.0, 0.0]])
    assert seqs.labels.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("rows", "columns", "classes", "message"),
    [
        (
            ["s1,0,1,2,x", "s1,1,1,2,y"],
            {},
            None,
            r"row 3, column 'label': 'y' differs from 'x' of the sequence's first row 2",
        ),
        (
            ["s1,0,1,2,x", "s2,0,1,2,y", "s2,1,1,2,y"],
            {},
            None,
            r"row 2, column 'sequence': sequence 's1' has one row",
        ),
        (GOOD, {}, ("x",), r"row 4, column 'label': label 'y' is not a class of the model"),
        (["s1,0,1,2,x", "s1,1,oops,2,x"], {}, None, r"row 3, column 'a': 'oops' is not a number"),
        (["s1,0,1,2,x", "s1,1,,2,x"], {}, None, r"row 3, column 'a' is empty"),
        (["s1,0,1,2,x", "s1,1,inf,2,x"], {}, None, r"row 3, column 'a' is 'inf'"),
        (
            ["s1,5,1,2,x", "s1,5,1,2,x"],
            {"time": "time"},
            None,
            r"row 3, column 'time': time '5' is not after",
        ),
        (
            ["s1,0,1,2,x", "s1,1,1,2,x", "s2,0,1,2,y", "s2,1,1,2,y", "s1,2,1,2,x", "s1,3,1,2,x"],
            {},
            None,
            r"row 6, column 'sequence': sequence 's1' continues after other rows",
        ),
        (["s1,0,1,2", "s1,1,1,2,x"], {}, None, r"row 2 has 4 cells \(expected 5"),
        (["s1,0,1,2,", "s1,1,1,2,"], {}, None, r"row 2, column 'label' is empty"),
    ],
)
def test_bad_cells_name_file_row_and_column(tmp_path, rows, columns, classes, message):
    path = write(tmp_path, rows)
    # ClassifyDataError, or SeriesError from the number and time checks shared with forecast
    with pytest.raises(LstmEdgeError, match=message) as e:
        cd.read_csv(path, cd.CsvColumns(**columns), classes)
    assert str(path) in str(e.value) and e.value.exit_status == 2


def test_split_column_and_class_without_training_example(tmp_path):
    header = "sequence,a,label,split"
    rows = [
        "s1,1,x,train",
        "s1,2,x,train",
        "s2,1,y,test",
        "s2,3,y,test",
        "s3,0,x,val",
        "s3,1,x,val",
    ]
    seqs = cd.read_csv(write(tmp_path, rows, header))
    assert seqs.split == ("train", "test", "val")
    with pytest.raises(cd.ClassifyDataError, match="class 'y' has no training sequence"):
        cd.split_sequences(seqs, 0.2, 0.2)
    bad = ["s1,1,x,train", "s1,2,x,later"]
    with pytest.raises(cd.ClassifyDataError, match=r"row 3, column 'split': 'later' differs"):
        cd.read_csv(write(tmp_path, bad, header))
    bad = ["s1,1,x,dev", "s1,2,x,dev"]
    with pytest.raises(cd.ClassifyDataError, match=r"row 2, column 'split': 'dev' is not a split"):
        cd.read_csv(write(tmp_path, bad, header))


def test_builtin_set_is_seeded_imbalanced_and_varied():
    a, b = cd.builtin_sequences(300, seed=1), cd.builtin_sequences(300, seed=1)
    assert cd.data_sha256(a) == cd.data_sha256(b)
    assert cd.data_sha256(a) != cd.data_sha256(cd.builtin_sequences(300, seed=2))
    counts = np.bincount(a.labels, minlength=4)
    assert counts[0] > 0.6 * len(a) and counts[3] < 0.12 * len(a) and counts.min() > 0
    assert a.lengths.min() >= cd.MIN_LEN and a.lengths.max() <= cd.MAX_LEN
    assert a.lengths.min() < 10 and a.lengths.max() > 150  # a few to a few hundred
    # a dropped reading is in the data: a zero in a sensor column of a 'sensor' window
    sensor = [i for i in range(len(a)) if a.labels[i] == 3]
    assert all((a.rows(i)[:, 2:] == 0).any() for i in sensor)


def test_stratified_split_and_record_round_trip(tmp_path):
    seqs = cd.builtin_sequences(400, seed=0)
    splits = cd.split_sequences(seqs, 0.15, 0.15, seed=0)
    every = np.concatenate(list(splits.values()))
    assert sorted(every.tolist()) == list(range(len(seqs)))  # by sequence, no overlap
    total = np.bincount(seqs.labels, minlength=4)
    for name in ("val", "test"):
        share = np.bincount(seqs.labels[splits[name]], minlength=4) / total
        np.testing.assert_allclose(share, 0.15, atol=0.05)  # every class ~15%
    record = cd.data_record(seqs, splits, csv_path=None, columns=cd.CsvColumns(), count=400, seed=0)
    again, again_splits = cd.sequences_from_record(record)
    assert cd.data_sha256(again) == record["values_sha256"]
    assert all((again_splits[k] == splits[k]).all() for k in splits)
    # a CSV changed after training is refused, naming it
    path = tmp_path / "d.csv"
    cd.write_csv(seqs, path, range(40))
    small = cd.read_csv(path, cd.CsvColumns(time="time"))
    rec = cd.data_record(
        small,
        cd.split_sequences(small, 0.2, 0.2),
        csv_path=path,
        columns=cd.CsvColumns(time="time"),
        count=0,
        seed=0,
    )
    assert cd.data_sha256(cd.sequences_from_record(rec)[0]) == rec["values_sha256"]
    path.write_text(path.read_text().replace("normal", "normal", 1) + "\n")
    with pytest.raises(cd.ClassifyDataError, match="changed since training"):
        cd.sequences_from_record(rec)
