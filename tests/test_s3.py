"""Object storage: inputs and --out as s3:// URIs against a real local S3 server (moto's server mode on
127.0.0.1), each call version committed exactly once by a create-only marker (If-None-Match: *),
readers that see only committed files, and the orphan sweep (issue 10, item 5)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import MODELS, ROOT, numbered_transcripts

from pipeline import process
from pipeline.config import PipelineConfig
from pipeline.errors import AlreadyCommittedError, InputError, OutputError
from pipeline.ingest.discover import describe_source, discover_inputs
from pipeline.report.data import load_call_rows, load_report_data
from pipeline.store.base import open_store
from pipeline.store.s3 import S3Store

TRANSCRIPTS = {
    "2026-11-02__dana__acme__discovery.json": [("Dana", "What does a good quarter look like for your team?"),
                                               ("Tom", "Honestly we need invoices out on time.")],
    "team/standup.json": [("Ana", "Last month the rollout slipped because nobody owned it."),
                          ("Raj", "I'll own the rollout from now on and send the plan by Friday.")],
    "team/renewal.json": [("Lee", "Can you send the security questionnaire by Friday?"),
                          ("Kim", "Yes, you'll have it Thursday.")],
}
SIDECAR = "path,rep,customer,date,call_id\nrenewal.json,lee,harbor,2026-11-05,renewal-harbor\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 (never 0.0.0.0), a free port; the AWS_* variables point at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "callcycle-test",
           "AWS_SECRET_ACCESS_KEY": "callcycle-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            patch.delenv(name, raising=False)
        try:
            yield env
        finally:
            server.stop()


@pytest.fixture()
def bucket(s3_server) -> str:
    """A fresh bucket per test."""
    name = f"calls-{uuid.uuid4().hex[:12]}"
    _boto(s3_server).create_bucket(Bucket=name)
    return name


def _boto(s3_server):
    import boto3

    return boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"])


def _write_tree(folder: Path) -> Path:
    for rel, turns in TRANSCRIPTS.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"turns": [{"speaker": s, "text": t} for s, t in turns]}))
    (folder / "team" / "calls.csv").write_text(SIDECAR)
    (folder / "README.md").write_text("not a call")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "skip.json").write_text("{}")
    return folder


def _upload(s3_server, folder: Path, bucket: str, prefix: str) -> str:
    client = _boto(s3_server)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}"


def _keys(s3_server, bucket: str, prefix: str = "") -> list[str]:
    pages = _boto(s3_server).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _scored(artifact, nlp, folder: Path, name: str, *texts: str, processing_s: float = 1.0):
    """``(key, segments, calls)`` tables of one transcript, built by the real pipeline steps."""
    path = folder / name
    path.write_text(json.dumps({"turns": [{"speaker": f"S{i % 2}", "text": t} for i, t in enumerate(texts)]}))
    source = describe_source(path, source_id=name)
    config = PipelineConfig()
    call = process.read_call(source, None, config)
    scored = process.score_turns(call, artifact, nlp, config)
    stamp = process.run_stamp(artifact, None)
    return process.build_tables(source, call, scored, stamp, artifact.taxonomy, processing_s)


def test_inputs_are_listed_from_s3_with_local_identities(s3_server, bucket: str, tmp_path: Path) -> None:
    local = _write_tree(tmp_path / "in")
    uri = _upload(s3_server, local, bucket, "incoming/calls")
    remote, remote_errors = discover_inputs([uri + "/"])
    here, local_errors = discover_inputs([str(local)])
    assert remote_errors == [] and local_errors == []

    def described(sources):
        return {s.source_id: (s.sha256, s.kind, s.fmt, s.call_id, s.metadata.rep, s.metadata.customer,
                              s.metadata.call_date) for s in sources}

    # same identities (path relative to the prefix, or the sidecar's call_id), bytes and metadata as on disk
    assert described(remote) == described(here)
    assert set(described(remote)) == {"2026-11-02__dana__acme__discovery.json", "team/standup.json", "renewal-harbor"}
    assert all(s.path.startswith(f"s3://{bucket}/incoming/calls/") for s in remote)
    # a glob and a single object; a missing prefix is an input error, not a crash
    globbed, _ = discover_inputs([f"s3://{bucket}/incoming/calls/team/*.json"])
    assert sorted(s.source_id for s in globbed) == ["renewal-harbor", "standup.json"]
    single, _ = discover_inputs([f"s3://{bucket}/incoming/calls/team/standup.json"])
    assert [s.source_id for s in single] == ["standup.json"]
    # the run's own output inside the input prefix is not an input (its commit markers are .json)
    inside, _ = discover_inputs([uri + "/"], exclude=f"{uri}/team")
    assert sorted(s.source_id for s in inside) == ["2026-11-02__dana__acme__discovery.json"]
    none, errors = discover_inputs([f"s3://{bucket}/nothing-here/"])
    assert none == [] and "No input matches" in str(errors[0][1])
    # before any work a run refuses a mistyped prefix or bucket (exit 2, nothing recorded), as a local path
    from pipeline.ingest.discover import unmatched_inputs

    assert unmatched_inputs([uri, f"s3://{bucket}/incoming/calls/team/*.json"]) == []
    typos = [f"s3://{bucket}/incoming/callz/", f"s3://{bucket}-nope/calls/", f"s3://{bucket}/incoming/calls/*.wav"]
    assert unmatched_inputs(typos) == typos
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "cli", "run", uri, typos[0], "--out", str(out), "--models",
                             str(MODELS)], cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=120)
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "No input matches" in text and "AWS_ENDPOINT_URL" in text, text
    assert not out.exists()


def test_an_object_whose_key_holds_glob_characters_is_that_object(s3_server, bucket: str) -> None:
    """``rep[1].json`` named outright is that object, not the glob ``rep1.json``; a real glob still globs."""
    from pipeline.ingest.discover import unmatched_inputs

    client = _boto(s3_server)
    body = json.dumps({"turns": [{"speaker": "A", "text": "I will send the quote by Friday."}]})
    for key in ("calls/rep[1].json", "calls/rep1.json", "calls/what?.json", "team[2]/a.json", "team2/b.json"):
        client.put_object(Bucket=bucket, Key=key, Body=(body + key).encode())
    literal, errors = discover_inputs([f"s3://{bucket}/calls/rep[1].json"])
    assert errors == [] and [s.source_id for s in literal] == ["rep[1].json"]
    question, _ = discover_inputs([f"s3://{bucket}/calls/what?.json"])
    assert [s.source_id for s in question] == ["what?.json"]
    globbed, _ = discover_inputs([f"s3://{bucket}/calls/rep[0-9].json"])
    assert [s.source_id for s in globbed] == ["rep1.json"]
    assert unmatched_inputs([f"s3://{bucket}/calls/rep[1].json", f"s3://{bucket}/calls/rep[0-9].json"]) == []
    prefix, errors = discover_inputs([f"s3://{bucket}/team[2]/"])  # a prefix with glob characters is that prefix
    assert errors == [] and [s.source_id for s in prefix] == ["a.json"]


def test_keys_that_read_as_another_path_are_refused_and_hidden_objects_noted(s3_server, bucket: str) -> None:
    """S3 keys are names: ``calls//x.json``, ``calls/./x.json`` and ``calls/sub/../x.json`` are objects of
    their own, which read as paths would all be the call ``x.json``; each is an input error, never merged
    into (or in place of) ``calls/x.json``. A hidden object under a prefix is noted, as in a folder."""
    from pipeline.ingest.discover import DiscoveryNotes

    client = _boto(s3_server)
    body = json.dumps({"turns": [{"speaker": "A", "text": "I will send the quote by Friday."}]})
    odd = ("calls//x.json", "calls/./x.json", "calls/sub/../x.json")
    for key in ("calls/x.json", *odd, "calls/.x.json", "calls/.git/y.json"):
        client.put_object(Bucket=bucket, Key=key, Body=(body + key).encode())
    notes = DiscoveryNotes()
    sources, errors = discover_inputs([f"s3://{bucket}/calls"], notes=notes)
    assert [(s.path, s.source_id) for s in sources] == [(f"s3://{bucket}/calls/x.json", "x.json")]
    assert sorted(path for path, _ in errors) == sorted(f"s3://{bucket}/{key}" for key in odd)
    assert all("'..' part" in str(error) and "Copy the object" in str(error) for _, error in errors)
    assert notes.hidden == [f"s3://{bucket}/calls/.x.json"]
    named, errors = discover_inputs([f"s3://{bucket}/calls/.x.json"])  # named outright: read, as on a disk
    assert errors == [] and [s.source_id for s in named] == [".x.json"]


def test_remembered_fingerprints_skip_downloads_until_an_object_is_replaced(s3_server, bucket: str,
                                                                            tmp_path: Path) -> None:
    """A nightly run over a bucket does not stream every object again: unchanged size, ETag and
    LastModified keep the remembered sha256; an object uploaded again is read again."""
    from pipeline.ingest.fingerprints import FingerprintCache

    uri = _upload(s3_server, _write_tree(tmp_path / "in"), bucket, "nightly")
    db = tmp_path / "sha256.sqlite3"
    with FingerprintCache(db) as cache:
        first, errors = discover_inputs([uri], fingerprints=cache)
        assert errors == [] and (cache.hits, cache.misses) == (0, 3)
    with FingerprintCache(db) as cache:
        second, _ = discover_inputs([uri], fingerprints=cache)
        assert (cache.hits, cache.misses) == (3, 0)
    assert {s.path: s.sha256 for s in second} == {s.path: s.sha256 for s in first}
    body = json.dumps({"turns": [{"speaker": "Ana", "text": "I'll own the rollout and send the plan Monday."}]})
    _boto(s3_server).put_object(Bucket=bucket, Key="nightly/team/standup.json", Body=body.encode())
    with FingerprintCache(db) as cache:
        third, _ = discover_inputs([uri], fingerprints=cache)
        assert (cache.hits, cache.misses) == (2, 1)
    changed = {s.source_id: s.sha256 for s in third}
    assert changed["team/standup.json"] == hashlib.sha256(body.encode()).hexdigest()
    assert changed["team/standup.json"] != {s.source_id: s.sha256 for s in first}["team/standup.json"]


def test_run_writes_to_and_reads_from_s3(s3_server, bucket: str, tmp_path: Path, artifact, nlp) -> None:
    local = _write_tree(tmp_path / "in")
    inputs = _upload(s3_server, local, bucket, "in")
    out = f"s3://{bucket}/scored"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)

    result = cli("run", inputs, "--out", out, "--models", str(MODELS), "--no-summary")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 scored, 0 skipped" in result.stdout and f"{out}/report.html" in result.stdout
    assert "--html report.html" in " ".join(result.stdout.split())  # a browser cannot open s3://

    # the same inputs scored on a local disk, without Prefect: the S3 rows are the same rows
    reference = tmp_path / "reference"
    process.prepare_output(reference)
    sources, _ = discover_inputs([str(local)])
    for source in sources:
        process.process_source(source, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(), out_dir=reference)
    columns = ("call_key", "call_id", "rep", "customer", "call_date", "n_segments", "action_share", "stage_shares")
    from_s3 = {r["source_id"]: tuple(r[c] for c in columns) for r in load_call_rows(out)}
    assert from_s3 == {r["source_id"]: tuple(r[c] for c in columns) for r in load_call_rows(reference)}
    assert len(from_s3) == 3 and from_s3["renewal-harbor"][2:4] == ("lee", "harbor")
    data = load_report_data(out)
    assert set(data.segments) == {v[0] for v in from_s3.values()}
    assert sum(len(v) for v in data.segments.values()) == sum(r["n_segments"] for r in load_call_rows(reference))

    # a rerun skips every committed call (in process: one Prefect start-up per test is enough)
    remote, _ = discover_inputs([inputs])
    rerun = [process.process_source(s, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(), out_dir=out)
             for s in remote]
    assert [o.status for o in rerun] == ["skipped"] * 3
    # summary and report read the bucket
    summary = cli("summary", out)
    assert summary.returncode == 0 and "Scored calls (3)" in summary.stdout, summary.stdout + summary.stderr
    report = cli("report", out, "--html", str(tmp_path / "report.html"))
    assert report.returncode == 0 and "Report with 3 calls" in report.stdout, report.stdout + report.stderr
    assert "renewal-harbor" in (tmp_path / "report.html").read_text(encoding="utf-8")
    markers = _keys(s3_server, bucket, "scored/commits/")
    assert len(markers) == 3 and all(k.endswith(".json") for k in markers)
    assert len(_keys(s3_server, bucket, "scored/calls/")) == 3  # no leftover attempts


def test_second_attempt_is_refused_by_the_commit_marker(s3_server, bucket: str, tmp_path: Path, artifact, nlp) -> None:
    store = S3Store(f"s3://{bucket}/out")
    store.check()
    key, segments, calls = _scored(artifact, nlp, tmp_path, "a.json", "How is the rollout going?",
                                   "It slipped a week.", "I will send the plan by Friday.", processing_s=1.0)
    _, segments_b, calls_b = _scored(artifact, nlp, tmp_path, "a.json", "How is the rollout going?",
                                     "It slipped a week.", "I will send the plan by Friday.", processing_s=2.0)
    # two attempts at the same call version are in flight: both have written their data files
    first, second = store.stage(key, segments, calls), store.stage(key, segments_b, calls_b)
    assert first.files != second.files
    assert store.read_dataset("calls").num_rows == 0  # nothing committed: readers see nothing
    assert store.commit(first) is True
    # the marker is create-only on the server itself: a second conditional PUT gets HTTP 412
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        _boto(s3_server).put_object(Bucket=bucket, Key=f"out/commits/{first.identity}/{key}.json", Body=b"{}",
                                    IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert store.commit(second) is False
    # exactly one committed row set, the first attempt's; the loser's data files are gone
    rows = store.read_dataset("calls").to_pylist()
    assert len(rows) == 1 and rows[0]["processing_s"] == 1.0
    segs = store.read_dataset("segments")
    assert segs.num_rows == rows[0]["n_segments"] == 3 and set(segs.column("call_key").to_pylist()) == {key}
    assert sorted(_keys(s3_server, bucket, "out/calls/")) == [f"out/{first.files['calls']}"]
    assert sorted(_keys(s3_server, bucket, "out/segments/")) == [f"out/{first.files['segments']}"]

    # the same through the pipeline: attempt A found nothing stored, B scored and committed meanwhile,
    # A's commit is refused and reported as skipped (no error row); the store holds B's rows only
    source = describe_source(tmp_path / "a.json", source_id="b.json")
    config, stamp = PipelineConfig(), process.run_stamp(artifact, None)
    assert process.check_done(source, stamp, store.location) is None
    call = process.read_call(source, None, config)
    scored = process.score_turns(call, artifact, nlp, config)
    outcome_b = process.process_source(source, asr=None, artifact=artifact, nlp=nlp, config=config,
                                       out_dir=store.location)
    assert outcome_b.status == "scored"
    with pytest.raises(AlreadyCommittedError) as lost:
        process.commit_call(store.location, source, call, scored, stamp, artifact.taxonomy, 9.0)
    outcome_a = process.record_failure(store.location, source.path, source.sha256, lost.value, stamp,
                                       source_id="b.json")
    assert outcome_a.status == "skipped" and outcome_a.call_key == outcome_b.call_key
    rows = {r["source_id"]: r for r in load_call_rows(store.location)}
    assert set(rows) == {"a.json", "b.json"} and rows["b.json"]["processing_s"] != 9.0
    assert store.read_dataset("errors").num_rows == 0


def test_orphans_are_swept(s3_server, bucket: str, tmp_path: Path, artifact, nlp) -> None:
    store = S3Store(f"s3://{bucket}/out")
    v1 = _scored(artifact, nlp, tmp_path, "a.json", "How is the rollout going?", "It slipped a week.")
    v2 = _scored(artifact, nlp, tmp_path, "a.json", "How is the rollout going?", "It slipped a week.",
                 "I will send the plan by Friday.")
    assert store.write_call(*v1) is True
    crashed = store.stage(*v2)  # a writer that died between its data files and its marker
    assert store.write_call(*v2) is True  # a new version of the call supersedes v1
    rows = store.read_dataset("calls").to_pylist()
    assert [r["call_key"] for r in rows] == [v2[0]] and store.read_dataset("segments").num_rows == 3
    only = store.read_segments([rows[0]["source_id"]])  # the current version's segments, nothing else
    assert set(only.column("call_key").to_pylist()) == {v2[0]} and only.num_rows == 3
    assert store.read_segments(["b.json"]).num_rows == 0
    before = _keys(s3_server, bucket, "out/")
    assert len(before) == 2 + 2 + 2 + 2  # v1, the crashed attempt, v2: 2 data files each; 2 markers
    assert store.sweep(3600.0) == 0  # everything is younger than an hour: in-flight attempts are safe
    removed = store.sweep(3600.0, now=datetime.now(UTC) + timedelta(hours=2))
    assert removed == 5  # v1's marker and files, the crashed attempt's files
    after = _keys(s3_server, bucket, "out/")
    committed = {uri.split(f"s3://{bucket}/", 1)[1] for uri in store.committed_files("calls") + store.committed_files("segments")}
    assert set(after) == committed | {f"out/commits/{crashed.identity}/{v2[0]}.json"}
    assert not any(crashed.name in k for k in after)
    assert [r["call_key"] for r in store.read_dataset("calls").to_pylist()] == [v2[0]]
    # the documented command does the same (nothing left to sweep now)
    env = {**os.environ}
    result = subprocess.run([sys.executable, "-m", "cli", "sweep", store.location, "--older-than", "0"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Swept 0" in result.stdout, result.stdout + result.stderr
    # a bucket that does not exist is said to, not "swept 0"
    result = subprocess.run([sys.executable, "-m", "cli", "sweep", "s3://no-such-bucket-here/x", "--older-than", "0"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "Swept" not in text and "no-such-bucket-here" in text, text


def test_a_left_write_check_is_swept_and_a_commit_conflict_is_retried(s3_server, bucket: str, tmp_path: Path,
                                                                        artifact, nlp, monkeypatch) -> None:
    """A write-check object a crashed check left under the prefix is swept; AWS's 409
    ConditionalRequestConflict to the create-only marker PUT (a race it asks to retry) is retried
    instead of stopping the batch."""
    from pipeline.store import s3 as s3mod

    store = S3Store(f"s3://{bucket}/out")
    _boto(s3_server).put_object(Bucket=bucket, Key="out/.callcycle-probe-0123abcd", Body=b"")
    assert store.sweep(3600.0) == 0  # young: it could be a check in progress
    assert store.sweep(3600.0, now=datetime.now(UTC) + timedelta(hours=2)) == 1
    assert "out/.callcycle-probe-0123abcd" not in _keys(s3_server, bucket, "out/")

    class Conflict(Exception):
        response = {"Error": {"Code": "ConditionalRequestConflict"}, "ResponseMetadata": {"HTTPStatusCode": 409}}

    real = store.fs.pipe_file
    conflicts = {"left": 2}

    def racing(path, data, mode="overwrite", **kwargs):
        if mode == "create" and "/commits/" in path and conflicts["left"]:
            conflicts["left"] -= 1
            raise OSError(5, "ConditionalRequestConflict") from Conflict()
        return real(path, data, mode=mode, **kwargs)

    monkeypatch.setattr(store.fs, "pipe_file", racing)
    monkeypatch.setattr(s3mod, "CONFLICT_PAUSE_S", 0.0)
    v1 = _scored(artifact, nlp, tmp_path, "a.json", "How is the rollout going?", "It slipped a week.")
    assert store.write_call(*v1) is True and conflicts["left"] == 0
    assert [r["call_key"] for r in store.read_dataset("calls").to_pylist()] == [v1[0]]


def test_versions_replace_revert_and_broken_commits(s3_server, bucket: str, tmp_path: Path, artifact, nlp,
                                                   monkeypatch) -> None:
    # objects count as settled at once, so the readers below serve remembered rows where they can
    monkeypatch.setattr("pipeline.store.snapshot.RACY_S", 0)
    store = S3Store(f"s3://{bucket}/out")
    v1 = _scored(artifact, nlp, tmp_path, "a.json", "How is the rollout going?", "It slipped a week.")
    v2 = _scored(artifact, nlp, tmp_path, "a.json", "How is the rollout going?", "It slipped a week.", "Fixed.")
    assert store.write_call(*v1) and store.write_call(*v2)
    source_id = "a.json"
    assert store.stored_call(source_id, v2[0]).state == "current"
    assert store.stored_call(source_id, v1[0]).state == "stale"
    # the input goes back to its first bytes: v1's old (superseded) marker does not block the commit
    v1_again = _scored(artifact, nlp, tmp_path, "a.json", "How is the rollout going?", "It slipped a week.",
                       processing_s=3.0)
    assert store.write_call(*v1_again) is True
    rows = store.read_dataset("calls").to_pylist()
    assert len(rows) == 1 and rows[0]["call_key"] == v1[0] and rows[0]["processing_s"] == 3.0
    # --force commits over the current copy of the same version
    assert store.write_call(*v1, replace=True) is True
    assert [r["processing_s"] for r in store.read_dataset("calls").to_pylist()] == [1.0]
    # a committed data file that went missing: the marker is quarantined and the call redone
    committed = store.committed_files("segments")[0]
    _boto(s3_server).delete_object(Bucket=bucket, Key=committed.split(f"s3://{bucket}/", 1)[1])
    assert store.stored_call(source_id, v1[0]).state == "broken"
    assert store.read_dataset("calls").num_rows == 0
    assert _keys(s3_server, bucket, "out/quarantine/commits/")
    assert store.write_call(*v1) is True and store.stored_call(source_id, v1[0]).state == "current"
    # metadata re-applied in place
    store.update_call(source_id, {"rep": "dana"})
    assert store.read_dataset("calls").to_pylist()[0]["rep"] == "dana"
    # a column the schema does not have is refused, as on a folder (Arrow would have dropped it silently)
    with pytest.raises(ValueError, match="rpe"):
        store.update_call(source_id, {"rpe": "ben"})
    assert store.read_dataset("calls").to_pylist()[0]["rep"] == "dana"


def test_readers_leave_out_files_of_an_older_schema(s3_server, bucket: str, tmp_path: Path, artifact, nlp,
                                                   caplog) -> None:
    """A call committed by an older callcycle (another schema version) is not read against today's
    schema, as on a disk: it is left out, with a warning saying how to score it again."""
    store = S3Store(f"s3://{bucket}/out")
    current = _scored(artifact, nlp, tmp_path, "new.json", "Can you send it by Friday?", "Yes.")
    store.write_call(*current)
    key, segments, calls = _scored(artifact, nlp, tmp_path, "old.json", "How did the pilot go?", "It slipped.")

    def aged(table):
        return table.replace_schema_metadata({**table.schema.metadata, b"callcycle.schema_version": b"2"})

    store.write_call(key, aged(segments), aged(calls))
    with caplog.at_level(logging.WARNING, logger="callcycle.store"):
        assert [r["source_id"] for r in store.read_dataset("calls").to_pylist()] == ["new.json"]
        assert set(store.read_dataset("segments").column("call_key").to_pylist()) == {current[0]}
    assert "older callcycle" in caplog.text and "callcycle run" in caplog.text
    # ... and the next run scores it again (as the warning says): its marker is set aside, not current
    assert store.stored_call("old.json", key).state == "broken"
    assert store.write_call(key, segments, calls) is True
    assert sorted(r["source_id"] for r in store.read_dataset("calls").to_pylist()) == ["new.json", "old.json"]


def test_an_unreachable_endpoint_is_said_for_inputs_too(monkeypatch) -> None:
    """An input prefix on an endpoint that does not answer is not "no input matches": it says why."""
    from pipeline.ingest.discover import unmatched_inputs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(InputError, match="cannot reach"):
        unmatched_inputs(["s3://calls/nov/"])


def test_unusable_outputs_are_refused_before_work(s3_server, bucket: str) -> None:
    with pytest.raises(OutputError, match="not found"):
        process.prepare_output(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/out")

    class IgnoresConditions:
        """An S3 server that drops If-None-Match: * (as some S3-compatible servers do)."""

        def __init__(self, fs) -> None:
            self.fs = fs

        def pipe_file(self, path, data, mode="overwrite"):
            return self.fs.pipe_file(path, data)

        def __getattr__(self, name):
            return getattr(self.fs, name)

    from pipeline import objectstore

    with pytest.raises(OutputError, match="ignores create-only writes"):
        S3Store(f"s3://{bucket}/out", fs=IgnoresConditions(objectstore.filesystem())).check()
    assert isinstance(open_store(f"s3://{bucket}/out"), S3Store)
    process.prepare_output(f"s3://{bucket}/out")  # the real server honours them
    assert _keys(s3_server, bucket) == []  # the probe leaves nothing behind
    # an address written another way is refused, not taken for a local folder named "S3:" (nothing is created)
    for typo in (f"S3://{bucket}/out", f"s3:/{bucket}/out", "gs://bucket/out"):
        with pytest.raises(OutputError, match="cannot write to"):
            process.prepare_output(typo)
        assert not Path(typo.split("/")[0]).exists()
    with pytest.raises(InputError, match="names no bucket"):
        process.prepare_output("s3://")
    _, errors = discover_inputs(["s3://"])
    assert [str(e) for _, e in errors] == ["'s3://' names no bucket. Write s3://BUCKET or s3://BUCKET/PREFIX."]


def test_keys_the_client_reads_as_a_version_are_refused_and_long_keys_read(s3_server, bucket: str, tmp_path: Path,
                                                                          artifact, nlp) -> None:
    """``call?versionId=1.json`` would be read by the S3 client as version "1.json" of the object ``call`` (and
    deferred for ever as "changed"): refused with a message. A key whose name is longer than a local file
    name may be is scored (its temporary copy gets a short name)."""
    client = _boto(s3_server)
    body = json.dumps({"turns": [{"speaker": "A", "text": "Can you send me the quote by Friday?"},
                                 {"speaker": "B", "text": "Sure, I will send it on Thursday."}]})
    long_name = "call-" + "x" * 300 + ".json"
    for key in ("in/call?versionId=1.json", "in/call", f"in/{long_name}"):
        client.put_object(Bucket=bucket, Key=key, Body=(body if key.endswith(".json") else "other").encode())
    sources, errors = discover_inputs([f"s3://{bucket}/in"])
    assert [s.source_id for s in sources] == [long_name]
    assert [(path, "'?versionId='" in str(e)) for path, e in errors] == [(f"s3://{bucket}/in/call?versionId=1.json",
                                                                         True)]
    out = tmp_path / "out"
    outcome = process.process_source(sources[0], asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(),
                                     out_dir=out)
    assert outcome.status == "scored", outcome.message
    # the refused key's errors row is not taken for an input that is gone (the client cannot be asked about it)
    from pipeline.store.prune import vanished_inputs

    for path, error in errors:
        process.record_failure(out, path, None, error, process.run_stamp(artifact, None))
    assert vanished_inputs(out, [f"s3://{bucket}/in"], {long_name}) == []


def test_readers_remember_markers_and_calls_rows_and_fetch_only_what_changed(
        s3_server, bucket: str, tmp_path: Path, artifact, nlp, monkeypatch) -> None:
    """A nightly summary over a bucket does not GET two objects per call again: a reader's snapshot
    keeps the commit markers and the calls and errors rows by each object's size, ETag and
    LastModified; only new or rewritten objects are fetched, and the rows are those of a full read."""
    from pipeline.store.schema import RunStamp, errors_table

    uri = f"s3://{bucket}/out"
    writer = S3Store(uri)
    for name in ("a.json", "b.json", "c.json"):
        assert writer.write_call(*_scored(artifact, nlp, tmp_path, name, "Can you send the plan by Friday?", "Yes."))
    writer.write_error(errors_table("e1", "bad.json", None, "read", "InputError", "not a transcript", "", 1,
                                    RunStamp("test", "cycle-of-value/1", None), "bad.json"))
    fetched: list[str] = []
    real_cat = S3Store._cat

    def counting_cat(self, paths):
        fetched.extend(self._rel(p).split("/", 1)[0] for p in paths)
        return real_cat(self, paths)

    monkeypatch.setattr(S3Store, "_cat", counting_cat)

    def read(table: str) -> tuple[list[dict], dict[str, int]]:
        fetched.clear()
        rows = S3Store(uri).read_dataset(table).to_pylist()
        counts = {kind: fetched.count(kind) for kind in sorted(set(fetched))}
        assert rows == S3Store(uri, snapshots=False).read_dataset(table).to_pylist()  # same rows as a full read
        return rows, counts

    def fetches(table: str) -> dict[str, int]:
        return read(table)[1]

    assert fetches("calls") == {"calls": 3, "commits": 3}  # first read: everything
    # objects younger than a minute are not remembered (a rewrite within LastModified's second) ...
    assert fetches("calls") == {"calls": 3, "commits": 3}
    monkeypatch.setattr("pipeline.store.snapshot.RACY_S", 0)  # ... and are once they have settled
    assert fetches("calls") == {"calls": 3, "commits": 3}
    assert fetches("calls") == {}  # nothing changed: the listing alone
    assert fetches("errors") == {"errors": 1} and fetches("errors") == {}
    writer.update_call("b.json", {"rep": "dana"})  # rewritten in place: a new ETag
    assert fetches("calls") == {"calls": 1}
    assert [r["rep"] for r in read("calls")[0] if r["source_id"] == "b.json"] == ["dana"]
    assert writer.write_call(*_scored(artifact, nlp, tmp_path, "d.json", "I'll book the review for Monday."))
    assert fetches("calls") == {"calls": 1, "commits": 1}
    marker = _keys(s3_server, bucket, "out/commits/")[0]  # one call's marker retired: its row goes
    retired = marker.rsplit("/", 1)[1].removesuffix(".json")  # the marker is named by the call key
    before = {r["call_key"]: r["source_id"] for r in read("calls")[0]}
    _boto(s3_server).delete_object(Bucket=bucket, Key=marker)
    assert fetches("calls") == {}  # nothing is fetched
    assert sorted(r["source_id"] for r in read("calls")[0]) == sorted(s for k, s in before.items() if k != retired)
    assert len(before) == 4 and retired in before
    # segments are not remembered (too large to keep twice): read as before
    assert S3Store(uri).read_dataset("segments").num_rows == S3Store(uri, snapshots=False).read_dataset("segments").num_rows


def test_a_renamed_object_is_scored_under_its_new_name(s3_server, bucket: str, tmp_path: Path, artifact, nlp) -> None:
    """A stored call whose object is gone does not hold a renamed copy back (S3 has no rename: a copy
    and a delete); while the first object is there, the copy is the same call and is skipped."""
    from pipeline.ingest.discover import DiscoveryNotes

    inputs = _upload(s3_server, _write_tree(tmp_path / "in"), bucket, "in")
    out = tmp_path / "out"
    process.prepare_output(out)
    stamp = process.run_stamp(artifact, None)
    sources, _ = discover_inputs([inputs])
    for source in sources:
        process.process_source(source, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(), out_dir=out)
    client = _boto(s3_server)
    client.copy_object(Bucket=bucket, Key="in/team/standup-copy.json",
                       CopySource={"Bucket": bucket, "Key": "in/team/standup.json"})

    def plan() -> tuple[list[str], list[str]]:
        notes = DiscoveryNotes()
        found, refused = discover_inputs([inputs], notes=notes)
        to_score, outcomes = process.plan_batch(out, found, refused, notes, stamp)
        return [s.path for s in to_score], [o.message or "" for o in outcomes if o.status == "skipped"]

    to_score, skipped = plan()  # both objects there: the copy is the stored call, reached again
    assert to_score == [] and any("same bytes as the stored call" in m for m in skipped), skipped
    client.delete_object(Bucket=bucket, Key="in/team/standup.json")
    to_score, skipped = plan()  # the first is gone: a rename, scored under its new name
    assert to_score == [f"{inputs}/team/standup-copy.json"] and not any("same bytes" in m for m in skipped), skipped


def test_calls_whose_object_is_gone_are_found_and_pruned_in_a_bucket(s3_server, bucket: str, tmp_path: Path,
                                                                     artifact, nlp) -> None:
    """An input object deleted from its prefix is named after a run and, with --prune, taken out of the
    readers' view of an s3:// output, its rows kept under retired/ (a name used again keeps both copies)."""
    from pipeline.store import schema as store_schema
    from pipeline.store.prune import retire, vanished_inputs

    inputs = _upload(s3_server, _write_tree(tmp_path / "in"), bucket, "in")
    out = f"s3://{bucket}/scored"
    process.prepare_output(out)

    def run() -> set[str]:
        sources, _ = discover_inputs([inputs])
        for source in sources:
            process.process_source(source, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(), out_dir=out)
        return {store_schema.source_identity(s) for s in sources}

    found = run()
    assert vanished_inputs(out, [inputs], found) == []
    client = _boto(s3_server)
    client.delete_object(Bucket=bucket, Key="in/team/standup.json")
    found = run()
    gone = vanished_inputs(out, [inputs], found)
    assert [v.source_path for v in gone] == [f"{inputs}/team/standup.json"]
    assert vanished_inputs(out, [f"s3://{bucket}/elsewhere"], found) == []  # another prefix's run touches nothing
    assert retire(out, gone) == 1
    assert sorted(r["source_id"] for r in load_call_rows(out)) == sorted(found)
    assert len(_keys(s3_server, bucket, "scored/retired/calls/")) == 1
    assert len(_keys(s3_server, bucket, "scored/retired/commits/")) == 1
    # the name comes back with other words, is scored, goes again: both retired copies are kept
    client.put_object(Bucket=bucket, Key="in/team/standup.json",
                      Body=json.dumps({"turns": [{"speaker": "Ana", "text": "We should book the review."}]}).encode())
    found = run()
    assert "team/standup.json" in {r["source_id"] for r in load_call_rows(out)}
    client.delete_object(Bucket=bucket, Key="in/team/standup.json")
    assert retire(out, vanished_inputs(out, [inputs], run())) == 1
    assert len(_keys(s3_server, bucket, "scored/retired/calls/")) == 2
    assert len(_keys(s3_server, bucket, "scored/retired/segments/")) == 2
    assert "team/standup.json" not in {r["source_id"] for r in load_call_rows(out)}


