"""Run a site's engine.js and one of its modules in Node (tests/web/node_runner.mjs)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

RUNNER = Path(__file__).resolve().parent / "node_runner.mjs"
# Node 20 (Debian 12) runs relaxed SIMD behind this flag; a Node that has it on by default
# may no longer accept the flag.
RELAXED_FLAG = "--experimental-wasm-relaxed-simd"


@functools.cache
def node_flags(node: str) -> tuple[str, ...]:
    """The flags that let `node` run model-relaxed.wasm."""
    probe = subprocess.run([node, RELAXED_FLAG, "-e", "0"], capture_output=True, timeout=60)
    return (RELAXED_FLAG,) if probe.returncode == 0 else ()


def run_node(node: str, site: Path, request: dict, module: str = "model.wasm") -> object:
    result = subprocess.run(
        [node, *node_flags(node), str(RUNNER), str(site)],
        input=json.dumps(request | {"module": module}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)
