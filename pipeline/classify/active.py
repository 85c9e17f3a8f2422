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
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.classify.labels import Taxonomy, read_rows, validate_rows
from pipeline.errors import LabelDataError
from pipeline.store.base import OutputLocation, open_store
from pipeline.tables import rows_to_csv, unneutralise

__all__ = ["select_uncertain", "write_for_labelling", "label_studio_config", "import_labels"]


def select_uncertain(out_dir: OutputLocation, n: int = 200) -> list[dict[str, Any]]:
    """The ``n`` least confident segments (distinct texts), most uncertain first."""
    table = open_store(out_dir).read_dataset("segments")
    if table.num_rows == 0:
        raise LabelDataError(f"No scored segments in {out_dir}/segments.", "Run `callcycle run` first.")
    scored: list[tuple[float, dict[str, Any]]] = []
    for row in table.select(["call_key", "call_id", "segment_index", "speaker", "text", "stage", "stage_confidence",
                             "talk_action", "action_prob", "source_sha256"]).to_pylist():
        uncertainty = max(1.0 - row["stage_confidence"], 1.0 - 2.0 * abs(row["action_prob"] - 0.5))
        scored.append((uncertainty, row))
    scored.sort(key=lambda item: (-item[0], item[1]["call_id"], item[1]["segment_index"]))
    picked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for uncertainty, row in scored:
        key = " ".join(row["text"].lower().split())
        if key in seen:
            continue
        seen.add(key)
        uid = hashlib.sha256(f"{row['source_sha256']}:{row['segment_index']}".encode()).hexdigest()[:12]
        picked.append({"id": f"al-{uid}", "text": row["text"], "call_id": row["call_id"], "call_key": row["call_key"],
                       "segment_index": row["segment_index"], "speaker": row["speaker"],
                       "predicted_stage": row["stage"],
                       "predicted_talk_action": row["talk_action"], "uncertainty": round(uncertainty, 4)})
        if len(picked) >= n:
            break
    return picked


def label_studio_config(taxonomy: Taxonomy) -> str:
    """A Label Studio labelling interface with one single-choice block per task."""
    blocks = []
    for task in taxonomy.tasks:
        choices = "".join(f'<Choice value="{label}"/>' for label in task.labels)
        blocks.append(f'  <Header value="{task.name}"/>\n  <Choices name="{task.name}" toName="text" '
                      f'choice="single" required="true">{choices}</Choices>')
    return "<View>\n  <Text name=\"text\" value=\"$text\"/>\n" + "\n".join(blocks) + "\n</View>\n"


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_for_labelling(rows: list[dict[str, Any]], path: Path, taxonomy: Taxonomy) -> Path:
    """Write rows to label: ``.json`` = Label Studio import (plus ``<name>.label_config.xml``), else CSV.

    CSV rows carry empty columns named after each task for the labeller to fill in.
    """
    path = Path(path)
    task_names = [t.name for t in taxonomy.tasks]
    if path.suffix.lower() == ".json":
        stage, ta = taxonomy.by_role("stage"), taxonomy.by_role("talk_action")
        tasks = [{
            "data": {k: v for k, v in row.items()},
            "predictions": [{"model_version": "callcycle", "score": 1 - row["uncertainty"], "result": [
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


def _from_label_studio(data: Any, source: Path) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise LabelDataError(f"{source}: a Label Studio export is a JSON list of tasks.", "Export as JSON.")
    rows = []
    for i, task in enumerate(data):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise LabelDataError(f"{source}: task {i} has no 'data' object.", "Export as JSON from Label Studio.")
        row = {**task["data"], "_line": f"task {i + 1}"}  # where errors point: the task's place in the list
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if annotations:
            for result in annotations[-1].get("result", []):
                choices = result.get("value", {}).get("choices", [])
                if result.get("from_name") and choices:
                    row[result["from_name"]] = choices[0]
        rows.append(row)
    return rows


def _refuse_neutral_action(raw: list[dict[str, Any]], taxonomy: Taxonomy, source: Path) -> None:
    """Rows that break :meth:`Taxonomy.talk_action_given_stage` (``other`` is never ``action``)."""
    stage, ta = taxonomy.by_role("stage"), taxonomy.by_role("talk_action")
    bad = []
    for n, r in enumerate(raw, start=1):
        given_stage, given_ta = stage.label_for(r.get(stage.name)), ta.label_for(r.get(ta.name))
        if given_stage is None or given_ta is None:  # unknown or missing labels: validate_rows says so
            continue
        if taxonomy.talk_action_given_stage(given_stage, given_ta) != given_ta:
            bad.append(f"{source}:{r.get('_line', n)}")
    if bad:
        raise LabelDataError(f"{len(bad)} row(s) labelled {stage.neutral!r} and {ta.positive!r}: "
                             + ", ".join(bad[:20]) + ("" if len(bad) <= 20 else f" and {len(bad) - 20} more") + ".",
                             f"A segment outside the cycle ({stage.neutral}) is never {ta.positive}; "
                             "fix these rows, nothing was merged.")


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
    _refuse_neutral_action(raw, taxonomy, source)
    rows = validate_rows(raw, taxonomy, str(source))
    known: set[str] = set()
    for path in existing or []:
        known.update(str(r.get("id")) for r in read_rows(path))
    clashes = sorted({r.id for r in rows} & known)
    if clashes:
        raise LabelDataError(f"{len(clashes)} id(s) already in the labelled data: {clashes[:10]}.",
                             "Nothing was merged. Drop rows that were imported before, or give them new ids.")
    task_names = [t.name for t in taxonomy.tasks]
    lines = []
    for row in rows:
        record = {"id": row.id, "text": row.text, **row.labels, "group": row.group,
                  **{k: v for k, v in row.meta.items() if k not in {"uncertainty", "predicted_stage",
                                                                     "predicted_talk_action", *task_names}},
                  "origin": "active-learning import"}
        lines.append(json.dumps(record, ensure_ascii=False))
    target = Path(target)
    previous = target.read_text(encoding="utf-8") if target.exists() else ""
    if previous and not previous.endswith("\n"):
        previous += "\n"
    _atomic_text(target, previous + "\n".join(lines) + "\n")
    return len(rows)
