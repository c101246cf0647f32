"""The `c` runtime backend against the numpy reference: values over a long stream, state
carry, chunking, batching, the caller's state left alone, and its error paths."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.backends import c as cbackend
from lstm_edge.runtime.backends import c_build, c_source
from lstm_edge.runtime.config import HEAD_WEIGHT, UNK_CHAR, ModelConfig
from lstm_edge.runtime.errors import InputError
from lstm_edge.runtime.model import load

# C and numpy run the same float32 math on the same (dequantized) weights; only the
# summation order and expf vs numpy's tanh-based sigmoid differ (~1e-7 per step). The
# saturating gates keep that from growing: 1e-4 over 3000 steps is ~100x what is
# measured, while a wrong gate order, scale or transpose moves logits by O(0.1).
ATOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _compiler(require_tools):
    require_tools("cc")


def _run_single_steps(model, stream):
    state = model.initial_state(1)
    out = []
    for tok in stream:
        logits, state = model.step(np.array([tok]), state)
        out.append(logits[0])
    return np.stack(out), state


@pytest.mark.parametrize("which", ["float_path", "int8_path"])
def test_long_stream_matches_numpy(tiny, which):
    path = getattr(tiny, which)
    c_model, ref = load(path, backend="c"), load(path, backend="numpy")
    assert c_model.scheme == ("int8" if which == "int8_path" else "none")
    got, c_state = _run_single_steps(c_model, tiny.stream)
    want, ref_state = ref.step(tiny.stream[None, :], ref.initial_state(1))
    assert np.abs(want).max() > 1.0  # the model's logits are not trivially small
    np.testing.assert_allclose(got, want[0], rtol=0, atol=ATOL)
    np.testing.assert_allclose(c_state.h, ref_state.h, rtol=0, atol=ATOL)
    np.testing.assert_allclose(c_state.c, ref_state.c, rtol=0, atol=ATOL)


def test_chunked_equals_single_steps_exactly(tiny):
    # The C code runs the same operations in the same order either way: bit-identical.
    model = load(tiny.int8_path, backend="c")
    stream = tiny.stream[:300]
    single, single_state = _run_single_steps(model, stream)
    state = model.initial_state(1)
    chunks = []
    for piece in np.split(stream, [7, 8, 100, 231]):
        logits, state = model.step(piece[None, :], state)
        chunks.append(logits[0])
    np.testing.assert_array_equal(np.concatenate(chunks), single)
    np.testing.assert_array_equal(state.h, single_state.h)
    np.testing.assert_array_equal(state.c, single_state.c)


def test_batch_equals_separate_streams(tiny):
    # 6 streams, each starting from its own non-zero state.
    model = load(tiny.float_path, backend="c")
    tokens = tiny.stream[:60].reshape(6, 10)
    _, warm = model.step(tiny.stream[100:130].reshape(6, 5), model.initial_state(6))
    logits, state = model.step(tokens, warm)
    for b in range(6):
        one, one_state = model.step(tokens[b : b + 1], warm.select([b]))
        np.testing.assert_array_equal(logits[b], one[0])
        np.testing.assert_array_equal(state.h[:, b], one_state.h[:, 0])
        np.testing.assert_array_equal(state.c[:, b], one_state.c[:, 0])
    ref = load(tiny.float_path, backend="numpy")
    want, _ = ref.step(tokens, warm)
    np.testing.assert_allclose(logits, want, rtol=0, atol=ATOL)


def test_state_passed_in_is_not_modified(tiny):
    model = load(tiny.float_path, backend="c")
    _, state = model.step(tiny.stream[:20][None, :], model.initial_state(1))
    h, c = state.h.copy(), state.c.copy()
    model.step(tiny.stream[20:25][None, :], state)
    np.testing.assert_array_equal(state.h, h)
    np.testing.assert_array_equal(state.c, c)


def test_bad_token_refused_by_the_c_step(tiny):
    # Model.step validates first; call the runner directly to reach the C check.
    model = load(tiny.float_path, backend="c")
    h = np.zeros((2, 1, 13), np.float32)
    c = h.copy()
    tokens = np.array([[1, tiny.config.vocab_size]], np.int64)
    with pytest.raises(InputError, match="token id out of range"):
        model.runner.run(tokens, h, c)


def test_cache_reused(tiny, c_cache):
    load(tiny.float_path, backend="c")
    built = sorted((c_cache / "c").glob("*.so"))
    mtimes = [p.stat().st_mtime_ns for p in built]
    load(tiny.float_path, backend="c")
    assert sorted((c_cache / "c").glob("*.so")) == built
    assert [p.stat().st_mtime_ns for p in built] == mtimes


def test_missing_compiler_names_what_to_install(tiny, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(c_build.CompilerError, match=r"C compiler.*apt-get install gcc"):
        c_build.find_compiler()


def test_int8_dynamic_refused(tiny, tmp_path):
    from lstm_edge.exporters.quantize import quantize_file

    dyn = tmp_path / "dyn.onnx"
    quantize_file(tiny.float_path, dyn, "int8-dynamic")
    with pytest.raises(cbackend.UnsupportedModelError, match="int8-dynamic"):
        load(dyn, backend="c")


def test_python_mirrors_match_the_header():
    header = (c_build.LIBRARY_DIR / "lstm_edge.h").read_text()
    block = re.search(r"#define LSTM_EDGE_BATCH_BLOCK (\d+)", header)
    assert block and int(block.group(1)) == c_source.BATCH_BLOCK
    panel = re.search(r"#define LSTM_EDGE_PANEL (\d+)", header)
    assert panel and int(panel.group(1)) == c_source.PANEL
    codes = {int(v) for v in re.findall(r"LSTM_EDGE_ERR_\w+ = (\d+)", header)}
    assert codes == set(cbackend.STATUS_MESSAGES)
    per_stream = re.search(r"PER_STREAM\(input, hidden\) \((.*)\)\n", header)
    assert per_stream and per_stream.group(1) == "8 * (hidden) + (input)"


# ---- the CPython binding (Model.step's thin path) ---------------------------------------


def test_binding_is_built_where_the_headers_are(tiny):
    """Python.h and numpy's headers present (CI installs them): Model.step on the c backend
    goes through the CPython binding, not ctypes."""
    import os

    model = load(tiny.float_path, backend="c")
    if os.environ.get("CI"):
        assert c_build.binding_headers() is not None, "CI must have the Python headers"
    expected = "cpython" if c_build.binding_headers() is not None else "ctypes"
    assert model.runner.binding == expected and (model._fast is not None) == (expected == "cpython")


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_binding_equals_the_general_path_exactly(tiny, dtype):
    """The binding and the ctypes path call the same C step on the same values: bit-equal
    outputs and states, for one step, a run of steps and a batch; the binding's states
    are read-only States the runtime trusts, like the general path's."""
    model = load(tiny.int8_path, backend="c")
    if model._fast is None:
        pytest.skip("no Python development headers here (the CI test above requires them)")
    general = load(tiny.int8_path, backend="c")
    object.__setattr__(general, "_fast", None)  # the ctypes path alone
    rng = np.random.default_rng(1)
    vocab = model.config.vocab_size
    _, warm = model.step(tiny.stream[None, :50], model.initial_state(1))
    for tokens, state in (
        (tiny.stream[50:51], warm),
        (tiny.stream[None, 50:90], warm),
        (rng.integers(0, vocab, (6,)), warm.select([0] * 6)),
        (rng.integers(0, vocab, (5, 9)), model.initial_state(5)),
    ):
        tokens = np.ascontiguousarray(tokens, dtype=dtype)
        got, got_state = model.step(tokens, state)
        want, want_state = general.step(tokens, state)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_state.h, want_state.h)
        np.testing.assert_array_equal(got_state.c, want_state.c)
        assert not got_state.h.flags.writeable and not got_state.c.flags.writeable
        assert got_state._checked and got_state.h.shape == state.h.shape


