"""The real-speech benchmark: how the classifiers do on conversations nobody here wrote.

A held-out split of our own written corpus flatters us; real conversations and other
people's phrasing are the test. This module defines the benchmark's sources and their
label mappings in one place, and evaluates an artifact on each, per source:

- **AMI meetings, held-out series** (``labels/external/ami.jsonl.gz``, CC BY 4.0): real,
  disfluent four-person meeting speech, classified *in context* (every dialogue act of the
  held-out stretch, in order). Two views:

  - ``hand-labelled``: acts annotated against our taxonomy in context (both labels);
  - ``actions vs statements``: the hand-labelled actions against plain statements and
    opinions of six or more words (AMI ``inf``/``ass`` acts, hand-labelled or mapped to talk)
    — the shape of a dialogue-act-mapped test set.

  Each view is also scored *one act at a time* (no neighbours): the shape of a list of
  utterances given to ``callcycle classify`` without a conversation column.

- **Enron email intent** (``../shared/realdata/text``, Apache-2.0, evaluation only): business
  email sentences; ``Yes`` (a request, proposal, or commitment with a time) -> action.
- **PersuasionForGood** (same folder, Apache-2.0, evaluation only): two-person chats in order;
  donation asks, agreements, refusals and amounts -> action / act; greetings -> other.

The shared real-data folder is not part of the repository: its sources are skipped with a
reason when it is absent.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.classify.labels import LabelledRow

__all__ = ["BenchmarkSet", "ami_views", "enron_rows", "persuasion_rows", "realdata_sets",
           "STATEMENT_TAGS", "MIN_STATEMENT_WORDS", "ONE_AT_A_TIME"]

#: Dialogue-act tags of plain statements and opinions (AMI Inform, Assess).
STATEMENT_TAGS = frozenset({"inf", "ass"})
#: Shorter statements ("yeah it is") are left out of the actions-vs-statements view.
MIN_STATEMENT_WORDS = 6
#: Suffix of the views that classify each scored act on its own.
ONE_AT_A_TIME = "(one act at a time)"

_P4G_ACTION_PERSUADER = {"proposition-of-donation", "ask-donation-amount", "ask-donate-more", "confirm-donation"}
_P4G_ACTION_PERSUADEE = {"agree-donation", "provide-donation-amount", "disagree-donation",
                         "disagree-donation-more", "confirm-donation"}
_P4G_OTHER = {"greeting", "thank", "closing", "off-task", "you-are-welcome"}


@dataclass(frozen=True, slots=True)
class BenchmarkSet:
    """One evaluation source: rows in conversation order and which of them are scored.

    Attributes:
        name: shown in reports.
        rows: every row, in order (unscored rows are context).
        scored: indices of the rows whose labels are scored.
        in_context: classify rows with their neighbours (conversations) or one at a time.
    """

    name: str
    rows: list[LabelledRow]
    scored: list[int]
    in_context: bool


def ami_views(rows: Sequence[LabelledRow], prefix: str = "AMI held-out",
              one_at_a_time: bool = True) -> list[BenchmarkSet]:
    """The AMI views over held-out rows (see the module docstring): each in context, and with
    ``one_at_a_time`` also each scored act classified on its own."""
    rows = list(rows)
    hand = [i for i, r in enumerate(rows) if r.meta.get("label_source") == "hand" and r.labels]
    statements = [
        i for i, r in enumerate(rows)
        if r.labels.get("talk_action") == "action" and r.meta.get("label_source") == "hand"
        or (r.labels.get("talk_action") == "talk" and r.meta.get("da_type") in STATEMENT_TAGS
            and len(r.text.split()) >= MIN_STATEMENT_WORDS)
    ]
    views = [BenchmarkSet(f"{prefix}: hand-labelled", rows, hand, True),
             BenchmarkSet(f"{prefix}: actions vs statements of {MIN_STATEMENT_WORDS}+ words", rows,
                          statements, True)]
    if not one_at_a_time:
        return views
    for view in list(views):
        alone = [rows[i] for i in view.scored]
        views.append(BenchmarkSet(f"{view.name} {ONE_AT_A_TIME}", alone, list(range(len(alone))), False))
    return views


def enron_rows(path: Path) -> list[LabelledRow]:
    """Enron email intent sentences: ``Yes`` -> action, ``No`` -> talk (talk/action only)."""
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()):
        label, _, text = line.partition("\t")
        if text.strip() and label in {"Yes", "No"}:
            rows.append(LabelledRow(id=f"enron-{i}", text=text.strip(),
                                    labels={"talk_action": "action" if label == "Yes" else "talk"},
                                    group=f"enron-{i}", source=str(path), corpus="enron"))
    return rows


def persuasion_rows(path: Path) -> list[LabelledRow]:
    """PersuasionForGood sentences in dialogue order, with the mapping in the module docstring."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for i, rec in enumerate(csv.DictReader(handle)):
            text = (rec.get("Unit") or "").strip()
            if not text:
                continue
            persuader = rec.get("B4") == "0"
            label = rec.get("er_label_1") if persuader else rec.get("ee_label_1")
            labels: dict[str, str] = {}
            if label:
                action = label in (_P4G_ACTION_PERSUADER if persuader else _P4G_ACTION_PERSUADEE)
                labels = {"talk_action": "action" if action else "talk"}
                if label in _P4G_OTHER:
                    labels = {"stage": "other", "talk_action": "talk"}
                elif action:
                    labels["stage"] = "act"
            rows.append(LabelledRow(id=f"p4g-{i}", text=text, labels=labels, group=str(rec.get("B2", "")),
                                    source=str(path), speaker="persuader" if persuader else "persuadee",
                                    corpus="persuasionforgood"))
    return rows


def realdata_sets(folder: Path | None) -> tuple[list[BenchmarkSet], list[str]]:
    """The shared real-text sources, and a reason per source that could not be read."""
    sets: list[BenchmarkSet] = []
    skipped: list[str] = []
    if folder is None or not Path(folder).is_dir():
        return sets, [f"real-data text folder {folder} not found: Enron and PersuasionForGood skipped"]
    enron = Path(folder) / "enron-email-intent" / "testSet-qualifiedBatch-fixed.txt"
    p4g = Path(folder) / "persuasionforgood" / "300_dialog.csv"
    if enron.is_file():
        rows = enron_rows(enron)
        sets.append(BenchmarkSet("Enron email intent (test file, one sentence at a time)", rows,
                                 list(range(len(rows))), False))
    else:
        skipped.append(f"{enron} not found")
    if p4g.is_file():
        rows = persuasion_rows(p4g)
        sets.append(BenchmarkSet("PersuasionForGood (chats, in context)", rows,
                                 [i for i, r in enumerate(rows) if r.labels], True))
    else:
        skipped.append(f"{p4g} not found")
    return sets, skipped


def summarise(metrics: dict[str, Any]) -> dict[str, float]:
    """Task -> macro-F1, for compact tables."""
    return {task: float(m["macro_f1"]) for task, m in metrics.items()}
