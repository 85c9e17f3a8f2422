"""Commands about the classifiers: ``classify``, ``train``, ``evaluate``, ``compare``, ``evaluate-calls``."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cli.common import app, command, console, fail, quiet_prefect, step_reporter
from pipeline.config import DEFAULT_ENCODER, DEFAULT_TEXT_COLUMN, DEFAULT_TRAIN_SEED
from pipeline.paths import DEFAULT_REALDATA

MODELS_HELP = ("Models folder (uses its CURRENT pointer) or an artifact directory "
               "[default: $CALLCYCLE_MODELS, else the classifiers shipped with callcycle].")
LABELS_HELP = "Default: every *.jsonl in labels/data of the checkout ($CALLCYCLE_LABELS overrides)."


def _labelled_files(given: list[Path] | None) -> list[Path]:
    from pipeline.paths import labels_data_dir

    folder = labels_data_dir()
    files = given or sorted(folder.glob("*.jsonl"))
    if not files:
        fail(f"No labelled data found in {folder}/. Pass labelled JSONL/CSV files.")
    return files


@app.command(short_help="Classify texts from a JSONL, CSV, TSV, JSON or text file.")
@command
def classify(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSONL, CSV, TSV or a .json array of objects with a 'text' column (or the one --text names, or else one usual name such as 'utterance' or 'sentence'; other columns are kept), or a .txt file with one text per line. A CSV may be separated by commas, semicolons or tabs.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file, in the format its name says: .jsonl JSON Lines, .json one JSON array, .tsv tab-separated, anything else CSV (CSV and TSV spreadsheet-safe). '-' or no --out: JSON Lines on stdout.")] = None,
    models: Annotated[Optional[str], typer.Option(help=MODELS_HELP, show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version.")] = None,
    conversation: Annotated[Optional[str], typer.Option(help="Column naming each row's conversation: consecutive rows with the same value are read together, in file order, each with its neighbours (\"yes, Tuesday works\" after a request is action). Default: every row is read on its own.", show_default=False)] = None,
    speaker: Annotated[Optional[str], typer.Option(help="With --conversation: column naming who said each row.", show_default=False)] = None,
    text: Annotated[str, typer.Option("--text", help="Column holding the texts.")] = DEFAULT_TEXT_COLUMN,
) -> None:
    """Classify texts: adds stage, stage probabilities (p_<label>), talk_action and action_prob.

    Rows are read one at a time unless --conversation names the column that groups them into calls.
    An input column with one of those names (your own 'stage' labels, say) is kept as <name>_input.

    In context the classifiers read real speech better (docs/REALDATA.md)."""
    from pipeline.apply import clash_names, classify_rows, output_columns, read_table, usual_columns
    from pipeline.classify.artifacts import load_artifact
    from pipeline.paths import models_dir
    from pipeline.tables import rows_to_jsonl, write_rows

    artifact = load_artifact(models_dir(models), model_version)
    if speaker is not None and conversation is None:
        fail("--speaker needs --conversation: name the column that groups the rows into conversations.")
    if file.suffix.lower() == ".txt" and text != DEFAULT_TEXT_COLUMN:
        fail("--text names a column; a .txt file has no columns, only one text per line.")
    to_stdout = out is None or str(out) == "-"
    if not to_stdout and out is not None:
        from pipeline.atomic import check_replaceable

        check_replaceable(out)  # a link, device or folder is not replaced by a plain file
    if not to_stdout and out is not None and out.resolve() == file.resolve():
        fail(f"--out {out} is the input file; classifying would overwrite it. "
             "Write the results to another file (e.g. add '-classified' to the name).")
    table = read_table(file)
    clashes = clash_names(list(dict.fromkeys(k for row in table for k in row)), output_columns(artifact))
    usual = usual_columns(table, {"text": text, "group": "group", "speaker": "speaker"}).get("text")
    if usual is not None:  # no 'text' column, and one usual name (utterance, sentence...) holds the texts
        from pipeline.display import printable

        typer.echo(f"note: read column {printable(repr(usual))} as the text (no 'text' column); --text names another.",
                   err=True)
        text = usual
    rows = classify_rows(artifact, table, str(file), conversation, speaker, text)
    if clashes:
        typer.echo("note: the input's own " + ", ".join(f"{c!r}" for c in clashes) + " kept as "
                   + ", ".join(f"{name!r}" for name in clashes.values()) + ".", err=True)
    if to_stdout or out is None:
        rows_to_jsonl(rows, sys.stdout)
        return
    write_rows(rows, out)
    from pipeline.display import printable

    noun = "row" if len(rows) == 1 else "rows"
    typer.echo(f"{len(rows):,} {noun} classified with {artifact.version} → {printable(out)}", err=True)


@app.command(short_help="Train the classifiers; write a versioned model.")
@command
def train(
    data: Annotated[Optional[list[Path]], typer.Argument(metavar="DATA", help="Labelled JSONL/CSV files. " + LABELS_HELP, show_default=False)] = None,
    taxonomy: Annotated[Optional[Path], typer.Option(help="Taxonomy TOML naming tasks and labels [default: $CALLCYCLE_TAXONOMY, else the shipped labels/taxonomy.toml].", show_default=False)] = None,
    models: Annotated[Optional[Path], typer.Option(help="Folder to write the versioned artifact into [default: as for run].", show_default=False)] = None,
    version: Annotated[Optional[str], typer.Option(help="Artifact version name (default: taxonomy-timestamp-datahash).")] = None,
    external: Annotated[Optional[list[Path]], typer.Option(metavar="FILE", help="Partially labelled real-speech corpora (JSONL or .jsonl.gz); repeat for several, or 'none' for none. Default: every labels/external/*.jsonl.gz of the project (about 110,000 AMI acts), also when DATA files are given.", show_default=False)] = None,
    realdata: Annotated[Optional[Path], typer.Option(help="Shared real-text folder evaluated in the model card, never trained on. Default: ../shared/realdata/text when it exists.", show_default=False)] = None,
    encoder: Annotated[str, typer.Option(help="Sentence encoder folder under <models>/encoders/, or 'none' for TF-IDF and cues only.")] = DEFAULT_ENCODER,
    context: Annotated[Optional[bool], typer.Option("--context/--no-context", help="Read each segment with its neighbours (the context level) [default: the training default].", show_default=False)] = None,
    folds: Annotated[Optional[int], typer.Option(min=2, help="Grouped folds for the out-of-fold probabilities the context level learns from [default: the training default].", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the context level's trees (the shipped model's by default).")] = DEFAULT_TRAIN_SEED,
    speech_copies: Annotated[Optional[int], typer.Option(min=0, help="Transcript-like noised copies of each written training conversation (dropped and repeated words, fillers, moved punctuation, lower case), trained next to the originals (text level only); 0 = none. Default: the training default (one); docs/REALDATA.md has what 0, 1 and 2 measured.", show_default=False)] = None,
    context_bag: Annotated[Optional[int], typer.Option(min=1, help="Tree ensembles per task at the context level, seeded --seed, --seed+1, ...; their probabilities are averaged. Default: the training default (one); docs/REALDATA.md has what a bag of five measured.", show_default=False)] = None,
    alone_corpora: Annotated[Optional[str], typer.Option(help="Comma-separated corpora (written, ami) whose training rows, shown with no neighbours, train a second context level for single sentences; 'none' for one context level for everything. Default: the training default.", show_default=False)] = None,
    short_replies_in_context: Annotated[Optional[bool], typer.Option("--short-replies-in-context/--no-short-replies-in-context", help="De-duplicate a reply of four words or fewer (\"sure\", \"that works\") only against one that follows a near-identical turn, so the same words answering different turns stay as separate examples. Default: the training default (off: every repeat of the words is dropped); docs/REALDATA.md has what it measured.", show_default=False)] = None,
    promote_model: Annotated[bool, typer.Option("--promote", help="Point models/CURRENT at the new model if held-out macro-F1 does not drop.")] = False,
    force: Annotated[bool, typer.Option(help="With --promote: promote even if held-out macro-F1 drops.")] = False,
) -> None:
    """Train the classifiers from labelled data and write a versioned artifact with its model card.

    Learns from the written corpus and the real-speech corpora.

    The card gives results per source: written held-out, real-speech held-out conversations, shared text."""
    quiet_prefect()
    from flows.train_flow import train_classifiers
    from pipeline.classify.train import TrainConfig
    from pipeline.paths import models_dir, taxonomy_path

    con = console()
    files = _labelled_files(data)
    if external is not None and [str(p) for p in external] == ["none"]:
        external = []
    cfg = TrainConfig(seed=seed, encoder=None if encoder == "none" else encoder)
    if folds is not None:
        cfg = dataclasses.replace(cfg, folds=folds)
    if context is not None:
        cfg = dataclasses.replace(cfg, context=context)
    if speech_copies is not None:
        cfg = dataclasses.replace(cfg, speech_copies=speech_copies)
    if context_bag is not None:
        cfg = dataclasses.replace(cfg, context_bag=context_bag)
    if short_replies_in_context is not None:
        cfg = dataclasses.replace(cfg, dedupe_short_in_context=short_replies_in_context)
    if alone_corpora is not None:
        cfg = dataclasses.replace(cfg, alone_corpora=tuple(c.strip() for c in alone_corpora.split(",")
                                                           if c.strip() and c.strip() != "none"))
    with con.status("training (text level, out-of-fold probabilities, context level; several minutes)...") as status:
        outcome = train_classifiers(str(taxonomy_path(taxonomy)), [str(f) for f in files], str(models_dir(models)),
                                    cfg, version, promote_model, force,
                                    None if external is None else [str(f) for f in external],
                                    None if realdata is None else str(realdata), step_reporter(con, status, "training"))
    card = outcome.result.card
    con.print(f"[bold]artifact[/] {outcome.path}  (data hash {card['data']['hash'][:12]}, "
              f"{card['data']['rows_train']} train / {card['data']['rows_holdout']} held-out rows, "
              f"{card['training']['seconds']} s)")
    for source, metrics in card.get("evaluation", {}).items():
        con.print(f"  {source}: " + ", ".join(f"{t} {m['macro_f1']:.3f}" for t, m in metrics.items()),
                  markup=False)
    if outcome.decision is not None:
        d = outcome.decision
        colour = "green" if d.promoted else "yellow"
        con.print(f"[{colour}]{'promoted' if d.promoted else 'not promoted'}[/]: {d.reason}")
        if not d.promoted:
            raise typer.Exit(1)


@app.command(short_help="Score a model on held-out and real-speech data.")
@command
def evaluate(
    files: Annotated[Optional[list[Path]], typer.Argument(metavar="FILES", help="Labelled JSONL/CSV files with text and task columns (stage, talk_action). Without files: the whole benchmark per source — written held-out (in context and one sentence at a time), real-speech held-out conversations, shared real text, the written files kept apart in labels/held-back (never trained on), labelled calls, leave-one-writer-out.", show_default=False)] = None,
    models: Annotated[Optional[str], typer.Option(help=MODELS_HELP, show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version (default: CURRENT).")] = None,
    holdout: Annotated[bool, typer.Option("--holdout", help="Keep only the fixed held-out split, prepared as training does: `callcycle evaluate labels/data/*.jsonl --holdout` reproduces the model card's written held-out figures.")] = False,
    standalone: Annotated[bool, typer.Option("--standalone", help="Classify each row on its own instead of reading the rows of one group as a conversation.")] = False,
    conversation: Annotated[Optional[str], typer.Option(help="Column naming each row's conversation [default: group]: its rows are read together, in file order, and intervals resample whole conversations.", show_default=False)] = None,
    speaker: Annotated[Optional[str], typer.Option(help="Column naming who said each row [default: speaker].", show_default=False)] = None,
    text: Annotated[str, typer.Option("--text", help="Column holding the texts.")] = DEFAULT_TEXT_COLUMN,
    realdata: Annotated[Path, typer.Option(help="Shared real-text folder for the benchmark (skipped with a reason when absent).")] = DEFAULT_REALDATA,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Per-class precision, recall and F1, macro-F1 and confusion matrices — or, without files, the benchmark per source."""
    from rich.table import Table

    from pipeline.apply import evaluate_files, training_files
    from pipeline.paths import models_dir

    con = console()
    if not files:
        from pipeline.classify.artifacts import load_artifact
        from pipeline.classify.evaluate import run_benchmark
        from pipeline.paths import external_dir, held_back_dir, labelled_calls_dir, labels_data_dir
        from pipeline.speech.turns import build_sentencizer

        artifact = load_artifact(models_dir(models), model_version)
        err = console(stderr=True)
        with err.status("evaluating every source (a few minutes)...") as status:
            result = run_benchmark(artifact, labels_data_dir(), external_dir(), realdata,
                                   labelled_calls_dir(), build_sentencizer(),
                                   progress=step_reporter(err, status, "evaluating"),
                                   held_back_dir=held_back_dir())
        if as_json:
            typer.echo(json.dumps(result, indent=2, default=str))
            return
        _print_benchmark(con, artifact, result)
        return
    from pipeline.classify.train import format_interval

    artifact, n_rows, metrics = evaluate_files(models_dir(models), model_version, files, holdout,
                                               in_context=not standalone, conversation=conversation,
                                               speaker=speaker, text=text)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    from pipeline.display import printable

    options = {"group": ("conversation", "--conversation"), "speaker": ("speaker", "--speaker"), "text": ("text", "--text")}
    for field, column in metrics.get("columns_read", {}).items():
        what, option = options[field]
        console(stderr=True).print(f"note: read column {printable(repr(column))} as each row's {what} (no {field!r} "
                                   f"column); {option} names another.", soft_wrap=True, markup=False)
    groups = {m.get("interval_groups") for m in metrics["tasks"].values()}
    if not standalone and n_rows > 1 and groups == {n_rows}:
        console(stderr=True).print("note: every row is its own conversation (no 'group' column), so each was "
                                   "read alone; name your conversation column with --conversation.", soft_wrap=True)
    if groups != {n_rows}:
        _note_few_conversations(groups)
    trained = [] if holdout else training_files(artifact, files)
    learned = metrics.get("learned_rows")
    if learned and not trained:
        console(stderr=True).print(f"note: {learned} of {n_rows} rows have texts (of 4 words or more) {artifact.version} was trained on "
                                   "(found by text in its training files, under whatever file or conversation "
                                   "name): these figures flatter the model. Evaluate rows it never saw.",
                                   soft_wrap=True)
    if trained:
        console(stderr=True).print(f"note: {', '.join(f.name for f in trained[:3])}{' ...' if len(trained) > 3 else ''} "
                                   f"{'is' if len(trained) == 1 else 'are'} training data of {artifact.version}: "
                                   "most of its rows were learned, so these figures flatter the model. Add "
                                   "--holdout for the held-out split (the card's figures).", soft_wrap=True)
    for name, m in metrics["tasks"].items():
        present = [label for label, c in m["per_class"].items() if c["support"]]
        if len(present) == 1:
            console(stderr=True).print(f"note: every gold {name} label in these rows is {present[0]!r}; macro-F1 "
                                       "averages over the classes the model predicted too, so one wrong guess "
                                       "halves it. Read the accuracy and the confusion table.", soft_wrap=True)
    where = ", ".join(str(f) for f in files) if len(files) < 4 else f"{len(files)} files"
    con.print(f"[bold]{artifact.version}[/] on {where} ({n_rows} rows)")
    for name, m in metrics["tasks"].items():
        interval = m.get("macro_f1_interval")
        spread = f"{format_interval(interval)} (95% interval over conversations)" if interval else ""
        table = Table(title=f"{name}: macro-F1 {m['macro_f1']:.3f}{spread}, accuracy {m['accuracy']:.3f}")
        for col in ("label", "precision", "recall", "F1", "support"):
            table.add_column(col, justify="right" if col != "label" else "left")
        for label, c in m["per_class"].items():
            table.add_row(label, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
        con.print(table)
        conf = Table(title=f"{name} confusion (rows true, columns predicted)")
        conf.add_column("")
        for label in m["labels"]:
            conf.add_column(label, justify="right")
        for label, row in zip(m["labels"], m["confusion"]):
            conf.add_row(label, *(str(v) for v in row))
        con.print(conf)


def _note_few_conversations(groups: set[Any]) -> None:
    """Say on stderr when the resampled intervals rest on too few conversations to say much."""
    from pipeline.classify.train import MIN_INTERVAL_GROUPS

    few = sorted(g for g in groups if isinstance(g, int) and 1 < g < MIN_INTERVAL_GROUPS)
    if few:
        console(stderr=True).print(f"note: the intervals resample only {few[0]} conversations; with fewer than "
                                   f"{MIN_INTERVAL_GROUPS} they say little. Label more conversations for a firm "
                                   "figure.", soft_wrap=True)


def _print_comparison(con: Any, compared: dict[str, Any]) -> None:
    """One row per source and task: both macro-F1s, the difference and its paired interval."""
    from rich.table import Table

    a, b = compared["model_version"], compared["other_version"]
    # versions share their long prefix, so the columns are "a" and "b" and the title says which is which
    table = Table(title=f"b = {b} against a = {a}: macro-F1 per source, paired 95% interval of the difference")
    for col in ("source", "task", "rows", "a", "b", "difference (b - a)"):
        table.add_column(col, justify="left" if col in {"source", "task"} else "right")
    for source, tasks in compared["sources"].items():
        for task, d in tasks.items():
            interval = d.get("interval")
            spread = f" [{interval[0]:+.3f} to {interval[1]:+.3f}]" if interval else ""
            verdict = ("" if not interval else " better" if interval[0] > 0 else " worse" if interval[1] < 0
                       else "")
            table.add_row(source, task, str(d["n"]), f"{d['a']:.3f}", f"{d['b']:.3f}",
                          f"{d['difference']:+.3f}{spread}{verdict}")
    con.print(table)
    con.print("'better' / 'worse': the interval excludes 0 — that source tells the two apart; "
              "otherwise the difference is within what resampling its conversations gives.", markup=False)
    for reason in compared["skipped"]:
        con.print("skipped: " + reason, markup=False)


def _print_benchmark(con: Any, artifact: Any, result: dict[str, Any]) -> None:
    """The benchmark as one table per source, then the call level, LOWO and what was skipped."""
    from rich.table import Table

    from pipeline.classify.train import CROSS_WRITER_VIEWS, format_interval, format_macro_f1

    tasks = [t.name for t in artifact.taxonomy.tasks]
    table = Table(title=f"{artifact.version}: macro-F1 per source [95% interval, resampling conversations] (rows)")
    table.add_column("source")
    for t in tasks:
        table.add_column(t, justify="right")
    for source, metrics in (result["sources"] | result.get("held_back", {})).items():
        table.add_row(source, *(format_macro_f1(metrics[t]) if t in metrics else "-" for t in tasks))
    lowo = result.get("leave_one_writer_out")
    if lowo:
        for view in CROSS_WRITER_VIEWS:
            cells = []
            for t in tasks:
                s = lowo["summary"].get(f"{t} ({view})")
                scores = {w: r[view][t] for w, r in lowo.get("writers", {}).items() if t in r.get(view, {})}
                who = f" ({min(scores, key=lambda w: scores[w])})" if scores else ""
                cells.append(f"{s['mean']:.3f} / worst {s['worst']:.3f}{who}" if s else "-")
            scope = "text level only" if "text level" in str(lowo.get("scope", "")) else view.replace("_", " ")
            done = (f", {len(lowo.get('writers', {}))} of "
                    f"{len(lowo.get('writers', {})) + len(lowo.get('writers_missing', []))} writers so far"
                    if lowo.get("partial") else "")
            table.add_row(f"leave-one-writer-out, {scope} (mean / worst writer{done})", *cells)
            if scope == "text level only":
                break
    calls = result.get("calls")
    if calls and calls.get("turn_level_macro_f1"):
        for view, metrics in calls["turn_level_macro_f1"].items():
            table.add_row(f"labelled calls, turn level, {view.replace('_', ' ')}",
                          *(f"{metrics[t]:.3f}" if t in metrics else "-" for t in tasks))
    con.print(table)
    if calls:
        by_method = ", ".join(f"{m} {v:.3f}" for m, v in calls["action_share_mae_by_method"].items() if v is not None)
        con.print(f"labelled calls ({calls['calls']}): action-share mean absolute error "
                  f"{calls['action_share_mae']:.3f}{format_interval(calls.get('action_share_mae_interval'))} "
                  f"({calls['action_share_method']}; by method: {by_method}); "
                  f"90% interval covers the gold share in {calls['interval_coverage']:.0%} of calls "
                  f"(mean width {calls['interval_mean_width']:.3f}); stage-mix error {calls['stage_mix_mae']:.3f}",
                  markup=False)
    for folder, kept in result.get("held_back_calls", {}).items():
        turns = ", ".join(f"{view.replace('_', ' ')} " + " / ".join(f"{t} {m[t]:.3f}" for t in tasks if t in m)
                          for view, m in kept.get("turn_level_macro_f1", {}).items())
        mae = kept.get("action_share_mae")
        con.print(f"labelled calls kept apart, never trained on ({folder}, {kept['calls']}): action-share mean "
                  f"absolute error {'-' if mae is None else f'{mae:.3f}'}"
                  f"{format_interval(kept.get('action_share_mae_interval'))}; turn level {turns}", markup=False)
    for reason in result["skipped"]:
        con.print("skipped: " + reason, markup=False)


@app.command(short_help="Compare two models on the same rows, with intervals.")
@command
def compare(
    a: Annotated[str, typer.Argument(metavar="A", help="First model version (in --models) or artifact directory.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Second model version or artifact directory.")],
    models: Annotated[Optional[Path], typer.Option(help="Models folder holding the versions [default: as for run].", show_default=False)] = None,
    data: Annotated[Optional[list[Path]], typer.Option(metavar="FILE", help="Labelled files whose held-out split is used. " + LABELS_HELP, show_default=False)] = None,
    all_rows: Annotated[bool, typer.Option("--all-rows", help="Use every row of --data, not only its held-out split: for labelled data neither model was trained on.")] = False,
    conversation: Annotated[Optional[str], typer.Option(help="Column naming each row's conversation in --data [default: group].", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    benchmark: Annotated[bool, typer.Option("--benchmark", help="Compare on every source of the benchmark instead (written held-out, real-speech held-out conversations, shared real text, the written files kept apart in labels/held-back), each with a paired 95% interval of the difference from resampling whole conversations: an interval that contains 0 means that source does not tell the two apart.")] = False,
    realdata: Annotated[Path, typer.Option(help="Shared real-text folder for --benchmark (skipped with a reason when absent).")] = DEFAULT_REALDATA,
) -> None:
    """Compare two classifier versions on the same rows: the fixed held-out split (macro-F1 and per-class F1), or with --benchmark every source with paired intervals."""
    from rich.table import Table

    from pipeline.apply import compare_versions
    from pipeline.paths import models_dir

    if benchmark and (all_rows or conversation or data):
        fail("--benchmark compares on the project's benchmark sources; --data, --all-rows and --conversation "
             "are for comparing on your own rows (leave out --benchmark).")
    if all_rows and not data:
        fail("--all-rows needs --data: your own labelled rows. Without it the rows would be the training "
             "corpus, which both models learned from.")
    if benchmark:
        from pipeline.apply import load_version
        from pipeline.classify.evaluate import compare_benchmark
        from pipeline.paths import external_dir, held_back_dir, labels_data_dir

        first, second = load_version(models_dir(models), a), load_version(models_dir(models), b)
        con = console()
        err = console(stderr=True)
        with err.status("evaluating both classifiers on every source (a few minutes)...") as status:
            # the same benchmark rows as `callcycle evaluate` ($CALLCYCLE_LABELS included)
            compared = compare_benchmark(first, second, labels_data_dir(), external_dir(), realdata,
                                         progress=step_reporter(err, status, "comparing"),
                                         held_back_dir=held_back_dir())
        if as_json:
            typer.echo(json.dumps(compared, indent=2, default=str))
            return
        _print_comparison(con, compared)
        return
    result = compare_versions(models_dir(models), a, b, _labelled_files(data), all_rows, conversation)
    arts = result["artifacts"]
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("holdout_rows", "all_rows", "learned_rows", "a", "b", "paired")},
                              indent=2))
        return
    for version, learned in result["learned_rows"].items():
        if learned:
            console(stderr=True).print(f"note: {learned} of {result['holdout_rows']} rows have texts {version} was "
                                       "trained on (found by text in its training files): the comparison favours "
                                       "it. Compare on rows neither model saw.", soft_wrap=True)
    _note_few_conversations({m.get("interval_groups") for m in result["a"]["tasks"].values()})
    which = "All rows" if all_rows else "Held-out"
    table = Table(title=f"{which} comparison ({result['holdout_rows']} rows): a = {arts[0].version}, "
                        f"b = {arts[1].version}")
    table.add_column("task / label")
    for name in ("a", "b"):
        table.add_column(name, justify="right")
    table.add_column("Δ (b − a) [paired 95% interval]", justify="right")
    for task in arts[0].taxonomy.tasks:
        ma, mb = result["a"]["tasks"].get(task.name), result["b"]["tasks"].get(task.name)
        if not ma or not mb:
            continue
        interval = (result["paired"].get(task.name) or {}).get("interval")
        spread = f" [{interval[0]:+.3f} to {interval[1]:+.3f}]" if interval else ""
        table.add_row(f"[bold]{task.name} macro-F1", f"{ma['macro_f1']:.3f}", f"{mb['macro_f1']:.3f}",
                      f"{mb['macro_f1'] - ma['macro_f1']:+.3f}{spread}")
        for label in task.labels:
            ca, cb = ma["per_class"].get(label), mb["per_class"].get(label)
            if ca is None and cb is None:  # in neither the gold labels nor either model's predictions
                table.add_row(f"  {label} F1", "—", "—", "—")
                continue
            fa, fb = (ca or {}).get("f1", 0.0), (cb or {}).get("f1", 0.0)
            table.add_row(f"  {label} F1", f"{fa:.3f}", f"{fb:.3f}", f"{fb - fa:+.3f}")
    console().print(table)
    console().print("An interval that contains 0: these rows do not tell the two apart. Labels shown '—' occur "
                    "in neither the gold labels nor either model's predictions.", markup=False)