def test_binding_leaves_errors_to_the_general_path(tiny):
    """Whatever the binding does not take (an id out of range, a state with NaN, a list)
    ends in the general path's typed error or result."""
    from lstm_edge.runtime.state import State

    model = load(tiny.float_path, backend="c")
    st = model.initial_state(2)
    with pytest.raises(InputError, match=r"token id 9999 at position \[1\] is out of range"):
        model.step(np.array([1, 9999]), st)
    with pytest.raises(InputError, match=r"state has shape \[2, 2, 13\] .*= \[2, 3, 13\]"):
        model.step(np.array([1, 2, 3]), st)
    bad = State(h=np.full_like(st.h, np.nan), c=np.zeros_like(st.c))
    with pytest.raises(InputError, match=r"state\.h contains NaN or Inf"):
        model.step(np.array([1, 2]), bad)
    got, _ = model.step([1, 2], st)  # a list: the general path converts it
    np.testing.assert_array_equal(got, model.step(np.array([1, 2]), st)[0])


def test_panels_layout():
    # [inputs][outputs] -> panels of PANEL outputs, each [inputs][width], the last narrower:
    # element (output r, input j) at p * PANEL * inputs + j * width + (r - p * PANEL).
    inputs, outputs = 5, 2 * c_source.PANEL + 7
    m = np.arange(inputs * outputs).reshape(inputs, outputs)
    flat = c_source.panels(m)
    for r in range(outputs):
        p = r // c_source.PANEL
        width = min(c_source.PANEL, outputs - p * c_source.PANEL)
        for j in range(inputs):
            at = p * c_source.PANEL * inputs + j * width + (r - p * c_source.PANEL)
            assert flat[at] == m[j, r]


