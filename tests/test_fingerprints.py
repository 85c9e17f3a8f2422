"""Remembered fingerprints (pipeline.ingest.fingerprints): an input whose inode, size and times are
unchanged is not read again to be hashed, and any change to its bytes is still seen."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from pipeline.ingest import discover, fingerprints
from pipeline.ingest.discover import discover_inputs
from pipeline.ingest.fingerprints import FingerprintCache, file_signature, settled


def _call(path: Path, text: str) -> Path:
    path.write_text(json.dumps({"turns": [{"speaker": "A", "text": text}]}))
    return path


@pytest.fixture()
def calls(tmp_path: Path) -> Path:
    folder = tmp_path / "calls"
    folder.mkdir()
    for name, text in (("a.json", "I'll send the plan by Friday."), ("b.json", "What does a good quarter look like?")):
        _call(folder / name, text)
    return folder


@pytest.fixture()
def no_racy_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test are trusted at once (the racy-time rule has its own test)."""
    monkeypatch.setattr(fingerprints, "RACY_S", 0.0)


def _no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> str:
        raise AssertionError(f"{path} was read to be hashed")

    monkeypatch.setattr(discover, "file_sha256", refuse)


def test_unchanged_files_are_not_read_again(calls: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            no_racy_wait: None) -> None:
    db = tmp_path / "cache" / "sha256.sqlite3"
    with FingerprintCache(db) as cache:
        first, errors = discover_inputs([str(calls)], fingerprints=cache)
        assert errors == [] and (cache.hits, cache.misses) == (0, 2)
    _no_hashing(monkeypatch)  # a second run takes every digest from the cache, in a new connection
    with FingerprintCache(db) as cache:
        second, errors = discover_inputs([str(calls)], fingerprints=cache)
        assert errors == [] and (cache.hits, cache.misses) == (2, 0)
    assert [(s.path, s.sha256, s.size_bytes) for s in second] == [(s.path, s.sha256, s.size_bytes) for s in first]


def test_changed_bytes_are_seen_even_with_size_and_mtime_put_back(calls: Path, tmp_path: Path,
                                                                  no_racy_wait: None) -> None:
    db = tmp_path / "sha256.sqlite3"
    with FingerprintCache(db) as cache:
        before = {Path(s.path).name: s.sha256 for s in discover_inputs([str(calls)], fingerprints=cache)[0]}
    target = calls / "a.json"
    st = target.stat()
    original = target.read_bytes()
    edited = original.replace(b"Friday", b"Monday")
    assert len(edited) == len(original)
    time.sleep(0.01)
    target.write_bytes(edited)  # same size, and the old modification time set back: only ctime moves
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_mtime_ns == st.st_mtime_ns and target.stat().st_size == st.st_size
    replacement = calls / "b.json.new"  # b.json replaced by a rename: another inode
    replacement.write_bytes((calls / "b.json").read_bytes().replace(b"quarter", b"quartet"))
    os.replace(replacement, calls / "b.json")
    with FingerprintCache(db) as cache:
        after = {Path(s.path).name: s.sha256 for s in discover_inputs([str(calls)], fingerprints=cache)[0]}
        assert cache.hits == 0
    assert after["a.json"] == discover.file_sha256(target) != before["a.json"]
    assert after["b.json"] == discover.file_sha256(calls / "b.json") != before["b.json"]


def test_files_modified_just_before_hashing_are_not_remembered(calls: Path, tmp_path: Path) -> None:
    """A clock that ticks in whole seconds could give a rewrite within the same second the same times:
    a file is remembered only once its times are RACY_S older than the hash, as git does."""
    st = (calls / "a.json").stat()
    assert not settled(st, time.time())
    assert settled(st, time.time() + fingerprints.RACY_S + 1)
    db = tmp_path / "sha256.sqlite3"
    with FingerprintCache(db) as cache:
        discover_inputs([str(calls)], fingerprints=cache)
    with FingerprintCache(db) as cache:
        discover_inputs([str(calls)], fingerprints=cache)
        assert cache.hits == 0 and cache.misses == 2


def test_a_damaged_cache_costs_only_time(calls: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                         no_racy_wait: None) -> None:
    db = tmp_path / "sha256.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    expected = sorted(discover.file_sha256(p) for p in calls.iterdir())
    with caplog.at_level(logging.WARNING, logger="callcycle.ingest"):
        cache = fingerprints.open_fingerprints(db)
        if cache is not None:
            with cache:
                sources, errors = discover_inputs([str(calls)], fingerprints=cache)
        else:
            sources, errors = discover_inputs([str(calls)])
    assert errors == [] and sorted(s.sha256 for s in sources) == expected
    assert "fingerprint cache" in caplog.text and "hashed in full" in caplog.text


def test_signature_names_what_a_write_moves(calls: Path) -> None:
    st = (calls / "a.json").stat()
    parts = file_signature(st).split(":")
    assert parts[0] == "file" and [int(p) for p in parts[1:]] == [
        st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    assert fingerprints.object_signature({"size": 3}) is None  # no ETag: never taken from the cache


def test_calls_already_scored_are_settled_before_any_task(calls: Path, tmp_path: Path, artifact, nlp) -> None:
    """process.sort_out_done: what a nightly re-run skips is decided by check_done, in one pass."""
    from pipeline import process
    from pipeline.config import PipelineConfig

    out = tmp_path / "out"
    process.prepare_output(out)
    sources, _ = discover_inputs([str(calls)])
    for source in sources:
        assert process.process_source(source, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(),
                                      out_dir=out).status == "scored"
    stamp = process.run_stamp(artifact, None)
    todo, settled_ = process.sort_out_done(sources, stamp, out)
    assert todo == [] and [o.status for o in settled_] == ["skipped", "skipped"]
    _call(calls / "a.json", "Let's book the pilot review for Tuesday at ten.")
    _call(calls / "c.json", "Can you send the security questionnaire?")
    sources, _ = discover_inputs([str(calls)])
    todo, settled_ = process.sort_out_done(sources, stamp, out)
    assert sorted(Path(s.path).name for s in todo) == ["a.json", "c.json"]
    assert [Path(o.path).name for o in settled_] == ["b.json"]
    todo, settled_ = process.sort_out_done(sources, stamp, out, force=True)
    assert len(todo) == 3 and settled_ == []


def test_entries_nobody_looks_up_are_forgotten(calls: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               no_racy_wait: None) -> None:
    import sqlite3

    db = tmp_path / "sha256.sqlite3"
    with FingerprintCache(db) as cache:
        discover_inputs([str(calls)], fingerprints=cache)
    with sqlite3.connect(db) as raw:  # b.json last seen long ago (deleted, say); a.json just now
        raw.execute("UPDATE fingerprints SET seen_at = 0 WHERE location LIKE '%b.json'")
    with FingerprintCache(db) as cache:
        assert cache.lookup(str((calls / "a.json").resolve()), file_signature((calls / "a.json").stat()))
    with sqlite3.connect(db) as raw:
        left = [row[0] for row in raw.execute("SELECT location FROM fingerprints")]
    assert [Path(p).name for p in left] == ["a.json"]
