"""Parquet datasets: explicit schemas, round trips through pyarrow, DuckDB and Polars, atomic writes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from test_score import TAXONOMY, seg

from pipeline.schema import CallMetadata, Source
from pipeline.score import score_call
from pipeline.store import local as store
from pipeline.store.schema import check_table


def _write_call(out: Path, sha: str) -> str:
    source = Source(path=f"/calls/{sha}.wav", kind="audio", fmt="wav", sha256=sha, size_bytes=10,
                    call_id=f"call-{sha}", metadata=CallMetadata("Dana", "Acme", date(2026, 11, 2)))
    segments = [seg(0, "rep", 0, 3, "align", "talk", True), seg(1, "customer", 3, 5, "act", "action")]
    stamp = store.RunStamp("v1", "cycle-of-value/1", "bundled:tiny.en")
    key = store.call_key(sha, stamp, "audio")
    store.write_call(out, key, store.segments_table(key, source, source.call_id, segments, TAXONOMY),
                     store.calls_table(key, source, source.call_id, score_call(segments, TAXONOMY), stamp,
                                       5.5, False, 1.25))
    return key


def test_round_trip_pyarrow_duckdb_polars(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    keys = [_write_call(tmp_path, sha) for sha in ("aa", "bb", "cc")]
    calls = ds.dataset(tmp_path / "calls", format="parquet").to_table()
    assert sorted(calls["call_key"].to_pylist()) == sorted(keys)
    assert calls.schema.metadata[b"callcycle.schema_version"] == store.SCHEMA_VERSION.encode()
    assert calls.schema.field("action_share").metadata[b"description"].startswith(b"Action seconds")
    seg_file = next((tmp_path / "segments").glob("part-*.parquet"))
    written = pq.read_schema(seg_file)
    assert [(f.name, f.type, f.nullable) for f in written] == [
        (f.name, f.type, f.nullable) for f in store.SEGMENTS_SCHEMA]
    assert written.metadata == store.SEGMENTS_SCHEMA.metadata
    assert all(f.metadata[b"description"] for f in written)

    con = duckdb.connect()
    rows = con.sql(f"select call_id, rep, call_date, action_share, speakers[1].speaker as first_speaker "
                   f"from read_parquet('{tmp_path}/calls/*.parquet') order by call_id").fetchall()
    assert rows[0] == ("call-aa", "Dana", date(2026, 11, 2), pytest.approx(2 / 5), "customer")
    n_action = con.sql(f"select count(*) from read_parquet('{tmp_path}/segments/*.parquet') "
                       f"where talk_action = 'action'").fetchall()[0][0]
    assert n_action == 3

    frame = pl.read_parquet(str(tmp_path / "segments" / "*.parquet"))
    assert frame.height == 6
    assert set(frame["speaker"].to_list()) == {"rep", "customer"}
    assert frame.schema["segment_index"] == pl.Int32


def test_rows_are_checked_against_the_schema() -> None:
    with pytest.raises(ValueError, match="do not match"):
        check_table({"call_key": ["x"]}, store.CALLS_SCHEMA)


def test_a_speakers_entry_with_missing_or_unknown_fields_is_refused(tmp_path: Path) -> None:
    """Arrow would drop an unknown struct field and null a missing one without a word; check_table refuses."""
    _write_call(tmp_path, "aa")
    good = store.read_dataset(tmp_path, "calls").to_pydict()
    assert check_table(good, store.CALLS_SCHEMA).num_rows == 1
    first = good["speakers"][0][0]
    for broken in ({k: v for k, v in first.items() if k != "talk_share"}, {**first, "mood": "happy"}):
        rows = {**good, "speakers": [[broken, *good["speakers"][0][1:]]]}
        with pytest.raises(ValueError, match="'speakers'"):
            check_table(rows, store.CALLS_SCHEMA)


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    table = pa.table({"x": [1, 2, 3]})
    target = tmp_path / "errors" / "part-1.parquet"

    class Boom(Exception):
        pass

    original = pq.write_table

    def failing(*args, **kwargs):
        original(*args, **kwargs)
        raise Boom

    pq.write_table = failing
    try:
        with pytest.raises(Boom):
            store.write_table_atomic(table, target)
    finally:
        pq.write_table = original
    assert not target.exists()
    assert list((tmp_path / "errors").iterdir()) == []


def test_read_segments_reads_only_the_calls_asked_for(tmp_path: Path) -> None:
    """A report's scorecards read their calls' segment files, not the archive's, and only committed rows."""
    keys = {sha: _write_call(tmp_path, sha) for sha in ("aa", "bb", "cc")}
    ids = {row["call_key"]: row["source_id"] for row in store.read_dataset(tmp_path, "calls").to_pylist()}
    wanted = ids[keys["bb"]]
    table = store.LocalStore(tmp_path).read_segments([wanted, wanted])
    assert table.num_rows == 2 and set(table.column("call_key").to_pylist()) == {keys["bb"]}
    assert table.schema.equals(store.SEGMENTS_SCHEMA)
    assert store.read_segments(tmp_path, ["not a stored call"]).num_rows == 0
    # a new version's segments written, its calls row not yet (the commit): nothing of it is read
    segs = tmp_path / "segments" / f"part-{store.identity_key(ids[keys['cc']])}.parquet"
    old = pq.read_table(segs)
    pq.write_table(old.set_column(0, "call_key", pa.array(["next-version"] * old.num_rows)), segs)
    assert store.read_segments(tmp_path, [ids[keys["cc"]], wanted]).column("call_key").to_pylist() == [keys["bb"]] * 2
    # a segments file that does not read back is skipped, not a crash
    segs.write_bytes(b"PAR1 not parquet")
    assert store.read_segments(tmp_path, [ids[keys["cc"]]]).num_rows == 0


