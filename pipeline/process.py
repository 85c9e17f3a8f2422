"""One input file through every stage, as plain functions (no Prefect needed).

``read_call`` turns a source into speaker turns (decode + transcribe for audio, parse
for transcripts); ``score_turns`` segments, classifies and scores them; ``build_tables``
makes the Parquet rows; :func:`process_source` composes all of it and writes the
result, which is what a notebook user or the Prefect flow calls per file.

Results go to a :class:`~pipeline.store.base.Store` — a folder or an ``s3://`` prefix; every
function taking ``out_dir`` accepts either (or a store).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from pipeline import objectstore, version_order
from pipeline.classify.artifacts import Artifact, ArtifactCard
from pipeline.classify.predict import classify_segments
from pipeline.config import PipelineConfig
from pipeline.errors import (
    AlreadyCommittedError,
    EmptyAudioError,
    InputChangingError,
    InputError,
    ModelArtifactError,
    OutputError,
    PipelineError,
    TranscriptFormatError,
)
from pipeline.ingest.discover import DiscoveryNotes, file_sha256, try_sha256
from pipeline.ingest.remote import local_copy
from pipeline.ingest.transcripts import parse_transcript
from pipeline.rescore import stored_segments
from pipeline.schema import CallMetadata, CallScore, ClassifiedSegment, Segment, Source, Turn
from pipeline.score import score_call
from pipeline.speech.diarize import (
    SpeakerModel,
    assign_words,
    default_model_path,
    diarize_file,
    load_speaker_model,
    reusable_speech,
    snap_to_sentences,
)
from pipeline.speech.rolemodel import RoleModel, load_role_model
from pipeline.speech.roles import assign_roles, sidecar_roles
from pipeline.speech.transcribe import AsrModel, TranscribedFile, transcribe_file
from pipeline.speech.turns import channel_words, pieces_to_turns, segment_turns, speaker_for_channel, words_to_turns
from pipeline.store import schema as store
from pipeline.store.base import OutputLocation, Store, StoredCall, open_store
from pipeline.store.prune import input_exists
from pipeline.taxonomy import Taxonomy

__all__ = [
    "CallInput",
    "ScoredCall",
    "Outcome",
    "read_call",
    "score_turns",
    "score_segments",
    "rescore_stored",
    "build_tables",
    "record_failure",
    "clear_failure",
    "identity_clashes",
    "check_done",
    "sort_out_done",
    "plan_batch",
    "commit_call",
    "check_unchanged",
    "prepare_output",
    "new_batch_id",
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
    """What happened to one input.

    ``scored``; ``skipped`` (already done, or the same bytes as another input); ``updated`` (already
    scored, its metadata re-applied from calls.csv / the file name without re-scoring); ``deferred``
    (still being written: scored by a later run); ``failed`` (an ``errors`` row says why).
    """

    path: str
    status: Literal["scored", "skipped", "updated", "deferred", "failed"]
    call_id: str | None = None
    call_key: str | None = None
    step: str | None = None
    message: str | None = None
    action_share: float | None = None
    audio_s: float | None = None
    cleared: tuple[str, ...] = ()
    """For ``updated``: the stored fields (rep, customer, call_date) emptied because nothing gives them any more."""
    restored: bool = False
    """For ``scored``: classified again from the stored segments (:func:`rescore_stored`), not read again."""
    during_run: bool = False
    """For ``skipped``/``updated``: the stored rows were committed after this run began (by more than
    :data:`FORCE_CLOCK_MARGIN_S`): a task run again (Dask re-runs a dead worker's finished tasks), or another
    run on the same output, scored the call while this run ran."""


def row_settings(config: PipelineConfig) -> str:
    """A short digest of what, besides the classifier and the speech model, shapes a call's rows.

    That is the ``[segmentation]`` options and the models chosen by them and by ``[roles]``: the
    sentence-boundary model's and the role model's checksums (as their cards record them), or that they are
    off. It is part of every call's version key, so a retrained boundary or role model, or a changed
    segmentation option, re-scores stored calls on the next run instead of leaving rows made the old way.
    Options that only change speed (threads, workers, batch sizes) are not in it.
    """
    from pipeline.modelfiles import card_checksum
    from pipeline.speech.boundaries import default_boundary_model_dir
    from pipeline.speech.rolemodel import default_role_model_dir

    seg, roles = config.segmentation, config.roles
    boundaries = Path(seg.unpunctuated_model_path) if seg.unpunctuated_model_path else default_boundary_model_dir()
    parts = [f"segmentation={seg.max_turn_gap_s!r},{seg.min_segment_words},{seg.words_per_minute!r}",
             "boundaries=" + (card_checksum(boundaries) if seg.unpunctuated_model else "off"),
             "roles=" + (card_checksum(Path(roles.model_path) if roles.model_path else default_role_model_dir())
                         if roles.model else "question-rule")]
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:16]


#: ``[asr]`` and ``[diarize]`` options that change only speed or where the work runs, not words or speakers.
# ``[asr] batch_size`` is not among them when ``batched`` is on: the chunks batched together move word
# probabilities (in the seventh decimal on a test call), and so may move a word; off, it is unused
_SPEED_ONLY_ASR = frozenset({"device", "cpu_threads"})
_SPEED_ONLY_DIARIZE = frozenset({"batch_size", "model_path"})  # the model counts by its bytes, not its path


def speech_settings(config: PipelineConfig) -> str:
    """A short digest of what, besides the ASR model's name, shapes an audio call's words and speakers.

    That is every ``[asr]`` option except those that only change speed (device, threads),
    ``[run] channel_speakers``, the ``[diarize]`` options and the speaker model in use (the sha256 of its
    file), or that diarization is off. It is part of an audio call's version key (a transcript's key
    leaves it out), so re-running a folder with another beam size, VAD setting or speaker model
    transcribes its recordings again instead of skipping them as done.
    """
    asr = {k: v for k, v in dataclasses.asdict(config.asr).items()
           if k not in _SPEED_ONLY_ASR and (k != "batch_size" or config.asr.batched)}
    diarize: dict[str, Any] | str = "off"
    if config.diarize.enabled:
        diarize = {k: v for k, v in dataclasses.asdict(config.diarize).items() if k not in _SPEED_ONLY_DIARIZE}
        model = Path(config.diarize.model_path) if config.diarize.model_path else default_model_path()
        diarize["model_sha256"] = _file_sha256(model)
    parts = [f"asr={sorted(asr.items())!r}", f"channels={list(config.run.channel_speakers)!r}",
             f"diarize={sorted(diarize.items()) if isinstance(diarize, dict) else diarize!r}"]
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:16]


def _file_sha256(path: Path) -> str:
    """The file's sha256, remembered per (path, size, modification time): a run stamps every file."""
    try:
        info = path.stat()
    except OSError:
        return "missing"  # loading the model fails with its own message
    return _sha256_of(str(path.resolve()), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of ``path``; ``size`` and ``mtime_ns`` only key the cache (a changed file is hashed again)."""
    return file_sha256(Path(path))


def run_stamp(artifact: Artifact | ArtifactCard, asr_model_name: str | None,
              config: PipelineConfig | None = None) -> store.RunStamp:
    """Versions to stamp on rows written with this artifact (loaded, or only its card) and ASR model, and
    the digests of the other settings that shape them (:func:`row_settings`, :func:`speech_settings`;
    ``None``: the defaults)."""
    tax = artifact.taxonomy
    cfg = config or PipelineConfig()
    return store.RunStamp(classifier_version=artifact.version, taxonomy=f"{tax.name}/{tax.version}",
                          asr_model=asr_model_name, settings=row_settings(cfg), speech=speech_settings(cfg),
                          started_at=time.time())


def _audio_turns(path: Path, audio: TranscribedFile, config: PipelineConfig,
                 speaker_model: SpeakerModel | None) -> tuple[list[Turn], float | None]:
    """Turns from word timings: channels interleaved by sentence; mono audio diarized first."""
    speakers = {ch: speaker_for_channel(ch, config.run.channel_speakers, audio.n_channels)
                for ch in range(audio.n_channels)}
    gap_s = config.segmentation.max_turn_gap_s
    if not all(p.words for p in audio.pieces):  # no word timings: recogniser segments are all we have
        return pieces_to_turns(audio.pieces, speakers, gap_s), None
    words = channel_words(audio.pieces, speakers)
    if audio.n_channels != 1:  # people on separate channels can speak at once: keep sentences whole
        return words_to_turns(words, gap_s, by_sentence=True), None
    if not config.diarize.enabled or not words:
        return words_to_turns(words, gap_s), None
    model = speaker_model or load_speaker_model(config.diarize.model_path)
    # the recogniser's VAD pass, reused where its settings allow
    speech = reusable_speech(audio.speech.get(0), audio.duration_s, audio.speech_min_silence_ms, config.diarize)
    diarization = diarize_file(model, path, config.diarize, max_duration_s=config.run.max_duration_s, speech=speech)
    timed = [(w.word, w.start_s, w.end_s, w.probability) for w in words]
    labels = assign_words(timed, diarization)
    if config.diarize.snap_to_sentences:
        labels = snap_to_sentences(timed, labels)
    words = [dataclasses.replace(w, speaker=label) for w, label in zip(words, labels)]
    return words_to_turns(words, gap_s), diarization.elapsed_s


def read_call(source: Source, asr: AsrModel | None, config: PipelineConfig,
              speaker_model: SpeakerModel | None = None,
              role_model: RoleModel | Callable[[], RoleModel] | None = None) -> CallInput:
    """Speaker turns of a source, each with a role: transcribe (and diarize mono) audio, or parse a transcript.

    Args:
        source: the input.
        asr: the loaded recogniser (audio only).
        config: pipeline options; ``config.diarize`` decides whether mono audio is diarized.
        speaker_model: the loaded speaker-embedding model; loaded here when mono audio needs it.
        role_model: the role model, or a function that returns it; with ``config.roles.model`` on it is
            loaded here (from ``config.roles.model_path``) when a speaker needs it and none is given.

    Raises:
        PipelineError: the file cannot be decoded, parsed or transcribed, or holds no speech.
    """
    check_unchanged(source)
    with local_copy(source) as path:  # an s3:// object is read from a checked temporary copy
        try:
            return _read_call(source, path, asr, config, speaker_model, _role_reader(config, role_model))
        except OSError as exc:
            if not path.exists():
                raise InputError(f"{path.name} disappeared while it was being read.",
                                 "Nothing was scored for it; run again once the file is back.") from exc
            raise InputError(f"Cannot read {path.name}: {exc.strerror or exc}.",
                             "Check the file's permissions.") from exc


def _role_reader(config: PipelineConfig, given: RoleModel | Callable[[], RoleModel] | None
                 ) -> RoleModel | Callable[[], RoleModel] | None:
    """What :func:`assign_roles` gets: nothing when the role model is off, else the given model or a loader."""
    if not config.roles.model:
        return None
    if given is not None:
        return given
    return lambda: load_role_model(config.roles.model_path)


def _check_transcript_length(path: Path, turns: list[Turn], max_duration_s: float) -> None:
    """Refuse a transcript whose given times run past ``max_duration_s`` (``--max-duration``), as a recording
    that long is refused: one turn stamped ``"end": 1e12`` made a 31,700-year call whose talk outweighed every
    other turn and turned a 75% action share into 0%."""
    for number, turn in enumerate(turns, start=1):
        # a given start (an end may be estimated from it), or a given end
        late = ("starts", turn.start_s) if turn.start_s > max_duration_s + 1.0 else (
            ("ends", turn.end_s) if not turn.timing_estimated and turn.end_s > max_duration_s + 1.0 else None)
        if late is not None:
            raise TranscriptFormatError(
                f"{path.name}: turn {number} {late[0]} at {late[1]:.0f} s, past the limit of {max_duration_s:.0f} s "
                "a call may last.",
                "Check the turn's times (seconds from the start of the call; milliseconds under keys such as "
                "'start_ms'), or raise --max-duration ([run] max_duration_s) for a longer call.")


def _read_call(source: Source, path: Path, asr: AsrModel | None, config: PipelineConfig,
               speaker_model: SpeakerModel | None, role_model: RoleModel | Callable[[], RoleModel] | None
               ) -> CallInput:
    if source.kind == "transcript":
        parsed = parse_transcript(path, words_per_minute=config.segmentation.words_per_minute)
        _check_transcript_length(path, parsed.turns, config.run.max_duration_s)
        return CallInput(call_id=parsed.call_id or source.call_id,
                         turns=assign_roles(parsed.turns, source.metadata, model=role_model, declared=parsed.roles),
                         audio_duration_s=None)
    if asr is None:
        raise PipelineError(f"{path.name}: audio input but no speech model loaded.",
                            "Load one with pipeline.speech.transcribe.load_asr_model.", step="transcribe")
    audio = transcribe_file(asr, path, max_duration_s=config.run.max_duration_s)
    turns, diarize_s = _audio_turns(path, audio, config, speaker_model)
    turns = assign_roles(turns, source.metadata, channel_layout=audio.n_channels > 1, model=role_model)
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
    return score_segments(call.call_id, segments, artifact)


def score_segments(call_id: str, segments: list[Segment], artifact: Artifact) -> ScoredCall:
    """Classify a call's segments and score the call."""
    classified = classify_segments(artifact, segments)
    return ScoredCall(call_id=call_id, segments=classified, score=score_call(classified, artifact.taxonomy),
                      timing_estimated=any(s.timing_estimated for s in segments))


def rescore_stored(source: Source, stamp: store.RunStamp, out_dir: OutputLocation, artifact: Artifact,
                   config: PipelineConfig, batch: str = "") -> tuple[CallInput, ScoredCall] | None:
    """``source``'s call scored again from its stored segments (:mod:`pipeline.rescore`: only the classifier
    changed since it was stored), or ``None`` when it must be read again (always under ``--force``).

    Raises:
        OutputError: the output cannot be read.
    """
    if config.run.force:
        return None
    try:
        stored = stored_segments(source, stamp, out_dir,
                                 lambda row: _sidecar_roles_changed(row, source.metadata))
    except OSError as exc:
        out = open_store(out_dir)
        raise _output_failed(out, exc, f"reading the stored segments of {Path(source.path).name}", batch) from exc
    if stored is None:
        return None
    logger.info("%s: scored again from its stored segments (classifier %s, was %s); not read or transcribed again",
                source.path, stamp.classifier_version, stored.classifier_version)
    call = CallInput(call_id=stored.call_id, turns=[], audio_duration_s=stored.audio_duration_s)
    return call, score_segments(stored.call_id, stored.segments, artifact)


def build_tables(source: Source, call: CallInput, scored: ScoredCall, stamp: store.RunStamp,
                 taxonomy: Taxonomy, processing_s: float) -> tuple[str, pa.Table, pa.Table]:
    """``(call_key, segments table, calls table)`` for a scored call."""
    key = store.call_key(source.sha256, stamp, source.kind, store.source_identity(source))
    segments = store.segments_table(key, source, scored.call_id, scored.segments, taxonomy)
    calls = store.calls_table(key, source, scored.call_id, scored.score, stamp, call.audio_duration_s,
                              scored.timing_estimated, processing_s)
    return key, segments, calls


# Outputs whose disk filled up (or became unwritable, or whose bucket went away) during a batch:
# every file of that batch still queued in this process fails fast instead of being transcribed for
# nothing. Keyed by (Store.location, batch id), so a long-lived worker process (Dask, a deployment)
# does not carry one batch's fault into the next batch, which gets a new id (new_batch_id).
_BROKEN_OUTPUTS: dict[tuple[str, str], OutputError] = {}
_LOCK = threading.Lock()
#: Faults remembered per process at most (the oldest forgotten first).
_MAX_BROKEN = 64


def new_batch_id() -> str:
    """A fresh id for one batch of files: an output fault met in one batch never fails another."""
    return uuid.uuid4().hex


def prepare_output(out_dir: OutputLocation) -> Store:
    """Check the output before a batch (raises :class:`OutputError`) and tidy it: for a folder, sweep
    dead writers' files and move files of an older schema aside (see
    :func:`pipeline.store.local.retire_old_layout`). Returns the output's store."""
    out = open_store(out_dir)
    out.check()
    with _LOCK:
        for entry in [k for k in _BROKEN_OUTPUTS if k[0] == out.location]:
            del _BROKEN_OUTPUTS[entry]
    try:
        out.prepare()
    except OSError as exc:
        raise _output_failed(out, exc, "moving files of an older layout aside") from exc
    return out


def _output_failed(out: Store, exc: OSError, doing: str, batch: str = "") -> OutputError:
    error = out.output_error(exc, doing)
    if not batch:  # a caller outside a batch (the library, one file at a time) gets the error, no memory
        return error
    with _LOCK:
        _BROKEN_OUTPUTS.setdefault((out.location, batch), error)
        while len(_BROKEN_OUTPUTS) > _MAX_BROKEN:
            del _BROKEN_OUTPUTS[next(iter(_BROKEN_OUTPUTS))]
    return error


def _is_output_fault(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def record_failure(out_dir: OutputLocation, path: str, sha256: str | None, error: BaseException,
                   stamp: store.RunStamp, attempts: int = 1, source_id: str = "", batch: str = "") -> Outcome:
    """Write an ``errors`` row for a failed input and return its outcome.

    ``batch`` (:func:`new_batch_id`) scopes an output fault to the files of one batch.

    A file that is still being written is ``deferred`` (no error row); a version another attempt
    committed first is ``skipped``. An output fault (disk full, read-only) is not the input's
    fault: it is raised as :class:`OutputError` and stops the batch. Nor is a classifier artifact
    that cannot be loaded: :class:`ModelArtifactError` is raised too, since every file would fail.
    """
    out = open_store(out_dir)
    if isinstance(error, (OutputError, ModelArtifactError)):
        raise error
    if _is_output_fault(error):
        raise _output_failed(out, error, f"writing the results of {Path(path).name}", batch)  # type: ignore[arg-type]
    if isinstance(error, AlreadyCommittedError):
        return Outcome(path=path, status="skipped", call_key=error.call_key, message=str(error))
    if isinstance(error, InputChangingError):
        return Outcome(path=path, status="deferred", step=error.step, message=str(error))
    if isinstance(error, PipelineError):
        step, message, hint = error.step, error.message, error.hint
    else:
        step, message = "internal", f"{type(error).__name__}: {error}"
        hint = "This is a bug in callcycle or a library it uses; please report it with the file if you can."
        # the errors row keeps the message; the log keeps the traceback a bug report needs
        logger.warning("%s: unexpected %s, traceback for a bug report:", path, type(error).__name__, exc_info=error)
    ident = source_id or path
    table = store.errors_table(store.error_key(ident, sha256, stamp), path, sha256, step,
                               type(error).__name__, message, hint, attempts, stamp, ident)
    try:
        out.write_error(table)
    except OSError as exc:
        raise _output_failed(out, exc, f"recording the failure of {Path(path).name}", batch) from exc
    return Outcome(path=path, status="failed", step=step, message=f"{message} {hint}".strip())


def clear_failure(out_dir: OutputLocation, source_id: str, path: str, batch: str = "") -> None:
    """Remove the ``errors`` row of an input that no longer fails on its own: a link to, or a copy of,
    a file that is scored under another path. A fixed input's row goes when its call is written."""
    out = open_store(out_dir)
    try:
        out.clear_error(source_id)
    except OSError as exc:
        raise _output_failed(out, exc, f"clearing the old failure of {Path(path).name}", batch) from exc


def check_unchanged(source: Source) -> None:
    """Raise :class:`InputChangingError` when the file changed since it was fingerprinted."""
    if source.mtime_ns is None:
        return
    try:
        st = os.stat(source.path)
    except OSError as exc:
        raise InputError(f"{Path(source.path).name} disappeared before it could be read ({exc.strerror}).",
                         "Nothing was recorded for it; run again once the file is back.") from exc
    if st.st_size != source.size_bytes or st.st_mtime_ns != source.mtime_ns:
        raise InputChangingError(f"{Path(source.path).name} changed while it was processed.",
                                 "It is scored by the next run, once it has stopped changing.")


def _identity_clash(source: Source, ident: str, row: dict[str, Any]) -> InputError | None:
    """An :class:`InputError` when the call stored under ``ident`` came from another file: other bytes
    *and* another path (the same name under two input folders, e.g. one folder per night, scored into one
    output). A file changed in place (same path) or moved unchanged (same bytes) is the same call."""
    stored_path = str(row.get("source_path") or "")
    if row.get("source_sha256") == source.sha256 or objectstore.same_location(stored_path, source.path):
        return None
    return InputError(
        f"{Path(source.path).name}: the output already holds a different call under the same identity "
        f"{ident!r}, scored from {row.get('source_path')!r}; it was kept and this file was not scored.",
        "Identities are paths relative to the folder given to `callcycle run`: run on the parent folder "
        "(e.g. `callcycle run nightly`, so each night's folder is part of the identity), score each folder "
        "into its own --out, or pass --force to replace the stored call with this one.", step="discover")


def identity_clashes(sources: list[Source]) -> tuple[list[Source], list[tuple[Source, InputError]]]:
    """Split one run's inputs (distinct bytes) into those to score and those whose identity another
    input of the run already has (``nightly/d1/call.wav`` and ``nightly/d2/call.wav`` given as two
    folders): two calls cannot be stored under one identity, so the first by path is kept and each
    other one gets an :class:`InputError` to record — under its own path, so the kept call's row does
    not replace or clear it. Order is kept."""
    first: dict[str, Source] = {}
    for source in sorted(sources, key=lambda s: s.path):
        first.setdefault(store.source_identity(source), source)
    kept, clashes = [], []
    for source in sources:
        ident = store.source_identity(source)
        if first[ident] is source:
            kept.append(source)
            continue
        # a call_id from calls.csv on either file (a call_id that is another file's path clashes with it)
        by_csv = ident in (source.metadata.call_id, first[ident].metadata.call_id)
        clashes.append((source, InputError(
            f"{Path(source.path).name}: another input of this run, {first[ident].path!r}, has the same identity "
            f"{ident!r}{' (a call_id in calls.csv)' if by_csv else ''}; that one is read under it and this one "
            "was not read.",
            "Give each file its own call_id in calls.csv: a call_id names one call." if by_csv else
            "Identities are paths relative to the folder given to `callcycle run`: run on the parent folder "
            "(e.g. `callcycle run nightly`), or score each folder into its own --out.", step="discover")))
    return kept, clashes


def _sidecar_roles_changed(row: dict[str, Any], meta: CallMetadata) -> bool:
    """Whether ``calls.csv`` now gives the stored call's speakers other roles than it did (a ``speakers``
    column added or corrected, the rep renamed) — roles that only a rescore can change."""
    stored = [sp for sp in (row.get("speakers") or []) if sp.get("speaker") is not None]
    before = {sp["speaker"]: sp.get("role") for sp in stored if sp.get("role_source") == "sidecar"}
    return before != sidecar_roles([sp["speaker"] for sp in stored], meta)


def check_done(source: Source, stamp: store.RunStamp, out_dir: OutputLocation,
               force: bool = False, batch: str = "", *, claimed: bool = False) -> Outcome | None:
    """The outcome for an input that needs no scoring, or ``None`` when it must be (re)scored.

    A different file (other bytes, other path) under an identity the output already holds is not
    scored: its outcome is ``failed``, recorded in ``errors`` (``--force`` replaces the stored call).
    Fails fast with :class:`OutputError` when the output already failed in this ``batch``
    (:func:`new_batch_id`; the batch without an id lasts until :func:`prepare_output`).
    A call stored by a newer pipeline version (an older release run over a newer one's output) is
    ``skipped`` with a message, not scored back to the older version's rows.
    A call stored at the same version is ``skipped``; if its rep/customer/date/path changed
    (calls.csv corrected, file renamed inside its identity) the row is rewritten: ``updated``.
    With ``force`` every call is scored again, and nothing is read, except once this process holds the
    call's claim (``claimed``): a call whose current rows were committed more than
    ``FORCE_CLOCK_MARGIN_S`` after the run began (``stamp.started_at``) was scored by another run
    meanwhile (two ``--force`` runs on one output share the work, as other runs do) and is settled as
    without ``force`` (``skipped``, or ``updated`` with its metadata re-applied).
    """
    out = open_store(out_dir)
    with _LOCK:
        broken = _BROKEN_OUTPUTS.get((out.location, batch))
    if broken is not None:
        raise broken
    ident = store.source_identity(source)
    key = store.call_key(source.sha256, stamp, source.kind, ident)
    if force and not (claimed and stamp.started_at > 0):  # rescored and replaced whatever is stored: nothing read
        return None
    try:
        stored = out.stored_call(ident, key)
    except OSError as exc:
        raise _output_failed(out, exc, f"reading the stored results of {Path(source.path).name}", batch) from exc
    if force and not _committed_during(stored, stamp.started_at):
        return None
    if stored.state == "stale" and stored.row is not None:
        clash = _identity_clash(source, ident, stored.row)
        if clash is not None:  # recorded as this input's failure; the stored call stays as it was
            return record_failure(out_dir, source.path, source.sha256, clash, stamp, source_id=ident, batch=batch)
        newer = stored.row.get("pipeline_version")
        if version_order(newer) > version_order(stamp.pipeline_version):  # a rollback, or a host not upgraded
            return Outcome(path=source.path, status="skipped", call_id=stored.row.get("call_id"),
                           call_key=stored.row.get("call_key"), message=(
                               f"stored by a newer callcycle (pipeline {newer}); this one ({stamp.pipeline_version}) "
                               "leaves it as it is: upgrade this installation, or --force to score it again"))
    if stored.state != "current" or stored.row is None:
        return None
    meta = source.metadata
    if _sidecar_roles_changed(stored.row, meta):
        return None  # speaker roles are in every segment row and in the scores per speaker: scored again
    changes = {k: v for k, v in (("rep", meta.rep), ("customer", meta.customer), ("call_date", meta.call_date))
               if stored.row.get(k) != v}
    # "calls/a.json" = "./calls/a.json"
    if not objectstore.same_location(str(stored.row.get("source_path") or ""), source.path):
        changes["source_path"] = source.path
    status: Literal["skipped", "updated"] = "skipped"
    if changes:
        try:
            out.update_call(ident, changes)
        except OSError as exc:
            raise _output_failed(out, exc, f"updating {Path(source.path).name}", batch) from exc
        status = "updated"
    try:
        out.clear_error(ident)
    except OSError as exc:
        raise _output_failed(out, exc, f"clearing the error record of {Path(source.path).name}", batch) from exc
    # a value that goes away (a calls.csv moved, truncated or missing a row) is said, not only re-applied
    cleared = tuple(sorted(k for k, v in changes.items() if v is None and k != "source_path"))
    message = f"metadata re-applied: {', '.join(sorted(changes))}" if changes else None
    if cleared:
        message = f"{message}; {', '.join(cleared)} removed (no calls.csv row or file name gives them any more)"
    during = stamp.started_at > 0 and _committed_during(stored, stamp.started_at)
    if force:
        message = "; ".join(m for m in ("scored by another run while this one ran (--force redoes the calls "
                                        "scored before it began)", message) if m)
    elif during:
        message = "; ".join(m for m in ("scored while this run ran (an earlier attempt of its task, or another run "
                                        "on this output)", message) if m)
    return Outcome(path=source.path, status=status, call_id=stored.row["call_id"], call_key=key, message=message,
                   cleared=cleared, during_run=during)


#: Under ``--force`` a call counts as committed by another run during this one only when its rows are stamped
#: this much after the run began: ``processed_at`` comes from the committing host's clock and ``started_at``
#: from this one's, so a clock up to a minute ahead never makes a call committed before the run look like
#: one committed during it (which would go unscored). Calls committed in the run's first minute are redone.
FORCE_CLOCK_MARGIN_S = 60.0


def _committed_during(stored: StoredCall, started_at: float) -> bool:
    """Whether the call's current rows were committed more than :data:`FORCE_CLOCK_MARGIN_S` after ``started_at``."""
    if stored.state != "current" or stored.row is None:
        return False
    committed = stored.row.get("processed_at")
    return isinstance(committed, datetime) and committed.timestamp() >= started_at + FORCE_CLOCK_MARGIN_S


def sort_out_done(sources: list[Source], stamp: store.RunStamp, out_dir: OutputLocation, force: bool = False,
                  batch: str = "", parallel: int = 8) -> tuple[list[Source], list[Outcome]]:
    """Split a batch into the sources that need scoring and the outcomes of those that do not.

    :func:`check_done` for every source, ``parallel`` at a time (the checks wait on the output's
    storage, not the CPU), before any file becomes a task: in a nightly run over an archive where
    nearly every call is already scored, the stored calls are checked without a task run each.
    Order is kept. With ``force`` nothing is checked: everything is scored. A check that fails for
    another reason than the output itself leaves its source to be scored: its task checks again and
    records what goes wrong as that file's failure, as before this pass existed.

    Raises:
        OutputError: the output cannot be read (from the first check that hit it).
    """
    if force or not sources:
        return list(sources), []

    def check(source: Source) -> Outcome | None:
        try:
            return check_done(source, stamp, out_dir, False, batch)
        except OutputError:
            raise  # the output cannot be read: every file would fail, the batch stops
        except Exception:  # noqa: BLE001 - anything else belongs to this file: its task checks again
            logger.warning("%s: checking its stored results failed; it is scored", source.path, exc_info=True)
            return None

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(sources))),
                            thread_name_prefix="callcycle-done") as pool:
        checked = list(pool.map(check, sources))
    todo = [source for source, outcome in zip(sources, checked) if outcome is None]
    return todo, [outcome for outcome in checked if outcome is not None]