def test_one_panel_is_the_input_major_matrix():
    m = np.arange(5 * 70).reshape(5, 70)
    np.testing.assert_array_equal(c_source.panels(m, 0), m.reshape(-1))


def test_boards_get_one_panel_and_hosts_panels(tiny):
    # A microcontroller's passes pay per panel (the default model's float step: 21% more
    # instructions on the Cortex-M4 with panels of 32), so a board's model data is one
    # panel; the host's register tiles read panels. Each matrix says which it is.
    from lstm_edge.exporters.c_codegen import bundle_files
    from lstm_edge.runtime.artifact import read_artifact

    art = read_artifact(tiny.float_path)
    inputs = tiny.stream[:8]
    host, _ = bundle_files(art, "m", inputs, "test", "host")
    board, _ = bundle_files(art, "m", inputs, "test", "cortex-m4")
    assert re.findall(r", (\d+) \}", host["m_model.c"])  # the matrices' panel fields
    assert set(re.findall(r", (\d+) \}", host["m_model.c"])) == {str(c_source.PANEL)}
    assert set(re.findall(r", (\d+) \}", board["m_model.c"])) == {"0"}
    assert (
        f"panels of {c_source.PANEL}" not in board["m_model.c"]
        and "input-major" in board["m_model.c"]
    )


@pytest.fixture(scope="module")
def wide(model_factory, tmp_path_factory):
    # 4H = 300: nine full panels and a narrow one of 12 outputs; 19 logits: one narrow
    # panel. 75 recurrent inputs: two of the int8 tiles' blocks of 64 inputs, the second
    # ending in a short group. One layer: the binding hands [1, batch, H] to the library
    # without a transposed copy.
    _, write_models = model_factory
    config = ModelConfig(vocab=(UNK_CHAR, *"abcdefgh ijklmno.,"), embed_size=9,
                         hidden_size=75, num_layers=1)  # fmt: skip
    return write_models(tmp_path_factory.mktemp("wide"), config)


@pytest.mark.parametrize("scheme", [0, 1], ids=["float", "int8"])
def test_wide_model_batch_and_prefill_exact(wide, scheme):
    # More streams than LSTM_EDGE_BATCH_BLOCK (a full block and a partial one) and a
    # prefill longer than a block: bit-equal to the streams and steps one by one (batches
    # take the register tiles, one lane the passes), and close to numpy (every panel of
    # every matrix is read right).
    path = wide[scheme]
    model, ref = load(path, backend="c"), load(path, backend="numpy")
    rng = np.random.default_rng(3)
    streams = c_source.BATCH_BLOCK + 6
    tokens = rng.integers(0, model.config.vocab_size, size=(streams, 3))
    _, warm = model.step(tokens[:, :2], model.initial_state(streams))
    logits, state = model.step(tokens, warm)
    for b in (0, 1, streams - 1):
        one, one_state = model.step(tokens[b : b + 1], warm.select([b]))
        np.testing.assert_array_equal(logits[b], one[0])
        np.testing.assert_array_equal(state.h[:, b], one_state.h[:, 0])
        np.testing.assert_array_equal(state.c[:, b], one_state.c[:, 0])
    want, want_state = ref.step(tokens, warm)
    np.testing.assert_allclose(state.c, want_state.c, rtol=0, atol=ATOL)
    np.testing.assert_allclose(logits, want, rtol=0, atol=ATOL)
    assert np.abs(want).max() > 1.0
    prompt = rng.integers(0, model.config.vocab_size, size=(1, c_source.BATCH_BLOCK + 37))
    prefill, pre_state = model.step(prompt, model.initial_state(1))
    single, single_state = _run_single_steps(model, prompt[0])
    np.testing.assert_array_equal(prefill[0], single)
    np.testing.assert_array_equal(pre_state.c, single_state.c)
    np.testing.assert_allclose(prefill, ref.step(prompt, ref.initial_state(1))[0], atol=ATOL)


