"""Instructions per step of the C library on the emulated Cortex-M boards, per scheme.

    python3 scripts/count_instructions.py [--hidden 256] [--layers 2] [--embed 64]
                                          [--vocab 96] [--steps 16] [--seed 0]
    python3 scripts/count_instructions.py --artifacts FLOAT.onnx INT8.onnx INT8FULL.onnx

The second form counts a trained model's three artifacts instead (a trained int8-full
layer may take a slower rescale path than an untrained one: the multipliers differ).

Builds one char-lm model of the given shape (default: the default model's 2x256, embed 64,
a 96-token vocabulary) with torch's initial weights (seeded, untrained: the work per
step does not depend on the values, the branches of either library are few and
value-independent in count), as float32, int8 (weight-only) and int8-full (calibrated on a
seeded token stream), cross-compiles codegen's example for the Cortex-M4 board (mps2-an386)
and, for int8-full, the Cortex-M3 board (mps2-an385, no FPU), and runs each under
qemu-system-arm with `-icount shift=0,sleep=off`.

How the count is honest: with -icount, QEMU's virtual clock is driven by the count of
executed guest instructions alone (shift=0: exactly 1 ns each; sleep=off: no real time
ever added), and the board's CMSDK timer runs on that clock at 25 MHz. The example reads
the timer just before and after every step call (COUNT_TICKS in main.c), so printing
and start-up are not counted, and it first times a loop of exactly 3,000,001
instructions the same way; instructions = ticks x (3,000,001 / the loop's ticks) (40 per
tick: the loop measures it rather than assuming it). The resolution is one tick (40
instructions) per step call, under 0.01% of a 2x256 step. QEMU 7.2's TCG plugins (the
`insn` counter) are not available in Debian's build, so this is the counter used.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from lstm_edge.exporters import c_codegen as cg
from lstm_edge.exporters.quantize import quantize_file, quantize_proto
from lstm_edge.runtime.config import UNK_CHAR, ModelConfig
from lstm_edge.toolchain.calibrate import chunks, measure
from lstm_edge.toolchain.export import build_onnx
from lstm_edge.toolchain.model import EdgeLSTM

ICOUNT = ("-icount", "shift=0,sleep=off")
RUNS = (("none", "cortex-m4"), ("int8", "cortex-m4"), ("int8-full", "cortex-m4"),
        ("int8-full", "cortex-m3"))  # fmt: skip


def models(folder: Path, config: ModelConfig, seed: int) -> dict[str, Path]:
    """The float, int8 and int8-full artifacts of one seeded untrained model."""
    torch.manual_seed(seed)
    proto = build_onnx(EdgeLSTM(config).eval())
    paths = {s: folder / f"m.{s}.onnx" for s in ("none", "int8", "int8-full")}
    paths["none"].write_bytes(proto.SerializeToString())
    paths["int8"].write_bytes(quantize_proto(proto, "int8").SerializeToString())
    stream = config.spec.synthetic_inputs(config, 4096, seed=1)
    ranges = measure(paths["none"], chunks(stream, 4096), {"data": "seeded token stream"})
    quantize_file(paths["none"], paths["int8-full"], "int8-full", ranges=ranges)
    return paths


def count(path: Path, scheme: str, target: str, folder: Path, steps: int) -> dict[str, float]:
    """Build the example with COUNT_TICKS for `target`, run it under QEMU with -icount,
    and return instructions per step and the calibration's instructions per tick."""
    out = folder / f"{scheme}-{target}"
    cg.codegen(path, out, cg.CodegenOptions(name="m", target=target, steps=steps))
    elf = cg.build_cortex_m(out, "m", target, scheme, ("-DCOUNT_TICKS", "-DPRINT_EVERY=100000"),
                            "count.elf")  # fmt: skip
    run = cg.run_qemu(elf, _width(path), target, ICOUNT)
    ticks = re.search(r"^ticks (\d+) (\d+)$", run.output, re.M)
    cal = re.search(r"^calibration (\d+) (\d+)$", run.output, re.M)
    if ticks is None or cal is None:
        sys.exit(f"{elf}: no tick counts in its output:\n{run.output[-2000:]}")
    per_tick = int(cal.group(2)) / int(cal.group(1))
    return {
        "per_step": int(ticks.group(1)) * per_tick / int(ticks.group(2)),
        "per_tick": per_tick,
        "flash": cg.section_sizes(elf).get(".text", 0),
    }


def read_config(path: Path) -> ModelConfig:
    from lstm_edge.runtime.artifact import read_artifact

    return read_artifact(path).config


def _width(path: Path) -> int:
    return read_config(path).output_size


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--vocab", type=int, default=96)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--artifacts", type=Path, nargs=3, metavar=("FLOAT", "INT8", "INT8_FULL"),
                   help="count these artifacts instead of an untrained model")  # fmt: skip
    args = p.parse_args(argv)
    chars = [chr(c) for c in range(32, 127)][: args.vocab - 1]
    config = ModelConfig(vocab=(UNK_CHAR, *chars), embed_size=args.embed,
                         hidden_size=args.hidden, num_layers=args.layers)  # fmt: skip
    console = Console()
    results = {}
    with tempfile.TemporaryDirectory(prefix="lstm-edge-icount-") as tmp:
        if args.artifacts:
            paths = dict(zip(("none", "int8", "int8-full"), args.artifacts, strict=True))
            config = read_config(paths["none"])
            args.layers, args.hidden = config.num_layers, config.hidden_size
            args.embed, args.vocab = config.input_size, config.vocab_size
        else:
            paths = models(Path(tmp), config, args.seed)
        for scheme, target in RUNS:
            with console.status(f"{scheme} on {target} under qemu -icount"):
                results[scheme, target] = count(paths[scheme], scheme, target, Path(tmp),
                                                args.steps)  # fmt: skip
    base = results["none", "cortex-m4"]["per_step"]
    table = Table(title=f"instructions per step, char-lm {args.layers}x{args.hidden} (embed "
                  f"{args.embed}, vocab {args.vocab}; qemu-system-arm -icount shift=0, "
                  f"{args.steps} steps, "
                  f"{'trained' if args.artifacts else 'untrained seeded'} weights)")  # fmt: skip
    for col in ("scheme", "board", "instructions / step", "vs float on M4", ".text bytes"):
        table.add_column(col, justify="left" if col in ("scheme", "board") else "right")
    for (scheme, target), r in results.items():
        board = f"{target} ({cg.BOARDS[target].machine})"
        table.add_row(scheme, board, f"{r['per_step']:,.0f}", f"{r['per_step'] / base:.3f}x",
                      f"{r['flash']:,}")  # fmt: skip
    console.print(table)
    ticks = {round(r["per_tick"], 3) for r in results.values()}
    console.print(f"instructions per timer tick (calibration loop): {sorted(ticks)}")
    console.print(f"int8-full on M4 / float on M4: "
                  f"{results['int8-full', 'cortex-m4']['per_step'] / base:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
