"""`lstm-edge validate SOURCE.onnx ARTIFACT...`: a source ONNX file (run in onnxruntime, as
`lstm-edge import` checks it) as the reference instead of a checkpoint's torch model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstm_edge.exporters.import_check import SourceModel
from lstm_edge.exporters.import_onnx import analyze, load_source
from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.toolchain.validate_run import ValidationInputError


@dataclass
class SourceReference:
    """What validate reads of a checkpoint, for a source ONNX file."""

    path: Path
    config: ModelConfig
    weights_sha256: str  # of the source file: what `import` records as the source
    reference: Callable[[np.ndarray], np.ndarray]  # inputs [steps(, F)] -> [steps, out]
    data: dict[str, Any] = field(default_factory=dict)  # no held-out split
    model: Any = None


def is_source(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() == ".onnx"


def source_reference(source: Path, artifacts: Sequence[Path], options: Any) -> SourceReference:
    """The source's reference run; the config is the first artifact's (the artifacts must
    share it), the stream comes from --text or --csv (a source file has no data record)."""
    if options.text is None and options.csv is None:
        raise ValidationInputError(
            f"{source} is an ONNX file without a held-out split: give the stream with --text "
            "(character models: text; token models: whitespace-separated ids) or --csv "
            "(feature models)"
        )
    config = read_artifact(Path(artifacts[0])).config
    proto = load_source(Path(source))
    imp = analyze(proto, str(source))
    if (imp.config.input_size, imp.config.output_size) != (config.input_size, config.output_size):
        raise ValidationInputError(
            f"{source} reads {imp.config.input_size} and gives {imp.config.output_size} values "
            f"per step; {artifacts[0]} reads {config.input_size} and gives {config.output_size}"
        )
    src = SourceModel(proto, imp, str(source), config)

    def reference(inputs: np.ndarray) -> np.ndarray:
        if src.stateful:  # its own state fed back, one call per step (or per fixed chunk)
            return src.stream(inputs, src.fixed_time or 1)
        return src.call(inputs, src.zero_state())[0]

    sha = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return SourceReference(Path(source), config, sha, reference)
