"""Merge channel transcripts into speaker turns and split turns into segments.

A segment is one sentence of a turn (found by a ``spacy.blank("en")`` sentencizer at punctuation; in a
turn with no punctuation at all by the learned sentence-boundary model of
:mod:`pipeline.speech.boundaries`; and at long pauses between words); fragments
shorter than ``min_segment_words`` are merged into a neighbour so a lone "okay." does
not become a row of its own unless it is a whole turn.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import SegmentationConfig
from pipeline.schema import AsrPiece, Segment, SpokenWord, Turn
from pipeline.speech.boundaries import BoundaryModel, is_unpunctuated, load_boundary_model

__all__ = [
    "Sentencizer",
    "build_sentencizer",
    "pieces_to_turns",
    "channel_words",
    "words_to_turns",
    "segment_turns",
    "looks_like_question",
    "speaker_for_channel",
]

_QUESTION_START = re.compile(
    r"^(?:so |and |but |okay |ok |um |uh |well )*(who|what|when|where|why|how|which|whose|"
    r"can|could|would|will|should|shall|do|does|did|is|are|was|were|have|has|had|may|might|"
    r"any|anything|is there|are there)\b",
    re.IGNORECASE,
)
#: A pause between words longer than this ends a sentence when there is no punctuation.
_PAUSE_SPLIT_S = 0.8


@dataclass(frozen=True)
class Sentencizer:
    """Splits a turn's text into sentences: spaCy's rule-based sentencizer at punctuation, and, for a turn
    with no sentence punctuation at all (recognisers and caption tracks that give lower-case word
    streams), the learned sentence-boundary model (:mod:`pipeline.speech.boundaries`) when one is given.

    Attributes:
        nlp: a blank English spaCy pipeline with its ``sentencizer``.
        boundaries: the boundary model for unpunctuated turns; ``None`` keeps such a turn whole.
    """

    nlp: Any
    boundaries: BoundaryModel | None = None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``text``'s sentences as (start, end) character spans."""
        if self.boundaries is not None and is_unpunctuated(text):
            return self.boundaries.sentence_spans(text)
        doc = self.nlp(text)
        return [(s.start_char, s.end_char) for s in doc.sents if s.text.strip()]


def build_sentencizer(unpunctuated_model: bool = True, model_path: str | Path | None = None) -> Sentencizer:
    """The sentence splitter a run uses, built once per process (no downloads).

    Args:
        unpunctuated_model: load the sentence-boundary model for turns without punctuation
            (``[segmentation] unpunctuated_model``); ``False`` keeps such turns whole, as before.
        model_path: that model's folder (``[segmentation] unpunctuated_model_path``); ``None``: the shipped one.

    Raises:
        PipelineError: the boundary model's files are missing or damaged.
    """
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return Sentencizer(nlp, load_boundary_model(model_path) if unpunctuated_model else None)


def looks_like_question(text: str) -> bool:
    """True for a question mark, or a question-shaped opening when punctuation is missing."""
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith("?"):
        return True
    if stripped[-1] in ".!":
        return False
    return bool(_QUESTION_START.match(stripped))


def speaker_for_channel(channel: int, channel_speakers: Sequence[str], n_channels: int,
                        mono_speaker: str = "mixed") -> str:
    """Name of the speaker on a channel: the configured role, ``mixed`` for mono files."""
    if n_channels == 1:
        return mono_speaker
    if channel < len(channel_speakers):
        return channel_speakers[channel]
    return f"channel_{channel}"


def pieces_to_turns(pieces: Sequence[AsrPiece], speakers: dict[int, str],
                    max_gap_s: float = 1.0) -> list[Turn]:
    """Join time-ordered ASR pieces into turns.

    Consecutive pieces on the same channel, closer than ``max_gap_s`` and not
    interrupted by another channel's speech, become one turn.
    """
    ordered = sorted(pieces, key=lambda p: (p.start_s, p.channel))
    turns: list[Turn] = []
    group: list[AsrPiece] = []

    def flush() -> None:
        if not group:
            return
        words = tuple(w for p in group for w in p.words)
        total = sum(max(p.end_s - p.start_s, 1e-3) for p in group)
        conf = sum(p.confidence * max(p.end_s - p.start_s, 1e-3) for p in group) / total
        turns.append(
            Turn(
                speaker=speakers.get(group[0].channel, f"channel_{group[0].channel}"),
                channel=group[0].channel,
                start_s=group[0].start_s,
                end_s=max(p.end_s for p in group),
                text=" ".join(p.text.strip() for p in group),
                confidence=conf,
                words=words,
            )
        )
        group.clear()

    for piece in ordered:
        if group and (piece.channel != group[-1].channel or piece.start_s - group[-1].end_s > max_gap_s):
            flush()
        group.append(piece)
    flush()
    return turns


