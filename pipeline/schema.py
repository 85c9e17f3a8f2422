"""The typed records that pass between stages.

Each stage returns materialised lists of these frozen records, never lazy generators,
so a data scientist can inspect any intermediate result in a notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

__all__ = [
    "SourceKind",
    "Source",
    "CallMetadata",
    "AsrPiece",
    "Turn",
    "Segment",
    "Prediction",
    "ClassifiedSegment",
    "SpeakerScore",
    "CallScore",
]

SourceKind = Literal["audio", "transcript"]


@dataclass(frozen=True, slots=True)
class CallMetadata:
    """Business metadata about a call, from the ``calls.csv`` sidecar or the file name.

    ``call_id`` (optional ``calls.csv`` column) is a stable identity that survives renames.
    """

    rep: str | None = None
    customer: str | None = None
    call_date: date | None = None
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """One input file found by ingest.

    Attributes:
        path: the file.
        kind: ``audio`` or ``transcript``.
        fmt: the format, from the file extension (``wav``, ``json``, ``vtt`` ...).
        sha256: hex digest of the file's bytes; the identity of the input.
        size_bytes: file size.
        call_id: stable human-readable id (the file stem, or the JSON ``call_id``).
        metadata: rep, customer, date when known.
        source_id: the call's identity across versions of the file: the path relative to the
            folder it was found under, or ``call_id`` from ``calls.csv``; empty = use ``path``.
        mtime_ns: modification time seen when the file was fingerprinted (to notice a file
            that changes while it is processed).
    """

    path: str
    kind: SourceKind
    fmt: str
    sha256: str
    size_bytes: int
    call_id: str
    metadata: CallMetadata = field(default_factory=CallMetadata)
    source_id: str = ""
    mtime_ns: int | None = None


@dataclass(frozen=True, slots=True)
class AsrPiece:
    """One stretch of recognised speech on one channel.

    Attributes:
        channel: audio channel index.
        start_s / end_s: time in the call, seconds.
        text: recognised text.
        confidence: mean word probability in [0, 1].
        words: (word, start_s, end_s, probability) tuples when word timestamps are on.
    """

    channel: int
    start_s: float
    end_s: float
    text: str
    confidence: float
    words: tuple[tuple[str, float, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Turn:
    """What one speaker said without interruption.

    Attributes:
        speaker: speaker name (from the transcript, or the channel's role).
        channel: audio channel, ``None`` for text transcripts.
        start_s / end_s: time in the call, seconds.
        text: the words.
        confidence: ASR confidence in [0, 1]; ``None`` for text transcripts.
        timing_estimated: True when start/end were estimated from the word count.
        words: word timings, when known.
    """

    speaker: str
    channel: int | None
    start_s: float
    end_s: float
    text: str
    confidence: float | None = None
    timing_estimated: bool = False
    words: tuple[tuple[str, float, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Segment:
    """The unit that gets classified: a sentence of a turn (short fragments merged)."""

    call_id: str
    index: int
    turn_index: int
    speaker: str
    channel: int | None
    start_s: float
    end_s: float
    text: str
    confidence: float | None
    timing_estimated: bool
    is_question: bool

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


@dataclass(frozen=True, slots=True)
class Prediction:
    """One classifier's output for one text: the label and every label's probability."""

    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True, slots=True)
class ClassifiedSegment:
    """A segment with its stage and talk/action predictions."""

    segment: Segment
    stage: Prediction
    talk_action: Prediction


@dataclass(frozen=True, slots=True)
class SpeakerScore:
    """Per-speaker figures of one call."""

    speaker: str
    speech_s: float
    talk_share: float
    longest_monologue_s: float
    questions: int
    n_segments: int
    action_share: float | None
    stage_shares: dict[str, float]


@dataclass(frozen=True, slots=True)
class CallScore:
    """The call-level scores managers read (definitions in labels/taxonomy.toml and the README).

    Attributes:
        action_share: action seconds / (talk + action seconds) over non-neutral segments;
            ``None`` when there is no such speech. Computed as :data:`action_share_method` says.
        talk_action_ratio: talk seconds / action seconds; ``None`` when there is no action.
        action_share_low: lower end of the 90% interval of ``action_share``.
        action_share_high: upper end of that interval.
        action_share_method: ``expected`` (probability-weighted seconds) or ``labels``
            (seconds of the most probable labels).
        stage_shares: share of speech seconds per stage label.
        stages_present: cycle stages (non-neutral) that occur in the call.
        stage_order: the order in which cycle stages first appear.
        cycle_complete: all cycle stages are present.
        speakers: per-speaker figures.
    """

    speech_s: float
    n_segments: int
    action_share: float | None
    talk_action_ratio: float | None
    stage_shares: dict[str, float]
    stages_present: tuple[str, ...]
    stage_order: tuple[str, ...]
    cycle_complete: bool
    speakers: tuple[SpeakerScore, ...]
    action_share_low: float | None = None
    action_share_high: float | None = None
    action_share_method: str = "labels"
