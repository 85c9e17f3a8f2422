"""Commands of the active-learning round trip: ``export-uncertain`` and ``import-labels``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.common import app, command, fail
from cli.models import MODELS_HELP


@app.command("export-uncertain", short_help="Export the segments the models are least sure of, to label.")
@command
def export_uncertain(
    out_dir: Annotated[str, typer.Argument(metavar="OUT_DIR", help="Output folder (or s3:// prefix) of `callcycle run` (its segments/ dataset).")],
    to: Annotated[Path, typer.Option("--to", help="File to write: .csv (spreadsheet-safe), or .json for a Label Studio import (a .label_config.xml is written beside it).")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many segments to pick.")] = 200,
    models: Annotated[Optional[str], typer.Option(help=MODELS_HELP + " Only its label set is used.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --to if it exists (labels filled in there are lost).")] = False,
) -> None:
    """Pick the segments the models are least sure about and write them ready to label.

    Each comes with the two segments before it and the one after (context_before, context_after):
    the guidelines label by context. Segments already in the labelled data (imported in an earlier
    round) are not exported again."""
    from pipeline.classify.active import labelled_ids, select_uncertain, write_for_labelling
    from pipeline.classify.artifacts import load_artifact
    from pipeline.display import printable
    from pipeline.paths import labels_data_dir, models_dir

    if to.suffix.lower() not in {".csv", ".json"}:
        fail(f"--to {to.name}: write a .csv (for a spreadsheet) or a .json (for Label Studio).")
    if to.exists() and not force:
        fail(f"--to {printable(to)} exists (it may hold labels already filled in). "
             "Write to another file, or pass --force to overwrite it.")
    artifact = load_artifact(models_dir(models))
    rows = select_uncertain(out_dir, n, labelled_ids(sorted(labels_data_dir().glob("*.jsonl"))))
    write_for_labelling(rows, to, artifact.taxonomy, model_version=artifact.version)
    short = (f" (only {len(rows)} of the {n} asked for: that is every segment of the output, less repeated texts "
             "and segments labelled before)") if len(rows) < n else ""
    typer.echo(f"{len(rows)} segments to label → {printable(to)}{short}")


@app.command("import-labels", short_help="Validate labelled rows and merge them into the corpus.")
@command
def import_labels_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Labelled rows: the exported CSV filled in, JSONL, or a Label Studio JSON export.")],
    into: Annotated[Optional[Path], typer.Option(help="Labelled-data file to append to [default: imported.jsonl in the labelled-data folder].", show_default=False)] = None,
    taxonomy: Annotated[Optional[Path], typer.Option(help="Taxonomy the labels must follow [default: $CALLCYCLE_TAXONOMY, else the shipped one].", show_default=False)] = None,
) -> None:
    """Validate labelled rows and merge them into labels/ (all or nothing)."""
    from pipeline.classify.active import import_labels
    from pipeline.classify.labels import load_taxonomy
    from pipeline.paths import labels_data_dir, taxonomy_path

    folder = labels_data_dir()
    target = into or folder / "imported.jsonl"
    if target.suffix.lower() != ".jsonl":
        fail(f"--into {target.name}: labelled data is JSON Lines; name a .jsonl file.")
    existing = sorted(folder.glob("*.jsonl")) + ([target] if target.exists() else [])
    merged = import_labels(file, load_taxonomy(taxonomy_path(taxonomy)), target, sorted(set(existing)))
    from pipeline.display import printable

    in_corpus = target.resolve().parent == folder.resolve()
    retrain = ("`callcycle train` (it reads that folder), then `callcycle compare` before `--promote`" if in_corpus
               else f"`callcycle train {printable(folder)}/*.jsonl {printable(target)}`, then `callcycle compare`")
    typer.echo(f"{merged} labelled rows merged into {printable(target)}. Retrain with {retrain}.")
