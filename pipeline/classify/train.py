"""Train the segment classifiers and evaluate them per source.

One :class:`~pipeline.classify.model.CycleModel` covers every task of the taxonomy: a
text level (TF-IDF word and character n-grams, spaCy Matcher cues and, by default, the
vectors of a small sentence encoder run on onnxruntime) and a context level that reads the
neighbouring segments (see :mod:`pipeline.classify.model`). Training data are the project's
written corpus (both labels on every row, conversations in file order) plus external
corpora of real speech whose rows may carry only one label (``labels/external/``).

The fixed held-out split (:func:`pipeline.classify.labels.is_holdout` over each row's
``split_group``: the conversation, or a whole AMI meeting series) is never used for fitting.
Metrics are reported per source, because a held-out split of our own corpus flatters us:
written held-out in context and one sentence at a time, real-speech held-out conversations,
and the text level's out-of-fold scores on the training rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from pipeline.atomic import publish, temp_path
from pipeline.classify.benchmark import BenchmarkSet, ami_views
from pipeline.classify.crosswriter import VIEWS as CROSS_WRITER_VIEWS
from pipeline.classify.labels import (
    HOLDOUT_PERCENT,
    SHORT_REPLY_WORDS,
    LabelledRow,
    Taxonomy,
    data_hash,
    is_holdout,
    near_duplicates_dropped,
)
from pipeline.classify.model import CycleModel, Utterances
from pipeline.config import DEFAULT_ENCODER, DEFAULT_TRAIN_SEED
from pipeline.errors import LabelDataError
from pipeline.paths import cache_dir

__all__ = [
    "TrainConfig",
    "TrainResult",
    "split_rows",
    "classification_metrics",
    "macro_f1_interval",
    "paired_macro_f1_difference",
    "mean_interval",
    "format_macro_f1",
    "MIN_INTERVAL_GROUPS",
    "format_interval",
    "expected_calibration_error",
    "rows_to_utterances",
    "prepare_external",
    "embed_texts",
    "train_models",
    "evaluate_rows",
    "evaluate_sets",
    "render_card_markdown",
    "CROSS_WRITER_VIEWS",
]

logger = logging.getLogger("callcycle.train")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training options.

    Attributes:
        folds: grouped folds for the out-of-fold probabilities the context level learns from
            (and that the card reports as the text level's cross-validated scores).
        seed: random seed.
        holdout_percent: share of split groups in the fixed held-out split.
        dedupe_threshold: cosine similarity above which a written row is a near-duplicate.
        dedupe_short_in_context: a short reply ("sure", "that works") is a near-duplicate only of
            one that follows a near-identical turn (:func:`pipeline.classify.labels.find_near_duplicates`);
            off (the shipped recipe), every repeat of its words after the first is dropped, whatever it
            answered. Measured with and without a writer of such replies (docs/REALDATA.md, "A nineteenth
            writer"): real speech moved within a seed's reach, so the shipped recipe keeps it off.
        encoder: sentence encoder folder name under ``<models>/encoders/``; ``None`` for
            TF-IDF and cues only.
        context: fit the context level (neighbouring segments).
        text_c: inverse regularisation of the text-level logistic regressions.
        encoder_weight: scale of the sentence vectors next to the TF-IDF blocks.
        corpus_weights: sample weight per corpus (``written`` is 1 unless listed).
        standalone_weight: weight of the copies of written rows shown to the context level
            with no neighbours, so it also learns single-sentence input.
        alone_corpora: corpora whose training rows, shown with no neighbours, train a second
            context level that reads every segment that has none (a single sentence); empty:
            the one context level reads those too. That one had seen only written rows alone
            and read real-speech acts one at a time worse than the text level did; the second
            level, on written and AMI rows, raised AMI actions vs statements one act at a time
            from 0.737 to 0.783 and changed nothing in context (docs/REALDATA.md, "One act at a
            time").
        mapped_label_percent: share of external rows whose labels come from a tag mapping
            (``label_source`` = ``mapped``, e.g. AMI statements -> talk) that keep their labels
            for training, by a hash of the row id; the others are context only. Hand-labelled
            external rows always keep theirs.
        context_radius: external rows are kept only within this many rows of a labelled
            row (they are context for it); the rest cost encoding time and teach nothing.
        tune_offsets: learn per-class log-prior offsets from the context level's out-of-fold
            probabilities (see :class:`pipeline.classify.model.CycleModel`).
        speech_copies: transcript-like noised copies of each written training conversation
            (:func:`pipeline.classify.augment.speech_noise`), trained next to the originals;
            0 trains on the written text as it is. One copy, text level only, is the shipped
            recipe (docs/REALDATA.md: better on every source measured, and no more sensitive to
            a changed word than without copies).
        speech_copy_weight: sample weight of those copies relative to their originals.
        speech_copies_in_context: the copies also train the context level (as conversations of
            their own); off (the default), they train the text level only — with them in the
            context level, one changed word in a neighbour moved a segment's reading further.
        speech_salt: varies the copies' noise (0: the draws documented in docs/REALDATA.md).
        context_bag: tree ensembles per task at the context level, seeded ``seed``,
            ``seed + 1``, ...; their probabilities are averaged (1: a single ensemble).
    """

    folds: int = 5
    seed: int = DEFAULT_TRAIN_SEED
    holdout_percent: int = HOLDOUT_PERCENT
    dedupe_threshold: float = 0.92
    dedupe_short_in_context: bool = False
    encoder: str | None = DEFAULT_ENCODER
    context: bool = True
    text_c: float = 4.0
    encoder_weight: float = 1.5
    corpus_weights: tuple[tuple[str, float], ...] = (("ami", 0.5),)
    standalone_weight: float = 0.5
    alone_corpora: tuple[str, ...] = ("written", "ami")
    mapped_label_percent: int = 10
    context_radius: int = 2
    tune_offsets: bool = True
    speech_copies: int = 1
    speech_copy_weight: float = 0.5
    speech_copies_in_context: bool = False
    speech_salt: int = 0
    context_bag: int = 1


