"""Calibration for int8-full: run the float model over the training split and record the
ranges the integer scheme needs (layer 0's normalized input, every layer's h, every
unit's c).

The data is a checkpoint's recorded training split, never validation or test: those
score the result. Up to `steps` steps of it are cut into `streams` equal chunks spread
over the split, each stepped from a zero state, all chunks as one batch; the float
artifact is stepped on the numpy backend (the reference) one time step at a time, so
every step's state is seen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.progress import Progress

from lstm_edge.exporters.quantize_full import CalibrationError, Ranges

DEFAULT_STEPS = 16384
# At most 8 chunks: with the default steps each is 2,048 steps long. A trained model has
# counter-like cell units whose |c| grows with the length of the stream (the default
# model's largest reached 384 in 512-step chunks and 1,836 in 4,096-step ones); short
# chunks would size their int16 format too small for the long streams a device runs.
MAX_STREAMS = 8
MIN_CHUNK = 64  # steps per stream: enough for the state to leave its zero start


def checkpoint_of(path: Path) -> Path:
    """A checkpoint folder, or a run folder holding one (`runs/x` -> `runs/x/checkpoint`)."""
    path = Path(path)
    if (path / "checkpoint").is_dir():
        return path / "checkpoint"
    if path.is_dir():
        return path
    raise CalibrationError(
        f"--calibrate {path}: expected the checkpoint the model was exported from (a folder "
        f"with config.json and model.safetensors), or its run folder"
    )


def training_stream(ckpt_path: Path, config) -> tuple[np.ndarray, dict]:
    """The checkpoint's training split as one stream of inputs ([n] ids or [n, F] rows)."""
    from lstm_edge.toolchain.checkpoint import load_checkpoint
    from lstm_edge.toolchain.tasks import training

    ckpt = load_checkpoint(ckpt_path)
    if ckpt.config != config:
        raise CalibrationError(
            f"--calibrate {ckpt_path}: its config differs from the model's (calibrate with "
            f"the checkpoint the model was exported from)"
        )
    held = training(config).held_out_stream(ckpt.data, config, "train")
    return held.inputs, {"data": str(ckpt_path), "split": "train", "rows": int(held.rows)}


def chunks(stream: np.ndarray, steps: int) -> np.ndarray:
    """Cut up to `steps` steps of the stream into equal chunks spread over all of it:
    [streams, time(, F)]."""
    n = len(stream)
    if n < MIN_CHUNK:
        raise CalibrationError(
            f"the calibration data has {n} steps (at least {MIN_CHUNK} are needed)"
        )
    streams = int(np.clip(min(steps, n) // MIN_CHUNK, 1, MAX_STREAMS))
    time = min(steps, n) // streams
    starts = np.linspace(0, n - time, streams).astype(np.int64)
    return np.stack([stream[s : s + time] for s in starts])


def measure(float_model: Path, inputs: np.ndarray, summary: dict) -> Ranges:
    """Step the float artifact over `inputs` [streams, time(, F)] and take the ranges."""
    import lstm_edge.runtime as rt

    model = rt.load(float_model, backend="numpy")
    config = model.config
    if model.artifact.scheme != "none":
        raise CalibrationError(
            f"{float_model}: calibration runs the float model (found scheme "
            f"{model.artifact.scheme!r})"
        )
    streams, time = inputs.shape[:2]
    state = model.initial_state(batch=streams)
    h_max = np.zeros(config.num_layers)
    c_max = np.zeros((config.num_layers, config.hidden_size))
    with Progress(transient=True) as progress:
        task = progress.add_task("calibrating", total=time)
        for t in range(time):
            _, state = model.step(inputs[:, t], state)
            h_max = np.maximum(h_max, np.abs(state.h).max(axis=(1, 2)))
            c_max = np.maximum(c_max, np.abs(state.c).max(axis=1))
            progress.advance(task)
    input_absmax = None
    if config.spec.input_dtype != np.int64:
        normalized = config.spec.apply_input_stage(model.artifact.weights, inputs)
        input_absmax = float(np.abs(normalized).max())
    return Ranges(
        input_absmax=input_absmax,
        h_absmax=tuple(float(v) for v in h_max),
        c_absmax=tuple(c_max),
        summary={**summary, "streams": int(streams), "steps": int(streams * time)},
    )


def calibrate(float_model: Path, source: Path, steps: int = DEFAULT_STEPS) -> Ranges:
    """The ranges of `float_model` over the training split recorded in checkpoint `source`."""
    import lstm_edge.runtime as rt

    if steps < MIN_CHUNK:
        raise CalibrationError(f"--calibration-steps {steps}: at least {MIN_CHUNK} are needed")
    config = rt.load(float_model, backend="numpy").config
    stream, summary = training_stream(checkpoint_of(source), config)
    return measure(float_model, chunks(stream, steps), summary)
