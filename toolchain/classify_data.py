"""Labelled sequences for the classify task: the built-in equipment-condition set, long-format
CSV files, stratified splits by sequence, and the data.json record that rebuilds them.

A `Sequences` holds every sequence's rows back to back (`values`, float64 [rows, F]), where
each starts (`starts`, [n + 1] offsets), its class (`labels`, index into `classes`) and its
id. No torch here: only numpy and the stdlib.

The built-in set (`builtin_sequences`) is windows of a simulated motor like the forecast
task's machine signal (load shifts, ambient cycle, current, lagged motor temperature,
vibration; 15-minute rows), each window from a machine in one condition:

- normal (about 75%): nothing wrong;
- cooling (10%): from a random row in the first half on, the motor gets 5-12 deg C of
  extra heat, so motor_temp climbs (time constant 6 rows) beyond what its load explains;
- bearing (10%): from such a row on, vibration bursts (each row adds 0-2.5 mm/s with
  probability 0.4);
- sensor (5%): a dropped reading: one to three rows where motor_temp, vibration or current
  reads 0, then normal again (the answer must be remembered to the end).

Window lengths are log-uniform from 6 to 300 rows (a median of ~44), so many decisions
rest on a few rows. Everything is drawn from one `numpy.random.Generator(seed)` in a fixed
order: (count, seed) fix the set.

A CSV is long format, one row per time step: a sequence-id column (`sequence`), the label
column (`label`, or --label-column), an optional time column (--time-column, must increase
within a sequence), an optional `split` column (train/val/test, kept as given) and feature
columns (the rest, or --features). A sequence's rows are contiguous, its label and split
constant, and it has at least two rows. Every problem is a ClassifyDataError naming the
file, row (the header is row 1) and column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.files import sha256_file
from lstm_edge.runtime.tasks.classify import CLASSIFY
from lstm_edge.toolchain import series as series_mod
from lstm_edge.toolchain.data import SPLITS

BUILTIN_SOURCE = "builtin:machine-condition"
BUILTIN_COLUMNS = series_mod.BUILTIN_COLUMNS
BUILTIN_CLASSES = ("normal", "cooling", "bearing", "sensor")
CLASS_SHARE = (0.76, 0.10, 0.09, 0.05)
BUILTIN_SEQUENCES = 2400
MIN_LEN, MAX_LEN = 6, 300
SEQUENCE_COLUMN = "sequence"
LABEL_COLUMN = "label"
SPLIT_COLUMN = "split"
DATA_FORMAT = 1
NOISE_SD = {"load": 0.02, "ambient_temp": 0.3, "current": 0.4, "motor_temp": 0.5, "vibration": 0.25}


class ClassifyDataError(LstmEdgeError):
    """Labelled sequences that cannot be used (a bad cell, a bad sequence, a bad split)."""


@dataclass(frozen=True)
class Sequences:
    columns: tuple[str, ...]  # feature columns, in input order
    values: np.ndarray  # float64 [rows, F], sequence after sequence
    starts: np.ndarray  # int64 [n + 1]: sequence i is rows starts[i]:starts[i + 1]
    labels: np.ndarray  # int64 [n], index into classes
    classes: tuple[str, ...]
    ids: tuple[str, ...]
    split: tuple[str, ...] | None  # per sequence, from a split column; None: make one
    source: str
    label_rows: tuple[int, ...] = ()  # CSV: the file row of each sequence's first row

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def rows(self, i: int) -> np.ndarray:
        return self.values[self.starts[i] : self.starts[i + 1]]


# ---- the built-in set --------------------------------------------------------------------------


def builtin_sequences(count: int = BUILTIN_SEQUENCES, seed: int = 0) -> Sequences:
    """The equipment-condition windows described in the module docstring."""
    rng = np.random.default_rng(seed)
    parts, labels = [], []
    for _ in range(count):
        length = round(math.exp(rng.uniform(math.log(MIN_LEN), math.log(MAX_LEN))))
        label = int(rng.choice(len(BUILTIN_CLASSES), p=CLASS_SHARE))
        parts.append(_window(rng, length, BUILTIN_CLASSES[label]))
        labels.append(label)
    lengths = [p.shape[0] for p in parts]
    return Sequences(
        columns=BUILTIN_COLUMNS,
        values=np.concatenate(parts),
        starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=np.array(labels, np.int64),
        classes=BUILTIN_CLASSES,
        ids=tuple(f"w{i:05d}" for i in range(count)),
        split=None,
        source=f"built-in machine-condition windows (seed {seed}, {count} sequences)",
    )


def _window(rng: np.random.Generator, length: int, kind: str) -> np.ndarray:
    """One window [length, 5] of the simulated motor in condition `kind`."""
    t = int(rng.integers(series_mod.ROWS_PER_DAY)) + np.arange(length)
    hour = (t % series_mod.ROWS_PER_DAY) * 24.0 / series_mod.ROWS_PER_DAY
    load = series_mod._load_schedule(rng, hour)
    ambient = 20.0 + 4.0 * np.cos(2 * np.pi * (hour - 15.0) / 24.0) + rng.uniform(-3.0, 3.0)
    onset = int(rng.integers(0, max(1, length // 2)))
    heat, bursts = np.zeros(length), np.zeros(length)
    if kind == "cooling":
        heat[onset:] = rng.uniform(5.0, 12.0)
    elif kind == "bearing":
        n = length - onset
        bursts[onset:] = (rng.random(n) < 0.4) * rng.uniform(0.0, 2.5, n)
    age = rng.uniform(0.0, 3.0)
    motor = series_mod._thermal_lag(ambient + 8.0 + 32.0 * load**2 + heat + age, tau_rows=6.0)
    clean = {
        "load": load,
        "ambient_temp": ambient,
        "current": 3.0 + 17.0 * load,
        "motor_temp": motor,
        "vibration": 1.0 + 2.0 * load + age / 7.5 + bursts,
    }
    values = np.stack(
        [clean[c] + rng.normal(0.0, NOISE_SD[c], length) for c in BUILTIN_COLUMNS], axis=1
    )
    if kind == "sensor":
        # a dropped reading: one to three rows of one channel read 0, as a loose connector
        col = BUILTIN_COLUMNS.index(("motor_temp", "vibration", "current")[int(rng.integers(3))])
        values[onset : onset + int(rng.integers(1, 4)), col] = 0.0
    return values


# ---- CSV ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvColumns:
    label: str = LABEL_COLUMN
    time: str | None = None
    features: tuple[str, ...] | None = None  # None: every other column


def read_csv(
    path: str | Path,
    columns: CsvColumns = CsvColumns(),
    classes: Sequence[str] | None = None,
    *,
    unlabelled: bool = False,
) -> Sequences:
    """A long-format CSV (module docstring). With `classes` (a trained model's), labels must
    be among them (an unknown label is an error naming its row); without, the classes are
    the labels found, sorted. With `unlabelled` (and `classes`), a file without the label
    column is read with every label -1."""
    path = Path(path).expanduser().resolve()
    header, cells, rows = _read_cells(path)
    if unlabelled and classes is not None and columns.label not in header:
        return _unlabelled(path, header, cells, rows, columns, tuple(classes))
    return read_csv_cells(path, header, cells, rows, columns, classes)


def read_csv_cells(
    path: Path,
    header: list[str],
    cells: list[list[str]],
    rows: list[int],
    columns: CsvColumns,
    classes: Sequence[str] | None,
) -> Sequences:
    """read_csv after the file is read: `cells` the data rows, `rows` their file rows."""
    for kind, name in (("sequence", SEQUENCE_COLUMN), ("label", columns.label)):
        if name not in header:
            raise ClassifyDataError(
                f"{path}: {kind} column {name!r} is not in the header (columns: "
                f"{', '.join(header)})"
            )
    if columns.time is not None and columns.time not in header:
        raise ClassifyDataError(f"{path}: time column {columns.time!r} is not in the header")
    special = {SEQUENCE_COLUMN, columns.label, columns.time, SPLIT_COLUMN}
    features = columns.features or tuple(h for h in header if h not in special)
    for name in features:
        if name not in header or name in special:
            raise ClassifyDataError(
                f"{path}: feature column {name!r} is not a feature column of the header "
                f"(columns: {', '.join(header)})"
            )
    if not features:
        raise ClassifyDataError(f"{path}: no feature columns besides sequence/label/time/split")
    col = {name: header.index(name) for name in header}
    values = np.empty((len(cells), len(features)))
    for j, name in enumerate(features):
        k = col[name]
        for i, raw in enumerate(cells):
            values[i, j] = series_mod._number(raw[k], path, rows[i], name, "")
    groups = _groups(path, cells, rows, col)
    if columns.time is not None:
        for a, b in groups:
            series_mod._check_time(
                path, [c[col[columns.time]] for c in cells[a:b]], rows[a:b], columns.time
            )
    label_names = [
        _constant(path, cells, rows, a, b, col[columns.label], columns.label) for a, b in groups
    ]
    split = None
    if SPLIT_COLUMN in col:
        split = tuple(
            _constant(path, cells, rows, a, b, col[SPLIT_COLUMN], SPLIT_COLUMN) for a, b in groups
        )
        for (a, _), s in zip(groups, split, strict=True):
            if s not in SPLITS:
                raise ClassifyDataError(
                    f"{path}: row {rows[a]}, column {SPLIT_COLUMN!r}: {s!r} is not a split "
                    f"(expected one of {', '.join(SPLITS)})"
                )
    known = tuple(classes) if classes is not None else tuple(sorted(set(label_names)))
    index = {c: i for i, c in enumerate(known)}
    for (a, _), name in zip(groups, label_names, strict=True):
        if name not in index:
            raise ClassifyDataError(
                f"{path}: row {rows[a]}, column {columns.label!r}: label {name!r} is not a "
                f"class of the model (expected one of {', '.join(known)})"
            )
    if len(known) < 2:
        raise ClassifyDataError(
            f"{path}: every sequence has label {known[0]!r} (expected 2+ classes)"
        )
    return Sequences(
        columns=tuple(features),
        values=values,
        starts=np.array([a for a, _ in groups] + [len(cells)], np.int64),
        labels=np.array([index[n] for n in label_names], np.int64),
        classes=known,
        ids=tuple(cells[a][col[SEQUENCE_COLUMN]].strip() for a, _ in groups),
        split=split,
        source=str(path),
        label_rows=tuple(rows[a] for a, _ in groups),
    )


def _unlabelled(
    path: Path,
    header: list[str],
    cells: list,
    rows: list[int],
    columns: CsvColumns,
    classes: tuple[str, ...],
) -> Sequences:
    """read_csv of a file without labels: a dummy label column of the first class."""
    label = "\x00label"
    filled = [[*c, classes[0]] for c in cells]
    seqs = read_csv_cells(
        path,
        [*header, label],
        filled,
        rows,
        CsvColumns(label, columns.time, columns.features),
        classes,
    )
    return Sequences(
        seqs.columns,
        seqs.values,
        seqs.starts,
        np.full(len(seqs), -1, np.int64),
        seqs.classes,
        seqs.ids,
        seqs.split,
        seqs.source,
        seqs.label_rows,
    )


def _read_cells(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    return series_mod.read_cells(path, ClassifyDataError)


def _groups(
    path: Path, cells: list[list[str]], rows: list[int], col: dict
) -> list[tuple[int, int]]:
    """[start, end) cell ranges of the sequences: contiguous runs of one id, 2+ rows each."""
    k = col[SEQUENCE_COLUMN]
    groups: list[tuple[int, int]] = []
    seen: dict[str, int] = {}
    start = 0
    for i in range(1, len(cells) + 1):
        if i < len(cells) and cells[i][k].strip() == cells[start][k].strip():
            continue
        sid = cells[start][k].strip()
        if not sid:
            raise ClassifyDataError(
                f"{path}: row {rows[start]}, column {SEQUENCE_COLUMN!r} is empty"
            )
        if sid in seen:
            raise ClassifyDataError(
                f"{path}: row {rows[start]}, column {SEQUENCE_COLUMN!r}: sequence {sid!r} "
                f"continues after other rows (it started at row {seen[sid]}; expected the rows "
                "of a sequence together)"
            )
        if i - start < 2:
            raise ClassifyDataError(
                f"{path}: row {rows[start]}, column {SEQUENCE_COLUMN!r}: sequence {sid!r} has "
                "one row (expected at least 2 rows per sequence)"
            )
        seen[sid] = rows[start]
        groups.append((start, i))
        start = i
    return groups


def _constant(path: Path, cells: list, rows: list[int], a: int, b: int, k: int, name: str) -> str:
    """The value of column k over cells[a:b], which must be one non-empty value."""
    first = cells[a][k].strip()
    if not first:
        raise ClassifyDataError(f"{path}: row {rows[a]}, column {name!r} is empty")
    for i in range(a + 1, b):
        if cells[i][k].strip() != first:
            raise ClassifyDataError(
                f"{path}: row {rows[i]}, column {name!r}: {cells[i][k]!r} differs from "
                f"{first!r} of the sequence's first row {rows[a]} (expected one {name} per "
                "sequence)"
            )
    return first


# ---- splits and statistics ---------------------------------------------------------------------


def split_sequences(
    data: Sequences, val_fraction: float, test_fraction: float, seed: int = 0
) -> dict[str, np.ndarray]:
    """Sequence indices per split: the CSV's split column, else stratified by class (each
    class's sequences shuffled with `seed`, fractions of each to val and test)."""
    if data.split is not None:
        out = {
            s: np.array([i for i, v in enumerate(data.split) if v == s], np.int64) for s in SPLITS
        }
    else:
        rng = np.random.default_rng(seed)
        parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
        for c in range(len(data.classes)):
            idx = rng.permutation(np.flatnonzero(data.labels == c))
            n_test = round(len(idx) * test_fraction)
            n_val = round(len(idx) * val_fraction)
            parts["test"].append(idx[:n_test])
            parts["val"].append(idx[n_test : n_test + n_val])
            parts["train"].append(idx[n_test + n_val :])
        out = {s: np.sort(np.concatenate(p)).astype(np.int64) for s, p in parts.items()}
    counts = np.bincount(data.labels[out["train"]], minlength=len(data.classes))
    for c, n in enumerate(counts):
        if n == 0:
            raise ClassifyDataError(
                f"{data.source}: class {data.classes[c]!r} has no training sequence (expected "
                "at least one of every class in the train split)"
            )
    for s in ("val", "test"):
        if not len(out[s]):
            raise ClassifyDataError(f"{data.source}: the {s} split holds no sequence")
    return out


def feature_stats(
    data: Sequences, train: np.ndarray, features: Sequence[str]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of each of `features` over the training sequences' rows; a missing or
    constant one is refused, naming it."""
    for f in features:
        if f not in data.columns:
            raise ClassifyDataError(
                f"feature column {f!r} is not a column of {data.source} ({', '.join(data.columns)})"
            )
    rows = np.concatenate(select(data, features, train)[0])
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    for name, s, m in zip(features, std, mean, strict=True):
        if not s > 1e-9 * max(1.0, abs(m)):
            raise ClassifyDataError(
                f"feature column {name!r} of {data.source} is constant on the training split "
                f"(value {m:g}): leave it out with --features"
            )
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


# ---- the record in the checkpoint --------------------------------------------------------------


def data_sha256(data: Sequences) -> str:
    """Of the values, offsets and labels (little-endian): a changed generator is caught too."""
    h = hashlib.sha256()
    for arr, dtype in ((data.values, "<f8"), (data.starts, "<i8"), (data.labels, "<i8")):
        h.update(np.ascontiguousarray(arr, dtype=dtype).tobytes())
    return h.hexdigest()


def data_record(
    data: Sequences,
    splits: dict[str, np.ndarray],
    *,
    csv_path: Path | None,
    columns: CsvColumns,
    count: int,
    seed: int,
    text_column: str | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": DATA_FORMAT,
        "task": CLASSIFY.name,
        "sequences": len(data),
        "rows": int(data.starts[-1]),
        "columns": list(data.columns),
        "classes": list(data.classes),
        "split": {s: splits[s].tolist() for s in SPLITS},
        "split_kind": "column" if data.split is not None else "stratified by class",
        "class_counts": {
            s: np.bincount(data.labels[splits[s]], minlength=len(data.classes)).tolist()
            for s in SPLITS
        },
        "values_sha256": data_sha256(data),
    }
    if csv_path is None:
        record.update(source=BUILTIN_SOURCE, builtin={"sequences": count, "seed": seed})
    else:
        path = Path(csv_path).expanduser().resolve()
        record.update(
            source=str(path),
            sha256=sha256_file(path),
            label_column=columns.label,
            time_column=columns.time,
        )
        if text_column is not None:
            record["text_column"] = text_column
    return record


def sequences_from_record(data: dict[str, Any]) -> tuple[Sequences, dict[str, np.ndarray]]:
    """The sequences and splits a checkpoint was trained on, checked unchanged."""
    if not isinstance(data, dict) or data.get("task") != CLASSIFY.name or "source" not in data:
        raise ClassifyDataError("data.json is missing or is not a classify data record")
    try:
        if data["source"] == BUILTIN_SOURCE:
            seqs = builtin_sequences(
                int(data["builtin"]["sequences"]), int(data["builtin"]["seed"])
            )
        else:
            path = Path(data["source"])
            if path.is_file() and sha256_file(path) != data["sha256"]:
                raise ClassifyDataError(
                    f"CSV file {path} changed since training: its SHA-256 is "
                    f"{sha256_file(path)}, the checkpoint recorded {data['sha256']}"
                )
            if data.get("text_column") is not None:
                seqs = read_text_csv(
                    path, data["text_column"], data["label_column"], data["classes"]
                )
            else:
                cols = CsvColumns(data["label_column"], data["time_column"], tuple(data["columns"]))
                seqs = read_csv(path, cols, data["classes"])
        splits = {s: np.asarray(data["split"][s], np.int64) for s in SPLITS}
        expected = data["values_sha256"]
    except (KeyError, TypeError, ValueError) as e:
        raise ClassifyDataError(f"data.json has an invalid classify data record ({e!r})") from None
    if data_sha256(seqs) != expected:
        raise ClassifyDataError(
            f"{seqs.source} differs from the data the checkpoint was trained on (SHA-256)"
        )
    return seqs, splits


def select(
    data: Sequences, features: Sequence[str], index: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The sequences `index` as float32 arrays [len, F] of the columns `features`, and
    their labels."""
    cols = [data.columns.index(f) for f in features]
    return [np.ascontiguousarray(data.rows(i)[:, cols], np.float32) for i in index], data.labels[
        index
    ]


def write_csv(data: Sequences, path: str | Path, index: Sequence[int] | None = None) -> None:
    """`data`'s sequences `index` (default: all) as a long-format CSV: sequence, time (row
    number within the sequence), the feature columns (full precision) and label."""
    index = range(len(data)) if index is None else index
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([SEQUENCE_COLUMN, "time", *data.columns, LABEL_COLUMN])
    for i in index:
        for t, row in enumerate(data.rows(i)):
            writer.writerow(
                [data.ids[i], t, *(repr(float(v)) for v in row), data.classes[data.labels[i]]]
            )
    Path(path).write_text(out.getvalue(), encoding="utf-8")


# ---- text: one sequence of characters per row ---------------------------------------------------
# A CSV with a text column (`text`, or --text-column) and a label column is the token kind:
# one row per sequence, its characters the steps (the char-lm vocabulary rules: built from
# the training split, rare characters to UNK). Optional columns: `sequence` (an id; default
# "row N") and `split`. A text is held as its code points in `values` [chars, 1], so the
# splits, the record and its SHA-256 are the float kind's.

TEXT_COLUMN = "text"


def text_column_of(path: str | Path | None, given: str | None) -> str | None:
    """The text column if the CSV is the token kind (--text-column given, or the header
    has a `text` column), else None."""
    if given is not None or path is None:
        return given
    header, _, _ = _read_cells(Path(path).expanduser().resolve())
    return TEXT_COLUMN if TEXT_COLUMN in header else None


def read_text_csv(
    path: str | Path,
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    classes: Sequence[str] | None = None,
    *,
    unlabelled: bool = False,
) -> Sequences:
    """A text CSV (see above). With `classes` (a trained model's), every label must be one
    of them; with `unlabelled` (and `classes`) a file without the label column is read with
    every label -1. Every bad cell is a ClassifyDataError naming file, row and column."""
    path = Path(path).expanduser().resolve()
    header, cells, rows = _read_cells(path)
    no_labels = unlabelled and classes is not None and label_column not in header
    for kind, name in (("text", text_column), ("label", None if no_labels else label_column)):
        if name is not None and name not in header:
            raise ClassifyDataError(
                f"{path}: {kind} column {name!r} is not in the header (columns: "
                f"{', '.join(header)})"
            )
    col = {name: header.index(name) for name in header}
    texts, names, split, ids = [], [], [], []
    for raw, row in zip(cells, rows, strict=True):
        text = raw[col[text_column]]
        if not text.strip():
            raise ClassifyDataError(f"{path}: row {row}, column {text_column!r} is empty")
        texts.append(text)
        ids.append(raw[col[SEQUENCE_COLUMN]].strip() if SEQUENCE_COLUMN in col else f"row {row}")
        if not no_labels:
            names.append(_cell(path, raw, row, col, label_column))
        if SPLIT_COLUMN in col:
            split.append(_cell(path, raw, row, col, SPLIT_COLUMN))
            if split[-1] not in SPLITS:
                raise ClassifyDataError(
                    f"{path}: row {row}, column {SPLIT_COLUMN!r}: {split[-1]!r} is not a split "
                    f"(expected one of {', '.join(SPLITS)})"
                )
    known = tuple(classes) if classes is not None else tuple(sorted(set(names)))
    index = {c: i for i, c in enumerate(known)}
    for name, row in zip(names, rows, strict=False):
        if name not in index:
            raise ClassifyDataError(
                f"{path}: row {row}, column {label_column!r}: label {name!r} is not a class of "
                f"the model (expected one of {', '.join(known)})"
            )
    if len(known) < 2:
        raise ClassifyDataError(f"{path}: every row has label {known[0]!r} (expected 2+ classes)")
    lengths = [len(t) for t in texts]
    return Sequences(
        columns=(text_column,),
        values=np.array([ord(ch) for t in texts for ch in t], np.float64)[:, None],
        starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=np.array([index[n] for n in names] if names else [-1] * len(texts), np.int64),
        classes=known,
        ids=tuple(ids),
        split=tuple(split) if split else None,
        source=str(path),
        label_rows=tuple(rows),
    )


def _cell(path: Path, raw: list[str], row: int, col: dict[str, int], name: str) -> str:
    value = raw[col[name]].strip()
    if not value:
        raise ClassifyDataError(f"{path}: row {row}, column {name!r} is empty")
    return value


def texts(data: Sequences, index: Sequence[int]) -> list[str]:
    """The texts of sequences `index` of a text CSV's Sequences."""
    return ["".join(map(chr, data.rows(i)[:, 0].astype(np.int64))) for i in index]


def select_inputs(
    data: Sequences, config: Any, index: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The model inputs of sequences `index` and their labels: token ids (int64 [len]) of
    the texts for a model with a vocabulary, else float32 rows of its feature columns."""
    if not config.vocab:
        return select(data, config.features, index)
    from lstm_edge.toolchain.data import encode

    return [encode(t, config) for t in texts(data, index)], data.labels[index]


def read_for_model(
    path: str | Path, config: Any, columns: CsvColumns, text_column: str | None = None,
    *, unlabelled: bool = False,
) -> Sequences:  # fmt: skip
    """A CSV of the model's input kind: a text CSV for a model with a vocabulary."""
    if config.vocab:
        return read_text_csv(
            path, text_column or TEXT_COLUMN, columns.label, config.classes, unlabelled=unlabelled
        )
    return read_csv(path, columns, config.classes, unlabelled=unlabelled)
