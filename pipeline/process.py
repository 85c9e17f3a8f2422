"""One input file through every stage, as plain functions (no Prefect needed).

``read_call`` turns a source into speaker turns (decode + transcribe for audio, parse
for transcripts); ``score_turns`` segments, classifies and scores them; ``build_tables``
makes the Parquet rows; :func:`process_source` composes all of it and writes the
result, which is what a notebook user or the Prefect flow calls per file.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from pipeline.classify.artifacts import Artifact
from pipeline.classify.labels import Taxonomy
from pipeline.classify.predict import classify_segments
from pipeline.config import PipelineConfig
from pipeline.errors import EmptyAudioError, PipelineError, TranscriptFormatError
from pipeline.ingest.transcripts import parse_transcript
from pipeline.schema import CallScore, ClassifiedSegment, Source, Turn
from pipeline.score import score_call
from pipeline.speech.diarize import SpeakerModel, assign_words, diarize_file, load_speaker_model
from pipeline.speech.roles import assign_roles
from pipeline.speech.transcribe import AsrModel, TranscribedFile, transcribe_file
from pipeline.speech.turns import channel_words, pieces_to_turns, segment_turns, speaker_for_channel, words_to_turns
from pipeline.store import local as store

__all__ = [
    "CallInput",
    "ScoredCall",
    "Outcome",
    "read_call",
    "score_turns",
    "build_tables",
    "record_failure",
    "process_source",
    "run_stamp",
]

logger = logging.getLogger("callcycle.process")


@dataclass(frozen=True, slots=True)
class CallInput:
    """A call ready to segment: its id, turns, (for audio) the recording length, and (for diarized
    mono audio) the seconds diarization took."""

    call_id: str
    turns: list[Turn]
    audio_duration_s: float | None
    diarize_s: float | None = None


@dataclass(frozen=True, slots=True)
class ScoredCall:
    """Classified segments and scores of one call."""

    call_id: str
    segments: list[ClassifiedSegment]
    score: CallScore
    timing_estimated: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one input: ``scored``, ``skipped`` (already done) or ``failed``."""

    path: str
    status: Literal["scored", "skipped", "failed"]
    call_id: str | None = None
    call_key: str | None = None
    step: str | None = None
    message: str | None = None
    action_share: float | None = None
    audio_s: float | None = None


def run_stamp(artifact: Artifact, asr_model_name: str | None) -> store.RunStamp:
    """Versions to stamp on rows written with this artifact and ASR model."""
    tax = artifact.taxonomy
    return store.RunStamp(classifier_version=artifact.version, taxonomy=f"{tax.name}/{tax.version}",
                          asr_model=asr_model_name)


def _audio_turns(path: Path, audio: TranscribedFile, config: PipelineConfig,
                 speaker_model: SpeakerModel | None) -> tuple[list[Turn], float | None]:
    """Turns from word timings: channels interleaved by word time; mono audio diarized first."""
    speakers = {ch: speaker_for_channel(ch, config.run.channel_speakers, audio.n_channels)
                for ch in range(audio.n_channels)}
    gap_s = config.segmentation.max_turn_gap_s
    if not all(p.words for p in audio.pieces):  # no word timings: recogniser segments are all we have
        return pieces_to_turns(audio.pieces, speakers, gap_s), None
    words = channel_words(audio.pieces, speakers)
    if audio.n_channels != 1 or not config.diarize.enabled or not words:
        return words_to_turns(words, gap_s), None
    model = speaker_model or load_speaker_model(config.diarize.model_path)
    diarization = diarize_file(model, path, config.diarize, max_duration_s=config.run.max_duration_s)
    labels = assign_words([(w.word, w.start_s, w.end_s, w.probability) for w in words], diarization)
    words = [dataclasses.replace(w, speaker=label) for w, label in zip(words, labels)]
    return words_to_turns(words, gap_s), diarization.elapsed_s


