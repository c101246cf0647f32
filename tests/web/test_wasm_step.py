"""Both WebAssembly modules (SIMD128, relaxed SIMD) step like the numpy reference: logits
over a few hundred steps of several streams, batched (as the engine's beam search calls
it), one stream at a time, and as one prefill run, float and int8, within the C-vs-numpy
bound, and bit-identical across those three ways of stepping."""

from __future__ import annotations

import numpy as np
import pytest
from node_engine import node_flags, run_node
from web_support import MODULES, require_module, require_node

from lstm_edge.exporters.compare import C_VS_NUMPY_TOLERANCE
from lstm_edge.runtime import load

STEPS = 300


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("scheme", ["float", "int8"])
def test_wasm_logits_equal_numpy(sites, scheme, module):
    node = require_node()
    require_module(sites, module)
    path = sites.float_path if scheme == "float" else sites.int8_path
    site = sites.float_site if scheme == "float" else sites.int8_site
    model = load(path, backend="numpy")
    rng = np.random.default_rng(0)
    streams = rng.integers(0, model.config.vocab_size, size=(3, STEPS))
    ref, _ = model.step(streams, model.initial_state(batch=3))  # [3, STEPS, V]

    batched, single, prefill = (
        np.array(run_node(node, site, {"mode": mode, "streams": streams.tolist()}, module))
        for mode in ("batched", "single", "prefill")
    )
    assert batched.shape == ref.shape
    for got in (batched, single, prefill):
        err = np.abs(got - ref).max()
        assert err <= C_VS_NUMPY_TOLERANCE, err
    # One summation order for batches, runs and single steps (see lstm_edge_web.c).
    np.testing.assert_array_equal(batched, single)
    np.testing.assert_array_equal(prefill, single)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("scheme", ["float", "int8"])
def test_beam_steps_equal_selected_states_stepped(sites, scheme, module):
    """The search's step (beams kept in the module, layer 0's recurrent product computed
    once per parent) gives the logits of selecting the parents' states and stepping them,
    bit for bit: one parent for many beams, then parents shared, repeated and skipped."""
    node = require_node()
    require_module(sites, module)
    site = sites.float_site if scheme == "float" else sites.int8_site
    request = {
        "mode": "beams",
        "prefix": [1, 2, 3, 4, 5],
        "tokens": [[3, 1, 4, 1, 5, 2], [2, 6, 5, 3, 5, 1, 2]],
        "parents": [[0] * 6, [5, 0, 0, 3, 5, 5, 1]],
    }
    got = run_node(node, site, request, module)
    for fused, stepped in zip(got["fused"], got["stepped"], strict=True):
        assert len(fused) == len(stepped) > 0
        np.testing.assert_array_equal(np.array(fused), np.array(stepped))


@pytest.mark.parametrize("module", MODULES)
def test_the_module_imports_nothing(sites, module):
    """The step needs no WASI (or any) import, so the page instantiates it with {}."""
    node = require_node()
    require_module(sites, module)
    import subprocess

    code = (
        "const m = new WebAssembly.Module(require('fs').readFileSync(process.argv[1]));"
        "console.log(JSON.stringify([WebAssembly.Module.imports(m),"
        " WebAssembly.Module.exports(m).map(e => e.name)]))"
    )
    out = subprocess.run(
        [node, *node_flags(node), "-e", code, str(sites.float_site / module)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    import json

    imports, exports = json.loads(out)
    assert imports == []
    assert {"memory", "web_step", "web_alloc", "web_init_state"} <= set(exports)
