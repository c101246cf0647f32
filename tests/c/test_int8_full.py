"""int8-full in C: the integer library (lstm_edge_int.c) against the numpy integer
reference (runtime/integer.py, the scheme's definition), bit for bit.

Every task: char-lm, forecast (change targets: the float output stage in full), classify of
feature rows and classify of text. Each tiny model has saturating gates (the C fixtures'
scaled weights), is calibrated on one seeded stream (its "training split") and compared
over 10,000 steps of another (its held-out stream; the classify rows one is the built-in
set's test sequences, cycled): outputs as float32 bits, h and c as integer codes. Then the
c backend's state conversion, the codegen bundle on the host, the Cortex-M3 build (no
FPU) under QEMU and its disassembly, and the Cortex-M4 build under QEMU. Last, forecast
models with the linear highway (a float32 history in the state), bit for bit as well.
"""

from __future__ import annotations

import ctypes
import dataclasses
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import lstm_edge.runtime as rt
from lstm_edge.exporters import c_codegen as cg
from lstm_edge.exporters.quantize import quantize_file
from lstm_edge.runtime.backends.c_build import LIBRARY_DIR
from lstm_edge.runtime.backends.c_source import model_sources, scheme_footprints
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig
from lstm_edge.runtime.errors import InputError
from lstm_edge.runtime.tasks.forecast import output_ahead
from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain.calibrate import chunks, measure

HELD_OUT_STEPS = 10_000
CALIBRATION_STEPS = 4096
QEMU_STEPS = HELD_OUT_STEPS  # printed every step: every output of every step compared


def _configs() -> dict[str, ModelConfig]:
    seqs = cd.builtin_sequences(40, seed=7)
    splits = cd.split_sequences(seqs, 0.2, 0.2, seed=0)
    mean, std = cd.feature_stats(seqs, splits["train"], seqs.columns)
    return {
        # odd sizes: the kernels' remainder loops (inputs, units, outputs not multiples of 4)
        "char-lm": ModelConfig(
            vocab=(UNK_CHAR, *"abcdefgh ijklmno.,"), embed_size=6, hidden_size=13, num_layers=2
        ),
        "forecast": ModelConfig(
            task="forecast", hidden_size=13, num_layers=2, features=("load", "temp", "current"),
            targets=("current", "load"), horizon=2, feature_mean=(100.0, 85.0, 120.0),
            feature_std=(5.0, 50.0, 20.0), target_mean=(120.0, 100.0), target_std=(20.0, 5.0),
            target_kind="change", change_mean=(0.5, -0.2), change_std=(3.0, 0.7),
        ),
        "classify-rows": ModelConfig(
            task="classify", hidden_size=10, num_layers=2, features=seqs.columns,
            classes=seqs.classes, feature_mean=mean, feature_std=std,
        ),
        "classify-tokens": ModelConfig(
            task="classify", hidden_size=12, num_layers=2,
            vocab=(UNK_CHAR, " ", "a", "d", "e", "i", "k", "n", "s", "t"), embed_size=5,
            classes=("en", "de", "fi"),
        ),
    }  # fmt: skip


def _held_out(task: str, config: ModelConfig) -> np.ndarray:
    spec = config.spec
    if task == "classify-rows":  # the built-in set's test sequences, one after the other
        seqs = cd.builtin_sequences(40, seed=7)
        test = cd.split_sequences(seqs, 0.2, 0.2, seed=0)["test"]
        rows = np.concatenate([seqs.rows(i) for i in test]).astype(np.float32)
        return np.resize(rows, (HELD_OUT_STEPS, rows.shape[1]))
    return spec.synthetic_inputs(config, HELD_OUT_STEPS, seed=1)


@dataclass(frozen=True)
class IntModel:
    task: str
    config: ModelConfig
    float_path: Path
    path: Path  # the int8-full artifact
    stream: np.ndarray  # the held-out stream [HELD_OUT_STEPS(, F)]


def _int_model(task: str, folder: Path, model_factory) -> IntModel:
    from lstm_edge.toolchain.export import build_onnx

    tiny_model, _ = model_factory
    config = _configs()[task]
    float_path = folder / f"{task}.onnx"
    float_path.write_bytes(build_onnx(tiny_model(config, seed=3)).SerializeToString())
    train = config.spec.synthetic_inputs(config, CALIBRATION_STEPS, seed=0)
    ranges = measure(float_path, chunks(train, CALIBRATION_STEPS), {"data": "seeded stream 0"})
    path = folder / f"{task}.int8full.onnx"
    quantize_file(float_path, path, "int8-full", ranges=ranges)
    return IntModel(task, config, float_path, path, _held_out(task, config))