def plan_batch(out_dir: OutputLocation, sources: list[Source], bad_inputs: list[tuple[str, InputError]],
               notes: DiscoveryNotes, stamp: store.RunStamp, force: bool = False,
               batch: str = "") -> tuple[list[Source], list[Outcome]]:
    """Everything about a batch that is settled before any file is scored; ``(sources to score, outcomes)``.

    What discovery returned (:func:`pipeline.ingest.discover.discover_inputs` with ``notes``) becomes:
    an ``errors`` row for each input it refused, and none any more for a ``calls.csv`` it read; a skip
    for each link to (or second spelling of) a file already taken, and for each file with the same bytes
    as an earlier one (read once, under the first path), clearing their earlier error rows; an ``errors``
    row for each input whose identity an earlier input of the batch has (:func:`identity_clashes`); and
    the outcome of each call already stored at this version (:func:`sort_out_done`). The same rules for
    ``callcycle run`` and a library caller.
    """
    outcomes: list[Outcome] = []
    for path, error in bad_inputs:
        outcomes.append(record_failure(out_dir, path, None if objectstore.is_uri(path) else try_sha256(Path(path)),
                                       error, stamp, batch=batch, source_id=notes.identities.get(path, "")))
    for path in notes.sidecars:  # a calls.csv that failed before and reads now: its failure is gone
        clear_failure(out_dir, path, path, batch)
    for path, same in notes.aliases:
        clear_failure(out_dir, notes.identities.get(path, path), path, batch)
        outcomes.append(Outcome(path=path, status="skipped",
                                message=f"the same file as {same}; read once, under that path"))
    first_of: dict[str, Source] = {}
    unique: list[Source] = []
    for source in sources:
        original = first_of.setdefault(source.sha256, source)
        if original is source:
            unique.append(source)
            continue
        clear_failure(out_dir, store.source_identity(source), source.path, batch)
        outcomes.append(Outcome(path=source.path, status="skipped", call_id=source.call_id,
                                message=f"same bytes as {original.path}; read once, under that path"))
    unique, clashes = identity_clashes(unique)
    for source, clash in clashes:
        outcomes.append(record_failure(out_dir, source.path, source.sha256, clash, stamp, source_id=source.path,
                                       batch=batch))
    _clear_settled_clashes(out_dir, unique, batch)
    unique, settled = sort_out_done(unique, stamp, out_dir, force, batch)
    unique, elsewhere = _stored_elsewhere(out_dir, unique, force)
    return unique, outcomes + settled + elsewhere


