"""Watch a live sensor feed: forecast each row, score it, alert on anomalies.

Uses only `lstm_edge.runtime` (numpy, plus onnxruntime for the ort backend): no torch.
Rows are read one at a time from a CSV file or from stdin, so it runs on a live feed:

    tail -n +1 -f machine.csv | python examples/sensor_monitoring/monitor.py MODEL.onnx
    row 14230: ALERT score 9.8 > 5 (vibration: forecast 2.41, actual 4.62)

The model steps once per row with the caller-owned state carried; the forecast made at
row t for row t + horizon is kept in a queue until that row arrives. A step's score is
the largest |forecast - actual| / residual_scale over the targets, with the scales and the
threshold the artifact was calibrated with at export (`lstm-edge detect` computes the
same scores over a whole file). A missing or non-numeric cell holds the column's last
value (and is reported), since the model cannot step on a hole.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from lstm_edge.runtime import LstmEdgeError, Model, load

# Rows after a zero state that are not scored: the state needs a few steps to settle,
# and its first forecasts are off by several robust sigmas (as in `lstm-edge detect`).
WARMUP = 10


def rows(lines: Iterable[str], columns: tuple[str, ...], where: str) -> Iterator[np.ndarray]:
    """The `columns` of each CSV data row as float64, last values held over bad cells."""
    reader = csv.DictReader(lines)
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise LstmEdgeError(
            f"{where}: no column(s) {missing} (the model needs {list(columns)}; found "
            f"{reader.fieldnames})"
        )
    last = np.full(len(columns), np.nan)
    for line, record in enumerate(reader, start=2):  # row 1 is the header
        for i, name in enumerate(columns):
            try:
                value = float(record[name])
            except (TypeError, ValueError):
                value = math.nan
            if math.isfinite(value):
                last[i] = value
            elif math.isfinite(last[i]):
                print(f"row {line}: {name} is {record[name]!r}, holding {last[i]:g}")
            else:
                raise LstmEdgeError(f"{where}: row {line}, column {name!r}: no value yet")
        yield last.copy()


def monitor(model: Model, lines: Iterable[str], where: str, threshold: float | None) -> int:
    """Print an alert for each row whose score is above the threshold; return how many."""
    config, calibration = model.config, model.artifact.calibration
    if config.task != "forecast" or calibration is None:
        raise LstmEdgeError(
            f"{where}: the model is not a calibrated forecast model (export a forecast "
            "checkpoint with its data to get the calibration)"
        )
    scale = np.asarray(calibration["residual_scale"])
    limit = calibration["threshold"] if threshold is None else threshold
    # The model's inputs, then any target that is not also an input (it is read, not fed).
    columns = config.features + tuple(t for t in config.targets if t not in config.features)
    target_at = [columns.index(t) for t in config.targets]
    pending: deque[np.ndarray] = deque()  # forecasts waiting for their row
    state = model.initial_state(1)
    alerts = 0
    for t, values in enumerate(rows(lines, columns, where)):
        actual = values[target_at]
        if len(pending) == config.horizon:
            predicted = pending.popleft()  # made `horizon` rows ago for this row
            error = np.abs(predicted - actual) / scale
            score = float(error.max())
            # a linear highway's history fills in ar_lags rows (as in `lstm-edge detect`)
            if t >= config.horizon + max(WARMUP, config.ar_lags) and score > limit:
                k = int(error.argmax())
                alerts += 1
                print(
                    f"row {t + 2}: ALERT score {score:.1f} > {limit:g} ({config.targets[k]}: "
                    f"forecast {predicted[k]:.4g}, actual {actual[k]:.4g})",
                    flush=True,
                )
        forecast, state = model.step(values[None, : len(config.features)], state)
        pending.append(forecast[0].astype(np.float64))
    return alerts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="runs/forecast/model.int8.onnx")
    parser.add_argument("--csv", help="a CSV file (default: stdin, e.g. a live feed)")
    parser.add_argument("--backend", default="ort", choices=("numpy", "ort", "c"))
    parser.add_argument("--threshold", type=float, help="default: the artifact's calibrated one")
    args = parser.parse_args(argv)
    try:
        model = load(args.model, backend=args.backend)
        if args.csv is None:
            alerts = monitor(model, sys.stdin, "stdin", args.threshold)
        else:
            with open(args.csv, newline="", encoding="utf-8") as f:
                alerts = monitor(model, f, args.csv, args.threshold)
    except (LstmEdgeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"{alerts} alert(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
