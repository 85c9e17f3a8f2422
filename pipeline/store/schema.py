"""Arrow schemas of the three output datasets, the keys that name their rows, and row builders.

Keys (see the README, "Call identity"):

- ``source_id`` is the call's identity: the input path relative to the folder (or glob root) it
  was found under, or a ``call_id`` given in ``calls.csv``. Results are stored per identity, so a
  fixed or re-exported file *replaces* its call instead of adding a second one;
- ``call_key`` is the version of that call's results: a hash of the identity, the content's
  sha256, the pipeline, ASR and classifier versions and the settings digests (segmentation options,
  sentence-boundary and role models; for audio also the ASR and diarization options and the speaker
  model). Same identity + same key = nothing to do;
- ``error_key`` names one failing input under one set of versions.

Column meanings are in :data:`COLUMN_DOCS`, rendered to docs/SCHEMA.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from pipeline import PIPELINE_VERSION
from pipeline.schema import CallScore, ClassifiedSegment, Segment, Source
from pipeline.taxonomy import Taxonomy

__all__ = [
    "SCHEMA_VERSION",
    "schema_version_of",
    "SEGMENTS_SCHEMA",
    "CALLS_SCHEMA",
    "ERRORS_SCHEMA",
    "SCHEMAS",
    "COLUMN_DOCS",
    "RunStamp",
    "source_identity",
    "identity_key",
    "call_key",
    "error_key",
    "segments_table",
    "calls_table",
    "errors_table",
    "check_table",
]

SCHEMA_VERSION = "3"
#: The Parquet schema metadata key holding a file's callcycle schema version.
VERSION_KEY = "callcycle.schema_version"


def schema_version_of(schema: pa.Schema) -> str:
    """The callcycle schema version a Parquet file's schema was written with ("" if none)."""
    return (schema.metadata or {}).get(VERSION_KEY.encode(), b"").decode("utf-8", "replace")

