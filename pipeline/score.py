"""Call-level scores from classified segments (definitions: labels/taxonomy.toml, README).

All shares are shares of speech *seconds*, not of segment counts, so a long ramble
weighs more than a quick "yes, book it".

A call's action share can be computed three ways (:data:`ACTION_SHARE_METHOD`): ``labels``
counts the seconds of each segment's most probable labels; ``expected`` weighs each segment's
seconds by the probability that it is cycle speech and action; ``tempered`` (the default) takes
the cycle seconds from the stage labels and counts each segment's action by its sharpened
probability p^k / (p^k + (1-p)^k), k = :data:`ACTION_SHARPNESS`. Measured on the 28 labelled
calls (``callcycle evaluate-calls``, model 033412Z): mean absolute error 0.063 tempered, 0.067
labels, 0.094 expected (the classifiers, balanced to find loosely phrased real-speech
commitments, put action probabilities too high on written calls). Tempered is also steadier:
with labels a borderline segment whose wording changes by one word flips and moves a 2-minute
call's share by its whole length; tempered moves it by a fraction (BENCHMARKS.md, stability).
With model 001830Z the labels are a little closer on the labelled calls (0.040 against 0.043
tempered, 0.053 expected) and far less steady under inaudible noise (largest spread over the
four stability calls 14.1 points against 6.7; expected 4.4), so tempered stays the default; with
model 230619Z the two are level there (0.036 labels, 0.037 tempered, 0.047 expected), and with
081718Z tempered is closer again (0.035 tempered, 0.038 labels, 0.047 expected).
The stage mix follows the same method: with ``tempered`` each segment counts towards every stage
by its stage probabilities sharpened the same way, p_c^k / sum_j p_j^k (with ``labels``, wholly
towards its label). On the 28 labelled calls (model 085038Z) that lowered the stage-mix error from
0.091 to 0.087, and on the four stability calls the stage-mix spread under inaudible noise from
7.5 / 15.1 / 19.2 / 21.7 to 3.7 / 13.1 / 10.4 / 16.5 points (BENCHMARKS.md).
Every score comes with a 90% interval from a Monte Carlo:
resample the segments with replacement (which utterances happened to be said) and draw each
one's labels from its probabilities (what the classifiers are unsure of). On the labelled
calls that interval held the gold share in 86% of calls; label draws alone held it in 43%.
The draws centre on the expected share; the stored interval keeps their spread around the
share reported (tempered), clipped to [0, 1]. With model 001830Z on the 28 labelled calls
(``callcycle evaluate-calls labels/calls --json``) that held the gold share in 27 of 28, as
stretching the draws' interval to reach the reported share did, at a mean width of 0.308
against 0.312, and lopsided by 2 points or more on 10 calls against 20.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from pipeline.schema import CallScore, ClassifiedSegment, SpeakerScore
from pipeline.taxonomy import Taxonomy

__all__ = ["score_call", "action_share", "action_share_interval", "count_fillers", "tempered",
           "ACTION_SHARE_METHOD", "ACTION_SHARE_METHODS", "ACTION_SHARPNESS", "INTERVAL_LEVEL", "FILLERS",
           "MIN_ACTION_S"]

#: How a call's action share is computed (see :func:`action_share`).
ACTION_SHARE_METHODS = ("labels", "expected", "tempered")
#: ``expected`` (probability-weighted seconds), ``labels`` (seconds of the most probable labels) or
#: ``tempered`` (label seconds, each segment's action counted by its sharpened probability).
ACTION_SHARE_METHOD = "tempered"
#: Exponent k of the ``tempered`` method: a segment counts p^k / (p^k + (1-p)^k) of its seconds as
#: action (k = 1 is the probability itself, k -> infinity the most probable label).
ACTION_SHARPNESS = 3.0
#: Fewer action seconds than this count as no action for the talk : action ratio (which is then
#: undefined, per the taxonomy): with probability-weighted shares every segment contributes a
#: sliver of action, and a call with none would otherwise report a ratio like 17,000.
MIN_ACTION_S = 0.5
#: Coverage of the interval stored with every action share.
INTERVAL_LEVEL = 0.9
#: Monte Carlo draws for the interval.
INTERVAL_DRAWS = 400
#: Whether the interval also resamples the segments (sampling variation of the conversation)
#: or only draws labels from the classifiers' probabilities (measurement uncertainty).
INTERVAL_RESAMPLES_SEGMENTS = True

#: Segments of one speaker separated by less than this count as one monologue.
MONOLOGUE_GAP_S = 1.5
#: Filler words and phrases counted by the filler rate (lower case, punctuation ignored).
FILLERS = ("um", "umm", "uh", "uhh", "uhm", "erm", "er", "ah", "hmm", "you know", "i mean")
_FILLER_RE = re.compile(r"\b(?:" + "|".join(re.escape(f) for f in sorted(FILLERS, key=len, reverse=True)) + r")\b")


def _weight(seg: ClassifiedSegment) -> float:
    # A zero-length segment (text with no timing) still counts a little.
    return max(seg.segment.duration_s, 0.05)


def tempered(p: float, sharpness: float = ACTION_SHARPNESS) -> float:
    """``p^k / (p^k + (1-p)^k)``: a probability pushed towards 0 or 1 around 0.5, continuously.

    A segment the classifier is sure of counts (almost) whole; one near 0.5 counts about half
    instead of all or nothing, so a re-worded borderline segment moves the share a little, not
    by its whole length.
    """
    p = min(max(float(p), 0.0), 1.0)
    a, b = p ** sharpness, (1.0 - p) ** sharpness
    return a / (a + b) if a + b > 0 else 0.5


def _cycle_and_action(segments: Sequence[ClassifiedSegment], taxonomy: Taxonomy,
                      method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per segment: seconds, P(stage is not neutral), P(action).

    With ``method="labels"`` (or where a prediction carries no probabilities, as gold labels
    don't) the probabilities are 0 or 1 from the labels; ``tempered`` takes the stage from the
    label and P(action) from :func:`tempered`.
    """
    stage, ta = taxonomy.by_role("stage"), taxonomy.by_role("talk_action")
    n = len(segments)
    weights, p_cycle, p_action = np.zeros(n), np.zeros(n), np.zeros(n)
    for i, seg in enumerate(segments):
        weights[i] = _weight(seg)
        is_other = stage.neutral is not None and seg.stage.label == stage.neutral
        if method == "expected" and seg.stage.probabilities and stage.neutral is not None:
            p_cycle[i] = 1.0 - float(seg.stage.probabilities.get(stage.neutral, 0.0))
        else:
            p_cycle[i] = 0.0 if is_other else 1.0
        if method == "expected" and seg.talk_action.probabilities:
            p_action[i] = float(seg.talk_action.probabilities.get(str(ta.positive), 0.0))
        elif method == "tempered" and seg.talk_action.probabilities:
            p_action[i] = tempered(seg.talk_action.probabilities.get(str(ta.positive), 0.0))
        else:
            p_action[i] = 1.0 if seg.talk_action.label == ta.positive else 0.0
    return weights, p_cycle, p_action


