"""Apply a classifier artifact to tables of text: classify rows, evaluate files, compare versions.

The rules the CLI used to carry live here, once: a segment whose stage is the taxonomy's
neutral label is never action; ``--holdout`` keeps the card's held-out split after the same
de-duplication training applies; two versions are compared on the same held-out rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.classify.artifacts import Artifact, load_artifact
from pipeline.classify.evaluate import evaluate_artifact, learned_rows, training_folders
from pipeline.classify.labels import LabelledRow, read_rows, validate_rows
from pipeline.classify.model import Utterances
from pipeline.classify.predict import predict_texts, predict_utterances
from pipeline.config import DEFAULT_TEXT_COLUMN
from pipeline.errors import LabelDataError
from pipeline.ingest.transcripts import MAX_TURN_CHARS
from pipeline.tables import unneutralise

__all__ = ["CLASH_SUFFIX", "USUAL_COLUMNS", "usual_columns", "clash_names", "output_columns", "read_lines",
           "read_table", "classify_rows", "holdout_rows", "load_evaluation_rows", "evaluate_files", "training_files",
           "learned_rows", "compare_versions", "load_version"]


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Rows of a plain-text file: one ``{"text": line}`` per non-blank line, in file order.

    Raises:
        LabelDataError: the file is missing or is not UTF-8.
    """
    try:
        with open(path, encoding="utf-8-sig") as handle:  # a BOM, as Notepad saves, is dropped
            return [{DEFAULT_TEXT_COLUMN: line.strip()} for line in handle if line.strip()]
    except FileNotFoundError as exc:
        raise LabelDataError(f"File {path} not found.", "Check the path.") from exc
    except UnicodeDecodeError as exc:
        raise LabelDataError(f"{path}: not UTF-8.", "Re-save the file as UTF-8.") from exc


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL, CSV, TSV or plain-text file.

    A ``.txt`` file holds one text per line (blank lines skipped); CSV cells that callcycle
    neutralised for spreadsheets are restored.
    """
    if Path(path).suffix.lower() == ".txt":
        return read_lines(path)
    rows = read_rows(path)
    for i, row in enumerate(rows):
        row.pop("_line", None)
        rows[i] = {unneutralise(key): unneutralise(value) for key, value in row.items()}
    return rows


#: Appended to an input column whose name :func:`classify_rows` writes (a file's own ``stage``
#: labels, say), so the input's value is kept beside the prediction.
CLASH_SUFFIX = "_input"


def clash_names(columns: Sequence[str], added: Sequence[str]) -> dict[str, str]:
    """New names for the input ``columns`` that :func:`classify_rows` would overwrite (those in ``added``):
    ``<name>_input``, or ``<name>_input_2``, ``_3`` ... when the input already has a column of that name
    (a file with both ``stage`` and ``stage_input`` lost its ``stage`` values)."""
    taken = set(columns) | set(added)
    renamed: dict[str, str] = {}
    for column in columns:
        if column in added:
            name, n = f"{column}{CLASH_SUFFIX}", 2
            while name in taken:
                name, n = f"{column}{CLASH_SUFFIX}_{n}", n + 1
            taken.add(name)
            renamed[column] = name
    return renamed


def output_columns(artifact: Artifact) -> list[str]:
    """The columns :func:`classify_rows` adds: stage, ``p_<label>`` per stage, talk/action, ``<positive>_prob``."""
    stage_task = artifact.taxonomy.by_role("stage")
    ta_task = artifact.taxonomy.by_role("talk_action")
    return [stage_task.name, *(f"p_{label}" for label in stage_task.labels), ta_task.name,
            f"{ta_task.positive}_prob"]


def classify_rows(artifact: Artifact, rows: list[dict[str, Any]], source: str = "input",
                  conversation: str | None = None, speaker: str | None = None,
                  text: str = DEFAULT_TEXT_COLUMN) -> list[dict[str, Any]]:
    """Add ``<stage task>``, ``p_<label>``, ``<talk/action task>`` and ``<positive>_prob`` to every row.

    Each row is read on its own, unless ``conversation`` names a column: then consecutive rows
    with the same value in it are read as one conversation, in file order, each with its
    neighbours (and ``speaker``, if given, names the column that says who spoke). ``text``
    names the column holding the texts. An input column with the name of an added column is
    kept, renamed with :data:`CLASH_SUFFIX` (``stage`` -> ``stage_input``; :func:`clash_names`).

    A row whose stage is the neutral label (``other``) is never action: it gets the
    non-positive talk/action label, as the scores assume.

    Raises:
        LabelDataError: rows without a ``text`` value, or a named column missing from a row.
    """
    if not rows:
        raise LabelDataError(f"{source} has no rows to classify.",
                             "Check the file: JSON Lines with one object per line, or a CSV with a header row.")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    for column, option in ((text, "--text"), (conversation, "--conversation"), (speaker, "--speaker")):
        if column is not None and column not in columns:
            found = ", ".join(repr(c) for c in columns[:8]) + (" ..." if len(columns) > 8 else "")
            hint = f"Pass the name of an existing column to {option}"
            raise LabelDataError(f"{source} has no column {column!r} (found: {found}).",
                                 hint + "; a CSV needs a header row (separated by commas, semicolons or tabs).")
    # row numbers count data rows from 1 (a CSV's header and a JSONL's blank lines not counted)
    missing = [i + 1 for i, r in enumerate(rows) if not isinstance(r.get(text), str) or not r[text].strip()]
    if missing:
        more = f" and {len(missing) - 10:,} more" if len(missing) > 10 else ""
        raise LabelDataError(f"{source}: rows {missing[:10]}{more} have no text, or a text that is not a string.",
                             f"Give every row a non-empty {text!r}.")
    too_long = [i + 1 for i, r in enumerate(rows) if len(r[text]) > MAX_TURN_CHARS]
    if too_long:
        raise LabelDataError(f"{source}: row {too_long[0]} has a text of {len(rows[too_long[0] - 1][text]):,} "
                             f"characters (the limit is {MAX_TURN_CHARS:,})"
                             + (f"; {len(too_long) - 1} more rows too" if len(too_long) > 1 else "") + ".",
                             "Give one utterance per row; a file that lost its line breaks needs them back.")
    for column in (conversation, speaker):
        absent = [i + 1 for i, r in enumerate(rows) if column is not None and r.get(column) in (None, "")]
        if absent:
            raise LabelDataError(f"{source}: rows {absent[:10]} have no {column!r} value.",
                                 f"Give every row a {column!r} value, or leave out the option that names it.")
    texts = [r[text] for r in rows]
    if conversation is None:
        preds = predict_texts(artifact, texts)
    else:
        utterances = Utterances(tuple(texts), tuple(str(r[conversation]) for r in rows),
                                tuple(str(r[speaker]) if speaker else "" for r in rows))
        preds = predict_utterances(artifact, utterances)
    stage_task = artifact.taxonomy.by_role("stage")
    ta_task = artifact.taxonomy.by_role("talk_action")
    renamed = clash_names(columns, output_columns(artifact))
    out = []
    for i, row in enumerate(rows):
        sp, tp = preds[stage_task.name][i], preds[ta_task.name][i]
        new = {renamed.get(key, key): value for key, value in row.items()}
        new[stage_task.name] = sp.label
        for label in stage_task.labels:
            new[f"p_{label}"] = round(sp.probabilities.get(label, 0.0), 4)
        new[ta_task.name] = tp.label  # the neutral-stage rule is applied by predict_texts
        new[f"{ta_task.positive}_prob"] = round(tp.probabilities.get(ta_task.positive or "", 0.0), 4)
        out.append(new)
    return out


def holdout_rows(artifact: Artifact, rows: Sequence[LabelledRow]) -> list[LabelledRow]:
    """The rows that fall in the artifact's held-out split, prepared as training does
    (:func:`pipeline.classify.evaluate.holdout_rows`); an error when there are none."""
    from pipeline.classify.evaluate import holdout_rows as card_holdout

    held = card_holdout(artifact, rows)
    if not held:
        raise LabelDataError("No rows fall in the held-out split of these files.",
                             "Pass the labelled files the model was trained from (labels/data/*.jsonl).")
    return held


def training_files(artifact: Artifact, files: Sequence[Path]) -> list[Path]:
    """Those of ``files`` that the artifact was trained from, by file name (the card lists its training
    files, ``data.sources``): evaluated whole, they score the model on rows it learned."""
    trained = {Path(str(source)).name for source in artifact.card.get("data", {}).get("sources", {})}
    return [f for f in files if Path(f).name in trained]


def _refuse_predictions(raw: list[dict[str, Any]], file: Path, artifact: Artifact) -> None:
    """Raise :class:`LabelDataError` for the output of ``callcycle classify`` (every column it adds is
    there): its label columns are a model's own predictions, and scoring them would report ~1.0."""
    columns, added = set().union(*(r.keys() for r in raw[:50])), output_columns(artifact)
    if not set(added) <= columns:
        return
    tasks = [t.name for t in artifact.taxonomy.tasks]
    kept = [f"{name}{CLASH_SUFFIX}" for name in tasks if f"{name}{CLASH_SUFFIX}" in columns]
    where = (f"; the labels your input had are in {' and '.join(kept)}: rename those columns to "
             f"{' and '.join(k[: -len(CLASH_SUFFIX)] for k in kept)} (and drop the model's) to evaluate them"
             if kept else "")
    raise LabelDataError(
        f"{file} is the output of `callcycle classify` (it has the columns {', '.join(added)}): "
        f"its labels are a model's own predictions, and scoring a model against them says nothing{where}.",
        "Evaluate a file of labels people gave (text plus stage and/or talk_action).")


