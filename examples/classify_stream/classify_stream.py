"""Classify live sequences row by row: the running answer as the data arrives.

Uses only `lstm_edge.runtime` (numpy, plus onnxruntime for the ort backend): no torch.
Rows of a long-format CSV (a `sequence` id column and the model's feature columns) are read
one at a time from a file or from stdin, so it runs on a live feed:

    tail -n +1 -f feed.csv | python examples/classify_stream/classify_stream.py MODEL.onnx
    w00007 row 55: cooling (p 0.91)        <- the running answer became confident
    w00007 done after 269 rows: cooling (p 1.00), confident from row 55

Each sequence gets its own caller-owned state, started at zeros on its first row and
stepped once per row; the logits of a step are the running answer, those of the
sequence's last row its prediction. A sequence ends when the id changes from one row to
the next (or at the end of the input); the next one starts from a fresh state.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable

import numpy as np

from lstm_edge.runtime import LstmEdgeError, Model, load


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


class Running:
    """One open sequence: its state, rows seen and the row it became confident at."""

    def __init__(self, model: Model) -> None:
        self.state = model.initial_state(1)
        self.rows = 0
        self.prob = np.zeros(model.config.output_size)
        self.confident: int | None = None  # row since which the answer is confident
        self.confident_class = -1


def stream(model: Model, lines: Iterable[str], where: str, threshold: float) -> list[str]:
    """Print the running answer when it becomes confident and each sequence's final one;
    return the final classes in order."""
    config = model.config
    reader = csv.DictReader(lines)
    needed = ("sequence", *config.features)
    missing = [c for c in needed if c not in (reader.fieldnames or [])]
    if missing:
        raise LstmEdgeError(f"{where}: no column(s) {missing} (found {reader.fieldnames})")
    open_: dict[str, Running] = {}
    finals: list[str] = []
    last_id = None

    def finish(sid: str) -> None:
        run = open_.pop(sid)
        k = int(run.prob.argmax())
        since = (
            "never confident" if run.confident is None else f"confident from row {run.confident}"
        )
        print(
            f"{sid} done after {run.rows} rows: {config.classes[k]} (p {run.prob[k]:.2f}), {since}"
        )
        finals.append(config.classes[k])

    for line, record in enumerate(reader, start=2):  # row 1 is the header
        sid = record["sequence"]
        if last_id is not None and sid != last_id and last_id in open_:
            finish(last_id)  # ids changed: the previous sequence ended
        last_id = sid
        try:
            row = np.array([[float(record[c]) for c in config.features]], np.float32)
        except ValueError:
            raise LstmEdgeError(f"{where}: row {line} holds a value that is not a number") from None
        run = open_.setdefault(sid, Running(model))
        logits, run.state = model.step(row, run.state)
        run.rows += 1
        run.prob = softmax(logits[0].astype(np.float64))
        k = int(run.prob.argmax())
        if run.prob[k] < threshold:
            run.confident = None
        elif run.confident is None or k != run.confident_class:
            run.confident, run.confident_class = run.rows, k
            print(f"{sid} row {run.rows}: {config.classes[k]} (p {run.prob[k]:.2f})", flush=True)
    for sid in list(open_):
        finish(sid)
    return finals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="runs/classify/model.int8.onnx")
    parser.add_argument("--csv", help="a CSV file (default: stdin, e.g. a live feed)")
    parser.add_argument("--backend", default="ort", choices=("numpy", "ort", "c"))
    parser.add_argument("--threshold", type=float, default=0.9)
    args = parser.parse_args(argv)
    try:
        model = load(args.model, backend=args.backend)
        if model.config.task != "classify":
            raise LstmEdgeError(f"{args.model} is a {model.config.task} model (expected classify)")
        if args.csv is None:
            stream(model, sys.stdin, "stdin", args.threshold)
        else:
            with open(args.csv, newline="", encoding="utf-8") as f:
                stream(model, f, args.csv, args.threshold)
    except (LstmEdgeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