def _clear_settled_clashes(out_dir: OutputLocation, sources: list[Source], batch: str = "") -> None:
    """Clear the ``errors`` rows of identity clashes about files this batch reads under another identity.

    A clash is recorded under the taken identity (a call stored by an earlier run) or the file's path (an
    earlier input of the same run). Run on the parent folder, as the clash's hint says, the file is read as
    ``d2/call.json``, and its old row, keyed by a name this file no longer has, would stand for ever: summary
    and the report said "1 input could not be scored" after a run that said 0 failed. A row about the identity
    the file has now is left to :func:`check_done` and the commit. Errors are read once per batch; only the
    sources whose file name a clash row names are resolved."""
    out = open_store(out_dir)
    try:
        errors = out.read_dataset("errors").select(["source_id", "source_path", "step"]).to_pylist()
    except OSError as exc:
        raise _output_failed(out, exc, "reading the recorded failures", batch) from exc
    clashes = [row for row in errors if row["step"] == "discover" and row["source_path"]]
    if not clashes:
        return
    by_name: dict[str, list[Source]] = defaultdict(list)
    for source in sources:
        by_name[Path(source.path).name].append(source)
    for row in clashes:
        for source in by_name.get(Path(row["source_path"]).name, []):
            if (objectstore.same_location(row["source_path"], source.path)
                    and store.source_identity(source) != row["source_id"]):
                clear_failure(out_dir, row["source_id"], row["source_path"], batch)
                break


