"""`lstm-edge suggest` and `lstm-edge eval-typing` through CliRunner, values checked."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner
from typing_support import VOCAB, torch_logprobs

from lstm_edge.runtime import Suggester, load
from lstm_edge.runtime.suggest import is_word_char
from lstm_edge.toolchain.cli import app

runner = CliRunner()


def flat(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


TEXT = "Tabac cab. abcab bacab ab Tabac\ncab abcab bac. Tab cab\n"


def test_suggest_json_equals_the_engine(tiny, numpy_model):
    result = runner.invoke(
        app, ["suggest", str(tiny.float_path), "ab c", "-k", "4", "--json", "--backend", "numpy"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    s = Suggester(numpy_model)
    s.type("ab c")
    assert out["suggestions"] == [x.to_dict() for x in s.suggestions(4)]
    assert out["ms"] > 0 and out["text"] == "ab c"


def test_suggest_table(tiny, numpy_model):
    result = runner.invoke(app, ["suggest", str(tiny.int8_path), "Tb", "--backend", "ort"])
    assert result.exit_code == 0, result.output
    s = Suggester(load(tiny.int8_path, backend="ort"))
    s.type("Tb")
    for x in s.suggestions(3):
        assert x.word in result.output and f"{x.probability:.2%}" in result.output
    assert " ms " in result.output and "int8, ort" in result.output


def test_suggest_errors(tmp_path, tiny):
    missing = runner.invoke(app, ["suggest", str(tmp_path / "nope.onnx"), "ab"])
    assert missing.exit_code == 2 and "nope.onnx" in flat(missing)
    bad_k = runner.invoke(app, ["suggest", str(tiny.float_path), "ab", "-k", "0"])
    assert bad_k.exit_code == 2


def honest_keystrokes(model, text: str, k: int, auto_space: bool) -> int:
    """A user who really accepts through the engine: type char by char; when the intended
    word is shown with characters left, `accept` it; with the auto space, skip a following
    space, let punctuation replace it, or delete it before anything else."""
    s = Suggester(model, auto_space=auto_space)
    keystrokes = i = 0
    while i < len(text):
        if is_word_char(text[i]):
            start = i
            while start and is_word_char(text[start - 1]):
                start -= 1
            end = i
            while end < len(text) and is_word_char(text[end]):
                end += 1
            shown = s.suggestions(k)
            match = [x for x in shown if x.word == text[start:end] and x.completion]
            if match:
                s.accept(match[0])
                keystrokes += 1
                i = end
                if auto_space and i < len(text):
                    if text[i] == " ":
                        i += 1
                    elif not s.replaces_space(text[i]):
                        s.backspace(1)
                        keystrokes += 1
                elif auto_space:
                    s.backspace(1)  # the text ends here: the space is left (not counted)
                continue
        s.type(text[i])
        keystrokes += 1
        i += 1
    assert s.text == text
    return keystrokes


def test_eval_typing_values(tmp_path, tiny):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "typing.json"
    args = ["eval-typing", str(tiny.float_path), str(tiny.int8_path), "--text", str(text_file)]
    result = runner.invoke(app, [*args, "--json", str(out), "--backend", "numpy", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "keystroke savings" in result.output and "tiny.int8.onnx" in result.output
    reports = json.loads(out.read_text())["reports"]
    assert [r["scheme"] for r in reports] == ["none", "int8"]
    float_report = reports[0]
    assert float_report["chars"] == len(TEXT) and float_report["k"] == 2

    # BPC and next-char accuracy directly from torch over "\n" (the start context) + text.
    ids = np.array([VOCAB.index(ch) for ch in "\n" + TEXT])
    lp = torch_logprobs(tiny.torch_model, [ids])[0, :-1]
    targets = ids[1:]
    bpc = -lp[np.arange(len(targets)), targets].mean() / math.log(2)
    # float32 (numpy backend) vs float64 softmax of float32 torch logits: ~1e-6 per char.
    assert float_report["bpc"] == pytest.approx(bpc, rel=1e-5)
    top1 = (lp.argmax(-1) == targets).mean()
    assert float_report["next_char_top1"] == pytest.approx(top1)

    # Keystroke savings from the one-pass count equals a simulation that really accepts,
    # in each convention.
    model = load(tiny.float_path, backend="numpy")
    for suffix, auto_space in (("", True), ("_no_space", False)):
        keystrokes = honest_keystrokes(model, TEXT, 2, auto_space)
        assert float_report[f"keystrokes{suffix}"] == keystrokes
        ksr = float_report[f"keystroke_savings{suffix}"]
        assert ksr == pytest.approx(1 - keystrokes / len(TEXT))
        assert ksr > 0  # the test text exercises accepting
    # The auto space pays: the phone convention saves more on this text.
    assert float_report["keystroke_savings"] > float_report["keystroke_savings_no_space"]


@pytest.mark.parametrize("layout", ["train", "pipeline"])
def test_eval_typing_on_a_checkpoint(tmp_path, tiny, layout):
    from lstm_edge.toolchain.checkpoint import save_checkpoint
    from lstm_edge.toolchain.data import (
        VocabOptions,
        data_record,
        held_out_text,
        load_corpus,
        split_corpus,
    )
    from lstm_edge.toolchain.export import export_checkpoint

    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text(TEXT * 40, encoding="utf-8")
    corpus = load_corpus(corpus_file)
    split = split_corpus(len(corpus.text))
    record = data_record(corpus, split, VOCAB, VocabOptions())
    # Where `lstm-edge train --out run` or `lstm-edge pipeline --out run` put the checkpoint.
    ckpt = tmp_path / "run" if layout == "train" else tmp_path / "run" / "checkpoint"
    save_checkpoint(ckpt, tiny.torch_model, record)
    model = tmp_path / "run" / "model.onnx"
    export_checkpoint(ckpt, model, check_steps=50)
    out = tmp_path / "r.json"
    # No --checkpoint: the one beside the model is found.
    result = runner.invoke(
        app, ["eval-typing", str(model), "--json", str(out), "--max-chars", "90"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())["reports"][0]
    assert report["chars"] == min(90, len(held_out_text(record)))
    assert "test split" in json.loads(out.read_text())["text"]


def test_eval_typing_errors(tmp_path, tiny):
    model = str(tiny.float_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    r = runner.invoke(app, ["eval-typing", model, "--text", str(empty)])
    # --text goes through the corpus checks (empty, binary, not UTF-8), naming the file.
    assert r.exit_code == 2 and "empty.txt" in flat(r) and "is empty" in flat(r)
    r = runner.invoke(app, ["eval-typing", model, "--text", str(empty), "--checkpoint", "x"])
    assert r.exit_code == 2 and "not both" in flat(r)
    r = runner.invoke(app, ["eval-typing", model])  # no checkpoint beside the model
    assert r.exit_code == 2 and "--checkpoint" in flat(r)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    r = runner.invoke(app, ["eval-typing", model, "--text", str(binary)])
    assert r.exit_code == 2 and "UTF-8" in flat(r)
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    existing = tmp_path / "out.json"
    existing.write_text("keep me")
    r = runner.invoke(app, ["eval-typing", model, "--text", str(text), "--json", str(existing)])
    assert r.exit_code == 2 and "--force" in flat(r)
    assert existing.read_text() == "keep me"


def test_eval_typing_on_a_forecast_checkpoint_names_the_task(tmp_path, tiny):
    from lstm_edge.runtime.config import ModelConfig
    from lstm_edge.toolchain.checkpoint import save_checkpoint
    from lstm_edge.toolchain.model import build_model

    config = ModelConfig(
        task="forecast", hidden_size=4, num_layers=1, features=("a", "b"), targets=("b",),
        feature_mean=(0.0, 1.0), feature_std=(1.0, 2.0), target_mean=(1.0,), target_std=(2.0,),
    )  # fmt: skip
    save_checkpoint(tmp_path / "fc", build_model(config))
    result = runner.invoke(
        app, ["eval-typing", str(tiny.float_path), "--checkpoint", str(tmp_path / "fc")]
    )
    assert result.exit_code == 2, result.output
    assert "'forecast' model" in flat(result) and "'char-lm' checkpoint" in flat(result)
