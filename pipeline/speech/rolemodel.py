"""Who is the rep, learned: a speaker's role from everything that speaker said in the call.

A call whose speakers have no role from the sidecar, the channel layout or their names (diarized mono
audio, transcripts with unnamed speakers) used to get roles from one rule: the speaker who asks the
most questions is the rep. That rule reads sales calls well and internal meetings badly — in a
pipeline review or a coaching session the manager asks the questions. On the 28 labelled calls
(``labels/calls``, never trained on) it gave the right role to 25 of 85 speakers.

The role model reads each speaker's words, all turns joined, as one document: TF-IDF of word 1–2
grams and a multinomial logistic regression over ``rep``, ``customer``, ``manager`` and ``unknown``.
It is trained on the written corpus (``labels/data``), whose rows carry the writer's
``speaker_role``: one document per role per conversation (two speakers of one role in one
conversation become one document, which the corpus cannot tell apart). Roles of the corpus and of
the labelled calls map onto the pipeline's four by :data:`ROLE_MAP` (prospects, buyers and partners
are the ``customer`` side; directors and executives ``manager``; engineers, colleagues and the rest
``unknown``).

The artifact (``models/roles/``) is data only: ``roles.json`` holds the vocabulary, the IDF weights
and the coefficients, read with :mod:`json` and rebuilt into a scikit-learn vectorizer whose
vocabulary and IDF are set, never unpickled; ``card.json`` holds its checksum, training data hash and
measured results; ``card.md`` the same for people. Train it with ``python scripts/train_roles.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.modelfiles import checked_model_files, write_model_files
from pipeline.schema import ROLE_WORDS, role_word

__all__ = [
    "ROLE_MAP",
    "MODEL_ROLES",
    "RoleModel",
    "SpeakerDocument",
    "map_role",
    "speaker_documents",
    "corpus_documents",
    "fit_role_model",
    "save_role_model",
    "load_role_model",
    "default_role_model_dir",
    "LabelledCall",
    "read_labelled_calls",
    "read_transcript_calls",
    "role_agreement",
    "evaluate_calls",
    "evaluate_documents",
    "train_role_model",
    "card_markdown",
]

FORMAT = "callcycle-role-model/1"
MODEL_FILE = "roles.json"
MODEL_ROLES = ("rep", "customer", "manager", "unknown")

#: Role names written in the corpus and the labelled calls -> the pipeline's roles (one table with the
#: speaker-name rule of :mod:`pipeline.speech.roles`). Anything else is ``unknown``.
ROLE_MAP = ROLE_WORDS

#: How a speaker's words become features; saved in the model file, so a file reads text the way it was trained.
TEXT_SETTINGS: dict[str, Any] = {"lowercase": True, "token_pattern": r"(?u)\b\w\w+\b", "sublinear_tf": True,
                                 "norm": "l2"}


def map_role(name: str | None) -> str:
    """The pipeline role (:data:`MODEL_ROLES`) for a role name written by a person."""
    return role_word(name) or "unknown"


@dataclass(frozen=True, slots=True)
class SpeakerDocument:
    """Everything one speaker said in one conversation, and (for training) their role."""

    conversation: str
    speaker: str
    text: str
    role: str = "unknown"
    source: str = ""


def speaker_documents(turns: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Speaker -> all their turns' text joined, in order of first speech."""
    texts: dict[str, list[str]] = defaultdict(list)
    for speaker, text in turns:
        texts[speaker].append(text)
    return {speaker: " ".join(parts) for speaker, parts in texts.items()}


def corpus_documents(rows: Iterable[Mapping[str, Any]], source: str) -> list[SpeakerDocument]:
    """Training documents from written corpus rows (``group``, ``speaker_role``, ``text``).

    Conversations with fewer than two roles are skipped: there is no one to tell apart.
    """
    by_group: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        role = row.get("speaker_role")
        if role and row.get("group"):
            by_group[str(row["group"])].append((str(role), str(row["text"])))
    docs: list[SpeakerDocument] = []
    for group, turns in by_group.items():
        texts = speaker_documents(turns)
        if len(texts) < 2:
            continue
        docs.extend(SpeakerDocument(group, speaker, text, map_role(speaker), source) for speaker, text in texts.items())
    return docs


