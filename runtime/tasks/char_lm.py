"""char-lm: token ids in, logits over a character vocabulary out (predictive typing).

Input stage: a Gather from the embedding; output stage: the head bias, giving logits.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_edge.runtime.backends.c_text import count, int_lines, names_array, quantized_weight
from lstm_edge.runtime.errors import InputError, InvalidConfigError
from lstm_edge.runtime.format import (
    EMBEDDING,
    HEAD_BIAS,
    INPUT_TOKENS,
    MAX_DIM,
    MAX_VOCAB,
    OUTPUT_LOGITS,
    UNK_CHAR,
    UNK_ID,
)
from lstm_edge.runtime.tasks.base import (
    HEAD_MATMUL_OUT,
    X_STAGE_OUT,
    StageNode,
    TaskSpec,
    check_int,
)

if TYPE_CHECKING:
    from lstm_edge.runtime.config import ModelConfig


class CharLM(TaskSpec):
    name = "char-lm"
    fields = ("vocab", "embed_size", "tokens", "token_names")
    list_fields = ("vocab", "token_names")
    optional_fields = MappingProxyType({"tokens": 0, "token_names": ()})  # token models only
    input_name = INPUT_TOKENS  # int64 [batch, time]
    output_name = OUTPUT_LOGITS  # float32 [batch, time, vocab]
    input_dtype = np.dtype(np.int64)
    c_input_dtype = np.dtype(np.int32)
    c_enum = "LSTM_EDGE_TASK_CHAR_LM"
    c_step_function = "lstm_edge_step"
    c_output_noun = "vocab"
    stream_noun = "token "
    error_unit = "logit error"
    error_symbol = "logit"
    top1_applies = True

    def check_config(self, config: ModelConfig) -> None:
        check_int("embed_size", config.embed_size, MAX_DIM)
        if config.tokens or config.token_names:
            self._check_token_model(config)
            return
        vocab = config.vocab
        if not isinstance(vocab, tuple) or not all(isinstance(c, str) for c in vocab):
            raise InvalidConfigError("vocab must be a list of strings")
        if not 2 <= len(vocab) <= MAX_VOCAB:
            raise InvalidConfigError(f"vocab has {len(vocab)} entries (expected 2 to {MAX_VOCAB})")
        if vocab[UNK_ID] != UNK_CHAR:
            raise InvalidConfigError(
                f"vocab[{UNK_ID}] is {vocab[UNK_ID]!r} (expected the unknown "
                f"character {UNK_CHAR!r})"
            )
        if len(set(vocab)) != len(vocab):
            raise InvalidConfigError("vocab has duplicate entries")

    def _check_token_model(self, config: ModelConfig) -> None:
        """A token model: ids 0..tokens-1 without characters (`vocab` empty)."""
        if config.vocab:
            raise InvalidConfigError(
                f"config has both vocab ({len(config.vocab)} characters) and tokens "
                f"({config.tokens!r}); expected one of them"
            )
        if isinstance(config.tokens, bool) or not isinstance(config.tokens, int):
            raise InvalidConfigError(f"tokens is {config.tokens!r} (expected an integer)")
        if not 2 <= config.tokens <= MAX_VOCAB:
            raise InvalidConfigError(
                f"tokens is {config.tokens!r} (expected 2 to {MAX_VOCAB}; a character model "
                "gives vocab instead)"
            )
        names = config.token_names
        if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
            raise InvalidConfigError("token_names must be a list of strings")
        if names and len(names) != config.tokens:
            raise InvalidConfigError(
                f"token_names has {len(names)} entries (expected none or one per token: "
                f"{config.tokens})"
            )

    def has_characters(self, config: ModelConfig) -> bool:
        """Whether token ids stand for characters (typing needs them) or are bare ids."""
        return bool(config.vocab)

    def token_names(self, config: ModelConfig) -> tuple[str, ...]:
        """Display names of the ids: the characters, the given names, or "<id>"."""
        if config.vocab:
            return config.vocab
        return config.token_names or tuple(f"<{i}>" for i in range(config.tokens))

    def require(
        self, config: ModelConfig, what: str, hint: str = "", error: type[Exception] | None = None
    ) -> None:
        """As TaskSpec.require; also refuse a token model, whose ids have no characters."""
        super().require(config, what, hint, error)
        if not self.has_characters(config):
            raise (InputError if error is None else error)(
                f"{what} need a character model; this model is a token model of "
                f"{config.tokens} ids without characters (step it with model.step instead)"
            )

    def input_size(self, config: ModelConfig) -> int:
        return config.embed_size

    def output_size(self, config: ModelConfig) -> int:
        return config.vocab_size

    def graph_input_dims(self, config: ModelConfig) -> tuple[int | None, ...]:
        return (None, None)

    def stage_weights(self, config: ModelConfig) -> dict[str, tuple[int, ...]]:
        return {EMBEDDING: (config.vocab_size, config.embed_size)}

    def quant_axes(self, config: ModelConfig) -> dict[str, int]:
        return {EMBEDDING: 0}  # per row: one scale per character

    def input_stage(self, config: ModelConfig) -> list[StageNode]:
        return [
            StageNode("Gather", (EMBEDDING, INPUT_TOKENS), (X_STAGE_OUT,), "embed", {"axis": 0})
        ]

    def output_stage(self, config: ModelConfig) -> list[StageNode]:
        return [StageNode("Add", (HEAD_MATMUL_OUT, HEAD_BIAS), (OUTPUT_LOGITS,), "head_bias")]

    def apply_input_stage(self, weights: dict[str, np.ndarray], inputs: np.ndarray) -> np.ndarray:
        return weights[EMBEDDING][inputs]  # Gather: [batch, T, E]

    def apply_output_stage(
        self, weights: dict[str, np.ndarray], y: np.ndarray, inputs: np.ndarray
    ) -> np.ndarray:
        return y + weights[HEAD_BIAS]

    def check_inputs(self, config: ModelConfig, values: Any) -> tuple[np.ndarray, bool]:
        if type(values) is np.ndarray and values.dtype == np.int64 and values.ndim == 1:
            # The common case of a step (one id per stream, int64 already) in fewer numpy
            # calls; any id out of range goes on to the general checks below, which name it.
            if values.size == 1:
                top = values.item()
                ok = 0 <= top < config.vocab_size
            else:
                ok = (
                    values.size > 0
                    and np.maximum.reduce(values.view(np.uint64)) < config.vocab_size
                )
            if ok:
                return np.ascontiguousarray(values.reshape(-1, 1)), True
        arr = np.asarray(values)
        if arr.dtype.kind not in "iu":
            raise InputError(f"tokens have dtype {arr.dtype} (expected an integer dtype)")
        if arr.ndim not in (1, 2) or arr.size == 0:
            raise InputError(
                f"tokens have shape {list(arr.shape)} (expected [batch] or [batch, time], "
                f"non-empty)"
            )
        single = arr.ndim == 1
        ids = np.ascontiguousarray(arr[:, None] if single else arr, dtype=np.int64)
        vocab = config.vocab_size
        # One reduction checks both ends: negative ids (and uint64 ids >= 2**63, which
        # wrapped negative in int64) are >= 2**63 when viewed as uint64.
        if ids.view(np.uint64).max() >= vocab:
            pos = tuple(int(i) for i in np.argwhere((arr < 0) | (arr >= vocab))[0])
            raise InputError(
                f"token id {int(arr[pos])} at position {list(pos)} is out of range "
                f"(expected 0 to {vocab - 1})"
            )
        return ids, single

    def synthetic_inputs(self, config: ModelConfig, steps: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.integers(0, config.vocab_size, size=steps, dtype=np.int64)

    # ---- the C library ----------------------------------------------------------------

    def c_stage_fields(self, arrays: Any, artifact: Any) -> str:
        """The input stage: the embedding, float32 or int8 with one scale per row."""

        v, e = artifact.config.vocab_size, artifact.config.embed_size
        qe = quantized_weight(artifact, EMBEDDING, 0)
        if qe is None:
            emb = arrays.add(
                "embedding",
                f"{EMBEDDING}: float32 [vocab {v}][embed {e}]",
                artifact.weights[EMBEDDING],
            )
            return (
                f".input.embedding = {{ .vocab_size = {v}, .embed_size = {e}, .f32 = {emb},\n"
                f"                         .n_values = {count(emb)} }}"
            )
        eq = arrays.add("embedding_q", f"{EMBEDDING}: int8 [vocab {v}][embed {e}]", qe.q)
        es = arrays.add("embedding_scale", f"{EMBEDDING}: float32 scale per row [{v}]", qe.scale)
        return (
            f".input.embedding = {{ .vocab_size = {v}, .embed_size = {e},\n"
            f"                         .q = {eq}, .scale = {es},\n"
            f"                         .n_values = {count(eq)}, .n_scale = {count(es)} }}"
        )

    def c_header_macros(self, artifact: Any, name: str) -> str:
        upper, cfg = name.upper(), artifact.config
        return f"""#define {upper}_VOCAB {cfg.vocab_size}
