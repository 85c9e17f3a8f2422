"""Two runs on one output do not score the same call at once: a call another live run is scoring is left to
it (``deferred``), a dead run's claim is taken over, and every call ends up scored once."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, numbered_transcripts

from pipeline import process
from pipeline.config import PipelineConfig
from pipeline.ingest.discover import discover_inputs
from pipeline.report.terminal import load_call_rows
from pipeline.store import claims
from pipeline.store.schema import identity_key


def _run(folder: Path, out: Path, artifact, nlp) -> dict[str, str]:
    process.prepare_output(out)
    sources, bad = discover_inputs([str(folder)])
    assert bad == []
    return {Path(s.path).name: process.process_source(s, asr=None, artifact=artifact, nlp=nlp,
                                                      config=PipelineConfig(), out_dir=out).status
            for s in sources}


def _claim_file(out: Path, name: str) -> Path:
    return out / claims.CLAIMS / identity_key(name)


def _write_claim(path: Path, **fields) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": "", "since": time.time(),
                                **fields}))


_HOLDER = """
import sys, time
from pathlib import Path
from pipeline.store import claims
with claims.claim(Path(sys.argv[1]), sys.argv[2]) as holder:
    assert holder is None
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_call_another_live_run_is_scoring_is_left_to_it_and_taken_over_when_that_run_dies(
        tmp_path: Path, artifact, nlp) -> None:
    folder, out = numbered_transcripts(tmp_path / "in", 2), tmp_path / "out"
    process.prepare_output(out)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out), identity_key("call-00.json")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert _run(folder, out, artifact, nlp) == {"call-00.json": "deferred", "call-01.json": "scored"}
        sources, _ = discover_inputs([str(folder)])
        outcome = process.process_source(sources[0], asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(),
                                         out_dir=out)
        assert outcome.status == "deferred" and f"process {holder.pid} on {socket.gethostname()}" in outcome.message
        assert [r["source_id"] for r in load_call_rows(out)] == ["call-01.json"]
        assert not _claim_file(out, "call-01.json").exists()  # released once committed
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding its claim: nothing releases it
        holder.wait()
    assert _claim_file(out, "call-00.json").exists()
    assert _run(folder, out, artifact, nlp) == {"call-00.json": "scored", "call-01.json": "skipped"}
    assert sorted(r["source_id"] for r in load_call_rows(out)) == ["call-00.json", "call-01.json"]
    assert list((out / claims.CLAIMS).iterdir()) == []


def test_stale_claims_are_taken_over_and_live_ones_kept(tmp_path: Path, artifact, nlp) -> None:
    folder, out = numbered_transcripts(tmp_path / "in", 5), tmp_path / "out"
    process.prepare_output(out)
    # a live process on this machine, started here (the test runner's parent is no such thing when the
    # runner was started in the background: then it is process 1, which no run's claim may name)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _stale_claims_are_taken_over_and_live_ones_kept(folder, out, live.pid, artifact, nlp)
    finally:
        live.kill()
        live.wait()


def _stale_claims_are_taken_over_and_live_ones_kept(folder: Path, out: Path, live: int, artifact, nlp) -> None:
    started = Path(f"/proc/{live}/stat").read_text().rsplit(")", 1)[1].split()[19]
    _write_claim(_claim_file(out, "call-00.json"), pid=live, started=started)  # kept
    # its process id, but another start time: the id was reused by a new process, the claim's run is gone
    _write_claim(_claim_file(out, "call-01.json"), pid=live, started=str(int(started) + 1))
    # another machine's claims: young ones kept, ones older than REMOTE_STALE_S taken over
    _write_claim(_claim_file(out, "call-02.json"), host="another-host", pid=1, since=time.time() - 60)
    _write_claim(_claim_file(out, "call-03.json"), host="another-host", pid=1,
                 since=time.time() - claims.REMOTE_STALE_S - 60)
    # half written (its writer died between creating and writing it): kept for a minute, then taken over
    broken = _claim_file(out, "call-04.json")
    broken.write_text('{"host": ')
    assert _run(folder, out, artifact, nlp) == {"call-00.json": "deferred", "call-01.json": "scored",
                                                "call-02.json": "deferred", "call-03.json": "scored",
                                                "call-04.json": "deferred"}
    old = time.time() - 120
    os.utime(broken, (old, old))
    assert _run(folder, out, artifact, nlp)["call-04.json"] == "scored"
    assert sorted(p.name for p in (out / claims.CLAIMS).iterdir()) == sorted(
        identity_key(n) for n in ("call-00.json", "call-02.json"))  # other runs' live claims are not touched