def action_share(segments: Sequence[ClassifiedSegment], taxonomy: Taxonomy,
                 method: str = ACTION_SHARE_METHOD) -> tuple[float | None, float | None]:
    """``(action_share, talk_action_ratio)`` over segments whose stage is not neutral.

    ``method`` is ``expected`` (seconds weighted by the probabilities), ``labels`` (the
    most probable labels' seconds) or ``tempered`` (cycle seconds from the stage labels, each
    weighted by the tempered action probability). ``action_share`` is ``None`` without cycle
    speech; the ratio is ``None`` with less than :data:`MIN_ACTION_S` of action (undefined rather
    than infinite, per the taxonomy).
    """
    if method not in ACTION_SHARE_METHODS:
        raise ValueError(f"unknown action-share method {method!r}; use one of {', '.join(ACTION_SHARE_METHODS)}")
    weights, p_cycle, p_action = _cycle_and_action(segments, taxonomy, method)
    cycle_s = weights * p_cycle
    action_s = float((cycle_s * p_action).sum())
    talk_s = float((cycle_s * (1.0 - p_action)).sum())
    total = action_s + talk_s
    share = action_s / total if total > 1e-9 else None
    ratio = talk_s / action_s if action_s >= MIN_ACTION_S else None
    return share, ratio


