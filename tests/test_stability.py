"""Same conversation, same score: inaudible noise must not move a call's scores (issue 12).

Two variants of one real synthesised call, each with ±1 least-significant bit of random noise
(fixed seeds), go through the real pipeline (decode, Whisper, turns, segments, classifiers,
score); their action share and stage mix must agree within the tolerance the stability benchmark
(``scripts/bench_stability.py``, BENCHMARKS.md) holds every benchmark call to under noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import read_wav, write_wav

from pipeline.config import PipelineConfig
from pipeline.ingest.discover import discover_inputs
from pipeline.process import ScoredCall, read_call, score_turns

#: Points of action share / stage share two noise variants may differ by (BENCHMARKS.md, stability).
TOLERANCE = 0.03


def _score(path: Path, asr_model, artifact, nlp) -> ScoredCall:
    (source,), _ = discover_inputs([str(path)])
    call = read_call(source, asr_model, PipelineConfig())
    return score_turns(call, artifact, nlp, PipelineConfig())


@pytest.fixture(scope="module")
def noise_variants(tmp_path_factory, two_speaker_stereo, asr_model, artifact, nlp) -> list[ScoredCall]:
    samples, rate = read_wav(two_speaker_stereo[0])
    folder = tmp_path_factory.mktemp("noise")
    scored = []
    for seed in (1, 2):
        noise = np.random.default_rng(seed).integers(-1, 2, size=samples.shape)
        noisy = np.clip(samples.astype(np.int32) + noise, -32768, 32767).astype(np.int16)
        scored.append(_score(write_wav(folder / f"noise-{seed}.wav", noisy, rate), asr_model, artifact, nlp))
    return scored


def test_two_noise_variants_of_one_call_score_alike(noise_variants: list[ScoredCall]) -> None:
    a, b = (s.score for s in noise_variants)
    assert a.action_share is not None and b.action_share is not None
    assert abs(a.action_share - b.action_share) <= TOLERANCE, (a.action_share, b.action_share)


def test_two_noise_variants_of_one_call_have_the_same_stage_mix(noise_variants: list[ScoredCall]) -> None:
    a, b = (s.score for s in noise_variants)
    for stage in a.stage_shares:
        assert a.stage_shares[stage] == pytest.approx(b.stage_shares[stage], abs=TOLERANCE), stage
