"""Session fixtures: one tiny 2-layer EdgeLSTM exported with every scheme (built in ~1 s)."""

from __future__ import annotations

import pytest
from rt_helpers import tiny_config, tiny_model, write_artifacts


@pytest.fixture(scope="session")
def torch_model():
    return tiny_model(tiny_config())


@pytest.fixture(scope="session")
def artifacts(torch_model, tmp_path_factory):
    """scheme -> Path of the tiny model's artifact ("none" is the float export)."""
    return write_artifacts(torch_model, tmp_path_factory.mktemp("artifacts"))