def test_snapshot_opens_only_files_written_since_and_reads_the_same_rows(tmp_path: Path) -> None:
    """A summary of an archive opens only the calls files that changed since the last read; the rows,
    their order and what a rewrite, a deletion or a damaged file does are those of a full read."""
    import time

    from pipeline.store import snapshot

    out = tmp_path / "out"
    for sha in ("aa", "bb", "cc"):
        _write_call(out, sha)
    opened: list[str] = []

    def reader(path: Path) -> pa.Table | None:
        opened.append(path.name)
        return store._read_single(path, store.CALLS_SCHEMA)

    def read(now: float) -> pa.Table:
        opened.clear()
        files = sorted((out / "calls").glob("part-*.parquet"))
        return snapshot.read_with_snapshot(files, store.CALLS_SCHEMA, reader, tmp_path / "snap.parquet", now=now)

    later = time.time() + 2 * snapshot.RACY_S  # the files are settled by then
    full = store.read_dataset(out, "calls")
    assert read(later).equals(full) and len(opened) == 3
    assert read(later).equals(full) and opened == []  # nothing changed: no file opened
    assert store.LocalStore(out).read_dataset("calls").equals(full)  # the store's own snapshot, too

    rewritten = _write_call(out, "bb2")  # another call, and a new version of an old one
    ids = {r["call_key"]: r["source_id"] for r in full.to_pylist()}
    target = next(k for k in ids if ids[k].endswith("bb.wav"))
    (out / "calls" / f"part-{store.identity_key(ids[target])}.parquet").unlink()
    got = read(later + 10)
    assert got.equals(store.read_dataset(out, "calls")) and len(opened) == 1 and rewritten in got["call_key"].to_pylist()

    broken = out / "calls" / f"part-{store.identity_key(next(iter(ids.values())))}.parquet"
    broken.write_bytes(b"PAR1 not parquet")  # replaced by a damaged file: read, skipped, read again
    assert read(later + 20).num_rows == 2 and broken.name in opened
    assert read(later + 30).num_rows == 2 and opened == [broken.name]

    (tmp_path / "snap.parquet").write_bytes(b"damaged")  # an unusable snapshot is a full read
    assert read(later + 40).num_rows == 2 and len(opened) == 3
    (tmp_path / "snap.parquet").unlink()  # files just written are never remembered (a rewrite in the same tick)
    assert read(time.time()).num_rows == 2 and len(opened) == 3
    assert read(time.time()).num_rows == 2 and len(opened) == 3


def test_snapshot_reads_never_fail_where_a_full_read_would_not(tmp_path: Path, caplog) -> None:
    """A link loop among the calls files, and snapshots of another shape, read as a full read does."""
    from pipeline.store import snapshot

    out = tmp_path / "out"
    for sha in ("aa", "bb"):
        _write_call(out, sha)
    (out / "calls" / "part-zzloop.parquet").symlink_to(out / "calls" / "part-zzloop.parquet")
    full = store.read_dataset(out, "calls")
    assert full.num_rows == 2
    assert store.LocalStore(out).read_dataset("calls").equals(full)
    assert "part-zzloop.parquet is not a file callcycle wrote" in caplog.text  # no name callcycle gives
    where = snapshot.default_path(out, "calls")
    assert not where.exists()  # the calls were just written: nothing settled to remember yet
    where.parent.mkdir(parents=True, exist_ok=True)
    odd = pa.table({"call_key": ["x"], "_snapshot_file": ["part-x.parquet"], "_snapshot_signature": ["s"]})
    meta = {b"callcycle.snapshot": snapshot._fingerprint(store.CALLS_SCHEMA).encode()}
    pq.write_table(odd.replace_schema_metadata(meta), where)  # right label, wrong columns
    assert store.LocalStore(out).read_dataset("calls").equals(full)