def speech_copies(rows: Sequence[LabelledRow], copies: int, salt: int = 0) -> list[LabelledRow]:
    """Noised copies of the written rows, each copy of a conversation a conversation of its own.

    A copy keeps its row's labels; its group is ``<group>~s<n>`` so it is read as a separate
    conversation (its neighbours are copies too); ``meta["copy_of"]`` names the original, whose
    fold the copy must share (see :func:`train_models`).
    """
    from pipeline.classify.augment import speech_noise

    out: list[LabelledRow] = []
    for n in range(1, copies + 1):
        for r in rows:
            if r.corpus != "written":
                continue
            out.append(replace(r, id=f"{r.id}~s{n}", text=speech_noise(r.text, r.id, n, salt=salt),
                               group=f"{r.group}~s{n}", meta={**r.meta, "copy_of": r.id}))
    return out


@dataclass(slots=True)
class TrainResult:
    """The fitted model, its card and Markdown rendering, and the held-out rows."""

    model: CycleModel
    card: dict[str, Any]
    card_markdown: str
    holdout: list[LabelledRow] = field(default_factory=list)
    encoder: str | None = None


def split_rows(rows: Sequence[LabelledRow], holdout_percent: int) -> tuple[list[LabelledRow], list[LabelledRow]]:
    """Split into (train, held-out) by a hash of each row's split group, keeping row order."""
    train, holdout = [], []
    for row in rows:
        (holdout if is_holdout(row.split_group, holdout_percent) else train).append(row)
    return train, holdout


def rows_to_utterances(rows: Sequence[LabelledRow], standalone: bool = False) -> Utterances:
    """Classification input for labelled rows: conversation = group, in row order.

    Rows that carry a position (``index``, as external corpora do) start a new stretch of
    conversation wherever the positions jump, so rows left out never make two distant
    segments neighbours.
    """
    if standalone:
        return Utterances.standalone([r.text for r in rows])
    conversations: list[str] = []
    run = 0
    for i, r in enumerate(rows):
        if i and rows[i - 1].group == r.group and rows[i - 1].corpus == r.corpus:
            here, before = r.meta.get("index"), rows[i - 1].meta.get("index")
            if isinstance(here, int) and isinstance(before, int) and here != before + 1:
                run += 1
        conversations.append(f"{r.corpus}:{r.group}#{run}")
    return Utterances(tuple(r.text for r in rows), tuple(conversations), tuple(r.speaker for r in rows))


