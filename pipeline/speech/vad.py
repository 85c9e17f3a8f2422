"""Speech regions from Silero VAD (bundled with faster-whisper): one pass, two uses.

The recogniser and the diarizer both need to know where the speech is, with different
settings: the recogniser pads regions generously (faster-whisper's 400 ms) and caps them at
its 30-s window; the diarizer wants tight regions (60 ms of padding) without blips. Both
are derived here from one pass of the VAD network with no padding (:func:`detect`), so a
mono call that is transcribed and diarized runs the network once, not twice.

Regions are ``(start, end)`` pairs in samples (16 kHz) unless a function says seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "RAW_MIN_SILENCE_MS", "detect", "merge", "pad", "snap"]

#: The shortest pause that ends a region in the shared pass (the recogniser's default, and
#: below the diarizer's 300 ms, which is reached by :func:`merge`).
RAW_MIN_SILENCE_MS = 160
#: Silero speech probability that starts a region (faster-whisper's default).
DEFAULT_THRESHOLD = 0.5
_RATE = 16000


def detect(samples: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD, min_silence_ms: int = RAW_MIN_SILENCE_MS,
           max_speech_s: float = float("inf")) -> list[tuple[int, int]]:
    """Unpadded speech regions of a 16 kHz mono signal.

    Args:
        samples: the signal, float32.
        threshold: Silero speech probability that starts a region (it ends below ``threshold - 0.15``).
        min_silence_ms: a pause at least this long ends a region.
        max_speech_s: regions longer than this are split (at a pause if there is one).
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(threshold=threshold, min_speech_duration_ms=0, min_silence_duration_ms=min_silence_ms,
                         speech_pad_ms=0, max_speech_duration_s=max_speech_s)
    stamps = get_speech_timestamps(np.ascontiguousarray(samples, dtype=np.float32), options)
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def pad(regions: Sequence[tuple[int, int]], pad_ms: int, n_samples: int) -> list[tuple[int, int]]:
    """Widen each region by ``pad_ms`` on both sides, within the signal.

    Where two regions are closer than twice the padding, each takes half of the gap between
    them (so padded regions never overlap). This is the rule faster-whisper applies to its
    own padded regions, so ``pad(detect(x, max_speech_s=m - 2 * pad_ms / 1000), pad_ms, len(x))``
    gives the regions faster-whisper finds with ``speech_pad_ms=pad_ms`` and ``max_speech_duration_s=m``.
    """
    width = _RATE * pad_ms // 1000
    out: list[list[int]] = [[a, b] for a, b in regions]
    for i, region in enumerate(out):
        if i == 0:
            region[0] = max(0, region[0] - width)
        if i + 1 < len(out):
            gap = out[i + 1][0] - region[1]
            if gap < 2 * width:
                region[1] += gap // 2
                out[i + 1][0] = max(0, out[i + 1][0] - gap // 2)
            else:
                region[1] = min(n_samples, region[1] + width)
                out[i + 1][0] = max(0, out[i + 1][0] - width)
        else:
            region[1] = min(n_samples, region[1] + width)
    return [(a, b) for a, b in out]


def snap(regions: Sequence[tuple[int, int]], grid_ms: int, n_samples: int) -> list[tuple[int, int]]:
    """Move each region's edges outwards onto multiples of ``grid_ms`` (within the signal).

    Regions stay in order and never overlap: where two snapped regions would overlap they meet
    halfway between their original edges instead (the audio between them is then read without a
    splice, so where the seam lies does not move anything). ``grid_ms <= 0`` returns the regions
    unchanged.
    """
    if grid_ms <= 0:
        return [(a, b) for a, b in regions]
    grid = _RATE * grid_ms // 1000
    out: list[list[int]] = []
    previous_end = 0
    for a, b in regions:
        start = (a // grid) * grid
        end = min(n_samples, -(-b // grid) * grid)
        if out and start < out[-1][1]:
            start = (previous_end + a) // 2
            out[-1][1] = start
        out.append([start, end])
        previous_end = b
    return [(a, b) for a, b in out]


def merge(regions: Sequence[tuple[int, int]], min_silence_ms: int, min_speech_ms: int) -> list[tuple[int, int]]:
    """Join regions separated by less than ``min_silence_ms``; then drop those shorter than ``min_speech_ms``."""
    joined: list[list[int]] = []
    for a, b in regions:
        if joined and a - joined[-1][1] < _RATE * min_silence_ms // 1000:
            joined[-1][1] = max(joined[-1][1], b)
        else:
            joined.append([a, b])
    return [(a, b) for a, b in joined if b - a >= _RATE * min_speech_ms // 1000]
