"""An hour-long stereo call is decoded and transcribed in blocks: peak memory stays under 2 GiB."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import MODELS, ROOT, require_tool, run_measuring_peak_rss

from pipeline.ingest.audio import SAMPLE_RATE, iter_audio_blocks
from pipeline.store import local as store

sys.path.insert(0, str(ROOT / "scripts"))
from make_long_call import make_long_call  # noqa: E402

GiB = 1024**3


def test_blocks_cover_the_file_exactly(tmp_path: Path) -> None:
    require_tool("espeak-ng", "apt-get install espeak-ng")
    path = make_long_call(tmp_path / "ten.wav", minutes=10, every_s=60)
    blocks = list(iter_audio_blocks(path, block_s=120))
    assert [b.offset for b in blocks] == [i * 120 * SAMPLE_RATE for i in range(5)]
    assert all(b.samples.shape == (2, 120 * SAMPLE_RATE) for b in blocks)
    assert sum(b.samples.shape[1] for b in blocks) == 10 * 60 * SAMPLE_RATE


def test_per_file_timeout_is_recorded_not_retried(tmp_path: Path, prefect_harness) -> None:
    require_tool("espeak-ng", "apt-get install espeak-ng")
    from flows.score_flow import run_scoring
    from pipeline.config import load_config

    path = make_long_call(tmp_path / "ten.wav", minutes=10, every_s=20)
    config = load_config(None, run__timeout_s=2.0, run__retries=2)
    summary = run_scoring([str(path)], out_dir=str(tmp_path / "out"), models=str(MODELS), config=config)
    assert summary.count("failed") == 1
    error = store.read_dataset(tmp_path / "out", "errors").to_pylist()[0]
    assert (error["step"], error["error_type"], error["attempts"]) == ("transcribe", "FileTimeoutError", 1)
    assert "per-file limit of 2 s" in error["message"] and "--timeout" in error["hint"]


@pytest.mark.slow
def test_one_hour_call_peak_memory_under_2_gib(tmp_path: Path) -> None:
    require_tool("espeak-ng", "apt-get install espeak-ng")
    path = make_long_call(tmp_path / "2026-11-20__dana__longco__one-hour.wav", minutes=60, every_s=60)
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    code, peak = run_measuring_peak_rss(
        [sys.executable, "-m", "cli", "run", str(path), "--out", str(out), "--models", str(MODELS), "--no-report"],
        log, cwd=ROOT, env={**os.environ, "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(tmp_path / "prefect"))})
    assert code == 0, log.read_text()
    call = store.read_dataset(out, "calls").to_pylist()[0]
    assert call["audio_duration_s"] == pytest.approx(3600, abs=1)
    segments = store.read_dataset(out, "segments").to_pylist()
    # one clip a minute on alternating channels: speech is found all through the hour, on both channels
    assert {s["speaker"] for s in segments} == {"rep", "customer"}
    assert max(s["end_s"] for s in segments) > 3500
    minutes_with_speech = {int(s["start_s"] // 60) for s in segments}
    assert len(minutes_with_speech) >= 50
    print(json.dumps({"peak_rss_gib": round(peak / GiB, 3), "segments": len(segments)}))
    assert peak < 2 * GiB, f"peak RSS {peak / GiB:.2f} GiB"


def test_a_measured_peak_is_the_commands_own_not_this_process(tmp_path: Path) -> None:
    """The memory tests above measure their command, even after this process has grown (other tests' models)."""
    import numpy as np

    ballast = np.ones(96 * 2**20 // 8 * 8)  # 768 MiB held here while the command runs
    code, peak = run_measuring_peak_rss([sys.executable, "-c", "import time; time.sleep(0.1)"], tmp_path / "log")
    assert code == 0 and ballast.nbytes > 700 * 2**20
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MiB"
    code, peak = run_measuring_peak_rss([sys.executable, "-c", "import numpy; b = numpy.ones(2**25); exit(3)"],
                                        tmp_path / "log")
    assert code == 3 and 2**28 <= peak < 2**28 + 100 * 2**20  # its own 256 MiB array is counted