COLUMN_DOCS: dict[str, dict[str, str]] = {
    "segments": {
        "call_key": "Version of the call's results: hash of its identity (source_id), source sha256, pipeline, "
                    "ASR and classifier versions and the settings that shape rows (segmentation options, "
                    "sentence-boundary and role models); joins segments to their calls row.",
        "call_id": "Human-readable call id (file stem or the transcript's call_id).",
        "segment_index": "Position of the segment in the call, from 0, in time order.",
        "turn_index": "Index of the speaker turn the segment belongs to.",
        "speaker": "Speaker name (transcript name; the channel's name such as rep/customer for multi-channel "
                   "audio; S1, S2 ... in order of first speech for diarized mono audio; 'mixed' for mono audio "
                   "with diarization off).",
        "channel": "Audio channel the speech came from; null for text transcripts.",
        "start_s": "Start time in the call, seconds.",
        "end_s": "End time in the call, seconds.",
        "duration_s": "end_s - start_s, seconds.",
        "timing_estimated": "True when times were estimated from word count (150 wpm) because the transcript had none.",
        "text": "The segment's words.",
        "asr_confidence": "Mean word probability from the recogniser, 0-1; null for text transcripts.",
        "is_question": "The segment is a question (question mark, or a question-shaped opening).",
        "stage": "Predicted Cycle-of-Value stage (align, act, adjust, other).",
        "stage_confidence": "Probability of the predicted stage.",
        "stage_probs": "Probability of every stage label.",
        "talk_action": "Predicted talk or action (a neutral-stage segment is always talk).",
        "action_prob": "Probability that the segment is action, from the talk/action model.",
        "role": "Speaker's role: rep, customer, manager or unknown.",
        "role_source": "Where the role came from: sidecar (calls.csv speakers map or rep name), channel (channel "
                       "layout), name (transcript speaker called rep/customer/..., or 'Lee (customer):'), "
                       "model (the role model, models/roles/, read from what the speaker said), heuristic (most "
                       "questions = rep; "
                       "when the role model is off, and for a lone speaker).",
        "source_sha256": "sha256 of the input file's bytes.",
    },
    "calls": {
        "call_key": "Version of the call's results (see segments); the one row per source_id carries the newest.",
        "call_id": "Human-readable call id.",
        "source_id": "The call's identity: input path relative to the folder it was found under, or the call_id "
                     "column of calls.csv. One row per source_id: a changed file replaces its call.",
        "source_path": "Input file path as given.",
        "source_sha256": "sha256 of the input file's bytes.",
        "source_kind": "audio or transcript.",
        "source_format": "File format from the extension (wav, mp3, json, vtt ...).",
        "rep": "Sales rep, from calls.csv or the file-name convention; null when unknown.",
        "customer": "Customer, from calls.csv or the file-name convention; null when unknown.",
        "call_date": "Date of the call; null when unknown.",
        "audio_duration_s": "Length of the recording, seconds; null for transcripts.",
        "speech_s": "Seconds of classified speech (sum of segment durations).",
        "n_segments": "Number of segments.",
        "n_speakers": "Number of distinct speakers.",
        "timing_estimated": "True when any segment's timing was estimated.",
        "action_share": "Action seconds / (talk + action seconds) over non-'other' segments; null without such speech.",
        "action_share_low": ("Lower end of the 90% interval of action_share (Monte Carlo over the segments' label "
                             "probabilities); null when action_share is (rows from callcycle before 2026-12-07 may "
                             "hold 0 there, which readers ignore)."),
        "action_share_high": "Upper end of the 90% interval of action_share; null when action_share is.",
        "action_share_method": ("How action_share was computed: 'expected' (probability-weighted seconds), "
                                "'labels' (most probable labels) or 'tempered' (label seconds, action weighted by "
                                "the sharpened probability p^k/(p^k+(1-p)^k), k = pipeline.score.ACTION_SHARPNESS)."),
        "talk_action_ratio": ("Talk seconds / action seconds over the same segments; null when there is no "
                              "action (less than pipeline.score.MIN_ACTION_S = 0.5 s of it)."),
        "stage_shares": ("Share of speech seconds per stage label; each segment counts by its stage "
                         "probabilities sharpened like the action share's (`action_share_method` tempered), "
                         "or by its label (labels)."),
        "stages_present": "Cycle stages (not 'other') that occur in the call.",
        "stage_order": "Cycle stages in order of first appearance.",
        "cycle_complete": "True when align, act and adjust all occur.",
        "speakers": "Per speaker (definitions in docs/SPEAKER_FIGURES.md): speech seconds, share of speaking "
                    "time, longest monologue (speech seconds), questions asked, segments, action share, stage "
                    "shares, role and its source, talk-to-listen ratio, interactivity (floor takings per minute), "
                    "patience (mean pause before taking the floor, s), question rate per minute, filler rate per "
                    "100 words, words.",
        "interactivity_per_min": "Speaker switches per minute of call; null for calls under a second.",
        "asr_model": "Speech model used; null for transcripts.",
        "classifier_version": "Version of the classifier artifact.",
        "taxonomy": "Taxonomy name and version.",
        "pipeline_version": "callcycle pipeline version.",
        "processing_s": ("Wall seconds spent on this call (for a call classified again from its stored segments "
                         "after a new classifier, only that)."),
        "processed_at": "When the row was written (UTC).",
    },
    "errors": {
        "error_key": "Hash of source_id, source sha256 and versions.",
        "source_id": "Identity of the failing input (see calls); its error row is replaced or cleared when "
                     "the file is fixed.",
        "source_path": "Input file path as given.",
        "source_sha256": "sha256 of the file's bytes; null when it could not be read.",
        "step": ("Pipeline step that failed: discover, ingest, decode, parse, transcribe, diarize, segment, roles, "
                 "classify, store, worker (scoring the file took its worker process down), or internal (an "
                 "unexpected error: a bug to report)."),
        "error_type": "Error class name.",
        "message": "What went wrong.",
        "hint": "What to do about it.",
        "attempts": "How many times the input was tried.",
        "pipeline_version": "callcycle pipeline version.",
        "occurred_at": "When the error was recorded (UTC).",
    },
}

_PROBS = pa.map_(pa.string(), pa.float32())
_SPEAKER = pa.struct([
    pa.field("speaker", pa.string(), nullable=False),
    pa.field("speech_s", pa.float64()),
    pa.field("talk_share", pa.float64()),
    pa.field("longest_monologue_s", pa.float64()),
    pa.field("questions", pa.int32()),
    pa.field("n_segments", pa.int32()),
    pa.field("action_share", pa.float64()),
    pa.field("stage_shares", pa.map_(pa.string(), pa.float64())),
    pa.field("role", pa.string()),
    pa.field("role_source", pa.string()),
    pa.field("talk_to_listen", pa.float64()),
    pa.field("interactivity_per_min", pa.float64()),
    pa.field("patience_s", pa.float64()),
    pa.field("question_rate_per_min", pa.float64()),
    pa.field("filler_rate_per_100_words", pa.float64()),
    pa.field("n_words", pa.int32()),
])


