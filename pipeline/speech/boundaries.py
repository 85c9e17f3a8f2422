"""Sentence ends in speech transcribed without punctuation, learned.

A segment is one sentence of a turn. Whisper punctuates, and most transcript exports keep its
punctuation; but many recognisers and caption tracks do not (lower-case word streams such as
``okay thank you could you read me the serial number on the back``), and there the sentencizer sees
one sentence per turn: a request, an acceptance and a story end up in one segment with one label.

The boundary model decides, between every two words of a turn that has no sentence punctuation at
all, whether a new sentence starts there: a logistic regression over the words around the gap
(the two words before and after it, the pairs they form) and how far the gap is from the turn's
start and end. It is trained on speech-like text whose sentence ends are known, with the punctuation
taken away: the written corpus (``labels/data``, read in runs of one to four consecutive rows, each
row split into sentences at its punctuation) and the AMI meeting corpus's dialogue acts
(``labels/external/ami.jsonl.gz``: a speaker's consecutive acts as one turn, each act end a
sentence end) — real meeting speech with its fillers and restarts. Conversations held out by the
project's one held-out rule (:func:`pipeline.classify.labels.is_holdout`) are never trained on; the
card reports how well the model finds their sentence ends.

The artifact (``models/boundaries/``) is data only: ``boundaries.json`` holds the feature weights,
read with :mod:`json`; ``card.json`` its checksum, training data hash and measured results;
``card.md`` the same for people. Train it with ``python scripts/train_boundaries.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.modelfiles import checked_model_files, write_model_files

__all__ = [
    "BoundaryModel",
    "Turn",
    "SENTENCE_PUNCTUATION",
    "is_unpunctuated",
    "word_spans",
    "gap_features",
    "corpus_turns",
    "corpus_chunks",
    "THRESHOLD",
    "ami_turns",
    "fit_boundary_model",
    "score_boundaries",
    "save_boundary_model",
    "load_boundary_model",
    "check_boundary_model",
    "default_boundary_model_dir",
    "train_boundary_model",
    "card_markdown",
]

FORMAT = "callcycle-boundary-model/1"
MODEL_FILE = "boundaries.json"

#: Characters that end a sentence; a turn with none of them is read by the boundary model.
#: Marks that end a sentence, in Latin and other scripts (Devanagari danda, Arabic and Urdu question mark and
#: full stop, Armenian, Ethiopic, CJK full-width forms…): a turn holding one is split at its punctuation.
SENTENCE_PUNCTUATION = frozenset(".?!…‼‽⁇⁈⁉。？！．｡।॥؟۔։።፧܀܁܂߹၊။᙮᠃᠉⸮⸼﹒﹖﹗")
#: Letters with full stops that end no sentence: "p.m.", "e.g.", "u.s.".
_LETTER_ABBREVIATION = re.compile(r"(?<![^\W_])(?:[^\W\d_]\.){2,}", re.UNICODE)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_DIGITS = re.compile(r"\d")
#: Distances from the turn's start and end are bucketed up to this many words.
_FAR = 8
#: A sentence starts after a gap whose probability reaches this. Chosen among 0.35–0.6 by what it does to
#: the 28 labelled calls read without punctuation (docs/REALDATA.md, "Turns without punctuation").
THRESHOLD = 0.4


def is_unpunctuated(text: str) -> bool:
    """True when ``text`` has no sentence-ending punctuation at all (the boundary model's input).

    A full stop inside a token ("version 2.5", "acme.com", "dana@example.com") or in letters such as
    "p.m." ends no sentence, so it does not count: a run-on recogniser turn that mentions a price or a
    web address is still cut by the model.
    """
    text = _LETTER_ABBREVIATION.sub(" ", text)
    for i, ch in enumerate(text):
        if ch in SENTENCE_PUNCTUATION and not (ch == "." and text[i + 1:i + 2].isalnum()):
            return False
    return True


def word_spans(text: str) -> list[tuple[int, int]]:
    """Each word's character span in ``text`` (letters and digits, with inner apostrophes)."""
    return [m.span() for m in _WORD.finditer(text)]


def _norm(word: str) -> str:
    return _DIGITS.sub("0", word.lower().replace("’", "'"))


def gap_features(words: Sequence[str], gap: int) -> list[str]:
    """Features of the gap after ``words[gap]`` (so ``0 <= gap < len(words) - 1``); ``words`` normalised."""
    n = len(words)

    def at(k: int) -> str:
        return words[k] if 0 <= k < n else ("<s>" if k < 0 else "</s>")

    b2, b1, a1, a2 = at(gap - 1), at(gap), at(gap + 1), at(gap + 2)
    return ["bias", f"b1={b1}", f"a1={a1}", f"b2={b2}", f"a2={a2}", f"b21={b2} {b1}", f"a12={a1} {a2}",
            f"ba={b1} {a1}", f"b1a12={b1} {a1} {a2}", f"from={min(gap + 1, _FAR)}", f"to={min(n - gap - 1, _FAR)}"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One speaker's stretch of words with its known sentence ends (word indices a sentence ends after),
    from one conversation (``group``) of one source."""

    words: tuple[str, ...]
    ends: frozenset[int]
    group: str
    source: str


def _turn(sentences: Sequence[str], group: str, source: str) -> Turn | None:
    words: list[str] = []
    ends: set[int] = set()
    for sentence in sentences:
        found = [_norm(sentence[a:b]) for a, b in word_spans(sentence)]
        if found:
            words.extend(found)
            ends.add(len(words) - 1)
    if len(words) < 2:
        return None
    ends.discard(len(words) - 1)  # the turn's own end is no decision
    return Turn(tuple(words), frozenset(ends), group, source)


_SENTENCE_END = re.compile(r"(?<=[.?!…])[\"')\]]*\s+")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _speaker_runs(rows: Iterable[Mapping[str, Any]], speaker: Callable[[Mapping[str, Any]], str],
                  sentences: Callable[[Mapping[str, Any]], list[str]], source: str) -> Iterator[Turn]:
    """One turn per run of consecutive rows with the same group and speaker, its sentences joined."""
    for (group, _who), run in itertools.groupby(rows, key=lambda row: (str(row.get("group", "")), speaker(row))):
        turn = _turn([sentence for row in run for sentence in sentences(row)], group, source)
        if turn:
            yield turn


def corpus_turns(rows: Iterable[Mapping[str, Any]], source: str) -> Iterator[Turn]:
    """Turns of a written corpus as its speakers took them: a speaker's consecutive rows of one group
    joined, each row split into sentences at its punctuation."""
    return _speaker_runs(rows, lambda row: str(row.get("speaker") or row.get("speaker_role") or ""),
                         lambda row: _sentences(str(row.get("text", ""))), source)


#: A written conversation is read in stretches of this many consecutive rows (chosen per stretch by a hash).
CHUNK_ROWS = (1, 2, 3, 4)


def corpus_chunks(rows: Iterable[Mapping[str, Any]], source: str) -> Iterator[Turn]:
    """Training stretches of a written corpus: each conversation cut into runs of 1–4 consecutive rows
    (whoever speaks them), every row split into sentences at its punctuation.

    Most written turns are one sentence, so turns alone would teach few sentence ends (1,819 in 5,960
    turns); a row's end is a sentence end whoever speaks next, and runs of rows teach about 4,600.
    The run lengths come from a hash of the group and position, so the stretches are the same every time.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row.get("group", "")), []).append(row)
    for group, members in groups.items():
        start = 0
        while start < len(members):
            pick = int(hashlib.sha256(f"{group}{start}".encode()).hexdigest()[:6], 16)
            size = CHUNK_ROWS[pick % len(CHUNK_ROWS)]
            turn = _turn([s for row in members[start : start + size] for s in _sentences(str(row.get("text", "")))],
                         group, source)
            if turn:
                yield turn
            start += size


