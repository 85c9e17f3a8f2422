"""Real Prefect flow runs over real inputs: scoring, errors recorded, reruns idempotent."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from conftest import MODELS

from flows import score_flow
from flows.score_flow import run_scoring, score_calls
from pipeline.config import AsrConfig, PipelineConfig, RunConfig, load_config
from pipeline.errors import PipelineError
from pipeline.store import local as store


@pytest.fixture()
def inputs(tmp_path: Path, two_speaker_stereo) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(two_speaker_stereo[0], folder / "2026-11-03__dana__acme__stereo.wav")
    (folder / "notes.json").write_text(json.dumps({"call_id": "notes-1", "turns": [
        {"speaker": "Priya", "text": "What would a good outcome look like for your team this quarter?"},
        {"speaker": "Tom", "text": "Honestly we just need the invoices out on time."},
        {"speaker": "Priya", "text": "Okay. I'll send you a pilot plan by Thursday."},
    ]}))
    (folder / "broken.json").write_text("{ nope")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "copy-of-notes.json").write_bytes((folder / "notes.json").read_bytes())
    return folder


def test_the_readmes_library_snippet_stores_what_the_flow_stores(prefect_harness, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Prefect-free loop, run as written on a folder with a copy, a link out of the folder and
    a broken file, stores the same calls and errors rows as the flow (it used to keep both copies and drop
    the refusals)."""
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Using the library without Prefect"):]
    code = section[section.index("```python") + len("```python"):section.index("```", section.index("```python") + 9)]
    folder = tmp_path / "calls"
    folder.mkdir()
    turns = {"turns": [{"speaker": "Priya", "text": "Okay. I'll send you a pilot plan by Thursday."},
                       {"speaker": "Tom", "text": "Great, thanks."}]}
    (folder / "a.json").write_text(json.dumps(turns))
    (folder / "a-copy.json").write_text(json.dumps(turns))
    (folder / "broken.json").write_text("{ nope")
    (folder / "evil.txt").symlink_to("/etc/hostname")
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace('"data/calls"', '"calls"'), "README snippet", "exec"), {})  # noqa: S102
    run_scoring(["calls"], out_dir=str(tmp_path / "flow-out"), models=str(MODELS))

    def stored(out: Path) -> tuple[list, list]:
        calls = sorted((r["source_id"], r["call_key"]) for r in store.read_dataset(out, "calls").to_pylist())
        errors = sorted((r["source_id"], r["step"]) for r in store.read_dataset(out, "errors").to_pylist())
        return calls, errors

    snippet, flow_rows = stored(tmp_path / "out"), stored(tmp_path / "flow-out")
    assert snippet == flow_rows and len(snippet[0]) == 1 and len(snippet[1]) == 2, (snippet, flow_rows)


def test_a_run_with_failed_inputs_finishes_in_a_state_that_says_so(prefect_harness, tmp_path: Path) -> None:
    """A flow run in which inputs failed is "Completed with failures", with a count, on the Prefect API
    (not a plain "Completed" that hides them); the caller still gets the summary; a clean run is plain."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ok.json").write_text(json.dumps({"turns": [{"speaker": "a", "text": "I'll send the plan by Friday."}]}))
    (folder / "broken.json").write_text("{ nope")
    state = score_calls([str(folder)], out_dir=str(tmp_path / "o"), models=str(MODELS), return_state=True)
    assert state.is_completed() and state.name == score_flow.COMPLETED_WITH_FAILURES
    assert state.message.startswith("1 of 2 inputs failed; `callcycle summary ")
    summary = state.result()
    assert summary.count("failed") == 1 and summary.count("scored") == 1
    (folder / "broken.json").unlink()
    clean = score_calls([str(folder)], out_dir=str(tmp_path / "o"), models=str(MODELS), return_state=True)
    assert clean.is_completed() and clean.name == "Completed" and clean.result().count("skipped") == 1


def test_a_run_prepares_its_output_once(prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_scoring checked and prepared the output (sweeps, schema files) and the flow it started did it again
    (a reviewer's find, stop 57); a flow called on its own, as a deployment does, still prepares it."""
    from pipeline import process

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ok.json").write_text(json.dumps({"turns": [{"speaker": "a", "text": "I'll send the plan by Friday."}]}))
    prepared: list[str] = []
    real = process.prepare_output
    monkeypatch.setattr(process, "prepare_output", lambda out: (prepared.append(str(out)), real(out))[1])
    assert run_scoring([str(folder)], out_dir=str(tmp_path / "o"), models=str(MODELS)).count("scored") == 1
    assert prepared == [str(tmp_path / "o")]
    assert score_calls([str(folder)], out_dir=str(tmp_path / "p"), models=str(MODELS)).count("scored") == 1
    assert prepared == [str(tmp_path / "o"), str(tmp_path / "p")]


