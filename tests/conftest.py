"""Shared fixtures: real audio made with espeak-ng/numpy/PyAV, the shipped model, a Prefect harness."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest

from pipeline.speech.metrics import word_error_rate  # noqa: F401  (re-exported for the tests)

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Caches (remembered fingerprints, sentence vectors, joined speech models) live in one folder per test
# session, never the user's: inherited by the CLI processes the tests start, removed at exit.
_CACHE = tempfile.mkdtemp(prefix="callcycle-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
MODELS = ROOT / "models"


#: Columns that differ between two runs of the same input (timing of the run itself).
RUN_VOLATILE = frozenset({"processing_s", "processed_at"})


def comparable_rows(out: Path, table: str) -> list[dict]:
    """Rows of ``out``'s Parquet ``table`` without :data:`RUN_VOLATILE` columns, in a stable order."""
    import json

    import pyarrow.dataset as ds

    rows = ds.dataset(out / table).to_table().to_pylist()
    for row in rows:
        for key in RUN_VOLATILE & set(row):
            row.pop(key)
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


#: Starts one command (its output to stderr), waits for it and prints its exit code and peak RSS (KiB) as JSON.
_PEAK_LAUNCHER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=sys.stderr)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


def run_measuring_peak_rss(args: list[str], log: Path, **popen) -> tuple[int, int]:
    """Run ``args`` to the end, its output into ``log``; return (exit code, its peak RSS in bytes).

    Linux carries a process's peak RSS across fork and exec, so a child started straight from
    this test process (pytest, perhaps after other tests loaded models) would report this
    process's peak instead of its own. A small launcher process starts the command, so what
    it inherits is the launcher's few MiB, not pytest's.
    """
    with log.open("w") as handle:
        launcher = subprocess.run([sys.executable, "-c", _PEAK_LAUNCHER, *args], stdout=subprocess.PIPE,
                                  stderr=handle, text=True, check=True, **popen)
    result = json.loads(launcher.stdout)
    return int(result["exit"]), int(result["maxrss_kib"]) * 1024


def require_tool(name: str, install_hint: str) -> str:
    """Path of a system tool; skips the test when it is missing, but fails under CI.

    ``.ci/run`` sets ``CALLCYCLE_STRICT=1`` after installing the Debian packages, so a missing
    tool there is an error rather than a silently skipped test.
    """
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed ({install_hint})"
        if os.environ.get("CALLCYCLE_STRICT") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def numbered_transcripts(folder: Path, n: int) -> Path:
    """``call-00.json`` … : ``n`` short two-speaker JSON transcripts with distinct bytes, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        turns = [{"speaker": "rep", "text": f"Call {i}: can you send me the numbers by Friday?"},
                 {"speaker": "customer", "text": f"Sure, I will send them for account {i} on Thursday."}]
        (folder / f"call-{i:02d}.json").write_text(json.dumps({"turns": turns}))
    return folder


def espeak_wav(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    """Synthesize ``text`` to a WAV file with espeak-ng (skips the test if it is missing)."""
    require_tool("espeak-ng", "apt-get install espeak-ng")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data.reshape(-1, w.getnchannels()).T.copy(), w.getframerate()


def write_wav(path: Path, channels: np.ndarray, rate: int) -> Path:
    """Write int16 or float channels (shape ``(n_channels, n)``) as a PCM WAV."""
    data = channels
    if data.dtype != np.int16:
        data = (np.clip(data, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.T.tobytes())
    return path


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"shared real data not found at {REALDATA}")
    return REALDATA


@pytest.fixture(scope="session")
def artifact():
    from pipeline.classify.artifacts import load_artifact

    return load_artifact(MODELS)


@pytest.fixture(scope="session")
def asr_model():
    from pipeline.config import AsrConfig
    from pipeline.speech.transcribe import load_asr_model

    return load_asr_model(AsrConfig())


@pytest.fixture(scope="session")
def nlp():
    from pipeline.speech.turns import build_sentencizer

    return build_sentencizer()


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def two_speaker_stereo(tmp_path_factory) -> tuple[Path, list[tuple[int, str]]]:
    """A stereo call: rep on the left channel, customer on the right, alternating turns."""
    tmp = tmp_path_factory.mktemp("stereo")
    script = [
        (0, "Thanks for making time today. What does success look like for your team?"),
        (1, "We need to cut our invoice processing time in half before the end of the year."),
        (0, "I will send you the proposal and the pricing by Friday."),
        (1, "Great. Please book a follow up call for next Tuesday morning."),
    ]
    rate = 22050
    pieces = []
    for i, (ch, text) in enumerate(script):
        samples, rate = read_wav(espeak_wav(text, tmp / f"t{i}.wav", "en-us" if ch == 0 else "en-gb-x-rp"))
        pieces.append((ch, samples[0]))
    gap = np.zeros(int(0.6 * rate), dtype=np.int16)
    left, right = [], []
    for ch, samples in pieces:
        silence = np.zeros_like(samples)
        left += [samples if ch == 0 else silence, gap]
        right += [samples if ch == 1 else silence, gap]
    stereo = np.stack([np.concatenate(left), np.concatenate(right)])
    return write_wav(tmp / "stereo_call.wav", stereo, rate), script