def ami_turns(rows: Iterable[Mapping[str, Any]]) -> Iterator[Turn]:
    """Turns of the AMI dialogue acts: a speaker's consecutive acts (in meeting order) joined, every act's
    end a sentence end."""
    return _speaker_runs(rows, lambda row: str(row.get("speaker", "")), lambda row: [str(row.get("text", ""))],
                         "ami")


@dataclass(frozen=True)
class BoundaryModel:
    """Weights of the features around a gap between two words; a sentence starts after the gap when the
    probability reaches ``threshold``."""

    weights: Mapping[str, float]
    threshold: float = THRESHOLD
    info: Mapping[str, Any] = field(default_factory=dict)

    def probabilities(self, words: Sequence[str]) -> list[float]:
        """For each gap between ``words`` (raw words), the probability that a sentence ends there."""
        normal = [_norm(w) for w in words]
        out = []
        for gap in range(len(normal) - 1):
            z = sum(self.weights.get(f, 0.0) for f in gap_features(normal, gap))
            out.append(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))))
        return out

    def sentence_spans(self, text: str) -> list[tuple[int, int]]:
        """``text`` cut into sentences: (start, end) character spans; the whole text when no gap qualifies."""
        spans = word_spans(text)
        if len(spans) < 2:
            return [(0, len(text))] if text.strip() else []
        probs = self.probabilities([text[a:b] for a, b in spans])
        # a sentence starts only after a space: never inside "okay-okay", "yes/no" or "2.5"
        starts = [0] + [spans[g + 1][0] for g, p in enumerate(probs)
                        if p >= self.threshold and any(c.isspace() for c in text[spans[g][1]:spans[g + 1][0]])]
        return [(a, b) for a, b in zip(starts, [*starts[1:], len(text)]) if text[a:b].strip()]


