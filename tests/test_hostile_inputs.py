"""Hostile and messy input (issue 11): escape sequences in names, symlinks out of the input folder,
unreadable folders, formula cells, sidecars reaching into other folders, rep spellings, FIFOs,
video containers, empty folders, vanished files, 0-channel WAVs, narrow terminals, --help markup."""

from __future__ import annotations

import csv
import json
import os
import struct
import threading
from datetime import date
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import MODELS
from typer.testing import CliRunner

from cli import app
from pipeline import process
from pipeline.classify.active import write_for_labelling
from pipeline.classify.labels import load_taxonomy
from pipeline.config import PipelineConfig
from pipeline.display import printable
from pipeline.errors import AudioDecodeError, InputError
from pipeline.ingest import discover
from pipeline.ingest.audio import load_audio
from pipeline.ingest.discover import discover_inputs
from pipeline.report.html import rep_summaries
from pipeline.report.terminal import render_summary
from pipeline.schema import CallMetadata
from pipeline.store import local as store
from pipeline.tables import rows_to_csv, spreadsheet_safe, unneutralise

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
ESC = "\x1b]0;owned\x07\x1b[31m\x1b]8;;http://evil/\x1b\\"
NAME_ESC = ESC.replace("/", "")  # the same sequences as a file name can hold them
runner = CliRunner()


def _transcript(path: Path, text: str = "I will send the plan by Friday.", call_id: str | None = None) -> Path:
    body: dict = {"turns": [{"speaker": "A", "text": text}]}
    if call_id:
        body["call_id"] = call_id
    path.write_text(json.dumps(body))
    return path


def test_printable_drops_control_characters_and_bidi() -> None:
    assert printable(f"call{ESC}-1\u202e.json") == "call]0;owned[31m]8;;http://evil/\\-1.json"
    assert "\x1b" not in printable(ESC) and "\x07" not in printable(ESC)
    # a line break reads as a space, not as nothing; direction marks go too (an outside tester's finds)
    assert printable("Dana\nNewline") == "Dana Newline" and printable("a\r\n\tb") == "a b"
    assert printable("x\u200ey\u200fz\u061c") == "xyz"


def test_escape_sequences_in_names_never_reach_the_terminal(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _transcript(folder / f"evil{NAME_ESC}.json", call_id=f"id{ESC}")
    (folder / f"broken{NAME_ESC}.json").write_text("{ nope")
    result = runner.invoke(app, ["run", str(folder), "--out", str(tmp_path / "out"), "--models", str(MODELS),
                                 "--no-report"])
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "evil" in result.output and "broken" in result.output
    summary = runner.invoke(app, ["summary", str(tmp_path / "out")])
    assert "\x1b" not in summary.output and "\x07" not in summary.output


def test_symlink_leaving_the_input_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "passwd.txt").symlink_to(secret)
    _transcript(folder / "real.json")
    (folder / "inside.json").symlink_to(folder / "real.json")  # a link inside the folder is fine
    sources, errors = discover_inputs([str(folder)])
    assert [Path(s.path).name for s in sources] == ["real.json"]  # the file's own path, never the link's
    (path, error), = errors
    assert Path(path).name == "passwd.txt" and "outside the input folder" in error.message
    assert "refused" in error.message


def test_a_symlink_loop_is_one_error_and_the_rest_of_the_folder_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _transcript(folder / "real.json")
    (folder / "a.json").symlink_to(folder / "b.json")
    (folder / "b.json").symlink_to(folder / "a.json")
    sources, errors = discover_inputs([str(folder)])
    assert [Path(s.path).name for s in sources] == ["real.json"]
    assert sorted(Path(p).name for p, _ in errors) == ["a.json", "b.json"]
    assert all("cannot follow the link" in e.message and "loop" in e.hint for _, e in errors)
    # the same through the CLI: the good file is scored, the loop is a failed input, no traceback
    result = runner.invoke(app, ["run", str(folder), "--out", str(tmp_path / "out"), "--models", str(MODELS),
                                 "--no-report"])
    assert result.exit_code == 1, result.output
    assert "1 scored" in " ".join(result.output.split()) and "Traceback" not in result.output


def test_unreadable_folder_becomes_an_error_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    _transcript(folder / "locked" / "x.json")
    _transcript(folder / "ok.json")
    real_scandir = os.scandir

    def scandir(path=".", *args, **kwargs):  # what a folder without read permission does (root ignores modes)
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    sources, errors = discover_inputs([str(folder)])
    assert [Path(s.path).name for s in sources] == ["ok.json"]
    (path, error), = errors
    assert path.endswith("locked") and "Cannot read folder" in error.message and "permission" in error.hint