def _stored_elsewhere(out_dir: OutputLocation, sources: list[Source],
                      force: bool) -> tuple[list[Source], list[Outcome]]:
    """Leave out sources whose bytes are already stored as *another* identity's call whose file is still
    there: the same recording reached from another input folder (``run in`` one night, ``run in/sub``
    the next, so ``sub/h.json`` and ``h.json``) would be transcribed again and counted twice. A stored
    call whose file is gone (a rename) does not hold the new name back; ``force`` scores everything."""
    if force or not sources:
        return sources, []
    rows = open_store(out_dir).read_dataset("calls").select(["source_id", "source_sha256", "source_path"]).to_pylist()
    by_bytes: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_bytes.setdefault(row["source_sha256"], row)
    stored_ids = {row["source_id"] for row in rows}  # an identity with a stored call of its own is rescored
    keep: list[Source] = []
    skipped: list[Outcome] = []
    for source in sources:
        stored = by_bytes.get(source.sha256)
        if stored is None or store.source_identity(source) in stored_ids or not input_exists(stored["source_path"]):
            keep.append(source)
            continue
        skipped.append(Outcome(path=source.path, status="skipped", call_id=source.call_id, message=(
            f"same bytes as the stored call {stored['source_id']} ({stored['source_path']}), scored from another "
            f"input folder; not scored again (--force scores it under this name too)")))
    return keep, skipped