def channel_words(pieces: Sequence[AsrPiece], speakers: dict[int, str]) -> list[SpokenWord]:
    """Every recognised word of every piece, with its channel's speaker, in time order.

    Each word appears exactly once; words heard at the same moment on two channels
    (crosstalk) both stay, ordered by start time and then channel.
    """
    words = [SpokenWord(speaker=speakers.get(p.channel, f"channel_{p.channel}"), channel=p.channel,
                        word=w[0], start_s=float(w[1]), end_s=float(w[2]), probability=float(w[3]))
             for p in pieces for w in p.words]
    words.sort(key=lambda w: (w.start_s, w.channel, w.end_s))
    return words


#: A word ending like this (closing quotes or brackets allowed) ends its speaker's sentence.
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")


def _sentence_order(words: Sequence[SpokenWord], max_pause_s: float) -> list[SpokenWord]:
    """``words`` in time order by whole sentences, so a sentence is not cut by words said over it.

    One pass in time order keeps each speaker's current sentence open until it ends: at a word ending
    in ``.``, ``?`` or ``!``, at a pause longer than ``max_pause_s``, or when another speaker starts a
    word after this speaker's last word has ended (the other took the floor in a silence, which is
    turn-taking: without punctuation a speaker's "sentence" would otherwise swallow the whole dialogue).
    A word of another speaker that starts while this speaker's word is still sounding (a backchannel,
    a reply started too early) does not cut it. Sentences are then ordered by their first word.
    """
    sentences: list[list[SpokenWord]] = []
    current: dict[str, list[SpokenWord]] = {}
    for word in sorted(words, key=lambda w: (w.start_s, w.channel, w.end_s)):
        for speaker in [s for s, run in current.items() if s != word.speaker and run[-1].end_s <= word.start_s]:
            sentences.append(current.pop(speaker))
        run = current.get(word.speaker)
        if run is not None and word.start_s - run[-1].end_s > max_pause_s:
            sentences.append(current.pop(word.speaker))
        current.setdefault(word.speaker, []).append(word)
        if _SENTENCE_END.search(word.word.strip()):
            sentences.append(current.pop(word.speaker))
    sentences.extend(current.values())
    sentences.sort(key=lambda s: (s[0].start_s, s[0].channel, s[0].end_s))
    return [word for sentence in sentences for word in sentence]


def words_to_turns(words: Sequence[SpokenWord], max_pause_s: float = 1.0,
                   by_sentence: bool = False) -> list[Turn]:
    """Build turns from time-ordered words: a new turn at every speaker change or long pause.

    Recogniser segments are ignored on purpose: on one channel of a stereo call a segment
    can run across the other person's whole reply, and in a diarized mono call it can
    hold two speakers. Ordering words by start time interleaves the channels, so no
    turn swallows another speaker's; every word is kept exactly once.

    With ``by_sentence`` (channel audio, where two people can speak at once) the channels are
    interleaved by whole sentences, not words: a customer's "okay." or a sentence said over
    the rep's does not cut the rep's sentence into fragments ("... from Acme. I" | "Okay." |
    "wanted to follow up ..."); the overlapping sentence follows the one it started inside.

    Args:
        words: words with speakers (:func:`channel_words`, or diarized words).
        max_pause_s: a silence longer than this inside one speaker's speech starts a new turn.
        by_sentence: interleave speakers by sentence rather than by word.
    """
    ordered = (_sentence_order(words, max_pause_s) if by_sentence
               else sorted(words, key=lambda w: (w.start_s, w.channel, w.end_s)))
    turns: list[Turn] = []
    group: list[SpokenWord] = []

    def flush() -> None:
        if not group:
            return
        turns.append(Turn(
            speaker=group[0].speaker,
            channel=group[0].channel,
            start_s=round(group[0].start_s, 3),
            end_s=round(max(w.end_s for w in group), 3),
            text=" ".join(w.word for w in group),
            confidence=sum(w.probability for w in group) / len(group),
            words=tuple((w.word, w.start_s, w.end_s, w.probability) for w in group),
        ))
        group.clear()

    for word in ordered:
        if group and (word.speaker != group[-1].speaker
                      or word.start_s - max(w.end_s for w in group) > max_pause_s):
            flush()
        group.append(word)
    flush()
    return turns


def _word_char_spans(words: Sequence[tuple[str, float, float, float]]) -> tuple[str, list[int]]:
    """Rebuild text from words, returning it and each word's start offset."""
    offsets: list[int] = []
    parts: list[str] = []
    pos = 0
    for word, *_ in words:
        offsets.append(pos)
        parts.append(word)
        pos += len(word) + 1
    return " ".join(parts), offsets


