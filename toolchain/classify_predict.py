"""`lstm-edge classify`: a classify artifact's predictions for the sequences of a long-format
CSV, or for a text model the texts given (or a CSV's text column), without torch (the
runtime, numpy and the CSV readers only).

Each sequence is stepped from a zero state. Reported per sequence: the predicted class (the
last row's), its probabilities (softmax of the last logits), and the row from which the
running prediction is the final class with probability at least --threshold to the end
(the row a device acting on the running answer would have acted from); with a label column,
also the true class and the accuracy. For a text the step is a character: the table names
the character at which the answer became confident.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from lstm_edge.runtime.errors import InputError
from lstm_edge.runtime.tasks.classify import CLASSIFY
from lstm_edge.toolchain import classify_data as cd


@dataclass(frozen=True)
class Prediction:
    sequence: str
    rows: int
    predicted: str
    probabilities: dict[str, float]
    confident_row: int | None  # 1-based step of the sequence, None: never confident
    label: str | None  # the CSV's label, if it has a label column
    unit: str = "row"  # what a step is: a "row" or a "char" (of a text)
    text: str | None = None  # the text classified (text models)


def confident_row(prob: np.ndarray, threshold: float) -> int | None:
    """The first row (1-based) from which every row's top class is the final one with
    probability >= threshold; None if the last row itself is below it."""
    final = prob[-1].argmax()
    ok = (prob.argmax(-1) == final) & (prob.max(-1) >= threshold)
    if not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[-1]) + 2 if bad.size else 1


def predict_csv(
    model_path: Path,
    csv: Path,
    *,
    threshold: float = 0.9,
    backend: str = "ort",
    label_column: str = cd.LABEL_COLUMN,
    time_column: str | None = None,
    text_column: str | None = None,
) -> list[Prediction]:
    """The predictions for each sequence of a CSV of the model's input kind: long format
    for a feature model, a text column (`text`, or `text_column`) for a text model."""
    model, config = _load(model_path, threshold, backend)
    columns = cd.CsvColumns(label_column, time_column, config.features or None)
    seqs = cd.read_for_model(csv, config, columns, text_column, unlabelled=True)
    inputs, labels = cd.select_inputs(seqs, config, np.arange(len(seqs)))
    return [
        _predict(model, x, seqs.ids[i], _label(config, labels[i]), threshold, text)
        for i, (x, text) in enumerate(zip(inputs, _texts(seqs, config), strict=True))
    ]


def _label(config: Any, label: int) -> str | None:
    return None if label < 0 else config.classes[label]


def _texts(seqs: cd.Sequences, config: Any) -> list[str | None]:
    return cd.texts(seqs, range(len(seqs))) if config.vocab else [None] * len(seqs)


def predict_texts(
    model_path: Path, texts: list[str], *, threshold: float = 0.9, backend: str = "ort"
) -> list[Prediction]:
    """The predictions for texts given on the command line (a text model only)."""
    from lstm_edge.toolchain.data import encode

    model, config = _load(model_path, threshold, backend)
    if not config.vocab:
        raise InputError(
            f"{model_path} classifies rows of features {', '.join(config.features)}, not text "
            "(use --csv with a long-format CSV)"
        )
    for k, text in enumerate(texts, 1):
        if not text.strip():
            raise InputError(f"text {k} is empty (expected characters to classify)")
    return [
        _predict(model, encode(t, config), f"text {k}", None, threshold, t)
        for k, t in enumerate(texts, 1)
    ]


def _load(model_path: Path, threshold: float, backend: str) -> tuple[Any, Any]:
    from lstm_edge import runtime

    if not 0.0 < threshold <= 1.0:
        raise InputError(f"--threshold is {threshold!r} (expected a probability in (0, 1])")
    model = runtime.load(model_path, backend=backend)
    CLASSIFY.require(model.config, "class predictions", "use lstm-edge validate or detect")
    return model, model.config


def _predict(
    model: Any, x: np.ndarray, name: str, label: str | None, threshold: float, text: str | None
) -> Prediction:
    """One sequence stepped from a zero state: its final class, probabilities and the
    step (row or character) from which it was confident."""
    classes = model.config.classes
    x = np.ascontiguousarray(x[None], dtype=model.config.spec.input_dtype)
    logits, _ = model.step(x, model.initial_state(1))
    z = logits[0].astype(np.float64)
    prob = np.exp(z - z.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    return Prediction(
        sequence=name,
        rows=x.shape[1],
        predicted=classes[int(prob[-1].argmax())],
        probabilities={c: float(p) for c, p in zip(classes, prob[-1], strict=True)},
        confident_row=confident_row(prob, threshold),
        label=label,
        unit="row" if text is None else "char",
        text=text,
    )


def _confident(p: Prediction) -> str:
    """ "row 7", or for a text "char 5 ('l')" (the character it became confident at)."""
    k = p.confident_row
    if p.text is None or k is None:
        return f"{p.unit} {k}"
    return f"char {k} ({p.text[k - 1]!r})"


def render(predictions: list[Prediction], threshold: float) -> Table:
    labelled = any(p.label is not None for p in predictions)
    texts = any(p.text is not None for p in predictions)
    table = Table(title=f"{len(predictions)} sequences")
    cols = ["sequence", *(["text"] if texts else []), "chars" if texts else "rows", "predicted"]
    cols += ["probabilities" if texts else "probability", f"confident (p >= {threshold:g})"]
    for col in cols:
        left = col in ("sequence", "text", "predicted", "probabilities")
        table.add_column(col, justify="left" if left else "right", overflow="fold")
    if labelled:
        table.add_column("label", justify="left")
    for p in predictions:
        cells = [p.sequence, *([p.text or ""] if texts else []), str(p.rows), p.predicted]
        if texts:  # every class, most probable first
            ranked = sorted(p.probabilities.items(), key=lambda kv: -kv[1])
            cells.append(" ".join(f"{c} {v:.3f}" for c, v in ranked))
        else:
            cells.append(f"{p.probabilities[p.predicted]:.3f}")
        cells.append("-" if p.confident_row is None else _confident(p))
        if labelled:
            mark = "" if p.label == p.predicted else " (wrong)"
            cells.append(f"{p.label}{mark}")
        table.add_row(*cells)
    if labelled:
        hits = sum(p.label == p.predicted for p in predictions)
        table.caption = f"accuracy {hits}/{len(predictions)} = {hits / len(predictions):.1%}"
    return table
