"""Commands about the classifiers: ``classify``, ``train``, ``evaluate``, ``compare``, ``evaluate-calls``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.common import app, command, console, fail, quiet_prefect

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


@app.command()
@command
def classify(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV with a 'text' column (other columns are kept).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file; .jsonl gives JSON Lines, anything else CSV (spreadsheet-safe). Default: stdout as JSONL.")] = None,
    models: Annotated[Optional[str], typer.Option(help=MODELS_HELP, show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version.")] = None,
) -> None:
    """Classify texts: adds stage, stage probabilities (p_<label>), talk_action and action_prob."""
    from pipeline.apply import classify_rows, read_table
    from pipeline.classify.artifacts import load_artifact
    from pipeline.paths import models_dir
    from pipeline.tables import rows_to_jsonl, write_rows

    artifact = load_artifact(models_dir(models), model_version)
    rows = classify_rows(artifact, read_table(file), str(file))
    if out is None:
        rows_to_jsonl(rows, sys.stdout)
        return
    write_rows(rows, out)
    typer.echo(f"{len(rows)} rows classified with {artifact.version} → {out}", err=True)


@app.command()
@command
def train(
    data: Annotated[Optional[list[Path]], typer.Argument(help="Labelled JSONL/CSV files. " + LABELS_HELP, show_default=False)] = None,
    taxonomy: Annotated[Optional[Path], typer.Option(help="Taxonomy TOML naming tasks and labels [default: $CALLCYCLE_TAXONOMY, else the shipped labels/taxonomy.toml].", show_default=False)] = None,
    models: Annotated[Optional[Path], typer.Option(help="Folder to write the versioned artifact into [default: as for run].", show_default=False)] = None,
    version: Annotated[Optional[str], typer.Option(help="Artifact version name (default: taxonomy-timestamp-datahash).")] = None,
    folds: Annotated[int, typer.Option(help="Grouped cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    promote_model: Annotated[bool, typer.Option("--promote", help="Point models/CURRENT at the new model if held-out macro-F1 does not drop.")] = False,
    force: Annotated[bool, typer.Option(help="With --promote: promote even if held-out macro-F1 drops.")] = False,
) -> None:
    """Train the classifiers from labelled data: grouped CV model selection, held-out metrics, model card."""
    quiet_prefect()
    from flows.train_flow import train_classifiers
    from pipeline.classify.train import TrainConfig
    from pipeline.paths import models_dir, taxonomy_path

    con = console()
    files = _labelled_files(data)
    with con.status("training (grouped cross-validation over model families)..."):
        outcome = train_classifiers(str(taxonomy_path(taxonomy)), [str(f) for f in files], str(models_dir(models)),
                                    TrainConfig(folds=folds, seed=seed), version, promote_model, force)
    card = outcome.result.card
    con.print(f"[bold]artifact[/] {outcome.path}  (data hash {card['data']['hash'][:12]}, "
              f"{card['data']['rows_train']} train / {card['data']['rows_holdout']} held-out rows, "
              f"{card['training']['seconds']} s)")
    for name, task in card["tasks"].items():
        hold = task.get("holdout", {}).get("macro_f1")
        con.print(f"  {name}: {task['selected']}  CV macro-F1 {task['cross_validated']['macro_f1']:.3f}"
                  + (f"  held-out macro-F1 {hold:.3f}" if hold is not None else ""))
    if outcome.decision is not None:
        d = outcome.decision
        colour = "green" if d.promoted else "yellow"
        con.print(f"[{colour}]{'promoted' if d.promoted else 'not promoted'}[/]: {d.reason}")
        if not d.promoted:
            raise typer.Exit(1)


@app.command()
@command
def evaluate(
    files: Annotated[list[Path], typer.Argument(help="Labelled JSONL/CSV files with text and task columns (stage, talk_action).")],
    models: Annotated[Optional[str], typer.Option(help=MODELS_HELP, show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version (default: CURRENT).")] = None,
    holdout: Annotated[bool, typer.Option("--holdout", help="Keep only the fixed held-out split, de-duplicated as training does: `callcycle evaluate labels/data/*.jsonl --holdout` reproduces the model card's held-out metrics.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Per-class precision, recall and F1, macro-F1 and confusion matrices on labelled rows."""
    from rich.table import Table

    from pipeline.apply import evaluate_files
    from pipeline.paths import models_dir

    artifact, n_rows, metrics = evaluate_files(models_dir(models), model_version, files, holdout)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    con = console()
    where = ", ".join(str(f) for f in files) if len(files) < 4 else f"{len(files)} files"
    con.print(f"[bold]{artifact.version}[/] on {where} ({n_rows} rows)")
    for name, m in metrics["tasks"].items():
        table = Table(title=f"{name}: macro-F1 {m['macro_f1']:.3f}, accuracy {m['accuracy']:.3f}")
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