#define {upper}_EMBED {cfg.embed_size}
/* Token id -> the character it stands for, UTF-8 (id 0 is the unknown character). */
extern const char *const {name}_vocab[{upper}_VOCAB];"""

    def c_data(self, artifact: Any, name: str) -> str:

        vocab = self.token_names(artifact.config)
        return names_array(f"{name}_vocab", f"{name.upper()}_VOCAB", "token id -> character", vocab)

    def c_example_inputs(self, config: ModelConfig, steps: int) -> tuple[np.ndarray, str]:
        """The start of SAMPLE_TEXT, repeated (any text works as a stream); a token model's
        is the seeded synthetic stream."""
        if not self.has_characters(config):
            return super().c_example_inputs(config, steps)
        text = (SAMPLE_TEXT * (steps // len(SAMPLE_TEXT) + 1))[:steps]
        ids = {ch: i for i, ch in enumerate(config.vocab)}
        return np.array([ids.get(ch, UNK_ID) for ch in text], np.int64), "built-in sample text"

    def c_check_example(
        self, config: ModelConfig, inputs: np.ndarray, steps: int, source: str, where: str,
        error: type[Exception],
    ) -> None:  # fmt: skip
        if int(inputs.max()) >= config.vocab_size or int(inputs.min()) < 0:
            raise error(
                f"the example stream holds ids {int(inputs.min())} to {int(inputs.max())} "
                f"(expected 0 to {config.vocab_size - 1}, the vocabulary of {where})"
            )

    def c_example_macros(self, name: str) -> str:
        return f"#define EXAMPLE_FORECAST 0\n#define EXAMPLE_VOCAB {name.upper()}_VOCAB"

    def c_example_stream(self, name: str, inputs: np.ndarray) -> str:

        return f"""static const int32_t example_stream[EXAMPLE_STREAM_LEN] = {{
{int_lines(np.asarray(inputs, np.int64))}
}};"""


# The codegen example's stream when no checkpoint is given: any text works as a stream,
# it is not training data of ours.
SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs! "
    "How vexingly quick daft zebras jump; 0123456789 (sphinx of black quartz, judge my vow). "
)


CHAR_LM = CharLM()
