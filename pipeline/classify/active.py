"""Active learning: pick the segments the models are least sure about, and merge labels back.

``select_uncertain`` reads scored ``segments`` and ranks them by uncertainty (the larger of
``1 - stage confidence`` and ``1 - 2·|action_prob - 0.5|``); ``write_for_labelling`` writes
them as CSV or as a Label Studio JSON import (tasks with the models' guesses as
predictions); ``import_labels`` validates labelled rows (CSV, JSONL or a Label Studio JSON
export) against the taxonomy and appends them to a labelled-data file — all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from pipeline.atomic import exclusive_lock, write_bytes_atomic
from pipeline.classify.labels import Taxonomy, read_rows, validate_rows
from pipeline.errors import LabelDataError
from pipeline.store.base import OutputLocation, open_store
from pipeline.tables import rows_to_csv, unneutralise

logger = logging.getLogger("callcycle.active")

__all__ = ["CONTEXT_COLUMNS", "select_uncertain", "write_for_labelling", "label_studio_config", "import_labels",
           "labelled_ids"]


#: Segments shown before and after the one to label (the guidelines label by context: "Go for it." is
#: an acceptance after an offer, floor management after "mind if I share my screen?").
CONTEXT_BEFORE, CONTEXT_AFTER = 2, 1
#: Columns of an export that only help the labeller; they are not kept in the labelled data.
CONTEXT_COLUMNS = ("context_before", "context_after")


def _said(row: dict[str, Any]) -> str:
    return f"{row['speaker']}: {row['text']}" if row.get("speaker") else str(row["text"])


def select_uncertain(out_dir: OutputLocation, n: int = 200, labelled_ids: set[str] | None = None,
                     ) -> list[dict[str, Any]]:
    """The ``n`` least confident segments (distinct texts), most uncertain first.

    Each comes with the segments around it in its call (``context_before``: the
    :data:`CONTEXT_BEFORE` previous ones, ``context_after``: the next, as ``speaker: text``
    joined by `` / ``). Segments whose export id is in ``labelled_ids`` (labelled in an earlier
    round) are passed over.
    """
    table = open_store(out_dir).read_dataset("segments")
    if table.num_rows == 0:
        raise LabelDataError(f"No scored segments in {out_dir}/segments.", "Run `callcycle run` first.")
    scored: list[tuple[float, dict[str, Any]]] = []
    by_call: dict[str, dict[int, dict[str, Any]]] = {}
    for row in table.select(["call_key", "call_id", "segment_index", "speaker", "text", "stage", "stage_confidence",
                             "talk_action", "action_prob", "source_sha256"]).to_pylist():
        uncertainty = max(1.0 - row["stage_confidence"], 1.0 - 2.0 * abs(row["action_prob"] - 0.5))
        scored.append((uncertainty, row))
        by_call.setdefault(row["call_key"], {})[row["segment_index"]] = row
    scored.sort(key=lambda item: (-item[0], item[1]["call_id"], item[1]["segment_index"]))
    picked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for uncertainty, row in scored:
        key = " ".join(row["text"].lower().split())
        if key in seen:
            continue
        seen.add(key)  # a text labelled before is not exported again, under another segment either
        digest = hashlib.sha256(f"{row['source_sha256']}:{row['segment_index']}".encode()).hexdigest()
        uid = f"al-{digest[:12]}"
        if labelled_ids and uid in labelled_ids:
            continue
        call, at = by_call[row["call_key"]], row["segment_index"]
        before = [call[i] for i in range(at - CONTEXT_BEFORE, at) if i in call]
        after = [call[i] for i in range(at + 1, at + 1 + CONTEXT_AFTER) if i in call]
        picked.append({"id": uid, "text": row["text"], "call_id": row["call_id"], "call_key": row["call_key"],
                       "segment_index": row["segment_index"], "speaker": row["speaker"],
                       "context_before": " / ".join(_said(r) for r in before),
                       "context_after": " / ".join(_said(r) for r in after),
                       "predicted_stage": row["stage"],
                       "predicted_talk_action": row["talk_action"], "uncertainty": round(uncertainty, 4)})
        if len(picked) >= n:
            break
    return picked


def labelled_ids(files: list[Path]) -> set[str]:
    """Ids of the rows in labelled-data files (unreadable files are the caller's to report)."""
    ids: set[str] = set()
    for path in files:
        ids.update(str(r.get("id")) for r in read_rows(path) if r.get("id") is not None)
    return ids


def label_studio_config(taxonomy: Taxonomy) -> str:
    """A Label Studio labelling interface with one single-choice block per task."""
    blocks = []
    for task in taxonomy.tasks:
        choices = "".join(f'<Choice value="{label}"/>' for label in task.labels)
        blocks.append(f'  <Header value="{task.name}"/>\n  <Choices name="{task.name}" toName="text" '
                      f'choice="single" required="true">{choices}</Choices>')
    context = ('  <Header value="before (context)" size="6"/>\n'
               '  <Text name="context_before" value="$context_before"/>\n'
               '  <Header value="to label" size="5"/>\n  <Text name="text" value="$text"/>\n'
               '  <Header value="after (context)" size="6"/>\n'
               '  <Text name="context_after" value="$context_after"/>\n')
    return "<View>\n" + context + "\n".join(blocks) + "\n</View>\n"


def _atomic_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` complete or not at all (:func:`pipeline.atomic.write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_for_labelling(rows: list[dict[str, Any]], path: Path, taxonomy: Taxonomy,
                        model_version: str = "callcycle") -> Path:
    """Write rows to label: ``.json`` = Label Studio import (plus ``<name>.label_config.xml``), else CSV.

    CSV rows carry empty columns named after each task for the labeller to fill in.
    """
    path = Path(path)
    task_names = [t.name for t in taxonomy.tasks]
    if path.suffix.lower() == ".json":
        stage, ta = taxonomy.by_role("stage"), taxonomy.by_role("talk_action")
        tasks = [{
            "data": {k: v for k, v in row.items()},
            "predictions": [{"model_version": model_version, "score": 1 - row["uncertainty"], "result": [
                {"from_name": stage.name, "to_name": "text", "type": "choices",
                 "value": {"choices": [row["predicted_stage"]]}},
                {"from_name": ta.name, "to_name": "text", "type": "choices",
                 "value": {"choices": [row["predicted_talk_action"]]}},
            ]}],
        } for row in rows]
        _atomic_text(path, json.dumps(tasks, indent=2, ensure_ascii=False))
        _atomic_text(path.with_suffix(".label_config.xml"), label_studio_config(taxonomy))
        return path
    fields = list(rows[0].keys()) + task_names if rows else ["id", "text", *task_names]
    # spreadsheet-safe: a segment saying "=HYPERLINK(...)" must not become a live formula
    _atomic_text(path, rows_to_csv([{**row, **dict.fromkeys(task_names, "")} for row in rows], fields))
    return path


#: Columns of an export that import reads by name, besides the taxonomy's tasks.
_READ_COLUMNS = ("id", "text", "group", "call_key", "call_id", "segment_index", "index", "speaker")


def _canonical_columns(raw: list[dict[str, Any]], taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Rows whose column names differ from the ones import reads only in case or spaces ("Stage",
    " Talk_Action ", as a spreadsheet user may retype a header) renamed to them; a name the row already
    has as written is left alone."""
    known = {name.casefold(): name for name in (*(t.name for t in taxonomy.tasks), *_READ_COLUMNS)}
    out = []
    for row in raw:
        renamed: dict[str, Any] = {}
        for key, value in row.items():
            name = known.get(str(key).strip().casefold(), key)
            renamed[name if name == key or (name not in row and name not in renamed) else key] = value
        out.append(renamed)
    return out


def _labelled_only(raw: list[dict[str, Any]], taxonomy: Taxonomy, source: Path) -> list[dict[str, Any]]:
    """Leave out rows whose every task column is blank (exported, not labelled yet), with a warning,
    as tasks nobody annotated in Label Studio are; a row labelled for one task only stays (an error)."""
    tasks = [t.name for t in taxonomy.tasks]
    kept = [r for r in raw if any(str(r.get(t) or "").strip() for t in tasks)]
    if len(kept) < len(raw):
        if not kept:
            raise LabelDataError(f"{source}: no row has a label yet ({', '.join(tasks)} are blank in every row).",
                                 "Fill in the label columns, then import.")
        logger.warning("%s: %d row(s) with no label yet left out (label them to import them)",
                       source, len(raw) - len(kept))
    return kept


def _from_label_studio(data: Any, source: Path) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise LabelDataError(f"{source}: a Label Studio export is a JSON list of tasks.", "Export as JSON.")
    rows, unannotated, disagreements = [], 0, []
    for i, task in enumerate(data):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise LabelDataError(f"{source}: task {i + 1} has no 'data' object.", "Export as JSON from Label Studio.")
        # where errors point: the task's id in Label Studio (what its search finds), else its place in the list
        name = f"task {task['id']}" if isinstance(task.get("id"), (int, str)) and str(task["id"]).strip() \
            else f"task {i + 1} of the list"
        row = {**task["data"], "_line": name}
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if not annotations:  # not labelled yet in Label Studio: nothing to import from it
            unannotated += 1
            continue
        choices_by_annotator = []
        for annotation in annotations:
            picked = {}
            for result in annotation.get("result", []):
                choices = result.get("value", {}).get("choices", [])
                if result.get("from_name") and choices:
                    picked[result["from_name"]] = choices[0]
            choices_by_annotator.append(picked)
        if any(c != choices_by_annotator[0] for c in choices_by_annotator[1:]):
            disagreements.append(f"{name} (" + " vs ".join("/".join(c.values()) for c in choices_by_annotator)
                                 + ")")
            continue
        rows.append({**row, **choices_by_annotator[0]})
    if disagreements:
        raise LabelDataError(f"{source}: annotators disagree on {len(disagreements)} task(s): "
                             + ", ".join(disagreements[:10]) + ("." if len(disagreements) <= 10 else " ..."),
                             "Settle each in Label Studio (keep one annotation, or cancel the others), export "
                             "again; nothing was merged.")
    if unannotated:
        logger.warning("%s: %d task(s) without annotations left out (label them in Label Studio to import them)",
                       source, unannotated)
    if not rows:
        raise LabelDataError(f"{source}: no task has an annotation.", "Label the tasks in Label Studio, then export.")
    return rows


def import_labels(source: Path, taxonomy: Taxonomy, target: Path,
                  existing: list[Path] | None = None) -> int:
    """Validate labelled rows and append them to ``target`` (JSONL); returns rows merged.

    Rows must have an id, a non-empty text and a valid label for every task; ids must be
    unique within the file and across ``existing`` labelled files. Any problem raises
    :class:`LabelDataError` listing them, and nothing is written.
    """
    source = Path(source)
    data: Any = None
    if source.suffix.lower() == ".json":
        try:
            data = json.loads(source.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LabelDataError(f"{source}: not valid JSON ({exc}).", "Export as JSON from Label Studio.") from exc
    if isinstance(data, list) and any(isinstance(task, dict) and "data" in task for task in data):
        raw = _from_label_studio(data, source)  # a Label Studio export: tasks with data and annotations
    elif isinstance(data, list):  # a plain array of labelled rows
        raw = [{k: unneutralise(v) for k, v in r.items()} for r in read_rows(source)]
    elif data is not None:
        raise LabelDataError(f"{source}: a .json file must be a Label Studio export or an array of rows.",
                             "Export as JSON from Label Studio, or give one labelled row per array item.")
    else:
        raw = [{k: unneutralise(v) for k, v in r.items()} for r in read_rows(source)]
    raw = _labelled_only(_canonical_columns(raw, taxonomy), taxonomy, source)
    missing_ids = [i + 1 for i, r in enumerate(raw) if not str(r.get("id") or "").strip()]
    if missing_ids:
        raise LabelDataError(f"{source}: rows {missing_ids[:10]} have no id.", "Keep the id column from the export.")
    # a segment's conversation is its call: held-out splits and the context level group rows by it; its
    # position in the call (segment_index, as exported) becomes the row's index, so that training reads
    # only truly consecutive segments as neighbours (rows_to_utterances), and rows are written in call order
    for r in raw:
        if not r.get("group") and (r.get("call_key") or r.get("call_id")):
            # the call's version key where exported (two calls may share a name), else its name
            r["group"] = f"call:{r.get('call_key') or r['call_id']}"
        position = r.pop("segment_index", None) if "index" not in r else None
        if position is not None and str(position).strip():
            try:
                number = float(str(position).strip())
            except ValueError:
                number = -1.0
            if number < 0 or number != int(number):
                raise LabelDataError(f"{source}: row {r.get('id')!r} has segment_index {position!r}, "
                                     "not a whole number.", "Keep the segment_index column as exported.")
            r["index"] = int(number)
    raw.sort(key=lambda r: (str(r.get("group") or ""), r["index"] if isinstance(r.get("index"), int) else -1))
    rows = validate_rows(raw, taxonomy, str(source))
    known = labelled_ids(list(existing or []))
    clashes = sorted({r.id for r in rows} & known)
    if clashes:
        raise LabelDataError(f"{len(clashes)} id(s) already in the labelled data: {clashes[:10]}.",
                             "Nothing was merged. Drop rows that were imported before, or give them new ids.")
    task_names = [t.name for t in taxonomy.tasks]
    lines = []
    for row in rows:
        record = {"id": row.id, "text": row.text, **row.labels, "group": row.group,
                  **{k: v for k, v in row.meta.items() if k not in {"uncertainty", "predicted_stage",
                                                                     "predicted_talk_action", *CONTEXT_COLUMNS,
                                                                     *task_names}},
                  "origin": row.meta.get("origin") or "active-learning import"}
        lines.append(json.dumps(record, ensure_ascii=False))
    target = Path(target)
    # two imports at once take turns: each appends to what the other wrote, and ids stay unique; the lock lies
    # beside the file, so two users or containers (each with its own cache folder) share it too
    lock = target.parent / f".{target.name}.lock"
    with exclusive_lock(lock):
        previous = target.read_text(encoding="utf-8") if target.exists() else ""
        clashes = sorted({r.id for r in rows} & labelled_ids([target])) if previous else []
        if clashes:
            raise LabelDataError(f"{len(clashes)} id(s) already in {target.name}: {clashes[:10]}.",
                                 "Nothing was merged. Drop rows that were imported before, or give them new ids.")
        if previous and not previous.endswith("\n"):
            previous += "\n"
        _atomic_text(target, previous + "\n".join(lines) + "\n")
    return len(rows)
