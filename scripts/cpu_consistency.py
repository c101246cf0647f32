"""Does an artifact compute the same on a CPU without AVX-512? Runs it in onnxruntime here
and under QEMU user mode emulating an AVX2-only CPU (Haswell), over the same seeded
stream, and prints the largest difference between the two CPUs' outputs.

    python3 scripts/cpu_consistency.py runs/default/model.int8-dynamic.onnx [--steps 500]

Needs `qemu-x86_64` (Debian: qemu-user). onnxruntime picks its integer kernels by CPU
features (AVX-512 VNNI vs AVX2), so an int8-dynamic file whose weights use all 8 bits
computes differently on the two; the 7-bit weights `lstm-edge quantize` writes do not.
Only onnxruntime runs under emulation (torch is not involved).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CPU = "Haswell"  # AVX2 and FMA, no AVX-512

# Runs in each interpreter (here and emulated): the artifact's outputs over the stream.
CHILD = """
import sys, numpy as np
import lstm_edge.runtime as rt
model = rt.load(sys.argv[1], "ort")
x = np.load(sys.argv[2])
y, _ = model.step(x[None], model.initial_state(1))
np.save(sys.argv[3], y[0])
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        print("qemu-x86_64 is not installed (apt-get install qemu-user)", file=sys.stderr)
        return 2
    import lstm_edge.runtime as rt

    config = rt.load(args.model, "ort").config
    inputs = config.spec.synthetic_inputs(config, args.steps, 0)
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "x.npy"
        np.save(stream, inputs)
        outputs = {}
        for name, prefix in (("this CPU", []), (f"emulated {CPU}", [qemu, "-cpu", CPU])):
            out = Path(tmp) / f"{len(outputs)}.npy"
            cmd = [*prefix, sys.executable, "-c", CHILD, str(args.model), str(stream), str(out)]
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
            outputs[name] = np.load(out)
    (a, ya), (b, yb) = outputs.items()
    scale = config.spec.error_scale(config)
    diff = np.abs(ya.astype(np.float64) - yb.astype(np.float64)) / scale
    top1 = float((ya.argmax(-1) == yb.argmax(-1)).mean())
    print(f"{args.model}: {args.steps} steps, {a} vs {b}")
    print(f"  max |difference| {diff.max():.4g} ({config.spec.error_unit})")
    print(f"  top-1 agreement {top1:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
