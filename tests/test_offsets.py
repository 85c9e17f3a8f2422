"""Decision offsets: the prior correction learned from out-of-fold probabilities."""

from __future__ import annotations

import numpy as np

from pipeline.classify.model import apply_offsets, choose_offsets


def _macro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    f1 = []
    for c in (0, 1):
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


def test_offsets_undo_an_inflated_minority_class() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    gold = (rng.random(n) < 0.2).astype(int)  # 20% positives
    # a score that separates the classes, shifted so the positive class is over-predicted
    logit = np.where(gold == 1, 1.5, -1.5) + rng.normal(0, 1.5, n) + 1.2
    p = 1 / (1 + np.exp(-logit))
    proba = np.column_stack([1 - p, p])
    labels = np.where(gold == 1, "action", "talk")
    offsets = choose_offsets(proba, labels.tolist(), ["talk", "action"], ["corpus"] * n)
    assert offsets[0] == 0 and offsets[1] < -0.5
    before = _macro_f1(np.argmax(proba, 1), gold)
    after = _macro_f1(np.argmax(apply_offsets(proba, offsets), 1), gold)
    assert after > before + 0.01


def test_offsets_weigh_each_corpus_equally_and_skip_tiny_groups() -> None:
    proba = np.array([[0.4, 0.6]] * 100 + [[0.9, 0.1]] * 10)
    gold = ["talk"] * 100 + ["action"] * 10
    groups = ["big"] * 100 + ["tiny"] * 10
    # only "big" counts (tiny has < 50 rows): every row there is talk, so action must lose the argmax
    offsets = choose_offsets(proba, gold, ["talk", "action"], groups)
    assert np.all(np.argmax(apply_offsets(proba[:100], offsets), 1) == 0)


def test_apply_offsets_is_a_renormalised_prior_shift() -> None:
    proba = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    assert np.allclose(apply_offsets(proba, np.zeros(2)), proba)
    shifted = apply_offsets(proba, np.array([0.0, np.log(0.25)]))
    assert np.allclose(shifted.sum(axis=1), 1.0)
    assert np.allclose(shifted[0], [0.5, 0.5]) and np.allclose(shifted[2], [1.0, 0.0])
