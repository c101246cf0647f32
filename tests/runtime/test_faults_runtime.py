"""Issue 16 point 3 in the runtime: dims numpy cannot shape, onnxruntime's own errors,
non-finite results from finite inputs."""

from __future__ import annotations

import onnx
import pytest
from rt_helpers import copy, initializer, save

import lstm_edge.runtime as rt
from lstm_edge.runtime.config import EMBEDDING
from lstm_edge.runtime.errors import InvalidArtifactError


@pytest.fixture(scope="module")
def float_proto(artifacts) -> onnx.ModelProto:
    return onnx.load(str(artifacts["none"]))


@pytest.mark.parametrize("dims", [[0, 2**62], [2**40, 0], [0, 2**31 + 1]])
def test_empty_initializer_with_a_huge_dim_is_refused_naming_it(tmp_path, float_proto, dims):
    proto = copy(float_proto)
    t = initializer(proto, EMBEDDING)
    del t.dims[:]
    t.dims.extend(dims)
    t.ClearField("raw_data")
    del t.float_data[:]
    path = save(proto, tmp_path / "big.onnx")
    with pytest.raises(InvalidArtifactError) as e:
        rt.load(path)
    assert str(e.value) == (
        f"{path}: initializer {EMBEDDING!r} has dims {dims} (a dim over the 2147483648 limit)"
    )
