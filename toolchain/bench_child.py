"""The programs `bench` runs in fresh interpreters to measure import + load + one step.

    python -m lstm_edge.toolchain.bench_child runtime ARTIFACT BACKEND
    python -m lstm_edge.toolchain.bench_child torch ckpt CHECKPOINT_DIR
    python -m lstm_edge.toolchain.bench_child torch config CONFIG_JSON

Each prints one JSON line: `import_s` (the measured imports, timed inside the child) and
`maxrss_kb` (the child's own peak RSS). This module imports only the standard library at
its top, so what a program measures is its own imports; the one step's input is the
task's synthetic input (its values do not change the work).
"""

from __future__ import annotations

import json
import sys
import time


def peak_rss_kb() -> int:
    """Peak RSS of this process's own image.

    ru_maxrss is wrong for this on Linux: a child spawned by a big parent (vfork/fork,
    then exec) inherits the parent's high-water mark (measured: 428 MB for a numpy-only
    child of a 430 MB bench process). /proc/self/status VmHWM belongs to the address space
    exec created, so it is the child's alone; ru_maxrss is the fallback where /proc is
    missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def runtime_program(path: str, backend: str) -> dict[str, float]:
    """The runtime: import it, load the artifact, one step of batch 1."""
    t0 = time.perf_counter()
    import lstm_edge.runtime as rt

    t1 = time.perf_counter()
    m = rt.load(path, backend=backend)
    cfg = m.config
    m.step(cfg.spec.synthetic_inputs(cfg, 1), m.initial_state(1))
    return {"import_s": t1 - t0, "maxrss_kb": peak_rss_kb()}


def torch_program(kind: str, arg: str) -> dict[str, float]:
    """torch: import it and the model code, load (a checkpoint, or a config's shapes with
    initial weights: memory and time do not depend on the values), one forward step."""
    t0 = time.perf_counter()
    import torch

    from lstm_edge.runtime.config import ModelConfig
    from lstm_edge.toolchain.checkpoint import load_checkpoint
    from lstm_edge.toolchain.model import build_model

    t1 = time.perf_counter()
    if kind == "ckpt":
        model = load_checkpoint(arg).model
    else:
        model = build_model(ModelConfig.from_json(arg)).eval()
    cfg = model.config
    x = torch.from_numpy(cfg.spec.synthetic_inputs(cfg, 1))[None]  # [1, 1(, features)]
    with torch.no_grad():
        model(x)
    return {"import_s": t1 - t0, "maxrss_kb": peak_rss_kb()}


PROGRAMS = {"runtime": runtime_program, "torch": torch_program}


def main(argv: list[str]) -> None:
    program, *args = argv
    print(json.dumps(PROGRAMS[program](*args)))


if __name__ == "__main__":
    main(sys.argv[1:])
