"""`lstm-edge codegen --checkpoint`: the toolchain's half of codegen.

The exporter (`lstm_edge.exporters.c_codegen`) writes, builds and checks the C bundle
without knowing about checkpoints or torch. Given the checkpoint an artifact was exported
from, this module hands it the example stream: the checkpoint's held-out test split (one
builder per task, `training(config).held_out_stream`; a seeded stream when the data is
gone), the torch model's outputs over it and the task's check against them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_edge.exporters import c_codegen as cg
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.tasks import evaluation, training
from lstm_edge.toolchain.validate_run import torch_outputs


def checkpoint_stream(config: ModelConfig, checkpoint: Path, steps: int) -> cg.ExampleStream:
    """`steps` steps of the checkpoint's held-out test split (a short split repeats from its
    start), with its torch model's outputs; the config must be the artifact's."""
    cg.check_steps(steps)
    ckpt = load_checkpoint(Path(checkpoint))
    if ckpt.config != config:
        raise cg.CodegenError(
            f"checkpoint {checkpoint} has a different config than the model "
            "(expected the checkpoint the artifact was exported from)"
        )
    task = training(config)
    try:
        inputs = task.held_out_stream(ckpt.data, config, "test", steps, cycle=True).inputs
        source = f"held-out test split of {checkpoint}"
    except task.data_errors as e:
        # The torch comparison needs the weights, not the data: a seeded stream at the
        # training statistics still checks the C against the training model.
        inputs = config.spec.synthetic_inputs(config, steps)
        source = f"seeded synthetic stream (seed 0; the data of {checkpoint} is unavailable: {e})"
    if len(inputs) == 0:
        raise cg.CodegenError(f"checkpoint {checkpoint} has an empty test split")
    reference = torch_outputs(ckpt.model, np.ascontiguousarray(inputs, config.spec.input_dtype))
    return cg.ExampleStream(inputs, source, reference, evaluation(config).check_against_torch)


def codegen(
    model_path: Path,
    out_dir: Path,
    options: cg.CodegenOptions = cg.CodegenOptions(),
    checkpoint: Path | None = None,
) -> cg.CodegenReport:
    """`c_codegen.codegen`, with the example stream from `checkpoint` when one is given."""
    if checkpoint is None:
        return cg.codegen(model_path, out_dir, options)
    return cg.codegen(
        model_path, out_dir, options, lambda c: checkpoint_stream(c, checkpoint, options.steps)
    )
