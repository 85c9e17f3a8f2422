"""Active learning round trip: export uncertain segments, label them, import — or refuse bad labels."""

from __future__ import annotations

import csv
import json
import re
from datetime import date
from pathlib import Path

import pytest
from conftest import MODELS
from typer.testing import CliRunner

from cli import app
from pipeline.classify.active import import_labels, select_uncertain, write_for_labelling
from pipeline.classify.labels import load_taxonomy
from pipeline.errors import LabelDataError
from pipeline.schema import CallMetadata, ClassifiedSegment, Prediction, Segment, Source
from pipeline.score import score_call
from pipeline.store import local as store

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
runner = CliRunner()


@pytest.fixture()
def scored(tmp_path: Path) -> Path:
    """A scored call whose segments have known confidences."""
    out = tmp_path / "out"
    confidences = [(0.95, 0.02), (0.40, 0.55), (0.90, 0.97), (0.55, 0.30)]
    segs = []
    for i, (stage_p, action_p) in enumerate(confidences):
        s = Segment("c1", i, i, "rep", 0, i * 2.0, i * 2.0 + 2, f"sentence number {i}", 0.9, False, False)
        segs.append(ClassifiedSegment(s, Prediction("act", {"act": stage_p, "align": 1 - stage_p}),
                                      Prediction("action" if action_p > 0.5 else "talk",
                                                 {"action": action_p, "talk": 1 - action_p})))
    source = Source("/x/c1.wav", "audio", "wav", "ab" * 32, 1, "c1", CallMetadata("dana", "acme", date(2026, 1, 2)))
    stamp = store.RunStamp("v", "t/1", "tiny")
    key = store.call_key(source.sha256, stamp, "audio")
    store.write_call(out, key, store.segments_table(key, source, "c1", segs, TAXONOMY),
                     store.calls_table(key, source, "c1", score_call(segs, TAXONOMY), stamp, 8.0, False, 1.0))
    return out


def _label_every_row(exported: Path, stage: str, talk_action: str) -> list[dict[str, str]]:
    """Fill in an exported CSV as a labeller would (every row the same labels); returns its rows."""
    rows = list(csv.DictReader(exported.open()))
    for row in rows:
        row["stage"], row["talk_action"] = stage, talk_action
    with exported.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_least_confident_first(scored: Path) -> None:
    rows = select_uncertain(scored, n=2)
    assert [r["text"] for r in rows] == ["sentence number 1", "sentence number 3"]
    assert rows[0]["uncertainty"] == pytest.approx(0.9)  # 1 - 2*|0.55 - 0.5|


def test_export_label_import_round_trip(scored: Path, tmp_path: Path) -> None:
    exported = write_for_labelling(select_uncertain(scored, 3), tmp_path / "todo.csv", TAXONOMY)
    rows = _label_every_row(exported, "act", "action")
    target = tmp_path / "imported.jsonl"
    assert import_labels(exported, TAXONOMY, target) == 3
    merged = [json.loads(line) for line in target.read_text().splitlines()]
    assert {m["stage"] for m in merged} == {"act"} and all(m["id"].startswith("al-") for m in merged)
    # a segment's conversation group is its call, so held-out splits and context keep calls whole
    assert all(m["group"] == f"call:{m['call_key']}" for m in merged) and merged[0]["call_id"] == "c1"
    # exported most uncertain first (segments 1, 3, 2), imported in call order with their positions, so
    # training reads only truly consecutive segments as neighbours
    assert [int(r["segment_index"]) for r in rows] == [1, 3, 2]
    assert [m["index"] for m in merged] == [1, 2, 3]
    from pipeline.classify.labels import load_labelled
    from pipeline.classify.train import rows_to_utterances

    utterances = rows_to_utterances(load_labelled([target], TAXONOMY))
    assert utterances.texts == ("sentence number 1", "sentence number 2", "sentence number 3")
    assert len(set(utterances.conversations)) == 1
    # importing the same rows again is a duplicate-id error and changes nothing
    before = target.read_text()
    with pytest.raises(LabelDataError, match="already in the labelled data"):
        import_labels(exported, TAXONOMY, target, existing=[target])
    assert target.read_text() == before


