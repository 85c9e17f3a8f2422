"""The typed records that pass between stages.

Each stage returns materialised lists of these frozen records, never lazy generators,
so a data scientist can inspect any intermediate result in a notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

__all__ = [
    "ROLE_WORDS",
    "role_word",
    "SourceKind",
    "ROLES",
    "Source",
    "CallMetadata",
    "AsrPiece",
    "SpokenWord",
    "Turn",
    "Segment",
    "Prediction",
    "ClassifiedSegment",
    "SpeakerScore",
    "CallScore",
]

SourceKind = Literal["audio", "transcript"]

#: Speaker roles (see pipeline/speech/roles.py for how each is assigned).
ROLES = ("rep", "customer", "manager", "unknown")

#: Words people use for a role (a transcript speaker's name, a role written in the corpus or the labelled
#: calls; lower case, spaces and hyphens as ``_``) -> the role. Any other word means ``unknown``.
ROLE_WORDS: dict[str, str] = {
    "rep": "rep", "agent": "rep", "seller": "rep", "sales": "rep", "salesperson": "rep",
    "support_agent": "rep", "recruiter": "rep", "account_executive": "rep", "sales_rep": "rep",
    "sales_representative": "rep", "ae": "rep", "sdr": "rep", "bdr": "rep",  # not "account manager": either side
    "customer": "customer", "client": "customer", "caller": "customer", "prospect": "customer",
    "buyer": "customer", "partner": "customer",
    "manager": "manager", "director": "manager", "exec": "manager", "sales_manager": "manager",
}


def role_word(name: str | None) -> str | None:
    """The role a word names (:data:`ROLE_WORDS`), or ``None`` when it names none."""
    return ROLE_WORDS.get((name or "").strip().lower().replace(" ", "_").replace("-", "_"))


@dataclass(frozen=True, slots=True)
class CallMetadata:
    """Business metadata about a call, from the ``calls.csv`` sidecar or the file name.

    ``speaker_roles`` holds ``(speaker, role)`` pairs from the sidecar's optional ``speakers``
    column (``S1=rep;S2=customer`` or ``Dana=rep;Lee=manager``).
    ``call_id`` (optional ``calls.csv`` column) is a stable identity that survives renames.
    """

    rep: str | None = None
    customer: str | None = None
    call_date: date | None = None
    speaker_roles: tuple[tuple[str, str], ...] = ()
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
class SpokenWord:
    """One recognised word with its speaker (from the channel, or from diarization).

    Attributes:
        speaker: speaker name (``rep``, ``customer`` for a stereo layout; ``S1``, ``S2`` ... when diarized).
        channel: audio channel the word was heard on.
        word: the word as recognised, punctuation attached.
        start_s / end_s: time in the call, seconds.
        probability: recogniser word probability.
    """

    speaker: str
    channel: int
    word: str
    start_s: float
    end_s: float
    probability: float


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
        role: ``rep``, ``customer``, ``manager`` or ``unknown`` (``None`` before roles are assigned).
        role_source: where the role came from: ``sidecar``, ``channel``, ``name``, ``model``, ``heuristic``.
        pieces: for a turn joined from timed pieces (a speaker's subtitle cues): each piece's first character
            in ``text`` and its start and end, so a sentence takes its time from the cues it was shown in.
    """

    speaker: str
    channel: int | None
    start_s: float
    end_s: float
    text: str
    confidence: float | None = None
    timing_estimated: bool = False
    words: tuple[tuple[str, float, float, float], ...] = ()
    role: str | None = None
    role_source: str | None = None
    pieces: tuple[tuple[int, float, float], ...] = ()


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
    role: str | None = None
    role_source: str | None = None

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
    """Per-speaker figures of one call (definitions: docs/SPEAKER_FIGURES.md).

    Attributes:
        speaker: speaker name.
        speech_s: seconds of speech (sum of segment durations).
        talk_share: share of the call's speech seconds.
        longest_monologue_s: speech seconds of the longest run not interrupted by another speaker
            (pauses up to 1.5 s inside the run are not counted); never more than ``speech_s``.
        questions: segments that are questions.
        n_segments: segments spoken.
        action_share: action share of this speaker's speech (as for the call).
        stage_shares: stage mix of this speaker's speech.
        role: ``rep`` / ``customer`` / ``manager`` / ``unknown``; ``role_source`` says from where.
        talk_to_listen: own speech seconds / everyone else's speech seconds (``None`` when alone).
        interactivity_per_min: times this speaker took the floor from someone else, per minute of call.
        patience_s: average silence before taking the floor (0 for an interruption); ``None`` if never.
        question_rate_per_min: questions per minute of call.
        filler_rate_per_100_words: filler words (um, uh, erm, you know, ...) per 100 words spoken.
        n_words: words spoken.
    """

    speaker: str
    speech_s: float
    talk_share: float
    longest_monologue_s: float
    questions: int
    n_segments: int
    action_share: float | None
    stage_shares: dict[str, float]
    role: str | None = None
    role_source: str | None = None
    talk_to_listen: float | None = None
    interactivity_per_min: float | None = None
    patience_s: float | None = None
    question_rate_per_min: float | None = None
    filler_rate_per_100_words: float | None = None
    n_words: int = 0


@dataclass(frozen=True, slots=True)
class CallScore:
    """The call-level scores managers read (definitions in labels/taxonomy.toml and the README).

    Attributes:
        action_share: action seconds / (talk + action seconds) over non-neutral segments;
            ``None`` when there is no such speech. Computed as :data:`action_share_method` says.
        talk_action_ratio: talk seconds / action seconds; ``None`` when there is no action.
        action_share_low: lower end of the 90% interval of ``action_share``.
        action_share_high: upper end of that interval.
        action_share_method: ``expected`` (probability-weighted seconds), ``labels``
            (seconds of the most probable labels) or ``tempered`` (label seconds, action weighted
            by the sharpened probability; :func:`pipeline.score.tempered`).
        stage_shares: share of speech seconds per stage label.
        stages_present: cycle stages (non-neutral) that occur in the call.
        stage_order: the order in which cycle stages first appear.
        cycle_complete: all cycle stages are present.
        speakers: per-speaker figures.
        interactivity_per_min: speaker switches per minute of call (``None`` for a call under a second).
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
    interactivity_per_min: float | None = None
    action_share_low: float | None = None
    action_share_high: float | None = None
    action_share_method: str = "labels"
