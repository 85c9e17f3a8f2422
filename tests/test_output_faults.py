"""Output-folder faults are one clear error before work starts (exit 2), never a traceback; a full
disk stops the batch cleanly and the rerun finishes it (issue 11)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import MODELS, ROOT

from flows.score_flow import run_scoring
from pipeline import process
from pipeline.config import load_config
from pipeline.errors import OutputError
from pipeline.store import local as store


def _folder(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(n):
        (folder / f"call-{i}.json").write_text(json.dumps({"turns": [
            {"speaker": "A", "text": f"Shall we review step {i} of the rollout on Monday?"},
            {"speaker": "B", "text": "Yes, I will send the notes before then."}]}))
    return folder


def _user_env(**extra: str) -> dict[str, str]:
    """The environment a user has: no test-only Prefect logging level (the CLI picks its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    return {**env, "PREFECT_HOME": os.environ.get("PREFECT_HOME", "/tmp/callcycle-test-prefect"), **extra}


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = _user_env()
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_out_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 1)
    (tmp_path / "out").write_text("not a folder")
    result = _cli("run", str(folder), "--out", str(tmp_path / "out"), "--models", str(MODELS))
    assert result.returncode == 2, result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    assert "is a file, not a folder" in text and "Traceback" not in text


def test_a_configured_prefect_server_that_does_not_answer_is_exit_2_before_work(tmp_path: Path) -> None:
    """PREFECT_API_URL naming a dead server: one clear error and exit 2 (exit 1 means a failed input),
    not a Prefect traceback; nothing is written."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder, out = _folder(tmp_path, 1), tmp_path / "out"
    env = {**_user_env(), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    result = subprocess.run([sys.executable, "-m", "cli", "run", str(folder), "--out", str(out), "--models",
                             str(MODELS)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, text
    assert f"The Prefect server at http://127.0.0.1:{port}/api (PREFECT_API_URL) does not answer" in text
    assert "prefect server start" in text and "Traceback" not in text
    assert not out.exists()


@pytest.mark.parametrize("code,fragment", [(errno.EROFS, "Cannot write to"), (errno.EACCES, "Cannot write to"),
                                           (errno.ENOSPC, "is full")])
def test_unwritable_output_is_refused_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int,
                                                  fragment: str) -> None:
    def refuse(path: Path) -> Path:
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(store, "temp_path", refuse)
    with pytest.raises(OutputError, match=fragment):
        process.prepare_output(tmp_path / "out")


@pytest.mark.parametrize("threads", [1, 2])
def test_full_disk_stops_the_batch_and_the_rerun_finishes_it(prefect_harness, tmp_path: Path, threads: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills after two Parquet writes. One file at a time, that is exactly the first call; with two
    files in flight the two calls' writes may interleave, so none or one is complete when the disk fills."""
    folder, out = _folder(tmp_path, 4), tmp_path / "out"
    config = load_config(None, run__threads=threads)
    real_write = pq.write_table
    writes = {"n": 0}

    def fill_up(table, where, **kwargs):
        if store.SCHEMA_FILE in str(where):  # the row-less schema files, written before any call
            return real_write(table, where, **kwargs)
        writes["n"] += 1
        if writes["n"] > 2:  # the first call's segments and calls files fit, then the disk is full
            real_write(table, where, **kwargs)  # a partial file is left behind, as on a real full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(store.pq, "write_table", fill_up)
    with pytest.raises(OutputError, match="is full"):
        run_scoring([str(folder)], out_dir=str(out), models=str(MODELS), config=config)
    monkeypatch.setattr(store.pq, "write_table", real_write)
    kept = store.read_dataset(out, "calls").num_rows
    assert kept == 1 if threads == 1 else kept in (0, 1)
    assert store.read_dataset(out, "errors").num_rows == 0  # the inputs are fine: no error rows for them
    assert not [p for p in out.rglob(".*.tmp")], "no temporary files left behind"
    calls = {r["call_key"] for r in store.read_dataset(out, "calls").to_pylist()}
    assert set(store.read_dataset(out, "segments").column("call_key").to_pylist()) <= calls
    again = run_scoring([str(folder)], out_dir=str(out), models=str(MODELS), config=config)
    assert again.count("scored") == 4 - kept and again.count("skipped") == kept
    assert store.read_dataset(out, "calls").num_rows == 4