TASKS = ("char-lm", "forecast", "classify-rows", "classify-tokens")


@pytest.fixture(scope="module", params=TASKS)
def int_model(request, tmp_path_factory, model_factory, require_tools) -> IntModel:
    require_tools("cc")
    return _int_model(request.param, tmp_path_factory.mktemp(request.param), model_factory)


def _run(path: Path, backend: str, stream: np.ndarray):
    model = rt.load(path, backend=backend)
    out, state = model.step(stream[None], model.initial_state(1))
    return out[0], state


def _assert_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype == np.float32
    diff = got.view(np.uint32) != want.view(np.uint32)
    if diff.any():
        first = tuple(int(i) for i in np.argwhere(diff)[0])
        pytest.fail(f"{what}: {int(diff.sum())} values differ, first at {first}: "
                    f"{got[first]!r} vs {want[first]!r}")  # fmt: skip


# ---- the c backend against the reference, every task ------------------------------------------


def test_c_backend_is_bit_identical_to_numpy_over_the_held_out_stream(int_model):
    ref, ref_state = _run(int_model.path, "numpy", int_model.stream)
    got, state = _run(int_model.path, "c", int_model.stream)
    assert got.shape == (HELD_OUT_STEPS, int_model.config.output_size)
    _assert_bits(got, ref, f"{int_model.task} outputs")
    _assert_bits(state.h, ref_state.h, f"{int_model.task} h")
    _assert_bits(state.c, ref_state.c, f"{int_model.task} c")
    # the codes are integers in their ranges, and the stream moved them (not a stuck state)
    assert np.array_equal(state.h, np.round(state.h)) and np.abs(state.h).max() <= 127
    assert np.abs(state.c).max() <= 32768 and np.abs(state.c).max() > 0
    assert np.isfinite(got).all() and got.std(axis=0).min() > 0


def test_single_steps_and_batches_equal_the_run(int_model):
    """Step by step (state carried through the float32 State) and as a batch of two
    streams: the same bits as one call over the stream."""
    model = rt.load(int_model.path, backend="c")
    stream = int_model.stream[:300]
    whole, whole_state = model.step(stream[None], model.initial_state(1))
    state, outs = model.initial_state(1), []
    for t in range(len(stream)):
        y, state = model.step(stream[None, t : t + 1], state)
        outs.append(y[0, 0])
    _assert_bits(np.stack(outs), whole[0], "single steps")
    _assert_bits(state.c, whole_state.c, "single steps c")
    other = int_model.stream[300:600]
    both, _ = model.step(np.stack([stream, other]), model.initial_state(2))
    _assert_bits(both[0], whole[0], "batch stream 0")
    ref, _ = _run(int_model.path, "numpy", other)
    _assert_bits(both[1], ref, "batch stream 1")


def test_a_state_that_is_not_integer_codes_is_refused(int_model):
    model = rt.load(int_model.path, backend="c")
    x = int_model.stream[:1][None]
    _, state = model.step(x, model.initial_state(1))
    bad_h = state.h.copy()
    bad_h[0, 0, 0] = 0.5
    with pytest.raises(InputError, match=r"state.h of an int8-full .* \[-127, 127\]; found 0.5"):
        model.step(x, rt.State(bad_h, state.c))
    bad_c = state.c.copy()
    bad_c[-1, 0, 1] = 40000.0
    with pytest.raises(InputError, match=r"state.c of .* \[-32768, 32767\]; found 40000.0"):
        model.step(x, rt.State(state.h, bad_c))