def test_a_failed_call_releases_its_claim(tmp_path: Path, artifact, nlp) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "broken.json").write_text("{not json")
    assert _run(folder, out, artifact, nlp) == {"broken.json": "failed"}
    assert list((out / claims.CLAIMS).iterdir()) == []


def _score_all(args: tuple[str, str]) -> dict[str, str]:
    from conftest import MODELS

    from pipeline.classify.artifacts import load_artifact
    from pipeline.speech.turns import build_sentencizer

    folder, out = args
    return _run(Path(folder), Path(out), load_artifact(MODELS), build_sentencizer())


def test_two_runs_at_once_score_every_call_once(tmp_path: Path) -> None:
    """Two processes over the same 24 calls and output: between them every call is scored once, each call by
    one of them (the other skips it, or leaves it to the run holding it), and no claim is left."""
    folder, out = numbered_transcripts(tmp_path / "in", 24), tmp_path / "out"
    process.prepare_output(out)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        first, second = pool.map(_score_all, [(str(folder), str(out))] * 2)
    for name in first:
        assert sorted([first[name], second[name]]) in (["deferred", "scored"], ["scored", "skipped"]), name
    assert sum(s == "scored" for s in [*first.values(), *second.values()]) == 24
    assert len(load_call_rows(out)) == 24
    assert list((out / claims.CLAIMS).iterdir()) == []


def test_a_claim_of_the_same_run_is_taken_over_from_any_machine(tmp_path: Path, artifact, nlp) -> None:
    """A task the scheduler gives again (its Dask worker died, prefect#15442) finds its first attempt's claim:
    made by the same batch, so it is taken over at once even from another machine; another batch's is kept."""
    folder, out = numbered_transcripts(tmp_path / "in", 2), tmp_path / "out"
    process.prepare_output(out)
    batch = process.new_batch_id()
    for name, made_by in (("call-00.json", batch), ("call-01.json", "another-batch")):
        _write_claim(_claim_file(out, name), host="dead-worker-host", pid=1, batch=made_by)
    sources, _ = discover_inputs([str(folder)])
    outcomes = [process.process_source(s, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(), out_dir=out,
                                       batch=batch).status for s in sources]
    assert outcomes == ["scored", "deferred"]


def test_claims_left_on_done_calls_are_swept_and_odd_claims_never_block_for_ever(tmp_path: Path, artifact,
                                                                                nlp) -> None:
    """A run killed after committing a call but before releasing its claim leaves a claim no later run looks at
    (the call is done): the next batch sweeps it. Claims this module did not write (a folder, a dangling link,
    a process id no system uses, init's pid 1, a time that is not a number) hold nothing once a minute old."""
    folder, out = numbered_transcripts(tmp_path / "in", 6), tmp_path / "out"
    assert set(_run(folder, out, artifact, nlp).values()) == {"scored"}
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _write_claim(_claim_file(out, "call-00.json"), pid=int(dead.stdout))  # its process has exited
    (folder / "call-01.json").write_text((folder / "call-01.json").read_text().replace("Friday", "Monday"))
    odd = {"call-01.json": None, "call-02.json": None, "call-03.json": {"pid": 99999999999999},
           "call-04.json": {"pid": 1}, "call-05.json": {"since": "NaN"}}
    _claim_file(out, "call-01.json").mkdir()
    _claim_file(out, "call-02.json").symlink_to(tmp_path / "nowhere")
    for name, fields in odd.items():
        if fields is not None:
            _write_claim(_claim_file(out, name), **fields)
    old = time.time() - 120
    for name in odd:
        os.utime(_claim_file(out, name), (old, old), follow_symlinks=False)
    assert _run(folder, out, artifact, nlp) == {"call-00.json": "skipped", "call-01.json": "scored",
                                                "call-02.json": "skipped", "call-03.json": "skipped",
                                                "call-04.json": "skipped", "call-05.json": "skipped"}
    assert list((out / claims.CLAIMS).iterdir()) == []


