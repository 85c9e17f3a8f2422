"""The segment classifier: text features, a sentence encoder and the conversation around a segment.

A segment's meaning depends on its neighbours: "yes, Tuesday works" is action because of
the request before it. :class:`CycleModel` is a two-level stack, one per artifact, covering
every task of the taxonomy:

1. **Text level** — per task, a logistic regression over TF-IDF word and character
   n-grams, spaCy Matcher cues (:mod:`pipeline.classify.features`) and, when an encoder is
   used, the segment's sentence vector (:mod:`pipeline.classify.encoder`). It reads one
   segment alone.
2. **Context level** — per task, a gradient-boosted tree model over the text-level
   probabilities of the segment, of the previous and of the next segment (every task),
   whether those neighbours are the same speaker, the segment's cues and length, and its
   position in the conversation. It is fitted on *out-of-fold* text-level probabilities
   (grouped by conversation), so it learns how much to trust them.

Rows may carry only some of the labels (real corpora rarely annotate both dimensions):
each task's models are fitted on the rows that have that task's label, while every row,
labelled or not, serves as context for its neighbours.

The class follows the scikit-learn conventions (``__init__`` stores arguments, learned
attributes end in ``_``) so it persists with skops; the encoder itself is not stored in it —
sentence vectors are computed outside and passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from pipeline.classify.features import CUE_NAMES, build_feature_union
from pipeline.config import usable_cpus

__all__ = ["Utterances", "CycleModel", "context_feature_names", "balanced_weights", "apply_offsets",
           "choose_offsets"]

#: The grid of log-prior offsets :func:`choose_offsets` searches, per class.
OFFSET_GRID = np.round(np.arange(-2.5, 1.01, 0.1), 2)


def apply_offsets(proba: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Probabilities re-weighted by ``exp(offset)`` per class and renormalised (a prior shift)."""
    weighted = np.asarray(proba, dtype=float) * np.exp(np.asarray(offsets, dtype=float))[None, :]
    total = weighted.sum(axis=1, keepdims=True)
    return np.divide(weighted, total, out=np.full_like(weighted, 1.0 / weighted.shape[1]), where=total > 0)


def _mean_group_macro_f1(pred: np.ndarray, gold: np.ndarray, groups: np.ndarray, n_classes: int) -> float:
    scores = []
    for g in np.unique(groups):
        sel = groups == g
        f1s = []
        for c in range(n_classes):
            tp = np.sum((pred[sel] == c) & (gold[sel] == c))
            fp = np.sum((pred[sel] == c) & (gold[sel] != c))
            fn = np.sum((pred[sel] != c) & (gold[sel] == c))
            if tp + fp + fn:
                f1s.append(2 * tp / (2 * tp + fp + fn))
        scores.append(float(np.mean(f1s)) if f1s else 0.0)
    return float(np.mean(scores))