def test_full_disk_through_the_cli_is_exit_2_without_traceback(tmp_path: Path) -> None:
    """The same fault seen by a user: a wrapper script makes every Parquet write fail with ENOSPC."""
    folder = _folder(tmp_path, 2)
    script = tmp_path / "full.py"
    script.write_text(
        "import errno, sys\nimport pyarrow.parquet as pq\n"
        "def full(*a, **k):\n    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "pq.write_table = full\nsys.argv = ['callcycle', *sys.argv[1:]]\nfrom cli import main\nmain()\n")
    env = _user_env(PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, str(script), "run", str(folder), "--out", str(tmp_path / "out"),
                             "--models", str(MODELS)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, text[-2000:]
    assert "is full" in text and "run again" in text and "Traceback" not in text


@pytest.fixture()
def small_tmpfs(tmp_path: Path):
    """A real 256 KiB filesystem (tmpfs); skipped where mounting is not permitted."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_real_full_disk_stops_cleanly_and_the_rerun_finishes(small_tmpfs: Path, tmp_path: Path, artifact,
                                                             nlp) -> None:
    from pipeline.config import PipelineConfig
    from pipeline.ingest.discover import discover_inputs

    folder, out = _folder(tmp_path, 40), small_tmpfs / "out"
    sources, _ = discover_inputs([str(folder)])

    def batch() -> list[str]:
        process.prepare_output(out)
        statuses = []
        for source in sources:
            statuses.append(process.process_source(source, asr=None, artifact=artifact, nlp=nlp,
                                                   config=PipelineConfig(), out_dir=out).status)
        return statuses

    with pytest.raises(OutputError, match="is full"):
        batch()
    stored = store.read_dataset(out, "calls").num_rows
    assert 0 < stored < 40
    assert not list(out.rglob(".*.tmp")), "no temporary files left on the full disk"
    assert store.read_dataset(out, "errors").num_rows == 0
    keys = set(store.read_dataset(out, "calls").column("call_key").to_pylist())
    assert set(store.read_dataset(out, "segments").column("call_key").to_pylist()) == keys
    subprocess.run(["mount", "-o", "remount,size=32m", str(small_tmpfs)], check=True)
    statuses = batch()
    assert statuses.count("scored") == 40 - stored and statuses.count("skipped") == stored
    assert store.read_dataset(out, "calls").num_rows == 40


def test_an_output_fault_fails_only_its_own_batch_in_a_long_lived_process(tmp_path: Path, artifact, nlp) -> None:
    """A worker process that lives on (Dask, a deployment) does not carry a full disk met by one batch into
    the next: the queued files of the failed batch fail fast, the next batch (new id, no prepare_output in
    this process, as in a Dask worker) scores normally once the disk has space again."""
    from pipeline.config import PipelineConfig
    from pipeline.ingest.discover import describe_source

    folder, out = _folder(tmp_path, 2), tmp_path / "out"
    out.mkdir()
    config = PipelineConfig()
    first, second = (describe_source(p) for p in sorted(folder.iterdir()))
    stamp = process.run_stamp(artifact, None)
    failed_batch, next_batch = process.new_batch_id(), process.new_batch_id()
    full = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OutputError, match="is full"):
        process.record_failure(str(out), first.path, first.sha256, full, stamp, batch=failed_batch)
    with pytest.raises(OutputError, match="is full"):  # the rest of that batch fails fast, nothing is read
        process.check_done(second, stamp, str(out), batch=failed_batch)
    outcome = process.process_source(second, asr=None, artifact=artifact, nlp=nlp, config=config,
                                     out_dir=str(out), batch=next_batch)
    assert outcome.status == "scored"
    assert store.read_dataset(out, "calls").num_rows == 1 and store.read_dataset(out, "errors").num_rows == 0
