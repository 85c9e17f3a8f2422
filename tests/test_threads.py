"""Several files in flight inside one process (``[run] threads``), sharing one speech model.

Two threads transcribe at once with one ``WhisperModel`` (two CTranslate2 workers). It must
really overlap (two files read at the same time), load the model once, and give exactly the rows
of one file at a time: same words, timings, probabilities and scores. (Until numpy's BLAS was
pinned with ``pipeline.speech.blas``, a file that finished first could put BLAS back on two threads
while the other was computing its mel features, and that file's words came out differently.)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, comparable_rows

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


@pytest.mark.slow  # 23 s: make test stays under 15 minutes (929 s in one fresh-clone CI run with it)
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
    for table in ("segments", "calls"):
        rows = [comparable_rows(tmp_path / run, table) for run in ("one", "two")]
        assert len(rows[0]) >= 3 and rows[0] == rows[1], table

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


def test_one_file_on_two_decoders_reads_as_one_decode(tmp_path: Path, asr_model,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A model loaded for two threads gives each decode one core instead of two, and splits one file's
    chunks between its two decoders (so the last file of a run does not leave a core idle): the words
    and their timings must not depend on either (CTranslate2's threads split the work, not the
    arithmetic; a chunk is decoded alone within its batch)."""
    from conftest import espeak_wav, read_wav, write_wav

    from pipeline.speech import transcribe
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
    batches: list[tuple[str, float, float, int]] = []
    real_batch = transcribe._decode_batch

    def timed_batch(model, samples, chunks, kwargs):  # the real function, with its thread and time
        start = time.perf_counter()
        try:
            return real_batch(model, samples, chunks, kwargs)
        finally:
            batches.append((threading.current_thread().name, start, time.perf_counter(), len(chunks)))

    monkeypatch.setattr(transcribe, "_decode_batch", timed_batch)
    one_core = transcribe_file(load_asr_model(AsrConfig(cpu_threads=1), 2), path)
    assert two_cores.duration_s > 45 and sum(len(p.text.split()) for p in two_cores.pieces) > 100  # 2+ chunks
    assert [(p.text, p.words) for p in two_cores.pieces] == [(p.text, p.words) for p in one_core.pieces]
    # the file's chunks went to both decoders, which worked at the same time
    assert len({name for name, *_ in batches}) == 2 and sum(n for *_, n in batches) >= 2, batches
    assert any(a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for i, a in enumerate(batches) for b in batches[i + 1:]), \
        batches


def test_one_blas_thread_holds_on_every_thread_until_the_last_one_leaves() -> None:
    """The BLAS pin is the process's: a thread that leaves must not lift it while another is inside,
    and a pin made on a worker thread must hold even when the main thread has set BLAS's threads
    before (threadpoolctl otherwise lets only its first "controlling" thread change them)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from pipeline.speech.blas import one_blas_thread

    def blas_threads() -> int:
        return next(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    with threadpool_limits(limits=2, user_api="blas"):  # the main thread takes control of BLAS
        if blas_threads() != 2:
            pytest.skip("numpy's BLAS cannot run two threads here")
        inside, both_inside, first_out = threading.Event(), threading.Event(), threading.Event()
        seen: dict[str, int] = {}

        def early() -> None:
            with one_blas_thread():
                inside.set()
                seen["early"] = blas_threads()
                both_inside.wait(10)
            first_out.set()

        def late() -> None:
            inside.wait(10)
            with one_blas_thread():
                both_inside.set()
                first_out.wait(10)  # the other thread has left
                seen["late, after the other left"] = blas_threads()

        workers = [threading.Thread(target=early), threading.Thread(target=late)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert seen == {"early": 1, "late, after the other left": 1}
        assert blas_threads() == 2  # the last one out restored it