def choose_offsets(proba: np.ndarray, gold: Sequence[str], classes: Sequence[str], groups: Sequence[str],
                   min_rows: int = 50, passes: int = 3, tolerance: float = 0.005) -> np.ndarray:
    """Log-prior offsets per class that maximise the mean per-group macro-F1 of ``argmax``.

    ``proba`` are out-of-fold probabilities of labelled rows (columns in ``classes`` order),
    ``groups`` their corpora; groups with fewer than ``min_rows`` rows are left out. The first
    class keeps offset 0; the others are searched one at a time over :data:`OFFSET_GRID`
    (coordinate ascent, ``passes`` rounds). For each class the offset closest to 0 whose score
    is within ``tolerance`` of that class's best is taken: the smallest correction that does
    the job, since the training corpora's label mix is not the mix of the calls it will read.
    """
    proba = np.asarray(proba, dtype=float)
    index = {c: i for i, c in enumerate(classes)}
    gold_idx = np.asarray([index[g] for g in gold])
    group_arr = np.asarray(list(groups), dtype=object)
    sizes = {g: int(np.sum(group_arr == g)) for g in set(group_arr.tolist())}
    keep = np.asarray([sizes[g] >= min_rows for g in group_arr]) & np.all(np.isfinite(proba), axis=1)
    offsets = np.zeros(len(classes))
    if not keep.any() or len(classes) < 2:
        return offsets
    log_p = np.log(np.clip(proba[keep], 1e-12, 1.0))
    gold_idx, group_arr = gold_idx[keep], group_arr[keep]

    def evaluate(candidate: np.ndarray) -> float:
        return _mean_group_macro_f1(np.argmax(log_p + candidate, axis=1), gold_idx, group_arr, len(classes))

    for _ in range(passes):
        changed = False
        for c in range(1, len(classes)):
            scores: dict[float, float] = {}
            for value in OFFSET_GRID:
                trial = offsets.copy()
                trial[c] = value
                scores[float(value)] = evaluate(trial)
            top = max(scores.values())
            chosen = min((v for v, got in scores.items() if got >= top - tolerance), key=abs)
            if chosen != offsets[c]:
                offsets[c], changed = chosen, True
        if not changed:
            break
    return offsets


def balanced_weights(labels: Sequence[str | None], groups: Sequence[str], base: np.ndarray) -> np.ndarray:
    """Sample weights that give every label the same total weight *within each group*.

    Groups are corpora: in real meeting speech most acts are talk, in our written corpus
    nearly half are action. Balancing each corpus on its own keeps a corpus's style from
    standing in for a label (spoken style -> talk) while every corpus keeps its total weight.
    Unlabelled rows get 0.
    """
    out = np.zeros(len(labels))
    totals: dict[str, float] = {}
    per_label: dict[tuple[str, str], float] = {}
    for y, g, w in zip(labels, groups, base):
        if y is None:
            continue
        totals[g] = totals.get(g, 0.0) + float(w)
        per_label[(g, y)] = per_label.get((g, y), 0.0) + float(w)
    n_labels = {g: sum(1 for (gg, _y) in per_label if gg == g) for g in totals}
    for i, (y, g, w) in enumerate(zip(labels, groups, base)):
        if y is not None and per_label[(g, y)] > 0:
            out[i] = float(w) * totals[g] / (n_labels[g] * per_label[(g, y)])
    return out


