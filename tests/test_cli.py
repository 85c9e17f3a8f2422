"""The typer CLI: help texts, classify, evaluate and summary on real files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import MODELS
from typer.testing import CliRunner

from cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", ["run", "classify", "train", "evaluate", "summary"])
def test_every_command_explains_itself(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and len(result.output) > 200


def test_help_fits_80_columns_without_cutting_or_eating_text() -> None:
    """At 80 columns every help line fits, nothing is cut off with an ellipsis, the defaults written
    in square brackets are shown (not read as markup) and flags show no value placeholder."""
    commands = [c.name or c.callback.__name__ for c in app.registered_commands if c.callback is not None]
    for args in [[], *([c, "--help"] for c in commands)]:
        result = runner.invoke(app, args or ["--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (args, result.output)
        lines = result.output.splitlines()
        assert max(len(line) for line in lines) <= 80, (args, max(lines, key=len))
        assert "…" not in result.output and "\\[" not in result.output, args
        assert "<bool>" not in result.output, args
    run_help = " ".join(runner.invoke(app, ["run", "--help"], env={"COLUMNS": "80"}).output.split())
    assert "[default: ./out]" in run_help and "s3://bucket/prefix" in run_help
    listing = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    listed = listing.split("Commands:", 1)[1]
    assert all(f"  {c} " in listed for c in commands) and "..." not in listed  # summaries are whole


def test_every_command_has_a_one_line_summary() -> None:
    """`callcycle --help` lists each command by the first paragraph of its docstring; rich keeps its
    line breaks, so a summary wrapped in the source prints as a broken line in the command list."""
    callbacks = [c.callback for c in app.registered_commands if c.callback is not None]
    assert len(callbacks) >= 10
    for callback in callbacks:
        doc = (callback.__doc__ or "").strip()
        assert doc, f"{callback.__name__} has no help text"
        summary = doc.split("\n\n", 1)[0]
        assert "\n" not in summary, f"{callback.__name__}: first paragraph spans lines: {summary!r}"


def test_classify_jsonl_keeps_columns_and_adds_predictions(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "I will send the contract by Friday.", "rep": "dana"}\n'
                   '{"text": "how was your weekend", "rep": "tom"}\n')
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["classify", str(src), "--out", str(out), "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rep"] for r in rows] == ["dana", "tom"]
    for row in rows:
        assert row["stage"] in {"align", "act", "adjust", "other"}
        assert row["talk_action"] in {"talk", "action"}
        assert sum(row[f"p_{s}"] for s in ("align", "act", "adjust", "other")) == pytest.approx(1, abs=1e-3)
        assert 0 <= row["action_prob"] <= 1
        if row["stage"] == "other":
            assert row["talk_action"] == "talk"


def test_classify_csv_to_csv(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,Can you book the demo for Tuesday at ten?\n2,\"Last quarter, we missed the target.\"\n")
    out = tmp_path / "out.csv"
    assert runner.invoke(app, ["classify", str(src), "-o", str(out), "--models", str(MODELS)]).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["1", "2"] and {"stage", "talk_action", "action_prob"} <= set(rows[0])


def test_classify_reads_rows_of_a_conversation_together(tmp_path: Path) -> None:
    """With --conversation the same reply is read by what came before it; without, alike."""
    src = tmp_path / "in.csv"
    src.write_text("call,who,text\n"
                   "a,rep,Can you send me the signed order form by Thursday?\na,cust,yeah that works\n"
                   "b,rep,The weather has been terrible all week.\nb,cust,yeah that works\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["classify", str(src), "-o", str(out), "--models", str(MODELS),
                                 "--conversation", "call", "--speaker", "who"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["stage"] for r in (rows[1], rows[3])] == ["act", "other"]
    assert runner.invoke(app, ["classify", str(src), "-o", str(out), "--models", str(MODELS)]).exit_code == 0
    alone = list(csv.DictReader(out.open()))
    assert alone[1]["p_act"] == alone[3]["p_act"]
    missing = runner.invoke(app, ["classify", str(src), "--models", str(MODELS), "--conversation", "meeting"])
    assert missing.exit_code == 2 and "'meeting'" in missing.output
    lonely = runner.invoke(app, ["classify", str(src), "--models", str(MODELS), "--speaker", "who"])
    assert lonely.exit_code != 0 and "--conversation" in lonely.output


def test_classify_reads_text_files_semicolon_and_tab_tables_and_a_named_text_column(tmp_path: Path) -> None:
    """A .txt file is one text per line; a .csv saved with semicolons (a spreadsheet where the comma
    is the decimal mark) or a .tsv is read by its separator; --text names the text column; the input's
    own 'stage' column is kept as 'stage_input' beside the prediction. Every way gives the same
    predictions for the same sentences."""
    sentences = ["Can you book the demo for Tuesday at ten?", "Last quarter; we missed the target, sadly."]
    lines = tmp_path / "lines.txt"
    lines.write_text("\ufeff" + sentences[0] + "\n\n  " + sentences[1] + "  \n", encoding="utf-8")
    semi = tmp_path / "semi.csv"
    semi.write_text("id;Utterance;stage\r\n1;" + sentences[0] + ";act\r\n2;\"" + sentences[1] + "\";align\r\n")
    tabs = tmp_path / "tabs.tsv"
    tabs.write_text("Utterance\tteam\n" + sentences[0] + "\teast\n" + sentences[1] + "\twest\n")

    def classify(path: Path, *extra: str) -> list[dict]:
        result = runner.invoke(app, ["classify", str(path), "--models", str(MODELS), *extra])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    from_lines = classify(lines)
    assert [r["text"] for r in from_lines] == sentences
    from_semi = classify(semi, "--text", "Utterance")
    assert [r["Utterance"] for r in from_semi] == sentences and [r["id"] for r in from_semi] == ["1", "2"]
    assert [r["stage_input"] for r in from_semi] == ["act", "align"]
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"text": t, "n": i} for i, t in enumerate(sentences)], indent=2))
    assert [r["n"] for r in classify(array)] == [0, 1]
    from_tabs = classify(tabs, "--text", "Utterance")
    assert [r["team"] for r in from_tabs] == ["east", "west"]
    for rows in (from_semi, from_tabs, classify(array)):
        assert [(r["stage"], r["p_act"], r["action_prob"]) for r in rows] == \
            [(r["stage"], r["p_act"], r["action_prob"]) for r in from_lines]
    clash = runner.invoke(app, ["classify", str(semi), "--text", "Utterance", "--models", str(MODELS)])
    assert "'stage' kept as 'stage_input'" in clash.stderr
    # an input that already has a 'stage_input' column keeps both: its 'stage' moves to 'stage_input_2'
    both = tmp_path / "both.tsv"
    both.write_text("text\tstage\tstage_input\tp_act\nCan you send it by Friday?\tact\tmine\tx\n")
    clash = runner.invoke(app, ["classify", str(both), "-o", "-", "--models", str(MODELS)])
    row = json.loads(clash.stdout.splitlines()[0])
    assert (row["stage_input"], row["stage_input_2"], row["p_act_input"]) == ("mine", "act", "x"), row
    assert "'stage', 'p_act' kept as 'stage_input_2', 'p_act_input'" in clash.stderr
    trailing = tmp_path / "trailing.csv"  # an exporter that ends every row with a separator: read as is
    trailing.write_text("id,text,\r\n1," + sentences[0] + ",\r\n")
    assert [r["text"] for r in classify(trailing)] == [sentences[0]]
    loose = tmp_path / "loose.csv"  # a text with an unquoted comma: an error, never a cut-off text
    loose.write_text("id,text\n1,Sure, I will send it Friday\n")
    cut = runner.invoke(app, ["classify", str(loose), "--models", str(MODELS)])
    assert cut.exit_code == 2 and "loose.csv:2: 3 cells where the header has 2" in cut.output
    assert classify(semi) == from_semi  # 'Utterance' is a usual name for the texts: read without --text
    odd = tmp_path / "odd.csv"
    odd.write_text(semi.read_text().replace("Utterance", "Words"))
    wrong = runner.invoke(app, ["classify", str(odd), "--models", str(MODELS)])
    assert wrong.exit_code == 2 and "no column 'text'" in wrong.output and "--text" in wrong.output
    assert "'Words'" in wrong.output


def test_classify_without_text_column_fails_clearly(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"body": "hello"}\n')
    result = runner.invoke(app, ["classify", str(src), "--models", str(MODELS)])
    assert result.exit_code == 2 and "text" in result.output
    # a usual name of other corpora is read, with a note, and gives what --text names
    (tmp_path / "usual.jsonl").write_text('{"Utterance": "Can you send the quote by Friday?"}\n')
    usual = runner.invoke(app, ["classify", str(tmp_path / "usual.jsonl"), "--models", str(MODELS)])
    named = runner.invoke(app, ["classify", str(tmp_path / "usual.jsonl"), "--text", "Utterance", "--models",
                                str(MODELS)])
    assert usual.exit_code == 0 and "read column 'Utterance' as the text" in usual.stderr
    assert usual.stdout == named.stdout and json.loads(usual.stdout)["talk_action"] == "action"


def test_evaluate_json_matches_labels(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (ROOT / "tests" / "fixtures" / "mini_labels.jsonl").read_text().splitlines()]
    src = tmp_path / "labelled.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["evaluate", str(src), "--json", "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    stage = metrics["tasks"]["stage"]
    assert stage["n"] == len(rows)
    assert sum(map(sum, stage["confusion"])) == len(rows)
    assert 0 <= stage["macro_f1"] <= 1 and set(stage["per_class"]) <= {"align", "act", "adjust", "other"}


def test_evaluate_rejects_unknown_labels(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"id": "1", "text": "hi", "stage": "greeting", "talk_action": "talk"}\n')
    result = runner.invoke(app, ["evaluate", str(src), "--models", str(MODELS)])
    assert result.exit_code == 2 and "greeting" in result.output


def test_evaluate_counts_rows_with_one_label_and_refuses_labels_against_the_taxonomy(tmp_path: Path) -> None:
    """A row may carry one label only, in a plain file as in a .gz (it counts for that task); gold
    'other' + 'action' breaks the taxonomy's rule and is refused, in a file and in a labelled call."""
    rows = [json.loads(line) for line in (ROOT / "tests" / "fixtures" / "mini_labels.jsonl").read_text().splitlines()]
    rows[0].pop("talk_action")
    src = tmp_path / "partial.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["evaluate", str(src), "--json", "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    tasks = json.loads(result.output)["tasks"]
    assert tasks["stage"]["n"] == len(rows) and tasks["talk_action"]["n"] == len(rows) - 1
    talk = [r for r in rows[1:] if r.get("talk_action") == "talk"]
    few = tmp_path / "few.jsonl"  # two conversations, every gold talk/action 'talk': both are said
    few.write_text("\n".join(json.dumps({**r, "group": f"g{i % 2}"}) for i, r in enumerate(talk[:6])) + "\n")
    said = " ".join(runner.invoke(app, ["evaluate", str(few), "--models", str(MODELS)]).output.split())
    assert "resample only 2 conversations" in said and "every gold talk_action label in these rows is 'talk'" in said
    rows[0].update(stage="other", talk_action="action")
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["evaluate", str(src), "--models", str(MODELS)])
    assert result.exit_code == 2 and "never action" in " ".join(result.output.split())
    calls = tmp_path / "calls"
    calls.mkdir()
    call = json.loads(next((ROOT / "labels" / "calls").glob("*.json")).read_text())
    call["turns"][1]["stage"] = "commit"
    (calls / "c.json").write_text(json.dumps(call))
    result = runner.invoke(app, ["evaluate-calls", str(calls), "--models", str(MODELS)])
    assert result.exit_code == 2 and "turn 2: unknown stage label 'commit'" in " ".join(result.output.split())
    for turn in call["turns"]:  # no work talk at all: no action share to compare, said so, no traceback
        turn.update(stage="other", talk_action="talk")
    (calls / "c.json").write_text(json.dumps(call))
    result = runner.invoke(app, ["evaluate-calls", str(calls), "--models", str(MODELS)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "MAE n/a" in result.output, result.output


def test_summary_without_output_explains(tmp_path: Path) -> None:
    result = runner.invoke(app, ["summary", str(tmp_path)])
    assert result.exit_code == 2 and "callcycle run" in result.output
    # an input folder with a calls/ of recordings (as ./data) is not an output: refused, nothing written
    (tmp_path / "calls").mkdir()
    (tmp_path / "calls" / "a.wav").write_bytes(b"RIFF")
    for command in ("summary", "report"):
        result = runner.invoke(app, [command, str(tmp_path)], env={"COLUMNS": "200"})
        assert result.exit_code == 2 and "is not a calls dataset: an input folder?" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls"]


def test_report_since_says_why_a_date_is_not_one(tmp_path: Path) -> None:
    """``--since`` names what is wrong with the date (no Click "Value error, ... formats" wording)."""
    for value, reason in (("2026-13-01", "month must be in 1..12"), ("2026-02-30", "day is out of range"),
                          ("yesterday", "not written YYYY-MM-DD")):
        result = runner.invoke(app, ["report", str(tmp_path), "--since", value], env={"COLUMNS": "200"})
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and f"'{value}' is not a date ({reason}" in text, text
        assert "Value error" not in text and "write it YYYY-MM-DD" in text


@pytest.mark.parametrize("option, value, words", [("--timeout", "-1", "[run] timeout_s must be at least 0"),
                                                   ("--max-duration", "-5", "[run] max_duration_s must be more than 0"),
                                                   ("--max-duration", "nan", "[run] max_duration_s must be more than 0"),
                                                   ("--retries", "-3", "[run] retries must be at least 0")])
def test_run_refuses_an_option_out_of_range_before_any_work(tmp_path: Path, option: str, value: str,
                                                            words: str) -> None:
    """A negative time limit once failed every input as an internal error (or as too long); now the value
    is refused at once with a usage error, nothing written and no input blamed."""
    result = runner.invoke(app, ["run", str(ROOT / "data" / "calls"), "--out", str(tmp_path / "out"), option, value],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output
    assert not (tmp_path / "out").exists()


def test_a_config_file_option_out_of_range_is_refused(tmp_path: Path) -> None:
    from pipeline.config import load_config
    from pipeline.errors import PipelineError

    (tmp_path / "c.toml").write_text("[asr]\nbeam_size = 0\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"\[asr\] beam_size must be at least 1, not 0"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text("[diarize]\nvad_threshold = 1.5\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="at least 0 and at most 1, not 1.5"):
        load_config(tmp_path / "c.toml")
    assert load_config(None, run__timeout_s=0.0).run.timeout_s == 0.0  # 0 = no limit stays valid


def test_evaluate_calls_finds_the_checkouts_labelled_calls_from_any_folder(tmp_path: Path, monkeypatch) -> None:
    """Its default was ./labels/calls, so it failed anywhere but the checkout's root."""
    from conftest import ROOT

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLCYCLE_LABELS", raising=False)
    result = runner.invoke(app, ["evaluate-calls", "--json", "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["calls"] == len(list((ROOT / "labels" / "calls").glob("*.json")))


def test_evaluate_refuses_the_output_of_classify(tmp_path: Path) -> None:
    """Chaining classify into evaluate scored the model against its own predictions (macro-F1 1.000);
    it is refused, naming the columns that hold the labels the input had."""
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"text": "I will send it Friday.", "stage": "act", "talk_action": "action"}\n'
                    '{"text": "We had issues last year.", "stage": "adjust", "talk_action": "talk"}\n')
    out = tmp_path / "classified.jsonl"
    assert runner.invoke(app, ["classify", str(mine), "-o", str(out), "--models", str(MODELS)]).exit_code == 0
    result = runner.invoke(app, ["evaluate", str(out), "--models", str(MODELS)], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "is the output of `callcycle classify`" in text, text
    assert "in stage_input and talk_action_input" in text
    assert runner.invoke(app, ["evaluate", str(mine), "--models", str(MODELS)]).exit_code == 0
    # the model's own training file, evaluated whole, is said to flatter it (the card names its files)
    from conftest import ROOT

    trained = tmp_path / "corpus_c1.jsonl"
    trained.write_text("".join((ROOT / "labels" / "data" / "corpus_c1.jsonl").read_text().splitlines(True)[:40]))
    result = runner.invoke(app, ["evaluate", str(trained), "--models", str(MODELS)], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "corpus_c1.jsonl is training data of" in text and "--holdout" in text
    result = runner.invoke(app, ["evaluate", str(mine), "--models", str(MODELS)], env={"COLUMNS": "200"})
    assert "training data" not in result.output


def test_evaluate_holdout_reproduces_the_model_card() -> None:
    from conftest import ROOT

    card = json.loads((MODELS / (MODELS / "CURRENT").read_text().strip() / "card.json").read_text())
    files = [str(p) for p in sorted((ROOT / "labels" / "data").glob("*.jsonl"))]
    result = CliRunner().invoke(app, ["evaluate", *files, "--holdout", "--json", "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)["tasks"]
    written = card["evaluation"]["written held-out (in context)"]
    for task, m in metrics.items():
        assert m["n"] == written[task]["n"]
        # the float32 encoder gives a text the same vector in any batch (within 6e-8) and has no
        # CPU-specific int8 kernels, so re-encoding reproduces the card; the int8 encoder before it
        # agreed only to about 0.01
        assert m["macro_f1"] == pytest.approx(card["tasks"][task]["holdout"]["macro_f1"], abs=0.003), task



def test_compare_benchmark_with_an_unknown_model_says_which_exist() -> None:
    current = (MODELS / "CURRENT").read_text().strip()
    result = runner.invoke(app, ["compare", current, "no-such-model", "--benchmark", "--models", str(MODELS)])
    assert result.exit_code != 0
    assert "no-such-model" in result.output and "Available" in result.output
    assert current in " ".join(result.output.split()), result.output  # the versions by name, however wrapped


def test_train_prints_each_step_with_the_seconds_since_it_started(tmp_path: Path) -> None:
    """`callcycle train` runs for minutes on the real corpus; a log (CI, nohup, no terminal) must show
    which step it is in, not stay silent until the end."""
    partial = tmp_path / "ext.jsonl"
    partial.write_text("".join(json.dumps({"id": f"p{i}", "text": t, "talk_action": ta, "group": "p", "source": "ext"})
                               + "\n" for i, (t, ta) in enumerate([("we could maybe look at that", "talk"),
                                                                   ("can you send the deck by friday", "action")])))
    result = runner.invoke(app, ["train", str(ROOT / "tests" / "fixtures" / "mini_labels.jsonl"),
                                 "--models", str(tmp_path / "models"), "--encoder", "none", "--folds", "2",
                                 "--external", str(partial), "--realdata", str(tmp_path / "absent")])
    assert result.exit_code == 0, result.output
    steps = [line for line in result.output.splitlines() if line.startswith("[")]
    assert any("text level fitted" in line for line in steps), result.output
    assert any("context level fitted" in line for line in steps), result.output
    seconds = [float(line[1:line.index(" s]")]) for line in steps]
    assert seconds == sorted(seconds)
    assert result.output.index("context level fitted") < result.output.index("artifact ")


def test_compare_benchmark_reports_each_source_on_stderr_and_keeps_json_on_stdout(tmp_path: Path, monkeypatch) -> None:
    """`compare --benchmark` takes minutes on the real corpora: each source is named on stderr as it is
    scored, and stdout stays one JSON document."""
    data = tmp_path / "labels" / "data"
    data.mkdir(parents=True)
    (data / "mini.jsonl").write_bytes((ROOT / "tests" / "fixtures" / "mini_labels.jsonl").read_bytes())
    kept_apart = tmp_path / "labels" / "held-back"  # written rows kept apart: a source of their own
    kept_apart.mkdir()
    meetings = (ROOT / "labels" / "held-back" / "corpus_c18-meetings.jsonl").read_text(encoding="utf-8")
    (kept_apart / "meetings.jsonl").write_text("".join(meetings.splitlines(keepends=True)[:48]), encoding="utf-8")
    (kept_apart / "copied.jsonl").write_bytes((data / "mini.jsonl").read_bytes())  # also trained on: not kept apart
    monkeypatch.setenv("CALLCYCLE_LABELS", str(data))
    version = (MODELS / "CURRENT").read_text(encoding="utf-8").strip()
    result = runner.invoke(app, ["compare", version, version, "--benchmark", "--json", "--models", str(MODELS),
                                 "--realdata", str(tmp_path / "absent")])
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert compared["sources"], "the written held-out split of the mini corpus is scored"
    kept = compared["sources"]["kept apart, never trained on: meetings.jsonl"]
    assert kept["talk_action"]["difference"] == 0 and kept["talk_action"]["n"] == 48  # every row; a model against itself
    assert not any("copied.jsonl" in source for source in compared["sources"])
    assert any("copied.jsonl" in reason and "not kept apart" in reason for reason in compared["skipped"])
    steps = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert "reading the labelled corpora" in steps[0]
    for source in compared["sources"]:
        assert any(source in line for line in steps), (source, steps)


def test_classify_input_problems_say_what_to_fix(tmp_path: Path) -> None:
    """Empty files, a missing text column, a BOM and formula-like column names, as users hand them over."""
    def classify(path: Path, *extra: str):
        return runner.invoke(app, ["classify", str(path), "--models", str(MODELS), *extra])

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = classify(empty)
    assert result.exit_code == 2 and "has no rows to classify" in result.output
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,text\n")
    assert classify(header_only).exit_code == 2
    no_text = tmp_path / "notext.csv"
    no_text.write_text("id,Text\n0,hello\n1,book it for Tuesday\n")
    result = classify(no_text)
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "no column 'text'" in message and "'Text'" in message
    assert "rows [0" not in message
    result = classify(tmp_path / "notext.csv", "--conversation", "callid")
    assert result.exit_code == 2 and "no column 'text'" in " ".join(result.output.split())
    # a UTF-8 byte-order mark and CRLF line ends, as Windows Notepad saves JSON Lines
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"text": "I will send the contract by Friday."}\r\n')
    out = tmp_path / "bom.out.jsonl"
    assert classify(bom, "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text())["talk_action"] in {"talk", "action"}
    # column names come from the user's data: a formula-like one is neutralised in the CSV and restored on reading
    keyed = tmp_path / "keyed.jsonl"
    keyed.write_text(json.dumps({"text": "=1+2", "=x": "+y"}) + "\n")
    out_csv = tmp_path / "keyed.csv"
    assert classify(keyed, "-o", str(out_csv)).exit_code == 0
    header = out_csv.read_text().splitlines()[0].split(",")
    assert header[:2] == ["text", "'=x"]
    again = tmp_path / "again.jsonl"
    assert classify(out_csv, "-o", str(again)).exit_code == 0
    row = json.loads(again.read_text())
    assert row["=x"] == "+y" and row["text"] == "=1+2"


def test_output_paths_and_folders_in_errors_are_the_users(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "Can you send the deck today?"}\n')
    folder = tmp_path / "a folder"
    folder.mkdir()
    result = runner.invoke(app, ["classify", str(src), "-o", str(folder), "--models", str(MODELS)])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and str(folder) in message and ".tmp" not in message
    assert list(folder.iterdir()) == []
    # a newline hidden in a path cannot start a line that passes for callcycle's own
    result = runner.invoke(app, ["classify", str(tmp_path / "new\nerror: forged.jsonl"), "--models", str(MODELS)])
    assert result.exit_code == 2 and "\nerror: forged" not in result.output, result.output
    assert result.output.startswith("error: ") and result.output.count("error:") == 2  # ours, and the forged text
    # sweep, summary and report name a wrong folder instead of succeeding or giving advice that fails
    result = runner.invoke(app, ["sweep", str(tmp_path / "nonexist")])
    assert result.exit_code == 2 and "not an output folder" in result.output
    for command in ("summary", "report"):
        result = runner.invoke(app, [command, str(src)])
        assert result.exit_code == 2 and "is a file, not an output folder" in " ".join(result.output.split())


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    from pipeline import PIPELINE_VERSION

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith(f"callcycle {version('callcycle')} (pipeline {PIPELINE_VERSION}:")


def test_train_with_external_none_reads_no_real_speech_corpus(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(ROOT / "tests" / "fixtures" / "mini_labels.jsonl"),
                                 "--models", str(tmp_path / "models"), "--encoder", "none", "--folds", "2",
                                 "--external", "none", "--realdata", str(tmp_path / "absent")])
    assert result.exit_code == 0, result.output
    card = json.loads(next((tmp_path / "models").glob("*/card.json")).read_text())
    assert set(card["data"]["corpora"]) == {"written"}, card["data"]["corpora"]


@pytest.mark.slow  # 21 s of training: make test stays under 15 minutes
def test_train_short_replies_in_context_is_recorded_in_the_card(tmp_path: Path) -> None:
    """The option reaches training (the card's options and its near-duplicate rule say so), and a card
    trained without it says nothing of short replies."""
    for flag in ("--short-replies-in-context", "--no-short-replies-in-context"):
        models = tmp_path / flag.strip("-")
        result = runner.invoke(app, ["train", str(ROOT / "tests" / "fixtures" / "mini_labels.jsonl"),
                                     "--models", str(models), "--encoder", "none", "--folds", "2",
                                     "--external", "none", "--realdata", str(tmp_path / "absent"), flag])
        assert result.exit_code == 0, result.output
        card = json.loads(next(models.glob("*/card.json")).read_text())
        on = flag == "--short-replies-in-context"
        assert card["training"]["dedupe_short_in_context"] is on
        assert ("compared together with the turn before it" in card["data"]["near_duplicate_rule"]) is on


def test_run_names_a_deferred_file_and_why(tmp_path: Path, prefect_harness) -> None:
    """A WAV still being written is left for the next run: the run's output names it and says why, so a
    nightly log shows which file waits (not only a count)."""
    import wave

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"turns": [{"speaker": "A", "text": "Can you send it by Friday?"}]}))
    with wave.open(str(folder / "growing.wav"), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(b"\0\0" * 16000)
    data = (folder / "growing.wav").read_bytes()
    (folder / "growing.wav").write_bytes(data[: len(data) // 2])  # the header promises twice what is there
    result = runner.invoke(app, ["run", str(folder), "--out", str(out), "--models", str(MODELS), "--no-report"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "1 deferred" in result.output
    assert "deferred: " in result.output and "growing.wav" in result.output and "header announces" in result.output


@pytest.mark.slow  # ~35 s: keeps `make test` under 15 minutes on 2 cores; CI runs it with the slow tests
def test_evaluate_reads_a_conversation_column_by_any_name(tmp_path: Path) -> None:
    """A file whose conversations are in 'deal' (not 'group') gives the same figures with
    --conversation deal as the file with 'group'; without it a note says every row was read alone;
    usual names of other corpora ('conversation_id', 'utterance') are read without being named, with a
    note; a file with no text column says which columns it has; an empty file is exit 2."""
    rows = [json.loads(line) for line in (ROOT / "labels" / "held-back" / "corpus_c15-demos.jsonl")
            .read_text().splitlines()[:40]]
    grouped, renamed, usual = tmp_path / "grouped.jsonl", tmp_path / "renamed.jsonl", tmp_path / "usual.jsonl"
    grouped.write_text("".join(json.dumps(r) + "\n" for r in rows))
    renamed.write_text("".join(json.dumps({**{k: v for k, v in r.items() if k != "group"}, "deal": r["group"]})
                               + "\n" for r in rows))
    usual.write_text("".join(json.dumps({"conversation_id": r["group"], "Utterance": r["text"], "stage": r["stage"],
                                         "talk_action": r["talk_action"], "speaker": r.get("speaker_role")})
                             + "\n" for r in rows))

    def metrics(*args: str) -> tuple[dict, str]:
        result = runner.invoke(app, ["evaluate", *args, "--json", "--models", str(MODELS)])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout), result.stderr

    reference, _ = metrics(str(grouped))
    named, _ = metrics(str(renamed), "--conversation", "deal")
    assert named == reference and len({r["group"] for r in rows}) >= 2
    assert reference["tasks"]["stage"]["interval_groups"] == len({r["group"] for r in rows})
    alone = runner.invoke(app, ["evaluate", str(renamed), "--models", str(MODELS)])
    assert alone.exit_code == 0 and "every row is its own conversation" in alone.stderr
    found, _ = metrics(str(usual))
    assert found["columns_read"] == {"group": "conversation_id", "text": "Utterance"}
    assert found["tasks"] == metrics(str(usual), "--conversation", "conversation_id", "--text", "Utterance")[0]["tasks"]
    assert found["tasks"]["stage"]["interval_groups"] == len({r["group"] for r in rows})
    noted = runner.invoke(app, ["evaluate", str(usual), "--models", str(MODELS)])
    assert "read column 'conversation_id' as each row's conversation" in noted.stderr
    (tmp_path / "words.jsonl").write_text(json.dumps({"words": "Send it by Friday.", "talk_action": "action"}) + "\n")
    no_text = runner.invoke(app, ["evaluate", str(tmp_path / "words.jsonl"), "--models", str(MODELS)])
    assert no_text.exit_code == 2 and "no 'text' column (found: 'words', 'talk_action')" in no_text.output
    missing = runner.invoke(app, ["evaluate", str(renamed), "--conversation", "meeting", "--models", str(MODELS)])
    assert missing.exit_code == 2 and "no column 'meeting'" in missing.output
    (tmp_path / "empty.jsonl").write_text("")
    empty = runner.invoke(app, ["evaluate", str(tmp_path / "empty.jsonl"), "--models", str(MODELS)])
    assert empty.exit_code == 2 and "no rows to evaluate" in empty.output


def test_run_says_what_it_passed_over(tmp_path: Path, prefect_harness) -> None:
    """Nothing is passed over silently: a link to a file that is also an input is a skipped outcome
    naming that file, files of a type callcycle does not read and an input folder with nothing to
    score are named in notes; none of them is a failure."""
    folder, empty, out = tmp_path / "in", tmp_path / "empty", tmp_path / "out"
    folder.mkdir()
    empty.mkdir()
    (folder / "a.json").write_text(json.dumps({"turns": [{"speaker": "A", "text": "Can you send it by Friday?"}]}))
    (folder / "link.json").symlink_to(folder / "a.json")
    (folder / "x.aiff").write_bytes(b"FORM")
    result = runner.invoke(app, ["run", str(folder), str(empty), "--out", str(out), "--models", str(MODELS),
                                 "--no-report"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "1 scored, 1 skipped" in text and "0 failed" in text
    assert "1 file(s) of a type callcycle does not read were left alone: x.aiff" in text
    assert "no audio or transcript files in" in text and str(empty.name) in text
    assert "Scored or updated in this run (1)" in text
    again = runner.invoke(app, ["run", str(folder), "--out", str(out), "--models", str(MODELS), "--no-report"],
                          env={"COLUMNS": "80"})
    text = " ".join(again.output.split())  # nothing new: no table, only where to look and the headline
    assert again.exit_code == 0 and "0 scored, 2 skipped" in text, again.output
    assert "No call was scored or updated in this run" in text and "lists the 1 stored call." in text
    from pipeline.report.terminal import load_call_rows

    assert [r["source_id"] for r in load_call_rows(out)] == ["a.json"]


def test_compare_on_your_own_rows_with_a_paired_interval(tmp_path: Path) -> None:
    """compare --all-rows uses every row of --data (data neither model saw), accepts a file that labels
    only one task, gives the paired interval of the difference, and marks labels that occur nowhere."""
    version = (MODELS / "CURRENT").read_text().strip()
    rows = [json.loads(line) for line in (ROOT / "labels" / "held-back" / "corpus_c15-demos.jsonl")
            .read_text().splitlines()[:40]]
    stage_only = tmp_path / "stage-only.jsonl"
    stage_only.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "talk_action"}) + "\n"
                                  for r in rows))
    result = runner.invoke(app, ["compare", version, version, "--data", str(stage_only), "--all-rows", "--json",
                                 "--models", str(MODELS)])
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert compared["holdout_rows"] == 40 and compared["all_rows"] is True
    assert set(compared["a"]["tasks"]) == {"stage"}
    paired = compared["paired"]["stage"]
    assert paired["difference"] == 0 and paired["interval"] == [0.0, 0.0]
    table = runner.invoke(app, ["compare", version, version, "--data", str(stage_only), "--all-rows",
                                "--models", str(MODELS)], env={"COLUMNS": "120"})
    assert table.exit_code == 0 and "All rows comparison (40 rows)" in table.output
    assert "[+0.000 to +0.000]" in table.output
    # 40 rows of two calls: the paired interval says little, and compare says so as evaluate does
    assert "the intervals resample only 2 conversations" in " ".join(table.stderr.split())


def test_a_reader_that_stops_early_does_not_stop_the_command(tmp_path: Path) -> None:
    """``callcycle run ... | head`` once ended the run with status 1, no word and the report unwritten
    (Click's handling of a broken pipe); now the command goes on to its normal end and says so once."""
    import subprocess
    import sys

    src = tmp_path / "in.txt"
    src.write_text("I will send the revised quote by Friday afternoon.\n" * 2000, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "classify", str(src), "-o", "-", "--models", str(MODELS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(200)  # more than 64 KiB follow: the command is still writing when the reader goes
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "standard output was closed early" in err and "Traceback" not in err


def test_evaluate_calls_given_a_file_or_an_empty_folder_says_what_a_labelled_call_is(tmp_path: Path) -> None:
    """A file or a folder with no JSON gave "No labelled calls (*.json) in ..." and no word of what one is."""
    call = tmp_path / "call.json"
    call.write_text(json.dumps({"turns": [{"speaker": "rep", "text": "Hello."}]}))
    (tmp_path / "empty").mkdir()
    for target, said in ((call, "is not a folder"), (tmp_path / "nothing", "is not a folder"),
                         (tmp_path / "empty", "No labelled calls (*.json) in")):
        result = runner.invoke(app, ["evaluate-calls", str(target), "--models", str(MODELS)], env={"COLUMNS": "300"})
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and said in text and "every turn carries its stage and talk_action" in text, text


def test_a_report_the_run_cannot_write_keeps_the_scores_and_says_so(tmp_path: Path) -> None:
    """An operator's find (stop 55): when the report could not be written at the end of a run (a full disk),
    the run said only "No space left on device", with no path or hint. Now every call is stored and listed,
    the error names the report's path, and the exit status is 2 (an output problem)."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"turns": [{"speaker": "A", "text": "Can you send it by Friday?"},
                                                         {"speaker": "B", "text": "Yes, I will send it Friday."}]}))
    (out / "report.html").mkdir(parents=True)  # the report's place is taken: it cannot be written
    result = runner.invoke(app, ["run", str(folder), "--out", str(out), "--models", str(MODELS)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "1 scored, 0 skipped" in said and "report.html is a folder" in said
    assert len(list((out / "calls").glob("part-*.parquet"))) == 1


def test_compare_benchmark_reads_the_labels_evaluate_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With $CALLCYCLE_LABELS set, `evaluate` read that folder while `compare --benchmark` read a `data` folder
    beside it (a reviewer's find, stop 57): two models were compared on other rows than they were evaluated on."""
    import pipeline.classify.evaluate as evaluate

    mine = tmp_path / "my-labels"
    mine.mkdir()
    seen: dict[str, tuple[Path, Path | None, Path | None]] = {}

    def record(name: str):
        def fake(*args, **kwargs):
            labels, external = (args[1], args[2]) if name == "evaluate" else (args[2], args[3])
            seen[name] = (labels, external, kwargs.get("held_back_dir"))
            raise SystemExit(0)
        return fake

    monkeypatch.setattr(evaluate, "run_benchmark", record("evaluate"))
    monkeypatch.setattr(evaluate, "compare_benchmark", record("compare"))
    env = {"CALLCYCLE_LABELS": str(mine)}
    version = (MODELS / "CURRENT").read_text().strip()
    runner = CliRunner()
    runner.invoke(app, ["evaluate", "--models", str(MODELS)], env=env)
    runner.invoke(app, ["compare", version, version, "--benchmark", "--models", str(MODELS)], env=env)
    assert seen["evaluate"] == seen["compare"] == (mine, tmp_path / "external", tmp_path / "held-back"), seen
