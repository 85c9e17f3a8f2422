"""The macro-F1 interval from resampling whole conversations (pipeline.classify.train)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.classify.train import classification_metrics, format_macro_f1, macro_f1_interval


def _synthetic(n_groups: int, per_group: int, accuracy: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    gold, pred, groups = [], [], []
    for g in range(n_groups):
        for _ in range(per_group):
            y = "action" if rng.random() < 0.3 else "talk"
            wrong = rng.random() > accuracy
            gold.append(y)
            pred.append(("talk" if y == "action" else "action") if wrong else y)
            groups.append(f"call-{g}")
    return gold, pred, groups


def test_interval_brackets_the_estimate_and_is_reproducible() -> None:
    gold, pred, groups = _synthetic(30, 20, 0.85)
    m = classification_metrics(gold, pred, ["talk", "action"], groups=groups)
    low, high = m["macro_f1_interval"]
    assert low < m["macro_f1"] < high
    assert m["interval_groups"] == 30
    assert macro_f1_interval(gold, pred, ["talk", "action"], groups) == macro_f1_interval(
        gold, pred, ["talk", "action"], groups)


def test_interval_narrows_with_more_conversations() -> None:
    few = macro_f1_interval(*_synthetic(8, 20, 0.85)[:2], ["talk", "action"], _synthetic(8, 20, 0.85)[2])
    many = macro_f1_interval(*_synthetic(80, 20, 0.85)[:2], ["talk", "action"], _synthetic(80, 20, 0.85)[2])
    assert few is not None and many is not None
    assert many[1] - many[0] < few[1] - few[0]


def test_resampling_conversations_is_wider_than_resampling_rows_when_calls_differ() -> None:
    """Rows of one call share its difficulty: the interval must reflect the calls, not the rows."""
    rng = np.random.default_rng(3)
    gold, pred, groups = [], [], []
    for g in range(20):
        accuracy = 0.95 if g % 2 else 0.65  # easy and hard calls
        for _ in range(40):
            y = "action" if rng.random() < 0.3 else "talk"
            gold.append(y)
            pred.append(y if rng.random() < accuracy else ("talk" if y == "action" else "action"))
            groups.append(f"call-{g}")
    by_call = macro_f1_interval(gold, pred, ["talk", "action"], groups)
    by_row = macro_f1_interval(gold, pred, ["talk", "action"], [str(i) for i in range(len(gold))])
    assert by_call is not None and by_row is not None
    assert by_call[1] - by_call[0] > by_row[1] - by_row[0]


def test_perfect_predictions_and_a_single_conversation() -> None:
    gold, _pred, groups = _synthetic(5, 10, 1.0)
    assert macro_f1_interval(gold, gold, ["talk", "action"], groups) == (1.0, 1.0)
    assert macro_f1_interval(gold, gold, ["talk", "action"], ["one"] * len(gold)) is None
    m = classification_metrics(gold, gold, ["talk", "action"], groups=["one"] * len(gold))
    assert "macro_f1_interval" not in m
    assert format_macro_f1(m) == f"1.000 ({len(gold)})"


def test_format_shows_the_interval() -> None:
    m = {"macro_f1": 0.7571, "n": 1381, "macro_f1_interval": [0.7142, 0.7944]}
    assert format_macro_f1(m) == "0.757 [0.714-0.794] (1381)"


def test_paired_difference_tells_a_better_model_apart_and_not_an_equal_one() -> None:
    from pipeline.classify.train import paired_macro_f1_difference

    gold, weaker, groups = _synthetic(40, 20, 0.75, seed=5)
    rng = np.random.default_rng(9)
    # the stronger model corrects two thirds of the weaker one's errors
    stronger = [g if (w != g and rng.random() < 2 / 3) else w for g, w in zip(gold, weaker)]
    d = paired_macro_f1_difference(gold, weaker, stronger, ["talk", "action"], groups)
    assert d["difference"] > 0 and d["interval"][0] > 0
    assert d["groups"] == 40
    same = paired_macro_f1_difference(gold, weaker, list(weaker), ["talk", "action"], groups)
    assert same["difference"] == 0.0 and same["interval"] == [0.0, 0.0]
    # the paired interval is narrower than either model's own interval
    own = macro_f1_interval(gold, weaker, ["talk", "action"], groups)
    assert own is not None
    assert d["interval"][1] - d["interval"][0] < own[1] - own[0]


def test_mean_interval_over_calls() -> None:
    from pipeline.classify.train import mean_interval

    errors = [0.01, 0.02, 0.03, 0.05, 0.08, 0.02, 0.04, 0.06]
    low, high = mean_interval(errors)
    assert low < float(np.mean(errors)) < high
    assert mean_interval(errors) == (low, high)
    assert mean_interval([0.03] * 10) == pytest.approx((0.03, 0.03))
    assert mean_interval([0.03]) is None


def test_a_figure_on_few_conversations_says_how_few() -> None:
    """A card promised "[95% interval ...]" and showed "0.642 (13)": no interval and no reason."""
    assert format_macro_f1({"macro_f1": 0.757, "macro_f1_interval": [0.712, 0.801], "interval_groups": 16,
                            "n": 1381}) == "0.757 [0.712-0.801] (1381)"
    assert format_macro_f1({"macro_f1": 0.642, "macro_f1_interval": [0.5, 0.8], "interval_groups": 2,
                            "n": 13}) == "0.642 [0.500-0.800; 2 conversations] (13)"
    assert format_macro_f1({"macro_f1": 0.642, "macro_f1_interval": None, "interval_groups": 1,
                            "n": 13}) == "0.642 [no interval: 1 conversation] (13)"
    assert format_macro_f1({"macro_f1": 0.6, "n": 3}) == "0.600 (3)"  # metrics from before the count was kept