def fit_boundary_model(turns: Sequence[Turn], *, c: float = 1.0, min_count: int = 2) -> BoundaryModel:
    """Fit the logistic regression on ``turns``; features seen fewer than ``min_count`` times are dropped."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    gaps = [(gap_features(turn.words, gap), int(gap in turn.ends)) for turn in turns
            for gap in range(len(turn.words) - 1)]
    counts = Counter(f for features, _end in gaps for f in features)
    names = sorted(f for f, k in counts.items() if k >= min_count)
    index = {f: i for i, f in enumerate(names)}
    rows: list[int] = []
    cols: list[int] = []
    for row, (features, _end) in enumerate(gaps):
        for f in features:
            if f in index:
                rows.append(row)
                cols.append(index[f])
    labels = [end for _features, end in gaps]
    x = csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(labels), len(names)))
    head = LogisticRegression(C=c, solver="liblinear", fit_intercept=False, max_iter=1000, random_state=0)
    head.fit(x, labels)
    # four decimals (the model file stays small) before anything is measured: the card describes the saved model
    weights = {name: kept for name, w in zip(names, head.coef_[0]) if (kept := round(float(w), 4)) != 0.0}
    return BoundaryModel(weights, info={"c": c, "min_count": min_count, "features": len(weights),
                                        "gaps": len(labels), "sentence_ends": int(sum(labels))})


def score_boundaries(model: BoundaryModel, turns: Iterable[Turn]) -> dict[str, Any]:
    """Precision, recall and F1 of the sentence ends the model finds in ``turns``, and how often a turn
    is cut exactly as it should be."""
    tp = fp = fn = exact = n = 0
    for turn in turns:
        probs = model.probabilities(turn.words)
        found = {g for g, p in enumerate(probs) if p >= model.threshold}
        tp += len(found & turn.ends)
        fp += len(found - turn.ends)
        fn += len(turn.ends - found)
        exact += found == turn.ends
        n += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"turns": n, "sentence_ends": tp + fn, "precision": round(precision, 3), "recall": round(recall, 3),
            "f1": round(f1, 3), "turns_cut_exactly": round(exact / n, 3) if n else None}


def save_boundary_model(model: BoundaryModel, directory: Path, card: dict[str, Any]) -> Path:
    """Write ``boundaries.json`` and ``card.json`` (with the model file's sha256) into ``directory``."""
    payload = {"format": FORMAT, "threshold": model.threshold, "far": _FAR,
               "weights": dict(sorted(model.weights.items()))}
    data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return write_model_files(directory, MODEL_FILE, FORMAT, data, {**model.info, **card, "threshold": model.threshold})


def default_boundary_model_dir() -> Path:
    """The shipped boundary model: ``boundaries/`` in the packaged models or the checkout's ``models/``."""
    from pipeline.paths import shipped_model_dir

    return shipped_model_dir("boundaries", MODEL_FILE)


_HINT = ("Restore models/boundaries/ from the repository or retrain it (python scripts/train_boundaries.py); "
         "or set [segmentation] unpunctuated_model = false to keep unpunctuated turns whole.")


def _checked_files(folder: Path) -> tuple[dict[str, Any], bytes]:
    return checked_model_files(folder, MODEL_FILE, FORMAT, "sentence-boundary model", _HINT, "segment")


def check_boundary_model(directory: str | Path | None = None) -> dict[str, Any]:
    """The model's card, with its file's checksum checked; nothing is parsed (a batch's fail-fast check).

    Raises:
        PipelineError: the files are missing, not a boundary model, or damaged (checksum).
    """
    return _checked_files(Path(directory) if directory else default_boundary_model_dir())[0]


def load_boundary_model(directory: str | Path | None = None) -> BoundaryModel:
    """Read a model written by :func:`save_boundary_model` (JSON only; nothing is executed).

    Raises:
        PipelineError: the files are missing, damaged (checksum, non-finite weights) or not a boundary model.
    """
    folder = Path(directory) if directory else default_boundary_model_dir()
    card, raw = _checked_files(folder)
    try:
        payload = json.loads(raw)
        weights = {str(k): float(v) for k, v in payload["weights"].items()}
        threshold = float(payload["threshold"])
        if int(payload["far"]) != _FAR:
            raise ValueError(f"trained with distances up to {payload['far']} words, this version reads {_FAR}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PipelineError(f"The sentence-boundary model {folder / MODEL_FILE} is damaged: {exc}.", _HINT,
                            step="segment") from exc
    if not all(math.isfinite(w) for w in weights.values()) or not 0.0 < threshold < 1.0:
        raise PipelineError(f"The sentence-boundary model {folder / MODEL_FILE} has non-finite weights or a "
                            "threshold outside (0, 1).", _HINT, step="segment")
    return BoundaryModel(weights, threshold, card)


def train_boundary_model(corpus_files: Sequence[Path], ami_file: Path | None, *,
                         c: float = 1.0) -> tuple[BoundaryModel, dict[str, Any]]:
    """Fit on the training conversations of ``corpus_files`` (written corpus JSONL) and ``ami_file``
    (AMI acts, JSONL.gz) and measure on their held-out conversations; returns the model and its card."""
    from pipeline.corpus import is_holdout, read_rows, split_key

    turns: list[Turn] = []
    digest = hashlib.sha256()
    written: list[Turn] = []
    for path in corpus_files:
        rows = read_rows(path)
        digest.update(json.dumps([[r.get("id"), r.get("text"), r.get("group")] for r in rows]).encode("utf-8"))
        turns.extend(corpus_chunks(rows, "written"))
        written.extend(corpus_turns(rows, "written"))
    if ami_file is not None:
        rows = sorted(read_rows(ami_file), key=lambda r: (str(r["group"]), int(r.get("index", 0))))
        digest.update(json.dumps([[r.get("id"), r.get("text")] for r in rows]).encode("utf-8"))
        turns.extend(ami_turns(rows))

    def held_out(turn: Turn) -> bool:
        return is_holdout(split_key(turn.source, turn.group))

    train = [t for t in turns if not held_out(t)]
    model = fit_boundary_model(train, c=c)
    measured = {source: score_boundaries(model, [t for t in turns if held_out(t) and t.source == source])
                for source in sorted({t.source for t in turns})}
    measured["written (as turns)"] = score_boundaries(model, [t for t in written if held_out(t)])
    card = {"data": {"hash": digest.hexdigest(), "files": [p.name for p in corpus_files] +
                     ([ami_file.name] if ami_file else []),
                     "train_turns": len(train), "held_out_turns": len(turns) - len(train)},
            "held_out": measured}
    return BoundaryModel(model.weights, model.threshold, {**model.info, **card}), card


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card for people."""
    lines = ["# Sentence-boundary model (unpunctuated speech)", "",
             "Where a sentence ends in a turn transcribed without punctuation (`pipeline/speech/boundaries.py`).", "",
             f"- format `{card.get('format')}`, file `{card.get('file')}`, sha256 `{card.get('sha256')}`",
             f"- features kept: {card.get('features')} (seen at least {card.get('min_count')} times); "
             f"C = {card.get('c')}; trained on {card.get('gaps')} gaps between words, "
             f"{card.get('sentence_ends')} of them sentence ends",
             f"- data: {', '.join(card.get('data', {}).get('files', []))} (hash `{card.get('data', {}).get('hash')}`)",
             f"- a sentence starts after a gap whose probability reaches {card.get('threshold')}; only turns with "
             "no sentence punctuation at all (`.`, `?`, `!` and other scripts' sentence marks) are read",
             "", "## Held-out conversations (never trained on)", "",
             "Rows: `ami`, a speaker's consecutive AMI acts as one turn, every act end a sentence end; `written`, "
             "runs of one to four rows of the written corpus; `written (as turns)`, the corpus's own turns, mostly "
             "one sentence each, where the precision says how many of the model's cuts fall inside a sentence "
             "(both halves of a sentence cut in two usually keep its labels; a missed cut merges two sentences "
             "under one label).", "",
             "| source | turns | sentence ends | precision | recall | F1 | turns cut exactly |",
             "|---|---|---|---|---|---|---|"]
    for source, m in sorted(card.get("held_out", {}).items()):
        lines.append(f"| {source} | {m['turns']} | {m['sentence_ends']} | {m['precision']} | {m['recall']} | "
                     f"{m['f1']} | {m['turns_cut_exactly']} |")
    return "\n".join(lines) + "\n"
