"""runtime/ builds as its own slim distribution: numpy (+ onnxruntime as an extra) only,
and nothing of the toolchain or exporters inside."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"


def test_runtime_wheel_depends_on_numpy_and_optionally_onnxruntime(tmp_path):
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    src = tmp_path / "src"
    shutil.copytree(RUNTIME, src, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    out = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(out), str(src)], check=True, capture_output=True)
    (wheel,) = out.glob("lstm_edge_runtime-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = sorted(
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    )
    assert requires == ["numpy>=1.24", 'onnxruntime>=1.18; extra == "ort"']
    code = [n for n in names if not n.startswith("lstm_edge_runtime-")]
    assert all(n.startswith("lstm_edge/runtime/") for n in code), code
    # Every module of the runtime ships (a subpackage missing from `packages` would not).
    sources = {p.relative_to(RUNTIME).as_posix() for p in RUNTIME.rglob("*.py")}
    missing = sorted(s for s in sources if f"lstm_edge/runtime/{s}" not in code)
    assert not missing, missing
    assert not any("toolchain" in n or "exporters" in n or "tests" in n for n in code)