def _columns(raw: list[dict[str, Any]]) -> list[str]:
    """The rows' column names, in order of first appearance."""
    return list(dict.fromkeys(k for r in raw for k in r if k != "_line"))


def _columns_found(raw: list[dict[str, Any]]) -> str:
    """The first columns of ``raw``, quoted, for an error that says what a file has."""
    return ", ".join(repr(c) for c in _columns(raw)[:8])


def _named_columns(raw: list[dict[str, Any]], source: str, columns: dict[str, str | None]) -> None:
    """Copy each row's value of a user-named column into the field callcycle reads (``{"group": "call_id"}``),
    or raise :class:`LabelDataError` when no row has that column."""
    for field, column in columns.items():
        if column is None or column == field:
            continue
        if not any(column in r for r in raw):
            raise LabelDataError(f"{source} has no column {column!r} (found: {_columns_found(raw)}).",
                                 "Pass the name of an existing column.")
        for r in raw:
            if column in r:
                r[field] = r[column]


#: Column names other corpora and tools use for what callcycle reads as ``group``, ``speaker`` and ``text``;
#: one of them stands in when a file lacks callcycle's own name and nobody named a column.
USUAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "group": ("conversation", "conversation_id", "conv_id", "dialogue_id", "dialog_id", "call_id", "meeting_id",
              "session_id", "transcript_id"),
    "speaker": ("speaker_id", "speaker_name", "participant", "participant_id"),
    "text": ("utterance", "sentence", "segment", "transcript", "content", "message"),
}


