"""Word completions for each line read from stdin: the predictive-typing engine in an app.

Uses only `lstm_edge.runtime` (numpy, plus onnxruntime for the ort backend): no torch.

    python examples/predictive_typing/complete.py runs/default/model.int8.onnx -k 3
    > The quick br
    The quick br|own 41.2%  |ight 12.0%  |oad 3.1%

Each line is the text typed so far; the engine is reused across lines (`sync` keeps the
longest common prefix, so a line that extends the previous one costs one prefill of the
new characters only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from lstm_edge.runtime import LstmEdgeError, Suggester, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="runs/default/model.int8.onnx")
    parser.add_argument("-k", type=int, default=3, help="how many completions to show (>= 1)")
    parser.add_argument("--backend", default="ort", choices=("numpy", "ort", "c"))
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error(f"-k is {args.k} (expected >= 1)")  # exit status 2, like bad input
    try:
        suggester = Suggester(load(args.model, backend=args.backend))
    except (LstmEdgeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        complete_lines(suggester, args.k, args.json)
    except KeyboardInterrupt:
        return 130  # Ctrl-C ends the session: the conventional status, no traceback
    return 0


def complete_lines(suggester: Suggester, k: int, as_json: bool) -> None:
    """Print the k best completions of each stdin line (the text typed so far)."""
    for line in sys.stdin:
        typed = line.rstrip("\n")
        t0 = time.perf_counter()
        suggester.sync(typed)
        suggestions = suggester.suggestions(k)
        ms = (time.perf_counter() - t0) * 1e3
        if as_json:
            out = {"text": typed, "suggestions": [s.to_dict() for s in suggestions], "ms": ms}
            print(json.dumps(out, ensure_ascii=False))
        else:
            shown = "  ".join(f"|{s.completion} {s.probability:.1%}" for s in suggestions)
            print(f"{typed}{shown}   ({ms:.1f} ms)")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
