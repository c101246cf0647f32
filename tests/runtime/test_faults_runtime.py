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
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
    from typer.testing import CliRunner

    from lstm_edge.toolchain.cli import app

    model = rt.load(artifacts["none"], backend="ort")
    state = model.initial_state()
    _, state = model.step(np.array([1]), state)
    before = (state.h.copy(), state.c.copy())

    def failing_run(self, *args, **kwargs):
        raise getattr(ort_state, error)(f"[ONNXRuntimeError] : 2 : {error} : odd\nmore")

    # onnxruntime's C++ run, which both the public InferenceSession.run and the backend's
    # thin step (runtime/c/lstm_edge_py.c, ort_step) call
    monkeypatch.setattr(ort_state.InferenceSession, "run", failing_run)
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


BACKENDS = ("numpy", "ort", "c")


@pytest.fixture(scope="module")
def narrow_forecast(tmp_path_factory):
    """A forecast artifact whose feature std is 0.01: 3e38 normalizes to Inf in float32."""
    import dataclasses

    from test_forecast_runtime import build_onnx, forecast_config, forecast_model

    config = dataclasses.replace(forecast_config(layers=1), feature_std=(0.01, 0.01, 0.01))
    path = tmp_path_factory.mktemp("narrow") / "f.onnx"
    return save(build_onnx(forecast_model(config), source_sha256="0" * 64), path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_finite_inputs_that_overflow_once_normalized_are_refused(narrow_forecast, backend):
    import numpy as np

    from lstm_edge.runtime.errors import InputError

    model = rt.load(narrow_forecast, backend)
    x = np.full((2, 3, 3), 100.0, np.float32)
    _, state = model.step(x, model.initial_state(2))
    before = (state.h.copy(), state.c.copy())
    x[1, 2, 0] = 3e38
    with pytest.raises(InputError) as e:
        model.step(x, state)
    assert str(e.value) == (
        "feature value np.float32(3e+38) at position [1, 2, 0] (column 'temp') overflows "
        "float32 once normalized by the training statistics (mean 100.0, std 0.01; expected "
        "values that stay finite as (value - mean) / std)"
    )
    assert np.array_equal(state.h, before[0]) and np.array_equal(state.c, before[1])
    y, after = model.step(x[:, :2], state)  # the same state still steps, finitely
    assert np.isfinite(y).all() and np.isfinite(after.h).all()


@pytest.fixture(scope="module")
def huge_head(tmp_path_factory):
    """A char-lm artifact whose head weights and bias are finite but ~3e38: logits overflow
    to Inf on every backend, the float64 numpy reference included (the finite-input checks
    cannot see it coming)."""
    import torch
    from rt_helpers import tiny_config, tiny_model

    from lstm_edge.toolchain.export import build_onnx

    model = tiny_model(tiny_config(layers=1))
    with torch.no_grad():
        model.head.weight.fill_(3e38)
        model.head.bias.fill_(3e38)
    path = tmp_path_factory.mktemp("huge") / "m.onnx"
    return save(build_onnx(model, source_sha256="0" * 64), path)


@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_outputs_from_any_backend_are_an_error_state_unchanged(huge_head, backend):
    import numpy as np

    from lstm_edge.runtime.errors import InputError

    model = rt.load(huge_head, backend)
    state = model.initial_state(2)
    tokens = np.array([[1, 2, 3], [4, 5, 6]])
    with np.errstate(all="ignore"):
        y, _, _ = model.runner.run(tokens.astype(np.int64), state.h, state.c)
    b, t = (int(i) for i in np.argwhere(~np.isfinite(y))[0][:2])
    with pytest.raises(InputError) as e:
        model.step(tokens, state)
    assert str(e.value) == (
        f"{huge_head}: the inputs at stream {b}, step {t} drive the logits output to NaN or Inf "
        f"on the {backend!r} backend (expected inputs near the range the model was trained "
        f"on); the state passed in is unchanged"
    )
    assert not state.h.any() and not state.c.any()


def test_states_the_runtime_made_are_not_tested_again_but_callers_states_are(artifacts):
    """A step's new state was tested with its outputs, so the next step skips the test;
    a state built from the caller's arrays is tested (and refused if not finite)."""
    import numpy as np

    import lstm_edge.runtime as rt

    m = rt.load(artifacts["none"], "numpy")
    _, s1 = m.step(np.array([1]), m.initial_state(1))
    assert s1._checked and m.initial_state(2)._checked and rt.State.stack([s1, s1])._checked
    h = np.array(s1.h)
    h[0, 0, 0] = np.nan
    mine = rt.State(h=h, c=np.array(s1.c))
    assert not mine._checked
    with pytest.raises(rt.InputError, match=r"state\.h contains NaN"):
        m.step(np.array([1]), mine)