def usual_columns(raw: list[dict[str, Any]], named: dict[str, str | None]) -> dict[str, str]:
    """``{field: column}`` for each field (``group``, ``speaker``, ``text``) that no one named, that no row
    has under callcycle's name, and that exactly one usual name (:data:`USUAL_COLUMNS`, any case) holds."""
    present = _columns(raw)
    chosen: dict[str, str] = {}
    for field, names in USUAL_COLUMNS.items():
        if named.get(field) not in (None, field) or field in present:
            continue
        matches = [c for c in present if c.lower() in names]
        if len(matches) == 1:
            chosen[field] = matches[0]
    return chosen


def load_evaluation_rows(artifact: Artifact, files: Sequence[Path], holdout: bool = False,
                         conversation: str | None = None, speaker: str | None = None,
                         text: str = DEFAULT_TEXT_COLUMN, guessed: dict[str, str] | None = None) -> list[LabelledRow]:
    """Validated rows of ``files`` for the tasks each file labels; optionally only the held-out split.

    ``conversation``, ``speaker`` and ``text`` name the columns holding each row's conversation
    (default ``group``), speaker and text, for files that call them something else. A file that has none
    of callcycle's names and nobody named has its usual name read instead (``conversation_id``,
    ``utterance``…: :func:`usual_columns`); ``guessed``, when given, receives ``{field: column}`` for those.

    Raises:
        LabelDataError: a file has no rows, or lacks a named column or a text column, or a row is invalid.
    """
    rows: list[LabelledRow] = []
    for file in files:
        raw = read_rows(file)
        if not raw:
            raise LabelDataError(f"{file} has no rows to evaluate.",
                                 "Check the file: JSON Lines with one object per line, or a CSV with a header row.")
        _refuse_predictions(raw, file, artifact)
        named: dict[str, str | None] = {"group": conversation, "speaker": speaker, "text": text}
        usual = usual_columns(raw, named)
        if guessed is not None:
            guessed.update(usual)
        named.update(usual)
        found = _columns_found(raw)  # before the named columns are copied under callcycle's names
        _named_columns(raw, str(file), named)
        if not any("text" in r for r in raw):
            raise LabelDataError(f"{file} has no 'text' column (found: {found}).",
                                 "Name the column that holds the texts with --text.")
        tasks = tuple(t.name for t in artifact.taxonomy.tasks if any(t.name in r for r in raw))
        # a row may carry one label only (real corpora rarely annotate both): it counts for that task
        rows.extend(validate_rows(raw, artifact.taxonomy, str(file), tasks or None, partial=True))
    return holdout_rows(artifact, rows) if holdout else rows