def test_formula_cells_are_neutralised_in_every_csv(tmp_path: Path) -> None:
    rows = [{"id": "al-1", "text": '=HYPERLINK("http://evil","x")', "call_id": "+A1", "speaker": "@me",
             "predicted_stage": "act", "predicted_talk_action": "action", "uncertainty": -0.5}]
    path = write_for_labelling(rows, tmp_path / "todo.csv", TAXONOMY)
    cells = next(csv.DictReader(path.open()))
    assert cells["text"].startswith("'=") and cells["call_id"] == "'+A1" and cells["speaker"] == "'@me"
    assert cells["uncertainty"] == "-0.5"  # numbers stay numbers
    assert unneutralise(cells["text"]) == rows[0]["text"]
    assert rows_to_csv([{"a": "-x", "b": "\tcmd"}]).splitlines()[1] == "'-x,'\tcmd"
    # plain signed numbers stay numbers; "-1+1" is a formula; JSON values are written as JSON
    assert rows_to_csv([{"a": "-5", "b": "+3.5", "c": "-1+1", "d": "-1.5e3"}]).splitlines()[1] == "-5,+3.5,'-1+1,-1.5e3"
    assert rows_to_csv([{"a": True, "b": None, "c": {"k": 1}, "d": ["=x"]}]).splitlines()[1] == 'true,,"{""k"": 1}","[""=x""]"'
    # a text that itself starts with an apostrophe comes back whole (its "'" was taken for the prefix)
    for text in ("'=not a formula' is what she wrote", "'Cause we said so", "'", "''=x"):
        assert unneutralise(spreadsheet_safe(text)) == text
    assert unneutralise("'Cause") == "'Cause"  # as files written before kept it