def _pause_splits(words: Sequence[tuple[str, float, float, float]], offsets: list[int],
                  spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Further split sentence spans at long pauses between words."""
    cuts = {offsets[i] for i in range(1, len(words)) if words[i][1] - words[i - 1][2] > _PAUSE_SPLIT_S}
    result: list[tuple[int, int]] = []
    for start, end in spans:
        inner = sorted(c for c in cuts if start < c < end)
        bounds = [start, *inner, end]
        result.extend((a, b) for a, b in zip(bounds, bounds[1:]) if b > a)
    return result


def _merge_short(spans: list[tuple[int, int]], text: str, min_words: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for span in spans:
        n_words = len(text[span[0] : span[1]].split())
        if merged and n_words < min_words:
            merged[-1] = (merged[-1][0], span[1])
        elif merged and len(text[merged[-1][0] : merged[-1][1]].split()) < min_words:
            merged[-1] = (merged[-1][0], span[1])
        else:
            merged.append(span)
    return merged


def _piece_time(turn: Turn, bounds: list[int], char: int, is_end: bool) -> float:
    """The time at character ``char`` of a turn joined from timed pieces: within the piece that holds it, shared
    out by characters. A segment ending where a piece ends takes that piece's end, not the next one's start.

    ``bounds``: each piece's first character, then the text's length (a binary search, so a turn of many
    thousand cues costs no more per sentence than one of a few)."""
    k = (bisect.bisect_left if is_end else bisect.bisect_right)(bounds, char, 0, len(turn.pieces)) - 1
    k = min(max(k, 0), len(turn.pieces) - 1)
    _offset, start, end = turn.pieces[k]
    length = max(bounds[k + 1] - bounds[k] - (k + 1 < len(turn.pieces)), 1)  # the joining space is no piece's
    return start + max(end - start, 0.0) * min(max(char - bounds[k], 0), length) / length


def segment_turns(turns: Sequence[Turn], call_id: str, nlp: Sentencizer,
                  config: SegmentationConfig | None = None) -> list[Segment]:
    """Split each turn into sentence segments with their own timings.

    With word timestamps, a segment spans its first word's start to its last word's
    end; in a turn joined from subtitle cues (``turn.pieces``) each cue's time is shared out over its own
    characters; otherwise the turn's time is shared out by character count.

    Args:
        turns: speaker turns in time order.
        call_id: stamped on every segment.
        nlp: the splitter from :func:`build_sentencizer` (built once, reused).
        config: segmentation options.
    """
    cfg = config or SegmentationConfig()
    segments: list[Segment] = []
    for turn_index, turn in enumerate(turns):
        if turn.words:
            text, offsets = _word_char_spans(turn.words)
            spans = _pause_splits(turn.words, offsets, nlp.spans(text))
        else:
            text, offsets = turn.text, []
            spans = nlp.spans(text)
        bounds = [offset for offset, _start, _end in turn.pieces] + [len(turn.text)] if turn.pieces else []
        spans = _merge_short(spans, text, cfg.min_segment_words) or [(0, len(text))]
        for start_char, end_char in spans:
            piece = text[start_char:end_char].strip()
            if not piece:
                continue
            if turn.words:
                idx = [i for i, off in enumerate(offsets) if start_char <= off < end_char]
                start_s = turn.words[idx[0]][1] if idx else turn.start_s
                end_s = turn.words[idx[-1]][2] if idx else turn.end_s
                probs = [turn.words[i][3] for i in idx]
                confidence = sum(probs) / len(probs) if probs else turn.confidence
            elif turn.pieces:
                start_s, end_s = _piece_time(turn, bounds, start_char, False), _piece_time(turn, bounds, end_char, True)
                confidence = turn.confidence
            else:
                span = max(turn.end_s - turn.start_s, 0.0)
                length = max(len(text), 1)
                start_s = turn.start_s + span * start_char / length
                end_s = turn.start_s + span * end_char / length
                confidence = turn.confidence
            segments.append(
                Segment(
                    call_id=call_id,
                    index=len(segments),
                    turn_index=turn_index,
                    speaker=turn.speaker,
                    channel=turn.channel,
                    start_s=round(float(start_s), 3),
                    end_s=round(float(max(end_s, start_s)), 3),
                    text=piece,
                    confidence=None if confidence is None else float(confidence),
                    timing_estimated=turn.timing_estimated,
                    is_question=looks_like_question(piece),
                    role=turn.role,
                    role_source=turn.role_source,
                )
            )
    return segments
