"""char-lm's evaluation half: what `validate`, `pipeline`, `bench` and `info` need of it.

validate: a stream of held-out tokens; per step the max abs logit error, top-1 agreement
and the cross-entropy of both sides; summary bits per character; tolerances `TOLERANCES`
(lstm_edge.exporters.compare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.table import Table

from lstm_edge.exporters.compare import TOLERANCES, compare_streams
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.tasks.char_lm import CHAR_LM
from lstm_edge.toolchain.tasks.eval_base import TaskEval
from lstm_edge.toolchain.validate_report import (
    md_table,
    pair_name,
    table_frame,
    verdict_cell,
    verdict_text,
)
from lstm_edge.toolchain.validate_run import (
    DRIFT_FRACTION,
    RuntimeRun,
    ValidationInputError,
    check_steps,
    error_stats,
)
from lstm_edge.toolchain.validate_tolerances import check_tolerance

# Metrics are computed in float64 over blocks of this many steps to bound memory.
METRIC_BLOCK = 8192

if TYPE_CHECKING:
    from lstm_edge.toolchain.checkpoint import Checkpoint


@dataclass(frozen=True)
class Stream:
    """char-lm: token ids; step i reads tokens[i] and predicts tokens[i + 1]."""

    tokens: np.ndarray  # int64 [steps + 1]
    source: str
    source_tokens: int  # length of the text before cycling
    cycled: bool

    unit = "characters"  # what the source is counted in

    @property
    def source_size(self) -> int:
        return self.source_tokens

    @property
    def steps(self) -> int:
        return int(self.tokens.size - 1)

    @property
    def inputs(self) -> np.ndarray:
        return self.tokens[:-1]

    def report_fields(self) -> dict[str, Any]:
        return {
            "text_source": self.source,
            "text_tokens": self.source_tokens,
            "text_cycled": self.cycled,
        }


@dataclass(frozen=True)
class StepTrace:
    """Per-step values of one char-lm artifact x backend run (not in JSON, only plotted)."""

    abs_err: np.ndarray  # float64 [steps], max over the vocabulary of |logit difference|
    agree: np.ndarray  # bool [steps], argmax equal
    ce_torch: np.ndarray  # float64 [steps], cross-entropy of the next token, nats
    ce_artifact: np.ndarray
    cell_absmax: np.ndarray  # float32 [steps], max |c| of the artifact state (NaN if unsampled)


@dataclass(frozen=True)
class PairSummary:
    artifact: str
    scheme: str
    backend: str
    steps: int
    max_abs_err: float
    argmax_step: int
    mean_abs_err: float
    err_first: float  # mean abs err over the first DRIFT_FRACTION of the steps
    err_last: float  # ... and over the last
    drift_ratio: float  # err_last / err_first
    top1_agreement: float
    bpc_torch: float
    bpc_artifact: float
    bpc_increase: float
    cell_min: float
    cell_max: float
    finite: bool
    first_nonfinite_step: int | None
    seconds: float
    steps_per_second: float


def build_stream(ckpt: Checkpoint, steps: int, text_path: Path | None) -> Stream:
    """Token ids for `steps` steps, cycled if too short: the held-out test split (the
    task's one held-out stream builder, `training(config).held_out_stream`) or --text."""
    from lstm_edge.toolchain.tasks import training

    check_steps(steps)
    if text_path is not None:
        return text_stream(ckpt.config, text_path, steps)
    source = f"held-out test split of {ckpt.path}"
    held = training(ckpt.config).held_out_stream(ckpt.data, ckpt.config, "test", steps, cycle=True)
    _check_size(held.rows, source)
    tokens = np.concatenate([held.inputs, held.targets[-1:]])
    return Stream(tokens=tokens, source=source, source_tokens=held.rows, cycled=held.cycled)


def text_stream(config: ModelConfig, text_path: Path, steps: int) -> Stream:
    """validate --text: the file's token ids for `steps` steps, cycled like the held-out
    stream. A stream longer than the text wraps around to its start; the jump at the seam
    is just another input the model has to carry on from."""
    from lstm_edge.toolchain.data import encode, load_corpus
    from lstm_edge.toolchain.tasks.training_base import take

    text = load_corpus(text_path).text  # the corpus checks: empty, binary, not UTF-8
    if config.tokens:  # a token model has no characters: the file holds its ids
        ids = token_ids(text, config.tokens, text_path)
    else:
        ids = np.asarray(encode(text, config), dtype=np.int64)
    _check_size(ids.size, str(text_path))
    index, cycled = take(ids.size, steps + 1, cycle=True)
    return Stream(tokens=ids[index], source=str(text_path), source_tokens=int(ids.size),
                  cycled=cycled)  # fmt: skip


def token_ids(text: str, tokens: int, path: Path) -> np.ndarray:
    """A token model's --text: whitespace-separated ids, each 0..tokens-1."""
    words = text.split()
    ids = np.empty(len(words), np.int64)
    for i, word in enumerate(words):
        if not (word.isascii() and word.isdigit() and len(word) <= 9 and int(word) < tokens):
            raise ValidationInputError(
                f"{path}: token {i + 1} is {word[:20]!r} (a token model's --text holds "
                f"whitespace-separated ids, each 0 to {tokens - 1})"
            )
        ids[i] = int(word)
    return ids


def _check_size(size: int, source: str) -> None:
    if size < 2:
        raise ValidationInputError(
            f"{source} has {size} tokens (expected at least 2: one input, one target)"
        )


def step_metrics(
    ref: np.ndarray, out: np.ndarray, targets: np.ndarray, config: ModelConfig
) -> StepTrace:
    """Per-step error, agreement and cross-entropy of `out` against `ref` (both [N, V]).

    The error is the one stream comparison's (`compare_streams(config, ...).step_errors`,
    the max abs logit difference per step)."""
    n = ref.shape[0]
    abs_err = np.empty(n)
    agree = np.empty(n, dtype=bool)
    ce_ref = np.empty(n)
    ce_out = np.empty(n)
    for s in range(0, n, METRIC_BLOCK):
        r = ref[s : s + METRIC_BLOCK].astype(np.float64)
        o = out[s : s + METRIC_BLOCK].astype(np.float64)
        t = targets[s : s + METRIC_BLOCK]
        abs_err[s : s + len(r)] = compare_streams(config, r, o).step_errors
        agree[s : s + len(r)] = r.argmax(axis=1) == o.argmax(axis=1)
        ce_ref[s : s + len(r)] = _cross_entropy(r, t)
        ce_out[s : s + len(r)] = _cross_entropy(o, t)
    return StepTrace(abs_err, agree, ce_ref, ce_out, np.full(n, np.nan, dtype=np.float32))


def _cross_entropy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return lse - logits[np.arange(len(targets)), targets]


def summarize(
    trace: StepTrace, run: RuntimeRun, *, artifact: str, scheme: str, backend: str
) -> PairSummary:
    bpc_t = float(np.mean(trace.ce_torch)) / math.log(2)
    bpc_a = float(np.mean(trace.ce_artifact)) / math.log(2)
    return PairSummary(
        artifact=artifact,
        scheme=scheme,
        backend=backend,
        top1_agreement=float(trace.agree.mean()),
        bpc_torch=bpc_t,
        bpc_artifact=bpc_a,
        bpc_increase=bpc_a - bpc_t,
        **error_stats(trace.abs_err, run),
    )


class CharLmEval(TaskEval):
    spec = CHAR_LM
    tolerance_option = "tolerances"
    error_label = "max |logit error|"
    table_width = 120
    data_unit = "chars"

    # ---- validate ---------------------------------------------------------------------

    def build_stream(self, ckpt: Checkpoint, options: Any) -> Stream:
        if options.csv is not None:
            raise ValidationInputError(
                f"--csv is for forecast models; {ckpt.path} is a char-lm (use --text)"
            )
        return build_stream(ckpt, options.steps, options.text)

    def evaluate(
        self, ref: np.ndarray, run: RuntimeRun, stream: Stream, config: ModelConfig, **names: str
    ) -> tuple[StepTrace, PairSummary]:
        t = step_metrics(ref, run.logits, stream.tokens[1:], config)
        trace = StepTrace(t.abs_err, t.agree, t.ce_torch, t.ce_artifact, run.cell_absmax)
        return trace, summarize(trace, run, **names)

    def check(self, summary: PairSummary, tolerance: Any) -> list[str]:
        return check_tolerance(summary, tolerance)

    def check_against_torch(
        self,
        outputs: np.ndarray,
        reference: np.ndarray,
        inputs: np.ndarray,
        steps: np.ndarray,
        scheme: str,
        config: ModelConfig,
    ) -> tuple[float, float | None, list[str]]:
        """Max abs logit error, top-1 agreement and BPC increase against torch at `steps`
        (step s predicts inputs[s + 1]; the last step scores against the last input),
        held to `TOLERANCES[scheme]`."""
        targets = inputs[np.minimum(steps + 1, inputs.size - 1)]
        trace = step_metrics(reference, outputs, targets, config)
        max_err = float(trace.abs_err.max())
        top1 = float(trace.agree.mean())
        tol = TOLERANCES[scheme]
        failures: list[str] = []
        if tol.max_abs_err is not None and not max_err <= tol.max_abs_err:
            failures.append(f"max abs logit error {max_err:.3g} > {tol.max_abs_err:g}")
        if tol.min_top1 is not None and not top1 >= tol.min_top1:
            failures.append(f"top-1 agreement {top1:.4f} < {tol.min_top1}")
        if tol.max_bpc_increase is not None:
            bpc_up = float(np.mean(trace.ce_artifact - trace.ce_torch)) / np.log(2)
            if not bpc_up <= tol.max_bpc_increase:
                failures.append(f"BPC increase {bpc_up:+.4f} > {tol.max_bpc_increase}")
        return max_err, top1, failures

    def render_table(self, report: Any) -> Table:
        cols = ("artifact (backend)", "scheme", "max err", "mean err", "drift", "top-1",
                "BPC torch->art", "cell range", "steps/s", "")  # fmt: skip
        table = table_frame(report, cols)
        for r in report.results:
            s = r.summary
            table.add_row(
                pair_name(r),
                s.scheme,
                f"{s.max_abs_err:.1e}",
                f"{s.mean_abs_err:.1e}",
                f"{s.drift_ratio:.2f}x",
                f"{s.top1_agreement:.2%}",
                f"{s.bpc_torch:.3f}->{s.bpc_artifact:.3f}",
                f"{s.cell_min:.3g}..{s.cell_max:.3g}",
                f"{s.steps_per_second:,.0f}",
                verdict_cell(r),
            )
        table.caption = (
            f"drift: mean error over the last {DRIFT_FRACTION:.0%} of the steps / over the "
            f"first {DRIFT_FRACTION:.0%}; "
            "cell range: min..max of the artifact's cell state"
        )
        return table

    # ---- pipeline's SUMMARY.md -----------------------------------------------------------

    def model_shape(self, config: ModelConfig) -> str:
        return f"embed {config.embed_size}, vocabulary {config.vocab_size} characters"

    def summary_table(self, report: Any) -> str:
        header = ["artifact", "backend", "max abs err", "top-1 agree", "BPC torch -> artifact",
                  "cell range", "verdict"]  # fmt: skip
        rows = [
            [
                f"`{Path(r.summary.artifact).name}`",
                r.summary.backend,
                f"{r.summary.max_abs_err:.2e}",
                f"{r.summary.top1_agreement:.2%}",
                f"{r.summary.bpc_torch:.3f} -> {r.summary.bpc_artifact:.3f}",
                f"{r.summary.cell_min:.1f} .. {r.summary.cell_max:.1f}",
                verdict_text(r),
            ]
            for r in report.results
        ]
        return md_table(header, rows)

    def snippet(self, config: ModelConfig) -> list[str]:
        return [
            "ids = {ch: i for i, ch in enumerate(model.config.vocab)}  # unknown -> id 0",
            "state = model.initial_state(batch=1)  # caller-owned h and c",
            'for ch in "The quick brown ":',
            "    logits, state = model.step(np.array([ids.get(ch, 0)]), state)",
            "print(model.config.vocab[int(logits[0].argmax())])  # most likely next character",
        ]

    # ---- info and bench ---------------------------------------------------------------

    def info_config(self, config: ModelConfig) -> dict[str, Any]:
        """Without its vocabulary list (its size stands in for it)."""
        summary = {k: v for k, v in config.to_dict().items() if k != "vocab"}
        return {"vocab_size": config.vocab_size, **summary}


EVAL = CharLmEval()