def read_call(source: Source, asr: AsrModel | None, config: PipelineConfig,
              speaker_model: SpeakerModel | None = None) -> CallInput:
    """Speaker turns of a source, each with a role: transcribe (and diarize mono) audio, or parse a transcript.

    Args:
        source: the input.
        asr: the loaded recogniser (audio only).
        config: pipeline options; ``config.diarize`` decides whether mono audio is diarized.
        speaker_model: the loaded speaker-embedding model; loaded here when mono audio needs it.

    Raises:
        PipelineError: the file cannot be decoded, parsed or transcribed, or holds no speech.
    """
    path = Path(source.path)
    if source.kind == "transcript":
        parsed = parse_transcript(path, words_per_minute=config.segmentation.words_per_minute)
        return CallInput(call_id=parsed.call_id or source.call_id,
                         turns=assign_roles(parsed.turns, source.metadata), audio_duration_s=None)
    if asr is None:
        raise PipelineError(f"{path.name}: audio input but no speech model loaded.",
                            "Load one with pipeline.speech.transcribe.load_asr_model.", step="transcribe")
    audio = transcribe_file(asr, path, max_duration_s=config.run.max_duration_s)
    turns, diarize_s = _audio_turns(path, audio, config, speaker_model)
    turns = assign_roles(turns, source.metadata, channel_layout=audio.n_channels > 1)
    if not turns:
        raise EmptyAudioError(f"{path.name}: no speech was recognised in {audio.duration_s:.1f} s of audio.",
                              "Check that the recording contains speech (not silence, music or tones).",
                              step="transcribe")
    return CallInput(call_id=source.call_id, turns=turns, audio_duration_s=round(audio.duration_s, 3),
                     diarize_s=diarize_s)


def score_turns(call: CallInput, artifact: Artifact, nlp: Any, config: PipelineConfig) -> ScoredCall:
    """Segment the turns, classify the segments and score the call."""
    segments = segment_turns(call.turns, call.call_id, nlp, config.segmentation)
    if not segments:
        raise TranscriptFormatError(f"{call.call_id}: no text to classify.",
                                    "The input's turns are empty.", step="segment")
    classified = classify_segments(artifact, segments)
    return ScoredCall(call_id=call.call_id, segments=classified,
                      score=score_call(classified, artifact.taxonomy),
                      timing_estimated=any(s.timing_estimated for s in segments))


def build_tables(source: Source, call: CallInput, scored: ScoredCall, stamp: store.RunStamp,
                 taxonomy: Taxonomy, processing_s: float) -> tuple[str, pa.Table, pa.Table]:
    """``(call_key, segments table, calls table)`` for a scored call."""
    key = store.call_key(source.sha256, stamp, source.kind)
    segments = store.segments_table(key, source, scored.call_id, scored.segments, taxonomy)
    calls = store.calls_table(key, source, scored.call_id, scored.score, stamp, call.audio_duration_s,
                              scored.timing_estimated, processing_s)
    return key, segments, calls


def record_failure(out_dir: Path, path: str, sha256: str | None, error: BaseException,
                   stamp: store.RunStamp, attempts: int = 1) -> Outcome:
    """Write an ``errors`` row for a failed input and return its outcome."""
    if isinstance(error, PipelineError):
        step, message, hint = error.step, error.message, error.hint
    else:
        step, message = "internal", f"{type(error).__name__}: {error}"
        hint = "This is a bug in callcycle or a library it uses; please report it with the file if you can."
    table = store.errors_table(store.error_key(path, sha256, stamp), path, sha256, step,
                               type(error).__name__, message, hint, attempts, stamp)
    store.write_error(out_dir, table)
    return Outcome(path=path, status="failed", step=step, message=f"{message} {hint}".strip())


def process_source(source: Source, *, asr: AsrModel | None, artifact: Artifact, nlp: Any,
                   config: PipelineConfig, out_dir: Path, speaker_model: SpeakerModel | None = None) -> Outcome:
    """Score one source end to end and write its rows; failures become ``errors`` rows.

    Skips the source when results for the same bytes and versions exist (unless
    ``config.run.force``).
    """
    stamp = run_stamp(artifact, asr.name if asr else None)
    key = store.call_key(source.sha256, stamp, source.kind)
    if store.is_done(out_dir, key) and not config.run.force:
        return Outcome(path=source.path, status="skipped", call_id=source.call_id, call_key=key)
    started = time.perf_counter()
    try:
        call = read_call(source, asr, config, speaker_model)
        scored = score_turns(call, artifact, nlp, config)
        key, segments, calls = build_tables(source, call, scored, stamp, artifact.taxonomy,
                                            time.perf_counter() - started)
        store.write_call(out_dir, key, segments, calls)
    except Exception as exc:  # recorded, never lost; the batch goes on
        logger.warning("%s failed: %s", source.path, exc)
        return record_failure(out_dir, source.path, source.sha256, exc, stamp)
    store.clear_error(out_dir, store.error_key(source.path, source.sha256, stamp))
    return Outcome(path=source.path, status="scored", call_id=scored.call_id, call_key=key,
                   action_share=scored.score.action_share, audio_s=call.audio_duration_s)
