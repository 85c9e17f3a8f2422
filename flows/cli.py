"""The ``callcycle`` command: parse arguments, call one flow or library function, map errors.

Heavy imports (Prefect, faster-whisper, scikit-learn) happen inside commands so that
``--help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(
    name="callcycle",
    help="Score recorded sales calls by Cycle-of-Value stage (align / act / adjust) and talk vs action.\n\n"
    "Quick start: `callcycle run data/calls` then `callcycle summary out`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

DEFAULT_MODELS = "models"
DEFAULT_TAXONOMY = "labels/taxonomy.toml"


def _quiet_prefect(verbose: bool = False) -> None:
    """Keep Prefect's ephemeral-server chatter out of the user's terminal.

    callcycle reports progress and failures itself; ``--verbose`` (or setting
    ``PREFECT_LOGGING_LEVEL``) shows Prefect's own task logs as well. Telemetry is off:
    the tool runs offline.
    """
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")


def _fail(exc: Exception, code: int = 2) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code)


def _read_table(path: Path) -> list[dict[str, Any]]:
    from pipeline.classify.labels import read_rows

    rows = read_rows(path)
    for row in rows:
        row.pop("_line", None)
    return rows


@app.command()
def run(
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Audio files, transcripts, folders or quoted globs. Default: data/calls")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the segments/, calls/ and errors/ datasets.")] = Path("out"),
    models: Annotated[str, typer.Option(help="Models folder (uses its CURRENT pointer) or an artifact directory.")] = DEFAULT_MODELS,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version inside --models.")] = None,
    asr_model: Annotated[Optional[str], typer.Option(help="faster-whisper model: name in the local cache or a CTranslate2 directory. Default: bundled tiny.en.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file with [asr], [segmentation], [run] options.")] = None,
    channel_speakers: Annotated[Optional[str], typer.Option(help="Speaker names for channels 0,1,... of multi-channel audio, e.g. 'rep,customer'.")] = None,
    workers: Annotated[int, typer.Option(help="Files processed at once: above 1, a local Dask cluster of this many worker processes (one thread each; models load once per worker).")] = 1,
    dask_address: Annotated[Optional[str], typer.Option(help="Run one Dask task per file on an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (its workers need PREFECT_API_URL set to a Prefect server).")] = None,
    batched: Annotated[Optional[bool], typer.Option("--batched/--no-batched", help="Use faster-whisper's BatchedInferencePipeline.")] = None,
    vad: Annotated[Optional[bool], typer.Option("--vad/--no-vad", help="Skip non-speech with Silero VAD.")] = None,
    max_duration: Annotated[Optional[float], typer.Option(help="Record longer recordings as errors (seconds).")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Per-file transcription time limit in seconds.")] = None,
    retries: Annotated[Optional[int], typer.Option(help="Retries for unexpected transcription failures.")] = None,
    force: Annotated[bool, typer.Option(help="Redo calls that already have results.")] = False,
    show_summary: Annotated[bool, typer.Option("--summary/--no-summary", help="Print the scored-calls table at the end.")] = True,
    write_html: Annotated[bool, typer.Option("--report/--no-report", help="Also write the managers' HTML report to OUT/report.html.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Prefect's task logs.")] = False,
) -> None:
    """Transcribe or parse every call, classify its segments, score it and write Parquet.

    Exit status: 0 when every input was scored or skipped, 1 when any input failed
    (each failure is recorded in OUT/errors/ with a hint), 2 on a usage or model error.
    """
    _quiet_prefect(verbose)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.score_flow import run_scoring
    from pipeline.config import load_config
    from pipeline.errors import PipelineError
    from pipeline.report.terminal import load_call_rows, load_error_rows, render_errors, render_summary

    console = Console()
    try:
        cfg = load_config(
            config,
            asr__model=asr_model, asr__batched=batched, asr__vad_filter=vad,
            run__channel_speakers=tuple(s.strip() for s in channel_speakers.split(",")) if channel_speakers else None,
            run__max_duration_s=max_duration, run__timeout_s=timeout, run__retries=retries,
            run__force=force or None,
        )
    except PipelineError as exc:
        _fail(exc)
    with Progress(TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=False) as progress:
        bar = progress.add_task("", total=None)

        def discovered(n: int) -> None:
            progress.update(bar, total=n)

        def result(outcome: Any) -> None:
            mark = {"scored": "[green]✓", "skipped": "[dim]=", "failed": "[red]✗"}[outcome.status]
            progress.update(bar, advance=1, description=f"{mark} {Path(outcome.path).name}[/]")

        try:
            summary = run_scoring(inputs or ["data/calls"], out_dir=str(out), models=models,
                                  model_version=model_version, config=cfg, workers=workers,
                                  dask_address=dask_address, on_result=result, on_discovered=discovered)
        except PipelineError as exc:
            progress.stop()
            _fail(exc)
    if show_summary:
        render_summary(load_call_rows(out), console)
    console.print(
        f"{summary.count('scored')} scored, {summary.count('skipped')} skipped (already done or duplicate), "
        f"{summary.count('failed')} failed in {summary.wall_s:.1f} s → {out}/")
    if write_html and (out / "calls").is_dir():
        from pipeline.report.html import write_report

        path, _ = write_report(out)
        console.print(f"Report: [bold]{path}[/] (open it in a browser)")
    if summary.failed:
        failed_paths = {o.path for o in summary.failed}
        render_errors([r for r in load_error_rows(out) if r["source_path"] in failed_paths], console)
        raise typer.Exit(1)


@app.command()
def classify(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV with a 'text' column (other columns are kept).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file; .jsonl gives JSON Lines, anything else CSV. Default: stdout as JSONL.")] = None,
    models: Annotated[str, typer.Option(help="Models folder or artifact directory.")] = DEFAULT_MODELS,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version.")] = None,
) -> None:
    """Classify texts: adds stage, stage probabilities (p_<label>), talk_action and action_prob."""
    import csv

    from pipeline.classify.artifacts import load_artifact
    from pipeline.classify.predict import predict_texts
    from pipeline.errors import PipelineError

    try:
        artifact = load_artifact(Path(models), model_version)
        rows = _read_table(file)
    except PipelineError as exc:
        _fail(exc)
    missing = [i for i, r in enumerate(rows) if not isinstance(r.get("text"), str)]
    if missing:
        _fail(ValueError(f"{file}: rows {missing[:10]} have no 'text' value. Every row needs a text column."))
    preds = predict_texts(artifact, [r["text"] for r in rows])
    stage_task = artifact.taxonomy.by_role("stage")
    ta_task = artifact.taxonomy.by_role("talk_action")
    for i, row in enumerate(rows):
        sp = preds[stage_task.name][i]
        tp = preds[ta_task.name][i]
        row[stage_task.name] = sp.label
        for label in stage_task.labels:
            row[f"p_{label}"] = round(sp.probabilities.get(label, 0.0), 4)
        ta_label = tp.label
        if stage_task.neutral and sp.label == stage_task.neutral:
            ta_label = next(lbl for lbl in ta_task.labels if lbl != ta_task.positive)
        row[ta_task.name] = ta_label
        row[f"{ta_task.positive}_prob"] = round(tp.probabilities.get(ta_task.positive or "", 0.0), 4)
    if out is None or out.suffix.lower() == ".jsonl":
        handle = sys.stdout if out is None else open(out, "w", encoding="utf-8")
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        if out is not None:
            handle.close()
    else:
        fields: list[str] = list(dict.fromkeys(k for r in rows for k in r))
        with open(out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    if out is not None:
        typer.echo(f"{len(rows)} rows classified with {artifact.version} → {out}", err=True)


@app.command()
def train(
    data: Annotated[Optional[list[Path]], typer.Argument(help="Labelled JSONL/CSV files. Default: labels/data/*.jsonl")] = None,
    taxonomy: Annotated[Path, typer.Option(help="Taxonomy TOML naming tasks and labels.")] = Path(DEFAULT_TAXONOMY),
    models: Annotated[Path, typer.Option(help="Folder to write the versioned artifact into.")] = Path(DEFAULT_MODELS),
    version: Annotated[Optional[str], typer.Option(help="Artifact version name (default: taxonomy-timestamp-datahash).")] = None,
    folds: Annotated[int, typer.Option(help="Grouped cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    promote_model: Annotated[bool, typer.Option("--promote", help="Point models/CURRENT at the new model if held-out macro-F1 does not drop.")] = False,
    force: Annotated[bool, typer.Option(help="With --promote: promote even if held-out macro-F1 drops.")] = False,
) -> None:
    """Train the classifiers from labelled data: grouped CV model selection, held-out metrics, model card."""
    _quiet_prefect()
    from rich.console import Console

    from flows.train_flow import train_classifiers
    from pipeline.classify.train import TrainConfig
    from pipeline.errors import PipelineError

    console = Console()
    files = data or sorted(Path("labels/data").glob("*.jsonl"))
    if not files:
        _fail(FileNotFoundError("No labelled data found in labels/data/. Pass labelled JSONL/CSV files."))
    try:
        with console.status("training (grouped cross-validation over model families)..."):
            outcome = train_classifiers(str(taxonomy), [str(f) for f in files], str(models),
                                        TrainConfig(folds=folds, seed=seed), version, promote_model, force)
    except PipelineError as exc:
        _fail(exc)
    card = outcome.result.card
    console.print(f"[bold]artifact[/] {outcome.path}  (data hash {card['data']['hash'][:12]}, "
                  f"{card['data']['rows_train']} train / {card['data']['rows_holdout']} held-out rows, "
                  f"{card['training']['seconds']} s)")
    for name, task in card["tasks"].items():
        hold = task.get("holdout", {}).get("macro_f1")
        console.print(f"  {name}: {task['selected']}  CV macro-F1 {task['cross_validated']['macro_f1']:.3f}"
                      + (f"  held-out macro-F1 {hold:.3f}" if hold is not None else ""))
    if outcome.decision is not None:
        d = outcome.decision
        colour = "green" if d.promoted else "yellow"
        console.print(f"[{colour}]{'promoted' if d.promoted else 'not promoted'}[/]: {d.reason}")
        if not d.promoted:
            raise typer.Exit(1)


@app.command()
def evaluate(
    files: Annotated[list[Path], typer.Argument(help="Labelled JSONL/CSV files with text and task columns (stage, talk_action).")],
    models: Annotated[str, typer.Option(help="Models folder or artifact directory.")] = DEFAULT_MODELS,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version (default: CURRENT).")] = None,
    holdout: Annotated[bool, typer.Option("--holdout", help="Keep only the fixed held-out split, de-duplicated as training does: `callcycle evaluate labels/data/*.jsonl --holdout` reproduces the model card's held-out metrics.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Per-class precision, recall and F1, macro-F1 and confusion matrices on labelled rows."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.classify.artifacts import load_artifact
    from pipeline.classify.evaluate import evaluate_artifact
    from pipeline.classify.labels import read_rows, validate_rows
    from pipeline.errors import PipelineError

    try:
        artifact = load_artifact(Path(models), model_version)
        rows = []
        for file in files:
            raw = read_rows(file)
            tasks = tuple(t.name for t in artifact.taxonomy.tasks if any(t.name in r for r in raw))
            rows.extend(validate_rows(raw, artifact.taxonomy, str(file), tasks or None))
    except PipelineError as exc:
        _fail(exc)
    if holdout:
        from pipeline.classify.labels import drop_near_duplicates
        from pipeline.classify.train import TrainConfig, split_rows

        percent = int(artifact.card["data"]["holdout_rule"].split("<")[1])
        _train, rows = split_rows(drop_near_duplicates(rows, TrainConfig().dedupe_threshold)[0], percent)
        if not rows:
            _fail(ValueError("No rows fall in the held-out split of these files."))
    file = ", ".join(str(f) for f in files) if len(files) < 4 else f"{len(files)} files"
    metrics = evaluate_artifact(artifact, rows)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    console = Console()
    console.print(f"[bold]{artifact.version}[/] on {file} ({len(rows)} rows)")
    for name, m in metrics["tasks"].items():
        table = Table(title=f"{name}: macro-F1 {m['macro_f1']:.3f}, accuracy {m['accuracy']:.3f}")
        for col in ("label", "precision", "recall", "F1", "support"):
            table.add_column(col, justify="right" if col != "label" else "left")
        for label, c in m["per_class"].items():
            table.add_row(label, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
        console.print(table)
        conf = Table(title=f"{name} confusion (rows true, columns predicted)")
        conf.add_column("")
        for label in m["labels"]:
            conf.add_column(label, justify="right")
        for label, row in zip(m["labels"], m["confusion"]):
            conf.add_row(label, *(str(v) for v in row))
        console.print(conf)


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="First model version (in --models) or artifact directory.")],
    b: Annotated[str, typer.Argument(help="Second model version or artifact directory.")],
    models: Annotated[Path, typer.Option(help="Models folder holding the versions.")] = Path(DEFAULT_MODELS),
    data: Annotated[Optional[list[Path]], typer.Option(help="Labelled files whose held-out split is used. Default: labels/data/*.jsonl")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Compare two classifier versions on the same fixed held-out split (macro-F1 and per-class F1)."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.classify.artifacts import load_artifact
    from pipeline.classify.evaluate import evaluate_artifact
    from pipeline.classify.labels import HOLDOUT_PERCENT, is_holdout, load_labelled
    from pipeline.errors import PipelineError

    files = data or sorted(Path("labels/data").glob("*.jsonl"))
    try:
        arts = [load_artifact(Path(v)) if Path(v).is_dir() and (Path(v) / "card.json").is_file()
                else load_artifact(models, v) for v in (a, b)]
        rows = load_labelled(files, arts[0].taxonomy)
    except PipelineError as exc:
        _fail(exc)
    holdout = [r for r in rows if is_holdout(r.group, HOLDOUT_PERCENT)]
    results = [evaluate_artifact(art, holdout) for art in arts]
    if as_json:
        typer.echo(json.dumps({"holdout_rows": len(holdout), "a": results[0], "b": results[1]}, indent=2))
        return
    table = Table(title=f"Held-out comparison ({len(holdout)} rows)")
    table.add_column("task / label")
    for art in arts:
        table.add_column(art.version, justify="right")
    table.add_column("Δ (b − a)", justify="right")
    for task in arts[0].taxonomy.tasks:
        ma, mb = results[0]["tasks"].get(task.name), results[1]["tasks"].get(task.name)
        if not ma or not mb:
            continue
        table.add_row(f"[bold]{task.name} macro-F1", f"{ma['macro_f1']:.3f}", f"{mb['macro_f1']:.3f}",
                      f"{mb['macro_f1'] - ma['macro_f1']:+.3f}")
        for label in task.labels:
            fa = ma["per_class"].get(label, {}).get("f1", 0.0)
            fb = mb["per_class"].get(label, {}).get("f1", 0.0)
            table.add_row(f"  {label} F1", f"{fa:.3f}", f"{fb:.3f}", f"{fb - fa:+.3f}")
    Console().print(table)


@app.command("export-uncertain")
def export_uncertain(
    out_dir: Annotated[Path, typer.Argument(help="Output folder of `callcycle run` (its segments/ dataset).")],
    to: Annotated[Path, typer.Option("--to", help="File to write: .csv, or .json for a Label Studio import (a .label_config.xml is written beside it).")],
    n: Annotated[int, typer.Option("--n", help="How many segments to pick.")] = 200,
    models: Annotated[str, typer.Option(help="Models folder (for the label set).")] = DEFAULT_MODELS,
) -> None:
    """Pick the segments the models are least sure about and write them ready to label."""
    from pipeline.classify.active import select_uncertain, write_for_labelling
    from pipeline.classify.artifacts import load_artifact
    from pipeline.errors import PipelineError

    try:
        taxonomy = load_artifact(Path(models)).taxonomy
        rows = select_uncertain(out_dir, n)
        write_for_labelling(rows, to, taxonomy)
    except PipelineError as exc:
        _fail(exc)
    typer.echo(f"{len(rows)} segments to label → {to}")


@app.command("import-labels")
def import_labels_cmd(
    file: Annotated[Path, typer.Argument(help="Labelled rows: the exported CSV filled in, JSONL, or a Label Studio JSON export.")],
    into: Annotated[Path, typer.Option(help="Labelled-data file to append to.")] = Path("labels/data/imported.jsonl"),
    taxonomy: Annotated[Path, typer.Option(help="Taxonomy the labels must follow.")] = Path(DEFAULT_TAXONOMY),
) -> None:
    """Validate labelled rows and merge them into labels/ (all or nothing)."""
    from pipeline.classify.active import import_labels
    from pipeline.classify.labels import load_taxonomy
    from pipeline.errors import PipelineError

    existing = sorted(Path("labels/data").glob("*.jsonl")) + ([into] if into.exists() else [])
    try:
        merged = import_labels(file, load_taxonomy(taxonomy), into, sorted(set(existing)))
    except PipelineError as exc:
        _fail(exc)
    typer.echo(f"{merged} labelled rows merged into {into}. Retrain with `callcycle train --promote`.")


@app.command("evaluate-calls")
def evaluate_calls_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of fully labelled calls (JSON transcripts whose turns carry stage and talk_action).")] = Path("labels/calls"),
    models: Annotated[str, typer.Option(help="Models folder or artifact directory.")] = DEFAULT_MODELS,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version (default: CURRENT).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Call-level accuracy: error of action share and stage mix per labelled call."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.classify.artifacts import load_artifact
    from pipeline.classify.evaluate import evaluate_calls
    from pipeline.errors import PipelineError
    from pipeline.speech.turns import build_sentencizer

    files = sorted(folder.glob("*.json"))
    if not files:
        _fail(FileNotFoundError(f"No labelled calls (*.json) in {folder}."))
    try:
        artifact = load_artifact(Path(models), model_version)
        result = evaluate_calls(artifact, files, build_sentencizer())
    except (PipelineError, KeyError, ValueError) as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"{artifact.version} on {len(files)} labelled calls: action-share MAE "
                        f"{result['action_share_mae']:.3f}, stage-mix MAE {result['stage_mix_mae']:.3f}")
    for col in ("call", "turns", "gold action", "predicted", "error", "stage-mix error"):
        table.add_column(col, justify="left" if col == "call" else "right")
    for c in result["per_call"]:
        fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        table.add_row(c["call"], str(c["turns"]), fmt(c["gold_action_share"]), fmt(c["predicted_action_share"]),
                      fmt(c["action_share_error"]), fmt(c["stage_mix_mean_abs_error"]))
    Console().print(table)


@app.command()
def summary(
    out_dir: Annotated[Path, typer.Argument(help="Output folder of `callcycle run`.")] = Path("out"),
) -> None:
    """Print the table of scored calls (and any failed inputs) from the Parquet datasets."""
    from pipeline.report.terminal import load_call_rows, load_error_rows, render_errors, render_summary

    if not (out_dir / "calls").is_dir():
        _fail(FileNotFoundError(f"{out_dir}/calls not found. Run `callcycle run --out {out_dir}` first."))
    render_summary(load_call_rows(out_dir))
    render_errors(load_error_rows(out_dir))


@app.command()
def report(
    out_dir: Annotated[Path, typer.Argument(help="Output folder of `callcycle run` (holds calls/ and segments/).")] = Path("out"),
    html: Annotated[Optional[Path], typer.Option("--html", help="Where to write the HTML file [default: OUT_DIR/report.html].")] = None,
    since: Annotated[Optional[datetime], typer.Option("--since", formats=["%Y-%m-%d"], help="Only calls on or after this date (YYYY-MM-DD); calls without a date are left out.")] = None,
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's calls (case-insensitive).")] = None,
) -> None:
    """Write the managers' report: a team view and a scorecard per call, in one offline HTML file.

    Reads the stored Parquet data (it never recomputes scores). Open the file in any browser;
    it loads nothing from the network.
    """
    from rich.console import Console

    from pipeline.report.html import write_report

    console = Console()
    if not (out_dir / "calls").is_dir():
        _fail(FileNotFoundError(f"{out_dir}/calls not found. Run `callcycle run --out {out_dir}` first."))
    path, n = write_report(out_dir, html, since=since.date() if since else None, rep=rep)
    if n == 0:
        console.print("[yellow]No calls matched[/]: the report says so. Widen --since/--rep.")
    console.print(f"Report with {n} calls written to [bold]{path}[/]")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