class RoleModel:
    """A fitted role model: a TF-IDF vectorizer and linear weights per role.

    Build one with :func:`fit_role_model` or :func:`load_role_model`.
    """

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 classes: Sequence[str], ngram_range: tuple[int, int], info: dict[str, Any] | None = None,
                 text_settings: Mapping[str, Any] | None = None) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if coef.shape != (len(classes), len(vocabulary)) or idf.shape != (len(vocabulary),) \
                or intercept.shape != (len(classes),):
            raise ValueError("role model weights do not match its vocabulary and classes")
        if not (np.isfinite(coef).all() and np.isfinite(idf).all() and np.isfinite(intercept).all()):
            raise ValueError("role model weights are not all finite numbers")
        self.classes = tuple(classes)
        self.coef = coef
        self.intercept = intercept
        self.ngram_range = ngram_range
        self.text_settings = dict(text_settings or TEXT_SETTINGS)
        self.info = dict(info or {})
        self._vectorizer = TfidfVectorizer(ngram_range=ngram_range, vocabulary=vocabulary, **self.text_settings)
        self._vectorizer.idf_ = idf

    @property
    def vocabulary(self) -> dict[str, int]:
        return dict(self._vectorizer.vocabulary)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of role probabilities (columns in :attr:`classes` order), one per text."""
        if not texts:
            return np.zeros((0, len(self.classes)))
        scores = self._vectorizer.transform(list(texts)) @ self.coef.T + self.intercept
        scores = np.asarray(scores) - np.asarray(scores).max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def roles(self, documents: Mapping[str, str], exclude: Sequence[str] = ()) -> dict[str, tuple[str, float]]:
        """Speaker -> (most likely role, its probability) for each speaker's document.

        ``exclude``: roles not to give (e.g. ``rep`` when the call's rep is already known).
        """
        speakers = list(documents)
        probs = self.probabilities([documents[s] for s in speakers])
        allowed = np.array([c not in exclude for c in self.classes])
        if not allowed.any():
            raise ValueError(f"every role is excluded: {list(exclude)}")
        masked = np.where(allowed, probs, -1.0)
        return {s: (self.classes[int(np.argmax(m))], float(p[int(np.argmax(m))]))
                for s, p, m in zip(speakers, probs, masked)}


def fit_role_model(documents: Sequence[SpeakerDocument], *, c: float = 4.0, min_df: int = 2,
                   ngram_range: tuple[int, int] = (1, 2)) -> RoleModel:
    """Fit the role model on labelled speaker documents.

    Args:
        documents: one per speaker per conversation, with ``role`` in :data:`MODEL_ROLES`.
        c: inverse regularisation strength of the logistic regression.
        min_df: a word or word pair must occur in this many documents to be kept.
        ngram_range: word n-gram lengths.

    Classes are weighted inversely to their frequency, so the rarer roles are not swamped.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    labels = [d.role for d in documents]
    if len(set(labels)) < 2:
        raise PipelineError("The role model needs speakers of at least two roles to learn from.",
                            "Check that the corpus rows carry speaker_role.", step="train")
    vectorizer = TfidfVectorizer(ngram_range=ngram_range, min_df=min_df, **TEXT_SETTINGS)
    matrix = vectorizer.fit_transform([d.text for d in documents])
    clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    clf.fit(matrix, labels)
    classes = [str(x) for x in clf.classes_]
    coef, intercept = clf.coef_, clf.intercept_
    if len(classes) == 2:  # binary: scikit-learn keeps one row; spell out both for the softmax
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    vocab = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
    return RoleModel(vocab, np.asarray(vectorizer.idf_, dtype=np.float64), np.asarray(coef, dtype=np.float64),
                     np.asarray(intercept, dtype=np.float64), classes, ngram_range,
                     {"c": c, "min_df": min_df, "documents": len(documents),
                      "roles": dict(sorted(Counter(labels).items()))}, TEXT_SETTINGS)


def _model_payload(model: RoleModel) -> dict[str, Any]:
    vocab = model.vocabulary
    terms = [""] * len(vocab)
    for term, index in vocab.items():
        terms[index] = term
    # full float precision (JSON numbers round-trip exactly): the saved model reads text as the fitted one
    return {"format": FORMAT, "classes": list(model.classes), "ngram_range": list(model.ngram_range),
            "text_settings": model.text_settings, "terms": terms,
            "idf": [float(x) for x in model._vectorizer.idf_],
            "coef": [[float(x) for x in row] for row in model.coef],
            "intercept": [float(x) for x in model.intercept]}


def save_role_model(model: RoleModel, directory: Path, card: dict[str, Any]) -> Path:
    """Write ``roles.json`` and ``card.json`` (with the model file's sha256) into ``directory``.

    Returns the model file's path. ``card`` carries the training data hash and measured results.
    """
    data = json.dumps(_model_payload(model), separators=(",", ":")).encode("utf-8")
    return write_model_files(directory, MODEL_FILE, FORMAT, data, {**model.info, **card})


def default_role_model_dir() -> Path:
    """The shipped role model: ``roles/`` in the packaged models or the checkout's ``models/``."""
    from pipeline.paths import shipped_model_dir

    return shipped_model_dir("roles", MODEL_FILE)


_HINT = ("Restore models/roles/ from the repository, retrain it (python scripts/train_roles.py), "
         "or set [roles] model = false to fall back to the question-count rule.")


def _checked_files(folder: Path) -> tuple[dict[str, Any], bytes]:
    return checked_model_files(folder, MODEL_FILE, FORMAT, "role model", _HINT, "roles")


def load_role_model(directory: str | Path | None = None) -> RoleModel:
    """Read a role model written by :func:`save_role_model` (JSON only; nothing is executed).

    Raises:
        PipelineError: the files are missing, damaged (checksum, shape, non-finite weights) or not a role model.
    """
    folder = Path(directory) if directory else default_role_model_dir()
    card, raw = _checked_files(folder)
    try:
        payload = json.loads(raw)
        terms = payload["terms"]
        model = RoleModel({str(t): i for i, t in enumerate(terms)}, np.asarray(payload["idf"], dtype=np.float64),
                          np.asarray(payload["coef"], dtype=np.float64),
                          np.asarray(payload["intercept"], dtype=np.float64), payload["classes"],
                          (int(payload["ngram_range"][0]), int(payload["ngram_range"][1])), card,
                          payload["text_settings"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise PipelineError(f"The role model {folder / MODEL_FILE} is damaged: {exc}.", _HINT, step="roles") from exc
    if not set(model.classes) <= set(MODEL_ROLES):
        raise PipelineError(f"The role model in {folder} has unexpected roles {model.classes}.", _HINT, step="roles")
    return model


@dataclass(frozen=True, slots=True)
class LabelledCall:
    """A whole labelled call: its turns (speaker, text) in order and each speaker's true role."""

    name: str
    turns: tuple[tuple[str, str], ...]
    roles: Mapping[str, str]


def read_labelled_calls(folder: Path) -> list[LabelledCall]:
    """The labelled calls of ``folder`` (``*.json`` with ``turns`` of ``speaker``, ``role``, ``text``).

    Calls without a role on every turn are skipped (the outside calls carry none).
    """
    calls: list[LabelledCall] = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        turns = data.get("turns") or []
        if not turns or any(not t.get("role") for t in turns):
            continue
        calls.append(LabelledCall(path.stem, tuple((str(t["speaker"]), str(t["text"])) for t in turns),
                                  {str(t["speaker"]): map_role(t["role"]) for t in turns}))
    return calls


def read_transcript_calls(folder: Path) -> list[LabelledCall]:
    """Calls given as transcripts with a role key: ``folder/key/truth.json`` maps each file of ``folder/calls``
    to ``{speaker: role}``; the files are read as ``callcycle run`` reads them (:func:`parse_transcript`). (The
    key sits in a folder of its own, so the benchmark's search for labelled calls, ``*.json`` in each
    held-back folder, passes it by.)"""
    from pipeline.ingest.transcripts import parse_transcript

    truth = json.loads((folder / "key" / "truth.json").read_text(encoding="utf-8"))
    calls: list[LabelledCall] = []
    for name, roles in sorted(truth.items()):
        parsed = parse_transcript(folder / "calls" / name)
        calls.append(LabelledCall(Path(name).stem, tuple((t.speaker, t.text) for t in parsed.turns),
                                  {str(s): map_role(r) for s, r in roles.items()}))
    return calls


def role_agreement(predicted: Mapping[str, str], truth: Mapping[str, str]) -> Counter[str]:
    """Counts for one call: ``speakers``, ``role_right`` (all four roles), ``rep_right`` (rep or not),
    ``calls`` and ``reps_exact`` (the call's set of reps exactly right)."""
    counts: Counter[str] = Counter(calls=1, speakers=len(truth))
    counts["role_right"] = sum(predicted.get(s) == r for s, r in truth.items())
    counts["rep_right"] = sum((predicted.get(s) == "rep") == (r == "rep") for s, r in truth.items())
    counts["reps_exact"] = int({s for s, r in truth.items() if r == "rep"}
                               == {s for s in truth if predicted.get(s) == "rep"})
    return counts


def _rates(counts: Counter[str]) -> dict[str, Any]:
    speakers = max(1, counts["speakers"])
    return {"calls": counts["calls"], "speakers": counts["speakers"],
            "role_accuracy": round(counts["role_right"] / speakers, 3),
            "rep_accuracy": round(counts["rep_right"] / speakers, 3),
            "calls_reps_exact": counts["reps_exact"]}


def evaluate_calls(calls: Sequence[LabelledCall], model: RoleModel | None) -> dict[str, Any]:
    """Roles given by :func:`pipeline.speech.roles.assign_roles` with ``model`` (``None``: the question rule)
    against the labelled roles, speakers renamed ``S1``, ``S2``… so their names give nothing away."""
    from pipeline.schema import Turn
    from pipeline.speech.roles import assign_roles

    total: Counter[str] = Counter()
    for call in calls:
        alias: dict[str, str] = {}
        for speaker, _ in call.turns:
            alias.setdefault(speaker, f"S{len(alias) + 1}")
        turns = [Turn(speaker=alias[s], channel=None, start_s=float(i), end_s=float(i + 1), text=text)
                 for i, (s, text) in enumerate(call.turns)]
        given = {t.speaker: t.role or "unknown" for t in assign_roles(turns, model=model)}
        total += role_agreement(given, {alias[s]: r for s, r in call.roles.items()})
    return _rates(total)


def evaluate_documents(documents: Sequence[SpeakerDocument], model: RoleModel) -> dict[str, Any]:
    """Role accuracy on held-out speaker documents, grouped by conversation."""
    by_conv: dict[str, list[SpeakerDocument]] = defaultdict(list)
    for d in documents:
        by_conv[d.conversation].append(d)
    total: Counter[str] = Counter()
    for docs in by_conv.values():
        given = {s: role for s, (role, _) in model.roles({d.speaker: d.text for d in docs}).items()}
        total += role_agreement(given, {d.speaker: d.role for d in docs})
    return _rates(total)


def documents_hash(documents: Sequence[SpeakerDocument]) -> str:
    """sha256 over the training documents (conversation, speaker, role, text), order-independent."""
    digest = hashlib.sha256()
    for d in sorted(documents, key=lambda d: (d.source, d.conversation, d.speaker)):
        digest.update("\x1f".join((d.source, d.conversation, d.speaker, d.role, d.text)).encode("utf-8") + b"\x1e")
    return digest.hexdigest()


def train_role_model(corpus_files: Sequence[Path], calls_dir: Path | None, *, c: float = 4.0,
                     min_df: int = 2, outside_dir: Path | None = None) -> tuple[RoleModel, dict[str, Any]]:
    """Fit the role model on every corpus file and measure it; returns the model and its card.

    Measured: leave-one-writer-out (each corpus file is one writer: fit on the others, read the
    held-out writer's conversations), the labelled calls of ``calls_dir`` and the transcripts of
    ``outside_dir`` (:func:`read_transcript_calls`), neither ever trained on, each next to the question rule.
    """
    from pipeline.corpus import read_rows

    by_writer: dict[str, list[SpeakerDocument]] = {}
    for path in corpus_files:
        writer = path.stem.removeprefix("corpus_")
        by_writer[writer] = corpus_documents(read_rows(path), writer)
    documents = [d for docs in by_writer.values() for d in docs]
    model = fit_role_model(documents, c=c, min_df=min_df)
    writers: dict[str, Any] = {}
    for writer, held in sorted(by_writer.items()):
        if held:
            rest = [d for w, docs in by_writer.items() if w != writer for d in docs]
            writers[writer] = evaluate_documents(held, fit_role_model(rest, c=c, min_df=min_df))
    card: dict[str, Any] = {
        "data_hash": documents_hash(documents),
        "corpus_files": [p.name for p in corpus_files],
        "leave_one_writer_out": writers,
    }
    if writers:
        card["leave_one_writer_out_mean"] = {
            k: round(sum(w[k] for w in writers.values()) / len(writers), 3) for k in ("role_accuracy", "rep_accuracy")}
    if calls_dir is not None:
        calls = read_labelled_calls(calls_dir)
        card["labelled_calls"] = {"folder": calls_dir.name, "model": evaluate_calls(calls, model),
                                  "question_rule": evaluate_calls(calls, None)}
    if outside_dir is not None:
        outside = read_transcript_calls(outside_dir)
        card["outside_calls"] = {"folder": outside_dir.name, "model": evaluate_calls(outside, model),
                                 "question_rule": evaluate_calls(outside, None)}
    return model, card


def card_markdown(card: Mapping[str, Any]) -> str:
    """The role model's card for people."""
    lines = ["# Role model card", "",
             "Who is the rep, the customer, the manager: TF-IDF of each speaker's words (word 1-2 grams) and a "
             "multinomial logistic regression (`pipeline/speech/rolemodel.py`). Used for speakers that no sidecar, "
             "channel layout or speaker name gives a role.", "",
             f"- trained on {card.get('documents')} speaker documents from {len(card.get('corpus_files', []))} "
             f"written corpus files; roles {card.get('roles')}",
             f"- data hash `{card.get('data_hash')}`; C={card.get('c')}, min_df={card.get('min_df')}",
             f"- model file `{card.get('file')}`, sha256 `{card.get('sha256')}`", ""]
    titles = {"labelled_calls": "Labelled calls (`labels/{folder}`, never trained on; speakers renamed S1, S2, ...)",
              "outside_calls": "Outside calls (`labels/held-back/{folder}`: transcripts written and keyed blind by a "
                               "project helper who had not read the corpus; never trained on; speakers renamed)"}
    for section, title in titles.items():
        calls = card.get(section)
        if not calls:
            continue
        lines += [f"## {title.format(folder=calls['folder'])}", "",
                  "| | speakers | role right | rep-or-not right | calls with exactly the right reps |",
                  "|---|---|---|---|---|"]
        for name, key in (("role model", "model"), ("question rule (before)", "question_rule")):
            r = calls[key]
            lines.append(f"| {name} | {r['speakers']} | {r['role_accuracy']:.3f} | {r['rep_accuracy']:.3f} | "
                         f"{r['calls_reps_exact']} of {r['calls']} |")
        lines.append("")
    writers = card.get("leave_one_writer_out") or {}
    if writers:
        lines += ["## Leave one writer out (written corpus)", "",
                  "| writer | conversations | speakers | role right | rep-or-not right |", "|---|---|---|---|---|"]
        for writer, r in writers.items():
            lines.append(f"| {writer} | {r['calls']} | {r['speakers']} | {r['role_accuracy']:.3f} | "
                         f"{r['rep_accuracy']:.3f} |")
        mean = card.get("leave_one_writer_out_mean", {})
        lines += [f"| mean | | | **{mean.get('role_accuracy', 0):.3f}** | **{mean.get('rep_accuracy', 0):.3f}** |", ""]
    lines += ["Limits: the written corpus gives one document per role per conversation, so two reps in one "
              "conversation train as one; a speaker who says only a few words gets the roles' prior.", ""]
    return "\n".join(lines)