def test_flow_scores_records_errors_and_reruns_idempotently(prefect_harness, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen = []
    summary = run_scoring([str(inputs)], out_dir=str(out), models=str(MODELS), on_result=seen.append)
    status = {Path(o.path).name: o.status for o in summary.outcomes}
    # files are taken in path order: the first of two identical files is scored, the other skipped
    assert status == {"2026-11-03__dana__acme__stereo.wav": "scored", "copy-of-notes.json": "scored",
                      "broken.json": "failed", "empty.wav": "failed", "notes.json": "skipped"}
    assert "same bytes as" in next(o.message for o in summary.outcomes if o.status == "skipped")
    assert len(seen) == 5

    calls = ds.dataset(out / "calls").to_table().to_pylist()
    assert {c["call_id"] for c in calls} == {"2026-11-03__dana__acme__stereo", "notes-1"}
    stereo = next(c for c in calls if c["source_kind"] == "audio")
    assert (stereo["rep"], stereo["customer"], str(stereo["call_date"])) == ("dana", "acme", "2026-11-03")
    assert {s["speaker"] for s in stereo["speakers"]} == {"rep", "customer"}
    assert stereo["asr_model"] == "bundled:tiny.en" and stereo["classifier_version"]
    assert len(stereo["source_sha256"]) == 64
    notes = next(c for c in calls if c["source_kind"] == "transcript")
    assert notes["timing_estimated"] and notes["asr_model"] is None

    errors = {Path(e["source_path"]).name: e for e in store.read_dataset(out, "errors").to_pylist()}
    assert set(errors) == {"broken.json", "empty.wav"}
    assert errors["broken.json"]["step"] == "parse" and "invalid JSON" in errors["broken.json"]["message"]
    assert errors["empty.wav"]["step"] == "decode" and "0 bytes" in errors["empty.wav"]["message"]
    assert errors["empty.wav"]["hint"]

    n_segments = ds.dataset(out / "segments").count_rows()
    again = run_scoring([str(inputs)], out_dir=str(out), models=str(MODELS))
    assert again.count("scored") == 0 and again.count("skipped") == 3
    assert ds.dataset(out / "segments").count_rows() == n_segments
    assert ds.dataset(out / "calls").count_rows() == 2

    (inputs / "broken.json").write_text(json.dumps({"turns": [{"speaker": "A", "text": "Fixed now, thanks."}]}))
    third = run_scoring([str(inputs)], out_dir=str(out), models=str(MODELS))
    assert third.count("scored") == 1
    # the fixed file is scored and its failure cleared (errors describe what is broken now)
    assert ds.dataset(out / "calls").count_rows() == 3
    assert {Path(e["source_path"]).name for e in store.read_dataset(out, "errors").to_pylist()} == {"empty.wav"}


def test_tasks_are_thin_wrappers(tmp_path: Path) -> None:
    """The discover task called with .fn() is the library function (and its notes)."""
    (tmp_path / "a.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhi\n")
    (tmp_path / "notes.md").write_text("not a call")
    sources, errors, notes = score_flow.discover_task.fn([str(tmp_path)])
    assert [s.fmt for s in sources] == ["vtt"] and errors == []
    assert [Path(p).name for p in notes.ignored] == ["notes.md"] and notes.aliases == [] and notes.empty == []


def test_missing_model_fails_fast(prefect_harness, tmp_path: Path) -> None:
    from pipeline.errors import ModelArtifactError

    (tmp_path / "in").mkdir()  # an input with something to score: the model is what is missing
    (tmp_path / "in" / "a.json").write_text(json.dumps({"turns": [{"speaker": "A", "text": "I'll send it."}]}))
    with pytest.raises(ModelArtifactError):
        score_calls([str(tmp_path / "in")], out_dir=str(tmp_path / "o"), models=str(tmp_path / "none"),
                    config=PipelineConfig())


def test_a_broken_model_is_refused_before_prefect_starts(tmp_path: Path, monkeypatch) -> None:
    """run_scoring (what `callcycle run` calls) checks the model before starting a flow, whose
    temporary API alone takes seconds; the message names the versions that do exist."""
    from pipeline.errors import ModelArtifactError

    def no_flow(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the flow started")

    monkeypatch.setattr(score_flow, "score_calls", type("NoFlow", (), {"with_options": no_flow})())
    models = tmp_path / "models"
    shutil.copytree(MODELS / (MODELS / "CURRENT").read_text().strip(), models / "v1")
    (models / "CURRENT").write_text("v2\n")
    with pytest.raises(ModelArtifactError, match="Available: v1"):
        run_scoring([str(tmp_path)], out_dir=str(tmp_path / "o"), models=str(models))
    (models / "CURRENT").unlink()
    (models / "v1" / "model.skops").write_bytes(b"not a model")
    with pytest.raises(ModelArtifactError, match="checksum"):
        run_scoring([str(tmp_path)], out_dir=str(tmp_path / "o"), models=str(models / "v1"))


def test_a_model_that_cannot_load_stops_the_batch_and_records_nothing(prefect_harness, tmp_path: Path) -> None:
    """The batch checks the model's card and checksum up front and loads it in the tasks: a model that
    passes the checksum but cannot be loaded (a type skops does not trust) stops the batch with that
    error instead of failing every file, and no file is recorded as failed (a fixed model scores them)."""
    import hashlib

    import skops.io as sio

    from pipeline.errors import ModelArtifactError

    version = (MODELS / "CURRENT").read_text().strip()
    models = tmp_path / "models"
    (models / version).mkdir(parents=True)
    (models / "encoders").symlink_to(MODELS / "encoders")
    (models / "CURRENT").write_text(version + "\n")
    data = sio.dumps({"payload": Path("/etc/passwd")})  # a type outside the trusted list
    (models / version / "model.skops").write_bytes(data)
    card = json.loads((MODELS / version / "card.json").read_text())
    card["files"]["model.skops"] = hashlib.sha256(data).hexdigest()
    (models / version / "card.json").write_text(json.dumps(card))
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(2):
        (folder / f"notes-{n}.json").write_text(json.dumps({"call_id": f"notes-{n}", "turns": [
            {"speaker": "Priya", "text": "I'll send you a pilot plan by Thursday."}]}))
    out = tmp_path / "out"
    with pytest.raises(ModelArtifactError, match="does not trust"):
        score_calls([str(folder)], out_dir=str(out), models=str(models), config=PipelineConfig())
    assert not (out / "calls").exists() or ds.dataset(out / "calls").count_rows() == 0
    assert not (out / "errors").exists() or ds.dataset(out / "errors").count_rows() == 0
    summary = run_scoring([str(folder)], out_dir=str(out), models=str(MODELS))
    assert summary.count("scored") == 2


def test_each_run_scores_with_the_model_current_when_it_starts(prefect_harness, tmp_path: Path) -> None:
    """One process, two runs: a model promoted between them scores the second (a long-lived worker
    picks it up), and every row is stamped with the version that scored it."""
    from pipeline.classify.artifacts import set_current

    version = (MODELS / "CURRENT").read_text().strip()
    models = tmp_path / "models"
    models.mkdir()
    (models / "encoders").symlink_to(MODELS / "encoders")
    for name in (version, "cycle-of-value-promoted"):
        shutil.copytree(MODELS / version, models / name)
    card = json.loads((models / "cycle-of-value-promoted" / "card.json").read_text())
    card["version"] = "cycle-of-value-promoted"
    (models / "cycle-of-value-promoted" / "card.json").write_text(json.dumps(card))
    set_current(models, version)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.json").write_text(json.dumps({"call_id": "notes-1", "turns": [
        {"speaker": "Priya", "text": "I'll send you a pilot plan by Thursday."}]}))
    stamped = []
    for current in (version, "cycle-of-value-promoted"):
        set_current(models, current)
        out = tmp_path / f"out-{current}"
        assert run_scoring([str(folder)], out_dir=str(out), models=str(models)).count("scored") == 1
        stamped.append({r["classifier_version"] for r in store.read_dataset(out, "calls").to_pylist()})
    assert stamped == [{version}, {"cycle-of-value-promoted"}]


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[asr]\nbeam_size = 3\n[run]\nchannel_speakers = ["agent", "caller"]\n')
    assert AsrConfig().batched and RunConfig().timeout_s != 12.5  # so the overrides below are seen
    cfg = load_config(path, asr__batched=False, run__retries=None, run__timeout_s=12.5)
    assert cfg.asr.beam_size == 3 and cfg.run.channel_speakers == ("agent", "caller")
    assert cfg.asr.batched is False and cfg.run.timeout_s == 12.5  # an override wins over the default
    assert cfg.run.retries == RunConfig().retries  # None leaves the file's (here the default) value
    path.write_text('[asr]\nbeem_size = 3\n')
    with pytest.raises(PipelineError, match="beem_size"):
        load_config(path)
    with pytest.raises(PipelineError, match="'asr__beem_size'"):
        load_config(None, asr__beem_size=3)
    # a value of the wrong type is one clear error naming the option, not a crash later in the run
    for body, words in (('[run]\nthreads = "2"', "[run] threads must be a whole number, not '2'"),
                        ("[asr]\nbeam_size = 5.5", "[asr] beam_size must be a whole number"),
                        ("[diarize]\nsnap_to_sentences = 1", "must be true or false"),
                        ('[run]\nchannel_speakers = ["agent", 2]', "must be a list of strings")):
        path.write_text(body)
        with pytest.raises(PipelineError, match=re.escape(words)):
            load_config(path)
    path.write_text("[run]\ntimeout_s = 30\n")
    assert load_config(path).run.timeout_s == 30.0 and isinstance(load_config(path).run.timeout_s, float)