@dataclass(frozen=True, slots=True)
class Utterances:
    """Classification input: texts in conversation order, with who said them.

    Attributes:
        texts: one text per segment.
        conversations: conversation (call) id per segment; consecutive segments with the
            same id are neighbours.
        speakers: speaker per segment ("" when unknown).
    """

    texts: tuple[str, ...]
    conversations: tuple[str, ...]
    speakers: tuple[str, ...]

    def __post_init__(self) -> None:
        if not (len(self.texts) == len(self.conversations) == len(self.speakers)):
            raise ValueError("texts, conversations and speakers must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def standalone(cls, texts: Sequence[str]) -> Utterances:
        """Each text on its own, with no neighbours (what single-sentence evaluation sees)."""
        return cls(tuple(texts), tuple(f"#{i}" for i in range(len(texts))), ("",) * len(texts))

    def take(self, index: Sequence[int] | np.ndarray) -> Utterances:
        idx = [int(i) for i in index]
        return Utterances(tuple(self.texts[i] for i in idx), tuple(self.conversations[i] for i in idx),
                          tuple(self.speakers[i] for i in idx))

    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """``(previous, next)`` index per segment within its conversation, ``-1`` where none."""
        n = len(self.texts)
        prev = np.full(n, -1, dtype=np.int64)
        nxt = np.full(n, -1, dtype=np.int64)
        for i in range(1, n):
            if self.conversations[i] == self.conversations[i - 1]:
                prev[i] = i - 1
                nxt[i - 1] = i
        return prev, nxt

    def positions(self) -> np.ndarray:
        """Relative position of each segment in its conversation, 0 (first) to 1 (last); 0.5 alone."""
        n = len(self.texts)
        out = np.full(n, 0.5, dtype=np.float64)
        start = 0
        for i in range(1, n + 1):
            if i == n or self.conversations[i] != self.conversations[start]:
                length = i - start
                if length > 1:
                    out[start:i] = np.arange(length) / (length - 1)
                start = i
        return out


def context_feature_names(tasks_classes: dict[str, list[str]]) -> list[str]:
    """Column names of the context level's input, in order."""
    prob_names = [f"{t}={c}" for t, classes in tasks_classes.items() for c in classes]
    names = [f"self:{p}" for p in prob_names]
    for side in ("prev", "next"):
        names += [f"{side}:{p}" for p in prob_names] + [f"{side}:exists", f"{side}:same_speaker"]
    names += ["prev2:" + p for p in prob_names]
    names += ["position", "alone"] + [f"cue:{c}" for c in CUE_NAMES]
    return names


def _context_proba(fitted: HistGradientBoostingClassifier | list[HistGradientBoostingClassifier], z: np.ndarray,
                   classes: Sequence[str]) -> np.ndarray:
    """Probabilities of ``classes`` (in that order) from one context ensemble or the mean of a bag.

    A class a member never saw in training gets probability 0 from that member.
    """
    members = fitted if isinstance(fitted, list) else [fitted]
    total = np.zeros((len(z), len(classes)))
    for member in members:
        raw = member.predict_proba(z)
        known = list(member.classes_)
        for j, c in enumerate(classes):
            if c in known:
                total[:, j] += raw[:, known.index(c)]
    return total / len(members)


class CycleModel(BaseEstimator):
    """Two-level segment classifier for every task of a taxonomy (see the module docstring).

    Parameters:
        tasks: task name -> label list (the taxonomy's order).
        use_encoder: add sentence vectors to the text level (they must then be passed to
            ``fit`` and ``predict_proba``).
        use_context: fit the context level; without it the text level's probabilities are final.
        text_c: inverse regularisation of the text-level logistic regressions.
        encoder_weight: scale of the sentence vector block next to the TF-IDF blocks.
        context_folds: grouped folds for the out-of-fold probabilities the context level learns from.
        random_state: seed for the tree models.
        context_bag: tree ensembles per task at the context level, each seeded
            ``random_state + j`` (so each holds out its own random tenth of the rows for early
            stopping); their probabilities are averaged. 1 is a single ensemble.
        tune_offsets: learn a log-prior offset per class of each task from the context level's
            own out-of-fold probabilities (:func:`choose_offsets`). Both levels are trained with
            labels balanced per corpus, which leaves the minority labels over-predicted on real
            data; the offsets undo that by the amount that maximises the mean per-corpus macro-F1
            of the training data, measured out of fold. Predicted probabilities include them.
    """

    #: artifacts saved before the option existed hold one ensemble per task
    context_bag: int = 1

    def __init__(self, tasks: dict[str, list[str]] | None = None, use_encoder: bool = True,
                 use_context: bool = True, text_c: float = 4.0, encoder_weight: float = 1.5,
                 context_folds: int = 5, random_state: int = 13, tune_offsets: bool = True,
                 context_bag: int = 1) -> None:
        self.tasks = tasks
        self.use_encoder = use_encoder
        self.use_context = use_context
        self.text_c = text_c
        self.encoder_weight = encoder_weight
        self.context_folds = context_folds
        self.random_state = random_state
        self.tune_offsets = tune_offsets
        self.context_bag = context_bag

    # -- text level -------------------------------------------------------------------
    def _text_matrix(self, texts: Sequence[str], embeddings: np.ndarray | None) -> sparse.csr_matrix:
        blocks = [self.text_features_.transform(list(texts))]
        if self.use_encoder:
            if embeddings is None:
                raise ValueError("this model uses sentence vectors: pass embeddings")
            blocks.append(sparse.csr_matrix(np.asarray(embeddings, dtype=np.float64) * self.encoder_weight))
        return sparse.hstack(blocks, format="csr")

    def _fit_text_model(self, x: sparse.csr_matrix, labels: dict[str, list[str | None]],
                        weights: dict[str, np.ndarray], rows: np.ndarray, task: str) -> LogisticRegression:
        y = np.asarray([labels[task][i] for i in rows], dtype=object)
        mask = np.asarray([v is not None for v in y])
        if mask.sum() == 0 or len(set(y[mask])) < 2:
            raise ValueError(f"task {task!r}: fewer than two labels in the training rows")
        return LogisticRegression(C=self.text_c, max_iter=2000, solver="lbfgs").fit(
            x[rows[mask]], y[mask].astype(str), sample_weight=weights[task][rows[mask]])

    def _submit_text_models(self, pool: Executor, x: sparse.csr_matrix, labels: dict[str, list[str | None]],
                            weights: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, Future[LogisticRegression]]:
        """The text level's model of each task on ``rows``, each fit queued on ``pool``: the fits are independent and
        spend their time in SciPy's sparse products and L-BFGS, which release the GIL, so threads run them
        side by side and each gives exactly the model it gives alone."""
        return {task: pool.submit(self._fit_text_model, x, labels, weights, rows, task) for task in self.tasks_}

    def _check_fold(self, labels: dict[str, list[str | None]], rows: np.ndarray, fold: int) -> None:
        """Every label must be in the training part of every fold, or the fold's model cannot give it a
        probability (the crash was "ValueError: 'other' is not in list")."""
        from pipeline.errors import LabelDataError

        for task in self.tasks_:
            present = {labels[task][i] for i in rows} - {None}
            missing = [label for label in self.classes_[task] if label not in present]
            if missing:
                raise LabelDataError(
                    f"Task {task!r}: in cross-validation fold {fold + 1} of {self.context_folds}, no training "
                    f"conversation has the label(s) {missing}: too few conversations carry them.",
                    "Label more conversations with them (rows of one conversation stay in one fold)"
                    + (", or lower --folds." if self.context_folds > 2 else "; --folds is already at its minimum."))

    def _text_proba(self, models: dict[str, LogisticRegression], x: sparse.csr_matrix) -> np.ndarray:
        """Text-level probabilities of every task, in ``classes_`` order, side by side."""
        cols = []
        for task in self.tasks_:
            model = models[task]
            proba = model.predict_proba(x)
            order = [list(model.classes_).index(c) for c in self.classes_[task]]
            cols.append(proba[:, order])
        return np.hstack(cols)

    # -- context level ----------------------------------------------------------------
    def _cue_columns(self, x: sparse.csr_matrix) -> np.ndarray:
        """The cue block of a text-level matrix (word and char TF-IDF come first, then cues)."""
        start = sum(len(part.vocabulary_) for name, part in self.text_features_.transformer_list
                    if name in {"word", "char"})
        return x[:, start : start + len(CUE_NAMES)].toarray()

    def _context_matrix(self, utterances: Utterances, p1: np.ndarray, cues: np.ndarray) -> np.ndarray:
        prev, nxt = utterances.neighbours()
        n, k = p1.shape
        speakers = np.asarray(utterances.speakers, dtype=object)

        def side(index: np.ndarray) -> np.ndarray:
            exists = index >= 0
            probs = np.where(exists[:, None], p1[np.maximum(index, 0)], 0.0)
            same = exists & (speakers[np.maximum(index, 0)] == speakers) & (speakers != "")
            return np.hstack([probs, exists[:, None].astype(float), same[:, None].astype(float)])

        prev2 = np.where(prev >= 0, prev[np.maximum(prev, 0)], -1)
        p_prev2 = np.where((prev2 >= 0)[:, None], p1[np.maximum(prev2, 0)], 0.0)
        alone = ((prev < 0) & (nxt < 0)).astype(float)[:, None]
        return np.hstack([p1, side(prev), side(nxt), p_prev2, utterances.positions()[:, None], alone, cues])

    # -- public API -------------------------------------------------------------------
    def fit(self, utterances: Utterances, labels: dict[str, list[str | None]],
            embeddings: np.ndarray | None = None, groups: Sequence[str] | None = None,
            sample_weight: np.ndarray | None = None, balance_groups: Sequence[str] | None = None,
            standalone_weight: float = 0.0,
            standalone_mask: np.ndarray | None = None, oof_out: dict[str, np.ndarray] | None = None,
            progress: Callable[[str], None] | None = None, context_mask: np.ndarray | None = None,
            alone_mask: np.ndarray | None = None) -> CycleModel:
        """Fit both levels.

        Args:
            utterances: training segments in conversation order.
            labels: task -> label per segment (``None`` where that task is unlabelled).
            embeddings: sentence vectors per segment (required with ``use_encoder``).
            groups: fold groups for the out-of-fold probabilities; default the conversation ids.
            sample_weight: weight per segment (e.g. to weigh corpora).
            balance_groups: group per segment (its corpus) within which each task's labels
                are balanced (:func:`balanced_weights`); default one group for all.
            standalone_weight: if positive, the context level also sees a copy of the rows in
                ``standalone_mask`` with no neighbours, at this weight, so it handles single
                sentences as well as conversations.
            standalone_mask: which rows get a standalone copy (default: all).
            oof_out: if given, filled with the text level's out-of-fold probabilities per task
                (columns in ``classes_`` order), for reporting.
            progress: called with short status messages.
            context_mask: which rows the context level (and its decision offsets) learns from
                (default: all); the others train the text level only.
            alone_mask: if given, a second context level, with its own decision offsets, learns
                from these rows shown with no neighbours, and reads every segment that has none
                (a single sentence); the first then reads only segments in a conversation.
        """
        say = progress or (lambda _m: None)
        if not self.tasks:
            raise ValueError("CycleModel needs tasks")
        self.tasks_ = list(self.tasks)
        self.classes_ = {t: [c for c in self.tasks[t] if any(v == c for v in labels[t])] for t in self.tasks_}
        n = len(utterances)
        base = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        balance = list(balance_groups) if balance_groups is not None else [""] * n
        weights = {t: balanced_weights(labels[t], balance, base) for t in self.tasks_}
        self.text_features_ = build_feature_union().fit(list(utterances.texts))
        x = self._text_matrix(utterances.texts, embeddings)
        fold_groups = np.asarray(list(groups) if groups is not None else utterances.conversations, dtype=object)
        folds = GroupKFold(n_splits=self.context_folds)
        splits = list(folds.split(np.zeros(n), groups=fold_groups)) if self.use_context else []
        for fold, (train_idx, _) in enumerate(splits):
            self._check_fold(labels, train_idx, fold)
        # the final text level and every fold's, two tasks each: queued at once, in this order, on as
        # many threads as the process has CPUs (the same models; on 2 cores a retrain took 383 s instead
        # of 451 s, BENCHMARKS.md "Training")
        pool = ThreadPoolExecutor(max_workers=usable_cpus())
        try:
            final = self._submit_text_models(pool, x, labels, weights, np.arange(n))
            per_fold = [self._submit_text_models(pool, x, labels, weights, train_idx) for train_idx, _ in splits]
            self.text_models_ = {task: job.result() for task, job in final.items()}
            say("text level fitted")
            self.context_models_: dict[str, HistGradientBoostingClassifier | list[HistGradientBoostingClassifier]] = {}
            if not self.use_context:
                return self
            oof = np.zeros((n, sum(len(c) for c in self.classes_.values())))
            for fold, ((_, test_idx), jobs) in enumerate(zip(splits, per_fold)):
                models = {task: job.result() for task, job in jobs.items()}
                oof[test_idx] = self._text_proba(models, x[test_idx])
                say(f"context level: out-of-fold probabilities {fold + 1}/{self.context_folds}")
        finally:  # after a failed fit, the fits still queued are dropped rather than run for nothing
            pool.shutdown(wait=True, cancel_futures=True)
        if oof_out is not None:
            col = 0
            for task in self.tasks_:
                width = len(self.classes_[task])
                oof_out[task] = oof[:, col : col + width]
                col += width
        cues = self._cue_columns(x)
        z = self._context_matrix(utterances, oof, cues)
        row_index = np.arange(n)
        copy_scale = np.ones(n)
        if standalone_weight > 0:
            chosen = np.arange(n) if standalone_mask is None else np.flatnonzero(standalone_mask)
            alone = Utterances.standalone([utterances.texts[i] for i in chosen])
            z = np.vstack([z, self._context_matrix(alone, oof[chosen], cues[chosen])])
            row_index = np.concatenate([row_index, chosen])
            copy_scale = np.concatenate([copy_scale, np.full(len(chosen), standalone_weight)])
        self.offsets_: dict[str, np.ndarray] = {}
        copy_groups = fold_groups[row_index]
        in_context = np.ones(n, dtype=bool) if context_mask is None else np.asarray(context_mask, dtype=bool)
        for task in self.tasks_:
            y = np.asarray(labels[task], dtype=object)[row_index]
            mask = np.asarray([v is not None for v in y]) & in_context[row_index]
            gold = np.asarray(labels[task], dtype=object)
            # offsets from the original rows only (standalone copies, rows n and up, train only)
            scored = np.flatnonzero(np.asarray([v is not None for v in gold]) & (weights[task] > 0) & in_context)
            self.context_models_[task], self.offsets_[task] = self._fit_level(
                task, z, y, weights[task][row_index] * copy_scale, mask, copy_groups, scored,
                [balance[i] for i in scored], folds, "context level", say)
        self.alone_models_: dict[str, HistGradientBoostingClassifier | list[HistGradientBoostingClassifier]] = {}
        self.alone_offsets_: dict[str, np.ndarray] = {}
        if alone_mask is not None and np.any(alone_mask):
            self._fit_alone(utterances, labels, weights, oof, cues, fold_groups, balance,
                            np.flatnonzero(np.asarray(alone_mask, dtype=bool)), folds, say)
        say("context level fitted")
        return self

    def _fit_alone(self, utterances: Utterances, labels: dict[str, list[str | None]],
                   weights: dict[str, np.ndarray], oof: np.ndarray, cues: np.ndarray, fold_groups: np.ndarray,
                   balance: list[str], chosen: np.ndarray, folds: GroupKFold, say: Callable[[str], None]) -> None:
        """The one-sentence context level: ``chosen`` rows with no neighbours (see :meth:`fit`)."""
        z = self._context_matrix(Utterances.standalone([utterances.texts[i] for i in chosen]),
                                 oof[chosen], cues[chosen])
        for task in self.tasks_:
            y = np.asarray(labels[task], dtype=object)[chosen]
            w = weights[task][chosen]
            mask = np.asarray([v is not None for v in y]) & (w > 0)
            scored = np.flatnonzero(mask)
            self.alone_models_[task], self.alone_offsets_[task] = self._fit_level(
                task, z, y, w, mask, fold_groups[chosen], scored, [balance[chosen[i]] for i in scored], folds,
                "one-sentence context level", say)

    def _fit_level(self, task: str, z: np.ndarray, y: np.ndarray, w: np.ndarray, fit_mask: np.ndarray,
                   groups: np.ndarray, scored: np.ndarray, scored_balance: list[str], folds: GroupKFold,
                   name: str, say: Callable[[str], None],
                   ) -> tuple[HistGradientBoostingClassifier | list[HistGradientBoostingClassifier], np.ndarray]:
        """One context ensemble fitted on the ``fit_mask`` rows of ``z``, and its decision offsets: with
        ``tune_offsets``, chosen (:func:`choose_offsets`) on the out-of-fold probabilities of the
        ``scored`` rows (folds grouped by ``groups``); zeros otherwise."""
        classes = self.classes_[task]
        fitted = self._fit_context(z[fit_mask], y[fit_mask].astype(str), w[fit_mask])
        if not self.tune_offsets:
            return fitted, np.zeros(len(classes))
        wanted = np.zeros(len(z), dtype=bool)
        wanted[scored] = True
        proba = np.full((len(z), len(classes)), np.nan)
        for fold, (train_idx, test_idx) in enumerate(folds.split(np.zeros(len(z)), groups=groups)):
            fit_rows = train_idx[fit_mask[train_idx]]
            fold_model = self._fit_context(z[fit_rows], y[fit_rows].astype(str), w[fit_rows])
            rows = test_idx[wanted[test_idx]]
            if len(rows):
                proba[rows] = _context_proba(fold_model, z[rows], classes)
            say(f"{name}: {task} offsets, out-of-fold {fold + 1}/{self.context_folds}")
        return fitted, choose_offsets(proba[scored], [str(v) for v in y[scored]], classes, scored_balance)

    def _context_model(self, member: int = 0) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=300, learning_rate=0.06, max_leaf_nodes=15, min_samples_leaf=40,
            l2_regularization=1.0, random_state=self.random_state + member)

    def _fit_context(self, z: np.ndarray, y: np.ndarray,
                     weights: np.ndarray) -> HistGradientBoostingClassifier | list[HistGradientBoostingClassifier]:
        """One context-level ensemble, or ``context_bag`` of them (a list) whose probabilities are averaged."""
        bag = max(1, int(self.context_bag))
        fitted = [self._context_model(j).fit(z, y, sample_weight=weights) for j in range(bag)]
        return fitted[0] if bag == 1 else fitted

    def predict_proba(self, utterances: Utterances, embeddings: np.ndarray | None = None,
                      use_context: bool | None = None) -> dict[str, np.ndarray]:
        """Task -> probabilities per segment, columns in ``classes_[task]`` order.

        ``use_context=False`` returns the text level alone (for comparison).
        """
        if not len(utterances):
            return {t: np.zeros((0, len(self.classes_[t]))) for t in self.tasks_}
        x = self._text_matrix(utterances.texts, embeddings)
        p1 = self._text_proba(self.text_models_, x)
        with_context = self.use_context if use_context is None else (use_context and self.use_context)
        out: dict[str, np.ndarray] = {}
        if not with_context or not self.context_models_:
            col = 0
            for task in self.tasks_:
                width = len(self.classes_[task])
                out[task] = p1[:, col : col + width]
                col += width
            return out
        z = self._context_matrix(utterances, p1, self._cue_columns(x))
        alone_models = getattr(self, "alone_models_", {})
        prev, nxt = utterances.neighbours()
        alone = np.flatnonzero((prev < 0) & (nxt < 0)) if alone_models else np.zeros(0, dtype=np.int64)
        for task in self.tasks_:
            proba = _context_proba(self.context_models_[task], z, self.classes_[task])
            offsets = getattr(self, "offsets_", {}).get(task)
            proba = apply_offsets(proba, offsets) if offsets is not None else proba
            if len(alone):
                single = _context_proba(alone_models[task], z[alone], self.classes_[task])
                proba[alone] = apply_offsets(single, self.alone_offsets_[task])
            out[task] = proba
        return out

    def predict(self, utterances: Utterances, embeddings: np.ndarray | None = None) -> dict[str, list[str]]:
        """Task -> most probable label per segment."""
        return {t: [self.classes_[t][int(i)] for i in np.argmax(p, axis=1)]
                for t, p in self.predict_proba(utterances, embeddings).items()}

