"""The char-lm task's training half: a text corpus in, the next character out, cross-entropy,
validation in bits per character. Its data lives in lstm_edge.toolchain.data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.tasks.char_lm import CHAR_LM
from lstm_edge.toolchain import data as data_mod
from lstm_edge.toolchain.budget import DEFAULT_SECONDS
from lstm_edge.toolchain.tasks.training_base import HeldOut, Pairs, Source, TaskTraining, take

if TYPE_CHECKING:
    from lstm_edge.toolchain.model import TorchStages
    from lstm_edge.toolchain.objective import Objective
    from lstm_edge.toolchain.run_config import RunConfig, TrainSettings

# The options that pick the forecast task's data, refused here (flag -> TrainSettings field).
_SERIES_OPTIONS = {
    "--csv": "csv",
    "--target": "target",
    "--features": "features",
    "--time-column": "time_column",
    "--label-column": "label_column",
    "--season": "season",
    "--target-kind": "target_kind",
    "--ar-lags": "ar_lags",
}


class CharLmTraining(TaskTraining):
    name = CHAR_LM.name
    only = ("embed", "max_vocab", "min_count")
    # RunConfig's defaults are char-lm's, but for the time budget: ~10 minutes of training
    # on any 2-core machine (`steps` then comes from the timing probe).
    defaults: ClassVar[dict[str, Any]] = {"time_budget": DEFAULT_SECONDS}
    items = "chars"

    @property
    def torch_stages(self) -> TorchStages:
        from lstm_edge.toolchain.tasks.torch_stages import EmbeddingStages

        return EmbeddingStages()

    held_out_name = "held-out test split of the training corpus"
    held_out_unavailable = "held-out text unavailable"
    fallback_name = "seeded pseudo-random tokens"
    data_errors = (ImportError, LstmEdgeError, OSError)

    def objective(self, run: RunConfig) -> Objective:
        from lstm_edge.toolchain.objective import Objective

        return Objective("cross-entropy", "bpc", "bits/char", "chars_per_s")

    def source(
        self, options: TrainSettings, probe: RunConfig, resume: dict[str, Any] | None
    ) -> Source:
        from lstm_edge.toolchain.run_config import TrainingError

        wrong = [
            flag for flag, name in _SERIES_OPTIONS.items() if getattr(options, name) is not None
        ]
        if wrong:
            verb = "applies" if len(wrong) == 1 else "apply"
            raise TrainingError(f"{', '.join(wrong)} {verb} to --task forecast only")
        if options.text_column is not None:
            raise TrainingError("--text-column applies to --task classify only (char-lm: --corpus)")
        if resume is not None:
            corpus, split, config, data = _resumed(options, resume)
        else:
            corpus, split, config, data = _new(options, probe)
        data_mod.check_long_enough(corpus, split, probe.seq_len, probe.batch_size)
        train_ids = data_mod.encode(split.text(corpus.text, "train"), config)
        val_ids = data_mod.encode(split.text(corpus.text, "val"), config)
        return Source(
            config, data, Pairs(train_ids[:-1], train_ids[1:]), Pairs(val_ids[:-1], val_ids[1:])
        )

    def run_info(
        self, data: dict[str, Any], objective: Objective, baseline: float | None
    ) -> dict[str, Any]:
        return {"corpus": {k: data[k] for k in ("source", "sha256", "chars")}}

    def held_out_stream(
        self,
        data: dict[str, Any],
        config: ModelConfig,
        split: str = "test",
        steps: int | None = None,
        *,
        cycle: bool = False,
    ) -> HeldOut:
        """Token ids of the split; `targets` are the next ids (one fewer than `inputs` when
        a cut stream reaches the split's end)."""
        ids = np.asarray(
            data_mod.encode(data_mod.held_out_text(data, split), config), dtype=np.int64
        )
        if steps is None:
            return HeldOut(ids[:-1], ids[1:], len(ids), False)
        index, cycled = take(len(ids), steps + 1, cycle)
        tokens = ids[index]
        return HeldOut(tokens[:steps], tokens[1:], len(ids), cycled)


def _new(options: TrainSettings, probe: RunConfig) -> tuple[Any, Any, ModelConfig, dict]:
    corpus = data_mod.load_corpus(options.corpus)  # refuses a bad corpus before training
    split = data_mod.split_corpus(len(corpus.text), probe.val_fraction, probe.test_fraction)
    vocab_options = data_mod.VocabOptions(probe.max_vocab, probe.min_count)
    vocab = data_mod.build_vocab(split.text(corpus.text, "train"), vocab_options)
    config = ModelConfig(
        vocab=vocab,
        embed_size=probe.embed,
        hidden_size=probe.hidden,
        num_layers=probe.layers,
    )
    return corpus, split, config, data_mod.data_record(corpus, split, vocab, vocab_options)


def _resumed(options: TrainSettings, resume: dict[str, Any]) -> tuple[Any, Any, ModelConfig, dict]:
    from lstm_edge.toolchain.run_config import TrainingError

    data = resume["data"]
    asked = options.corpus
    if asked is not None and data_mod.load_corpus(asked).source != data.get("source"):
        raise TrainingError(
            f"--corpus {asked} is not the corpus of the run being resumed "
            f"({data.get('source')}); a resumed run keeps its corpus"
        )
    corpus = data_mod.corpus_from_record(data)
    split = data_mod.split_from_record(data)
    return corpus, split, ModelConfig.from_dict(resume["config"]), data


TRAINING = CharLmTraining()