def _schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    docs = COLUMN_DOCS[name]
    missing = {f.name for f in fields} ^ set(docs)
    if missing:  # a check of this module itself, kept under python -O
        raise RuntimeError(f"undocumented or stale columns in {name}: {missing}")
    return pa.schema(
        [f.with_metadata({"description": docs[f.name]}) for f in fields],
        metadata={VERSION_KEY: SCHEMA_VERSION, "callcycle.table": name},
    )


SEGMENTS_SCHEMA = _schema("segments", [
    pa.field("call_key", pa.string(), nullable=False),
    pa.field("call_id", pa.string(), nullable=False),
    pa.field("segment_index", pa.int32(), nullable=False),
    pa.field("turn_index", pa.int32(), nullable=False),
    pa.field("speaker", pa.string(), nullable=False),
    pa.field("channel", pa.int16()),
    pa.field("start_s", pa.float64(), nullable=False),
    pa.field("end_s", pa.float64(), nullable=False),
    pa.field("duration_s", pa.float64(), nullable=False),
    pa.field("timing_estimated", pa.bool_(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("asr_confidence", pa.float32()),
    pa.field("is_question", pa.bool_(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("stage_confidence", pa.float32(), nullable=False),
    pa.field("stage_probs", _PROBS),
    pa.field("talk_action", pa.string(), nullable=False),
    pa.field("action_prob", pa.float32(), nullable=False),
    pa.field("source_sha256", pa.string(), nullable=False),
    pa.field("role", pa.string()),
    pa.field("role_source", pa.string()),
])

CALLS_SCHEMA = _schema("calls", [
    pa.field("call_key", pa.string(), nullable=False),
    pa.field("call_id", pa.string(), nullable=False),
    pa.field("source_id", pa.string(), nullable=False),
    pa.field("source_path", pa.string(), nullable=False),
    pa.field("source_sha256", pa.string(), nullable=False),
    pa.field("source_kind", pa.string(), nullable=False),
    pa.field("source_format", pa.string(), nullable=False),
    pa.field("rep", pa.string()),
    pa.field("customer", pa.string()),
    pa.field("call_date", pa.date32()),
    pa.field("audio_duration_s", pa.float64()),
    pa.field("speech_s", pa.float64(), nullable=False),
    pa.field("n_segments", pa.int32(), nullable=False),
    pa.field("n_speakers", pa.int32(), nullable=False),
    pa.field("timing_estimated", pa.bool_(), nullable=False),
    pa.field("action_share", pa.float64()),
    pa.field("action_share_low", pa.float64()),
    pa.field("action_share_high", pa.float64()),
    pa.field("action_share_method", pa.string()),
    pa.field("talk_action_ratio", pa.float64()),
    pa.field("stage_shares", pa.map_(pa.string(), pa.float64())),
    pa.field("stages_present", pa.list_(pa.string())),
    pa.field("stage_order", pa.list_(pa.string())),
    pa.field("cycle_complete", pa.bool_(), nullable=False),
    pa.field("speakers", pa.list_(_SPEAKER)),
    pa.field("interactivity_per_min", pa.float64()),
    pa.field("asr_model", pa.string()),
    pa.field("classifier_version", pa.string(), nullable=False),
    pa.field("taxonomy", pa.string(), nullable=False),
    pa.field("pipeline_version", pa.string(), nullable=False),
    pa.field("processing_s", pa.float64()),
    pa.field("processed_at", pa.timestamp("us", tz="UTC"), nullable=False),
])

ERRORS_SCHEMA = _schema("errors", [
    pa.field("error_key", pa.string(), nullable=False),
    pa.field("source_id", pa.string(), nullable=False),
    pa.field("source_path", pa.string(), nullable=False),
    pa.field("source_sha256", pa.string()),
    pa.field("step", pa.string(), nullable=False),
    pa.field("error_type", pa.string(), nullable=False),
    pa.field("message", pa.string(), nullable=False),
    pa.field("hint", pa.string()),
    pa.field("attempts", pa.int32(), nullable=False),
    pa.field("pipeline_version", pa.string(), nullable=False),
    pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
])

SCHEMAS = {"segments": SEGMENTS_SCHEMA, "calls": CALLS_SCHEMA, "errors": ERRORS_SCHEMA}


@dataclass(frozen=True, slots=True)
class RunStamp:
    """Versions stamped on every row of a run."""

    classifier_version: str
    taxonomy: str
    asr_model: str | None
    pipeline_version: str = PIPELINE_VERSION
    settings: str = ""
    """Digest of what else shapes a call's rows: the segmentation options and the sentence-boundary and role
    models in use (:func:`pipeline.process.row_settings`). Part of the version key, not a column."""
    speech: str = ""
    """Digest of what shapes an audio call's words and speakers besides the ASR model's name: the ASR and
    diarization options, the channel roles and the speaker model (:func:`pipeline.process.speech_settings`).
    Part of an audio call's version key (not of a transcript's), not a column."""
    started_at: float = dataclasses.field(default=0.0, compare=False)
    """When the run began, in seconds since the epoch (``0``: not known). Under ``--force`` a call whose current
    rows were committed well after it (:data:`pipeline.process.FORCE_CLOCK_MARGIN_S`) was scored while this run
    ran, by another run on the same output or an earlier attempt of one of this run's tasks, and is not scored
    again (:func:`pipeline.process.check_done`). Neither key nor column."""


def source_identity(source: Source) -> str:
    """The call's identity: ``source.source_id`` when discovery set one, else the path as given."""
    return source.source_id or source.path


def identity_key(source_id: str) -> str:
    """File-name-safe key of an identity: the stem of its ``calls``/``segments``/``errors`` files."""
    return hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:32]


def call_key(source_sha256: str, stamp: RunStamp, kind: str, source_id: str = "") -> str:
    """Version key of one call's results: same identity + same bytes + same versions and settings = same key."""
    asr = f"{stamp.asr_model}|{stamp.speech}" if kind == "audio" else "-"
    raw = f"{source_sha256}|{stamp.pipeline_version}|{asr}|{stamp.classifier_version}|{stamp.settings}"
    if source_id:
        raw = f"{source_id}|{raw}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def error_key(source_id: str, source_sha256: str | None, stamp: RunStamp) -> str:
    """Key of one failing input under one set of versions."""
    raw = (f"{source_id}|{source_sha256 or '-'}|{stamp.pipeline_version}|{stamp.asr_model}|{stamp.speech}|"
           f"{stamp.classifier_version}|{stamp.settings}")
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _struct_of(kind: pa.DataType) -> pa.StructType | None:
    """The struct type of a struct column or of a list-of-structs column, else ``None``."""
    if pa.types.is_struct(kind):
        return kind
    if pa.types.is_list(kind) and pa.types.is_struct(kind.value_type):
        return kind.value_type
    return None


def updated_calls_row(row: dict[str, Any], changes: dict[str, Any]) -> pa.Table:
    """A stored ``calls`` row with ``changes`` applied, as a one-row table of :data:`CALLS_SCHEMA`; a changed
    column the schema does not have is refused (:func:`check_table`), on every backend alike."""
    return check_table({name: [row.get(name)] for name in CALLS_SCHEMA.names} | {k: [v] for k, v in changes.items()},
                       CALLS_SCHEMA)


def check_table(rows: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """``rows`` (column -> values) as a table of ``schema``, refusing a missing or unknown column and a
    struct value (e.g. a ``speakers`` entry) with missing or unknown fields: Arrow would silently drop
    unknown fields and fill missing ones with nulls.

    Raises:
        ValueError: the columns or a struct's fields do not match the schema.
    """
    if set(rows) != set(schema.names):
        raise ValueError(f"columns {sorted(set(rows) ^ set(schema.names))} do not match the schema")
    for field in schema:
        struct = _struct_of(field.type)
        if struct is None:
            continue
        wanted = {struct.field(i).name for i in range(struct.num_fields)}
        for value in rows[field.name]:
            for item in ([] if value is None else value if pa.types.is_list(field.type) else [value]):
                if isinstance(item, dict) and set(item) != wanted:
                    raise ValueError(f"column {field.name!r}: fields {sorted(set(item) ^ wanted)} do not match "
                                     "the schema")
    return pa.Table.from_pydict(rows, schema=schema)


def segment_of_row(row: dict[str, Any], call_id: str) -> Segment:
    """The :class:`~pipeline.schema.Segment` a ``segments`` row was written from (:func:`segments_table`
    the other way round; its classification is left out). Kept beside it so a new field is mapped both ways."""
    return Segment(call_id=call_id, index=row["segment_index"], turn_index=row["turn_index"],
                   speaker=row["speaker"], channel=row["channel"], start_s=row["start_s"], end_s=row["end_s"],
                   text=row["text"], confidence=row["asr_confidence"], timing_estimated=row["timing_estimated"],
                   is_question=row["is_question"], role=row["role"], role_source=row["role_source"])


def segments_table(key: str, source: Source, call_id: str, segments: Sequence[ClassifiedSegment],
                   taxonomy: Taxonomy) -> pa.Table:
    """Rows of the ``segments`` dataset for one call."""
    positive = taxonomy.by_role("talk_action").positive
    cols: dict[str, list[Any]] = {name: [] for name in SEGMENTS_SCHEMA.names}
    for cs in segments:
        s = cs.segment
        cols["call_key"].append(key)
        cols["call_id"].append(call_id)
        cols["segment_index"].append(s.index)
        cols["turn_index"].append(s.turn_index)
        cols["speaker"].append(s.speaker)
        cols["channel"].append(s.channel)
        cols["start_s"].append(s.start_s)
        cols["end_s"].append(s.end_s)
        cols["duration_s"].append(round(s.duration_s, 3))
        cols["timing_estimated"].append(s.timing_estimated)
        cols["text"].append(s.text)
        cols["asr_confidence"].append(s.confidence)
        cols["is_question"].append(s.is_question)
        cols["stage"].append(cs.stage.label)
        cols["stage_confidence"].append(cs.stage.probabilities[cs.stage.label])
        cols["stage_probs"].append(list(cs.stage.probabilities.items()))
        cols["talk_action"].append(cs.talk_action.label)
        cols["action_prob"].append(cs.talk_action.probabilities.get(positive or "", 0.0))
        cols["source_sha256"].append(source.sha256)
        cols["role"].append(s.role)
        cols["role_source"].append(s.role_source)
    return check_table(cols, SEGMENTS_SCHEMA)


def calls_table(key: str, source: Source, call_id: str, score: CallScore, stamp: RunStamp,
                audio_duration_s: float | None, timing_estimated: bool, processing_s: float) -> pa.Table:
    """The one-row ``calls`` table for a scored call."""
    meta = source.metadata
    row: dict[str, list[Any]] = {
        "call_key": [key], "call_id": [call_id], "source_id": [source_identity(source)],
        "source_path": [source.path],
        "source_sha256": [source.sha256], "source_kind": [source.kind], "source_format": [source.fmt],
        "rep": [meta.rep], "customer": [meta.customer], "call_date": [meta.call_date],
        "audio_duration_s": [audio_duration_s], "speech_s": [score.speech_s],
        "n_segments": [score.n_segments], "n_speakers": [len(score.speakers)],
        "timing_estimated": [timing_estimated], "action_share": [score.action_share],
        "action_share_low": [score.action_share_low], "action_share_high": [score.action_share_high],
        "action_share_method": [score.action_share_method],
        "talk_action_ratio": [score.talk_action_ratio],
        "stage_shares": [list(score.stage_shares.items())],
        "stages_present": [list(score.stages_present)], "stage_order": [list(score.stage_order)],
        "cycle_complete": [score.cycle_complete],
        "speakers": [[{
            "speaker": sp.speaker, "speech_s": sp.speech_s, "talk_share": sp.talk_share,
            "longest_monologue_s": sp.longest_monologue_s, "questions": sp.questions,
            "n_segments": sp.n_segments, "action_share": sp.action_share,
            "stage_shares": list(sp.stage_shares.items()),
            "role": sp.role, "role_source": sp.role_source, "talk_to_listen": sp.talk_to_listen,
            "interactivity_per_min": sp.interactivity_per_min, "patience_s": sp.patience_s,
            "question_rate_per_min": sp.question_rate_per_min,
            "filler_rate_per_100_words": sp.filler_rate_per_100_words, "n_words": sp.n_words,
        } for sp in score.speakers]],
        "interactivity_per_min": [score.interactivity_per_min],
        "asr_model": [stamp.asr_model if source.kind == "audio" else None],
        "classifier_version": [stamp.classifier_version], "taxonomy": [stamp.taxonomy],
        "pipeline_version": [stamp.pipeline_version], "processing_s": [round(processing_s, 3)],
        "processed_at": [datetime.now(UTC)],
    }
    return check_table(row, CALLS_SCHEMA)


def errors_table(key: str, source_path: str, source_sha256: str | None, step: str, error_type: str,
                 message: str, hint: str, attempts: int, stamp: RunStamp, source_id: str = "") -> pa.Table:
    """The one-row ``errors`` table for a failed input."""
    row: dict[str, list[Any]] = {
        "error_key": [key], "source_id": [source_id or source_path], "source_path": [source_path],
        "source_sha256": [source_sha256],
        "step": [step], "error_type": [error_type], "message": [message], "hint": [hint or None],
        "attempts": [attempts], "pipeline_version": [stamp.pipeline_version],
        "occurred_at": [datetime.now(UTC)],
    }
    return check_table(row, ERRORS_SCHEMA)


