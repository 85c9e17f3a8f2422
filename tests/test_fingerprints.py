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
    assert fingerprints.RACY_S >= 60  # also covers a file server whose clock is some seconds behind


def test_a_damaged_cache_costs_only_time(calls: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                         no_racy_wait: None) -> None:
    db = tmp_path / "sha256.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    expected = sorted(discover.file_sha256(p) for p in calls.iterdir())
    with caplog.at_level(logging.WARNING, logger="callcycle.ingest"):
        assert fingerprints.open_fingerprints(db) is None
    assert "cannot be opened" in caplog.text and "hashed in full" in caplog.text
    with fingerprints.fingerprints_for_run(True, db) as cache:
        assert cache is None
        sources, errors = discover_inputs([str(calls)], fingerprints=cache)
    assert errors == [] and sorted(s.sha256 for s in sources) == expected


def test_a_cache_that_fails_after_opening_is_set_aside(calls: Path, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture, no_racy_wait: None) -> None:
    import sqlite3

    db = tmp_path / "sha256.sqlite3"
    expected = sorted(discover.file_sha256(p) for p in calls.iterdir())
    with FingerprintCache(db) as cache, caplog.at_level(logging.WARNING, logger="callcycle.ingest"):
        with sqlite3.connect(db) as other:  # the file is damaged under the open cache
            other.execute("DROP TABLE digests")
        sources, errors = discover_inputs([str(calls)], fingerprints=cache)
        assert cache.hits == 0
    assert errors == [] and sorted(s.sha256 for s in sources) == expected
    assert caplog.text.count("cannot be used") == 1 and "hashed in full" in caplog.text


def test_no_home_folder_means_no_cache_not_a_crash(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    with caplog.at_level(logging.WARNING, logger="callcycle.ingest"):
        with fingerprints.fingerprints_for_run(True) as cache:
            assert cache is None
    assert "home directory" in caplog.text


def test_remembered_digests_are_checked_again_after_a_while(calls: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            no_racy_wait: None) -> None:
    """Writes that move no time (through a memory map; filesystems without a change time) are caught
    by hashing every entry again after REVERIFY_S plus its share; a cache hit is not a new check."""
    import sqlite3

    db = tmp_path / "sha256.sqlite3"
    with FingerprintCache(db) as cache:
        discover_inputs([str(calls)], fingerprints=cache)
    with sqlite3.connect(db) as raw:
        hashed = dict(raw.execute("SELECT location, hashed_at FROM digests"))
    with FingerprintCache(db) as cache:  # a hit leaves the time of the last real hash alone
        discover_inputs([str(calls)], fingerprints=cache)
        assert cache.hits == 2
    with sqlite3.connect(db) as raw:
        assert dict(raw.execute("SELECT location, hashed_at FROM digests")) == hashed
    shares = {loc: fingerprints.trusted_until(loc, 0.0) / fingerprints.REVERIFY_S for loc in hashed}
    assert all(1.0 <= share < 2.0 for share in shares.values()) and len(set(shares.values())) == 2
    with sqlite3.connect(db) as raw:  # b.json was last hashed two REVERIFY_S ago: due
        raw.execute("UPDATE digests SET hashed_at = ? WHERE location LIKE '%b.json'",
                    (time.time() - 2 * fingerprints.REVERIFY_S,))
    with FingerprintCache(db) as cache:
        sources = discover_inputs([str(calls)], fingerprints=cache)[0]
        assert (cache.hits, cache.misses, cache.rechecks) == (1, 1, 1)
    with sqlite3.connect(db) as raw:
        renewed = dict(raw.execute("SELECT location, hashed_at FROM digests"))
    b = next(loc for loc in renewed if loc.endswith("b.json"))
    assert renewed[b] > time.time() - 60 and {s.sha256 for s in sources} == set(
        discover.file_sha256(p) for p in calls.iterdir())


def test_rehash_switches_the_cache_off(calls: Path, tmp_path: Path, no_racy_wait: None) -> None:
    """[run] reuse_fingerprints / --rehash reach discovery: off, the cache file is not even opened."""
    from flows import score_flow
    from pipeline.config import RunConfig, load_config

    db = tmp_path / "cache" / "sha256.sqlite3"
    score_flow.discover_task.fn([str(calls)], RunConfig(reuse_fingerprints=False, fingerprint_cache=str(db)))
    assert not db.exists()
    score_flow.discover_task.fn([str(calls)], RunConfig(fingerprint_cache=str(db)))
    with FingerprintCache(db) as cache:
        discover_inputs([str(calls)], fingerprints=cache)
        assert cache.hits == 2
    assert load_config(None, run__reuse_fingerprints=False).run.reuse_fingerprints is False


def test_cli_rehash_option_reaches_the_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, calls: Path) -> None:
    from typer.testing import CliRunner

    from cli import app
    from flows import score_flow

    seen = []

    def fake_run(inputs, **kwargs):  # noqa: ANN001, ANN003, ANN202
        seen.append(kwargs["config"].run.reuse_fingerprints)
        return score_flow.RunSummary(out_dir=str(tmp_path / "out"))

    monkeypatch.setattr(score_flow, "run_scoring", fake_run)
    runner = CliRunner()
    for args, expected in ((["--rehash"], False), ([], True)):
        result = runner.invoke(app, ["run", str(calls), "--out", str(tmp_path / "out"), "--no-report", *args])
        assert result.exit_code == 0, result.output
        assert seen[-1] is expected


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
        raw.execute("UPDATE digests SET seen_at = 0 WHERE location LIKE '%b.json'")
    with FingerprintCache(db) as cache:
        assert cache.lookup(str((calls / "a.json").resolve()), file_signature((calls / "a.json").stat()))
    with sqlite3.connect(db) as raw:
        left = [row[0] for row in raw.execute("SELECT location FROM digests")]
    assert [Path(p).name for p in left] == ["a.json"]