@app.command()
@command
def compare(
    a: Annotated[str, typer.Argument(help="First model version (in --models) or artifact directory.")],
    b: Annotated[str, typer.Argument(help="Second model version or artifact directory.")],
    models: Annotated[Optional[Path], typer.Option(help="Models folder holding the versions [default: as for run].", show_default=False)] = None,
    data: Annotated[Optional[list[Path]], typer.Option(help="Labelled files whose held-out split is used. " + LABELS_HELP, show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Compare two classifier versions on the same fixed held-out split (macro-F1 and per-class F1)."""
    from rich.table import Table

    from pipeline.apply import compare_versions
    from pipeline.paths import models_dir

    result = compare_versions(models_dir(models), a, b, _labelled_files(data))
    arts = result["artifacts"]
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("holdout_rows", "a", "b")}, indent=2))
        return
    table = Table(title=f"Held-out comparison ({result['holdout_rows']} rows)")
    table.add_column("task / label")
    for art in arts:
        table.add_column(art.version, justify="right")
    table.add_column("Δ (b − a)", justify="right")
    for task in arts[0].taxonomy.tasks:
        ma, mb = result["a"]["tasks"].get(task.name), result["b"]["tasks"].get(task.name)
        if not ma or not mb:
            continue
        table.add_row(f"[bold]{task.name} macro-F1", f"{ma['macro_f1']:.3f}", f"{mb['macro_f1']:.3f}",
                      f"{mb['macro_f1'] - ma['macro_f1']:+.3f}")
        for label in task.labels:
            fa = ma["per_class"].get(label, {}).get("f1", 0.0)
            fb = mb["per_class"].get(label, {}).get("f1", 0.0)
            table.add_row(f"  {label} F1", f"{fa:.3f}", f"{fb:.3f}", f"{fb - fa:+.3f}")
    console().print(table)


@app.command("evaluate-calls")
@command
def evaluate_calls_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of fully labelled calls (JSON transcripts whose turns carry stage and talk_action).")] = Path("labels/calls"),
    models: Annotated[Optional[str], typer.Option(help=MODELS_HELP, show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version (default: CURRENT).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Call-level accuracy: error of action share and stage mix per labelled call."""
    from rich.table import Table

    from pipeline.classify.artifacts import load_artifact
    from pipeline.classify.evaluate import evaluate_calls
    from pipeline.errors import LabelDataError
    from pipeline.paths import models_dir
    from pipeline.speech.turns import build_sentencizer

    files = sorted(folder.glob("*.json"))
    if not files:
        fail(f"No labelled calls (*.json) in {folder}.")
    artifact = load_artifact(models_dir(models), model_version)
    try:
        result = evaluate_calls(artifact, files, build_sentencizer())
    except (KeyError, ValueError) as exc:
        raise LabelDataError(f"{folder}: {exc}", "Each turn needs text, stage and talk_action.") from exc
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"{artifact.version} on {len(files)} labelled calls: action-share MAE "
                        f"{result['action_share_mae']:.3f}, stage-mix MAE {result['stage_mix_mae']:.3f}")
    for col in ("call", "turns", "gold action", "predicted", "error", "stage-mix error"):
        table.add_column(col, justify="left" if col == "call" else "right")

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f}"

    for c in result["per_call"]:
        table.add_row(c["call"], str(c["turns"]), fmt(c["gold_action_share"]), fmt(c["predicted_action_share"]),
                      fmt(c["action_share_error"]), fmt(c["stage_mix_mean_abs_error"]))
    console().print(table)