def test_a_snapshot_whose_rows_do_not_fit_is_read_past_and_rewritten(tmp_path: Path) -> None:
    """Right label and column names, a column of another type (a snapshot from a damaged or foreign
    writer): the rows are read in full and the snapshot written afresh, for local folders and S3 alike
    (the rule is in ``snapshot.read_remembered``)."""
    import time

    from pipeline.store import snapshot

    out = tmp_path / "out"
    for sha in ("aa", "bb"):
        _write_call(out, sha)
    files = sorted((out / "calls").glob("part-*.parquet"))
    where = tmp_path / "calls-snapshot.parquet"
    later = time.time() + 2 * snapshot.RACY_S  # the files count as settled

    def read() -> pa.Table:
        return snapshot.read_with_snapshot(files, store.CALLS_SCHEMA,
                                           lambda p: store._read_single(p, store.CALLS_SCHEMA), where, now=later)

    full = store.read_dataset(out, "calls")
    assert read().equals(full) and where.is_file()
    kept = pq.read_table(where)
    column = kept.schema.get_field_index("n_segments")
    damaged = kept.set_column(column, "n_segments", pa.array(["many"] * kept.num_rows))
    pq.write_table(damaged.replace_schema_metadata(kept.schema.metadata), where)
    assert read().equals(full)  # read past
    assert pq.read_table(where).schema.field("n_segments").type == pa.int32()  # and rewritten


def test_empty_dataset_reads_with_schema(tmp_path: Path) -> None:
    table = store.read_dataset(tmp_path, "errors")
    assert table.num_rows == 0 and table.schema.equals(store.ERRORS_SCHEMA)


def test_a_glob_over_a_table_with_no_rows_yet_reads_zero_rows(tmp_path: Path) -> None:
    """After a night with no failures errors/ held no file, and DuckDB's or Polars' glob failed ("No files
    found"); each table folder holds a row-less file of its schema, which our readers leave out."""
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    from pipeline import process

    process.prepare_output(str(tmp_path))
    _write_call(tmp_path, "aa")
    con = duckdb.connect()
    assert con.sql(f"select count(*) from read_parquet('{tmp_path}/errors/*.parquet')").fetchall() == [(0,)]
    failures = con.sql(f"select source_path, step from read_parquet('{tmp_path}/errors/*.parquet')")
    assert failures.columns == ["source_path", "step"] and failures.fetchall() == []
    assert pl.read_parquet(str(tmp_path / "errors" / "*.parquet")).height == 0
    assert con.sql(f"select count(*) from read_parquet('{tmp_path}/calls/*.parquet')").fetchall() == [(1,)]
    assert store.read_dataset(tmp_path, "calls").num_rows == 1
    assert ds.dataset(tmp_path / "calls", format="parquet").to_table().num_rows == 1
    schema_file = tmp_path / "errors" / "_schema.parquet"
    assert pq.read_schema(schema_file).metadata[b"callcycle.schema_version"] == store.SCHEMA_VERSION.encode()


def test_call_key_depends_on_versions() -> None:
    a = store.RunStamp("v1", "t/1", "tiny")
    b = store.RunStamp("v2", "t/1", "tiny")
    assert store.call_key("ab", a, "audio") != store.call_key("ab", b, "audio")
    # transcripts do not depend on the speech model
    c = store.RunStamp("v1", "t/1", "small")
    assert store.call_key("ab", a, "transcript") == store.call_key("ab", c, "transcript")


def test_schema_docs_are_current() -> None:
    """docs/SCHEMA.md documents every column of every dataset as the code defines it."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "scripts" / "schema_docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_segments_row_reads_back_as_the_segment_it_was_written_from() -> None:
    """Rescoring rebuilds segments from stored rows: every field of Segment goes both ways (the reverse
    mapping lived in another module, where a new field would have been dropped)."""
    import dataclasses

    from pipeline.schema import ClassifiedSegment, Prediction, Segment
    from pipeline.store.schema import segment_of_row, segments_table

    segment = Segment(call_id="c1", index=3, turn_index=2, speaker="S2", channel=1, start_s=1.25, end_s=2.5,
                      text="I'll send it Friday.", confidence=0.875, timing_estimated=True, is_question=False,
                      role="rep", role_source="model")
    assert all(getattr(segment, f.name) != f.default for f in dataclasses.fields(Segment))  # nothing left default
    classified = ClassifiedSegment(segment, Prediction("act", {"act": 0.9, "align": 0.1}),
                                   Prediction("action", {"action": 0.8, "talk": 0.2}))
    source = Source(path="c1.json", kind="transcript", fmt="json", sha256="ab" * 32, size_bytes=10, call_id="c1")
    row = segments_table("k", source, "c1", [classified], TAXONOMY).to_pylist()[0]
    assert segment_of_row(row, "c1") == segment  # (confidence is stored as float32: 0.875 is exact there)
