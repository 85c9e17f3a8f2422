"""The scoring flow on a real local Dask cluster of worker processes (prefect-dask).

Checks what scale-out must not change: the same rows as a single-process run, the speech
model and classifiers loaded once per worker process (not per file), and no call written
twice when Dask re-runs a finished task (prefect#15442) or a worker is killed mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from conftest import MODELS, comparable_rows, numbered_transcripts
from prefect import flow

distributed = pytest.importorskip("distributed")
pytest.importorskip("prefect_dask")

from flows import resources  # noqa: E402
from flows.score_flow import run_scoring, score_file  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.errors import ServiceError  # noqa: E402


@pytest.fixture(scope="module")
def batch(tmp_path_factory, two_speaker_stereo) -> Path:
    """Four audio calls (distinct bytes) and two transcripts."""
    folder = tmp_path_factory.mktemp("dask-in")
    raw = two_speaker_stereo[0].read_bytes()
    for i in range(4):  # a different trailing byte keeps the sha256 (the call key) distinct
        (folder / f"call-{i}.wav").write_bytes(raw + bytes([i]) * 2)
    for i in range(2):
        (folder / f"notes-{i}.json").write_text(json.dumps({"call_id": f"notes-{i}", "turns": [
            {"speaker": "Priya", "text": "What would a good outcome look like for your team this quarter?"},
            {"speaker": "Tom", "text": f"Honestly we just need invoice batch {i} out on time."},
            {"speaker": "Priya", "text": "Okay. I'll send you a pilot plan by Thursday."}]}))
    return folder


@pytest.fixture
def cluster(prefect_harness):
    """Two worker processes, one thread each, reporting to the test's Prefect API. Closed after its
    test: a client left current would capture every later Dask run in this process."""
    from prefect.settings import get_current_settings

    api = str(get_current_settings().api.url)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"}) as local:
        with distributed.Client(local) as client:
            yield local, client


def test_dask_cluster_gives_the_single_process_result_and_loads_models_once_per_worker(
        prefect_harness, batch: Path, cluster, tmp_path: Path) -> None:
    local, client = cluster
    single, multi = tmp_path / "single", tmp_path / "dask"
    one = run_scoring([str(batch)], out_dir=str(single), models=str(MODELS))
    resources.artifact.__wrapped__.cache_clear()  # so a load in this (the parent) process would count
    parent_loads = resources.LOADS["artifact"]
    many = run_scoring([str(batch)], out_dir=str(multi), models=str(MODELS), dask_address=local.scheduler_address)
    # the parent only checks the model's card and checksum; the workers load it
    assert resources.LOADS["artifact"] == parent_loads
    assert one.count("scored") == many.count("scored") == 6
    single_calls, multi_calls = comparable_rows(single, "calls"), comparable_rows(multi, "calls")
    assert len(single_calls) == len(multi_calls) == 6
    for a, b in zip(single_calls, multi_calls):
        assert a == b, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert comparable_rows(single, "segments") == comparable_rows(multi, "segments")

    # while this test's client is current, a run aimed elsewhere is refused instead of being sent here
    with pytest.raises(ServiceError, match="already has a Dask client"):
        run_scoring([str(batch)], out_dir=str(tmp_path / "elsewhere"), models=str(MODELS), workers=2)
    loads = client.run(lambda: dict(resources.LOADS))  # {worker address: counts in that process}
    assert len(loads) == 2
    worked = [counts for counts in loads.values() if counts]
    assert worked, "no file ran on a worker"
    for counts in worked:  # each worker process loaded each model at most once, however many files it ran
        assert counts.get("asr_model", 0) <= 1 and counts.get("artifact", 0) <= 1, loads
        assert counts.get("sentencizer", 0) <= 1, loads
    assert sum(c.get("asr_model", 0) for c in worked) >= 1


def test_rerun_of_a_finished_task_does_not_duplicate_a_call(prefect_harness, batch: Path, tmp_path: Path) -> None:
    """Dask may run a finished task again after its worker died: the call must still be there once."""
    from pipeline.ingest.discover import discover_inputs

    out = tmp_path / "out"
    run_scoring([str(batch / "call-0.wav"), str(batch / "notes-0.json")], out_dir=str(out), models=str(MODELS))
    before = comparable_rows(out, "calls")
    sources, _ = discover_inputs([str(batch / "call-0.wav"), str(batch / "notes-0.json")])

    @flow
    def rerun(force: bool) -> list[str]:  # the same task again, as Dask would after losing a worker
        cfg = load_config(None, run__force=force or None)
        return [score_file(s, cfg, str(MODELS), None, str(out)).status for s in sources]

    assert rerun(True) == ["scored", "scored"]  # even forced: same file names, replaced atomically
    assert rerun(False) == ["skipped", "skipped"]  # not forced: a finished call is not redone
    assert comparable_rows(out, "calls") == before
    assert len(list((out / "calls").glob("part-*.parquet"))) == 2
    assert len(list((out / "segments").glob("part-*.parquet"))) == 2


@pytest.mark.slow
def test_worker_killed_mid_run_leaves_each_call_once(prefect_harness, batch: Path, tmp_path: Path) -> None:
    """SIGKILL a worker process while it transcribes; Dask re-runs its files elsewhere."""
    from prefect.settings import get_current_settings

    api = str(get_current_settings().api.url)
    many = tmp_path / "many"
    many.mkdir()
    for i in range(3):  # more files than workers, so the killed worker had work queued or running
        for src in batch.iterdir():
            shutil.copy(src, many / f"{i}-{src.name}")
            if src.suffix == ".wav":
                (many / f"{i}-{src.name}").write_bytes(src.read_bytes() + bytes([10 + i]) * 2)
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"}) as local, \
            distributed.Client(local) as client:
        killed = []

        def kill_one(outcome) -> None:
            if not killed:  # after the first result, kill the process of one worker
                pid = next(iter(client.run(os.getpid).values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        summary = run_scoring([str(many)], out_dir=str(out), models=str(MODELS),
                              dask_address=local.scheduler_address, on_result=kill_one)
    assert killed
    expected = len({p.read_bytes() for p in many.iterdir()})  # identical copies are scored once
    scored = [o for o in summary.outcomes if o.status == "scored"]
    # every call is committed exactly once, whether or not its task ran twice
    keys = [p.stem for p in (out / "calls").glob("part-*.parquet")]
    assert len(keys) == len(set(keys)) == expected, (len(keys), expected, summary.outcomes)
    assert len(ds.dataset(out / "calls").to_table()) == expected
    assert len(scored) + summary.count("skipped") >= expected - summary.count("failed")


def test_workers_option_starts_a_local_cluster_of_processes(prefect_harness, batch: Path, tmp_path: Path) -> None:
    """`--workers 2`: prefect-dask's local cluster (two processes, one thread each) gives the same rows."""
    inputs = [str(batch / "notes-0.json"), str(batch / "notes-1.json"), str(batch / "call-1.wav")]
    single = run_scoring(inputs, out_dir=str(tmp_path / "single"), models=str(MODELS))
    local = run_scoring(inputs, out_dir=str(tmp_path / "local"), models=str(MODELS), workers=2)
    assert single.count("scored") == local.count("scored") == 3
    assert comparable_rows(tmp_path / "single", "calls") == comparable_rows(tmp_path / "local", "calls")
    assert comparable_rows(tmp_path / "single", "segments") == comparable_rows(tmp_path / "local", "segments")


