"""Labelled rows checked against the taxonomy, and the corpus-level tools of training.

The taxonomy itself (:mod:`pipeline.taxonomy`), labelled-data files and the held-out rule
(:mod:`pipeline.corpus`) live in early modules every stage may import; their names are
re-exported here for the code that trains and evaluates the classifiers.
Labelled rows live in JSON Lines (or CSV) files with at least ``id``, ``text`` and one
column per task; ``group`` (conversation or template id) keeps related rows together in
cross-validation and in the fixed held-out split.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.corpus import HOLDOUT_PERCENT, is_holdout, read_rows, split_key
from pipeline.errors import LabelDataError, TaxonomyError
from pipeline.ingest.transcripts import MAX_TURN_CHARS
from pipeline.taxonomy import Task, Taxonomy, load_taxonomy

__all__ = [
    "Task",
    "Taxonomy",
    "LabelledRow",
    "load_taxonomy",
    "read_rows",
    "load_labelled",
    "validate_rows",
    "data_hash",
    "is_holdout",
    "split_key",
    "normalise_text",
    "SHORT_REPLY_WORDS",
    "find_near_duplicates",
    "drop_near_duplicates",
    "near_duplicates_dropped",
    "HOLDOUT_PERCENT",
]

@dataclass(frozen=True, slots=True)
class LabelledRow:
    """One labelled text with provenance.

    Attributes:
        id: unique id.
        text: the segment text.
        labels: task name -> label.
        group: conversation/template id; rows of one group never straddle a split.
        source: the file the row came from.
        meta: every other column (situation, style, speaker_role, origin ...).
        speaker: who said it (``speaker``, else ``speaker_role``; "" when unknown): used to
            tell whether a neighbouring segment is the same speaker.
        corpus: where the text comes from (the row's ``source`` field: ``ami`` ...;
            ``written`` for the project's hand-written corpus). Rows of one group are one
            conversation, in file order.
    """

    id: str
    text: str
    labels: dict[str, str]
    group: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    speaker: str = ""
    corpus: str = "written"

    @property
    def split_group(self) -> str:
        """The unit the held-out split is drawn by (see :func:`split_key`)."""
        return split_key(self.corpus, self.group)


def _neutral_and_positive(taxonomy: Taxonomy, labels: dict[str, str]) -> tuple[str, str] | None:
    """``(stage, talk/action)`` when ``labels`` break :meth:`Taxonomy.talk_action_given_stage`."""
    try:
        stage, ta = taxonomy.by_role("stage"), taxonomy.by_role("talk_action")
    except TaxonomyError:  # a taxonomy without the two roles has no such rule
        return None
    given_stage, given_ta = labels.get(stage.name), labels.get(ta.name)
    if given_stage is None or given_ta is None:
        return None
    if taxonomy.talk_action_given_stage(given_stage, given_ta) != given_ta:
        return given_stage, given_ta
    return None


def validate_rows(raw: list[dict[str, Any]], taxonomy: Taxonomy, source: str,
                  tasks: tuple[str, ...] | None = None, partial: bool = False,
                  at_least_one: bool = False) -> list[LabelledRow]:
    """Check raw rows against the taxonomy; collect every problem before failing.

    With ``partial``, a row may leave any task unlabelled (``null`` or absent): real corpora
    rarely annotate both dimensions, and an unlabelled row still gives its neighbours context.
    With ``at_least_one`` too, a row must carry one label at least (hand-labelled files: a row with
    none is a row someone forgot).

    A label written in another case or with spaces around it ("Action", " ACT ") is read as the
    taxonomy's label it can only mean.

    Raises:
        LabelDataError: listing (up to 20) problems: missing or empty text, unknown labels,
            duplicate ids.
    """
    wanted = tasks or tuple(t.name for t in taxonomy.tasks)
    problems: list[tuple[int, str]] = []  # (line in the file, what is wrong)
    rows: list[LabelledRow] = []
    seen: set[str] = set()
    for n, obj in enumerate(raw, start=1):
        line = obj.get("_line", n)
        where, at = f"{source}:{line}", line if isinstance(line, int) else 0  # rows may be in call order
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append((at, f"{where}: empty or missing 'text'"))
            continue
        if len(text) > MAX_TURN_CHARS:  # the limit classify and transcripts have (spaCy stops at 1,000,000)
            problems.append((at, f"{where}: a text of {len(text):,} characters (the limit is {MAX_TURN_CHARS:,}: "
                                 "one utterance per row)"))
            continue
        row_id = str(obj.get("id") or f"{Path(source).stem}-{n}")
        if row_id in seen:
            problems.append((at, f"{where}: duplicate id {row_id!r}"))
            continue
        seen.add(row_id)
        labels: dict[str, str] = {}
        before = len(problems)
        for task_name in wanted:
            task = taxonomy.task(task_name)
            value = obj.get(task_name)
            if (value is None or value == "") and partial:
                continue
            if value is None or value == "":
                problems.append((at, f"{where}: missing label for {task_name!r}"))
                continue
            label = task.label_for(value)  # "Action", " ACT ": the same label in another case or with spaces
            if label is None:
                problems.append((at, f"{where}: unknown {task_name} label {value!r} "
                                     f"(allowed: {', '.join(task.labels)})"))
                continue
            labels[task_name] = label
        if at_least_one and not labels and len(problems) == before:
            problems.append((at, f"{where}: no label at all (give {' or '.join(repr(t) for t in wanted)})"))
            continue
        broken = _neutral_and_positive(taxonomy, labels)
        if broken:
            problems.append((at, f"{where}: labelled {broken[0]!r} and {broken[1]!r}, but a segment outside the "
                                 f"cycle ({broken[0]}) is never {broken[1]}"))
            continue
        meta = {k: v for k, v in obj.items() if k not in {"id", "text", "group", "_line", *wanted}}
        rows.append(LabelledRow(id=row_id, text=text.strip(), labels=labels,
                                group=str(obj.get("group") or row_id), source=source, meta=meta,
                                speaker=str(obj.get("speaker") or obj.get("speaker_role") or ""),
                                corpus=str(obj.get("source") or "written")))
    if problems:
        problems.sort(key=lambda p: p[0])  # in file order (stable: several problems of a line stay in order)
        shown = "\n  ".join(message for _, message in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more." if len(problems) > 20 else ""
        raise LabelDataError(f"{len(problems)} problem(s) in labelled data:\n  {shown}{more}",
                             "Fix these rows; nothing was loaded.")
    return rows


def load_labelled(paths: list[Path], taxonomy: Taxonomy, partial: bool = False,
                  at_least_one: bool = False) -> list[LabelledRow]:
    """Load and validate labelled files (JSONL, JSONL.gz or CSV); ids must be unique across files.

    ``partial`` accepts rows that leave tasks unlabelled, ``at_least_one`` only those that carry one label
    (see :func:`validate_rows`).
    """
    rows: list[LabelledRow] = []
    for path in paths:
        rows.extend(validate_rows(read_rows(path), taxonomy, str(path), partial=partial, at_least_one=at_least_one))
    ids = [r.id for r in rows]
    if len(ids) != len(set(ids)):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:10]
        raise LabelDataError(f"Duplicate ids across files: {dupes}.", "Give every row a unique id.")
    return rows


def data_hash(rows: list[LabelledRow]) -> str:
    """sha256 over ids, texts and labels in id order: identifies the training data."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: r.id):
        digest.update(json.dumps([row.id, row.text, sorted(row.labels.items()), row.group]).encode())
    return digest.hexdigest()


_FILLERS = re.compile(r"\b(um+|uh+|erm|er|ah|like|you know|i mean|so yeah|yeah)\b")
_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise_text(text: str) -> str:
    """Lower case, no punctuation or fillers, single spaces: used to spot near-duplicates."""
    lowered = _NON_WORD.sub(" ", text.lower())
    return " ".join(_FILLERS.sub(" ", lowered).split())


#: A written row of at most this many words (after :func:`normalise_text`) is a short reply ("sure", "that
#: works", "fine by me"): what it does depends on the turn before it.
SHORT_REPLY_WORDS = 4


def _previous_in_conversation(rows: list[LabelledRow]) -> list[int]:
    """Index of each row's previous row in the same file and conversation (``group``), ``-1`` where none."""
    return [i - 1 if i > 0 and rows[i - 1].group == row.group and rows[i - 1].source == row.source else -1
            for i, row in enumerate(rows)]


def find_near_duplicates(rows: list[LabelledRow], threshold: float = 0.9,
                         short_in_context: bool = False) -> list[tuple[int, int, float]]:
    """Pairs ``(kept, dropped, similarity)`` of rows whose normalised texts are near-identical.

    Similarity is the cosine of character 3–5-gram TF-IDF vectors of the normalised text;
    each row is compared with every earlier row and the later one of a pair is dropped.

    With ``short_in_context``, a short reply (at most :data:`SHORT_REPLY_WORDS` words) is a
    near-duplicate only of another short reply that follows a near-identical turn: "that works"
    after a proposal and "that works" after a status report are different examples (act/action
    and other/talk), and dropping every repeat of the words dropped the contrast the context
    level learns from. Short replies and longer rows are then never paired.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(rows) < 2:
        return []
    texts = [normalise_text(r.text) or r.text.lower() for r in rows]
    short = [short_in_context and len(text.split()) <= SHORT_REPLY_WORDS for text in texts]
    if short_in_context:
        previous = _previous_in_conversation(rows)
        texts = [f"{texts[p] if p >= 0 else ''} | {text}" if is_short else text
                 for text, is_short, p in zip(texts, short, previous)]
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform(texts)
    pairs: list[tuple[int, int, float]] = []
    dropped: set[int] = set()
    block = 1024
    for begin in range(0, len(rows), block):
        sims = (matrix[begin : begin + block] @ matrix.T).tocoo()
        # nearly every pair shares some 3-grams: pick the few similar enough, earlier row first, in one
        # array step (the same pairs in the same order as testing each one: 17 s -> 3 s on 8,000 written rows)
        close = (sims.data >= threshold) & (sims.col < sims.row + begin)
        for i, j, value in zip(sims.row[close], sims.col[close], sims.data[close]):
            a = begin + int(i)
            b = int(j)
            if a not in dropped and b not in dropped and short[a] == short[b]:
                dropped.add(a)
                pairs.append((b, a, float(value)))
    return pairs


def drop_near_duplicates(rows: list[LabelledRow], threshold: float = 0.9,
                         short_in_context: bool = False) -> tuple[list[LabelledRow], int]:
    """``(rows without the later row of each near-duplicate pair, how many were dropped)``
    (:func:`find_near_duplicates`)."""
    kept, dropped, _conflicts = near_duplicates_dropped(rows, threshold, short_in_context)
    return kept, dropped


def near_duplicates_dropped(rows: list[LabelledRow], threshold: float = 0.9, short_in_context: bool = False
                            ) -> tuple[list[LabelledRow], int, list[tuple[LabelledRow, LabelledRow]]]:
    """:func:`drop_near_duplicates`, and the pairs whose dropped row was labelled otherwise than the row kept
    ("Sure, send it over." act/action in one file, align/talk in another): the kept row's labels win, and
    the conflict is reported rather than resolved in silence."""
    pairs = find_near_duplicates(rows, threshold, short_in_context)
    dropped = {b for _a, b, _s in pairs}
    conflicts = [(rows[a], rows[b]) for a, b, _s in pairs
                 if any(rows[a].labels.get(t) not in (None, v) for t, v in rows[b].labels.items())]
    return [r for i, r in enumerate(rows) if i not in dropped], len(dropped), conflicts
