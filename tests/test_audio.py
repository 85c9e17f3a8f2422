"""Decoding real audio files with PyAV: formats, channels, rates, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_wav

from pipeline.errors import AudioDecodeError, EmptyAudioError
from pipeline.ingest.audio import SAMPLE_RATE, load_audio, probe_duration


def _encode(src: Path, dst: Path, codec: str) -> Path:
    """Re-encode a WAV with PyAV (real mp3/ogg/m4a encoders)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        in_stream = inp.streams.audio[0]
        stream = out.add_stream(codec, rate=in_stream.rate)
        layout = {1: "mono", 2: "stereo"}[in_stream.codec_context.channels]
        stream.layout = layout
        formats = [f.name for f in stream.codec.audio_formats]
        stream.format = "fltp" if "fltp" in formats else formats[0]
        resampler = av.AudioResampler(format=stream.format.name, layout=layout,
                                      rate=in_stream.rate)
        for frame in inp.decode(in_stream):
            frame.pts = None
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return dst


def test_real_flac_decodes_to_16k(realdata: Path) -> None:
    audio = load_audio(realdata / "audio" / "jfk.flac")
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.source_sample_rate == 44100
    assert audio.duration_s == pytest.approx(11.0, abs=0.1)
    assert audio.samples.dtype == np.float32
    assert np.abs(audio.samples).max() <= 1.0


def test_telephone_mulaw_8k_is_upsampled(realdata: Path) -> None:
    audio = load_audio(realdata / "audio" / "phone_call_8k_mulaw.wav")
    assert audio.source_sample_rate == 8000
    assert audio.n_channels == 1
    assert audio.duration_s == pytest.approx(30.0, abs=0.1)


def test_stereo_keeps_channels_apart(realdata: Path) -> None:
    audio = load_audio(realdata / "audio" / "stereo_diarization.wav")
    assert audio.n_channels == 2
    assert not np.allclose(audio.samples[0], audio.samples[1])


@pytest.mark.parametrize("codec,suffix", [("libmp3lame", ".mp3"), ("flac", ".flac"), ("aac", ".m4a")])
def test_compressed_formats(tmp_path: Path, codec: str, suffix: str) -> None:
    t = np.arange(3 * 16000) / 16000
    tone = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 440 * t)])
    src = write_wav(tmp_path / "tone.wav", tone, 16000)
    dst = _encode(src, tmp_path / f"tone{suffix}", codec)
    audio = load_audio(dst)
    assert audio.n_channels == 2
    assert audio.duration_s == pytest.approx(3.0, abs=0.1)
    assert probe_duration(dst) == pytest.approx(3.0, abs=0.15)


def test_silence_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros((1, 5 * 16000)), 16000)
    with pytest.raises(EmptyAudioError, match="silent"):
        load_audio(path)


def test_too_short_is_refused(tmp_path: Path) -> None:
    t = np.arange(8000) / 16000
    path = write_wav(tmp_path / "half.wav", 0.3 * np.sin(2 * np.pi * 300 * t)[None, :], 16000)
    with pytest.raises(EmptyAudioError, match="only 0.50 s"):
        load_audio(path)


def test_random_bytes_are_refused_with_hint(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path)
    assert "re-export" in info.value.hint or "recording" in info.value.hint


def test_max_duration_is_enforced(tmp_path: Path) -> None:
    t = np.arange(4 * 16000) / 16000
    path = write_wav(tmp_path / "long.wav", 0.3 * np.sin(2 * np.pi * 300 * t)[None, :], 16000)
    with pytest.raises(EmptyAudioError, match="longer than"):
        load_audio(path, max_duration_s=2)


def test_truncated_wav_keeps_what_is_there_and_warns(tmp_path: Path, caplog) -> None:
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    whole = write_wav(tmp_path / "whole.wav", (0.3 * np.sin(2 * np.pi * 220 * t))[None, :], SAMPLE_RATE)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the header still claims 4 s
    with caplog.at_level("WARNING", logger="callcycle.audio"):
        audio = load_audio(cut)
    assert audio.duration_s == pytest.approx(2.0, abs=0.05)
    assert "looks truncated" in caplog.text and "4.0 s" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="callcycle.audio"):
        load_audio(whole)
    assert "truncated" not in caplog.text


@pytest.mark.parametrize("size", [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"])
def test_a_wav_written_to_a_pipe_is_read_to_its_end(tmp_path: Path, caplog, size: bytes) -> None:
    """ffmpeg writing WAV to a pipe leaves the RIFF and data sizes at 0xFFFFFFFF (length unknown): a 5-s call
    was refused as 'longer than the limit of 14400 s (67109 s by its header)' (an outside tester's find)."""
    t = np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE
    whole = write_wav(tmp_path / "whole.wav", (0.3 * np.sin(2 * np.pi * 220 * t))[None, :], SAMPLE_RATE).read_bytes()
    data_at = whole.index(b"data")
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(b"RIFF" + size + whole[8:data_at + 4] + size + whole[data_at + 8:])
    with caplog.at_level("WARNING", logger="callcycle.audio"):
        audio = load_audio(streamed, max_duration_s=14400)
    assert audio.duration_s == pytest.approx(5.0, abs=0.01)
    assert "truncated" not in caplog.text


def test_nan_samples_in_a_float_wav_are_read_as_silence_and_said(tmp_path: Path, caplog) -> None:
    """A 32-bit float WAV with NaN samples (a faulty export) failed as 'no speech was recognised' though it
    is clear speech: the NaNs reached the recogniser. They are read as silence now, with a warning."""
    import struct

    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype("<f4")
    x[::500] = np.nan
    x[7] = np.inf
    data = x.tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, SAMPLE_RATE, SAMPLE_RATE * 4, 4, 32)  # IEEE float, mono
    path = tmp_path / "nan.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
                     + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    with caplog.at_level("WARNING", logger="callcycle.audio"):
        audio = load_audio(path)
    assert np.isfinite(audio.samples).all() and audio.duration_s == pytest.approx(2.0, abs=0.01)
    assert "were not numbers (NaN or infinite)" in caplog.text
    assert np.abs(audio.samples).max() == pytest.approx(0.3, abs=0.01)
