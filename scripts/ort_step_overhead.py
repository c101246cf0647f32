"""The ort backend's Model.step against a plain session.run loop, in thread CPU time.

The same two loops as `lstm-edge bench`'s "vs session.run same thr" column (the backend's
step loop and the plain loop on the backend's own session, 1 thread, interleaved rounds),
timed with `time.thread_time` instead of the wall clock, so that time the process spends
waiting for a core on a shared machine does not count. Prints three ratios.

    python3 scripts/ort_step_overhead.py MODEL.onnx [--repeats 21]
"""

from __future__ import annotations

import argparse
import time
import types
from pathlib import Path

from lstm_edge.runtime.model import load
from lstm_edge.toolchain import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    bench.time = types.SimpleNamespace(perf_counter=time.thread_time)  # the loops' clock
    model = load(args.model, backend="ort", intra_op_threads=1)
    bodies = [
        bench.runtime_step_loop(model, 1),
        bench.session_run_loop(args.model, model.config, 1),
    ]
    for _ in range(3):
        ours, plain = bench.time_interleaved(bodies, args.repeats)
        print(
            f"{args.model}: ort Model.step {ours.median * 1e6:.1f} us, session.run loop "
            f"{plain.median * 1e6:.1f} us (thread CPU time), ratio "
            f"{ours.median / plain.median:.3f}"
        )


if __name__ == "__main__":
    main()
