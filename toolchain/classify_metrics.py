"""Sequence-classification metrics and baselines in plain numpy (no torch, no new dependency).

Scores of final predictions (`scores`: accuracy, balanced accuracy, macro-F1, per-class
precision/recall, the confusion matrix; ROC-AUC and PR-AUC when there are two classes), the
early-decision view of running predictions (`early_decision`: accuracy against the fraction
of each sequence seen, and the fraction at which the running prediction settles on the final
one), and the baselines a number is read against: the majority class and a multinomial
logistic regression on summary features of the whole sequence (`summary_features`: per
feature mean, std, min, max and last value), fit on the training split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Scores:
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    precision: list[float]  # per class
    recall: list[float]
    f1: list[float]
    confusion: list[list[int]]  # [true][predicted]
    roc_auc: float | None = None  # binary only: of the positive (second) class's score
    pr_auc: float | None = None


def scores(
    y: np.ndarray, pred: np.ndarray, classes: int, positive: np.ndarray | None = None
) -> Scores:
    """`positive`: scores of class 1 (binary tasks) for ROC-AUC and PR-AUC."""
    cm = np.zeros((classes, classes), np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        recall = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = cm.sum(1) > 0
    roc = pr = None
    if classes == 2 and positive is not None:
        roc, pr = roc_auc(y == 1, positive), pr_auc(y == 1, positive)
    return Scores(
        accuracy=float(tp.sum() / max(1, len(y))),
        balanced_accuracy=float(recall[present].mean()) if present.any() else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        precision=precision.tolist(),
        recall=recall.tolist(),
        f1=f1.tolist(),
        confusion=cm.tolist(),
        roc_auc=roc,
        pr_auc=pr,
    )


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float | None:
    """The probability that a positive scores above a negative (ties count half)."""
    pos, neg = score[truth], score[~truth]
    if not len(pos) or not len(neg):
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    ranks[order] = _average_ranks(values)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _average_ranks(sorted_values: np.ndarray) -> np.ndarray:
    ranks = np.arange(1, len(sorted_values) + 1, dtype=np.float64)
    _, start, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for s, c in zip(start, counts, strict=True):
        ranks[s : s + c] = s + (c + 1) / 2
    return ranks


def pr_auc(truth: np.ndarray, score: np.ndarray) -> float | None:
    """Average precision: mean over the positives of the precision at their score."""
    if not truth.any():
        return None
    order = np.argsort(-score, kind="stable")
    hits = truth[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


# ---- early decision --------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlyDecision:
    fractions: list[float]
    accuracy: list[float]  # accuracy of the running prediction after that fraction
    median_settle: float  # median fraction from which the prediction stays the final one
    settle: list[float]  # per sequence


def early_decision(running: list[np.ndarray], y: np.ndarray) -> EarlyDecision:
    """`running[i]`: the running prediction of sequence i at every step ([len_i] ints)."""
    acc = []
    for f in FRACTIONS:
        at = [r[max(0, math.ceil(f * len(r)) - 1)] for r in running]
        acc.append(float(np.mean(np.array(at) == y)))
    settle = []
    for r in running:
        differs = np.flatnonzero(r != r[-1])
        settle.append(float((differs[-1] + 2) / len(r)) if differs.size else 1.0 / len(r))
    return EarlyDecision(list(FRACTIONS), acc, float(np.median(settle)), settle)


# ---- baselines -------------------------------------------------------------------------------


def summary_features(seqs: list[np.ndarray]) -> np.ndarray:
    """[n, 5F]: per feature the mean, std, min, max and last value of each sequence."""
    return np.stack(
        [np.concatenate([s.mean(0), s.std(0), s.min(0), s.max(0), s[-1]]) for s in seqs]
    ).astype(np.float64)


def bag_of_characters(seqs: list[np.ndarray], vocab_size: int) -> np.ndarray:
    """[n, vocab]: each token id's share of the sequence (normalized character counts)."""
    return np.stack([np.bincount(s, minlength=vocab_size) / max(1, len(s)) for s in seqs]).astype(
        np.float64
    )


@dataclass(frozen=True)
class LogisticRegression:
    """Multinomial logistic regression on standardized features, L2-regularized, balanced
    class weights (as the LSTM's loss), fit by full-batch gradient descent with momentum."""

    mean: np.ndarray
    std: np.ndarray
    w: np.ndarray  # [D, K]
    b: np.ndarray  # [K]

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        classes: int,
        l2: float = 1e-3,
        steps: int = 2000,
        lr: float = 0.5,
    ) -> LogisticRegression:
        mean, std = x.mean(0), x.std(0)
        std = np.where(std > 0, std, 1.0)
        z = (x - mean) / std
        counts = np.bincount(y, minlength=classes)
        sw = (len(y) / (classes * np.maximum(counts, 1)))[y]
        onehot = np.eye(classes)[y]
        w, b = np.zeros((z.shape[1], classes)), np.zeros(classes)
        vw, vb = np.zeros_like(w), np.zeros_like(b)
        for _ in range(steps):
            p = _softmax(z @ w + b)
            g = (p - onehot) * sw[:, None] / sw.sum()
            vw = 0.9 * vw + (z.T @ g + l2 * w)
            vb = 0.9 * vb + g.sum(0)
            w, b = w - lr * vw, b - lr * vb
        return cls(mean, std, w, b)

    def proba(self, x: np.ndarray) -> np.ndarray:
        return _softmax(((x - self.mean) / self.std) @ self.w + self.b)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax(z: np.ndarray) -> np.ndarray:
    return _softmax(np.asarray(z, np.float64))
