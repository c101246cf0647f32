"""classify training: padding never changes a result, the early-rewarding loss, the shared
loop's resume and Ctrl-C, and the metrics and baselines against references."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain import classify_metrics as cm
from lstm_edge.toolchain.classify_train import (
    PAD,
    ClassifyObjective,
    SequenceBatches,
    pad,
    validation_loss,
)
from lstm_edge.toolchain.model import EdgeLSTM
from lstm_edge.toolchain.train import TrainingInterrupted, TrainOptions, read_metrics, train

CONFIG = ModelConfig(
    task="classify",
    hidden_size=8,
    num_layers=2,
    features=("a", "b", "c"),
    classes=("x", "y", "z"),
    feature_mean=(0.0, 1.0, 2.0),
    feature_std=(1.0, 2.0, 0.5),
)
OBJ = ClassifyObjective("weighted-ce", "wce", "nats", "rows_per_s", (0.5, 1.0, 3.0))


def _sequences(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    seqs = [rng.normal(size=(n, 3)).astype(np.float32) for n in (2, 9, 5, 13, 3)]
    return seqs, np.array([0, 2, 1, 2, 0])


def test_padded_batch_equals_each_sequence_alone():
    torch.manual_seed(0)
    model = EdgeLSTM(CONFIG).eval()
    seqs, labels = _sequences()
    batch = pad(seqs, labels)
    assert batch.inputs.shape == (5, 13, 3) and (batch.targets == PAD).sum() == 5 * 13 - 32
    x, y = torch.from_numpy(batch.inputs), torch.from_numpy(batch.targets)
    with torch.no_grad():
        out, _ = model.forward_normalized(x)
        total = OBJ(out, y, reduction="sum")
        alone = 0.0
        for i, s in enumerate(seqs):
            one, _ = model.forward_normalized(torch.from_numpy(s)[None])
            # every real step's logits are those of the sequence run alone
            torch.testing.assert_close(out[i, : len(s)], one[0], rtol=0, atol=1e-6)
            alone += float(OBJ(one, torch.full((1, len(s)), int(labels[i])), reduction="sum"))
    assert float(total) == pytest.approx(alone, rel=1e-6)
    assert float(OBJ(out, y)) == pytest.approx(alone / len(seqs), rel=1e-6)
    # the validation loss does not depend on how the sequences are batched
    assert validation_loss(model, batch, OBJ, batch=2) == pytest.approx(
        validation_loss(model, batch, OBJ, batch=64), rel=1e-6
    )


def test_loss_rewards_an_early_correct_answer():
    # two running answers ending right: the one right from the start costs less
    y = torch.zeros((1, 4), dtype=torch.long)
    late = torch.tensor([[[0.0, 3.0, 0.0]] * 3 + [[3.0, 0.0, 0.0]]])
    early = torch.tensor([[[3.0, 0.0, 0.0]] * 4])
    assert float(OBJ(early, y)) < float(OBJ(late, y))
    # step weights: (t + 1) over its sum along the sequence, times the class weight (3.0
    # and 0.5 here), zero on padding
    w = OBJ.step_weights(torch.tensor([[2, 2, PAD, PAD], [0, 0, 0, 0]]))
    torch.testing.assert_close(w, torch.tensor([[1.0, 2.0, 0, 0], [0.05, 0.1, 0.15, 0.2]]))


def test_batches_cover_each_pass_and_split_among_ranks():
    seqs, labels = _sequences()
    pairs = pad(seqs * 4, np.tile(labels, 4))
    whole = SequenceBatches(pairs, 4, seed=0, rank=0, world=1)
    assert whole.chunks == 5 and whole.starts_fresh(3)
    seen = []
    for k in range(whole.chunks):
        x, y = whole.chunk(k)
        real = (y != PAD).sum(1)
        assert x.shape[1] == int(real.max())  # trimmed to the longest in the batch
        seen += y[:, 0].tolist()
    assert sorted(seen) == sorted(np.tile(labels, 4).tolist())  # each sequence once a pass
    halves = [SequenceBatches(pairs, 4, seed=0, rank=r, world=2).chunk(7) for r in (0, 1)]
    x_all, _ = whole.chunk(7)
    longest = x_all.shape[1]
    joined = [torch.nn.functional.pad(h[0], (0, 0, 0, longest - h[0].shape[1])) for h in halves]
    torch.testing.assert_close(torch.cat(joined), x_all)


def test_metrics_against_hand_counts():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 2, 2])
    s = cm.scores(y, p, 3)
    assert s.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.recall == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert s.precision == pytest.approx([1.0, 1 / 2, 1 / 2])
    assert s.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    f1 = [2 * a * b / (a + b) for a, b in zip(s.precision, s.recall, strict=True)]
    assert s.macro_f1 == pytest.approx(sum(f1) / 3)
    truth = np.array([True, False, True, False, True])
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.7])
    pairs = [(a, b) for a in score[truth] for b in score[~truth]]
    want = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert cm.roc_auc(truth, score) == pytest.approx(want)
    # average precision: positives at ranks 1, 3 (tied 0.7s kept in order), 4
    assert cm.pr_auc(truth, score) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    early = cm.early_decision([np.array([1, 0, 0, 0]), np.array([2, 2])], np.array([0, 2]))
    assert early.settle == [0.5, 0.5] and early.accuracy[-1] == 1.0 and early.accuracy[0] == 0.5


def test_logistic_regression_baseline_fits_separable_sequences():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(loc=3.0 * (i % 2), size=(int(rng.integers(3, 20)), 2)) for i in range(80)]
    y = np.arange(80) % 2
    lr = cm.LogisticRegression.fit(cm.summary_features(seqs), y, 2)
    assert (lr.proba(cm.summary_features(seqs)).argmax(1) == y).mean() == 1.0


def _options(out, csv, **over):
    values = dict(
        task="classify",
        csv=csv,
        hidden=8,
        layers=1,
        batch_size=8,
        steps=10,
        eval_every=4,
        warmup_steps=0,
        threads=1,
        progress=False,
        log_every=1,
        time_column="time",
    )
    values.update(over)
    return TrainOptions(out, **values)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cls") / "seqs.csv"
    seqs = cd.builtin_sequences(120, seed=3)
    cd.write_csv(seqs, path, [i for i in range(120) if seqs.lengths[i] <= 60])
    return path


def test_resume_after_ctrl_c_equals_uninterrupted_run(tmp_path, small_csv):
    def curve(out):
        return [{k: v for k, v in m.items() if k != "rows_per_s"} for m in read_metrics(out)]

    full = train(_options(tmp_path / "full", small_csv))

    def hook(done: int, loss: float) -> None:
        if done == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(_options(tmp_path / "cut", small_csv), on_step=hook)
    resumed = train(_options(tmp_path / "cut", small_csv, resume=True))
    assert resumed.steps == full.steps == 10
    assert curve(tmp_path / "cut") == curve(tmp_path / "full")
    assert resumed.best_val == full.best_val


def test_training_refuses_a_split_without_a_class(tmp_path):
    path = tmp_path / "d.csv"
    rows = ["sequence,a,label,split"]
    for i in range(20):
        label, split = ("y", "test") if i < 2 else ("x", "train" if i < 16 else "val")
        rows += [f"s{i},{j},{label},{split}" for j in range(3)]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(cd.ClassifyDataError, match="class 'y' has no training sequence"):
        train(_options(tmp_path / "run", path, time_column=None))
    assert not (tmp_path / "run").exists()
