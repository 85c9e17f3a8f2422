"""A call's identity is the call, not the bytes: changed files replace their call, fixed files clear
their failure, metadata re-applies without re-scoring, files being written wait, and only complete,
readable results count as done (issue 11)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import app
from pipeline import process
from pipeline.config import PipelineConfig, RunConfig
from pipeline.errors import InputChangingError
from pipeline.ingest.discover import discover_inputs
from pipeline.report.terminal import load_call_rows
from pipeline.store import local as store

ROOT_DIR = Path.cwd()


def _transcript(path: Path, *texts: str) -> Path:
    path.write_text(json.dumps({"turns": [{"speaker": f"S{i % 2}", "text": t} for i, t in enumerate(texts)]}))
    return path


def _run(folder: Path, out: Path, artifact, nlp, config: PipelineConfig | None = None) -> dict[str, str]:
    """Discover and process a folder without Prefect; ``{file name: status}``."""
    config = config or PipelineConfig()
    stamp = process.run_stamp(artifact, None, config)
    process.prepare_output(out)
    sources, bad = discover_inputs([str(folder)])
    outcomes = [process.record_failure(out, p, None, e, stamp) for p, e in bad]
    outcomes += [process.process_source(s, asr=None, artifact=artifact, nlp=nlp, config=config, out_dir=out)
                 for s in sources]
    return {Path(o.path).name: o.status for o in outcomes}


def test_changed_file_replaces_its_call(tmp_path: Path, artifact, nlp, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "a.json", "How is the rollout going?", "It slipped a week.")
    assert _run(folder, out, artifact, nlp) == {"a.json": "scored"}
    first = load_call_rows(out)[0]
    _transcript(folder / "a.json", "How is the rollout going?", "It slipped a week.", "I will send the plan by Friday.")
    assert _run(folder, out, artifact, nlp) == {"a.json": "scored"}
    rows = load_call_rows(out)
    assert len(rows) == 1 and rows[0]["source_id"] == "a.json"
    assert rows[0]["source_sha256"] != first["source_sha256"] and rows[0]["n_segments"] == 3
    # every reader sees only the new version: raw Parquet files too, not just our loader
    assert pq.read_table(out / "calls").num_rows == 1
    segs = store.read_dataset(out, "segments")
    assert set(segs.column("call_key").to_pylist()) == {rows[0]["call_key"]} and segs.num_rows == 3
    assert pq.read_table(out / "segments").num_rows == 3
    assert _run(folder, out, artifact, nlp) == {"a.json": "skipped"}
    # the same folder written another way ("in/", an absolute path) is the same input: nothing rewritten
    assert _run(Path(f"{folder}/"), out, artifact, nlp) == {"a.json": "skipped"}
    monkeypatch.chdir(tmp_path)
    assert _run(Path("in"), out, artifact, nlp) == {"a.json": "skipped"}


def test_same_name_in_another_folder_never_replaces_a_stored_call(tmp_path: Path, artifact, nlp) -> None:
    """One folder per night into one output, each with its call_0001.json: the second night's file (other
    bytes, other path, same identity) is a failed input that says why, the first night's call is kept;
    --force replaces it on purpose; the parent folder gives both their own identities."""
    first, second, out = tmp_path / "nightly" / "d1", tmp_path / "nightly" / "d2", tmp_path / "out"
    first.mkdir(parents=True)
    second.mkdir()
    _transcript(first / "call_0001.json", "How is the rollout going?", "It slipped a week.")
    _transcript(second / "call_0001.json", "Can you send the quote by Friday?", "Yes, I will.")
    assert _run(first, out, artifact, nlp) == {"call_0001.json": "scored"}
    kept = load_call_rows(out)
    assert _run(second, out, artifact, nlp) == {"call_0001.json": "failed"}
    assert load_call_rows(out) == kept  # the first night's call, untouched
    errors = store.read_dataset(out, "errors").to_pylist()
    assert len(errors) == 1 and "different call under the same identity" in errors[0]["message"]
    assert str(first / "call_0001.json") in errors[0]["message"] and "--force" in errors[0]["hint"]
    assert _run(first, out, artifact, nlp) == {"call_0001.json": "skipped"}  # and the first night is still current
    # the same folder spelled another way (relative, as a cron job may give it) is the same place: an
    # edited transcript there replaces its call, it is not taken for another folder's file
    _transcript(first / "call_0001.json", "How is the rollout going?", "It slipped a week, sadly.")
    os.chdir(first.parent)
    try:
        assert _run(Path("d1"), out, artifact, nlp) == {"call_0001.json": "scored"}
    finally:
        os.chdir(ROOT_DIR)
    forced = _run(second, out, artifact, nlp, PipelineConfig(run=RunConfig(force=True)))
    assert forced == {"call_0001.json": "scored"}
    assert [r["source_path"] for r in load_call_rows(out)] == [str(second / "call_0001.json")]
    both = tmp_path / "out-both"
    _run(tmp_path / "nightly", both, artifact, nlp)  # its result is keyed by file name: both are call_0001.json
    assert sorted(r["source_id"] for r in load_call_rows(both)) == ["d1/call_0001.json", "d2/call_0001.json"]


def test_failure_clears_when_the_file_is_fixed(tmp_path: Path, artifact, nlp) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "b.json").write_text("{ broken")
    assert _run(folder, out, artifact, nlp) == {"b.json": "failed"}
    (folder / "b.json").write_text("{ still broken, differently")
    _run(folder, out, artifact, nlp)
    assert store.read_dataset(out, "errors").num_rows == 1  # replaced, not added
    _transcript(folder / "b.json", "Let's book the review for Tuesday.")
    assert _run(folder, out, artifact, nlp) == {"b.json": "scored"}
    assert store.read_dataset(out, "errors").num_rows == 0


def test_metadata_change_reapplies_without_rescoring(tmp_path: Path, artifact, nlp,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "c.json", "What matters most to you this quarter?")
    (folder / "calls.csv").write_text("path,rep,customer,date\nc.json,dana,acme,2026-11-02\n")
    assert _run(folder, out, artifact, nlp) == {"c.json": "scored"}
    before = load_call_rows(out)[0]
    (folder / "calls.csv").write_text("path,rep,customer,date\nc.json,Priya,Acme Corp,2026-11-03\n")

    def no_rescoring(*args, **kwargs):
        raise AssertionError("metadata changes must not re-transcribe or re-score")

    monkeypatch.setattr(process, "read_call", no_rescoring)
    assert _run(folder, out, artifact, nlp) == {"c.json": "updated"}
    after = load_call_rows(out)
    assert len(after) == 1 and (after[0]["rep"], after[0]["customer"], str(after[0]["call_date"])) == (
        "Priya", "Acme Corp", "2026-11-03")
    assert after[0]["call_key"] == before["call_key"] and after[0]["action_share"] == before["action_share"]
    assert _run(folder, out, artifact, nlp) == {"c.json": "skipped"}


def _growing_wav(path: Path, declared_frames: int, present_frames: int) -> Path:
    data = b"\0\0" * present_frames
    header = b"RIFF" + struct.pack("<I", 36 + 2 * declared_frames) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", 2 * declared_frames)
    path.write_bytes(header + data)
    return path


def test_file_still_being_written_is_deferred_not_scored(tmp_path: Path, artifact, nlp) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    wav = _growing_wav(folder / "recording.wav", declared_frames=16000 * 60, present_frames=16000)
    sources, bad = discover_inputs([str(folder)])
    assert sources == [] and isinstance(bad[0][1], InputChangingError)
    assert _run(folder, out, artifact, nlp) == {"recording.wav": "deferred"}
    assert store.read_dataset(out, "errors").num_rows == 0 and store.read_dataset(out, "calls").num_rows == 0
    old = time.time() - 3600  # an hour later it has not grown: a truncated file, taken as it is
    os.utime(wav, (old, old))
    sources, bad = discover_inputs([str(folder)])
    assert [s.fmt for s in sources] == ["wav"] and bad == []


def test_file_replaced_during_processing_is_deferred(tmp_path: Path, artifact, nlp) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path = _transcript(folder / "d.json", "Can you confirm the budget owner?")
    process.prepare_output(out)
    (source,), _ = discover_inputs([str(folder)])
    _transcript(path, "Completely different text written after discovery, longer than before.")
    os.utime(path, ns=(source.mtime_ns + 10**9, source.mtime_ns + 10**9))
    outcome = process.process_source(source, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(),
                                     out_dir=out)
    assert outcome.status == "deferred"
    assert store.read_dataset(out, "calls").num_rows == 0 and store.read_dataset(out, "errors").num_rows == 0


def test_truncated_parquet_is_quarantined_and_redone(tmp_path: Path, artifact, nlp) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "e.json", "We agreed to start the pilot on Monday.")
    _transcript(folder / "f.json", "How was the conference?")
    _run(folder, out, artifact, nlp)
    victim = next((out / "calls").glob("part-*.parquet"))
    victim.write_bytes(victim.read_bytes()[:100])  # cut through the footer
    assert len(load_call_rows(out)) == 1  # readers skip it instead of crashing
    statuses = _run(folder, out, artifact, nlp)
    assert sorted(statuses.values()) == ["scored", "skipped"]
    assert len(load_call_rows(out)) == 2
    assert list((out / store.QUARANTINE / "calls").iterdir())


def test_a_foreign_parquet_file_in_calls_is_left_out_not_a_crash(tmp_path: Path, artifact, nlp, caplog) -> None:
    """A segments file copied into calls/, or an export of some columns saved there (DuckDB COPY), crashed
    run, summary and report with a traceback until deleted by hand; a pipe named *.parquet hung them (an
    outside tester's finds, stop 57). Each is left out with a warning naming it, and the run goes on."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "e.json", "We agreed to start the pilot on Monday.")
    _transcript(folder / "f.json", "How was the conference?")
    _run(folder, out, artifact, nlp)
    shutil.copy(next((out / "segments").glob("part-*.parquet")), out / "calls" / "part-fromseg.parquet")
    calls = pq.read_table(out / "calls")
    pq.write_table(calls.select(["call_id", "rep", "action_share"]), out / "calls" / "export.parquet")
    os.mkfifo(out / "calls" / "part-fifo.parquet")
    with caplog.at_level("WARNING"):
        assert len(load_call_rows(out)) == 2
        assert sorted(_run(folder, out, artifact, nlp).values()) == ["skipped", "skipped"]
    import pyarrow as pa

    assert "part-fromseg.parquet holds the segments table" in caplog.text
    assert "export.parquet is not a file callcycle wrote" in caplog.text and "part-fifo.parquet is not a file" in caplog.text
    # a file with no callcycle schema at all is named as such, not counted as "written by an older callcycle"
    caplog.clear()
    pq.write_table(pa.table({"x": [1, 2]}), out / "calls" / "other-tool.parquet")
    with caplog.at_level("WARNING"):
        assert len(load_call_rows(out)) == 2
    assert "other-tool.parquet is not a file callcycle wrote (no callcycle schema" in caplog.text
    assert "older callcycle" not in caplog.text and "scores that call again" not in caplog.text
    result = CliRunner().invoke(app, ["summary", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Scored calls (2)" in result.output, result.output


def test_segments_count_must_match_and_orphans_stay_hidden(tmp_path: Path, artifact, nlp) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "g.json", "I'll send the contract today.", "Great, thanks.")
    _run(folder, out, artifact, nlp)
    segs = next((out / "segments").glob("part-*.parquet"))
    table = pq.read_table(segs)
    pq.write_table(table.slice(0, 1), segs)  # a segments part that lost rows
    assert _run(folder, out, artifact, nlp) == {"g.json": "scored"}
    assert store.read_dataset(out, "segments").num_rows == 2
    # a crash between the two writes: segments of a call whose calls row is not there
    (out / "calls" / segs.name).unlink()
    assert store.read_dataset(out, "segments").num_rows == 0


def test_a_run_killed_between_a_replacements_two_writes_leaves_no_call_without_segments(
        tmp_path: Path, artifact, nlp, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing a call writes its segments, then its calls row. Killed in between, the old calls row used
    to stay beside the new segments (another key): a call with no segments in every reader, DuckDB's
    glob included. The old row is withdrawn first: the call is absent until the next run redoes it."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path = _transcript(folder / "k.json", "I'll send the contract today.", "Great, thanks.")
    _transcript(folder / "other.json", "How was the conference?")
    _run(folder, out, artifact, nlp)
    _transcript(path, "We agreed on Tuesday.", "Let's review the pilot on Friday.", "Sounds good.")
    real = store.write_table_atomic

    def killed(table, where):
        if Path(where).parent.name == "calls":
            raise KeyboardInterrupt  # the process dies after the segments file was replaced
        return real(table, where)

    monkeypatch.setattr(store, "write_table_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(folder, out, artifact, nlp)
    monkeypatch.setattr(store, "write_table_atomic", real)
    calls = pq.ParquetDataset(sorted(str(p) for p in (out / "calls").glob("part-*.parquet"))).read()
    segments = pq.ParquetDataset(sorted(str(p) for p in (out / "segments").glob("part-*.parquet"))).read()
    keys_with_segments = set(segments.column("call_key").to_pylist())
    # raw readers (a glob over the files) see no calls row without its segments
    assert calls.column("source_id").to_pylist() == ["other.json"]
    assert set(calls.column("call_key").to_pylist()) <= keys_with_segments
    assert [r["source_id"] for r in load_call_rows(out)] == ["other.json"]
    assert _run(folder, out, artifact, nlp) == {"k.json": "scored", "other.json": "skipped"}
    assert sorted(r["source_id"] for r in load_call_rows(out)) == ["k.json", "other.json"]


def test_an_input_that_fails_after_being_scored_is_in_no_figure(tmp_path: Path, artifact, nlp) -> None:
    """A scored file replaced by one that does not read keeps its last calls row on disk (nothing is
    deleted), but summary and report leave it out and list the failure: what is current is the failure."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path = _transcript(folder / "a.json", "I'll send the contract today.")
    _transcript(folder / "b.json", "How was the conference?")
    _run(folder, out, artifact, nlp)
    path.write_text("not json")
    assert _run(folder, out, artifact, nlp) == {"a.json": "failed", "b.json": "skipped"}
    assert [r["source_id"] for r in load_call_rows(out)] == ["b.json"]
    assert store.read_dataset(out, "calls").num_rows == 2  # the last good row stays on disk
    _transcript(path, "We agreed on Tuesday.")
    assert _run(folder, out, artifact, nlp)["a.json"] == "scored"
    assert sorted(r["source_id"] for r in load_call_rows(out)) == ["a.json", "b.json"]


def test_a_passing_output_fault_is_not_remembered_outside_a_batch(tmp_path: Path, artifact, nlp,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch remembers a full disk so its queued files fail fast; a library caller scoring files one by
    one (no batch id) was refused for the rest of the process after one ENOSPC, even once space was back."""
    import errno

    from pipeline.errors import OutputError

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "a.json", "I'll send the contract today.")
    _transcript(folder / "b.json", "How was the conference?")
    process.prepare_output(out)
    (a, b), _ = discover_inputs([str(folder)])
    real = store.write_table_atomic

    def full(table, where):
        raise OSError(errno.ENOSPC, "No space left on device", str(where))

    monkeypatch.setattr(store, "write_table_atomic", full)
    with pytest.raises(OutputError, match="full"):
        process.process_source(a, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(), out_dir=out)
    monkeypatch.setattr(store, "write_table_atomic", real)
    for source in (a, b):
        outcome = process.process_source(source, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(),
                                         out_dir=out)
        assert outcome.status == "scored", outcome


def test_calling_the_library_without_a_model_it_needs_raises_and_records_nothing(tmp_path: Path, artifact,
                                                                                  nlp) -> None:
    """An audio source without asr, or no nlp, is a mistake in the call: it used to be written to errors/ as
    the input's failure ("audio input but no speech model loaded", or a TypeError "bug in callcycle")."""
    import shutil

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    shutil.copy(ROOT_DIR / "data" / "calls" / "discovery-northwind.wav", folder / "a.wav")
    _transcript(folder / "b.json", "I'll send the contract today.")
    process.prepare_output(out)
    (audio, text), _ = discover_inputs([str(folder)])
    with pytest.raises(ValueError, match="is audio: pass asr="):
        process.process_source(audio, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(), out_dir=out)
    with pytest.raises(ValueError, match="nlp is required"):
        process.process_source(text, asr=None, artifact=artifact, nlp=None, config=PipelineConfig(), out_dir=out)
    assert store.read_dataset(out, "errors").num_rows == 0 and store.read_dataset(out, "calls").num_rows == 0


def test_one_string_where_a_list_is_expected_is_refused(artifact) -> None:
    """predict_texts("abc") classified three characters; discover_inputs("in") looked for 'i' and 'n'."""
    from pipeline.classify.predict import predict_texts

    with pytest.raises(TypeError, match="one string"):
        predict_texts(artifact, "I'll send it Friday.")
    with pytest.raises(TypeError, match="must be a string, not NoneType"):
        predict_texts(artifact, ["fine", None])  # type: ignore[list-item]
    for one in ("in", Path("in")):
        with pytest.raises(TypeError, match="one path"):
            discover_inputs(one)  # type: ignore[arg-type]
    assert len(predict_texts(artifact, ["I'll send it Friday."])["stage"]) == 1


def test_a_recording_stored_under_two_names_is_rescored_under_both_when_versions_change(
        tmp_path: Path, artifact, nlp) -> None:
    """plan_batch skips a recording stored under another name, but never one whose own identity has a
    stored call (stored twice on purpose with --force): at a new classifier version both are rescored."""
    import dataclasses

    from pipeline.ingest.discover import DiscoveryNotes

    (tmp_path / "in" / "sub").mkdir(parents=True)
    _transcript(tmp_path / "in" / "sub" / "h.json", "I'll send the contract today.")
    out = tmp_path / "out"
    _run(tmp_path / "in", out, artifact, nlp)
    _run(tmp_path / "in" / "sub", out, artifact, nlp, PipelineConfig(run=RunConfig(force=True)))
    stamp = process.run_stamp(artifact, None)

    def plan(folder: Path, version: str) -> tuple[list, list]:
        notes = DiscoveryNotes()
        sources, bad = discover_inputs([str(folder)], notes=notes)
        return process.plan_batch(out, sources, bad, notes, dataclasses.replace(stamp, classifier_version=version))

    for folder in (tmp_path / "in", tmp_path / "in" / "sub"):
        todo, settled = plan(folder, stamp.classifier_version)
        assert todo == [] and [o.status for o in settled] == ["skipped"]
        todo, settled = plan(folder, "a-newer-classifier")
        assert [store.source_identity(s) for s in todo] == ["sub/h.json" if folder.name == "in" else "h.json"]


def test_files_of_the_old_layout_are_retired_once(tmp_path: Path, artifact, nlp) -> None:
    """Schema-1 folders held one file per content hash (a call could have two rows): moved aside, rescored."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "h.json", "Let's review what went wrong last sprint.")
    _run(folder, out, artifact, nlp)
    current = next((out / "calls").glob("part-*.parquet"))
    old = pq.read_table(current).drop_columns(["source_id"])  # schema 1 had no identity column
    old = old.replace_schema_metadata({**old.schema.metadata, b"callcycle.schema_version": b"1"})
    pq.write_table(old, out / "calls" / "part-0123old.parquet")
    (out / ".layout").unlink()
    # before any run of this version tidies the folder, readers leave the old file out (no row with
    # empty columns), and the current file still reads
    rows = load_call_rows(out)
    assert len(rows) == 1 and rows[0]["source_id"] == "h.json"
    assert _run(folder, out, artifact, nlp) == {"h.json": "skipped"}
    assert len(load_call_rows(out)) == 1 and (out / store.LEGACY / "calls" / "part-0123old.parquet").is_file()


def test_an_older_release_writing_into_an_upgraded_folder_is_not_read_as_current(
        tmp_path: Path, artifact, nlp, caplog: pytest.LogCaptureFixture) -> None:
    """An upgrade tester's find (stop 56): a folder already tidied by this version (``.layout`` current) got
    files from an older release still running elsewhere (a rollback, a second host), and the readers took
    them as current rows with empty columns. Each calls/errors file's schema version is checked on every
    read: an old one is left out with one warning that says what probably happened, and the summary says
    when stored rows came from another pipeline version."""
    import logging

    from pipeline import PIPELINE_VERSION
    from pipeline.report.rules import other_versions

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "h.json", "Let's review what went wrong last sprint.")
    _transcript(folder / "k.json", "I'll send you the signed order form by Friday.")
    assert _run(folder, out, artifact, nlp) == {"h.json": "scored", "k.json": "scored"}
    assert (out / ".layout").read_text().strip() == store.SCHEMA_VERSION
    path = next(p for p in (out / "calls").glob("part-*.parquet") if "k.json" in str(pq.read_table(p)["source_id"][0]))
    old = pq.read_table(path).drop_columns(["action_share_method"])
    pq.write_table(old.replace_schema_metadata({**old.schema.metadata, b"callcycle.schema_version": b"2"}), path)
    with caplog.at_level(logging.WARNING, logger="callcycle.store"):
        rows = load_call_rows(out)
    assert [r["source_id"] for r in rows] == ["h.json"]
    assert "1 file(s) written by an older callcycle" in caplog.text and "still running" in caplog.text
    assert _run(folder, out, artifact, nlp) == {"h.json": "skipped", "k.json": "scored"}  # its call scored again
    assert sorted(r["source_id"] for r in load_call_rows(out)) == ["h.json", "k.json"]
    # rows of another pipeline version (a partial run after an upgrade) are named, not mixed in silently
    rows = [{**rows[0], "pipeline_version": "0.0.1"}, *load_call_rows(out)]
    note = other_versions(rows, PIPELINE_VERSION)
    assert note is not None and note.startswith("1 of 3 calls scored") and "0.0.1 (1 call)" in note
    assert other_versions(load_call_rows(out), PIPELINE_VERSION) is None
    assert "scores the older ones again" in note and "upgrade" not in note
    newer = other_versions([{**rows[1], "pipeline_version": "99.0.0"}], PIPELINE_VERSION)
    assert newer is not None and newer.startswith("the only call scored") and "upgrade it" in newer
    assert "scores the older ones again" not in newer


def test_settings_that_shape_rows_are_part_of_the_version(tmp_path: Path, artifact, nlp) -> None:
    """A retrained role or boundary model, or a changed segmentation option, re-scores stored calls on the next
    run (rows made the old way are not kept as current); options that only change speed do not."""
    import dataclasses
    import hashlib
    import shutil

    from pipeline.speech.rolemodel import default_role_model_dir
    from pipeline.speech.turns import build_sentencizer

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "a.json", "so the rollout slipped a week because nobody owned it can you send me the new plan "
                "by friday", "sure i will send it thursday")
    assert _run(folder, out, artifact, nlp) == {"a.json": "scored"}
    assert _run(folder, out, artifact, nlp) == {"a.json": "skipped"}
    whole_turns = PipelineConfig()
    whole_turns = dataclasses.replace(whole_turns, segmentation=dataclasses.replace(whole_turns.segmentation,
                                                                                   unpunctuated_model=False))
    cut = load_call_rows(out)[0]["n_segments"]
    assert _run(folder, out, artifact, build_sentencizer(False), whole_turns) == {"a.json": "scored"}
    assert load_call_rows(out)[0]["n_segments"] == 2 < cut  # each turn kept whole now
    with pytest.raises(ValueError, match="unpunctuated_model"):  # a splitter that does not match the config
        _run(folder, out, artifact, nlp, whole_turns)
    # a role model retrained (here: the same weights written with other bytes, so another checksum)
    roles = tmp_path / "roles"
    shutil.copytree(default_role_model_dir(), roles)
    (roles / "roles.json").write_bytes((roles / "roles.json").read_bytes() + b"\n")
    card = json.loads((roles / "card.json").read_text())
    card["sha256"] = hashlib.sha256((roles / "roles.json").read_bytes()).hexdigest()
    (roles / "card.json").write_text(json.dumps(card))
    retrained = dataclasses.replace(PipelineConfig(), roles=dataclasses.replace(PipelineConfig().roles,
                                                                                model_path=str(roles)))
    assert _run(folder, out, artifact, nlp) == {"a.json": "scored"}
    assert _run(folder, out, artifact, nlp, retrained) == {"a.json": "scored"}
    assert _run(folder, out, artifact, nlp, retrained) == {"a.json": "skipped"}
    # speed options are not part of it
    faster = dataclasses.replace(retrained, run=dataclasses.replace(retrained.run, threads=1, retries=3),
                                 asr=dataclasses.replace(retrained.asr, cpu_threads=1))
    assert process.row_settings(faster) == process.row_settings(retrained) != process.row_settings(PipelineConfig())
    assert _run(folder, out, artifact, nlp, faster) == {"a.json": "skipped"}


def test_recognition_and_speaker_settings_are_part_of_an_audio_calls_version(tmp_path: Path, artifact, nlp,
                                                                             asr_model, two_speaker_stereo) -> None:
    """Another beam size, VAD setting, channel roles or speaker model re-transcribes a stored recording; options
    that only change speed do not, and a transcript's version ignores all of them."""
    import dataclasses
    import shutil

    from pipeline.speech.diarize import default_model_path

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    shutil.copy(two_speaker_stereo[0], folder / "call.wav")
    _transcript(folder / "notes.json", "Can you send me the plan by Friday?", "Sure, I will.")
    base = PipelineConfig()

    def run(config: PipelineConfig) -> dict[str, str]:
        process.prepare_output(out)
        sources, bad = discover_inputs([str(folder)])
        assert bad == []
        return {Path(o.path).name: o.status
                for o in (process.process_source(s, asr=asr_model, artifact=artifact, nlp=nlp, config=config,
                                                 out_dir=out) for s in sources)}

    assert run(base) == {"call.wav": "scored", "notes.json": "scored"}
    assert run(base) == {"call.wav": "skipped", "notes.json": "skipped"}
    faster = dataclasses.replace(base, asr=dataclasses.replace(base.asr, cpu_threads=1),
                                 diarize=dataclasses.replace(base.diarize, batch_size=4))
    assert process.speech_settings(faster) == process.speech_settings(base)
    # chunks batched otherwise can move a word's probability
    rebatched = dataclasses.replace(base, asr=dataclasses.replace(base.asr, batch_size=base.asr.batch_size + 1))
    assert process.speech_settings(rebatched) != process.speech_settings(base)
    sequential = dataclasses.replace(base, asr=dataclasses.replace(base.asr, batched=False))  # batch_size unused
    assert process.speech_settings(sequential) == process.speech_settings(
        dataclasses.replace(sequential, asr=dataclasses.replace(sequential.asr, batch_size=3)))
    assert run(faster) == {"call.wav": "skipped", "notes.json": "skipped"}
    greedy = dataclasses.replace(base, asr=dataclasses.replace(base.asr, beam_size=1))
    assert run(greedy) == {"call.wav": "scored", "notes.json": "skipped"}
    assert run(greedy) == {"call.wav": "skipped", "notes.json": "skipped"}
    rows = load_call_rows(out)
    assert sorted(r["source_id"] for r in rows) == ["call.wav", "notes.json"]  # replaced, not added
    swapped = dataclasses.replace(greedy, run=dataclasses.replace(greedy.run, channel_speakers=("customer", "rep")))
    vad = dataclasses.replace(greedy, asr=dataclasses.replace(greedy.asr, vad_speech_pad_ms=200))
    no_diarize = dataclasses.replace(greedy, diarize=dataclasses.replace(greedy.diarize, enabled=False))
    speaker = tmp_path / "speaker.onnx"
    speaker.write_bytes(default_model_path().read_bytes())
    same_speaker = dataclasses.replace(greedy, diarize=dataclasses.replace(greedy.diarize, model_path=str(speaker)))
    other = tmp_path / "other.onnx"
    other.write_bytes(default_model_path().read_bytes() + b"\0")
    other_speaker = dataclasses.replace(greedy, diarize=dataclasses.replace(greedy.diarize, model_path=str(other)))
    digests = [process.speech_settings(c) for c in (greedy, swapped, vad, no_diarize, other_speaker)]
    assert len(set(digests)) == len(digests)
    assert process.speech_settings(same_speaker) == process.speech_settings(greedy)  # the same bytes elsewhere
    assert run(swapped) == {"call.wav": "scored", "notes.json": "skipped"}


def test_a_new_classifier_scores_stored_calls_again_from_their_stored_segments(
        tmp_path: Path, artifact, nlp, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new classifier changes every call's version, and each call was read (for audio: transcribed) again:
    an archive paid its whole recognition cost for each promoted model. When only the classifier differs from
    the stored key, the stored segments are classified again instead, and the rows are those a fresh read
    gives. Anything else that changed (the bytes, a setting, the speakers' roles in calls.csv), a stored call
    that does not read back whole, and --force, read the call again."""
    import dataclasses

    from pipeline.config import RunConfig

    folder, out, fresh = tmp_path / "in", tmp_path / "out", tmp_path / "fresh"
    folder.mkdir()
    _transcript(folder / "a.json", "so the rollout slipped a week because nobody owned it", "can you send me the new "
                "plan by friday", "sure i will send it thursday")
    _transcript(folder / "b.json", "How was the trip?", "Long, but the customer workshop went well.")
    config = PipelineConfig()
    assert _run(folder, out, artifact, nlp) == {"a.json": "scored", "b.json": "scored"}
    newer = dataclasses.replace(artifact, version=artifact.version + "-newer")
    reads: list[str] = []
    real_read = process.read_call
    monkeypatch.setattr(process, "read_call", lambda source, *a, **k: reads.append(source.path) or real_read(
        source, *a, **k))
    (folder / "calls.csv").write_text("path,speakers\nb.json,S0=rep;S1=customer\n")  # b's roles change
    sources, _ = discover_inputs([str(folder)])
    outcomes = {Path(s.path).name: process.process_source(s, asr=None, artifact=newer, nlp=nlp, config=config,
                                                           out_dir=out) for s in sources}
    assert {n: (o.status, o.restored) for n, o in outcomes.items()} == {"a.json": ("scored", True),
                                                                         "b.json": ("scored", False)}
    assert [Path(p).name for p in reads] == ["b.json"]
    # the rows equal those of a fresh output scored by the newer classifier (bar the time it took)
    for source in sources:
        process.process_source(source, asr=None, artifact=newer, nlp=nlp, config=config, out_dir=fresh)
    for table in ("calls", "segments"):
        drop = ["processed_at", "processing_s"] if table == "calls" else []
        got, want = (store.read_dataset(o, table).drop_columns(drop).sort_by("call_key") for o in (out, fresh))
        assert got.equals(want), table
    # --force reads everything again
    reads.clear()
    forced = dataclasses.replace(config, run=RunConfig(force=True))
    again = dataclasses.replace(artifact, version=artifact.version + "-newest")
    assert not process.process_source(sources[0], asr=None, artifact=again, nlp=nlp, config=forced,
                                      out_dir=out).restored and len(reads) == 1
    # segments that do not match their calls row are never scored from: the call is read again
    for seg in (out / "segments").glob("part-*.parquet"):
        table = pq.read_table(seg)
        pq.write_table(table.slice(0, table.num_rows - 1), seg)
    reads.clear()
    fourth = dataclasses.replace(artifact, version=artifact.version + "-fourth")
    outcomes = [process.process_source(s, asr=None, artifact=fourth, nlp=nlp, config=config, out_dir=out)
                for s in sources]
    assert [(o.status, o.restored) for o in outcomes] == [("scored", False)] * 2 and len(reads) == 2


def test_a_fixed_calls_csv_loses_its_failure_row(tmp_path: Path, artifact, nlp) -> None:
    """A scale tester's find (stop 56): a calls.csv saved as Latin-1 was recorded as a failed input; once
    re-saved as UTF-8 the runs said "0 failed", yet its errors row stayed for good, so summary and the report
    kept saying an input could not be scored. A sidecar that reads now clears its row, and the calls get the
    metadata it gives."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "a.json", "I'll send you the signed order form by Friday.")
    (folder / "calls.csv").write_bytes("path,rep\na.json,José Peña\n".encode("latin-1"))
    assert _run(folder, out, artifact, nlp) == {"calls.csv": "failed", "a.json": "scored"}
    assert [Path(r["source_path"]).name for r in store.read_dataset(out, "errors").to_pylist()] == ["calls.csv"]
    (folder / "calls.csv").write_text("path,rep\na.json,José Peña\n", encoding="utf-8")
    config = PipelineConfig()
    stamp = process.run_stamp(artifact, None, config)
    from pipeline.ingest.discover import DiscoveryNotes

    notes = DiscoveryNotes()
    sources, bad = discover_inputs([str(folder)], notes=notes)
    assert notes.sidecars == [str(folder / "calls.csv")] and not bad
    todo, settled = process.plan_batch(out, sources, bad, notes, stamp)
    assert todo == [] and [o.status for o in settled] == ["updated"]
    assert store.read_dataset(out, "errors").num_rows == 0


def test_an_older_release_leaves_calls_a_newer_one_stored(tmp_path: Path, artifact, nlp) -> None:
    """An upgrade tester's find (stop 56): an older release run over a newer one's output (a rollback, a
    second host not upgraded) scored every call back to its own rows, and two such hosts would redo each
    other's calls every night. A call stored by a newer pipeline version is left as it is, saying why."""
    import dataclasses

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "a.json", "I'll send you the signed order form by Friday.")
    assert _run(folder, out, artifact, nlp) == {"a.json": "scored"}
    (source,), _ = discover_inputs([str(folder)])
    older = dataclasses.replace(process.run_stamp(artifact, None), pipeline_version="0.0.1")
    done = process.check_done(source, older, out)
    assert done is not None and done.status == "skipped" and "stored by a newer callcycle" in (done.message or "")
    assert process.check_done(source, older, out, force=True) is None  # --force scores it again
    newer = dataclasses.replace(process.run_stamp(artifact, None), pipeline_version="99.0.0")
    assert process.check_done(source, newer, out) is None  # a newer release rescores as before


def test_an_unexpected_error_keeps_its_traceback_in_the_log(tmp_path: Path, artifact, nlp, caplog,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside scoring is recorded as step 'internal' with 'please report it', but the traceback that
    would identify it was lost (a reviewer's find, stop 57): the log now has it."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _transcript(folder / "a.json", "How is the rollout going?", "It slipped a week.")

    def broken(*args, **kwargs):
        raise KeyError("speaker_role")

    monkeypatch.setattr(process, "score_turns", broken)
    with caplog.at_level("WARNING"):
        assert _run(folder, out, artifact, nlp) == {"a.json": "failed"}
    error = store.read_dataset(out, "errors").to_pylist()[0]
    assert error["step"] == "internal" and "please report it" in error["hint"]
    assert "Traceback" in caplog.text and "in broken" in caplog.text and "KeyError: 'speaker_role'" in caplog.text


def test_a_clash_cleared_by_running_on_the_parent_folder_leaves_no_failure(tmp_path: Path, artifact, nlp) -> None:
    """`run nightly/d1 nightly/d2` fails d2's call.json (same identity as d1's); following the hint, `run nightly`
    scores it as d2/call.json and says 0 failed, but its old errors row stood for ever, keyed by a path no
    identity had: summary and report said "1 input could not be scored" (an outside tester's find, stop 57)."""
    from pipeline.ingest.discover import DiscoveryNotes

    nightly, out = tmp_path / "nightly", tmp_path / "out"
    for day, text in (("d1", "How is the rollout going?"), ("d2", "Can you send the quote by Friday?")):
        (nightly / day).mkdir(parents=True)
        _transcript(nightly / day / "call.json", text, "Yes.")

    def run(*inputs: Path) -> list[str]:
        notes = DiscoveryNotes()
        sources, bad = discover_inputs([str(i) for i in inputs], notes=notes)
        stamp = process.run_stamp(artifact, None)
        process.prepare_output(out)
        todo, outcomes = process.plan_batch(out, sources, bad, notes, stamp)
        outcomes += [process.process_source(s, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(),
                                            out_dir=out) for s in todo]
        return sorted(o.status for o in outcomes)

    assert run(nightly / "d1", nightly / "d2") == ["failed", "scored"]
    said = store.read_dataset(out, "errors").to_pylist()[0]["message"]
    assert "has the same identity" in said and "this one was not read" in said and "was scored" not in said
    assert run(nightly) == ["scored", "skipped"]
    assert store.read_dataset(out, "errors").num_rows == 0
    assert run(nightly / "d1", nightly / "d2") == ["failed", "skipped"]  # the clash again: said again
    assert store.read_dataset(out, "errors").num_rows == 1
    # the README's "one folder per night" shape: d2's clash is with the call d1 stored the night before
    # (the row is keyed by the identity, not by d2's path); the parent folder's run clears it too
    shutil.rmtree(out)
    assert run(nightly / "d1") == ["scored"] and run(nightly / "d2") == ["failed"]
    assert "already holds a different call" in store.read_dataset(out, "errors").to_pylist()[0]["message"]
    assert run(nightly) == ["scored", "skipped"]
    assert store.read_dataset(out, "errors").num_rows == 0


def test_a_transcript_with_a_time_past_the_call_limit_is_refused(tmp_path: Path, artifact, nlp) -> None:
    """One turn with "end": 1e12 was accepted: a 16,666,666,666.7-minute call whose one turn outweighed the
    rest (75% action became 0%). Given times past --max-duration are refused as such a recording is."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    turns = [{"speaker": "Dana", "text": "I'll send the quote by Friday.", "start": 0, "end": 3},
             {"speaker": "Lee", "text": "Great, I will book the review.", "start": 3, "end": 1e12}]
    (folder / "huge_end.json").write_text(json.dumps({"turns": turns}))
    assert _run(folder, out, artifact, nlp) == {"huge_end.json": "failed"}
    error = store.read_dataset(out, "errors").to_pylist()[0]
    assert "turn 2 ends at 1000000000000 s, past the limit of 14400 s" in error["message"]
    assert "--max-duration" in error["hint"] and error["step"] == "parse"
    del turns[1]["end"]
    turns[1]["start"] = 1e12  # a start alone (its end estimated from the words): the same
    (folder / "huge_end.json").write_text(json.dumps({"turns": turns}))
    assert _run(folder, out, artifact, nlp) == {"huge_end.json": "failed"}
    assert "turn 2 starts at 1000000000000 s" in store.read_dataset(out, "errors").to_pylist()[0]["message"]
    turns[1].update(start=3, end=6)
    (folder / "huge_end.json").write_text(json.dumps({"turns": turns}))
    assert _run(folder, out, artifact, nlp) == {"huge_end.json": "scored"}


def test_a_call_id_that_is_another_files_name_gets_the_call_id_hint(tmp_path: Path) -> None:
    """calls.csv gave a.json the call_id 'b.json', b.json's own identity: b.json's error blamed folders
    ("run on the parent folder") though a call_id caused it (an outside tester's find, stop 57)."""
    folder = tmp_path / "in"
    folder.mkdir()
    _transcript(folder / "a.json", "How is the rollout going?")
    _transcript(folder / "b.json", "Can you send the quote?")
    (folder / "calls.csv").write_text("path,call_id\na.json,b.json\n")
    sources, _ = discover_inputs([str(folder)])
    kept, clashes = process.identity_clashes(sources)
    assert len(kept) == 1 and len(clashes) == 1
    error = clashes[0][1]
    assert "(a call_id in calls.csv)" in error.message and "Give each file its own call_id" in error.hint