def _keeps_mapped_label(row: LabelledRow, percent: int) -> bool:
    digest = hashlib.sha256(row.id.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % 100 < percent


def prepare_external(rows: Sequence[LabelledRow], mapped_label_percent: int,
                     radius: int) -> list[LabelledRow]:
    """External rows for training and evaluation: thin the tag-mapped labels, keep context windows.

    Returns the rows (in order) that are labelled after thinning, plus up to ``radius``
    rows either side of each within the same conversation, unlabelled rows as context only.
    """
    thinned: list[LabelledRow] = []
    for r in rows:
        if r.meta.get("label_source") == "mapped" and r.labels and not _keeps_mapped_label(r, mapped_label_percent):
            r = LabelledRow(id=r.id, text=r.text, labels={}, group=r.group, source=r.source, meta=r.meta,
                            speaker=r.speaker, corpus=r.corpus)
        thinned.append(r)
    keep = np.zeros(len(thinned), dtype=bool)
    for i, r in enumerate(thinned):
        if not r.labels:
            continue
        lo, hi = i, i
        while lo > 0 and i - lo < radius and thinned[lo - 1].group == r.group:
            lo -= 1
        while hi + 1 < len(thinned) and hi - i < radius and thinned[hi + 1].group == r.group:
            hi += 1
        keep[lo : hi + 1] = True
    return [r for r, k in zip(thinned, keep) if k]


def embed_texts(encoder: Any, texts: Sequence[str], cache: bool = True,
                progress: Callable[[str], None] | None = None) -> np.ndarray:
    """Sentence vectors for ``texts``, with an on-disk cache keyed by encoder files and text.

    The cache (``$XDG_CACHE_HOME/callcycle/embeddings/<encoder>-<hash>-batch<n>.npz``) holds one
    vector per distinct text ever encoded with those exact encoder files and batch size, so
    retraining, comparisons and leave-one-writer-out folds encode each text once. The shipped float32
    encoder gives a text the same vector in any batch (and an int8 one runs one text per call), so a
    warm cache gives the same vectors as a cold one. It only saves time: a miss encodes.
    """
    say = progress or (lambda _m: None)
    files_key = hashlib.sha256(json_bytes(encoder.info.get("files", {}))).hexdigest()[:16]
    # the batch size is part of the key: vectors of different batch sizes never share a cache file
    path = cache_dir("embeddings") / f"{encoder.name}-{files_key}-batch{encoder.batch_size}.npz"
    keys = [hashlib.sha1(t.encode("utf-8", "replace")).hexdigest() for t in texts]
    known: dict[str, int] = {}
    stored_keys = np.zeros(0, dtype="<U40")
    stored = np.zeros((0, encoder.dimension), dtype=np.float32)
    if cache and path.is_file():
        try:
            with np.load(path) as data:
                stored_keys, stored = data["keys"], data["vectors"]
            known = {k: i for i, k in enumerate(stored_keys.tolist())}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # e.g. a torn write
            logger.warning("ignoring an unreadable embedding cache %s (%s); its texts are encoded again",
                           path, exc)
    missing = sorted({k: i for i, k in enumerate(keys) if k not in known}.items(), key=lambda kv: kv[1])
    new_vectors = np.zeros((len(missing), encoder.dimension), dtype=np.float32)
    if missing:
        say(f"encoding {len(missing)} texts with {encoder.name}")
        step = 4096
        for begin in range(0, len(missing), step):
            chunk = [texts[i] for _k, i in missing[begin : begin + step]]
            new_vectors[begin : begin + len(chunk)] = encoder.encode(chunk)
            say(f"encoded {min(begin + step, len(missing))}/{len(missing)}")
    out = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    fresh = {k: j for j, (k, _i) in enumerate(missing)}
    for i, k in enumerate(keys):
        out[i] = stored[known[k]] if k in known else new_vectors[fresh[k]]
    if cache and missing:
        try:
            # a temporary name of this writer's own: two processes filling the cache at once (parallel
            # leave-one-writer-out runs) each publish a whole file, the later one winning
            tmp = temp_path(path)
            try:
                with open(tmp, "wb") as handle:
                    np.savez(handle, keys=np.concatenate([stored_keys, np.asarray([k for k, _ in missing],
                                                                                  dtype="<U40")]),
                             vectors=np.vstack([stored, new_vectors]))
                publish(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:  # a cache is an optimisation; never fail training over it
            logger.warning("could not write the embedding cache %s: %s", path, exc)
    return out


def json_bytes(obj: Any) -> bytes:
    """``obj`` as canonical JSON bytes (sorted keys), for hashing."""
    return json.dumps(obj, sort_keys=True).encode("utf-8")


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               n_bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """ECE of top-label confidence, and the reliability table (one row per non-empty bin)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    table: list[dict[str, float]] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if not mask.any():
            continue
        conf, acc = float(confidence[mask].mean()), float(correct[mask].mean())
        ece += mask.mean() * abs(conf - acc)
        table.append({"bin_low": float(lo), "bin_high": float(hi), "confidence": conf,
                      "accuracy": acc, "count": int(mask.sum())})
    return float(ece), table


#: Resamples and confidence level of the macro-F1 interval (:func:`macro_f1_interval`).
INTERVAL_RESAMPLES = 1000
INTERVAL_LEVEL = 0.95


def _group_weights(groups: Sequence[str], resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(group index per row, resample x group draw counts)``; ``None`` with fewer than two groups."""
    group_ids: dict[str, int] = {}
    index = np.asarray([group_ids.setdefault(g, len(group_ids)) for g in groups], dtype=np.int64)
    n_groups = len(group_ids)
    if n_groups < 2:
        return None
    draws = np.random.default_rng(seed).integers(0, n_groups, size=(resamples, n_groups))
    weights = np.zeros((resamples, n_groups), dtype=np.int64)
    np.add.at(weights, (np.repeat(np.arange(resamples), n_groups), draws.ravel()), 1)
    return index, weights


def _percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` share of ``samples``: ``(low, high)`` percentiles."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _resampled_macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                        group_index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 over ``labels`` for each resample (row of ``weights``: how often each group is drawn)."""
    position = {lbl: i for i, lbl in enumerate(labels)}
    k = len(position)
    counts = np.zeros((weights.shape[1], k, k), dtype=np.int64)  # per group: true x predicted
    for t, q, g in zip(y_true, y_pred, group_index):
        if t in position and q in position:
            counts[g, position[t], position[q]] += 1
    total = np.einsum("rg,gtp->rtp", weights, counts)
    tp = np.einsum("rcc->rc", total)
    denominator = total.sum(axis=2) + total.sum(axis=1)  # 2tp + fn + fp
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=float), where=denominator > 0)
    return np.asarray(f1.mean(axis=1))


def _present(labels: Sequence[str], *columns: Sequence[str]) -> list[str]:
    seen = set().union(*(set(c) for c in columns))
    return [lbl for lbl in labels if lbl in seen]


def macro_f1_interval(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                      groups: Sequence[str], resamples: int = INTERVAL_RESAMPLES,
                      level: float = INTERVAL_LEVEL, seed: int = 0) -> tuple[float, float] | None:
    """Percentile interval of macro-F1 from resampling whole groups (conversations) with replacement.

    Rows of one conversation share a speaker, a topic and a writer, so they are not independent
    draws: resampling rows would make the interval too narrow. Each resample draws as many
    groups as there are, with replacement, and sums their confusion counts; macro-F1 is taken
    over ``labels`` (the same label set as the point estimate). ``None`` with fewer than two
    groups or no labels. Deterministic for a given ``seed``.
    """
    drawn = _group_weights(groups, resamples, seed)
    if drawn is None or not len(labels):
        return None
    return _percentile_interval(_resampled_macro_f1(y_true, y_pred, list(labels), *drawn), level)


def mean_interval(values: Sequence[float], resamples: int = INTERVAL_RESAMPLES, level: float = INTERVAL_LEVEL,
                  seed: int = 0) -> tuple[float, float] | None:
    """Percentile interval of a mean from resampling ``values`` (one per conversation) with
    replacement, e.g. the calls' action-share errors; ``None`` with fewer than two values."""
    data = np.asarray(list(values), dtype=float)
    if len(data) < 2:
        return None
    draws = np.random.default_rng(seed).integers(0, len(data), size=(resamples, len(data)))
    return _percentile_interval(data[draws].mean(axis=1), level)


def paired_macro_f1_difference(y_true: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str],
                               labels: Sequence[str], groups: Sequence[str],
                               resamples: int = INTERVAL_RESAMPLES, level: float = INTERVAL_LEVEL,
                               seed: int = 0) -> dict[str, Any]:
    """Macro-F1 of two models' predictions on the same rows, and a paired interval of ``b - a``.

    Both models are scored on the *same* resampled conversations, so what the two sets of rows
    have in common cancels out: the interval of the difference is far narrower than either
    model's own interval, and says whether this source tells the two models apart (an interval
    that contains 0 does not). Each model's macro-F1 is over the labels in the gold and its own
    predictions, as in :func:`classification_metrics`.
    """
    labels_a, labels_b = _present(labels, y_true, pred_a), _present(labels, y_true, pred_b)
    a = float(f1_score(y_true, pred_a, labels=labels_a, average="macro", zero_division=0))
    b = float(f1_score(y_true, pred_b, labels=labels_b, average="macro", zero_division=0))
    result: dict[str, Any] = {"n": len(y_true), "a": a, "b": b, "difference": b - a}
    drawn = _group_weights(groups, resamples, seed)
    if drawn is not None:
        low, high = _percentile_interval(_resampled_macro_f1(y_true, pred_b, labels_b, *drawn)
                                         - _resampled_macro_f1(y_true, pred_a, labels_a, *drawn), level)
        result["interval"] = [round(low, 4), round(high, 4)]
        result["groups"] = int(drawn[1].shape[1])
    return result


def format_interval(interval: Sequence[float] | None) -> str:
    """`` [0.712-0.801]`` for an interval, nothing for ``None``."""
    return f" [{interval[0]:.3f}-{interval[1]:.3f}]" if interval else ""


#: Below this many conversations a resampled interval says little: `evaluate` and `compare` say so, and
#: cards and tables show the count beside the figure.
MIN_INTERVAL_GROUPS = 5


def format_macro_f1(metrics: dict[str, Any]) -> str:
    """``0.757 [0.712-0.801] (1381)``: macro-F1, its interval when known, and the rows scored; where the
    interval rests on fewer than :data:`MIN_INTERVAL_GROUPS` conversations, or none could be drawn, how many
    there were (``0.642 [no interval: 1 conversation] (13)``)."""
    interval, groups = metrics.get("macro_f1_interval"), metrics.get("interval_groups")
    count = (f"{groups} conversation{'' if groups == 1 else 's'}"
             if isinstance(groups, int) and groups < MIN_INTERVAL_GROUPS else "")
    if interval:
        shown = f" [{interval[0]:.3f}-{interval[1]:.3f}{'; ' + count if count else ''}]"
    else:
        shown = f" [no interval: {count}]" if count else ""
    return f"{metrics['macro_f1']:.3f}{shown} ({metrics['n']})"


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                           proba: np.ndarray | None = None, texts: Sequence[str] | None = None,
                           groups: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-class precision/recall/F1, macro-F1, accuracy, confusion matrix, ECE, confused pairs.

    With ``groups`` (the conversation of each row) it adds ``macro_f1_interval``, a 95%
    interval from resampling whole conversations (:func:`macro_f1_interval`), and
    ``interval_groups``, how many conversations it resampled.
    """
    labels = list(labels)
    present = _present(labels, y_true, y_pred)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)
    result: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class": {lbl: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, lbl in enumerate(present)},
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if groups is not None:
        interval = macro_f1_interval(y_true, y_pred, present, groups)
        if interval is not None:
            result["macro_f1_interval"] = [round(interval[0], 4), round(interval[1], 4)]
            result["interval_groups"] = len(set(groups))
    if proba is not None and len(y_true):
        confidence = proba.max(axis=1)
        correct = np.asarray(y_true) == np.asarray(y_pred)
        ece, table = expected_calibration_error(confidence, correct)
        result["ece"] = ece
        result["reliability"] = table
    pairs = Counter((t, q) for t, q in zip(y_true, y_pred) if t != q)
    confused = []
    for (true, pred), count in pairs.most_common(4):
        examples = ([texts[i] for i in range(len(y_true)) if y_true[i] == true and y_pred[i] == pred][:3]
                    if texts else [])
        confused.append({"true": true, "predicted": pred, "count": count, "examples": examples})
    result["most_confused"] = confused
    return result


def _thread_settings() -> dict[str, Any]:
    """The CPU threads training could use (a retrain with another count gives slightly different figures)."""
    import os

    return {"cpus": os.cpu_count(), **{name: os.environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                              "OPENBLAS_NUM_THREADS")
                                       if os.environ.get(name)}}


def _threads_text(threads: dict[str, Any]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in threads.items() if k != "cpus")
    return f"{threads.get('cpus')} CPUs" + (f", {extra}" if extra else "")


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for dist in ("callcycle", "scikit-learn", "spacy", "skops", "numpy", "scipy", "onnxruntime", "tokenizers"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _labels_by_task(rows: Sequence[LabelledRow], taxonomy: Taxonomy) -> dict[str, list[str | None]]:
    return {t.name: [r.labels.get(t.name) for r in rows] for t in taxonomy.tasks}


def _metrics_for(rows: Sequence[LabelledRow], proba: dict[str, np.ndarray], model: CycleModel,
                 taxonomy: Taxonomy, scored: Sequence[int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    candidates = range(len(rows)) if scored is None else scored
    stage_task, ta_task = taxonomy.by_role("stage"), taxonomy.by_role("talk_action")
    stage_pred = ([model.classes_[stage_task.name][int(j)] for j in np.argmax(proba[stage_task.name], axis=1)]
                  if stage_task.name in proba else None)
    for task in taxonomy.tasks:
        idx = [i for i in candidates if task.name in rows[i].labels]
        if not idx:
            continue
        classes = model.classes_[task.name]
        p = proba[task.name][idx]
        pred = [classes[int(j)] for j in np.argmax(p, axis=1)]
        if task.name == ta_task.name and stage_pred is not None:
            # measured as the product labels: the neutral-stage rule applies
            pred = [taxonomy.talk_action_given_stage(stage_pred[i], y) for i, y in zip(idx, pred)]
        full = np.zeros((len(idx), len(task.labels)))
        for j, c in enumerate(classes):
            full[:, list(task.labels).index(c)] = p[:, j]
        out[task.name] = classification_metrics([rows[i].labels[task.name] for i in idx], pred, task.labels,
                                                full if len(classes) == len(task.labels) else None,
                                                [rows[i].text for i in idx], [rows[i].group for i in idx])
    return out


def evaluate_rows(model: CycleModel, rows: Sequence[LabelledRow], taxonomy: Taxonomy,
                  embeddings: np.ndarray | None, standalone: bool = False,
                  use_context: bool | None = None, scored: Sequence[int] | None = None) -> dict[str, Any]:
    """Per-task metrics of ``model`` on ``rows`` (in conversation order unless ``standalone``).

    All rows are classified (they are each other's context); only ``scored`` rows (default:
    all) count in the metrics.
    """
    utterances = rows_to_utterances(rows, standalone)
    proba = model.predict_proba(utterances, embeddings, use_context=use_context)
    return _metrics_for(rows, proba, model, taxonomy, scored)


def evaluate_sets(model: CycleModel, sets: Sequence[BenchmarkSet], taxonomy: Taxonomy,
                  encoder: Any = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Metrics per benchmark set (see :mod:`pipeline.classify.benchmark`)."""
    out: dict[str, Any] = {}
    for bench in sets:
        vectors = embed_texts(encoder, [r.text for r in bench.rows], progress=progress) if encoder else None
        out[bench.name] = evaluate_rows(model, bench.rows, taxonomy, vectors, standalone=not bench.in_context,
                                        scored=bench.scored)
    return out


def train_models(rows: Sequence[LabelledRow], taxonomy: Taxonomy, config: TrainConfig | None = None,
                 version: str | None = None, progress: Callable[[str], None] | None = None,
                 models_root: Path | None = None, extra_sets: Sequence[BenchmarkSet] = ()) -> TrainResult:
    """Deduplicate, split, fit the two-level model, and evaluate it per source.

    Args:
        rows: validated labelled rows, conversations in order (written rows carry every
            task; external rows may carry only some).
        taxonomy: the tasks and label sets.
        config: training options.
        version: artifact version name; default ``<taxonomy>-<UTC timestamp>-<data hash[:8]>``.
        progress: called with short status messages.
        models_root: where ``encoders/<config.encoder>`` lives (default ``models``).
        extra_sets: further evaluation sets never trained on (e.g. the shared real text),
            reported in the card next to the held-out splits.

    Raises:
        LabelDataError: a task label with too few training rows.
    """
    cfg = config or TrainConfig()
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    rows = list(rows)
    written = [r for r in rows if r.corpus == "written"]
    external = prepare_external([r for r in rows if r.corpus != "written"], cfg.mapped_label_percent,
                                cfg.context_radius)
    kept_written, n_dropped, conflicts = near_duplicates_dropped(written, cfg.dedupe_threshold,
                                                                  cfg.dedupe_short_in_context)
    for kept_row, dropped_row in conflicts[:5]:
        say(f"near-duplicates labelled differently: {dropped_row.text[:60]!r} ({dropped_row.source}, "
            f"{dropped_row.labels}) dropped, {kept_row.source}'s {kept_row.labels} kept")
    if len(conflicts) > 5:
        say(f"... and {len(conflicts) - 5} more near-duplicate pairs labelled differently (card: data)")
    kept = kept_written + external
    # a file with no conversation column: every row is read alone, in training and in its held-out figures
    alone = sorted({r.source for r in kept_written} - {r.source for r in kept_written if r.group != r.id})
    if alone and cfg.context:
        logger.warning("%s: no 'group' values, so every row is its own conversation: the context level learns "
                       "nothing from neighbours there, and in-context figures equal one-sentence ones. Give the rows "
                       "of one conversation the same 'group'.", ", ".join(Path(s).name for s in alone))
    train_rows, holdout_rows = split_rows(kept, cfg.holdout_percent)
    say(f"{len(rows)} rows, {n_dropped} near-duplicates dropped, {len(train_rows)} train, "
        f"{len(holdout_rows)} held out")
    for task in taxonomy.tasks:
        counts = Counter(r.labels[task.name] for r in train_rows if task.name in r.labels)
        thin = [lbl for lbl in task.labels if counts.get(lbl, 0) < cfg.folds]
        if thin:
            seen = ", ".join(f"{lbl} {counts.get(lbl, 0)}" for lbl in thin)
            # lowering --folds helps only a label with rows, and only down to 2
            lower = cfg.folds > 2 and all(counts.get(lbl, 0) >= 2 for lbl in thin)
            raise LabelDataError(
                f"Task {task.name!r}: labels {thin} have fewer than {cfg.folds} training rows ({seen}; "
                "held-out conversations not counted).",
                "Add labelled examples for them" + (", or lower --folds." if lower else
                                                    " (every label of the taxonomy needs some)."))
    encoder = None
    if cfg.encoder:
        from pipeline.classify.encoder import load_encoder

        encoder = load_encoder(Path(models_root or "models") / "encoders" / cfg.encoder)
    d_hash = data_hash(kept)
    stamp = datetime.now(UTC)
    version = version or f"{taxonomy.name}-{stamp:%Y%m%dT%H%M%SZ}-{d_hash[:8]}"

    copies = speech_copies(train_rows, cfg.speech_copies, cfg.speech_salt)
    # A copy's fold is its original's, so no out-of-fold probability comes from a model that saw it.
    fold_of = {r.id: r.split_group for r in train_rows}
    fold_groups = [r.split_group for r in train_rows] + [fold_of[c.meta["copy_of"]] for c in copies]
    n_original = len(train_rows)
    train_rows = train_rows + copies
    is_copy = np.arange(len(train_rows)) >= n_original
    all_rows = train_rows + holdout_rows
    vectors = embed_texts(encoder, [r.text for r in all_rows], progress=say) if encoder else None
    train_vec = vectors[: len(train_rows)] if vectors is not None else None
    hold_vec = vectors[len(train_rows) :] if vectors is not None else None
    weights_by_corpus = dict(cfg.corpus_weights)
    weights = (np.asarray([weights_by_corpus.get(r.corpus, 1.0) for r in train_rows])
               * np.where(is_copy, cfg.speech_copy_weight, 1.0))
    model = CycleModel(tasks={t.name: list(t.labels) for t in taxonomy.tasks}, use_encoder=encoder is not None,
                       use_context=cfg.context, text_c=cfg.text_c, encoder_weight=cfg.encoder_weight,
                       context_folds=cfg.folds, random_state=cfg.seed, tune_offsets=cfg.tune_offsets,
                       context_bag=cfg.context_bag)
    oof: dict[str, np.ndarray] = {}
    model.fit(rows_to_utterances(train_rows), _labels_by_task(train_rows, taxonomy), train_vec,
              groups=fold_groups, sample_weight=weights,
              balance_groups=[r.corpus for r in train_rows],
              standalone_weight=cfg.standalone_weight,
              standalone_mask=np.asarray([r.corpus == "written" for r in train_rows]) & ~is_copy,
              alone_mask=(np.asarray([r.corpus in cfg.alone_corpora for r in train_rows]) & ~is_copy
                          if cfg.alone_corpora else None),
              context_mask=None if cfg.speech_copies_in_context else ~is_copy,
              oof_out=oof, progress=say)
    cross_validated = (_metrics_for(train_rows[:n_original], {t: p[:n_original] for t, p in oof.items()}, model,
                                    taxonomy) if oof else {})

    evaluation: dict[str, Any] = {}
    by_corpus: dict[str, list[int]] = {}
    for i, r in enumerate(holdout_rows):
        by_corpus.setdefault(r.corpus, []).append(i)
    for corpus, idx in sorted(by_corpus.items()):
        subset = [holdout_rows[i] for i in idx]
        vec = hold_vec[idx] if hold_vec is not None else None
        if corpus == "ami":
            position = {r.id: j for j, r in enumerate(subset)}
            for view in ami_views(subset):
                if view.in_context:
                    evaluation[view.name] = evaluate_rows(model, subset, taxonomy, vec, scored=view.scored)
                    continue
                view_vec = vec[[position[r.id] for r in view.rows]] if vec is not None else None
                evaluation[view.name] = evaluate_rows(model, view.rows, taxonomy, view_vec, standalone=True)
            continue
        evaluation[f"{corpus} held-out (in context)"] = evaluate_rows(model, subset, taxonomy, vec)
        if corpus == "written":
            evaluation["written held-out (one sentence at a time)"] = evaluate_rows(
                model, subset, taxonomy, vec, standalone=True)
    if extra_sets:
        evaluation.update(evaluate_sets(model, extra_sets, taxonomy, encoder, progress=say))
    from pipeline.classify.artifacts import taxonomy_to_dict

    tasks_card: dict[str, Any] = {}
    for task in taxonomy.tasks:
        y_train = [r.labels[task.name] for r in train_rows[:n_original] if task.name in r.labels]
        entry: dict[str, Any] = {
            "labels": list(task.labels),
            "selected": _recipe(cfg, encoder is not None),
            "candidates": {},
            "train_counts": dict(Counter(y_train)),
        }
        offsets = getattr(model, "offsets_", {}).get(task.name)
        if offsets is not None:
            entry["decision_offsets"] = {c: round(float(o), 2)
                                         for c, o in zip(model.classes_[task.name], offsets)}
        alone_offsets = getattr(model, "alone_offsets_", {}).get(task.name)
        if alone_offsets is not None:
            entry["alone_decision_offsets"] = {c: round(float(o), 2)
                                               for c, o in zip(model.classes_[task.name], alone_offsets)}
        if task.name in cross_validated:
            entry["cross_validated"] = cross_validated[task.name]
        written_hold = evaluation.get("written held-out (in context)", {})
        if task.name in written_hold:
            entry["holdout"] = written_hold[task.name]
            entry["holdout_counts"] = dict(Counter(r.labels[task.name] for r in holdout_rows
                                                   if r.corpus == "written"))
        tasks_card[task.name] = entry
        say(f"{task.name}: " + ", ".join(f"{name} {m[task.name]['macro_f1']:.3f}"
                                         for name, m in evaluation.items() if task.name in m))
    card: dict[str, Any] = {
        "version": version,
        "created_at": stamp.isoformat(),
        "taxonomy": taxonomy_to_dict(taxonomy),
        "encoder": ({"name": encoder.name, "files": dict(encoder.info.get("files", {})),
                     "source": encoder.info.get("source")} if encoder else None),
        "data": {
            "hash": d_hash,
            "rows_total": len(rows),
            "near_duplicates_dropped": n_dropped,
            "near_duplicates_labelled_differently": len(conflicts),
            "near_duplicate_rule": (f"written rows: cosine of char 3-5-gram TF-IDF of normalised text "
                                    f">= {cfg.dedupe_threshold}"
                                    + (f"; a reply of {SHORT_REPLY_WORDS} words or fewer is compared together with "
                                       "the turn before it" if cfg.dedupe_short_in_context else "")),
            "rows_train": n_original,
            "rows_speech_copies": len(copies),
            "rows_holdout": len(holdout_rows),
            "holdout_rule": f"int(sha256(split group) first 8 hex digits, 16) % 100 < {cfg.holdout_percent}",
            "split_group": "the conversation group; for AMI, the meeting series (ES2002a-d -> ES2002)",
            "sources": dict(Counter(r.source for r in kept)),
            "corpora": {c: {"rows": n, **{t.name: dict(Counter(r.labels[t.name] for r in kept
                                                                 if r.corpus == c and t.name in r.labels))
                                         for t in taxonomy.tasks}}
                        for c, n in Counter(r.corpus for r in kept).items()},
        },
        "training": {**{k: v for k, v in asdict(cfg).items()}, "recipe": _recipe(cfg, encoder is not None),
                     "seconds": round(time.perf_counter() - started, 1), "threads": _thread_settings()},
        "evaluation": evaluation,
        "tasks": tasks_card,
        "libraries": _library_versions(),
    }
    return TrainResult(model=model, card=card, card_markdown=render_card_markdown(card),
                       holdout=holdout_rows, encoder=encoder.name if encoder else None)


def _recipe(cfg: TrainConfig, with_encoder: bool) -> str:
    text = "TF-IDF word 1-2 + char 2-5 grams + cues" + (f" + {cfg.encoder} vectors" if with_encoder else "")
    text += f" -> logistic regression (C={cfg.text_c}, labels balanced within each corpus)"
    if cfg.context:
        text += " -> context: gradient-boosted trees over own, previous and next segments' probabilities"
        if cfg.context_bag > 1:
            text += f" (mean of {cfg.context_bag} ensembles seeded {cfg.seed}-{cfg.seed + cfg.context_bag - 1})"
        if cfg.tune_offsets:
            text += " -> per-class prior offsets chosen on its out-of-fold probabilities (mean per-corpus macro-F1)"
        if cfg.alone_corpora:
            text += ("; a segment with no neighbours is read by a second context level (and offsets) trained on "
                     + ", ".join(cfg.alone_corpora) + " rows shown alone")
    return text


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, m in metrics["per_class"].items():
        lines.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines.append(f"\nmacro-F1 **{metrics['macro_f1']:.3f}**, accuracy {metrics['accuracy']:.3f}"
                 + (f", ECE {metrics['ece']:.3f}" if "ece" in metrics else ""))
    labels = metrics["labels"]
    lines += ["", "Confusion (rows = true, columns = predicted):", "",
              "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, metrics["confusion"]):
        lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    if metrics.get("reliability"):
        lines += ["", "Reliability (top-label confidence vs accuracy):", "",
                  "| bin | mean confidence | accuracy | n | |", "|---|---|---|---|---|"]
        for b in metrics["reliability"]:
            bar = "#" * int(round(b["accuracy"] * 20))
            lines.append(f"| {b['bin_low']:.1f}-{b['bin_high']:.1f} | {b['confidence']:.2f} | "
                         f"{b['accuracy']:.2f} | {b['count']} | `{bar}` |")
    if metrics.get("most_confused"):
        lines += ["", "Most confused pairs:", ""]
        for pair in metrics["most_confused"]:
            examples = "; ".join(f"“{e}”" for e in pair["examples"])
            lines.append(f"- {pair['true']} → {pair['predicted']} ({pair['count']}): {examples}")
    return lines


def render_card_markdown(card: dict[str, Any], cross_writer: dict[str, Any] | None = None) -> str:
    """Human-readable model card: data per corpus, recipe, and metrics per evaluation source.

    ``cross_writer`` (the ``cross_writer.json`` that ``scripts/cross_writer.py`` writes beside the
    artifact) adds the leave-one-writer-out section.
    """
    data = card["data"]
    training = card["training"]
    lines = [f"# Model card: {card['version']}", "",
             f"Created {card['created_at']}. Taxonomy **{card['taxonomy']['name']}** "
             f"v{card['taxonomy']['version']}.", "",
             "## Data", "",
             f"- data hash `{data['hash']}`",
             f"- {data['rows_total']} labelled rows; {data['near_duplicates_dropped']} near-duplicates dropped "
             f"({data['near_duplicate_rule']})"
             + (f", {data['near_duplicates_labelled_differently']} of them labelled otherwise than the row kept"
                if data.get("near_duplicates_labelled_differently") else ""),
             f"- {data['rows_train']} training rows, {data['rows_holdout']} held-out rows ({data['holdout_rule']}; "
             f"split group: {data.get('split_group', 'conversation group')})"]
    if data.get("sources"):  # which files, by name (card.json keeps the paths)
        lines.append("- files (rows kept): " + ", ".join(f"`{Path(path).name}` {count}"
                                                         for path, count in data["sources"].items()))
    lines.append("")
    if data.get("corpora"):
        lines += ["| corpus | rows | labels |", "|---|---|---|"]
        for corpus, info in data["corpora"].items():
            labels = "; ".join(f"{task}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                               for task, counts in info.items() if task != "rows" and counts)
            lines.append(f"| {corpus} | {info['rows']} | {labels} |")
        lines.append("")
    lines += ["## Recipe", "", f"- {training.get('recipe', '')}"]
    if card.get("encoder"):
        enc = card["encoder"]
        lines.append(f"- sentence encoder `{enc['name']}` (onnxruntime; source: "
                     f"{(enc.get('source') or {}).get('upstream', '?')}, "
                     f"{(enc.get('source') or {}).get('licence', '?')})")
    # As JSON holds them (tuples become lists), so a card re-rendered from card.json reads the same.
    options = json.loads(json.dumps({k: v for k, v in training.items() if k not in {"recipe", "seconds"}}))
    lines += ["- options: " + ", ".join(f"{k}={v}" for k, v in options.items()),
              f"- training time {training['seconds']} s"
              + (f" ({_threads_text(training['threads'])}: the boosted trees and the encoder sum in another order "
                 "with another thread count, so a retrain elsewhere can differ in the third decimal)"
                 if training.get("threads") else ""), ""]
    evaluation = card.get("evaluation", {})
    if evaluation:
        tasks = list(card["tasks"])
        lines += ["## Results per source", "", "Macro-F1 [95% interval from resampling whole conversations] (rows). "
                  "Real speech and other people's phrasing are the test that matters; the written held-out "
                  "split is our own writers' style. Whether two models differ on a source: `callcycle compare A B "
                  "--benchmark` (paired intervals).", "",
                  "| source | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        for name, metrics in evaluation.items():
            cells = [format_macro_f1(metrics[t]) if t in metrics else "—" for t in tasks]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if cross_writer:
        lines += _cross_writer_lines(cross_writer, list(card["tasks"]))
    for name, task in card["tasks"].items():
        lines += [f"## Task `{name}`: {' / '.join(task['labels'])}", ""]
        if task.get("decision_offsets"):
            lines += ["Decision offsets (log-prior added per class after the context level): "
                      + ", ".join(f"{k} {v:+.2f}" for k, v in task["decision_offsets"].items()), ""]
        if task.get("alone_decision_offsets"):
            lines += ["Decision offsets of the one-sentence context level (segments with no neighbours): "
                      + ", ".join(f"{k} {v:+.2f}" for k, v in task["alone_decision_offsets"].items()), ""]
        if task.get("cross_validated"):
            lines += ["### Text level, out-of-fold on the training rows", ""]
            lines += _metrics_table(task["cross_validated"])
            lines.append("")
        for source, metrics in evaluation.items():
            if name in metrics:
                lines += [f"### {source}", ""] + _metrics_table(metrics[name]) + [""]
    for key, title in (("calls", "Labelled calls (call level)"), ("benchmark", "Real-speech benchmark")):
        if card.get(key):
            lines += [f"## {title}", "", "```json", json_dumps(card[key]), "```", ""]
    lines += ["## Libraries", ""] + [f"- {k} {v}" for k, v in card["libraries"].items()]
    return "\n".join(lines) + "\n"


def _cross_writer_lines(results: dict[str, Any], tasks: list[str]) -> list[str]:
    """The card's leave-one-writer-out section: macro-F1 per held-out writer, mean and worst."""
    views = [(view, view.replace("_", " ")) for view in CROSS_WRITER_VIEWS]
    done, missing = len(results.get("writers", {})), list(results.get("writers_missing", []))
    lines = ["## Leave-one-writer-out", "",
             "Each writer's corpus file held out in turn: the recipe above retrained on every other writer "
             "(real-speech corpora included) and scored on the unseen writer's conversations, macro-F1 "
             f"(`scripts/cross_writer.py`, `cross_writer.json`; {results.get('scope', 'the full recipe')}).", "",
             *([f"**Partial: {done} of {done + len(missing)} writers done; not yet run: "
                f"{', '.join(missing) or 'unknown'}** (`make cross-writer` runs the rest). Mean and worst cover "
                "the writers done.", ""] if results.get("partial") else []),
             "| writer | rows | " + " | ".join(f"{t}, {label}" for _, label in views for t in tasks) + " |",
             "|---" * (2 + len(tasks) * len(views)) + "|"]
    for writer, entry in results.get("writers", {}).items():
        cells = [f"{entry[view][t]:.3f}" if t in entry.get(view, {}) else "—" for view, _ in views for t in tasks]
        lines.append(f"| {writer} | {entry['rows']} | " + " | ".join(cells) + " |")
    summary = results.get("summary", {})
    for stat in ("mean", "worst"):
        cells = [f"**{summary[f'{t} ({view})'][stat]:.3f}**" if f"{t} ({view})" in summary else "—"
                 for view, _ in views for t in tasks]
        lines.append(f"| {stat} | | " + " | ".join(cells) + " |")
    return lines + [""]


def json_dumps(obj: Any) -> str:
    """``obj`` as indented JSON for a card file (dates and paths as strings)."""
    return json.dumps(obj, indent=2, default=str)
