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