def commit_call(out_dir: OutputLocation, source: Source, call: CallInput, scored: ScoredCall,
                stamp: store.RunStamp, taxonomy: Taxonomy, processing_s: float, replace: bool = False,
                batch: str = "") -> str:
    """Write a scored call (replacing any older version of it) and clear its error; returns its key.

    ``replace`` (``--force``) commits even over an already committed copy of the same version;
    ``batch`` as for :func:`check_done`.

    Raises:
        InputChangingError: the file changed while it was processed (nothing is written).
        AlreadyCommittedError: another attempt committed this version first (object storage; nothing
            of this attempt is visible).
        OutputError: the output cannot take the files (disk full, read-only, bucket gone).
    """
    out = open_store(out_dir)
    check_unchanged(source)
    key, segments, calls = build_tables(source, call, scored, stamp, taxonomy, processing_s)
    try:
        committed = out.write_call(key, segments, calls, replace=replace)
        out.clear_error(store.source_identity(source))
    except OSError as exc:
        raise _output_failed(out, exc, f"writing the results of {Path(source.path).name}", batch) from exc
    if not committed:
        raise AlreadyCommittedError(key)
    return key


@contextmanager
def scoring_claim(source: Source, stamp: store.RunStamp, out_dir: OutputLocation, force: bool = False,
                  batch: str = "") -> Iterator[Outcome | None]:
    """Decide whether ``source`` is to be scored, and hold it for this process while it is.

    Yields the outcome when there is nothing to score: :func:`check_done`'s (``skipped``, ``updated``,
    ``failed``), or ``deferred`` when another live run on the same output holds the call's claim
    (:mod:`pipeline.store.claims`; a later run scores it if that run does not). Yields ``None`` while this
    process holds the claim: the caller scores and commits the call inside the block; the claim is released
    when the block ends.

    Raises:
        OutputError: the output cannot be read or the claim cannot be written.
    """
    done = check_done(source, stamp, out_dir, force, batch)
    if done is not None:
        yield done
        return
    out = open_store(out_dir)
    name = Path(source.path).name
    with contextlib.ExitStack() as stack:
        try:
            holder = stack.enter_context(out.claim(store.source_identity(source), batch))
        except OSError as exc:
            raise _output_failed(out, exc, f"claiming {name}", batch) from exc
        if holder is not None:
            logger.info("%s: left to %s, which is scoring it", source.path, holder.describe())
            yield Outcome(path=source.path, status="deferred", step="claim",
                          message=f"{name}: another run ({holder.describe()}) is scoring this call; a later run "
                                  "scores it if that one does not")
            return
        # the claim's last holder may have committed the call between check_done and now
        yield check_done(source, stamp, out_dir, force, batch, claimed=True)
        with _LOCK:
            broken = _BROKEN_OUTPUTS.get((out.location, batch)) if batch else None
        if broken is not None:  # the output stopped answering meanwhile (another file found out): releasing the
            raise broken  # claim would wait on it too; the claim stays and the next run takes it over


