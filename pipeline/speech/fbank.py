"""Kaldi-compatible log mel filterbank features in numpy (the speaker model's front end).

Matches ``kaldi compute-fbank-feats`` / ``torchaudio.compliance.kaldi.fbank`` with the
options the CAM++ speaker model was trained on: 16 kHz, 25 ms Povey window, 10 ms shift,
80 mel bins from 20 Hz to Nyquist, pre-emphasis 0.97, DC offset removed, power spectrum,
natural log, no dither, ``snip_edges`` framing. Written here so that the runtime needs
neither torch nor torchaudio.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

__all__ = ["FbankOptions", "cepstra", "compute_fbank", "n_frames"]

_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True, slots=True)
class FbankOptions:
    """Filterbank options (defaults: what CAM++ expects).

    Attributes:
        sample_rate: input sample rate in Hz.
        frame_length_ms / frame_shift_ms: analysis window and hop.
        n_mels: number of mel bins.
        low_freq_hz: lowest mel edge.
        preemphasis: pre-emphasis coefficient.
    """

    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    n_mels: int = 80
    low_freq_hz: float = 20.0
    preemphasis: float = 0.97

    @property
    def frame_length(self) -> int:
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def frame_shift(self) -> int:
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    @property
    def n_fft(self) -> int:
        return 1 << (self.frame_length - 1).bit_length()


def n_frames(n_samples: int, options: FbankOptions = FbankOptions()) -> int:
    """Number of frames Kaldi's ``snip_edges`` framing yields for ``n_samples``."""
    if n_samples < options.frame_length:
        return 0
    return 1 + (n_samples - options.frame_length) // options.frame_shift


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=4)
def _mel_banks(options: FbankOptions) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular weights on the mel scale, as Kaldi builds them."""
    n_fft = options.n_fft
    nyquist = options.sample_rate / 2
    mel_low, mel_high = _mel(options.low_freq_hz), _mel(nyquist)
    delta = (mel_high - mel_low) / (options.n_mels + 1)
    bin_mel = _mel(np.arange(n_fft // 2) * options.sample_rate / n_fft)
    banks = np.zeros((n_fft // 2 + 1, options.n_mels), dtype=np.float64)
    for m in range(options.n_mels):
        left, centre, right = mel_low + m * delta, mel_low + (m + 1) * delta, mel_low + (m + 2) * delta
        rising = (bin_mel - left) / (centre - left)
        falling = (right - bin_mel) / (right - centre)
        weight = np.where(bin_mel <= centre, rising, falling)
        weight[(bin_mel <= left) | (bin_mel >= right)] = 0.0
        banks[: n_fft // 2, m] = weight
    return banks.astype(np.float32)


@lru_cache(maxsize=4)
def _povey_window(length: int) -> np.ndarray:
    n = np.arange(length, dtype=np.float64)
    return ((0.5 - 0.5 * np.cos(2 * np.pi * n / (length - 1))) ** 0.85).astype(np.float32)


def compute_fbank(samples: np.ndarray, options: FbankOptions = FbankOptions(), *,
                  chunk_frames: int = 2048) -> np.ndarray:
    """Log mel filterbank of a mono float signal.

    Frames are computed ``chunk_frames`` at a time, so a long signal needs no more working memory
    than a ~20 s one (the result is the same as in one piece).

    Args:
        samples: 1-D float array at ``options.sample_rate``; scale does not matter once the
            mean is removed (a gain is a constant offset in the log domain).
        options: filterbank options.
        chunk_frames: frames per FFT batch.

    Returns:
        float32 array (frames, n_mels); empty (0, n_mels) for signals shorter than a frame.
    """
    x = np.asarray(samples, dtype=np.float32)
    count = n_frames(x.shape[0], options)
    out = np.empty((count, options.n_mels), dtype=np.float32)
    shift = options.frame_shift
    for first in range(0, count, chunk_frames):
        n = min(chunk_frames, count - first)
        piece = x[first * shift : (first + n - 1) * shift + options.frame_length]
        out[first : first + n] = _fbank_frames(piece, n, options)
    return out


def _fbank_frames(x: np.ndarray, count: int, options: FbankOptions) -> np.ndarray:
    length, shift = options.frame_length, options.frame_shift
    frames = np.lib.stride_tricks.as_strided(x, shape=(count, length), strides=(x.strides[0] * shift, x.strides[0]))
    frames = frames - frames.mean(axis=1, keepdims=True)
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - options.preemphasis * previous) * _povey_window(length)
    spectrum = scipy.fft.rfft(frames.astype(np.float32), n=options.n_fft, axis=1)  # float32 in, complex64 out
    power = spectrum.real**2 + spectrum.imag**2
    energies = power @ _mel_banks(options)
    return np.log(np.maximum(energies, _EPS)).astype(np.float32)


def cepstra(fbank: np.ndarray, count: int = 20) -> np.ndarray:
    """Cepstral coefficients 1..``count`` of log mel frames (DCT-II, orthonormal; c0, the loudness, left out).

    A cheap per-frame description of the voice, used to classify every frame once speakers are known.
    """
    return scipy.fft.dct(np.asarray(fbank, dtype=np.float32), type=2, axis=1, norm="ortho")[:, 1 : count + 1]