def test_token_models_step_through_the_binding_and_refuse_bad_codes_alike(int_model):
    # Token models' Model.step checks and converts the codes in C (bind_codes); a code it
    # will not take (NaN, -128, a fraction, out of range) goes to the general path, which
    # names it; forecast models keep the general path.
    from lstm_edge.runtime.backends.c_build import binding_headers

    model = rt.load(int_model.path, backend="c")
    tokens = np.dtype(int_model.config.spec.c_input_dtype).kind == "i"
    assert model.runner.binding == ("cpython" if tokens and binding_headers() else "ctypes")
    stream = int_model.stream[:40]
    _, state = model.step(stream[None], model.initial_state(1))
    y, after = model.step(stream[None, :5], state)
    want, want_h, want_c = model.runner.run(stream[None, :5], state.h, state.c)  # ctypes
    _assert_bits(y, want, "binding outputs")
    _assert_bits(after.h, want_h, "binding h")
    _assert_bits(after.c, want_c, "binding c")
    for field, value, match in [
        ("h", np.nan, r"state.h contains NaN"),
        ("h", -128.0, r"state.h .* \[-127, 127\]; found -128.0"),
        ("c", 1.5, r"state.c .* found 1.5"),
        ("c", -32769.0, r"state.c .* found -32769.0"),
    ]:
        h, c = state.h.copy(), state.c.copy()
        (h if field == "h" else c)[-1, 0, -1] = value
        with pytest.raises(InputError, match=match):
            model.step(stream[None, :1], rt.State(h, c))


def _footprint_table_matches_the_arrays(model: IntModel) -> dict:
    """scheme_footprints of the model's shape, each scheme checked against the bytes of
    the arrays the generator emits for its float, int8 and int8-full artifacts."""
    from lstm_edge.exporters.quantize import quantize_proto, read_onnx

    table = scheme_footprints(model.config)
    int8_path = model.path.with_name(model.path.stem + ".int8.onnx")
    int8_path.write_bytes(quantize_proto(read_onnx(model.float_path), "int8").SerializeToString())
    for scheme, path in (("none", model.float_path), ("int8", int8_path),
                         ("int8-full", model.path)):  # fmt: skip
        fp = model_sources(rt.load(path, backend="numpy").artifact, "m").footprint
        assert fp == table[scheme], scheme
    return table


def test_footprint_formulas_match_the_generated_arrays(int_model):
    """codegen's per-scheme table (scheme_footprints) is computed from the shapes; for each
    scheme it must equal the bytes of the arrays the generator actually emits."""
    table = _footprint_table_matches_the_arrays(int_model)
    cfg = int_model.config
    assert table["int8-full"].state_bytes == 3 * cfg.num_layers * cfg.hidden_size
    assert table["none"].state_bytes == 8 * cfg.num_layers * cfg.hidden_size


# ---- the bundle: host, Cortex-M3 without FPU, Cortex-M4 ---------------------------------------


def _example_outputs(cmd: list[str], width: int) -> np.ndarray:
    run = cg.run_example(cmd, width, cg.QEMU_TIMEOUT_S)
    assert sorted(run.outputs) == list(range(QEMU_STEPS))
    return np.stack([run.outputs[t] for t in range(QEMU_STEPS)])


def _bundle(int_model: IntModel, out: Path, target: str) -> Path:
    inputs = int_model.stream[:QEMU_STEPS]
    report = cg.codegen(
        int_model.path, out, cg.CodegenOptions(name="m", target=target, steps=QEMU_STEPS),
        lambda c: cg.ExampleStream(inputs, "held-out stream"),
    )  # fmt: skip
    assert report.scheme == "int8-full"
    return out


def test_host_bundle_prints_numpys_bits(int_model, tmp_path):
    out = _bundle(int_model, tmp_path / "b", "host")
    exe = cg.build_host(out, "m", tmp_path / "m", ("-DPRINT_EVERY=1",), "int8-full")
    got = _example_outputs([str(exe)], int_model.config.output_size)
    ref, _ = _run(int_model.path, "numpy", int_model.stream[:QEMU_STEPS])
    _assert_bits(got, ref, "host bundle")


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m4"])
def test_qemu_build_prints_numpys_bits(int_model, tmp_path, require_tools, target):
    """The int8-full model on the emulated boards: every output of every step of the
    held-out stream, bit for bit (the M3 build has no FPU: its float stages are
    soft-float, its recurrent step integer only)."""
    require_tools(cg.ARM_CC, cg.QEMU_CMD[0])
    out = _bundle(int_model, tmp_path / "b", target)
    elf = cg.build_cortex_m(out, "m", target, "int8-full", ("-DPRINT_EVERY=1",), "all.elf")
    board = cg.BOARDS[target]
    got = _example_outputs([cg.QEMU_CMD[0], *board.qemu[1:], "-kernel", str(elf)],
                           int_model.config.output_size)  # fmt: skip
    ref, _ = _run(int_model.path, "numpy", int_model.stream[:QEMU_STEPS])
    _assert_bits(got, ref, f"{target} under qemu")