def action_share_interval(segments: Sequence[ClassifiedSegment], taxonomy: Taxonomy,
                          level: float = INTERVAL_LEVEL, draws: int = INTERVAL_DRAWS,
                          seed: int | None = None,
                          resample_segments: bool = INTERVAL_RESAMPLES_SEGMENTS) -> tuple[float | None, float | None]:
    """A ``level`` interval for the call's action share (``(None, None)`` without cycle speech).

    Each draw takes every segment's stage and talk/action from its calibrated probabilities
    (what the classifiers are unsure of) and, with ``resample_segments``, also resamples the
    segments with replacement (which utterances happened to be said); the interval is the
    central ``level`` of the draws' shares. The seed defaults to one derived from the
    segments' texts, so a call's interval is reproducible.
    """
    n = len(segments)
    if n == 0:
        return None, None
    weights, p_cycle, p_action = _cycle_and_action(segments, taxonomy, "expected")
    if seed is None:
        digest = hashlib.sha256("\x1f".join(s.segment.text for s in segments).encode("utf-8")).digest()
        seed = int.from_bytes(digest[:8], "little")
    rng = np.random.default_rng(seed)
    # draws in blocks so memory stays O(block x segments) on very long calls
    block = max(1, min(draws, 2_000_000 // max(n, 1)))
    shares_list: list[np.ndarray] = []
    for begin in range(0, draws, block):
        size = min(block, draws - begin)
        pick = rng.integers(0, n, size=(size, n)) if resample_segments else np.broadcast_to(np.arange(n), (size, n))
        cycle = rng.random((size, n)) < p_cycle[pick]
        action = rng.random((size, n)) < p_action[pick]
        w = weights[pick] * cycle
        total = w.sum(axis=1)
        valid = total > 1e-9
        shares_list.append((w * action).sum(axis=1)[valid] / total[valid])
    shares = np.concatenate(shares_list)
    if not len(shares):
        return None, None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(shares, [tail, 1.0 - tail])
    return float(low), float(high)


def _stage_weights(seg: ClassifiedSegment, labels: Sequence[str], method: str) -> dict[str, float]:
    """How much of a segment counts towards each stage: its label (``labels``, or a prediction
    without probabilities), its probabilities (``expected``) or its probabilities sharpened like
    the action share's, p_c^k / sum_j p_j^k (``tempered``)."""
    probs = seg.stage.probabilities
    if method == "labels" or not probs:
        return {seg.stage.label: 1.0}
    p = np.asarray([max(float(probs.get(lbl, 0.0)), 0.0) for lbl in labels])
    if method == "tempered":
        p = p ** ACTION_SHARPNESS
    total = float(p.sum())
    return {lbl: float(v) / total for lbl, v in zip(labels, p)} if total > 0 else {seg.stage.label: 1.0}


def _stage_shares(segments: Sequence[ClassifiedSegment], labels: Sequence[str],
                  method: str) -> dict[str, float]:
    """Each stage's share of the speech seconds; a segment counts as :func:`_stage_weights` says."""
    seconds = dict.fromkeys(labels, 0.0)
    for seg in segments:
        for lbl, part in _stage_weights(seg, labels, method).items():
            seconds[lbl] = seconds.get(lbl, 0.0) + part * _weight(seg)
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


def score_call(segments: Sequence[ClassifiedSegment], taxonomy: Taxonomy,
               method: str = ACTION_SHARE_METHOD) -> CallScore:
    """Compute a call's scores: action share (with its interval), stage mix, cycle completeness,
    per-speaker figures. ``method`` as in :func:`action_share`."""
    stage = taxonomy.by_role("stage")
    ordered = sorted(segments, key=lambda s: (s.segment.start_s, s.segment.index))
    cycle = [lbl for lbl in stage.labels if lbl != stage.neutral]
    share, ratio = action_share(ordered, taxonomy, method)
    low, high = action_share_interval(ordered, taxonomy)
    if share is not None and low is not None and high is not None:
        # the draws spread around the expected share; the interval keeps that spread around the share
        # reported (tempered by default), clipped to [0, 1], so "41% ± 6" is centred on the 41%
        centre, _ = action_share(ordered, taxonomy, "expected")
        if centre is not None:
            low, high = max(0.0, low - centre + share), min(1.0, high - centre + share)
        low, high = min(low, share), max(high, share)
    elif share is None:
        # no cycle speech by the labels: no share, so no interval (the draws, which use the stage
        # probabilities, could still find a sliver of work talk and store 0-0 or 0-1 beside a blank share)
        low = high = None
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
        questions = sum(1 for s in segs if s.segment.is_question)
        n_words = sum(len(s.segment.text.split()) for s in segs)
        fillers = sum(count_fillers(s.segment.text) for s in segs)
        others = total_s - speech
        first = segs[0].segment
        spk_share, _ = action_share(segs, taxonomy, method)
        speakers.append(SpeakerScore(
            speaker=name,
            speech_s=round(speech, 3),
            talk_share=speech / total_s if total_s > 0 else 0.0,
            longest_monologue_s=round(monologues[name], 3),
            questions=questions,
            n_segments=len(segs),
            action_share=spk_share,
            stage_shares=_stage_shares(segs, stage.labels, method),
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
        stage_shares=_stage_shares(ordered, stage.labels, method),
        stages_present=tuple(lbl for lbl in cycle if lbl in order),
        stage_order=tuple(order),
        cycle_complete=all(lbl in order for lbl in cycle),
        speakers=tuple(speakers),
        interactivity_per_min=sum(takes.values()) / per_min if per_min else None,
        action_share_low=low,
        action_share_high=high,
        action_share_method=method,
    )
