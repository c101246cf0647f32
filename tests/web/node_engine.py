"""Run a site's engine.js and model.wasm in Node (tests/web/node_runner.mjs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

RUNNER = Path(__file__).resolve().parent / "node_runner.mjs"


def run_node(node: str, site: Path, request: dict) -> object:
    result = subprocess.run(
        [node, str(RUNNER), str(site)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)
