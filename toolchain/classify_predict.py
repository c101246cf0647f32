"""`lstm-edge classify`: a classify artifact's predictions for the sequences of a long-format
CSV, without torch (the runtime, numpy and the CSV reader only).

Each sequence is stepped from a zero state. Reported per sequence: the predicted class (the
last row's), its probabilities (softmax of the last logits), and the row from which the
running prediction is the final class with probability at least --threshold to the end
(the row a device acting on the running answer would have acted from); with a label column,
also the true class and the accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    confident_row: int | None  # 1-based row of the sequence, None: never confident
    label: str | None  # the CSV's label, if it has a label column


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
) -> list[Prediction]:
    from lstm_edge import runtime

    if not 0.0 < threshold <= 1.0:
        raise InputError(f"--threshold is {threshold!r} (expected a probability in (0, 1])")
    model = runtime.load(model_path, backend=backend)
    config = model.config
    CLASSIFY.require(config, "class predictions", "use lstm-edge validate or detect")
    columns = cd.CsvColumns(label_column, time_column, config.features)
    seqs = cd.read_csv(csv, columns, config.classes, unlabelled=True)
    out = []
    for i in range(len(seqs)):
        x = np.ascontiguousarray(seqs.rows(i)[None], dtype=np.float32)
        logits, _ = model.step(x, model.initial_state(1))
        z = logits[0].astype(np.float64)
        prob = np.exp(z - z.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        label = None if seqs.labels[i] < 0 else config.classes[seqs.labels[i]]
        out.append(
            Prediction(
                sequence=seqs.ids[i],
                rows=x.shape[1],
                predicted=config.classes[int(prob[-1].argmax())],
                probabilities={c: float(p) for c, p in zip(config.classes, prob[-1], strict=True)},
                confident_row=confident_row(prob, threshold),
                label=label,
            )
        )
    return out


def render(predictions: list[Prediction], threshold: float) -> Table:
    labelled = any(p.label is not None for p in predictions)
    table = Table(title=f"{len(predictions)} sequences")
    for col in ("sequence", "rows", "predicted", "probability", f"confident (p >= {threshold:g})"):
        table.add_column(col, justify="left" if col in ("sequence", "predicted") else "right")
    if labelled:
        table.add_column("label", justify="left")
    for p in predictions:
        cells = [
            p.sequence,
            str(p.rows),
            p.predicted,
            f"{p.probabilities[p.predicted]:.3f}",
            "-" if p.confident_row is None else f"row {p.confident_row}",
        ]
        if labelled:
            mark = "" if p.label == p.predicted else " (wrong)"
            cells.append(f"{p.label}{mark}")
        table.add_row(*cells)
    if labelled:
        hits = sum(p.label == p.predicted for p in predictions)
        table.caption = f"accuracy {hits}/{len(predictions)} = {hits / len(predictions):.1%}"
    return table