def test_classify_csv_output_is_spreadsheet_safe(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "=cmd|' /C calc'!A0"}) + "\n")
    result = runner.invoke(app, ["classify", str(src), "-o", str(tmp_path / "o.csv"), "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    assert next(csv.DictReader((tmp_path / "o.csv").open()))["text"].startswith("'=")
    # nor terminal-safe when it kept a transcript's escape sequences (a CSV cannot escape them)
    src.write_text(json.dumps({"text": "\x1b[2J\x1b[31mI will sign it\u202e by Friday\x07", "\x1b[1mnote": "a\tb"}) + "\n")
    result = runner.invoke(app, ["classify", str(src), "-o", str(tmp_path / "o.csv"), "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "o.csv").read_text()
    assert not any(ch in written for ch in "\x1b\x07\u202e") and "[31mI will sign it by Friday" in written
    assert next(csv.DictReader((tmp_path / "o.csv").open()))["[1mnote"] == "a\tb"


def test_sidecar_describes_only_files_under_its_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    _transcript(a / "a1.json")
    _transcript(b / "b1.json")
    (a / "calls.csv").write_text("path,rep,customer,date\na1.json,dana,acme,2026-11-02\n../B/b1.json,mallory,x,2020-01-01\n")
    sources, _ = discover_inputs([str(tmp_path)])
    meta = {Path(s.path).name: s.metadata for s in sources}
    assert meta["a1.json"] == CallMetadata("dana", "acme", date(2026, 11, 2))
    assert meta["b1.json"].rep is None


def test_a_sidecar_follows_the_rules_inputs_follow(tmp_path: Path) -> None:
    """A calls.csv linked out of the input folder was read (an outside tester parsed /etc/shadow as one), and a
    pipe named calls.csv was passed over without a word (stop 57). Both are refused as inputs would be, with
    an errors row, and the calls are still scored; a link inside the input folder is read."""
    import os

    folder, outside = tmp_path / "in", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    _transcript(folder / "a1.json")
    (outside / "calls.csv").write_text("path,rep\na1.json,mallory\n")
    (folder / "calls.csv").symlink_to(outside / "calls.csv")
    sources, errors = discover_inputs([str(folder)])
    assert [s.metadata.rep for s in sources] == [None]
    assert len(errors) == 1 and "outside the input folder" in str(errors[0][1]) and errors[0][0].endswith("calls.csv")
    (folder / "calls.csv").unlink()
    os.mkfifo(folder / "calls.csv")
    sources, errors = discover_inputs([str(folder)])
    assert [s.metadata.rep for s in sources] == [None] and "not a regular file" in str(errors[0][1])
    (folder / "calls.csv").unlink()
    (folder / "meta").mkdir()
    (folder / "meta" / "calls.csv").write_text("path,rep\na1.json,dana\n")  # paths from where the link is
    (folder / "calls.csv").symlink_to(folder / "meta" / "calls.csv")
    sources, errors = discover_inputs([str(folder)])
    assert errors == [] and [s.metadata.rep for s in sources] == ["dana"]


def test_a_sidecar_as_other_tools_save_it_is_read(tmp_path: Path, caplog) -> None:
    """Outside tester's finds (stop 57): a row for café.json did not match the file macOS stored decomposed
    (NFD); a spreadsheet's UTF-16 "Unicode text" save was refused; a repeated column silently won; one cell
    over the csv limit refused the sidecar with a hint about encodings."""
    import unicodedata

    from pipeline.ingest.discover import read_sidecar

    folder = tmp_path / "in"
    folder.mkdir()
    nfd = unicodedata.normalize("NFD", "café.json")
    _transcript(folder / nfd)
    row = "path,rep,customer,date\n" + unicodedata.normalize("NFC", "café.json") + ",Dana,Acme,2026-11-02\n"
    (folder / "calls.csv").write_text(row, encoding="utf-8")
    sources, errors = discover_inputs([str(folder)])
    assert errors == [] and [s.metadata.rep for s in sources] == ["Dana"]
    (folder / "calls.csv").write_text(row, encoding="utf-16")  # with its byte-order mark
    assert [m.rep for m in read_sidecar(folder / "calls.csv").values()] == ["Dana"]
    (folder / "calls.csv").write_text("path,rep,rep\n" + nfd + ",First,Second\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        assert [m.rep for m in read_sidecar(folder / "calls.csv").values()] == ["Second"]
    assert "the header names 'rep' more than once" in caplog.text
    (folder / "calls.csv").write_text('path,rep\n' + nfd + ',"Dana\n' + "x" * 140_000 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="a cell longer than 131,072 characters") as refused:
        read_sidecar(folder / "calls.csv")
    assert "never closed" in refused.value.hint and "shorten the cell" in refused.value.hint


def test_rep_names_are_grouped_whatever_the_spelling() -> None:
    calls = [{"rep": r, "action_share": 0.5, "stage_shares": [], "call_date": None, "stages_present": [],
              "cycle_complete": False} for r in ("Dana", "dana", " DANA ", "Dana", "Tom")]
    reps = {r["rep"]: r["n_calls"] for r in rep_summaries(calls)}
    assert reps == {"Dana": 4, "Tom": 1}


def test_fifo_never_hangs_discovery(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "stream.wav")
    _transcript(folder / "ok.json")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(out=discover_inputs([str(folder),
                                                                                 str(folder / "stream.wav")])),
                              daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "discovery hung on a FIFO"
    sources, errors = result["out"]
    assert [Path(s.path).name for s in sources] == ["ok.json"]
    assert errors and all("not a regular file" in e.message for _, e in errors)


def _mp4_with_audio(path: Path, seconds: float = 1.5) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        t = np.arange(int(16000 * seconds)) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
            frame.rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_video_container_audio_is_decoded(tmp_path: Path) -> None:
    path = _mp4_with_audio(tmp_path / "zoom-export.mp4")
    sources, errors = discover_inputs([str(tmp_path)])
    assert [s.kind for s in sources] == ["audio"] and errors == []
    audio = load_audio(path)
    assert audio.duration_s == pytest.approx(1.5, abs=0.2)


def test_zero_channel_wav_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    data = b"\0" * 3200
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 0, 16000, 0, 0, 16) + b"data" + struct.pack("<I", len(data))
    path.write_bytes(header + data)
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path)
    assert "channel" in info.value.message or "not a readable" in info.value.message


def test_vanished_file_is_an_input_error_not_a_bug(tmp_path: Path, artifact, nlp) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path = _transcript(folder / "gone.json")
    (source,), _ = discover_inputs([str(folder)])
    path.unlink()
    process.prepare_output(out)
    outcome = process.process_source(source, asr=None, artifact=artifact, nlp=nlp, config=PipelineConfig(),
                                     out_dir=out)
    assert outcome.status == "failed" and outcome.step == "ingest"
    assert "disappeared" in outcome.message and "bug" not in outcome.message


def test_empty_folder_is_a_clear_error_with_non_zero_exit(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("nothing here")
    result = runner.invoke(app, ["run", str(tmp_path / "empty"), "--out", str(tmp_path / "out"),
                                 "--models", str(MODELS)])
    assert result.exit_code == 2
    assert "No audio or transcript files found" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()  # refused before Prefect starts or the output folder is made


def test_holds_no_inputs_stops_at_the_first_readable_file_and_leaves_the_rest_to_discovery(tmp_path: Path) -> None:
    """The cheap pre-check agrees with discovery: only inputs where a walk finds nothing readable count as empty."""
    empty = tmp_path / "empty"
    (empty / ".hidden").mkdir(parents=True)
    (empty / ".hidden" / "a.wav").write_bytes(b"")  # hidden folders are not walked
    (empty / ".b.wav").write_bytes(b"")  # nor hidden files
    (empty / "notes.md").write_text("x")
    assert discover.holds_no_inputs([str(empty)])
    assert discover_inputs([str(empty)]) == ([], [])
    sidecar_only = tmp_path / "sidecar-only"
    sidecar_only.mkdir()
    (sidecar_only / "calls.csv").write_text("rep\ndana\n")  # no path column: discovery records an error
    assert not discover.holds_no_inputs([str(sidecar_only)])
    assert discover_inputs([str(sidecar_only)])[1] != []
    assert discover.holds_no_inputs([str(tmp_path / "empty" / "*.md")])
    full = tmp_path / "full" / "deep"
    full.mkdir(parents=True)
    (full / "call.json").write_text("{}")
    assert not discover.holds_no_inputs([str(empty), str(tmp_path / "full")])
    assert not discover.holds_no_inputs([str(tmp_path / "full" / "**" / "*.json")])
    assert not discover.holds_no_inputs([str(empty / "notes.md")])  # a file named outright: discovery judges it
    assert not discover.holds_no_inputs(["s3://bucket/calls/"])  # remote: never judged here


def test_a_run_that_scores_nothing_lists_its_failures_without_telling_to_run_first(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{ not json")
    result = runner.invoke(app, ["run", str(tmp_path / "broken.json"), "--out", str(tmp_path / "out"),
                                 "--models", str(MODELS)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "0 scored" in text and "1 failed" in text and "broken.json" in text
    assert "Run `callcycle run` first" not in text


def test_a_file_name_that_is_not_utf8_is_one_failed_input(tmp_path: Path) -> None:
    """A name from a Windows zip (cp1252 bytes) crashed the whole run with a traceback (the fingerprint
    lookup and the Parquet rows need text); it is one failed input that says to rename it."""
    folder = tmp_path / "in"
    folder.mkdir()
    _transcript(folder / "ok.json")
    os.close(os.open(os.path.join(os.fsencode(folder), b"caf\xe9.json"), os.O_CREAT | os.O_WRONLY))
    _transcript(Path(os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.json"))), "Let's book Tuesday.")
    os.close(os.open(os.path.join(os.fsencode(folder), b"notes-\xff.md"), os.O_CREAT | os.O_WRONLY))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(folder), "--out", str(out), "--models", str(MODELS)],
                           env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "1 scored" in text and "1 failed" in text, text
    errors = store.read_dataset(out, "errors").to_pylist()
    assert [Path(e["source_path"]).name for e in errors] == ["caf\\xe9.json"]
    assert "not valid UTF-8" in errors[0]["message"] and "Rename the file" in errors[0]["hint"]


def test_an_output_folder_that_is_or_holds_an_input_is_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run in --out in` said "no audio or transcript files found" and `run data/calls --out data` wrote
    calls/, segments/ and errors/ among the recordings; both are usage errors now. An output inside an
    input still works (it is left out of the inputs)."""
    folder = tmp_path / "in" / "calls"
    folder.mkdir(parents=True)
    _transcript(folder / "a.json")
    monkeypatch.chdir(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for inputs, out in ((["in"], "in"), (["in/calls"], "in"), (["in"], "."), ([str(folder / "a.json")], "in")):
        result = runner.invoke(app, ["run", *inputs, "--out", out, "--models", str(MODELS)], env={"COLUMNS": "200"})
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and "or holds it" in text and "nothing was written" in text, (inputs, out, text)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    result = runner.invoke(app, ["run", "in", "--out", "in/scored", "--models", str(MODELS)])
    assert result.exit_code == 0 and "1 scored" in result.output, result.output


def test_the_html_report_shows_file_and_speaker_names_without_control_or_bidi_characters(tmp_path: Path) -> None:
    """The scorecard's "source ..." line and speaker names kept raw ESC and U+202E (which reverses the
    rest of the line on screen); escaping stops markup, not these."""
    folder = tmp_path / "in"
    folder.mkdir()
    name = "call\u202egnp.\x1b[31m.json"
    (folder / name).write_text(json.dumps({"turns": [{"speaker": "Dana\u202e\x07", "text": "I will send it Friday."},
                                                     {"speaker": "Lee", "text": "Great, thanks."},
                                                     # the transcript's own words, quoted in the scorecard
                                                     {"speaker": "Lee\x1b[31m", "text": "\x1b[2JWe had a reorg "
                                                      "in the summer so everybody is still figuring it out."}]}))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(folder), "--out", str(out), "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "\u202e" not in page and "\x1b" not in page and "\x07" not in page
    assert "source " in page and "Dana" in page and "[2JWe had a reorg" in page


def test_a_speech_or_classifier_model_that_cannot_be_found_is_refused_before_any_output(tmp_path: Path) -> None:
    """A mistyped --asr-model failed every audio file, one error row each (exit 1, a report written);
    a mistyped --models created the output folders. Both are usage errors now: exit 2, nothing written,
    and the progress bar is not drawn (an empty "scoring 0/?" bar stood above the error)."""
    _transcript(tmp_path / "real.json")
    out = tmp_path / "out"
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    for option, value, said in (("--asr-model", "nosuchmodel", "Unknown speech model 'nosuchmodel'"),
                                ("--asr-model", "someone/whisper-x", "not in the local Hugging Face cache"),
                                ("--asr-model", str(not_a_model), "has no model.bin"),
                                ("--asr-model", str(tmp_path / "real.json"), "is a file"),
                                ("--models", str(tmp_path / "no-models"), "no-models")):
        args = ["run", str(tmp_path / "real.json"), "--out", str(out), option, value]
        result = runner.invoke(app, args if option == "--models" else [*args, "--models", str(MODELS)],
                               env={"COLUMNS": "200"})
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and said in text, text
        assert not out.exists(), option
        assert "scoring" not in text, "no empty progress bar above a setup error (stop 56)"


def test_a_mistyped_input_is_a_usage_error_that_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _transcript(tmp_path / "real.json")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(tmp_path / "real.json"), str(tmp_path / "no-such.wav"),
                                 "--out", str(out), "--models", str(MODELS)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "No input matches" in text and "no-such.wav" in text and "Check the path" in text
    assert not out.exists(), "a usage error writes nothing (no errors/ row to haunt later runs)"
    # the flow itself refuses it the same way, for callers of the Python API
    from flows.score_flow import score_calls

    with pytest.raises(InputError, match="No input matches"):
        score_calls.fn([str(tmp_path / "nope-*.wav")], out_dir=str(out), models=str(MODELS))
    assert not out.exists()
    # no inputs and no ./data/calls where the command runs: say so, not "data/calls matches nothing"
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "--out", str(out), "--models", str(MODELS)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "No inputs were given" in text and "callcycle run recordings/" in text
    assert not out.exists()


def test_summary_fits_80_columns() -> None:
    from rich.console import Console

    row = {"call_id": "2026-11-02__dana__acme__a-rather-long-discovery-call-name", "rep": "Dana",
           "call_date": date(2026, 11, 2), "audio_duration_s": 300.0, "speech_s": 250.0, "action_share": 0.4,
           "talk_action_ratio": 1.5, "stage_shares": [("align", .3), ("act", .4), ("adjust", .2), ("other", .1)],
           "stages_present": ["align", "act"], "cycle_complete": False, "speakers": [], "source_id": "x",
           "source_path": "x", "action_share_low": 0.25, "action_share_high": 0.55}
    # the widest share cell: 100% with an interval of ±50 points
    widest = {**row, "call_id": "widest", "action_share": 1.0, "action_share_low": 0.0, "action_share_high": 1.0}
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    render_summary([row, widest], console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "cycle" in text and "open loop" in text and "30/40/20/10" in text
    assert "40%±15 +" in text and "100%±50 +" in text  # the verdict's mark, which survives without colour
    assert "+ (green) ≥35% moves work forward" in " ".join(text.split())
    # at 80 columns rep and date go under the call, so an id of 25 characters is never folded
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    render_summary([{**row, "call_id": "support-escalation-outage"}], console)
    text = console.export_text()
    assert "support-escalation-outage" in text and "Dana · 2026-11-02" in text and "call · rep · date" in text
    console = Console(width=140, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    render_summary([row], console)
    wide = console.export_text().splitlines()
    assert any(line.split()[:3] == ["call", "rep", "date"] for line in wide)
    assert any(row["call_id"] in line and "Dana" in line and "2026-11-02" in line for line in wide)
    # two calls of one name (a.wav and a.mp3) are told apart by their identities
    twins = [{**row, "call_id": "a", "source_id": "a.wav"}, {**row, "call_id": "a", "source_id": "a.mp3"}]
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    render_summary(twins, console)
    text = console.export_text()
    assert "a.wav" in text and "a.mp3" in text


def test_failed_inputs_of_one_name_are_told_apart_by_path() -> None:
    from rich.console import Console

    from pipeline.report.terminal import render_errors

    rows = [{"source_path": f"nightly/d{i}/call_0001.json", "step": "parse", "message": "invalid JSON", "hint": "fix"}
            for i in (1, 2)] + [{"source_path": "nightly/d1/other.json", "step": "parse", "message": "x", "hint": ""}]
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    render_errors(rows, console)
    text = console.export_text()
    assert "nightly/d1/call_0001.json" in text and "nightly/d2/call_0001.json" in text
    assert "other.json" in text and "nightly/d1/other.json" not in text


def test_sub_folders_not_entered_are_noted(tmp_path: Path) -> None:
    """A symlinked or hidden sub-folder was skipped with no word (hidden files got a note)."""
    folder, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    (folder / ".git").mkdir(parents=True)
    elsewhere.mkdir()
    _transcript(folder / "a.json")
    _transcript(elsewhere / "b.json", "Let's book Tuesday.")
    (folder / "linked").symlink_to(elsewhere)
    out = folder / "scored"  # the run's own output inside the input: never noted
    result = runner.invoke(app, ["run", str(folder), "--out", str(out), "--models", str(MODELS)], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 scored" in text, text
    assert "note: 2 sub-folder(s) not entered (hidden, or a symbolic link to a folder): .git, linked" in text
    again = runner.invoke(app, ["run", str(folder), "--out", str(out), "--models", str(MODELS)], env={"COLUMNS": "200"})
    assert "note: 2 sub-folder(s)" in " ".join(again.output.split())  # out/.cache is the run's own: not noted
    only_linked = tmp_path / "only"
    only_linked.mkdir()
    (only_linked / "linked").symlink_to(elsewhere)
    result = runner.invoke(app, ["run", str(only_linked), "--out", str(tmp_path / "o2"), "--models", str(MODELS)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "symbolic links to folders are not entered" in " ".join(result.output.split())


def test_a_bad_date_in_a_name_and_a_repeated_sidecar_row_are_warned_about(tmp_path: Path, caplog) -> None:
    from pipeline.ingest.discover import metadata_from_name, read_sidecar

    with caplog.at_level("WARNING"):
        assert metadata_from_name(Path("2026-13-02__dana__acme__x.json")) == CallMetadata()
    assert "'2026-13-02' in the name is not a calendar date" in caplog.text
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "calls.csv").write_text("path,rep\na.json,Dana\na.json,Lee\n")
    caplog.clear()
    with caplog.at_level("WARNING"):
        meta = read_sidecar(tmp_path / "calls.csv")
    assert meta[(tmp_path / "a.json").resolve()].rep == "Lee" and "a second row for 'a.json'" in caplog.text
    # a date written right that does not exist is told from one written wrong
    (tmp_path / "calls.csv").write_text("path,date\na.json,2026-02-30\n")
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_sidecar(tmp_path / "calls.csv")
    assert "date '2026-02-30' is not a calendar date, left empty" in caplog.text
    (tmp_path / "calls.csv").write_text("path,date\na.json,30/02/2026\n")
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_sidecar(tmp_path / "calls.csv")
    assert "date '30/02/2026' is not YYYY-MM-DD, left empty" in caplog.text


def test_json_output_escapes_what_a_terminal_would_act_on() -> None:
    """`classify` writing JSON Lines to a terminal passed C1 controls (U+009B starts an escape sequence on
    some terminals) and bidi overrides raw; they are written as \\uXXXX, the same JSON value."""
    import io

    from pipeline.tables import rows_to_jsonl

    buf = io.StringIO()
    row = {"text": "a\u009b31mb \u202eevil caf\u00e9", "n": 1}
    rows_to_jsonl([row], buf)
    line = buf.getvalue()
    assert "\u009b" not in line and "\u202e" not in line and "caf\u00e9" in line
    assert json.loads(line) == row


def test_calls_whose_file_is_gone_are_counted_and_retired_with_prune(tmp_path: Path, monkeypatch) -> None:
    """A deleted or renamed input kept its rows for good (a renamed file counted twice, a deleted failure
    kept "1 input could not be scored"); a run names them, and --prune moves their rows to retired/."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name, text in (("a", "I will send the plan by Friday."), ("b", "Let's book Tuesday."),
                       ("c", "Can you confirm the budget?")):
        _transcript(folder / f"{name}.json", text)
    (folder / "broken.json").write_text("{ nope")
    args = ["run", str(folder), "--out", str(out), "--models", str(MODELS)]
    assert runner.invoke(app, args).exit_code == 1
    (folder / "b.json").unlink()
    (folder / "broken.json").unlink()
    (folder / "c.json").rename(folder / "c2.json")
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "note: 2 stored call(s) of these folders have no input file any more (deleted or renamed): " in text
    # a failure whose file is gone is not called a stored call
    assert "note: 1 failed input(s) of these folders are gone (deleted or renamed): broken.json;" in text
    from pipeline.report.data import load_call_rows, load_error_rows

    assert len(load_call_rows(out)) == 4 and len(load_error_rows(out)) == 1  # counted, not yet moved
    # a run from another working folder, naming the same folder another way, still finds them (nothing else)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "in", "--out", "out", "--models", str(MODELS), "--prune"],
                           env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "retired 2 stored call(s) and 1 failed input(s)" in text, text
    assert sorted(r["source_id"] for r in load_call_rows(out)) == ["a.json", "c2.json"]
    assert load_error_rows(out) == []
    assert len(list((out / "retired" / "calls").glob("part-*.parquet"))) == 2
    # another input folder's calls in the same output are never touched
    other = tmp_path / "other"
    other.mkdir()
    _transcript(other / "x.json", "We agreed to start the pilot on Monday.")
    assert runner.invoke(app, ["run", "other", "--out", "out", "--models", str(MODELS)]).exit_code == 0
    result = runner.invoke(app, ["run", "in", "--out", "out", "--models", str(MODELS), "--prune"])
    assert "retired" not in result.output and len(load_call_rows(out)) == 3
    # a name used again (recorders reuse call_0001.wav) is retired next to its earlier copy, not over it
    _transcript(folder / "b.json", "A different call that happens to get the same name.")
    assert runner.invoke(app, ["run", "in", "--out", "out", "--models", str(MODELS)]).exit_code == 0
    (folder / "b.json").unlink()
    result = runner.invoke(app, ["run", "in", "--out", "out", "--models", str(MODELS), "--prune"])
    assert "retired 1 stored call(s)" in " ".join(result.output.split()), result.output
    files = sorted((out / "retired" / "calls").glob("part-*.parquet"))
    retired = [row for file in files for row in pq.read_table(file).to_pylist()]
    b_rows = [r for r in retired if r["source_id"] == "b.json"]
    assert len(retired) == 3 and len({r["source_sha256"] for r in b_rows}) == 2


def test_the_same_recording_reached_from_another_input_folder_is_not_scored_twice(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """`run in` one night and `run in/sub` the next stored sub/h.json and h.json: one recording transcribed
    twice and counted twice. The second is skipped, naming the stored call; --force scores it anyway; a
    stored call whose file is gone (a rename) does not hold the new name back."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    _transcript(tmp_path / "in" / "sub" / "h.json")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["run", "in", "--out", "out", "--models", str(MODELS)]).exit_code == 0
    result = runner.invoke(app, ["run", "in/sub", "--out", "out", "--models", str(MODELS)], env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert "0 scored, 1 skipped" in text and "same bytes as the stored call sub/h.json" in text, text
    from pipeline.report.data import load_call_rows

    assert [r["source_id"] for r in load_call_rows("out")] == ["sub/h.json"]
    forced = runner.invoke(app, ["run", "in/sub", "--out", "out", "--models", str(MODELS), "--force"])
    assert "1 scored" in forced.output and len(load_call_rows("out")) == 2
    (tmp_path / "in" / "sub" / "h.json").rename(tmp_path / "in" / "h2.json")
    renamed = runner.invoke(app, ["run", "in", "--out", "out", "--models", str(MODELS)])
    assert "1 scored" in renamed.output, renamed.output


def test_one_call_in_two_formats_is_noted(tmp_path: Path) -> None:
    """call.json and call.TXT in one folder are two calls (perhaps one conversation): a run says so."""
    folder = tmp_path / "in"
    folder.mkdir()
    _transcript(folder / "call.json")
    (folder / "call.TXT").write_text("Dana: Let's book Tuesday.\nLee: Tuesday works.\n")
    _transcript(folder / "other.json", "How was the conference?")
    result = runner.invoke(app, ["run", str(folder), "--out", str(tmp_path / "out"), "--models", str(MODELS)],
                           env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "3 scored" in text, text
    assert "note: 1 name(s) come in several formats (call.TXT, call.json)" in text


def test_a_stored_rep_emptied_by_a_missing_sidecar_row_is_said(tmp_path: Path) -> None:
    """A calls.csv removed or truncated stripped rep, customer and date from stored calls ("1 updated") with
    no warning."""
    folder = tmp_path / "in"
    folder.mkdir()
    _transcript(folder / "a.json")
    (folder / "calls.csv").write_text("path,rep,customer,date\na.json,Dana,Acme,2026-11-02\n")
    args = ["run", str(folder), "--out", str(tmp_path / "out"), "--models", str(MODELS)]
    assert runner.invoke(app, args).exit_code == 0
    (folder / "calls.csv").unlink()
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert "1 updated" in text and "note: 1 stored call(s) lost their rep, customer or date" in text, text


def test_help_keeps_square_brackets() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "[asr]" in result.output and "[segmentation]" in result.output


def test_explicit_unsupported_and_missing_inputs_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.docx").write_text("x")
    _sources, errors = discover_inputs([str(tmp_path / "notes.docx"), str(tmp_path / "nope-*.wav")])
    assert all(isinstance(e, InputError) for _, e in errors) and len(errors) == 2
    assert discover.no_inputs_error([str(tmp_path)]).hint


def test_max_duration_is_checked_from_the_header_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.errors import EmptyAudioError

    path = _mp4_with_audio(tmp_path / "long.mp4", seconds=4.0)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the header already says it is too long")

    monkeypatch.setattr(av, "AudioResampler", no_decoding)
    with pytest.raises(EmptyAudioError, match="longer than the limit"):
        load_audio(path, max_duration_s=1.0)


def test_classify_refuses_what_it_cannot_read_safely_and_writes_the_format_the_name_says(tmp_path: Path) -> None:
    """A text past the per-utterance limit, an unclosed CSV quote (it would swallow every later row),
    a header that names a column twice and an output that is the input are refused with a clear
    error (exit 2, no traceback); .json / .tsv / '-' outputs are written as their names say."""
    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["classify", *args, "--models", str(MODELS)])

    big = tmp_path / "big.txt"
    big.write_text("x" * 600_000 + "\n")
    quote = tmp_path / "quote.csv"
    quote.write_text('id,text\n1,"we will ship\n2,ok\n')
    doubled = tmp_path / "doubled.csv"
    doubled.write_text("text,text\na,b\n")
    same = tmp_path / "same.txt"
    same.write_text("We will ship it by Friday.\n")
    for args, says in (([str(big)], "600,000 characters"), ([str(quote)], "never closed"),
                       ([str(doubled)], "'text' more than once"), ([str(same), "-o", str(same)], "is the input file")):
        result = invoke(*args)
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
    assert same.read_text() == "We will ship it by Friday.\n"
    to_json, to_tsv = tmp_path / "o.json", tmp_path / "o.tsv"
    assert invoke(str(same), "-o", str(to_json)).exit_code == 0
    assert invoke(str(same), "-o", str(to_tsv)).exit_code == 0
    rows = json.loads(to_json.read_text())
    assert rows[0]["text"] == "We will ship it by Friday." and rows[0]["stage"] in ("align", "act", "adjust", "other")
    header, cells = [line.split("\t") for line in to_tsv.read_text().splitlines()]
    assert dict(zip(header, cells))["stage"] == rows[0]["stage"]
    dash = invoke(str(same), "-o", "-")
    assert dash.exit_code == 0 and json.loads(dash.stdout.splitlines()[0])["stage"] == rows[0]["stage"]
    assert not (Path.cwd() / "-").exists()


def test_links_copies_hidden_files_and_an_output_inside_the_inputs_are_named_and_fixed_errors_go(
        tmp_path: Path) -> None:
    """A link to a file in the folder is skipped (the file is scored under its own path, whichever the
    walk meets first) and said so, as is a copy; a hidden file is left alone with a note; the run's own
    output folder inside the inputs is not read; a dangling link fails with what is wrong, and its
    errors/ row goes once the link leads to a file."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _transcript(folder / "sub" / "target.json", "We will send the contract on Monday.")
    (folder / "alink.json").symlink_to(Path("sub") / "target.json")  # walked before sub/
    _transcript(folder / "copy.json")
    _transcript(folder / "copy2.json")
    (folder / "dangling.json").symlink_to("later.json")
    _transcript(folder / ".hidden.json")
    out = folder / "out"

    def run() -> str:
        result = runner.invoke(app, ["run", str(folder), "--out", str(out), "--models", str(MODELS)],
                               env={"COLUMNS": "200"})
        return " ".join(result.output.split())

    first = run()
    assert "dangling.json is a symbolic link to later.json, which does not exist" in first
    assert "skipped: " + str(folder / "alink.json") + ": the same file as " + str(folder / "sub" / "target.json") in first
    assert "same bytes as" in first and "1 hidden file(s)" in first and ".hidden.json" in first
    calls = pq.read_table(out / "calls").column("source_id").to_pylist()
    assert sorted(calls) == ["copy.json", "sub/target.json"]
    assert len(list((out / "errors").glob("part-*.parquet"))) == 1
    assert "1 input could not be scored" in (out / "report.html").read_text()  # the manager sees it too
    _transcript(folder / "later.json", "Please book the follow-up for Tuesday.")
    second = run()
    assert "left alone: report.html" not in second and "part-" not in second  # its own output is not an input
    assert "0 failed" in second and not list((out / "errors").glob("part-*.parquet"))
    summary = runner.invoke(app, ["summary", str(out)])
    assert "Failed inputs" not in summary.output
    assert "could not be scored" not in (out / "report.html").read_text()


def test_two_inputs_with_one_identity_in_one_run_score_one_and_record_the_other(tmp_path: Path) -> None:
    """nightly/d1/call.json and nightly/d2/call.json given as two folders share the identity 'call.json':
    one is scored, the other is a failed input with its own errors/ row, on every run (two files at once
    used to score both and keep one call's rows beside the other's)."""
    for night, text in (("d1", "I will send the plan by Friday."), ("d2", "The weather was awful last week.")):
        (tmp_path / "nightly" / night).mkdir(parents=True)
        _transcript(tmp_path / "nightly" / night / "call.json", text)
    out = tmp_path / "out"
    for _ in range(2):
        result = runner.invoke(app, ["run", str(tmp_path / "nightly" / "d1"), str(tmp_path / "nightly" / "d2"),
                                     "--out", str(out), "--models", str(MODELS), "--no-report"],
                               env={"COLUMNS": "200"})
        assert result.exit_code == 1 and "1 failed" in result.output, result.output
        assert "another input of this run" in " ".join(result.output.split())
        assert pq.read_table(out / "calls").num_rows == 1
        assert [Path(p).parent.name for p in pq.read_table(out / "errors").column("source_path").to_pylist()] == ["d2"]


def test_ctrl_c_stops_a_run_at_once_and_keeps_what_was_written(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) mid-run ends the process within seconds with one line saying what to do, no
    traceback and no temporary Prefect API left running (it took over a minute and printed ~400 lines)."""
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):  # audio, so the run is still transcribing when the signal comes
        (folder / f"call-{i}.wav").write_bytes((ROOT / "data" / "calls" / "discovery-northwind.wav").read_bytes()
                                                + bytes([i]) * 2)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "run", str(folder), "--out", str(out), "--models",
                             str(MODELS), "--threads", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "100"})
    def servers() -> list[int]:  # the run's temporary Prefect API (a child process running uvicorn)
        found = []
        for entry in Path("/proc").iterdir():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            if ppid == proc.pid and ("uvicorn" in cmdline or "prefect" in cmdline):
                found.append(int(entry.name))
        return found

    deadline = time.monotonic() + 120
    while not servers() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    started = servers()
    assert started, "the run started no temporary API"
    time.sleep(2.0)  # transcribing now
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=60)[0].decode()
    assert time.monotonic() - interrupted < 15, output
    assert proc.returncode == 130 and "interrupted (Ctrl-C)" in output and "Traceback" not in output, output
    # the run waits up to 0.8 s for its server, then its watchdog stops a lingering one: allow for a loaded machine
    deadline = time.monotonic() + 15
    while [pid for pid in started if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists()], "the temporary API was left running"


def test_a_corrected_speakers_column_rescores_the_call(tmp_path: Path) -> None:
    """A 'speakers' column added to calls.csv after a call was scored was ignored ("1 skipped"): the roles
    live in every segment row and the per-speaker scores, so the call is scored again with them."""
    folder = tmp_path / "in"
    folder.mkdir()
    _transcript(folder / "a.json")
    (folder / "calls.csv").write_text("path,rep\na.json,Nobody\n")
    out = tmp_path / "out"
    args = ["run", str(folder), "--out", str(out), "--models", str(MODELS)]
    assert runner.invoke(app, args).exit_code == 0
    speakers = sorted({r["speaker"] for r in store.read_dataset(out, "segments").to_pylist()})
    (folder / "calls.csv").write_text(f"path,rep,speakers\na.json,Nobody,{speakers[0]}=manager\n")
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert "1 scored" in " ".join(result.output.split()), result.output
    rows = store.read_dataset(out, "segments").to_pylist()
    assert {(r["role"], r["role_source"]) for r in rows if r["speaker"] == speakers[0]} == {("manager", "sidecar")}
    again = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert "1 skipped" in " ".join(again.output.split())  # unchanged since: nothing to redo


def test_a_process_that_scores_files_logs_their_names_without_control_characters() -> None:
    """An operator's find (stop 55): on Dask workers (`--workers`, `--dask-address`) file names reached the
    worker's log, Prefect's API logs and `-v` output with escape sequences and newlines (a name with a
    newline forged a log line): only the command line's own process filtered them. Every process that
    scores files now filters Prefect's run loggers and the root logger's handlers (flows.score_flow)."""
    import io
    import logging
    import warnings

    from flows import RUN_LOGGERS
    from pipeline.display import printable_logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        printable_logging(*RUN_LOGGERS)
        printable_logging(*RUN_LOGGERS)  # idempotent: one filter each
        assert sum(type(f).__name__ == "PrintableLogFilter" for f in handler.filters) == 1
        with warnings.catch_warnings():  # Prefect warns that a task logger outside a run reaches no API
            warnings.simplefilter("ignore")
            logging.getLogger("prefect.task_runs").warning("%s failed: %s", "new\nline\x1b[31m.json", "bad\x07")
        logging.getLogger("a.library.on.a.worker").warning("%s", "esc\x1b]0;title\x07.wav")  # via the root handler
    finally:
        root.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and not any(ch in stream.getvalue() for ch in "\x1b\x07")
