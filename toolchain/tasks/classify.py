"""The classify task's training half: labelled sequences of sensor rows in, class logits at
every step out; whole sequences per batch (padded, padding ignored), a class-weighted
cross-entropy that rewards an early correct answer as well as the final one (see
lstm_edge.toolchain.classify_train), the best checkpoint chosen by that loss on the
validation split. Its data lives in lstm_edge.toolchain.classify_data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.tasks.classify import CLASSIFY
from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain.tasks.training_base import HeldOut, Pairs, Source, TaskTraining, take

if TYPE_CHECKING:
    from lstm_edge.toolchain.model import EdgeLSTM, TorchStages
    from lstm_edge.toolchain.objective import Objective
    from lstm_edge.toolchain.run_config import RunConfig, TrainSettings

# Options of the other tasks' data, refused here (flag -> TrainSettings field).
_OTHER_OPTIONS = {
    "--corpus": "corpus",
    "--target": "target",
    "--season": "season",
    "--ar-lags": "ar_lags",
}


class ClassifyTraining(TaskTraining):
    name = CLASSIFY.name
    only = ("embed", "max_vocab", "min_count")  # text (the token kind) only, as char-lm's
    defaults: ClassVar[dict[str, Any]] = {
        # ~1,700 training windows of 5 columns, median 44 rows: a 1x48 LSTM learns the four
        # conditions in ~40 s on one thread (1,200 steps, ~23 passes); validation loss
        # stopped falling after ~900 steps.
        "hidden": 48,
        "layers": 1,
        "seq_len": 64,  # only the rows/s figure counts with it: batches are whole sequences
        "batch_size": 32,
        "steps": 1200,
        "lr": 1e-2,
        "warmup_steps": 30,
        "dropout": 0.1,
        "eval_every": 100,
        "val_fraction": 0.15,
        "test_fraction": 0.15,
    }
    items = "rows"

    @property
    def torch_stages(self) -> TorchStages:
        from lstm_edge.toolchain.tasks.torch_stages import InputNormalizationStages

        return InputNormalizationStages()

    def stages_for(self, config: ModelConfig) -> TorchStages:
        from lstm_edge.toolchain.tasks.torch_stages import EmbeddingStages

        return EmbeddingStages() if config.vocab else self.torch_stages

    held_out_name = "the longest held-out test sequence"
    held_out_unavailable = "held-out sequences unavailable"
    fallback_name = "seeded synthetic stream at the training statistics"
    data_errors = (ImportError, AttributeError, LstmEdgeError, OSError, ValueError)

    def threads(self, processes: int) -> int:
        return 1  # a small model: more threads only add waits (as forecast)

    def objective(self, run: RunConfig) -> Objective:
        from lstm_edge.toolchain.classify_train import ClassifyObjective

        return ClassifyObjective("weighted-ce", "wce", "weighted CE (nats)", "rows_per_s")

    def objective_for(self, run: RunConfig, source: Source) -> Objective:
        from lstm_edge.toolchain.classify_train import ClassifyObjective

        return ClassifyObjective(
            "weighted-ce",
            "wce",
            "weighted CE (nats)",
            "rows_per_s",
            tuple(source.data["class_weights"]),
        )

    def steps_per_pass(self, pairs: Pairs, run: RunConfig) -> int:
        return max(1, len(pairs) // run.batch_size)

    def train_batches(self, pairs: Pairs, run: RunConfig, d: Any) -> Any:
        from lstm_edge.toolchain.classify_train import SequenceBatches

        return SequenceBatches(pairs, run.batch_size, run.seed, d.rank, d.world)

    def validation_loss(
        self, model: EdgeLSTM, pairs: Pairs, run: RunConfig, objective: Objective
    ) -> float:
        from lstm_edge.toolchain.classify_train import validation_loss

        return validation_loss(model, pairs, objective)

    def source(
        self, options: TrainSettings, probe: RunConfig, resume: dict[str, Any] | None
    ) -> Source:
        from lstm_edge.toolchain.classify_train import pad
        from lstm_edge.toolchain.run_config import TrainingError

        wrong = [f for f, name in _OTHER_OPTIONS.items() if getattr(options, name) is not None]
        if wrong:
            raise TrainingError(f"{', '.join(wrong)} do(es) not apply to --task classify")
        if resume is not None:
            data = resume["data"]
            config = ModelConfig.from_dict(resume["config"])
            if (
                options.csv is not None
                and str(Path(options.csv).expanduser().resolve()) != data["source"]
            ):
                raise TrainingError(
                    "--csv differs from the run being resumed; a resumed run keeps its data"
                )
            seqs, splits = cd.sequences_from_record(data)
        else:
            seqs, splits, config, data = _new(options, probe)
        if len(splits["train"]) < probe.batch_size:
            raise TrainingError(
                f"{seqs.source}: the train split has {len(splits['train'])} sequences, fewer "
                f"than one batch ({probe.batch_size}); use a smaller --batch-size"
            )

        def pairs(name: str) -> Pairs:
            return pad(*cd.select_inputs(seqs, config, splits[name]))

        return Source(config, data, pairs("train"), pairs("val"))

    def run_info(
        self, data: dict[str, Any], objective: Objective, baseline: float | None
    ) -> dict[str, Any]:
        keys = (
            "source",
            "sequences",
            "rows",
            "classes",
            "class_counts",
            "class_weights",
            "split_kind",
            "values_sha256",
        )
        return {"sequences": {k: data[k] for k in keys if k in data}}

    def held_out_stream(
        self,
        data: dict[str, Any],
        config: ModelConfig,
        split: str = "test",
        steps: int | None = None,
        *,
        cycle: bool = False,
    ) -> HeldOut:
        """The split's longest sequence (rows float32 [len, F] and each row's label), cut to
        `steps` rows or, with `cycle`, repeated to `steps` (steps None: every sequence of
        the split back to back). One sequence from a zero state is how a classify model
        runs; its export check and codegen example compare torch and an artifact on it
        (a stream of many sequences without a reset leaves the states the model was
        trained in, where float rounding orders differ more)."""
        seqs, splits = cd.sequences_from_record(data)
        rows, labels = cd.select_inputs(seqs, config, splits[split])
        if not rows:
            return HeldOut(
                np.zeros((0, *config.spec.graph_input_dims(config)[2:]), config.spec.input_dtype),
                np.zeros(0),
                0,
                False,
            )
        if steps is not None:
            k = int(np.argmax([len(r) for r in rows]))
            rows, labels = rows[k : k + 1], labels[k : k + 1]
        x = np.concatenate(rows)
        y = np.concatenate([np.full(len(r), lab) for r, lab in zip(rows, labels, strict=True)])
        index, cycled = take(len(x), steps, cycle)
        return HeldOut(np.ascontiguousarray(x[index]), y[index], len(x), cycled)


def _new(options: TrainSettings, probe: RunConfig) -> tuple[Any, dict, ModelConfig, dict]:
    from lstm_edge.toolchain.run_config import TrainingError

    text_column = cd.text_column_of(options.csv, options.text_column)
    if options.text_column is not None and options.csv is None:
        raise TrainingError("--text-column needs --csv (a CSV of texts and labels)")
    token_only = {"--embed": options.embed, "--max-vocab": options.max_vocab}
    token_only["--min-count"] = options.min_count
    if text_column is not None:
        return _new_text(options, probe, text_column)
    wrong = [flag for flag, value in token_only.items() if value is not None]
    if wrong:
        raise TrainingError(f"{', '.join(wrong)} apply to a CSV of texts only (--text-column)")
    columns = cd.CsvColumns(
        options.label_column or cd.LABEL_COLUMN, options.time_column, options.features
    )
    if options.csv is None:
        seqs = cd.builtin_sequences(cd.BUILTIN_SEQUENCES, 0)
    else:
        seqs = cd.read_csv(options.csv, columns)
    features = options.features or seqs.columns
    splits = cd.split_sequences(seqs, probe.val_fraction, probe.test_fraction, probe.seed)
    mean, std = cd.feature_stats(seqs, splits["train"], features)
    config = ModelConfig(
        task=CLASSIFY.name,
        hidden_size=probe.hidden,
        num_layers=probe.layers,
        features=tuple(features),
        classes=seqs.classes,
        feature_mean=mean,
        feature_std=std,
    )
    data = cd.data_record(
        seqs, splits, csv_path=options.csv, columns=columns, count=cd.BUILTIN_SEQUENCES, seed=0
    )
    from lstm_edge.toolchain.classify_train import balanced_weights

    data["class_weights"] = list(balanced_weights(seqs.labels[splits["train"]], len(seqs.classes)))
    return seqs, splits, config, data


def _new_text(
    options: TrainSettings, probe: RunConfig, text_column: str
) -> tuple[Any, dict, ModelConfig, dict]:
    """A CSV of texts: the vocabulary of the training split's texts by char-lm's rules."""
    from lstm_edge.toolchain import data as data_mod
    from lstm_edge.toolchain.classify_train import balanced_weights
    from lstm_edge.toolchain.run_config import TrainingError

    wrong = [f"--{n.replace('_', '-')}" for n in ("features", "time_column") if getattr(options, n)]
    if wrong:
        raise TrainingError(f"{', '.join(wrong)} do(es) not apply to a CSV of texts")
    label = options.label_column or cd.LABEL_COLUMN
    seqs = cd.read_text_csv(options.csv, text_column, label)
    splits = cd.split_sequences(seqs, probe.val_fraction, probe.test_fraction, probe.seed)
    vocab_options = data_mod.VocabOptions(probe.max_vocab, probe.min_count)
    vocab = data_mod.build_vocab("".join(cd.texts(seqs, splits["train"])), vocab_options)
    config = ModelConfig(
        task=CLASSIFY.name,
        hidden_size=probe.hidden,
        num_layers=probe.layers,
        vocab=vocab,
        embed_size=probe.embed,
        classes=seqs.classes,
    )
    data = cd.data_record(
        seqs, splits, csv_path=options.csv, columns=cd.CsvColumns(label), count=0, seed=0,
        text_column=text_column,
    )  # fmt: skip
    data["vocab"] = {"size": len(vocab), "max_size": probe.max_vocab, "min_count": probe.min_count}
    data["class_weights"] = list(balanced_weights(seqs.labels[splits["train"]], len(seqs.classes)))
    return seqs, splits, config, data


TRAINING = ClassifyTraining()