@pytest.mark.parametrize("which", ["float_path", "int8_path"])
def test_token_gate_table_is_bit_identical(tiny, monkeypatch, which):
    # The runner computes layer 0's gate inputs per token once (lstm_edge_token_gates);
    # steps with the table equal steps without it bit for bit: single steps, a prefill
    # (many lanes) and a batch of streams. (No dequantized panels here: the table alone.)
    monkeypatch.setattr(cbackend, "DEQUANTIZED_MAX_FLOATS", 0)
    path = getattr(tiny, which)
    with_table = load(path, backend="c")
    assert with_table.runner._model != cbackend.checked_model(
        with_table.runner._lib, path, "lstm_edge_check_model"
    )  # the table's copy of the model, not the compiled data
    monkeypatch.setattr(cbackend, "TOKEN_GATES_MAX_FLOATS", 0)
    without = load(path, backend="c")
    assert without.runner._model == cbackend.checked_model(
        without.runner._lib, path, "lstm_edge_check_model"
    )
    stream = tiny.stream[:200]
    np.testing.assert_array_equal(
        _run_single_steps(with_table, stream)[0], _run_single_steps(without, stream)[0]
    )
    tokens = stream[:120].reshape(6, 20)
    for model_in in (tokens, stream[None, :]):
        got, got_state = with_table.step(model_in, with_table.initial_state(len(model_in)))
        want, want_state = without.step(model_in, without.initial_state(len(model_in)))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_state.c, want_state.c)


def test_token_gate_table_refuses_bad_calls(tiny):
    # The C function's own checks: a table or scratch too small or a NULL pointer is
    # refused with a status and nothing written; the copy it writes passes the model check.
    import ctypes

    runner = load(tiny.float_path, backend="c").runner
    lib, cfg = runner._lib, tiny.config
    raw = cbackend.checked_model(lib, tiny.float_path, "lstm_edge_check_model")
    fn = lib.lstm_edge_token_gates
    out = ctypes.create_string_buffer(lib.lstm_edge_model_bytes())
    rows = cfg.vocab_size * 4 * cfg.hidden_size
    table = np.full(rows, 7.0, np.float32)
    scratch = np.empty(cfg.embed_size, np.float32)
    small = fn(raw, table.ctypes.data, rows - 1, scratch.ctypes.data, scratch.size,
               ctypes.addressof(out))  # fmt: skip
    assert small == 3 and (table == 7.0).all()
    small = fn(raw, table.ctypes.data, rows, scratch.ctypes.data, scratch.size - 1,
               ctypes.addressof(out))  # fmt: skip
    assert small == 3 and (table == 7.0).all()
    assert fn(raw, None, rows, scratch.ctypes.data, scratch.size, ctypes.addressof(out)) == 1
    ok = fn(raw, table.ctypes.data, rows, scratch.ctypes.data, scratch.size, ctypes.addressof(out))
    assert ok == 0 and np.isfinite(table).all() and not (table == 7.0).any()
    assert lib.lstm_edge_check_model(ctypes.addressof(out)) == 0


def _forecast_int8(model_factory, folder):
    _, write_models = model_factory
    # 4H = 300 as the wide model (nine full panels and a narrow one), two layers
    config = ModelConfig(
        task="forecast",
        hidden_size=75,
        num_layers=2,
        features=("a", "b"),
        targets=("b",),
        horizon=1,
        feature_mean=(10.0, -3.0),
        feature_std=(2.0, 0.5),
        target_mean=(-3.0,),
        target_std=(0.5,),
    )
    return write_models(folder, config, seed=4)[1]


def _inputs(model, rng, batch, time):
    if model.config.task == "forecast":
        return model.config.spec.synthetic_inputs(model.config, batch * time, 5).reshape(
            batch, time, -1
        )
    return rng.integers(0, model.config.vocab_size, size=(batch, time))


