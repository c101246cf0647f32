"""The training side of lstm-edge: CLI, data, model, training, checkpoints, validation."""

__version__ = "0.1.0"