def process_source(source: Source, *, asr: AsrModel | None, artifact: Artifact, nlp: Any,
                   config: PipelineConfig, out_dir: OutputLocation,
                   speaker_model: SpeakerModel | None = None, batch: str = "",
                   role_model: RoleModel | None = None) -> Outcome:
    """Score one source end to end and write its rows; failures become ``errors`` rows.

    Skips the source when its stored results are current (unless ``config.run.force``);
    re-applies changed metadata without re-scoring. ``batch`` as for :func:`check_done`.
    ``config.run.timeout_s`` and ``config.run.retries`` are not applied here: the scoring flow
    (``flows.score_flow``) runs the read as a Prefect task with that time limit and those retries.

    Raises:
        OutputError: the output folder cannot be written; the batch should stop.
        ValueError: an audio source without ``asr``, no ``nlp``, or an ``nlp`` built with the boundary
            model switched the other way than ``config`` (a mistake in the call, raised rather than
            recorded as the input's failure).
    """
    if source.kind == "audio" and asr is None:
        raise ValueError(f"{source.path} is audio: pass asr=pipeline.speech.transcribe.load_asr_model(config.asr)")
    if nlp is None:
        raise ValueError("nlp is required: pass pipeline.speech.turns.build_sentencizer()")
    if (getattr(nlp, "boundaries", None) is not None) != config.segmentation.unpunctuated_model:
        # the call's version says which way unpunctuated turns were cut: the splitter must cut them that way
        raise ValueError("nlp does not match config.segmentation.unpunctuated_model: pass build_sentencizer("
                         "config.segmentation.unpunctuated_model, config.segmentation.unpunctuated_model_path)")
    # the speech model's name as the flow stamps it, for transcripts too (errors rows are keyed by it)
    stamp = run_stamp(artifact, asr.name if asr else config.asr.model, config)
    with scoring_claim(source, stamp, out_dir, config.run.force, batch) as done:
        if done is not None:
            return done
        started = time.perf_counter()
        try:
            again = rescore_stored(source, stamp, out_dir, artifact, config, batch)
            if again is None:
                call = read_call(source, asr, config, speaker_model, role_model)
                scored = score_turns(call, artifact, nlp, config)
            else:
                call, scored = again
            key = commit_call(out_dir, source, call, scored, stamp, artifact.taxonomy, time.perf_counter() - started,
                              replace=config.run.force, batch=batch)
        except Exception as exc:  # recorded, never lost; the batch goes on
            logger.warning("%s failed: %s", source.path, exc)
            return record_failure(out_dir, source.path, source.sha256, exc, stamp,
                                  source_id=store.source_identity(source), batch=batch)
    return Outcome(path=source.path, status="scored", call_id=scored.call_id, call_key=key,
                   action_share=scored.score.action_share, audio_s=call.audio_duration_s, restored=again is not None)
