"""Decode audio files with PyAV into per-channel float32 arrays at 16 kHz.

Channels are kept apart: a stereo call recording carries one speaker per channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import AudioDecodeError, EmptyAudioError

__all__ = ["SAMPLE_RATE", "AudioData", "load_audio", "probe_duration", "channel_is_silent"]

logger = logging.getLogger("callcycle.audio")

SAMPLE_RATE = 16_000
#: RMS level (full scale = 1.0) under which a channel counts as silent (about -60 dBFS).
SILENCE_RMS = 1e-3
MIN_DURATION_S = 1.0


@dataclass(frozen=True, slots=True)
class AudioData:
    """Decoded audio.

    Attributes:
        samples: float32 array of shape ``(channels, n_samples)`` in [-1, 1].
        sample_rate: always :data:`SAMPLE_RATE` after decoding.
        source_sample_rate: the file's own rate (8000 for telephone audio, ...).
    """

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sample_rate


def _open(path: Path):  # noqa: ANN202 - returns an av container
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise AudioDecodeError(
            f"{path.name}: not a readable audio file ({type(exc).__name__}: {exc}).",
            "Check the file is a complete wav/flac/mp3/m4a/ogg recording; re-export it if it was cut short.",
        ) from exc
    if not container.streams.audio:
        container.close()
        raise AudioDecodeError(
            f"{path.name}: the file has no audio stream.",
            "Make sure this is an audio recording and not a video, document or renamed file.",
        )
    return container


def probe_duration(path: Path) -> float | None:
    """Duration in seconds from the container header, without decoding; ``None`` if unknown."""
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / 1_000_000
        return None
    finally:
        container.close()


def load_audio(path: Path, *, max_duration_s: float | None = None) -> AudioData:
    """Decode every channel of an audio file, resampled to 16 kHz float32.

    Args:
        path: audio file in any format PyAV/FFmpeg decodes.
        max_duration_s: refuse longer files before decoding them fully.

    Raises:
        AudioDecodeError: the bytes are not decodable audio.
        EmptyAudioError: no samples, shorter than one second, or every channel silent.
    """
    import av

    if path.stat().st_size == 0:
        raise EmptyAudioError(f"{path.name}: the file is empty (0 bytes).",
                              "The upload or export failed; fetch the recording again.")
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        source_rate = int(stream.rate or stream.codec_context.sample_rate or SAMPLE_RATE)
        n_channels = int(stream.codec_context.channels or 1)
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        n_decoded = 0
        limit = None if max_duration_s is None else int(max_duration_s * SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    arr = out.to_ndarray()
                    chunks.append(arr)
                    n_decoded += arr.shape[1]
                if limit is not None and n_decoded > limit:
                    raise EmptyAudioError(
                        f"{path.name}: longer than the limit of {max_duration_s:.0f} s.",
                        "Raise --max-duration or split the recording.",
                        step="decode",
                    )
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError as exc:
            if not chunks:
                raise AudioDecodeError(
                    f"{path.name}: audio data is corrupt ({exc}).",
                    "Re-export or re-download the recording.",
                ) from exc
            logger.warning("%s: decoding stopped early (%s); keeping %d samples", path, exc, n_decoded)
    finally:
        container.close()
    if not chunks:
        raise EmptyAudioError(
            f"{path.name}: the file contains no audio samples.",
            "The recording is empty; check the recorder or export.",
        )
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if samples.shape[0] != n_channels and samples.shape[0] > 0:
        n_channels = samples.shape[0]
    audio = AudioData(samples=samples, sample_rate=SAMPLE_RATE, source_sample_rate=source_rate)
    if audio.duration_s < MIN_DURATION_S:
        raise EmptyAudioError(
            f"{path.name}: only {audio.duration_s:.2f} s of audio.",
            f"Calls shorter than {MIN_DURATION_S:.0f} s are not scored; check the recording.",
        )
    if all(channel_is_silent(ch) for ch in samples):
        raise EmptyAudioError(
            f"{path.name}: the recording is silent on every channel.",
            "Check the recorder's input levels or whether the call was actually connected.",
        )
    return audio


def channel_is_silent(samples: np.ndarray) -> bool:
    """True when a channel's RMS level is below about -60 dBFS."""
    if samples.size == 0:
        return True
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS
