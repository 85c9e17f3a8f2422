"""Several files in flight inside one process (``[run] threads``), sharing one speech model.

Two threads transcribe at once with one ``WhisperModel`` (two CTranslate2 workers). It must
really overlap (two files read at the same time), load the model once, and read the calls as one
file at a time does. Not word for word: concurrent decodes are not exactly reproducible (now and
then a word's probability or a full stop differs, BENCHMARKS.md), which is why ``threads``
defaults to 1; the transcripts must still agree to within a few words.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, comparable_rows, word_error_rate

from flows import resources
from flows.score_flow import run_scoring
from pipeline import process
from pipeline.config import AsrConfig, load_config
from pipeline.speech.transcribe import decode_threads


@pytest.fixture(scope="module")
def calls(tmp_path_factory, two_speaker_stereo) -> Path:
    """Three stereo calls of distinct bytes (distinct call keys)."""
    folder = tmp_path_factory.mktemp("threads-in")
    raw = two_speaker_stereo[0].read_bytes()
    for i in range(3):
        (folder / f"call-{i}.wav").write_bytes(raw + bytes([i]) * 2)
    return folder


def test_two_threads_give_the_one_thread_rows_with_one_model_load(prefect_harness, calls: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    real_read_call = process.read_call

    def timed_read_call(*args, **kwargs):  # the real function, with the time it ran
        start = time.perf_counter()
        try:
            return real_read_call(*args, **kwargs)
        finally:
            with lock:
                spans.append((start, time.perf_counter()))

    monkeypatch.setattr(process, "read_call", timed_read_call)
    one = run_scoring([str(calls)], out_dir=str(tmp_path / "one"), models=str(MODELS),
                      config=load_config(None, run__threads=1))
    one_spans, spans[:] = list(spans), []
    loads_before = resources.LOADS["asr_model"]
    two = run_scoring([str(calls)], out_dir=str(tmp_path / "two"), models=str(MODELS),
                      config=load_config(None, run__threads=2))
    assert one.count("scored") == two.count("scored") == 3
    assert {r["call_key"] for r in comparable_rows(tmp_path / "one", "calls")} == \
        {r["call_key"] for r in comparable_rows(tmp_path / "two", "calls")}
    for call in ("call-0", "call-1", "call-2"):
        words = [" ".join(r["text"] for r in sorted(comparable_rows(tmp_path / run, "segments"),
                                                    key=lambda r: r["segment_index"]) if r["call_id"] == call)
                 for run in ("one", "two")]
        assert len(words[0].split()) > 30 and word_error_rate(words[0], words[1]) <= 0.1, words

    # one model for both threads (none if an earlier test in this process already loaded it)
    assert resources.LOADS["asr_model"] - loads_before <= 1
    model = resources.asr_model(AsrConfig(), 2)
    assert model.parallel == 2 and model.whisper.model.num_workers == 2

    def overlapping(found: list[tuple[float, float]]) -> bool:
        return any(a0 < b1 and b0 < a1 for i, (a0, a1) in enumerate(found) for b0, b1 in found[i + 1:])

    assert len(spans) == 3 and overlapping(spans), spans  # two files were transcribed at the same time
    assert len(one_spans) == 3 and not overlapping(one_spans), one_spans


def test_decode_threads_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert decode_threads(0, 1) == 0  # one decode: CTranslate2 chooses
    assert decode_threads(0, 2) == 4
    assert decode_threads(0, 3) == 2
    assert decode_threads(0, 16) == 1  # never below one thread
    assert decode_threads(3, 2) == 3  # [asr] cpu_threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert decode_threads(0, 2) >= 1


def test_one_core_per_decode_reads_as_two_cores(tmp_path: Path, asr_model) -> None:
    """Two files at once give each decode one core instead of two: the words and their timings must
    not depend on that (CTranslate2's threads split the work, not the arithmetic)."""
    from conftest import espeak_wav, read_wav, write_wav

    from pipeline.speech.transcribe import load_asr_model, transcribe_file

    lines = ["Thanks for joining, let's look at the renewal terms first.",
             "We moved the launch to March because the data migration slipped.",
             "I will send you the revised quote by Thursday afternoon.",
             "Can you confirm who signs off on the budget this quarter?",
             "Last time the onboarding took six weeks instead of three.",
             "Let's book a review call for next Tuesday at ten.",
             "Our team needs the reporting module before the audit.",
             "I'll ask legal to check the data processing agreement.",
             "What went wrong with the pilot in the Berlin office?",
             "We agreed to cut the seat count and keep the support plan.",
             "Please share the usage numbers from the last two months.",
             "I can set up the sandbox for your engineers tomorrow."]
    parts, rate = [], 16000
    for i, line in enumerate(lines):
        samples, rate = read_wav(espeak_wav(line, tmp_path / f"l{i}.wav"))
        parts += [samples[0], np.zeros(int(0.5 * rate), dtype=np.int16)]
    path = write_wav(tmp_path / "long.wav", np.concatenate(parts)[None, :], rate)

    two_cores = transcribe_file(asr_model, path)  # one decode, CTranslate2 chooses its threads
    one_core = transcribe_file(load_asr_model(AsrConfig(cpu_threads=1), 2), path)
    assert two_cores.duration_s > 45 and sum(len(p.text.split()) for p in two_cores.pieces) > 100  # 2+ chunks
    assert [(p.text, p.words) for p in two_cores.pieces] == [(p.text, p.words) for p in one_core.pieces]
