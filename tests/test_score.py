"""Call scores on hand-built segments: every figure checked against arithmetic done by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.classify.labels import load_taxonomy
from pipeline.schema import ClassifiedSegment, Prediction, Segment
from pipeline.score import score_call

TAXONOMY = load_taxonomy(Path(__file__).resolve().parents[1] / "labels" / "taxonomy.toml")


def seg(i: int, speaker: str, start: float, end: float, stage: str, ta: str, question: bool = False):
    s = Segment("c", i, i, speaker, None, start, end, f"text {i}", None, False, question)
    return ClassifiedSegment(s, Prediction(stage, {stage: 1.0}), Prediction(ta, {ta: 1.0}))


def test_scores_by_speech_seconds() -> None:
    segments = [
        seg(0, "rep", 0, 2, "other", "talk"),          # 2 s small talk: excluded from action share
        seg(1, "rep", 2, 8, "align", "talk", True),     # 6 s
        seg(2, "cust", 8, 12, "align", "talk"),         # 4 s
        seg(3, "rep", 12, 15, "act", "action"),         # 3 s
        seg(4, "cust", 15, 16, "act", "action"),        # 1 s
        seg(5, "rep", 16, 22, "adjust", "talk", True),  # 6 s
    ]
    score = score_call(segments, TAXONOMY)
    assert score.speech_s == pytest.approx(22)
    assert score.action_share == pytest.approx(4 / 20)
    assert score.talk_action_ratio == pytest.approx(16 / 4)
    assert score.stage_shares == pytest.approx({"align": 10 / 22, "act": 4 / 22, "adjust": 6 / 22, "other": 2 / 22})
    assert score.stage_order == ("align", "act", "adjust")
    assert score.cycle_complete
    rep = next(s for s in score.speakers if s.speaker == "rep")
    assert rep.speech_s == pytest.approx(17)
    assert rep.talk_share == pytest.approx(17 / 22)
    assert rep.questions == 2
    assert rep.longest_monologue_s == pytest.approx(8)  # 0-8 s before the customer speaks
    assert rep.action_share == pytest.approx(3 / 15)


def test_no_action_gives_undefined_ratio_and_open_loop() -> None:
    score = score_call([seg(0, "a", 0, 5, "align", "talk"), seg(1, "b", 5, 9, "act", "talk")], TAXONOMY)
    assert score.action_share == 0.0
    assert score.talk_action_ratio is None
    assert score.stages_present == ("align", "act")
    assert not score.cycle_complete


def test_only_small_talk_has_no_action_share() -> None:
    score = score_call([seg(0, "a", 0, 5, "other", "talk")], TAXONOMY)
    assert score.action_share is None and score.talk_action_ratio is None
    assert score.stage_order == ()


def pseg(i: int, start: float, end: float, p_other: float, p_action: float) -> ClassifiedSegment:
    """A segment with probabilities: stage align vs other, talk/action."""
    s = Segment("c", i, i, "rep", None, start, end, f"text {i}", None, False, False)
    stage = Prediction("other" if p_other > 0.5 else "align",
                       {"align": 1 - p_other, "act": 0.0, "adjust": 0.0, "other": p_other})
    ta = Prediction("action" if p_action > 0.5 else "talk", {"action": p_action, "talk": 1 - p_action})
    return ClassifiedSegment(s, stage, ta)


def test_expected_action_share_by_hand() -> None:
    """Expected seconds: sum(w * P(cycle) * P(action)) / sum(w * P(cycle)), against hand arithmetic."""
    segments = [pseg(0, 0, 4, 0.0, 0.9), pseg(1, 4, 10, 0.0, 0.2), pseg(2, 10, 12, 0.5, 0.6)]
    expected = (4 * 0.9 + 6 * 0.2 + 2 * 0.5 * 0.6) / (4 + 6 + 2 * 0.5)
    score = score_call(segments, TAXONOMY, method="expected")
    assert score.action_share == pytest.approx(expected)
    assert score.action_share_method == "expected"
    # most probable labels: 4 s action, 6 s talk, the third segment (p_other 0.5 -> align) 2 s action
    labels = score_call(segments, TAXONOMY, method="labels")
    assert labels.action_share == pytest.approx(6 / 12)
    # a near-tie that flips moves the expected share a little, the label share a lot
    flipped = [pseg(0, 0, 4, 0.0, 0.9), pseg(1, 4, 10, 0.0, 0.2), pseg(2, 10, 12, 0.5, 0.4)]
    assert abs(score_call(flipped, TAXONOMY, method="expected").action_share - expected) < 0.09
    assert abs(score_call(flipped, TAXONOMY, method="labels").action_share - 6 / 12) > 0.15


def test_tempered_action_share_by_hand() -> None:
    """Tempered: cycle seconds from the stage labels, action counted by p^k / (p^k + (1-p)^k)."""
    from pipeline.score import ACTION_SHARPNESS, tempered

    assert ACTION_SHARPNESS == 3  # the numbers below are worked out for k = 3
    assert tempered(0.5) == pytest.approx(0.5) and tempered(0.0) == 0.0 and tempered(1.0) == 1.0
    assert tempered(0.9) == pytest.approx(0.729 / 0.730)  # 0.9^3 / (0.9^3 + 0.1^3)
    assert tempered(0.2) == pytest.approx(0.008 / 0.520)  # 0.2^3 / (0.2^3 + 0.8^3)
    segments = [pseg(0, 0, 4, 0.0, 0.9), pseg(1, 4, 10, 0.0, 0.2), pseg(2, 10, 12, 0.6, 0.6)]
    # the third segment is "other" by its label, so it is out of the cycle whatever its probability:
    # (4 s x 0.9986301 + 6 s x 0.0153846) / 10 s
    by_hand = 0.4086828
    score = score_call(segments, TAXONOMY, method="tempered")
    assert score.action_share == pytest.approx(by_hand) and score.action_share_method == "tempered"
    # a borderline segment re-worded from p 0.55 to 0.45 flips its label: the label share jumps by its
    # whole length, the tempered share by a fraction of it
    before = [pseg(0, 0, 4, 0.0, 0.9), pseg(1, 4, 10, 0.0, 0.2), pseg(2, 10, 14, 0.0, 0.55)]
    after = [*before[:2], pseg(2, 10, 14, 0.0, 0.45)]

    def moved(method: str) -> float:
        return abs(score_call(before, TAXONOMY, method=method).action_share
                   - score_call(after, TAXONOMY, method=method).action_share)

    assert moved("labels") == pytest.approx(4 / 14)
    assert moved("tempered") < 0.3 * moved("labels")
    with pytest.raises(ValueError, match="tempered"):
        score_call(segments, TAXONOMY, method="median")


def test_interval_contains_share_and_narrows_with_confidence() -> None:
    unsure = [pseg(i, i * 3, i * 3 + 3, 0.0, 0.5) for i in range(20)]
    sure = [pseg(i, i * 3, i * 3 + 3, 0.0, 0.999 if i % 2 else 0.001) for i in range(20)]
    for segments in (unsure, sure):
        score = score_call(segments, TAXONOMY)
        assert score.action_share_low <= score.action_share <= score.action_share_high
    from pipeline.score import action_share_interval

    def width(segments, resample):
        low, high = action_share_interval(segments, TAXONOMY, resample_segments=resample)
        return high - low

    # label draws only: 20 coin flips, sd sqrt(0.25 / 20) = 0.11, so a 90% interval is about 0.37 wide
    assert 0.25 < width(unsure, False) < 0.5 and width(sure, False) < 0.02
    # resampling which segments were said widens even a confident call
    assert width(sure, True) > 0.25
    again = score_call(unsure, TAXONOMY)
    assert (again.action_share_low, again.action_share_high) == (
        score_call(unsure, TAXONOMY).action_share_low, score_call(unsure, TAXONOMY).action_share_high)


def test_the_stored_interval_is_centred_on_the_reported_share() -> None:
    """The draws centre on the expected share (raw probabilities); the reported share is tempered, which
    sits further from 0.5. The stored interval keeps the draws' spread but around the reported share, so
    "41% ± 6" is centred on the 41%, not stretched to reach it."""
    from pipeline.score import action_share, action_share_interval

    leaning = [pseg(i, i * 3, i * 3 + 3, 0.0, 0.7 if i % 4 else 0.2) for i in range(24)]
    score = score_call(leaning, TAXONOMY)
    expected, _ = action_share(leaning, TAXONOMY, "expected")
    low, high = action_share_interval(leaning, TAXONOMY)
    assert expected is not None and low is not None and high is not None
    assert score.action_share - expected > 0.05  # tempered pulls a 0.7-leaning call away from the middle
    assert score.action_share_low == pytest.approx(low + score.action_share - expected)
    assert score.action_share_high == pytest.approx(high + score.action_share - expected)
    assert (score.action_share_high - score.action_share_low) == pytest.approx(high - low)  # no stretch


def test_stage_mix_counts_each_segment_by_its_sharpened_stage_probabilities() -> None:
    def stage_seg(i: int, start: float, end: float, probs: dict[str, float]) -> ClassifiedSegment:
        s = Segment("c", i, i, "rep", None, start, end, f"text {i}", None, False, False)
        label = max(probs, key=lambda k: probs[k])
        return ClassifiedSegment(s, Prediction(label, probs), Prediction("talk", {"talk": 1.0, "action": 0.0}))

    segments = [stage_seg(0, 0, 10, {"align": 1.0, "act": 0.0, "adjust": 0.0, "other": 0.0}),
                stage_seg(1, 10, 20, {"align": 0.6, "act": 0.4, "adjust": 0.0, "other": 0.0})]
    # borderline 10 s: align 0.6^3 / (0.6^3 + 0.4^3) = 0.216 / 0.28 of it, act the rest
    tempered = score_call(segments, TAXONOMY).stage_shares
    assert tempered["align"] == pytest.approx((10 + 10 * 0.216 / 0.28) / 20)
    assert tempered["act"] == pytest.approx(10 * 0.064 / 0.28 / 20)
    assert sum(tempered.values()) == pytest.approx(1.0)
    by_label = score_call(segments, TAXONOMY, method="labels").stage_shares
    assert by_label == pytest.approx({"align": 1.0, "act": 0.0, "adjust": 0.0, "other": 0.0})
    expected = score_call(segments, TAXONOMY, method="expected").stage_shares
    assert expected["act"] == pytest.approx(4 / 20)


def test_talk_action_ratio_is_undefined_when_only_slivers_of_action_remain() -> None:
    def pseg_ta(i: int, start: float, end: float, p_action: float) -> ClassifiedSegment:
        s = Segment("c", i, i, "rep", None, start, end, f"text {i}", None, False, False)
        return ClassifiedSegment(s, Prediction("align", {"align": 1.0, "act": 0.0, "adjust": 0.0, "other": 0.0}),
                                 Prediction("talk", {"talk": 1.0 - p_action, "action": p_action}))

    # 60 s of talk at p(action) = 0.05: tempered action = 60 * 0.05^3 / (0.05^3 + 0.95^3) = 0.0087 s
    score = score_call([pseg_ta(0, 0, 30, 0.05), pseg_ta(1, 30, 60, 0.05)], TAXONOMY)
    from pipeline.score import ACTION_SHARPNESS

    k = ACTION_SHARPNESS
    sliver = 0.05**k / (0.05**k + 0.95**k)  # the tempered action share of each second
    assert score.action_share == pytest.approx(sliver, rel=1e-9)
    assert score.talk_action_ratio is None
    # one real second of action brings the ratio back
    score = score_call([pseg_ta(0, 0, 30, 0.05), pseg_ta(1, 30, 31, 0.99)], TAXONOMY)
    assert score.talk_action_ratio is not None and score.talk_action_ratio == pytest.approx(30 / 1.0, rel=0.05)


def test_a_call_with_no_share_stores_no_interval() -> None:
    """Small talk by its labels has no action share; the draws (which use the stage probabilities) still
    find a sliver of work talk, and used to store an interval such as 0-0 beside the blank share."""
    chat = [pseg(i, i * 3, i * 3 + 3, 0.7, 0.4) for i in range(6)]
    from pipeline.score import action_share_interval

    assert action_share_interval(chat, TAXONOMY) != (None, None)  # the draws alone do give one
    score = score_call(chat, TAXONOMY)
    assert score.action_share is None
    assert score.action_share_low is None and score.action_share_high is None