@pytest.mark.slow
def test_a_file_that_kills_its_worker_fails_alone(prefect_harness, batch: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """One input whose processing kills its worker process (as a decoder crash or the OOM killer would)
    is a failed input with an errors/ row; the other files of the batch are scored and the run returns."""
    import dask
    from prefect.settings import get_current_settings

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('CALLCYCLE_TEST_POISON'):\n"
        "    import pipeline.process as p\n"
        "    _real = p.read_call\n"
        "    def read_call(source, *a, **k):\n"
        "        if 'poison' in source.path:\n"
        "            os._exit(139)\n"
        "        return _real(source, *a, **k)\n"
        "    p.read_call = read_call\n")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("notes-0.json", "notes-1.json"):
        shutil.copy(batch / name, inputs / name)
    (inputs / "poison.json").write_text((batch / "notes-0.json").read_text().replace("batch 0", "batch 9"))
    # set before the worker processes start, so their interpreters load the hook (this one already started)
    monkeypatch.setenv("CALLCYCLE_TEST_POISON", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), str(Path.cwd()), os.environ.get("PYTHONPATH", "")]))
    env = {"PREFECT_API_URL": str(get_current_settings().api.url), "PREFECT_LOGGING_LEVEL": "WARNING"}
    out = tmp_path / "out"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                     env=env) as local:
        summary = run_scoring([str(inputs)], out_dir=str(out), models=str(MODELS), dask_address=local.scheduler_address)
    status = {Path(o.path).name: o.status for o in summary.outcomes}
    assert status == {"notes-0.json": "scored", "notes-1.json": "scored", "poison.json": "failed"}
    errors = ds.dataset(out / "errors").to_table().to_pylist()
    assert [(Path(e["source_path"]).name, e["step"]) for e in errors] == [("poison.json", "worker")]
    assert "stopped its worker process" in errors[0]["message"]
    assert len(ds.dataset(out / "calls").to_table()) == 2


