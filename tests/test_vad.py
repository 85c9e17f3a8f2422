"""Speech regions: one unpadded VAD pass gives the recogniser's padded regions exactly."""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

from tests.conftest import espeak_wav, read_wav

RATE = 16000


def _speech_with_pauses(tmp_path) -> np.ndarray:
    parts = []
    for k, (text, pause_s) in enumerate([("Can you send the revised quote by Thursday?", 0.25),
                                         ("Yes, I will send it tomorrow morning.", 0.9),
                                         ("Great, thanks.", 0.12), ("Talk soon.", 2.0)]):
        samples, rate = read_wav(espeak_wav(text, tmp_path / f"{k}.wav"))
        g = gcd(RATE, rate)
        speech = resample_poly(samples[0].astype(np.float32) / 32768.0, RATE // g, rate // g).astype(np.float32)
        parts += [speech, np.zeros(int(pause_s * RATE), dtype=np.float32)]
    return np.concatenate([np.zeros(RATE // 3, dtype=np.float32)] + parts)


def test_padding_one_unpadded_pass_equals_faster_whispers_padded_regions(tmp_path) -> None:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from pipeline.speech import vad

    x = _speech_with_pauses(tmp_path)
    for pad_ms, max_s in [(400, 30.0), (200, 30.0), (400, 2.0)]:
        theirs = get_speech_timestamps(x, VadOptions(min_silence_duration_ms=160, speech_pad_ms=pad_ms,
                                                     max_speech_duration_s=max_s))
        ours = vad.pad(vad.detect(x, max_speech_s=max_s - 2 * pad_ms / 1000), pad_ms, x.shape[0])
        assert ours == [(s["start"], s["end"]) for s in theirs]
        assert len(ours) >= 3


def test_merge_bridges_short_pauses_then_drops_blips() -> None:
    from pipeline.speech import vad

    regions = [(0, 16000), (16000 + 3200, 32000), (48000, 48000 + 1600), (80000, 96000)]
    # 200 ms pause bridged at 300 ms; the 100 ms blip dropped at 150 ms
    assert vad.merge(regions, 300, 150) == [(0, 32000), (80000, 96000)]
    assert vad.merge(regions, 100, 0) == regions
    assert vad.pad([(8000, 16000), (17000, 32000)], 60, 32500) == [(8000 - 960, 16500), (16500, 32500)]


def test_snap_moves_edges_outwards_onto_the_grid_without_overlap() -> None:
    from pipeline.speech import vad

    grid = 2560  # 160 ms
    regions = [(3000, 9000), (9500, 20000), (40100, 45000)]
    snapped = vad.snap(regions, 160, 46000)
    assert snapped == [(2560, 9250), (9250, 20480), (38400, 46000)]  # the first two meet halfway
    for (a, b), (c, d) in zip(regions, snapped):
        assert c <= a and d >= b  # outwards only: no speech is cut
    # every edge is on the grid except where two regions met halfway and the end of the audio
    assert all(e % grid == 0 for r in snapped for e in r if e not in (9250, 46000))
    assert all(snapped[i][1] <= snapped[i + 1][0] for i in range(len(snapped) - 1))
    assert vad.snap(regions, 0, 46000) == regions
    # edges that moved by one 32-ms VAD window land on the same grid points
    assert vad.snap([(3000 + 512, 9000 - 512)], 160, 46000) == vad.snap([(3000, 9000)], 160, 46000)


def test_the_recogniser_snaps_its_padded_regions_when_asked(tmp_path) -> None:
    from pipeline.config import AsrConfig
    from pipeline.speech import vad
    from pipeline.speech.transcribe import _speech_regions

    x = _speech_with_pauses(tmp_path)
    plain, raw = _speech_regions(x, AsrConfig())
    assert plain == vad.pad(raw, 400, x.shape[0])  # the default: faster-whisper's regions
    snapped, raw_again = _speech_regions(x, AsrConfig(vad_grid_ms=160))
    assert raw_again == raw
    assert snapped == vad.snap(plain, 160, x.shape[0]) and snapped != plain
