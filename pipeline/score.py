"""Call-level scores from classified segments (definitions: labels/taxonomy.toml, README).

All shares are shares of speech *seconds*, not of segment counts, so a long ramble
weighs more than a quick "yes, book it".
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from pipeline.classify.labels import Taxonomy
from pipeline.schema import CallScore, ClassifiedSegment, SpeakerScore

__all__ = ["score_call", "action_share", "count_fillers", "FILLERS"]

#: Segments of one speaker separated by less than this count as one monologue.
MONOLOGUE_GAP_S = 1.5
#: Filler words and phrases counted by the filler rate (lower case, punctuation ignored).
FILLERS = ("um", "umm", "uh", "uhh", "uhm", "erm", "er", "ah", "hmm", "you know", "i mean")
_FILLER_RE = re.compile(r"\b(?:" + "|".join(re.escape(f) for f in sorted(FILLERS, key=len, reverse=True)) + r")\b")


def _weight(seg: ClassifiedSegment) -> float:
    # A zero-length segment (text with no timing) still counts a little.
    return max(seg.segment.duration_s, 0.05)


def action_share(segments: Sequence[ClassifiedSegment], taxonomy: Taxonomy) -> tuple[float | None, float | None]:
    """``(action_share, talk_action_ratio)`` over segments whose stage is not neutral.

    ``action_share`` is ``None`` without such speech; the ratio is ``None`` without action
    (undefined rather than infinite, per the taxonomy).
    """
    stage, ta = taxonomy.by_role("stage"), taxonomy.by_role("talk_action")
    action_s = talk_s = 0.0
    for seg in segments:
        if stage.neutral is not None and seg.stage.label == stage.neutral:
            continue
        if seg.talk_action.label == ta.positive:
            action_s += _weight(seg)
        else:
            talk_s += _weight(seg)
    total = action_s + talk_s
    share = action_s / total if total > 0 else None
    ratio = talk_s / action_s if action_s > 0 else None
    return share, ratio


def _stage_shares(segments: Sequence[ClassifiedSegment], labels: Sequence[str]) -> dict[str, float]:
    seconds = dict.fromkeys(labels, 0.0)
    for seg in segments:
        seconds[seg.stage.label] = seconds.get(seg.stage.label, 0.0) + _weight(seg)
    total = sum(seconds.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in seconds.items()}


def _longest_monologues(ordered: Sequence[ClassifiedSegment]) -> dict[str, float]:
    """Per speaker, the speech seconds of the longest run not interrupted by another speaker.

    Consecutive segments of one speaker with pauses up to ``MONOLOGUE_GAP_S`` join a run;
    a run counts its segments' speech (the same weights as ``speech_s``), never the
    pauses, so a monologue is never longer than the speaker's speech time.
    """
    longest: dict[str, float] = defaultdict(float)
    speaker: str | None = None
    run_end = run_speech = 0.0
    for seg in ordered:
        s = seg.segment
        if s.speaker == speaker and s.start_s - run_end <= MONOLOGUE_GAP_S:
            run_speech += _weight(seg)
            run_end = max(run_end, s.end_s)
        else:
            speaker, run_end, run_speech = s.speaker, s.end_s, _weight(seg)
        longest[s.speaker] = max(longest[s.speaker], run_speech)
    return longest


def count_fillers(text: str) -> int:
    """Filler words and phrases (:data:`FILLERS`) in a text."""
    return len(_FILLER_RE.findall(re.sub(r"[^\w\s']", " ", text.lower())))


def _floor_takings(ordered: Sequence[ClassifiedSegment]) -> tuple[dict[str, int], dict[str, list[float]]]:
    """Per speaker: how often they took the floor from another speaker, and the pause before each."""
    takes: dict[str, int] = defaultdict(int)
    pauses: dict[str, list[float]] = defaultdict(list)
    previous = None
    for seg in ordered:
        s = seg.segment
        if previous is not None and s.speaker != previous.speaker:
            takes[s.speaker] += 1
            pauses[s.speaker].append(max(0.0, s.start_s - previous.end_s))
        previous = s
    return takes, pauses


def score_call(segments: Sequence[ClassifiedSegment], taxonomy: Taxonomy) -> CallScore:
    """Compute a call's scores: action share, stage mix, cycle completeness, per-speaker figures."""
    stage = taxonomy.by_role("stage")
    ordered = sorted(segments, key=lambda s: (s.segment.start_s, s.segment.index))
    cycle = [lbl for lbl in stage.labels if lbl != stage.neutral]
    share, ratio = action_share(ordered, taxonomy)
    order: list[str] = []
    for seg in ordered:
        if seg.stage.label in cycle and seg.stage.label not in order:
            order.append(seg.stage.label)
    total_s = sum(_weight(s) for s in ordered)
    by_speaker: dict[str, list[ClassifiedSegment]] = defaultdict(list)
    for seg in ordered:
        by_speaker[seg.segment.speaker].append(seg)
    monologues = _longest_monologues(ordered)
    takes, pauses = _floor_takings(ordered)
    span_min = ((max(s.segment.end_s for s in ordered) - ordered[0].segment.start_s) / 60.0) if ordered else 0.0
    per_min = span_min if span_min >= 1 / 60 else None
    speakers = []
    for name, segs in sorted(by_speaker.items()):
        speech = sum(_weight(s) for s in segs)
        spk_share, _ = action_share(segs, taxonomy)
        questions = sum(1 for s in segs if s.segment.is_question)
        n_words = sum(len(s.segment.text.split()) for s in segs)
        fillers = sum(count_fillers(s.segment.text) for s in segs)
        others = total_s - speech
        first = segs[0].segment
        speakers.append(SpeakerScore(
            speaker=name,
            speech_s=round(speech, 3),
            talk_share=speech / total_s if total_s > 0 else 0.0,
            longest_monologue_s=round(monologues[name], 3),
            questions=questions,
            n_segments=len(segs),
            action_share=spk_share,
            stage_shares=_stage_shares(segs, stage.labels),
            role=first.role,
            role_source=first.role_source,
            talk_to_listen=speech / others if others > 1e-9 else None,
            interactivity_per_min=takes[name] / per_min if per_min else None,
            patience_s=sum(pauses[name]) / len(pauses[name]) if pauses[name] else None,
            question_rate_per_min=questions / per_min if per_min else None,
            filler_rate_per_100_words=100.0 * fillers / n_words if n_words else None,
            n_words=n_words,
        ))
    return CallScore(
        speech_s=round(total_s, 3),
        n_segments=len(ordered),
        action_share=share,
        talk_action_ratio=ratio,
        stage_shares=_stage_shares(ordered, stage.labels),
        stages_present=tuple(lbl for lbl in cycle if lbl in order),
        stage_order=tuple(order),
        cycle_complete=all(lbl in order for lbl in cycle),
        speakers=tuple(speakers),
        interactivity_per_min=sum(takes.values()) / per_min if per_min else None,
    )