def test_a_scheduler_that_is_not_there_or_has_no_workers_is_refused_before_work(prefect_harness, batch: Path,
                                                                                 tmp_path: Path) -> None:
    """No scheduler at the address, or one without workers (the files would wait for ever): a clear
    error before anything is written."""
    from flows.score_flow import check_dask_scheduler

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    with pytest.raises(ServiceError, match="No Dask scheduler answers"):
        check_dask_scheduler(f"tcp://127.0.0.1:{free}", timeout_s=2)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty:
        with pytest.raises(ServiceError, match="has no workers"):
            run_scoring([str(batch)], out_dir=str(tmp_path / "out"), models=str(MODELS),
                        dask_address=empty.scheduler_address)
    assert not (tmp_path / "out").exists()
    for malformed, why in (("notanaddress", "missing port"), ("http://127.0.0.1:8787", "not a Dask protocol")):
        with pytest.raises(ServiceError, match=why):  # at once, not after the client's 20 s finaliser
            check_dask_scheduler(malformed)


def test_workers_without_a_prefect_server_are_named_in_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started without PREFECT_API_URL each start a Prefect API of their own and keep it: the run
    still works, and the check before it says so."""
    import logging

    from flows.score_flow import check_dask_scheduler

    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the in-process workers read this environment
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("callcycle")
    logger.addHandler(handler)
    try:
        with distributed.LocalCluster(n_workers=2, processes=False, dashboard_address=None) as local:
            check_dask_scheduler(local.scheduler_address)
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records if "PREFECT_API_URL" in r.getMessage()] == [
        f"2 of the 2 Dask worker processes at {local.scheduler_address} have no PREFECT_API_URL: each starts a "
        "temporary Prefect API of its own (about 220 MB, living as long as the worker) and this run's task logs "
        "are not kept; start the workers with PREFECT_API_URL set to your Prefect server"]


@pytest.mark.slow
def test_a_scheduler_that_dies_mid_run_stops_the_batch_and_blames_no_file(prefect_harness, tmp_path: Path) -> None:
    """The cluster is lost (its scheduler killed) once calls are committed: the batch stops with one
    ServiceError, no input gets an errors row (each used to be recorded as a file that killed its worker,
    which also hid the calls already committed), and the committed calls stay readable."""
    import subprocess
    import sys
    import time

    from prefect.settings import get_current_settings

    from pipeline.report.terminal import load_call_rows

    folder, out = numbered_transcripts(tmp_path / "in", 80), tmp_path / "out"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "PREFECT_LOGGING_LEVEL": "WARNING"}
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1", "--nworkers", "2",
                                "--host", "127.0.0.1", "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        address = f"tcp://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # both workers up
            try:
                with distributed.Client(address, timeout=5) as client:
                    if len(client.scheduler_info()["workers"]) == 2:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the test cluster did not start"
            time.sleep(0.5)
        settled = []

        def kill_scheduler(outcome) -> None:
            settled.append(outcome)
            if len(settled) == 3:
                scheduler.kill()

        with pytest.raises(ServiceError, match="Dask cluster stopped answering") as caught:
            run_scoring([str(folder)], out_dir=str(out), models=str(MODELS), dask_address=address,
                        on_result=kill_scheduler)
    finally:
        scheduler.kill()
        os.killpg(workers.pid, signal.SIGKILL)
        scheduler.wait()
        workers.wait()
    assert "kept" in str(caught.value)
    assert not list((out / "errors").glob("part-*.parquet"))  # no file is blamed
    rows = load_call_rows(out)
    assert len(rows) >= 3 and len(rows) == len(list((out / "calls").glob("part-*.parquet")))