@pytest.mark.parametrize("reason", ["live", "dead"])
def test_a_call_another_run_is_scoring_is_left_to_it_under_an_s3_output(reason: str, s3_server, bucket: str,
                                                                         tmp_path: Path, artifact, nlp) -> None:
    """The claims of tests/test_claims.py as create-only objects under an ``s3://`` output: another machine's
    young claim keeps its call; one older than REMOTE_STALE_S is taken over; ours are removed once done."""
    from pipeline.store import claims
    from pipeline.store.schema import identity_key

    folder, out = numbered_transcripts(tmp_path / "in", 2), f"s3://{bucket}/out"
    client = _boto(s3_server)
    since = time.time() - (claims.REMOTE_STALE_S + 60 if reason == "dead" else 60)
    key = f"out/{claims.CLAIMS}/{identity_key('call-00.json')}"
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"host": "another-host", "pid": 7, "started": "",
                                                               "since": since}).encode())
    expected = "scored" if reason == "dead" else "deferred"
    process.prepare_output(out)
    sources, _ = discover_inputs([str(folder)])
    outcomes = {Path(s.path).name: process.process_source(s, asr=None, artifact=artifact, nlp=nlp,
                                                          config=PipelineConfig(), out_dir=out).status
                for s in sources}
    assert outcomes == {"call-00.json": expected, "call-01.json": "scored"}
    left = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"out/{claims.CLAIMS}/")
                  .get("Contents", []))
    assert left == ([] if reason == "dead" else [key])


def test_a_store_that_stops_answering_fails_the_request_instead_of_hanging(monkeypatch) -> None:
    """An operator's find (stop 55): with the S3 server frozen (`kill -STOP`, a wedged server or a network
    partition) `callcycle run` hung with no output and no end: botocore sends `Expect: 100-continue` with every
    upload and the HTTP client waits for the "100 Continue" with no time limit, and no S3 request had a
    timeout. Here a real socket accepts connections and never answers: an upload and a listing fail with a
    timeout in seconds (the limits shortened for the test; the defaults fail a run within about two minutes)."""
    import threading
    import time

    from pipeline import objectstore

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # take every connection, read nothing, answer nothing
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setattr(objectstore, "S3_READ_TIMEOUT_S", 1.0)
    try:
        fs = objectstore.filesystem()
        assert fs.retries == objectstore.S3FS_RETRIES and fs.config_kwargs["read_timeout"] == 1.0
        for request in (lambda: fs.pipe_file("bucket/key", b"data"), lambda: fs.ls("bucket/")):
            started = time.monotonic()
            with pytest.raises(OSError, match="[Tt]imeout"), objectstore.translate_errors():
                request()
            assert time.monotonic() - started < 20
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
