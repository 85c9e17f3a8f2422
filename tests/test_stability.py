"""Same conversation, same score: inaudible noise must not move a call's scores (issue 12).

Two variants of one real synthesised call, each with ±1 least-significant bit of random noise
(fixed seeds), go through the real pipeline (decode, Whisper, turns, segments, classifiers,
score); their action share and stage mix must agree within the tolerance the stability
benchmark (``scripts/bench_stability.py``) holds every benchmark call to under noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import read_wav, write_wav

from pipeline.config import PipelineConfig
from pipeline.ingest.discover import discover_inputs
from pipeline.process import read_call, score_turns

#: Points of action share / stage share two noise variants may differ by (BENCHMARKS.md, stability).
TOLERANCE = 0.03


def _score(path: Path, asr_model, artifact, nlp):
    (source,), _ = discover_inputs([str(path)])
    call = read_call(source, asr_model, PipelineConfig())
    return score_turns(call, artifact, nlp, PipelineConfig())


def test_two_noise_variants_of_one_call_score_alike(tmp_path: Path, two_speaker_stereo, asr_model, artifact,
                                                    nlp) -> None:
    samples, rate = read_wav(two_speaker_stereo[0])
    scored = []
    for seed in (1, 2):
        noise = np.random.default_rng(seed).integers(-1, 2, size=samples.shape)
        noisy = np.clip(samples.astype(np.int32) + noise, -32768, 32767).astype(np.int16)
        scored.append(_score(write_wav(tmp_path / f"noise-{seed}.wav", noisy, rate), asr_model, artifact, nlp))
    a, b = (s.score for s in scored)
    assert a.action_share is not None and b.action_share is not None
    assert abs(a.action_share - b.action_share) <= TOLERANCE, (a.action_share, b.action_share)
    for stage in a.stage_shares:
        assert a.stage_shares[stage] == pytest.approx(b.stage_shares[stage], abs=TOLERANCE), stage
