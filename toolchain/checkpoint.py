"""Checkpoint folders: write atomically, read with checks that name the file at fault.

A checkpoint is a folder holding `config.json` (the ModelConfig), `model.safetensors`
(weights; never pickle) and `data.json` (where the corpus came from and how it was split).
Every file is written to a temp file in the same folder, fsynced, then `os.replace`d
(`files.atomic_write`), so a kill at any moment leaves the previous good file under the
final name.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import InvalidConfigError, LstmEdgeError

# The torch-free file helpers live in `files`; they are re-exported here for the callers
# that import them from the checkpoint module (train.py and others).
from lstm_edge.runtime.files import (  # noqa: F401
    TMP_PREFIX,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    clean_stale_temp_files,
    read_json,
    sha256_file,
)
from lstm_edge.toolchain.model import EdgeLSTM, build_model, torch_stages

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
DATA_FILE = "data.json"


NOT_CHECKPOINT = "not a valid checkpoint: "


class InvalidCheckpointError(LstmEdgeError):
    """A folder that is not a loadable lstm-edge checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: ModelConfig
    model: EdgeLSTM  # in eval mode
    data: dict[str, Any]  # contents of data.json ({} if absent)
    weights_sha256: str  # SHA-256 of model.safetensors as stored


# ---- save / load -------------------------------------------------------------------------


def save_checkpoint(
    folder: Path,
    model: EdgeLSTM,
    data: dict[str, Any] | None = None,
    *,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write config.json, model.safetensors and data.json into `folder` (created if needed).

    `metadata` (str -> str) goes into the safetensors header beside the weights, so facts
    about these exact weights (training step, validation loss) can never be torn from them.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {**(metadata or {}), "format_version": str(model.config.format_version)}
    # Weights first: a config never describes weights that are not on disk yet.
    # Serialized in memory, then written by atomic_write: a full disk is an OSError there
    # (named with the path), not an error of the serializer's own kind.
    atomic_write_bytes(folder / WEIGHTS_FILE, safetensors_bytes(weights, metadata=meta))
    atomic_write_bytes(folder / CONFIG_FILE, (model.config.to_json() + "\n").encode())
    if data is not None:
        atomic_write_json(folder / DATA_FILE, data)


def read_weights_metadata(folder: Path) -> dict[str, str]:
    """The str -> str metadata stored in model.safetensors' header (without loading weights)."""
    path = Path(folder) / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {path} is not a readable safetensors file ({e})"
        ) from None


def save_torch_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically write non-weight training state (optimizer, progress) with torch.save.

    Only tensors, numbers, strings, lists and dicts, so `load_torch_state` can read it with
    `weights_only=True`.
    """
    buffer = io.BytesIO()  # torch.save on a full disk raises RuntimeError, not OSError
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_torch_state(path: Path) -> dict[str, Any]:
    """Read a file written by `save_torch_state`. A pickle that would run code is refused:
    `weights_only=True` is passed explicitly, whatever torch's default is."""
    path = Path(path)
    if not path.is_file():
        raise InvalidCheckpointError(f"not a valid checkpoint: {path} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {path} is not a safe torch state file ({first})"
        ) from None
    if not isinstance(state, dict):
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {path} holds {type(state).__name__}, expected a dict"
        )
    return state


def load_config(folder: Path) -> ModelConfig:
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidCheckpointError(f"not a valid checkpoint: {folder} is not a folder")
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise InvalidCheckpointError(f"not a valid checkpoint: {cfg_path} is missing")
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidCheckpointError(
            f"not a valid checkpoint: cannot read {cfg_path}: {e}"
        ) from None
    try:
        return ModelConfig.from_json(text)
    except InvalidConfigError as e:
        raise InvalidCheckpointError(f"not a valid checkpoint: {cfg_path}: {e}") from None


def load_weights(folder: Path, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Read model.safetensors and check it against the model `config` describes."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise InvalidCheckpointError(f"not a valid checkpoint: {path} is missing")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {path} is not a readable safetensors file ({e})"
        ) from None
    expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    wrong = sorted(
        f"{k} {found[k]} (expected {expected[k]})"
        for k in expected.keys() & found.keys()
        if found[k] != expected[k]
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if wrong:
            parts.append(f"wrong shapes: {', '.join(wrong)}")
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {path} does not match {CONFIG_FILE}: " + "; ".join(parts)
        )
    for name, value in weights.items():
        # Training writes float32 only: another dtype (an int32 tensor would export with an
        # "error vs torch" of 0, a float16 one silently lose precision) means the file was
        # made elsewhere.
        if value.dtype != torch.float32:
            raise InvalidCheckpointError(
                f"not a valid checkpoint: {path}: tensor {name!r} is {value.dtype} "
                f"(expected torch.float32)"
            )
    _check_normalization_buffers(path, config, weights)
    return weights


def _check_normalization_buffers(
    path: Path, config: ModelConfig, weights: dict[str, torch.Tensor]
) -> None:
    """A forecast model's normalization buffers must be exactly what its config implies.

    Every artifact takes these values from the config (`normalization_tensors`); buffers
    that differ would make torch disagree with every exported file, so refuse them here.
    """
    expected = config.spec.config_tensors(config)
    for buffer, name in torch_stages(config).buffers.items():
        found = weights[buffer]
        if found.dtype != torch.float32:
            raise InvalidCheckpointError(
                f"not a valid checkpoint: {path}: normalization buffer {buffer!r} is "
                f"{found.dtype} (expected torch.float32)"
            )
        differ = np.flatnonzero(found.numpy() != expected[name])
        if differ.size:
            i = int(differ[0])
            raise InvalidCheckpointError(
                f"not a valid checkpoint: {path}: normalization buffer {buffer!r} does not "
                f"match the statistics in {CONFIG_FILE} ({differ.size} value(s) differ; "
                f"first at index {i}: found {float(found[i])!r}, expected "
                f"{float(expected[name][i])!r})"
            )


def load_checkpoint(folder: Path) -> Checkpoint:
    folder = Path(folder)
    config = load_config(folder)
    weights = load_weights(folder, config)
    model = build_model(config)
    model.load_state_dict(weights)
    model.eval()
    data: dict[str, Any] = {}
    data_path = folder / DATA_FILE
    if data_path.is_file():
        data = read_json(data_path, InvalidCheckpointError, NOT_CHECKPOINT)
        if not isinstance(data, dict):
            raise InvalidCheckpointError(
                f"not a valid checkpoint: {data_path} holds {type(data).__name__}, expected "
                "a JSON object"
            )
    return Checkpoint(
        path=folder,
        config=config,
        model=model,
        data=data,
        weights_sha256=sha256_file(folder / WEIGHTS_FILE),
    )
