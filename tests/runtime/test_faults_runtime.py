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


# Since the loader requires the canonical graph, no file found passes it and then makes
# onnxruntime fail at step time (the odd.onnx is refused at load now); so the
# mapping is tested with onnxruntime's own exception types raised from its run call.
@pytest.mark.parametrize("error", ["InvalidArgument", "Fail", "RuntimeException"])
def test_onnxruntime_errors_at_step_time_are_typed_and_name_the_file(artifacts, monkeypatch, error):
    import numpy as np
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
    from typer.testing import CliRunner

    from lstm_edge.toolchain.cli import app

    model = rt.load(artifacts["none"], backend="ort")
    state = model.initial_state()
    _, state = model.step(np.array([1]), state)
    before = (state.h.copy(), state.c.copy())

    def failing_run(self, *args, **kwargs):
        raise getattr(ort_state, error)(f"[ONNXRuntimeError] : 2 : {error} : odd\nmore")

    monkeypatch.setattr(ort.InferenceSession, "run", failing_run)
    with pytest.raises(InvalidArtifactError) as e:
        model.step(np.array([2]), state)
    assert str(e.value) == (
        f"{artifacts['none']}: onnxruntime failed to run a step "
        f"({error}: [ONNXRuntimeError] : 2 : {error} : odd)"
    )
    assert np.array_equal(state.h, before[0]) and np.array_equal(state.c, before[1])

    r = CliRunner().invoke(app, ["suggest", str(artifacts["none"]), "the qu", "--backend", "ort"])
    assert r.exit_code == 2, r.output
    assert "onnxruntime failed to run a step" in r.output.replace("\n", "")
    assert "Traceback" not in r.output
