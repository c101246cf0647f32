"""Export a checkpoint: the torch half of `lstm-edge export`.

A checkpoint becomes what the torch-free exporter (lstm_edge.exporters.onnx_export) takes
as arguments: the float weights under their logical ONNX names and layouts
(`onnx_weights`), the reference stream the written file must reproduce (torch over the
held-out test split, or a seeded stream), and a forecast model's anomaly calibration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from lstm_edge.exporters import onnx_export
from lstm_edge.exporters.onnx_export import (
    ExportReport,
    ReferenceStream,
    SelfCheckError,
    check_finite,
    check_output_path,
    export_onnx,
)
from lstm_edge.runtime.config import HEAD_BIAS, HEAD_WEIGHT, ModelConfig, lstm_b, lstm_r, lstm_w
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.toolchain.checkpoint import load_checkpoint
from lstm_edge.toolchain.model import EdgeLSTM, torch_stages
from lstm_edge.toolchain.tasks import training

DEFAULT_CHECK_STEPS = 2000
RANDOM_STREAM_SEED = 0


# ---- torch -> logical weights ------------------------------------------------------------


def onnx_weights(model: EdgeLSTM) -> dict[str, np.ndarray]:
    """The model's weights as float32 arrays under their ONNX (logical) names and layouts,
    in file order; a forecast model's NORM_* tensors (from its config) lead."""
    sd = {k: v.detach().cpu().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    gates = onnx_export.torch_to_onnx_gates  # looked up at call time: tests replace it
    check_finite(sd, "model weights")
    config = model.config
    stages = torch_stages(config)
    # The graph's config tensors come from the config (the one place they are computed);
    # the model's buffers must hold the same values, or torch and the file would differ.
    out = config.spec.config_tensors(config)
    for buffer, name in stages.buffers.items():
        if not np.array_equal(sd[buffer], out[name]):
            raise LstmEdgeError(
                f"model buffer {buffer!r} does not match the config's normalization "
                f"statistics ({name}); the model and its config disagree"
            )
    out.update({name: sd[key] for key, name in stages.weights.items()})
    for layer in range(config.num_layers):
        out[lstm_w(layer)] = gates(sd[f"lstm.weight_ih_l{layer}"])[None]
        out[lstm_r(layer)] = gates(sd[f"lstm.weight_hh_l{layer}"])[None]
        # ONNX B is [Wb, Rb] concatenated: torch's bias_ih then bias_hh.
        b = np.concatenate(
            [
                gates(sd[f"lstm.bias_ih_l{layer}"]),
                gates(sd[f"lstm.bias_hh_l{layer}"]),
            ]
        )
        out[lstm_b(layer)] = b[None]
    out[HEAD_WEIGHT] = sd["head.weight"].T  # [hidden, vocab] for MatMul
    out[HEAD_BIAS] = sd["head.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def build_onnx(
    model: EdgeLSTM, *, source_sha256: str = "", calibration: dict | None = None
) -> onnx.ModelProto:
    """The float artifact for a torch `model` (pure: no I/O). NaN/Inf weights are refused."""
    return onnx_export.build_onnx(
        model.config, onnx_weights(model), source_sha256=source_sha256, calibration=calibration
    )


# ---- the reference stream ----------------------------------------------------------------


def torch_reference(model: EdgeLSTM, inputs: np.ndarray):
    """Torch output and final h, c for inputs [batch, time(, F)] from a zero state (a
    forecast highway's history from a reset one, as the file's check feeds it)."""
    dtype = model.config.spec.input_dtype
    with torch.no_grad():
        y, (h, c, *_) = model(torch.from_numpy(np.ascontiguousarray(inputs, dtype=dtype)))
    return y.numpy(), h.numpy(), c.numpy()


def check_stream(ckpt_data: dict, config: ModelConfig, steps: int) -> tuple[np.ndarray, str]:
    """Inputs for the self-check ([steps] token ids, or [steps, F] raw feature values): the
    held-out test split if the checkpoint records its data, otherwise (or if the data is
    gone) a seeded pseudo-random stream (`spec.synthetic_inputs`)."""
    task = training(config)
    reason = "the checkpoint has no data record"
    if ckpt_data:
        try:
            inputs = task.held_out_stream(ckpt_data, config, "test", steps).inputs
            if len(inputs):
                return inputs, task.held_out_name
            reason = "the held-out split is empty"
        except task.data_errors as e:
            reason = f"{task.held_out_unavailable}: {e}"
    inputs = config.spec.synthetic_inputs(config, steps, RANDOM_STREAM_SEED)
    return inputs, f"{task.fallback_name} (seed {RANDOM_STREAM_SEED}; {reason})"


def reference_stream(model: EdgeLSTM, ckpt_data: dict, steps: int) -> ReferenceStream:
    """The self-check stream and torch's outputs and final state over it."""
    inputs, description = check_stream(ckpt_data, model.config, steps)
    y, h, c = torch_reference(model, inputs[None])
    return ReferenceStream(inputs=inputs, outputs=y, h=h, c=c, description=description)


# ---- calibration and the whole export ----------------------------------------------------


def forecast_calibration(ckpt) -> dict | None:
    """META_CALIBRATION for a forecast checkpoint, from `forecast_eval.calibrate`, or None
    when the checkpoint's data is unavailable.

    The dict is checked with the runtime's own reader check, so the exporter never writes
    calibration an artifact loader would refuse.
    """
    from lstm_edge.toolchain.forecast_eval import calibrate

    calibration = calibrate(ckpt)
    if calibration is None:
        return None
    if not isinstance(calibration, dict):
        raise SelfCheckError(
            f"calibrate() returned {type(calibration).__name__} (expected a dict or None)"
        )
    ckpt.config.spec.check_calibration(calibration, ckpt.config, f"calibration of {ckpt.path}")
    return calibration


def export_checkpoint(
    ckpt_dir: Path,
    out: Path,
    *,
    force: bool = False,
    check_steps: int = DEFAULT_CHECK_STEPS,
) -> ExportReport:
    """Export the checkpoint in `ckpt_dir` to `out`, atomically, after checking the file.

    The file is written to a temp file beside `out`, checked there (onnx.checker with full
    shape inference, then onnxruntime vs torch over `check_steps` steps as one prefill and
    as single steps), and only then renamed to `out`; on any failure nothing is left under
    `out` and an existing file there is untouched. A forecast checkpoint whose data is
    available also gets META_CALIBRATION (anomaly scores), computed through torch.
    """
    if isinstance(check_steps, bool) or not isinstance(check_steps, int) or check_steps < 1:
        raise LstmEdgeError(f"check_steps is {check_steps!r} (expected an integer >= 1)")
    out = check_output_path(out, force)
    ckpt = load_checkpoint(Path(ckpt_dir))
    weights = onnx_weights(ckpt.model)
    calibration = forecast_calibration(ckpt) if ckpt.config.spec.has_calibration else None
    reference = reference_stream(ckpt.model, ckpt.data, check_steps)
    return export_onnx(
        out,
        ckpt.config,
        weights,
        reference,
        force=force,
        source_sha256=ckpt.weights_sha256,
        calibration=calibration,
    )
