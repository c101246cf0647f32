"""Tiny artifacts for the runtime tests, built by the exporter (the runtime's only producer),
plus small proto surgery for the malformed-model tests. Tests import this; they may use
onnx and torch, the runtime under test may not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto

from lstm_edge.exporters.onnx_export import stamp_digest
from lstm_edge.exporters.quantize import quantize_file, quantize_proto
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig
from lstm_edge.runtime.errors import InvalidArtifactError
from lstm_edge.runtime.format import META_DIGEST
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM

SCHEMES = ("none", "int8", "fp16", "int8-dynamic")


def tiny_config(layers: int = 2, hidden: int = 16, embed: int = 8) -> ModelConfig:
    return ModelConfig(
        vocab=(UNK_CHAR, *"abcdefghijk"), embed_size=embed, hidden_size=hidden, num_layers=layers
    )


def tiny_model(config: ModelConfig, seed: int = 0) -> EdgeLSTM:
    torch.manual_seed(seed)
    model = EdgeLSTM(config).eval()
    # PyTorch's init (|w| <= 1/sqrt(H)) keeps every gate near 0.5; larger weights drive
    # the gates into saturation too, so a wrong gate order or activation cannot hide.
    with torch.no_grad():
        for p in model.lstm.parameters():
            p.mul_(4.0)
    return model


def write_artifacts(model: EdgeLSTM, folder: Path) -> dict[str, Path]:
    """scheme -> path of the model exported as float and quantized with every scheme."""
    folder.mkdir(parents=True, exist_ok=True)
    float_proto = build_onnx(model, source_sha256="0" * 64)
    paths = {"none": folder / "m.onnx"}
    onnx.save(float_proto, paths["none"])
    for scheme in ("int8", "fp16"):
        paths[scheme] = folder / f"m.{scheme}.onnx"
        onnx.save(quantize_proto(float_proto, scheme), paths[scheme])
    paths["int8-dynamic"] = folder / "m.int8-dynamic.onnx"
    quantize_file(paths["none"], paths["int8-dynamic"], "int8-dynamic")
    return paths


def save(proto: onnx.ModelProto, path: Path, *, restamp: bool = True) -> Path:
    """Write a (crafted) proto. `restamp`: give it the content digest of what it now holds,
    as someone crafting a file would, so the checks behind the digest are what is tested."""
    if restamp and any(p.key == META_DIGEST for p in proto.metadata_props):
        try:
            stamped = copy(proto)
            stamp_digest(stamped)
        except (ValueError, InvalidArtifactError):  # external or malformed data: no digest
            stamped = set_meta(proto, META_DIGEST, None)
        proto = stamped
    path.write_bytes(proto.SerializeToString())
    return path


def set_meta(proto: onnx.ModelProto, key: str, value: str | None) -> onnx.ModelProto:
    """A copy of `proto` with metadata `key` set to `value` (None: removed)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    props = [(p.key, p.value) for p in out.metadata_props if p.key != key]
    if value is not None:
        props.append((key, value))
    del out.metadata_props[:]
    for k, v in props:
        out.metadata_props.add(key=k, value=v)
    return out


def initializer(proto: onnx.ModelProto, name: str) -> TensorProto:
    return next(t for t in proto.graph.initializer if t.name == name)


def copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def torch_run(model: EdgeLSTM, tokens: np.ndarray, h: np.ndarray, c: np.ndarray):
    """Torch logits [B,T,V] and final (h, c) as numpy, from the given state."""
    with torch.no_grad():
        logits, (hn, cn) = model(
            torch.from_numpy(np.asarray(tokens, np.int64)),
            (torch.from_numpy(h.copy()), torch.from_numpy(c.copy())),
        )
    return logits.numpy(), hn.numpy(), cn.numpy()
