"""How much does one competing process slow `lstm-edge train`? Runs short default trainings
with each torch thread setting, alone and beside one busy process, and prints the time per
step and the ratio loaded / alone for each setting.

    python3 scripts/training_under_load.py [--steps 60] [--threads ,1] [--policies passive,active]

Each row is a --threads setting ("" = the default) under an OpenMP wait policy: `passive`
is what `lstm-edge` sets when OMP_WAIT_POLICY is not given, `active` (spinning) is
libgomp's behaviour without it. The competing process is a pure-Python busy loop: it
keeps one core busy the way another job on a shared machine does. Times come from the
run's own metrics (train records after the first logging window, so start-up is not
counted). Run it on an otherwise idle machine: the "alone" rows are the baseline of the
ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

BUSY = "while True: pass"
LOG_EVERY = 10


def seconds_per_step(task: str, steps: int, threads: str, policy: str, folder: Path) -> float:
    """Median seconds per training step of one short run (threads "" = the default)."""
    out = folder / f"run-{len(list(folder.iterdir()))}"
    cmd = [sys.executable, "-m", "lstm_edge.toolchain", "train", "-o", str(out)]
    cmd += ["--task", task, "--steps", str(steps), "--log-every", str(LOG_EVERY)]
    cmd += ["--eval-every", str(steps * 10), "--no-progress"]
    if threads:
        cmd += ["--threads", threads]
    env = {**os.environ, "OMP_WAIT_POLICY": policy.upper()}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"][1:]  # the first window has start-up
    if not train:
        raise SystemExit(f"--steps {steps} is too few: need more than {2 * LOG_EVERY}")
    rate_key = next(k for k in train[0] if k.endswith("_per_s"))
    run = json.loads((out / "train.json").read_text())["run"]
    items = run["batch_size"] * run["seq_len"]  # characters or samples per step
    return statistics.median(items / r[rate_key] for r in train)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", default=",1", help='comma-separated; "" = the default')
    parser.add_argument("--policies", default="passive,active", help="OpenMP wait policies")
    parser.add_argument("--task", default="char-lm")
    args = parser.parse_args()
    table = Table(title=f"{args.task}: seconds per training step ({os.cpu_count()} cores)")
    for col in ("--threads", "wait policy", "alone", "beside 1 busy process", "ratio"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads.split(","):
            for policy in args.policies.split(","):
                row = (args.task, args.steps, threads, policy, Path(tmp))
                alone = seconds_per_step(*row)
                busy = subprocess.Popen([sys.executable, "-c", BUSY])
                try:
                    loaded = seconds_per_step(*row)
                finally:
                    busy.kill()
                    busy.wait()
                cells = (f"{alone:.3f}", f"{loaded:.3f}", f"{loaded / alone:.2f}x")
                table.add_row(threads or "default", policy, *cells)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