def test_a_forced_run_leaves_a_call_another_run_committed_while_it_ran(tmp_path: Path, artifact, nlp) -> None:
    """Two ``--force`` runs on one output share the work like other runs: the claim keeps them off a call the
    other is scoring, and a call the other committed well after this run began is settled as without --force
    (metadata re-applied); one committed before it began, or in its first minute (clocks of two hosts may
    differ), is scored again (that is what --force is for)."""
    import dataclasses

    folder, out = numbered_transcripts(tmp_path / "in", 1), tmp_path / "out"
    forced = dataclasses.replace(PipelineConfig(), run=dataclasses.replace(PipelineConfig().run, force=True))
    now = process.run_stamp(artifact, None, forced)
    assert now.started_at > 0 and dataclasses.replace(now, started_at=1.0) == now  # not part of a stamp's identity
    began = dataclasses.replace(now, started_at=now.started_at - process.FORCE_CLOCK_MARGIN_S - 5)
    assert _run(folder, out, artifact, nlp) == {"call-00.json": "scored"}  # another run commits the call
    (folder / "calls.csv").write_text("path,rep\ncall-00.json,Priya\n")  # and its rep is named afterwards
    source = discover_inputs([str(folder)])[0][0]
    assert process.check_done(source, began, out, force=True) is None  # not read before the claim
    with process.scoring_claim(source, began, out, force=True) as done:
        assert done is not None and done.status == "updated", done
        assert "while this one ran" in (done.message or "") and "rep" in (done.message or "")
    assert [r["rep"] for r in load_call_rows(out)] == ["Priya"]
    for stamp in (dataclasses.replace(now, started_at=now.started_at - 10),  # committed in the run's first minute
                  process.run_stamp(artifact, None, forced),  # a run that began after the commit
                  dataclasses.replace(began, started_at=0.0)):  # no start time known
        with process.scoring_claim(source, stamp, out, force=True) as done:
            assert done is None
    assert list((out / claims.CLAIMS).iterdir()) == []


def test_a_call_committed_while_the_run_ran_is_said_so(tmp_path: Path, artifact, nlp) -> None:
    """A task Dask runs again after a worker died finds its own call committed: it is ``skipped``, but the run
    says it was scored while it ran (it was counted "already done" as if from an earlier night)."""
    import dataclasses

    folder, out = numbered_transcripts(tmp_path / "in", 1), tmp_path / "out"
    now = process.run_stamp(artifact, None)
    began = dataclasses.replace(now, started_at=now.started_at - process.FORCE_CLOCK_MARGIN_S - 5)
    assert _run(folder, out, artifact, nlp) == {"call-00.json": "scored"}  # the task's first attempt commits
    source = discover_inputs([str(folder)])[0][0]
    again = process.check_done(source, began, out)
    assert again is not None and again.status == "skipped" and again.during_run
    assert "scored while this run ran" in (again.message or "")
    for stamp in (now, dataclasses.replace(now, started_at=0.0)):  # a run that began in the same minute, or unknown
        earlier = process.check_done(source, stamp, out)
        assert earlier is not None and earlier.status == "skipped" and not earlier.during_run and not earlier.message