def evaluate_files(models: Path, version: str | None, files: Sequence[Path],
                   holdout: bool = False, in_context: bool = True, conversation: str | None = None,
                   speaker: str | None = None, text: str = DEFAULT_TEXT_COLUMN) -> tuple[Artifact, int, dict[str, Any]]:
    """Load an artifact and evaluate it on labelled files: ``(artifact, rows used, metrics)``.

    Rows of one group (the ``group`` column, or the one ``conversation`` names) are read as a
    conversation (``in_context``) unless told otherwise; see :func:`load_evaluation_rows`. ``metrics``
    has ``columns_read``: ``{field: column}`` for columns read under their usual name (``conversation_id``…).
    """
    artifact = load_artifact(models, version)
    guessed: dict[str, str] = {}
    rows = load_evaluation_rows(artifact, files, holdout, conversation, speaker, text, guessed)
    metrics = evaluate_artifact(artifact, rows, in_context=in_context)
    metrics["learned_rows"] = learned_rows(artifact, rows, training_folders())
    metrics["columns_read"] = guessed
    return artifact, len(rows), metrics


def load_version(models: Path, version: str) -> Artifact:
    """A classifier by version name in ``models``, or by artifact directory (holding ``card.json``)."""
    path = Path(version)
    return load_artifact(path) if path.is_dir() and (path / "card.json").is_file() else load_artifact(models, version)


def compare_versions(models: Path, a: str, b: str, files: Sequence[Path], all_rows: bool = False,
                     conversation: str | None = None) -> dict[str, Any]:
    """Evaluate two versions (names in ``models`` or artifact directories) on the same rows.

    The rows are the fixed held-out split of ``files`` (as :func:`load_evaluation_rows` with
    ``holdout``), or with ``all_rows`` every row (data neither model was trained on). Besides each
    version's metrics, ``paired`` holds per task the difference of macro-F1 (b - a) with a paired 95%
    interval from resampling whole conversations (``conversation`` names their column; default ``group``).
    """
    from pipeline.classify.benchmark import BenchmarkSet
    from pipeline.classify.evaluate import compare_on_sets

    arts = [load_version(models, a), load_version(models, b)]
    held = load_evaluation_rows(arts[0], files, holdout=not all_rows, conversation=conversation)
    paired = compare_on_sets(arts[0], arts[1], [BenchmarkSet("rows", held, list(range(len(held))), True)])
    return {"artifacts": arts, "holdout_rows": len(held), "all_rows": all_rows,
            "learned_rows": {art.version: learned_rows(art, held, training_folders()) for art in arts},
            "a": evaluate_artifact(arts[0], held), "b": evaluate_artifact(arts[1], held),
            "paired": paired["rows"]}
