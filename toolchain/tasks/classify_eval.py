"""classify's evaluation half: what `validate`, `pipeline`, `codegen --check` and `info` need.

validate reads every held-out test sequence (or those of --csv), each from a zero state, torch
and each artifact one row per step; per step the max abs logit error and whether the running
predictions agree; per artifact the metrics of its final predictions (accuracy, balanced
accuracy, macro-F1, per-class precision/recall, ROC-AUC and PR-AUC when binary) and its
early-decision curve, beside torch's and beside two baselines fit on the training split: the
majority class and a logistic regression on summary features (lstm_edge.toolchain.
classify_metrics). Tolerances: `CLASSIFY_TOLERANCES` (lstm_edge.exporters.compare).
`--steps` does not cut the test split: the metrics need every sequence.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.table import Table

from lstm_edge.exporters.compare import CLASSIFY_TOLERANCES, compare_streams
from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.files import atomic_write
from lstm_edge.runtime.tasks.classify import CLASSIFY
from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain import classify_metrics as cm
from lstm_edge.toolchain.tasks.eval_base import TaskEval
from lstm_edge.toolchain.validate_report import md_table, pair_name, table_frame, verdict_cell
from lstm_edge.toolchain.validate_run import (
    RuntimeRun,
    ValidationInputError,
    error_stats,
    runtime_outputs,
)
from lstm_edge.toolchain.validate_tolerances import common_failures

if TYPE_CHECKING:
    from lstm_edge.toolchain.checkpoint import Checkpoint

CONFUSION_FILE = "confusion.png"
EARLY_FILE = "early_decision.png"


@dataclass(frozen=True)
class SequenceStream:
    """classify: labelled sequences, each stepped from a zero state; `inputs` holds them
    back to back (sequence i is rows starts[i]:starts[i + 1])."""

    inputs: np.ndarray  # float32 [steps, F]
    starts: np.ndarray  # int64 [n + 1]
    labels: np.ndarray  # int64 [n]
    classes: tuple[str, ...]
    source: str
    baselines: dict[str, Any] = field(default_factory=dict)  # name -> asdict(Scores)

    unit = "sequences"
    cycled = False

    @property
    def steps(self) -> int:
        return int(self.starts[-1])

    @property
    def source_size(self) -> int:
        return len(self.labels)

    def sequences(self) -> list[np.ndarray]:
        return [self.inputs[a:b] for a, b in zip(self.starts[:-1], self.starts[1:], strict=True)]

    def report_fields(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sequences": len(self.labels),
            "classes": list(self.classes),
            "class_counts": np.bincount(self.labels, minlength=len(self.classes)).tolist(),
            "baselines": self.baselines,
        }


def build_sequence_stream(ckpt: Checkpoint, csv_path: Path | None) -> SequenceStream:
    """The checkpoint's held-out test sequences, or those of a long-format CSV whose labels
    are the model's classes; baselines fit on the checkpoint's training split."""
    config = ckpt.config
    try:
        seqs, splits = cd.sequences_from_record(ckpt.data)
    except (LstmEdgeError, OSError) as e:
        if csv_path is None:
            raise ValidationInputError(
                f"{ckpt.path}: held-out sequences unavailable: {e}"
            ) from None
        seqs, splits = None, None
    if csv_path is not None:
        text_column = ckpt.data.get("text_column") if isinstance(ckpt.data, dict) else None
        given = cd.read_for_model(
            csv_path, config, cd.CsvColumns(features=config.features or None), text_column
        )
        rows, labels = cd.select_inputs(given, config, np.arange(len(given)))
        source = str(csv_path)
    else:
        rows, labels = cd.select_inputs(seqs, config, splits["test"])
        source = f"held-out test split of {ckpt.path}"
    baselines = {}
    if seqs is not None:
        train, y_train = cd.select_inputs(seqs, config, splits["train"])
        baselines = fit_baselines(
            train, y_train, rows, labels, len(config.classes), summary_of(config)
        )
    lengths = [len(r) for r in rows]
    return SequenceStream(
        inputs=np.ascontiguousarray(np.concatenate(rows), dtype=config.spec.input_dtype),
        starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=np.asarray(labels, np.int64),
        classes=config.classes,
        source=source,
        baselines=baselines,
    )


def fit_baselines(
    train: list[np.ndarray],
    y_train: np.ndarray,
    test: list[np.ndarray],
    y_test: np.ndarray,
    classes: int,
    summary: tuple[str, Any] = ("summary features", cm.summary_features),
) -> dict[str, Any]:
    """The majority class and the logistic regression on summary features of the whole
    sequence (`summary`: its name and function), fit on the training sequences, scored on
    the test ones."""
    name, features = summary
    majority = int(np.bincount(y_train, minlength=classes).argmax())
    lr = cm.LogisticRegression.fit(features(train), y_train, classes)
    proba = lr.proba(features(test))
    binary = proba[:, 1] if classes == 2 else None
    return {
        "majority class": asdict(cm.scores(y_test, np.full_like(y_test, majority), classes)),
        f"logistic regression ({name})": asdict(
            cm.scores(y_test, proba.argmax(1), classes, binary)
        ),
    }


def summary_of(config: ModelConfig) -> tuple[str, Any]:
    """The baseline's whole-sequence features: per-feature statistics of rows, or for text
    the bag of characters (each vocabulary entry's share of the text)."""
    if not config.vocab:
        return "summary features", cm.summary_features
    size = config.vocab_size
    return "bag of characters", lambda seqs: cm.bag_of_characters(seqs, size)


# ---- one artifact x backend against torch ---------------------------------------------------


@dataclass(frozen=True)
class ClassifyTrace:
    abs_err: np.ndarray  # float64 [steps], max abs logit error per step
    outputs: np.ndarray  # float32 [steps, classes]
    cell_absmax: np.ndarray


@dataclass(frozen=True)
class ClassifySummary:
    artifact: str
    scheme: str
    backend: str
    steps: int
    max_abs_err: float
    argmax_step: int
    mean_abs_err: float
    err_first: float
    err_last: float
    drift_ratio: float
    top1_agreement: float  # running predictions == torch's, over every step
    final_agreement: float  # sequence predictions == torch's
    torch_scores: dict[str, Any]  # classify_metrics.Scores
    artifact_scores: dict[str, Any]
    torch_early: dict[str, Any]  # classify_metrics.EarlyDecision (per-sequence list dropped)
    artifact_early: dict[str, Any]
    accuracy_drop: float
    macro_f1_drop: float
    cell_min: float
    cell_max: float
    finite: bool
    first_nonfinite_step: int | None
    seconds: float
    steps_per_second: float


def _final_and_running(logits: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, list]:
    top = logits.argmax(-1)
    running = [top[a:b] for a, b in itertools.pairwise(starts)]
    return top[starts[1:] - 1], running


def _scores(logits: np.ndarray, stream: SequenceStream) -> tuple[cm.Scores, dict[str, Any]]:
    final, running = _final_and_running(logits, stream.starts)
    k = len(stream.classes)
    binary = cm.softmax(logits[stream.starts[1:] - 1])[:, 1] if k == 2 else None
    early = asdict(cm.early_decision(running, stream.labels))
    early.pop("settle")
    return cm.scores(stream.labels, final, k, binary), early


def summarize_classify(
    ref: np.ndarray, run: RuntimeRun, stream: SequenceStream, config: ModelConfig, **names: str
) -> tuple[ClassifyTrace, ClassifySummary]:
    abs_err = compare_streams(config, ref, run.logits).step_errors
    t_scores, t_early = _scores(ref, stream)
    a_scores, a_early = _scores(run.logits, stream)
    t_final = ref.argmax(-1)[stream.starts[1:] - 1]
    a_final = run.logits.argmax(-1)[stream.starts[1:] - 1]
    summary = ClassifySummary(
        **names,
        top1_agreement=float((ref.argmax(-1) == run.logits.argmax(-1)).mean()),
        final_agreement=float((t_final == a_final).mean()),
        torch_scores=asdict(t_scores),
        artifact_scores=asdict(a_scores),
        torch_early=t_early,
        artifact_early=a_early,
        accuracy_drop=t_scores.accuracy - a_scores.accuracy,
        macro_f1_drop=t_scores.macro_f1 - a_scores.macro_f1,
        **error_stats(abs_err, run),
    )
    return ClassifyTrace(abs_err, run.logits, run.cell_absmax), summary


def check_classify_tolerance(s: ClassifySummary, tol: Any) -> list[str]:
    failures = common_failures(s)
    checks = (
        (s.max_abs_err, tol.max_abs_err, "max abs logit error {v:.3g} > {b:g}", False),
        (s.top1_agreement, tol.min_top1, "top-1 agreement {v:.2%} < {b:.0%}", True),
        (s.final_agreement, tol.min_final_agreement, "final agreement {v:.2%} < {b:.0%}", True),
        (s.accuracy_drop, tol.max_accuracy_drop, "accuracy drop {v:.3f} > {b:g}", False),
        (s.macro_f1_drop, tol.max_macro_f1_drop, "macro-F1 drop {v:.3f} > {b:g}", False),
    )
    for value, bound, text, at_least in checks:
        if bound is not None and not (value >= bound if at_least else value <= bound):
            failures.append(text.format(v=value, b=bound))
    return failures


# ---- tables and plots -----------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def metric_rows(report: Any) -> list[list[str]]:
    """[name, accuracy, balanced accuracy, macro-F1, settle] for torch, each artifact and
    the baselines (percentages)."""
    rows = []
    if report.results:
        s = report.results[0].summary
        t = s.torch_scores
        rows.append(
            [
                "torch (checkpoint)",
                _pct(t["accuracy"]),
                _pct(t["balanced_accuracy"]),
                _pct(t["macro_f1"]),
                _pct(s.torch_early["median_settle"]),
            ]
        )
    for r in report.results:
        a = r.summary.artifact_scores
        rows.append(
            [
                f"{Path(r.summary.artifact).name} ({r.summary.backend})",
                _pct(a["accuracy"]),
                _pct(a["balanced_accuracy"]),
                _pct(a["macro_f1"]),
                _pct(r.summary.artifact_early["median_settle"]),
            ]
        )
    for name, b in report.stream.baselines.items():
        rows.append(
            [
                f"baseline: {name}",
                _pct(b["accuracy"]),
                _pct(b["balanced_accuracy"]),
                _pct(b["macro_f1"]),
                "-",
            ]
        )
    return rows


def render_classify_table(report: Any) -> Table:
    cols = (
        "artifact (backend)",
        "scheme",
        "max err",
        "top-1\nsteps",
        "final\nagree",
        "accuracy\ntorch->art",
        "macro-F1\ntorch->art",
        "settle\nmedian",
        "steps/s",
        "",
    )
    table = table_frame(report, cols)
    for r in report.results:
        s = r.summary
        t, a = s.torch_scores, s.artifact_scores
        table.add_row(
            pair_name(r),
            s.scheme,
            f"{s.max_abs_err:.1e}",
            f"{s.top1_agreement:.2%}",
            f"{s.final_agreement:.2%}",
            f"{_pct(t['accuracy'])}->{_pct(a['accuracy'])}",
            f"{_pct(t['macro_f1'])}->{_pct(a['macro_f1'])}",
            _pct(s.artifact_early["median_settle"]) + "%",
            f"{s.steps_per_second:,.0f}",
            verdict_cell(r),
        )
    for name, b in report.stream.baselines.items():
        table.add_row(
            f"baseline: {name}",
            "",
            "",
            "",
            "",
            f"{_pct(b['accuracy'])}",
            f"{_pct(b['macro_f1'])}",
            "",
            "",
            "",
        )
    table.caption = (
        f"{len(report.stream.labels)} sequences, each from a zero state; errors vs torch in "
        "logits; top-1 steps: running predictions equal to torch's; accuracy and macro-F1 of "
        "the final predictions in %; settle: median % of a sequence seen when the running "
        "prediction last changes to its final class; baselines fit on the training split"
    )
    return table


def summary_markdown(report: Any) -> str:
    header = ["model", "accuracy %", "balanced acc. %", "macro-F1 %", "settle median %"]
    checks = md_table(
        ["artifact", "backend", "max logit err", "top-1 agree", "final agree", "verdict"],
        [
            [
                f"`{Path(r.summary.artifact).name}`",
                r.summary.backend,
                f"{r.summary.max_abs_err:.2e}",
                f"{r.summary.top1_agreement:.2%}",
                f"{r.summary.final_agreement:.2%}",
                "pass" if r.passed else "FAIL: " + "; ".join(r.failures),
            ]
            for r in report.results
        ],
    )
    return (
        md_table(header, metric_rows(report))
        + f"\n\nFinal predictions on {len(report.stream.labels)} held-out sequences. Settle: "
        "the median fraction of a sequence seen from which the running prediction stays on "
        "its final class. Baselines are fit on the same training split; confusion matrix "
        f"and early-decision curve: `validation/{CONFUSION_FILE}`, `validation/{EARLY_FILE}`."
        "\n\n" + checks
    )


def write_plots(report: Any, folder: Path) -> list[Path]:
    """The confusion matrices (torch and each artifact's final predictions) and the
    early-decision curves (accuracy against the fraction of each sequence seen)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not report.results:
        return []
    classes = report.stream.classes
    s0 = report.results[0].summary
    panels = [("torch", s0.torch_scores)] + [
        (f"{Path(r.summary.artifact).name} ({r.summary.backend})", r.summary.artifact_scores)
        for r in report.results
    ]
    fig = Figure(figsize=(4 * len(panels), 4), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (title, sc) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels, strict=True):
        mat = np.asarray(sc["confusion"])
        ax.imshow(mat, cmap="Blues")
        for (i, j), v in np.ndenumerate(mat):
            ax.text(j, i, str(v), ha="center", va="center", fontsize="small")
        ax.set_xticks(range(len(classes)), classes, rotation=45, fontsize="small")
        ax.set_yticks(range(len(classes)), classes, fontsize="small")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize="small")
    paths = [folder / CONFUSION_FILE, folder / EARLY_FILE]
    atomic_write(paths[0], lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(s0.torch_early["fractions"], s0.torch_early["accuracy"], "k-o", label="torch")
    for r in report.results:
        e = r.summary.artifact_early
        ax.plot(
            e["fractions"],
            e["accuracy"],
            "--",
            label=f"{Path(r.summary.artifact).name} ({r.summary.backend})",
        )
    for name, b in report.stream.baselines.items():
        ax.axhline(b["accuracy"], ls=":", lw=1, color="gray")
        ax.annotate(f"{name} (whole sequence)", (0.02, b["accuracy"]), fontsize="x-small")
    ax.set_xlabel("fraction of each sequence seen")
    ax.set_ylabel("accuracy of the running prediction")
    ax.legend(fontsize="small")
    atomic_write(paths[1], lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return paths


class ClassifyEval(TaskEval):
    spec = CLASSIFY
    tolerance_option = "classify_tolerances"
    error_label = "max |logit error|"
    table_width = 150
    data_unit = "sequences"
    lock_step = "torch and each artifact in lock-step, each sequence from a zero state"

    def tolerances(self, options: Any) -> Any:
        """`CLASSIFY_TOLERANCES` (ValidateOptions has no field for this task's table)."""
        return getattr(options, self.tolerance_option, CLASSIFY_TOLERANCES)

    def build_stream(self, ckpt: Checkpoint, options: Any) -> SequenceStream:
        if options.text is not None:
            raise ValidationInputError(
                f"--text is for char-lm models; {ckpt.path} is a classify model (use --csv)"
            )
        return build_sequence_stream(ckpt, options.csv)

    def reference_outputs(self, model: Any, stream: SequenceStream) -> np.ndarray:
        import torch

        from lstm_edge.toolchain.validate_run import onednn

        out = []
        with torch.inference_mode(), onednn(False):
            for seq in stream.sequences():  # each from a zero state
                out.append(model(torch.from_numpy(seq)[None])[0][0].numpy())
        return np.concatenate(out)

    def artifact_outputs(
        self, rt_model: Any, stream: SequenceStream, chunk: int, progress: Any = None
    ) -> RuntimeRun:
        runs = [runtime_outputs(rt_model, seq, chunk) for seq in stream.sequences()]
        if progress is not None:
            progress(stream.steps)
        return RuntimeRun(
            logits=np.concatenate([r.logits for r in runs]),
            cell_absmax=np.concatenate([r.cell_absmax for r in runs]),
            cell_min=min(r.cell_min for r in runs),
            cell_max=max(r.cell_max for r in runs),
            seconds=sum(r.seconds for r in runs),
        )

    def evaluate(
        self, ref: np.ndarray, run: RuntimeRun, stream: Any, config: ModelConfig, **names: str
    ) -> tuple[ClassifyTrace, ClassifySummary]:
        return summarize_classify(ref, run, stream, config, **names)

    def check(self, summary: ClassifySummary, tolerance: Any) -> list[str]:
        return check_classify_tolerance(summary, tolerance)

    def render_table(self, report: Any) -> Table:
        return render_classify_table(report)

    def write_extra(self, report: Any, folder: Path) -> list[Path]:
        return write_plots(report, folder)

    def check_against_torch(
        self,
        outputs: np.ndarray,
        reference: np.ndarray,
        inputs: np.ndarray,
        steps: np.ndarray,
        scheme: str,
        config: ModelConfig,
    ) -> tuple[float, float | None, list[str]]:
        """Logit error (float) and top-1 agreement of the printed steps, by the scheme's
        tolerance."""
        err = compare_streams(config, reference, outputs).step_errors
        top1 = float((outputs.argmax(-1) == reference.argmax(-1)).mean())
        tol = CLASSIFY_TOLERANCES[scheme]
        failures = []
        if tol.max_abs_err is not None and not err.max() <= tol.max_abs_err:
            failures.append(f"max abs logit error {err.max():.3g} > {tol.max_abs_err:g}")
        if tol.min_top1 is not None and top1 < tol.min_top1:
            failures.append(f"top-1 agreement {top1:.2%} < {tol.min_top1:.0%}")
        return float(err.max()), top1, failures

    def model_shape(self, config: ModelConfig) -> str:
        if config.vocab:
            return (
                f"characters ({config.vocab_size}-entry vocabulary, embedding "
                f"{config.embed_size}) -> {len(config.classes)} classes "
                f"({', '.join(config.classes)}) at every step"
            )
        return (
            f"{len(config.features)} features ({', '.join(config.features)}) -> "
            f"{len(config.classes)} classes ({', '.join(config.classes)}) at every step"
        )

    def summary_table(self, report: Any) -> str:
        return summary_markdown(report)

    def snippet(self, config: ModelConfig) -> list[str]:
        if config.vocab:
            return [
                "state = model.initial_state(batch=1)  # zeros: a new text starts here",
                f"vocab = {''.join(config.vocab)!r}  # id -> character (id 0: unknown)",
                "for ch in 'some text':  # one character per step",
                "    token = np.array([max(vocab.find(ch), 0)])",
                "    logits, state = model.step(token, state)",
                f"classes = {list(config.classes)!r}",
                "print(classes[int(logits[0].argmax())])  # the running answer",
            ]
        return [
            "state = model.initial_state(batch=1)  # zeros: a new sequence starts here",
            f"# one row of raw sensor values per step: {', '.join(config.features)}",
            f"row = np.array([{', '.join(f'{m:.4g}' for m in config.feature_mean)}])",
            "logits, state = model.step(row[None], state)",
            f"classes = {list(config.classes)!r}",
            "print(classes[int(logits[0].argmax())])  # the running answer",
        ]

    def info_config(self, config: ModelConfig) -> dict[str, Any]:
        summary = {
            k: v for k, v in config.to_dict().items() if k not in ("feature_mean", "feature_std")
        }
        if config.vocab:
            summary["vocab"] = f"{config.vocab_size} characters"
        else:
            summary["features"] = ", ".join(config.features)
        summary["classes"] = ", ".join(config.classes)
        return summary


EVAL = ClassifyEval()
