"""Bring your own PyTorch LSTM: `from_torch(module, folder)` finds the `nn.Embedding`
(optional), the one `nn.LSTM` and the `nn.Linear` head (optional) in a user's module, or
takes them by name, copies their weights into a checkpoint folder that `lstm-edge export`
takes, and checks the checkpoint's model against the user's layers over a stream.

    from lstm_edge.toolchain.from_torch import from_torch
    from_torch(my_model, "ckpt")          # then: lstm-edge export ckpt -o model.onnx

A token model (embedding input) becomes a char-lm config without characters (`tokens`,
optional `token_names`); a float-feature model a forecast config with identity
normalization unless `stats` gives the statistics (see exporters/import_onnx.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lstm_edge.exporters.import_onnx import ImportRefusedError, import_config
from lstm_edge.runtime.config import NORM_IN_SCALE, NORM_IN_SHIFT, NORM_OUT_SCALE, NORM_OUT_SHIFT
from lstm_edge.runtime.errors import CheckFailedError
from lstm_edge.runtime.files import OutputExistsError
from lstm_edge.toolchain.checkpoint import CONFIG_FILE, save_checkpoint
from lstm_edge.toolchain.model import build_model

# Model outputs vs the user's layers, float32 both, same ops: rounding only.
CHECK_TOLERANCE = 1e-5


@dataclass(frozen=True)
class FromTorchReport:
    folder: Path
    task: str
    max_abs_err: float  # checkpoint model vs the user's layers over the check stream
    steps_checked: int


def _find(module: nn.Module, kind: type, name: str | None, required: bool) -> Any:
    """The submodule called `name`, or the one submodule of type `kind`."""
    if name is not None:
        found = dict(module.named_modules()).get(name)
        if not isinstance(found, kind):
            raise ImportRefusedError(
                f"module has no {kind.__name__} named {name!r} (found {type(found).__name__})"
            )
        return found
    matches = [(n, m) for n, m in module.named_modules() if isinstance(m, kind)]
    if len(matches) > 1:
        names = ", ".join(repr(n) for n, _ in matches)
        raise ImportRefusedError(
            f"module has {len(matches)} {kind.__name__} layers ({names}); name the one to use"
        )
    if not matches and required:
        raise ImportRefusedError(f"module has no {kind.__name__} layer")
    return matches[0][1] if matches else None


def _check_lstm(lstm: nn.LSTM) -> None:
    for attr, bad, why in (
        ("bidirectional", True, "a bidirectional layer needs the whole sequence first"),
        ("proj_size", None, "projected hidden states are not computed by lstm-edge"),
    ):
        value = getattr(lstm, attr, 0)
        if (value is True) if bad else value:
            raise ImportRefusedError(
                f"nn.LSTM has {attr}={value!r} (expected {'False' if bad else 0}: {why})"
            )


def from_torch(
    module: nn.Module,
    folder: str | Path,
    *,
    embedding: str | None = None,
    lstm: str | None = None,
    head: str | None = None,
    token_names: tuple[str, ...] = (),
    stats: dict | None = None,
    force: bool = False,
    check_steps: int = 300,
) -> FromTorchReport:
    """Write a checkpoint folder of the module's [Embedding ->] LSTM [-> Linear] and check
    it against those layers; `embedding`/`lstm`/`head` name submodules explicitly."""
    folder = Path(folder)
    if (folder / CONFIG_FILE).exists() and not force:
        raise OutputExistsError(f"{folder / CONFIG_FILE} exists (pass force=True to overwrite)")
    emb = _find(module, nn.Embedding, embedding, required=False)
    rnn = _find(module, nn.LSTM, lstm, required=True)
    lin = _find(module, nn.Linear, head, required=False)
    _check_lstm(rnn)
    hidden = rnn.hidden_size
    outputs = lin.out_features if lin is not None else hidden
    table = emb.weight.detach().cpu().numpy() if emb is not None else None
    config = import_config(
        "module", rnn.num_layers, hidden, rnn.input_size, outputs, table, token_names, stats
    )
    model = build_model(config).eval()
    with torch.no_grad():
        if emb is not None:
            model.embedding.weight.copy_(emb.weight)
        for name, param in model.lstm.named_parameters():
            source = getattr(rnn, name, None)  # absent for bias=False
            param.copy_(source if source is not None else torch.zeros_like(param))
        if lin is not None:
            model.head.weight.copy_(lin.weight)
            model.head.bias.copy_(lin.bias if lin.bias is not None else 0.0)
        else:
            model.head.weight.copy_(torch.eye(hidden))
            model.head.bias.zero_()
    err = _check(model, emb, rnn, lin, check_steps)
    if not err <= CHECK_TOLERANCE:
        raise CheckFailedError(
            f"from_torch check failed: the checkpoint's model differs from the module's "
            f"layers by {err:.3g} (tolerance {CHECK_TOLERANCE:g}); {folder} was not written"
        )
    save_checkpoint(folder, model, metadata={"source": "from_torch"})
    return FromTorchReport(folder, config.task, err, check_steps)


def _check(model, emb, rnn: nn.LSTM, lin, steps: int) -> float:
    """Max abs difference between the checkpoint's model and the user's layers (chained as
    the user's forward would: embedding, LSTM with its own batch_first, head) over a
    seeded stream of `steps`, as one call and as single steps with the state carried."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny LSTM step: more threads only wait on each other
    try:
        return _max_difference(model, emb, rnn, lin, steps)
    finally:
        torch.set_num_threads(threads)


def _max_difference(model, emb, rnn: nn.LSTM, lin, steps: int) -> float:
    config = model.config
    x = torch.from_numpy(np.asarray(config.spec.synthetic_inputs(config, steps, seed=2)))[None]
    # With statistics, the user's layers compute in standard units and the checkpoint's
    # model on raw values (as in import_check.SourceModel).
    norm = {k: torch.from_numpy(v) for k, v in config.spec.config_tensors(config).items()}
    with torch.no_grad():
        feats = emb(x) if emb is not None else x
        if norm:
            feats = feats * norm[NORM_IN_SCALE] + norm[NORM_IN_SHIFT]
        y, _ = rnn(feats if rnn.batch_first else feats.transpose(0, 1))
        y = y if rnn.batch_first else y.transpose(0, 1)
        want = lin(y) if lin is not None else y
        if norm:
            want = want * norm[NORM_OUT_SCALE] + norm[NORM_OUT_SHIFT]
        got, _ = model(x)
        state, steps_out = None, []
        for t in range(x.shape[1]):
            out, state = model(x[:, t : t + 1], state)
            steps_out.append(out)
        stepped = torch.cat(steps_out, dim=1)
    return max(float((got - want).abs().max()), float((stepped - want).abs().max()))


@dataclass(frozen=True)
class DeviceBundle:
    float_model: Path  # model.onnx
    int8_model: Path  # model.int8.onnx
    c_bundle: Path  # the C folder (NAME_model.c/.h, the library, main.c, Makefile)


def export_int8_and_c(checkpoint: str | Path, out_dir: str | Path, *, force: bool = False):
    """`lstm-edge export`, `quantize --scheme int8` and `codegen --check` in one call: the
    checkpoint (from `from_torch`) -> OUT/model.onnx, OUT/model.int8.onnx and the C bundle
    OUT/c/ built and checked against the numpy reference (CheckFailedError otherwise)."""
    from lstm_edge.exporters import c_codegen as cg
    from lstm_edge.exporters.quantize import quantize_file
    from lstm_edge.toolchain.export import export_checkpoint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    float_model, int8_model = out / "model.onnx", out / "model.int8.onnx"
    export_checkpoint(Path(checkpoint), float_model, force=force, check_steps=300)
    quantize_file(float_model, int8_model, "int8", force=force)
    report = cg.codegen(int8_model, out / "c", cg.CodegenOptions(check=True, force=force))
    if not report.passed:
        raise CheckFailedError(f"the C build of {int8_model} did not match the numpy reference")
    return DeviceBundle(float_model, int8_model, out / "c")