@pytest.mark.parametrize("keep_int8", [True, False], ids=["int8-steps", "float-steps"])
@pytest.mark.parametrize("which", ["tiny", "wide", "forecast"])
def test_dequantized_panels_are_bit_identical(tiny, wide, model_factory, tmp_path,
                                              monkeypatch, which, keep_int8):  # fmt: skip
    # An int8 model's runner dequantizes its matrices once into float32 panels
    # (lstm_edge_dequantized_panels): batches and prefill chunks run the float32 tiles on
    # them, single steps the int8 kernel (or the float32 tiles too: a small model's copy
    # drops the int8 weights), and without the panels batches dequantize blocks on the
    # fly. Every one computes w = q * scale and adds x * w in input order: the same bits,
    # with and without the panels, for 1, 2, 6, 9 and 70 streams (the 8-, 4- and 1-lane
    # tiles, a full block of 64 and a partial one) and a prefill longer than a block; and
    # close to numpy.
    path = {"tiny": tiny.int8_path, "wide": wide[1]}.get(which) or _forecast_int8(
        model_factory, tmp_path
    )
    monkeypatch.setattr(cbackend, "FLOAT_STEPS_MAX_FLOATS", 0 if keep_int8 else 1 << 30)
    panels = load(path, backend="c")
    assert panels.runner._panels.size > 0
    monkeypatch.setattr(cbackend, "DEQUANTIZED_MAX_FLOATS", 0)
    plain = load(path, backend="c")
    assert not hasattr(plain.runner, "_panels")
    ref = load(path, backend="numpy")
    rng = np.random.default_rng(7)
    for batch, time in ((1, 1), (2, 3), (6, 5), (9, 2), (c_source.BATCH_BLOCK + 6, 2),
                        (1, c_source.BATCH_BLOCK + 37)):  # fmt: skip
        x = _inputs(panels, rng, batch, time)
        got, got_state = panels.step(x, panels.initial_state(batch))
        want, want_state = plain.step(x, plain.initial_state(batch))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_state.h, want_state.h)
        np.testing.assert_array_equal(got_state.c, want_state.c)
        for b in {0, batch - 1}:  # each stream alone, step by step (the one-lane kernel)
            state = plain.initial_state(1)
            for t in range(time):
                one, state = plain.step(x[b : b + 1, t : t + 1], state)
                np.testing.assert_array_equal(got[b, t], one[0, 0])
            np.testing.assert_array_equal(got_state.c[:, b], state.c[:, 0])
        ref_out, ref_state = ref.step(x, ref.initial_state(batch))
        np.testing.assert_allclose(got, ref_out, rtol=0, atol=ATOL)
        np.testing.assert_allclose(got_state.c, ref_state.c, rtol=0, atol=ATOL)


def test_dequantized_panels_refuse_bad_calls(tiny):
    # The C function's own checks: panels or layers too small, a NULL pointer: refused
    # with a status and nothing written; the copy it writes passes the model check and its
    # panels hold q * scale; a float model has nothing to dequantize.
    import ctypes

    runner = load(tiny.int8_path, backend="c").runner
    lib, cfg = runner._lib, tiny.config
    raw = cbackend.checked_model(lib, tiny.int8_path, "lstm_edge_check_model")
    fn = lib.lstm_edge_dequantized_panels
    need = lib.lstm_edge_dequantized_floats(raw)
    h, e, v, layers = cfg.hidden_size, cfg.embed_size, cfg.vocab_size, cfg.num_layers

    def pad(n):  # each matrix starts on a 64-byte line: its size rounded up to 16 floats
        return -(-n // 16) * 16

    assert need == pad(4 * h * e) + pad(4 * h * h) * (2 * layers - 1) + pad(v * h)
    assert runner._panels.size == need and runner._panels.ctypes.data % 64 == 0
    panels = np.full(need, 7.0, np.float32)
    lay = ctypes.create_string_buffer(lib.lstm_edge_layer_bytes() * layers)
    out = ctypes.create_string_buffer(lib.lstm_edge_model_bytes())
    args = [raw, panels.ctypes.data, need, 1, ctypes.addressof(lay), layers,
            ctypes.addressof(out)]  # fmt: skip
    for k, bad, status in ((2, need - 1, 3), (5, layers - 1, 3), (1, None, 1), (4, None, 1),
                           (6, None, 1)):  # fmt: skip
        assert fn(*args[:k], bad, *args[k + 1 :]) == status
        assert (panels == 7.0).all() and out.raw == bytes(len(out.raw))
    assert fn(*args) == 0 and lib.lstm_edge_check_model(ctypes.addressof(out)) == 0
    # the head, last in the buffer: [H][V] (one panel: V < PANEL), q * scale in float32 as
    # the numpy reference's weights (the rest of its padding is not read)
    assert v < c_source.PANEL
    head = read_artifact(tiny.int8_path).weights[HEAD_WEIGHT]
    at = need - pad(v * h)
    np.testing.assert_array_equal(panels[at : at + v * h].reshape(h, v), head)
    float_raw = cbackend.checked_model(
        load(tiny.float_path, backend="c").runner._lib, tiny.float_path, "lstm_edge_check_model"
    )
    assert lib.lstm_edge_dequantized_floats(float_raw) == 0