# ---- no soft-float in the Cortex-M3 step path ---------------------------------------------------

# libgcc's soft-float entry points: the EABI names (__aeabi_fadd, __aeabi_dmul, __aeabi_i2f,
# __aeabi_f2iz, __aeabi_fcmplt, ...) and the GNU ones (__addsf3, __muldf3, __floatsisf, ...)
SOFT_FLOAT = re.compile(
    r"__aeabi_(?:f|d|[a-z0-9]*2[fd]\b|[a-z0-9]*[fd]2)|__[a-z]*(?:sf|df)[0-9a-z]*\b"
)
# The float stages, outside the recurrence (lstm_edge_int.h): allowed to use float.
FLOAT_STAGES = {"lstm_edge_int_quantize_row", "lstm_edge_int_output",
                "lstm_edge_int_advance_history"}  # fmt: skip


def soft_float_calls(obj: Path) -> dict[str, set[str]]:
    """Function -> the soft-float helpers it calls or jumps to, from the relocations of
    `arm-none-eabi-objdump -dr` (every call out of the object has one)."""
    text = subprocess.run([cg.ARM_OBJDUMP, "-dr", str(obj)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    calls: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        head = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if head:
            current = head.group(1)
            calls.setdefault(current, set())
            continue
        reloc = re.search(r"R_ARM_\w+\s+(\S+)", line)
        if current and reloc and SOFT_FLOAT.search(reloc.group(1)):
            calls[current].add(reloc.group(1))
    return calls


def test_cortex_m3_step_path_calls_no_soft_float(tmp_path, require_tools):
    require_tools(cg.ARM_CC, cg.ARM_OBJDUMP)
    obj = tmp_path / "lstm_edge_int.o"
    flags = cg.scheme_cflags(cg.BOARDS["cortex-m3"].cflags, "int8-full")
    subprocess.run([cg.ARM_CC, *flags, "-c", "-o", str(obj), str(LIBRARY_DIR / "lstm_edge_int.c")],
                   check=True)  # fmt: skip
    calls = soft_float_calls(obj)
    # the check sees soft-float where it is: the float stages call the helpers
    assert {"__aeabi_fmul", "__aeabi_fadd", "__aeabi_i2f"} <= calls["lstm_edge_int_output"]
    assert "__aeabi_fmul" in calls["lstm_edge_int_quantize_row"]
    assert {"__aeabi_fmul", "__aeabi_fadd"} <= calls["lstm_edge_int_advance_history"]
    step_path = {f: c for f, c in calls.items() if f not in FLOAT_STAGES}
    assert {"lstm_edge_int_layers_step", "lstm_edge_int_step", "lstm_edge_int_head"} <= set(
        step_path
    )
    assert {f: c for f, c in step_path.items() if c} == {}


# ---- the command line and bench ---------------------------------------------------------------


def test_cli_codegen_prints_every_schemes_footprint_and_the_makefile_builds(
    tmp_path, require_tools, model_factory
):
    from typer.testing import CliRunner

    from lstm_edge.toolchain.cli import app

    require_tools("cc", "make")
    int_model = _int_model("char-lm", tmp_path, model_factory)
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["codegen", str(int_model.path), "-o", str(out), "--name", "m", "--check"]
    )
    assert result.exit_code == 0, result.output
    assert "int8-full *" in result.output and "pass" in result.output
    table = scheme_footprints(int_model.config)
    for scheme, fp in table.items():
        assert f"{fp.weight_bytes:,}" in result.output, scheme
    # the bundle's Makefile builds the integer library (and the example runs)
    (out / "m").unlink()
    make = subprocess.run(["make", "-s", "-C", str(out)], capture_output=True, text=True)
    assert make.returncode == 0, make.stderr
    assert "lstm_edge_int.c" in (out / "Makefile").read_text()
    assert subprocess.run([str(out / "m")], capture_output=True, text=True).returncode == 0


def test_bench_ratio_of_each_c_step_to_the_float_c_step():
    from lstm_edge.toolchain.bench import LatencyRow, Stats, _c_step_vs_float

    def row(kind: str, artifact: str, median: float) -> LatencyRow:
        stats = Stats(median=median, p10=median, p90=median, repeats=1, iterations=1)
        return LatencyRow("x", kind, artifact, "c", stats)

    rows = [row("c_direct", "f.onnx", 100e-6), row("c_direct", "q.onnx", 40e-6),
            row("runtime", "q.onnx", 50e-6)]  # fmt: skip
    _c_step_vs_float(rows, {"f.onnx": "none", "q.onnx": "int8-full"})
    assert [r.vs_float_c_step for r in rows] == [1.0, 0.4, None]


# ---- undefined behaviour ----------------------------------------------------------------------


def test_held_out_stream_under_address_and_undefined_behaviour_sanitizers(
    int_model, tmp_path, require_tools
):
    """The integer step's shifts, products and saturations never overflow or shift out of
    range (UBSan aborts on the first), nor does it read outside its arrays (ASan), over
    the held-out stream; and the sanitized build still prints numpy's bits."""
    require_tools("gcc")
    out = _bundle(int_model, tmp_path / "b", "host")
    exe = tmp_path / "sanitized"
    flags = ["-std=c99", "-g", "-O1", "-ffp-contract=off", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all", "-DPRINT_EVERY=1"]  # fmt: skip
    srcs = [out / f for f in ("main.c", "m_model.c", "lstm_edge.c", "lstm_edge_int.c")]
    subprocess.run(["gcc", *flags, f"-I{out}", "-o", str(exe), *map(str, srcs), "-lm"],
                   check=True, capture_output=True)  # fmt: skip
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600,
                         env={"ASAN_OPTIONS": "detect_leaks=0"})  # fmt: skip
    assert "runtime error" not in run.stderr and "Sanitizer" not in run.stderr, run.stderr[-4000:]
    assert run.returncode == 0, run.stderr[-4000:]
    got = np.stack([v for _, v in sorted(cg.parse_example_output(
        run.stdout, int_model.config.output_size).outputs.items())])  # fmt: skip
    ref, _ = _run(int_model.path, "numpy", int_model.stream[:QEMU_STEPS])
    _assert_bits(got, ref, "sanitized host build")


@pytest.mark.parametrize("forced", ["64-bit", "bounded 32-bit"])
def test_every_rescale_mode_gives_the_same_bits(int_model, forced, monkeypatch, tmp_path):
    """The C step's three rescale paths (lstm_edge_int_layer.rescale) are the same
    arithmetic: codegen's choice overridden (0 everywhere, or 2 wherever it holds) still
    gives numpy's bits over the held-out stream."""
    from lstm_edge.runtime.backends import c_int_source

    chosen = c_int_source.rescale_mode
    modes = []

    def override(layer, width, hidden):
        mode = 0 if forced == "64-bit" else (2 if chosen(layer, width, hidden) else 0)
        modes.append(mode)
        return mode

    monkeypatch.setattr(c_int_source, "rescale_mode", override)
    monkeypatch.setenv("LSTM_EDGE_CACHE", str(tmp_path))  # a library of its own
    got, state = _run(int_model.path, "c", int_model.stream)
    ref, ref_state = _run(int_model.path, "numpy", int_model.stream)
    assert modes and set(modes) == ({0} if forced == "64-bit" else {2})
    _assert_bits(got, ref, f"{int_model.task} outputs, {forced}")
    _assert_bits(state.c, ref_state.c, f"{int_model.task} c, {forced}")


# ---- the forecast highway ---------------------------------------------------------------------

HIGHWAY_STEPS = 3000
# (ar_lags, target_kind, horizon, horizon_outputs): a short and a season-long history,
# change and level targets, one output per target and one per target and step ahead
HIGHWAYS = {
    "lags5-change-h1": (5, "change", 1, "last"),
    "lags53-level-h3each": (53, "level", 3, "each"),
    "lags53-change-h3each": (53, "change", 3, "each"),
}


def highway_config(base: ModelConfig, lags: int, kind: str, horizon: int, outputs: str,
                   train: np.ndarray) -> ModelConfig:  # fmt: skip
    """`base` with a highway: the linear AR fitted on the training stream's targets, per
    output (step-major, as the outputs) its intercept and `lags` coefficients."""
    n = len(base.targets) * (horizon if outputs == "each" else 1)
    change = kind == "change"
    cfg = dataclasses.replace(
        base, target_kind=kind, horizon=horizon, horizon_outputs=outputs,
        change_mean=tuple(np.linspace(-0.3, 0.4, n)) if change else (),
        change_std=tuple(np.linspace(0.8, 3.0, n)) if change else (),
    )  # fmt: skip
    targets = train[:, [cfg.features.index(t) for t in cfg.targets]].astype(np.float64)
    coef = [fe.fit_linear_ar(targets, ahead, lags).coef for ahead in output_ahead(cfg)]
    flat = tuple(float(v) for v in np.concatenate(coef).ravel())
    return dataclasses.replace(cfg, ar_lags=lags, ar_coef=flat)


@pytest.fixture(scope="module", params=list(HIGHWAYS))
def hw_model(request, tmp_path_factory, model_factory, require_tools) -> IntModel:
    from lstm_edge.toolchain.export import build_onnx

    require_tools("cc")
    tiny_model, _ = model_factory
    base = _configs()["forecast"]
    train = base.spec.synthetic_inputs(base, CALIBRATION_STEPS, seed=0)
    config = highway_config(base, *HIGHWAYS[request.param], train)
    folder = tmp_path_factory.mktemp(request.param)
    float_path = folder / "hw.onnx"
    float_path.write_bytes(build_onnx(tiny_model(config, seed=3)).SerializeToString())
    ranges = measure(float_path, chunks(train, CALIBRATION_STEPS), {"data": "seeded stream 0"})
    path = folder / "hw.int8full.onnx"
    quantize_file(float_path, path, "int8-full", ranges=ranges)
    stream = config.spec.synthetic_inputs(config, HIGHWAY_STEPS, seed=1)
    return IntModel(request.param, config, float_path, path, stream)


def test_highway_footprints_match_the_generated_arrays(hw_model):
    """scheme_footprints counts the highway (its arrays and its float32 history) in every
    scheme as the generators emit them."""
    table = _footprint_table_matches_the_arrays(hw_model)
    cfg = hw_model.config
    history = 4 * (1 + cfg.ar_lags * cfg.output_size)
    assert table["int8-full"].state_bytes == 3 * cfg.num_layers * cfg.hidden_size + history


def test_highway_c_is_bit_identical_to_numpy(hw_model):
    """Outputs, h, c and the history after the stream, as bits; the history holds the
    last ar_lags normalized target values, exactly the input stage's float32 values."""
    ref, ref_state = _run(hw_model.path, "numpy", hw_model.stream)
    got, state = _run(hw_model.path, "c", hw_model.stream)
    _assert_bits(got, ref, f"{hw_model.task} outputs")
    for name in ("h", "c", "history"):
        _assert_bits(getattr(state, name), getattr(ref_state, name), f"{hw_model.task} {name}")
    cfg = hw_model.config
    model = rt.load(hw_model.path, backend="numpy")
    z = cfg.spec.apply_input_stage(model.artifact.weights, hw_model.stream[None])[0]
    index = [cfg.features.index(t) for t in cfg.targets] * (cfg.output_size // len(cfg.targets))
    want = np.concatenate([[1.0], z[-cfg.ar_lags :, index].ravel()]).astype(np.float32)
    _assert_bits(state.history[0], want, "history rows")
    assert np.isfinite(got).all() and got.std(axis=0).min() > 0


def test_highway_single_steps_batches_and_an_outputless_prefill(hw_model):
    """Step by step and as one call, the same bits (history included); a batch of a
    fresh stream and one carried from an earlier state; and the C library's prefill
    without outputs (out NULL) still advances the history."""
    model = rt.load(hw_model.path, backend="c")
    stream, other = hw_model.stream[:200], hw_model.stream[200:400]
    whole, whole_state = model.step(stream[None], model.initial_state(1))
    state, outs = model.initial_state(1), []
    for t in range(len(stream)):
        y, state = model.step(stream[None, t : t + 1], state)
        outs.append(y[0, 0])
    _assert_bits(np.stack(outs), whole[0], "single steps")
    _assert_bits(state.history, whole_state.history, "single steps history")
    both, after = model.step(
        np.stack([other, other]), rt.State.stack([model.initial_state(1), state])
    )
    ref = rt.load(hw_model.path, backend="numpy")
    want0, _ = ref.step(other[None], ref.initial_state(1))
    want1, want_state = ref.step(other[None], state)
    _assert_bits(both[0], want0[0], "batch stream 0 (reset)")
    _assert_bits(both[1], want1[0], "batch stream 1 (carried)")
    _assert_bits(after.history[1:], want_state.history, "batch history")
    # out NULL: the recurrence and the history advance, nothing else is written
    runner = model.runner
    n = runner.layers * runner.hidden
    h, c = np.zeros(n, np.int8), np.zeros(n, np.int16)
    history = np.full(hw_model.config.spec.history_size(hw_model.config), 7.0, np.float32)
    history[0] = 0.0  # reset: the rows are not read
    struct = (ctypes.c_void_p * 3)(h.ctypes.data, c.ctypes.data, history.ctypes.data)
    x = np.ascontiguousarray(stream, np.float32)
    scratch = np.empty(runner.scratch_size, np.int16)
    status = runner.raw_call(ctypes.addressof(struct), 1, x.ctypes.data, len(x), None,
                             scratch.ctypes.data, scratch.size)  # fmt: skip
    assert status == 0
    _assert_bits(history, whole_state.history[0], "prefill history")
    _assert_bits(c.astype(np.float32), whole_state.c[:, 0].ravel(), "prefill c")


def test_highway_history_checked_by_the_library(hw_model):
    """A NULL history is refused (LSTM_EDGE_ERR_NULL, 1), a non-finite one too
    (LSTM_EDGE_ERR_NONFINITE_STATE, 5), the state untouched; reset zeroes it."""
    runner = rt.load(hw_model.path, backend="c").runner
    lib = runner._lib
    n = runner.layers * runner.hidden
    h, c = np.ones(n, np.int8), np.ones(n, np.int16)
    size = hw_model.config.spec.history_size(hw_model.config)
    x = np.ascontiguousarray(hw_model.stream[:3], np.float32)
    out = np.empty((3, hw_model.config.output_size), np.float32)
    scratch = np.empty(runner.scratch_size, np.int16)

    def call(history_ptr) -> int:
        struct = (ctypes.c_void_p * 3)(h.ctypes.data, c.ctypes.data, history_ptr)
        return runner.raw_call(ctypes.addressof(struct), 1, x.ctypes.data, 3, out.ctypes.data,
                               scratch.ctypes.data, scratch.size)  # fmt: skip

    assert call(None) == 1
    history = np.ones(size, np.float32)
    history[-1] = np.inf
    assert call(history.ctypes.data) == 5
    assert (h == 1).all() and (c == 1).all() and history[0] == 1.0
    lib.lstm_edge_int_reset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    struct = (ctypes.c_void_p * 3)(h.ctypes.data, c.ctypes.data, history.ctypes.data)
    assert lib.lstm_edge_int_reset(runner._model, ctypes.addressof(struct)) == 0
    assert not history.any() and not h.any() and not c.any()
    no_history = (ctypes.c_void_p * 3)(h.ctypes.data, c.ctypes.data, None)
    assert lib.lstm_edge_int_reset(runner._model, ctypes.addressof(no_history)) == 1


@pytest.mark.parametrize("target", ["host", "cortex-m3", "cortex-m4"])
def test_highway_bundle_prints_numpys_bits(hw_model, tmp_path, require_tools, target):
    """The codegen bundle's example (history in its state) on the host and under QEMU on
    the boards (the M3 without FPU: the highway in soft-float): every output of every
    step, bit for bit."""
    steps = HIGHWAY_STEPS
    out = tmp_path / "b"
    report = cg.codegen(
        hw_model.path, out, cg.CodegenOptions(name="m", target=target, steps=steps),
        lambda c: cg.ExampleStream(hw_model.stream, "held-out stream"),
    )  # fmt: skip
    assert report.scheme == "int8-full"
    flags = ("-DPRINT_EVERY=1",)
    if target == "host":
        cmd = [str(cg.build_host(out, "m", tmp_path / "m", flags, "int8-full"))]
    else:
        require_tools(cg.ARM_CC, cg.QEMU_CMD[0])
        elf = cg.build_cortex_m(out, "m", target, "int8-full", flags, "all.elf")
        cmd = [cg.QEMU_CMD[0], *cg.BOARDS[target].qemu[1:], "-kernel", str(elf)]
    run = cg.run_example(cmd, hw_model.config.output_size, cg.QEMU_TIMEOUT_S)
    assert sorted(run.outputs) == list(range(steps))
    got = np.stack([run.outputs[t] for t in range(steps)])
    ref, _ = _run(hw_model.path, "numpy", hw_model.stream)
    _assert_bits(got, ref, f"{hw_model.task} {target}")