@app.command("evaluate-calls", short_help="Call-level accuracy on labelled calls.")
@command
def evaluate_calls_cmd(
    folder: Annotated[Optional[Path], typer.Argument(metavar="FOLDER", help="Folder of fully labelled calls (JSON transcripts whose turns carry stage and talk_action) [default: the checkout's labels/calls, or $CALLCYCLE_LABELS/../calls].", show_default=False)] = None,
    models: Annotated[Optional[str], typer.Option(help=MODELS_HELP, show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version (default: CURRENT).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Call-level accuracy: error of action share and stage mix per labelled call."""
    from rich.table import Table

    from pipeline.classify.artifacts import load_artifact
    from pipeline.classify.evaluate import evaluate_calls
    from pipeline.classify.train import format_interval
    from pipeline.display import printable
    from pipeline.errors import LabelDataError
    from pipeline.paths import labelled_calls_dir, models_dir
    from pipeline.speech.turns import build_sentencizer

    folder = folder or labelled_calls_dir()
    shape = ("A labelled call is a JSON transcript whose every turn carries its stage and talk_action "
             '({"turns": [{"speaker": ..., "text": ..., "stage": "act", "talk_action": "action"}, ...]}, '
             "as the files of labels/calls).")
    if not folder.is_dir():
        fail(f"{printable(folder)} is not a folder: evaluate-calls reads a folder of labelled calls. {shape}")
    files = sorted(folder.glob("*.json"))
    if not files:
        fail(f"No labelled calls (*.json) in {printable(folder)}. {shape}")
    artifact = load_artifact(models_dir(models), model_version)
    try:
        result = evaluate_calls(artifact, files, build_sentencizer())
    except (KeyError, ValueError) as exc:
        raise LabelDataError(f"{folder}: {exc}", "Each turn needs text, stage and talk_action: " + shape) from exc
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    mae = result["action_share_mae"]
    shown = ("n/a (no call has work talk in its gold labels)" if mae is None
             else f"{mae:.3f}{format_interval(result.get('action_share_mae_interval'))}")
    table = Table(title=f"{artifact.version} on {len(files)} labelled calls: action-share MAE {shown}, "
                        f"stage-mix MAE {result['stage_mix_mae']:.3f}")
    for col in ("call", "turns", "gold action", "predicted", "error", "stage-mix error"):
        table.add_column(col, justify="left" if col == "call" else "right")

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f}"

    for c in result["per_call"]:
        table.add_row(c["call"], str(c["turns"]), fmt(c["gold_action_share"]), fmt(c["predicted_action_share"]),
                      fmt(c["action_share_error"]), fmt(c["stage_mix_mean_abs_error"]))
    console().print(table)
