"""Decode audio files with PyAV into per-channel float32 arrays at 16 kHz.

Channels are kept apart: a stereo call recording carries one speaker per channel.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import AudioDecodeError, EmptyAudioError

__all__ = [
    "SAMPLE_RATE", "AudioData", "AudioBlock", "iter_audio_blocks", "check_audio_content", "load_audio",
    "probe_duration", "channel_is_silent",
]

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
        text = _looks_like_text(path)
        if text is not None:
            raise AudioDecodeError(
                f"{path.name}: this is a text file, not audio (it starts with {text!r}).",
                "If it is a transcript, rename it to .txt, .vtt, .srt or .json; otherwise export the recording again.",
            ) from exc
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise AudioDecodeError(
            f"{path.name}: not a readable audio file ({reason}).",
            "Check the file is a complete wav/flac/mp3/m4a/ogg recording; re-export it if it was cut short.",
        ) from exc
    if not container.streams.audio:
        container.close()
        raise AudioDecodeError(
            f"{path.name}: the file has no audio stream.",
            "Make sure this is an audio recording (a video needs an audio track), not a document or renamed file.",
        )
    stream = container.streams.audio[0]
    channels = getattr(stream, "channels", None) or getattr(stream.codec_context, "channels", None)
    if not channels:
        container.close()
        raise AudioDecodeError(
            f"{path.name}: the audio stream declares 0 channels, so there is nothing to decode.",
            "The file's header is damaged; export the recording again.",
        )
    return container


def _looks_like_text(path: Path) -> str | None:
    """The first characters of a file that is plain UTF-8 text, else ``None``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the 512-byte boundary
            return None
        text = head[: exc.start].decode("utf-8")
    if sum(ch.isprintable() or ch in "\r\n\t" for ch in text) < 0.95 * len(text):
        return None
    return " ".join(text.split())[:40]


#: The RIFF and data chunk size a WAV written to a pipe carries (ffmpeg, many streaming recorders): length unknown.
_UNKNOWN_SIZE = b"\xff\xff\xff\xff"


