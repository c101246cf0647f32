"""Score forecast runs the same way whatever their model: the test split read once, right
after the validation split (the state warm, as a deployed model runs on), one-step MASE
against persistence and against the linear baseline (toolchain/forecast_eval.py, fitted on
the training split), for torch and for each artifact on the numpy backend.

`lstm-edge validate` cycles a short test split to a long stream, and a model with a linear
highway is scored on the first pass after the validation split's last rows while one
without is scored over the cycled stream from a reset; this script puts both kinds on one
footing, for README.md's table of real series.

    python3 scripts/forecast_scores.py CHECKPOINT:BUNDLE [CHECKPOINT:BUNDLE ...]

CHECKPOINT is a forecast run (`lstm-edge train --out`); BUNDLE the folder holding its
model.onnx and model.int8.onnx (`lstm-edge pipeline --from CHECKPOINT --out BUNDLE`). A
pipeline folder alone (its checkpoint/ inside) also works.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import lstm_edge.runtime as rt
from lstm_edge.runtime.tasks.forecast import step_block
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.detect import run_model
from lstm_edge.toolchain.series import held_out_series
from lstm_edge.toolchain.validate_run import torch_outputs

ARTIFACTS = ("model.onnx", "model.int8.onnx")


def mase(out: np.ndarray, truth: np.ndarray, first: int, h: int, ref: np.ndarray) -> float:
    """Mean over targets of MAE(out) / MAE(ref) over the steps from `first` on, each output
    at step t against the truth at t + h."""
    err = np.abs(out[first:-h] - truth[first + h :]).mean(0)
    ref_err = np.abs(ref[first:-h] - truth[first + h :]).mean(0)
    return float(np.mean(err / ref_err))


def score(checkpoint: Path, bundle: Path) -> list[str]:
    ckpt = load_checkpoint(checkpoint)
    cfg, data = ckpt.config, ckpt.data
    held = held_out_series(data, cfg, "held-out")  # val then test, read as one stream
    x, truth = held.features, held.targets.astype(np.float64)
    first = data["split"]["val"][1] - data["split"]["val"][0]  # the test split's first row
    h = cfg.horizon
    train = held_out_series(data, cfg, "train").targets
    linear = fe.fit_linear_ar(train, h, fe.ar_lags(data.get("season")))
    linear_out = fe.linear_ar_forecast(linear, truth)
    outputs = {"torch": torch_outputs(ckpt.model, x)}
    for name in ARTIFACTS:
        model = rt.load(bundle / name, backend="numpy")
        outputs[name] = run_model(model, x)
    cells = [f"{bundle}", str(cfg.ar_lags or "none"), str(len(truth) - first)]
    for out in outputs.values():
        out = step_block(cfg, out, h)
        vs_persistence = mase(out, truth, first, h, truth)
        cells.append(f"{vs_persistence:.3f} / {mase(out, truth, first, h, linear_out):.3f}")
    cells.append(f"{mase(linear_out, truth, first, h, truth):.3f}")
    return cells


def main(args: list[str]) -> None:
    if not args:
        sys.exit(__doc__)
    table = Table(title="test split after the validation split: MASE vs persistence / vs linear")
    for col in ("bundle", "highway lags", "test rows", "torch", *ARTIFACTS, "linear"):
        table.add_column(col)
    for arg in args:
        checkpoint, _, bundle = arg.partition(":")
        if not bundle:
            checkpoint, bundle = str(Path(arg) / "checkpoint"), arg
        table.add_row(*score(Path(checkpoint), Path(bundle)))
    Console(width=160).print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