def test_label_studio_export_is_understood(scored: Path, tmp_path: Path) -> None:
    path = write_for_labelling(select_uncertain(scored, 2), tmp_path / "ls.json", TAXONOMY)
    assert (tmp_path / "ls.label_config.xml").read_text().count("<Choices") == 2
    tasks = json.loads(path.read_text())
    for task in tasks:  # what Label Studio exports after a human answered
        task["annotations"] = [{"result": [
            {"from_name": "stage", "value": {"choices": ["adjust"]}},
            {"from_name": "talk_action", "value": {"choices": ["talk"]}}]}]
    path.write_text(json.dumps(tasks))
    target = tmp_path / "t.jsonl"
    assert import_labels(path, TAXONOMY, target) == 2
    assert {json.loads(x)["stage"] for x in target.read_text().splitlines()} == {"adjust"}


def test_imports_at_once_keep_every_row_and_a_readable_file(tmp_path: Path) -> None:
    """Two imports into one file at the same time each read the old file, and the later rename dropped the
    other's rows; the file was also left owner-only (0600). A reviewer's find, stop 57."""
    import os
    import threading

    target, sources = tmp_path / "t.jsonl", []
    for k in range(6):
        src = tmp_path / f"in-{k}.jsonl"
        src.write_text("".join(json.dumps({"id": f"{k}-{i}", "text": f"We will ship batch {k}.{i} on Friday.",
                                           "stage": "act", "talk_action": "action"}) + "\n" for i in range(40)))
        sources.append(src)
    threads = [threading.Thread(target=import_labels, args=(src, TAXONOMY, target)) for src in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [json.loads(line)["id"] for line in target.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 240
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    with pytest.raises(LabelDataError, match="already in t.jsonl"):  # an import repeated is refused whole
        import_labels(sources[0], TAXONOMY, target)
    assert len(target.read_text().splitlines()) == 240
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".t.jsonl.lock"]  # no temporary file


@pytest.mark.parametrize("rows,fragment", [
    ([{"id": "1", "text": "hi", "stage": "chit-chat", "talk_action": "talk"}], "unknown stage label"),
    ([{"id": "1", "text": "", "stage": "other", "talk_action": "talk"}], "empty or missing 'text'"),
    # 1.5 million characters (a file that lost its line breaks) crashed training in spaCy with a traceback
    ([{"id": "1", "text": "We will sign it. " * 90_000, "stage": "act", "talk_action": "action"}],
     "a text of 1,530,000 characters (the limit is 500,000"),
    ([{"id": "1", "text": "a", "stage": "other", "talk_action": "talk"},
      {"id": "1", "text": "b", "stage": "other", "talk_action": "talk"}], "duplicate id"),
])
def test_bad_labels_merge_nothing(tmp_path: Path, rows: list[dict], fragment: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    target = tmp_path / "t.jsonl"
    result = runner.invoke(app, ["import-labels", str(src), "--into", str(target)])
    assert result.exit_code == 2 and fragment in " ".join(result.output.split())
    assert not target.exists()


def test_import_refuses_other_and_action_and_points_at_spreadsheet_lines(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,text,stage,talk_action\n"
                   "1,Can you send it by Friday?,act,action\n"
                   "2,The weather has been awful.,other,action\n")
    target = tmp_path / "t.jsonl"
    result = runner.invoke(app, ["import-labels", str(src), "--into", str(target)])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and f"{src}:3" in message and "'other' and 'action'" in message
    assert not target.exists()
    src.write_text("id,text,stage,talk_action\n1,Can you send it by Friday?,Acted,action\n")
    result = runner.invoke(app, ["import-labels", str(src), "--into", str(target)])
    assert result.exit_code == 2 and f"{src}:2: unknown stage label 'Acted'" in " ".join(result.output.split())
    # ... also written in capitals
    src.write_text("id,text,stage,talk_action\n1,How are you,Other,Action\n")
    result = runner.invoke(app, ["import-labels", str(src), "--into", str(target)])
    assert result.exit_code == 2 and "'other' and 'action'" in " ".join(result.output.split())
    assert not target.exists()
    # the same label in another case or with spaces is that label, stored as the taxonomy spells it
    src.write_text("id,text,stage,talk_action\n1,Can you send it by Friday?, Act ,ACTION\n")
    result = runner.invoke(app, ["import-labels", str(src), "--into", str(target)])
    assert result.exit_code == 0, result.output
    stored = json.loads(target.read_text())
    assert (stored["stage"], stored["talk_action"]) == ("act", "action")
    # ... and so are column names retyped in another case ("no row has a label yet" said otherwise)
    src.write_text("ID;Text;Stage;Talk_Action\nh1;We'll sign it Monday.;act;action\n")
    result = runner.invoke(app, ["import-labels", str(src), "--into", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text().splitlines()[-1])["stage"] == "act"
    # a plain JSON array of labelled rows is read as rows (a Label Studio export has tasks with 'data')
    array = tmp_path / "rows.json"
    array.write_text(json.dumps([{"id": "j1", "text": "Let's book Tuesday.", "stage": "act", "talk_action": "action"}]))
    result = runner.invoke(app, ["import-labels", str(array), "--into", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text().splitlines()[-1])["id"] == "j1"
    # a spreadsheet saved in Windows-1252 is refused with the line and byte that are not UTF-8
    src.write_bytes(b"id,text,stage,talk_action\n2,caf\xe9 talk,align,talk\n")
    result = runner.invoke(app, ["import-labels", str(src), "--into", str(target)])
    assert result.exit_code == 2 and "not UTF-8 (line 2, byte 0xe9)" in " ".join(result.output.split())


def test_a_spreadsheet_labelled_part_way_imports_its_labelled_rows(scored: Path, tmp_path: Path, caplog) -> None:
    """Rows left blank (exported, not labelled yet) are left out with a warning, as unannotated Label
    Studio tasks are (the whole file was refused); a row labelled for one task only is still an error,
    and problems are listed in file order."""
    import csv

    exported = write_for_labelling(select_uncertain(scored, 3), tmp_path / "todo.csv", TAXONOMY)
    with exported.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows[0].update(stage="act", talk_action="action")
    with exported.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    target = tmp_path / "t.jsonl"
    with caplog.at_level("WARNING"):
        assert import_labels(exported, TAXONOMY, target) == 1
    assert "2 row(s) with no label yet left out" in caplog.text
    assert [json.loads(x)["id"] for x in target.read_text().splitlines()] == [rows[0]["id"]]
    blank = tmp_path / "blank.csv"
    blank.write_text("id,text,stage,talk_action\n1,Can you send it?,,\n")
    with pytest.raises(LabelDataError, match="no row has a label yet"):
        import_labels(blank, TAXONOMY, tmp_path / "none.jsonl")
    half = tmp_path / "half.csv"
    half.write_text("id,text,stage,talk_action,group\n" + "".join(
        f"{i},Text {i},{'act' if i % 2 else ''},{'' if i % 2 else 'talk'},g{25 - i}\n" for i in range(1, 25)))
    with pytest.raises(LabelDataError) as caught:
        import_labels(half, TAXONOMY, tmp_path / "none.jsonl")
    lines = [int(m) for m in re.findall(rf"{re.escape(str(half))}:(\d+):", str(caught.value))]
    assert lines == sorted(lines) and len(lines) == 20 and "... and 4 more.\nFix these rows" in str(caught.value)


def test_cli_export_uncertain(scored: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export-uncertain", str(scored), "--to", str(tmp_path / "x.csv"), "--n", "2",
                                 "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader((tmp_path / "x.csv").open()))) == 2
    for bad in (["--n", "0"], ["--to", str(tmp_path / "x.xlsx")]):
        args = ["export-uncertain", str(scored), "--to", str(tmp_path / "y.csv"), "--models", str(MODELS), *bad]
        assert runner.invoke(app, args).exit_code == 2, bad
    assert not (tmp_path / "x.xlsx").exists() and not (tmp_path / "y.csv").exists()


def test_error_message_is_one_line_at_any_width(tmp_path: Path) -> None:
    """Regression: rich wrapped the error at 80 columns, splitting the message the user greps for."""
    name = "in.jsonl"
    # a folder name that puts "empty or missing" across column 80 of "  <path>:1: empty or missing 'text'"
    pad = 80 - 2 - len(f"{tmp_path}/") - len(f"/{name}:1: emp")
    folder = tmp_path / ("d" * max(pad, 1))
    folder.mkdir()
    src = folder / name
    src.write_text(json.dumps({"id": "1", "text": "", "stage": "other", "talk_action": "talk"}) + "\n")
    for columns in ("40", "80", "200"):
        result = runner.invoke(app, ["import-labels", str(src), "--into", str(tmp_path / "t.jsonl")],
                               env={"COLUMNS": columns})
        assert result.exit_code == 2
        assert "empty or missing 'text'" in result.output and f"{src}:1" in result.output


def test_export_shows_context_skips_what_was_labelled_and_keeps_a_filled_in_file(scored: Path, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Each exported segment comes with its neighbours (the guidelines label by context), which are
    not stored with the labels; a second round leaves out segments imported in the first; an
    existing --to is refused unless --force."""
    rows = select_uncertain(scored, 4)
    by_index = {r["segment_index"]: r for r in rows}
    assert by_index[3]["context_before"] == "rep: sentence number 1 / rep: sentence number 2"
    assert by_index[3]["context_after"] == "" and by_index[0]["context_before"] == ""
    assert by_index[1]["context_after"] == "rep: sentence number 2"
    first = write_for_labelling(rows[:2], tmp_path / "round1.csv", TAXONOMY)
    _label_every_row(first, "act", "action")
    labels = tmp_path / "labels"
    labels.mkdir()
    assert import_labels(first, TAXONOMY, labels / "imported.jsonl") == 2
    stored = [json.loads(line) for line in (labels / "imported.jsonl").read_text().splitlines()]
    assert not any("context_before" in r or "context_after" in r for r in stored)
    monkeypatch.setenv("CALLCYCLE_LABELS", str(labels))
    again = tmp_path / "round2.csv"
    result = runner.invoke(app, ["export-uncertain", str(scored), "--to", str(again), "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    second = {r["id"] for r in csv.DictReader(again.open())}
    assert second and not second & {r["id"] for r in stored}
    # fewer left than the 200 asked for: said, not left to guess
    assert f"only {len(second)} of the 200 asked for" in " ".join(result.output.split())
    again.write_text("labels a person filled in\n")
    result = runner.invoke(app, ["export-uncertain", str(scored), "--to", str(again), "--models", str(MODELS)])
    assert result.exit_code == 2 and "--force" in result.output
    assert again.read_text() == "labels a person filled in\n"
    assert runner.invoke(app, ["export-uncertain", str(scored), "--to", str(again), "--models", str(MODELS),
                               "--force"]).exit_code == 0
    result = runner.invoke(app, ["import-labels", str(first), "--into", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and ".jsonl" in result.output and not (tmp_path / "x.csv").exists()


def test_label_studio_tasks_annotators_disagree_on_are_refused_and_unlabelled_ones_left_out(
        scored: Path, tmp_path: Path) -> None:
    path = write_for_labelling(select_uncertain(scored, 3), tmp_path / "ls.json", TAXONOMY)
    assert "$context_before" in (tmp_path / "ls.label_config.xml").read_text()

    def said(stage: str, ta: str) -> dict:
        return {"result": [{"from_name": "stage", "value": {"choices": [stage]}},
                           {"from_name": "talk_action", "value": {"choices": [ta]}}]}

    tasks = json.loads(path.read_text())
    tasks[0]["annotations"] = [said("act", "action"), said("align", "talk")]
    tasks[1]["annotations"] = [said("adjust", "talk"), said("adjust", "talk")]  # two who agree
    path.write_text(json.dumps(tasks))
    with pytest.raises(LabelDataError,
                       match=r"annotators disagree on 1 task\(s\): task 1 of the list \(act/action vs align/talk\)\."):
        import_labels(path, TAXONOMY, tmp_path / "t.jsonl")
    tasks[0]["id"] = 100  # as Label Studio exports them: the id its search finds, not the place in the list
    path.write_text(json.dumps(tasks))
    with pytest.raises(LabelDataError, match=r"disagree on 1 task\(s\): task 100 \(act/action vs align/talk\)\."):
        import_labels(path, TAXONOMY, tmp_path / "t.jsonl")
    tasks[0]["annotations"] = [said("act", "action")]
    path.write_text(json.dumps(tasks))
    assert import_labels(path, TAXONOMY, tmp_path / "t.jsonl") == 2  # task 3 has no annotation yet