def _streamed_wav(path: Path) -> bool:
    """Whether ``path`` is a WAV whose header leaves its length unknown (a RIFF or data size of 0xFFFFFFFF or 0)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    if head[4:8] == _UNKNOWN_SIZE:
        return True
    pos = 12
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos + 4:pos + 8], "little")
        if head[pos:pos + 4] == b"data":
            return size in (0, 0xFFFFFFFF)
        pos += 8 + size + (size & 1)
    return False


def _declared_duration(path: Path) -> float | None:
    """Length a PCM WAV's header declares (FFmpeg reports what is present instead); else ``None``, also for a
    WAV written to a pipe, whose header says its length is unknown (read as 0xFFFFFFFF bytes, 18.6 h at 16 kHz)."""
    import wave

    if _streamed_wav(path):
        return None
    try:
        with wave.open(str(path)) as w:
            return w.getnframes() / w.getframerate() if w.getframerate() else None
    except (wave.Error, EOFError, OSError, ValueError):
        return None


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


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """A stretch of decoded audio, as yielded by :func:`iter_audio_blocks`.

    Attributes:
        offset: index of the block's first sample in the whole recording (at 16 kHz).
        samples: float32 array of shape ``(channels, n)``.
        source_sample_rate: the file's own sample rate.
    """

    offset: int
    samples: np.ndarray
    source_sample_rate: int

    @property
    def offset_s(self) -> float:
        return self.offset / SAMPLE_RATE


def iter_audio_blocks(path: Path, *, block_s: float = 600.0,
                      max_duration_s: float | None = None) -> Iterator[AudioBlock]:
    """Decode a file block by block (``block_s`` seconds each), resampled to 16 kHz float32.

    Memory stays bounded by one block whatever the recording's length: this is how the
    pipeline reads long calls. Decoding errors after some audio was read are logged and the
    audio read so far is kept (a truncated file still yields its first part).

    Raises:
        AudioDecodeError: the bytes are not decodable audio.
        EmptyAudioError: the file is empty, or longer than ``max_duration_s``.
    """
    import av

    path = Path(path)
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"{path.name}: the file is empty (0 bytes).",
                              "The upload or export failed; fetch the recording again.")
    block_len = max(SAMPLE_RATE, int(block_s * SAMPLE_RATE))
    limit = None if max_duration_s is None else int(max_duration_s * SAMPLE_RATE)
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        source_rate = int(stream.rate or stream.codec_context.sample_rate or SAMPLE_RATE)
        header_s = _declared_duration(path)
        declared_s = header_s
        if declared_s is None and stream.duration is not None and stream.time_base is not None:
            declared_s = float(stream.duration * stream.time_base)
        elif declared_s is None and container.duration is not None:
            declared_s = container.duration / 1_000_000
        if max_duration_s is not None and declared_s and declared_s > max_duration_s + 1.0:
            raise EmptyAudioError(  # checked before decoding and transcribing up to the limit
                f"{path.name}: longer than the limit of {max_duration_s:.0f} s ({declared_s:.0f} s by its header).",
                "Raise --max-duration or split the recording.",
                step="decode",
            )
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=SAMPLE_RATE)
        pending: list[np.ndarray] = []
        n_pending = 0
        offset = 0

        def take(n: int) -> np.ndarray:
            nonlocal pending, n_pending
            joined = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            head, rest = joined[:, :n], joined[:, n:]
            pending = [rest] if rest.shape[1] else []
            n_pending -= head.shape[1]
            return np.ascontiguousarray(head, dtype=np.float32)

        def frames() -> Iterator[np.ndarray]:
            try:
                for frame in container.decode(stream):
                    frame.pts = None
                    for out in resampler.resample(frame):
                        yield out.to_ndarray()
                for out in resampler.resample(None):
                    yield out.to_ndarray()
            except av.FFmpegError as exc:
                if offset == 0 and n_pending == 0:
                    raise AudioDecodeError(
                        f"{path.name}: audio data is corrupt ({exc}).",
                        "Re-export or re-download the recording.",
                    ) from exc
                logger.warning("%s: decoding stopped early (%s); keeping %d samples",
                               path, exc, offset + n_pending)

        not_finite = 0
        for arr in frames():
            bad = ~np.isfinite(arr)
            if bad.any():  # a float file with NaN or infinite samples: they would silence the recogniser
                not_finite += int(bad.sum())
                arr = np.where(bad, 0.0, arr).astype(arr.dtype)
            pending.append(arr)
            n_pending += arr.shape[1]
            if limit is not None and offset + n_pending > limit:
                raise EmptyAudioError(
                    f"{path.name}: longer than the limit of {max_duration_s:.0f} s.",
                    "Raise --max-duration or split the recording.",
                    step="decode",
                )
            while n_pending >= block_len:
                block = take(block_len)
                yield AudioBlock(offset=offset, samples=block, source_sample_rate=source_rate)
                offset += block.shape[1]
        if n_pending:
            block = take(n_pending)
            yield AudioBlock(offset=offset, samples=block, source_sample_rate=source_rate)
            offset += block.shape[1]
        if not_finite:
            logger.warning("%s: %d sample value(s) were not numbers (NaN or infinite) and were read as silence; "
                           "the file is damaged or was written by a faulty export", path, not_finite)
        if header_s and offset / SAMPLE_RATE < 0.95 * header_s - 0.5:
            logger.warning("%s: the header says %.1f s but only %.1f s of audio could be decoded; the file looks "
                           "truncated, scoring the part that is there", path, header_s, offset / SAMPLE_RATE)
    finally:
        container.close()


def check_audio_content(path: Path, n_samples: int, heard: bool) -> None:
    """Raise the readable error for a recording that is empty, too short or silent."""
    name = Path(path).name
    if n_samples == 0:
        raise EmptyAudioError(f"{name}: the file contains no audio samples.",
                              "The recording is empty; check the recorder or export.")
    if n_samples / SAMPLE_RATE < MIN_DURATION_S:
        raise EmptyAudioError(
            f"{name}: only {n_samples / SAMPLE_RATE:.2f} s of audio.",
            f"Calls shorter than {MIN_DURATION_S:.0f} s are not scored; check the recording.",
        )
    if not heard:
        raise EmptyAudioError(
            f"{name}: the recording is silent on every channel.",
            "Check the recorder's input levels or whether the call was actually connected.",
        )


def load_audio(path: Path, *, max_duration_s: float | None = None) -> AudioData:
    """Decode every channel of an audio file into memory, resampled to 16 kHz float32.

    Convenient for notebooks and short files; the pipeline streams long calls with
    :func:`iter_audio_blocks` instead.

    Args:
        path: audio file in any format PyAV/FFmpeg decodes.
        max_duration_s: refuse longer files before decoding them fully.

    Raises:
        AudioDecodeError: the bytes are not decodable audio.
        EmptyAudioError: no samples, shorter than one second, or every channel silent.
    """
    blocks = list(iter_audio_blocks(Path(path), max_duration_s=max_duration_s))
    if not blocks:
        check_audio_content(path, 0, False)
    samples = np.concatenate([b.samples for b in blocks], axis=1) if len(blocks) > 1 else blocks[0].samples
    heard = not all(channel_is_silent(ch) for ch in samples)
    check_audio_content(path, samples.shape[1], heard)
    return AudioData(samples=samples, sample_rate=SAMPLE_RATE, source_sample_rate=blocks[0].source_sample_rate)


def channel_is_silent(samples: np.ndarray) -> bool:
    """True when a channel's RMS level is below about -60 dBFS."""
    if samples.size == 0:
        return True
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS
