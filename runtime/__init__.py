"""lstm-edge runtime: load an exported LSTM and step it with caller-owned state, without torch.

Dependencies: numpy, plus onnxruntime for the `ort` backend. Nothing here imports torch,
typer, or the toolchain/exporters packages (a test checks `sys.modules`).
"""

from lstm_edge.runtime.config import FORMAT_VERSION, ModelConfig
from lstm_edge.runtime.errors import (
    FormatVersionError,
    InputError,
    InvalidArtifactError,
    InvalidConfigError,
    LstmEdgeError,
    UnsupportedModelError,
)
from lstm_edge.runtime.model import Model, load
from lstm_edge.runtime.state import State
from lstm_edge.runtime.suggest import Suggester, Suggestion

__all__ = [
    "FORMAT_VERSION",
    "FormatVersionError",
    "InputError",
    "InvalidArtifactError",
    "InvalidConfigError",
    "LstmEdgeError",
    "Model",
    "ModelConfig",
    "State",
    "Suggester",
    "Suggestion",
    "UnsupportedModelError",
    "load",
]
