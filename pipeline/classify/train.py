"""Train, cross-validate and evaluate the segment classifiers.

One scikit-learn pipeline per taxonomy task: TF-IDF word and character n-grams plus
spaCy Matcher cues (:mod:`pipeline.classify.features`), then a linear classifier. Model families
and their regularisation are compared by cross-validation grouped by conversation, so
rows of one conversation never sit on both sides of a fold; a fixed held-out split
(by group hash, :func:`pipeline.classify.labels.is_holdout`) is never used for fitting or model
selection and gives the headline metrics.
"""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from pipeline.classify.features import build_feature_union
from pipeline.classify.labels import LabelledRow, Taxonomy, data_hash, drop_near_duplicates, is_holdout
from pipeline.errors import LabelDataError

__all__ = [
    "TrainConfig",
    "TrainResult",
    "split_rows",
    "candidate_classifiers",
    "classification_metrics",
    "expected_calibration_error",
    "train_models",
    "render_card_markdown",
]

logger = logging.getLogger("callcycle.train")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training options.

    Attributes:
        folds: grouped cross-validation folds.
        seed: random seed for fold assignment and classifiers.
        holdout_percent: share of groups in the fixed held-out split.
        dedupe_threshold: cosine similarity above which a row is a near-duplicate.
        families: model families to compare and choose from (``logreg``, ``linear_svm``).
        baselines: families only compared in cross-validation (``spacy_textcat``), not shipped.
        c_grid: regularisation strengths tried for each family.
    """

    folds: int = 5
    seed: int = 13
    holdout_percent: int = 20
    dedupe_threshold: float = 0.92
    families: tuple[str, ...] = ("logreg", "linear_svm")
    baselines: tuple[str, ...] = ("spacy_textcat",)
    c_grid: tuple[float, ...] = (0.5, 2.0, 8.0)


@dataclass(slots=True)
class TrainResult:
    """Fitted pipelines per task, the model card and its Markdown rendering."""

    models: dict[str, Pipeline]
    card: dict[str, Any]
    card_markdown: str
    holdout: list[LabelledRow] = field(default_factory=list)


def split_rows(rows: Sequence[LabelledRow], holdout_percent: int) -> tuple[list[LabelledRow], list[LabelledRow]]:
    """Split into (train, held-out) by a hash of each row's group."""
    train, holdout = [], []
    for row in rows:
        (holdout if is_holdout(row.group, holdout_percent) else train).append(row)
    return train, holdout


def candidate_classifiers(config: TrainConfig) -> dict[str, Any]:
    """Named unfitted classifiers: each family at each C in the grid."""
    candidates: dict[str, Any] = {}
    for family in config.families:
        for c in config.c_grid:
            if family == "logreg":
                candidates[f"logreg(C={c})"] = LogisticRegression(
                    C=c, max_iter=3000, class_weight="balanced", random_state=config.seed)
            elif family == "linear_svm":
                candidates[f"linear_svm(C={c / 8})"] = CalibratedClassifierCV(
                    LinearSVC(C=c / 8, class_weight="balanced", random_state=config.seed), cv=3)
            else:
                raise ValueError(f"Unknown model family {family!r}; use logreg or linear_svm.")
    return candidates


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


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                           proba: np.ndarray | None = None, texts: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-class precision/recall/F1, macro-F1, accuracy, confusion matrix, ECE, confused pairs."""
    labels = list(labels)
    present = [lbl for lbl in labels if lbl in set(y_true) | set(y_pred)]
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


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for dist in ("callcycle", "scikit-learn", "spacy", "skops", "numpy", "scipy"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _select(task: str, rows: list[LabelledRow], config: TrainConfig,
            progress: Callable[[str], None]) -> tuple[str, dict[str, dict[str, Any]], np.ndarray, np.ndarray]:
    """Grouped CV over all candidates; returns best name, per-candidate scores, OOF preds/probas of best."""
    texts = np.asarray([r.text for r in rows], dtype=object)
    y = np.asarray([r.labels[task] for r in rows], dtype=object)
    groups = np.asarray([r.group for r in rows], dtype=object)
    candidates = candidate_classifiers(config)
    cv = StratifiedGroupKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    oof: dict[str, np.ndarray] = {n: np.empty(len(rows), dtype=object) for n in candidates}
    oof_proba: dict[str, list[tuple[np.ndarray, np.ndarray, list[str]]]] = {n: [] for n in candidates}
    fold_scores: dict[str, list[float]] = {n: [] for n in candidates}
    skipped: dict[str, str] = {}
    baseline_scores: dict[str, list[float]] = {}
    for fold, (tr, te) in enumerate(cv.split(texts, y, groups)):
        features = build_feature_union()
        x_tr = features.fit_transform(texts[tr])
        x_te = features.transform(texts[te])
        for name, estimator in candidates.items():
            if name in skipped:
                continue
            try:
                model = clone(estimator).fit(x_tr, y[tr])
            except ValueError as exc:  # e.g. too few rows of a class for the SVM's calibration folds
                skipped[name] = str(exc)
                continue
            pred = model.predict(x_te)
            oof[name][te] = pred
            oof_proba[name].append((te, model.predict_proba(x_te), [str(c) for c in model.classes_]))
            fold_scores[name].append(float(f1_score(y[te], pred, average="macro")))
        if "spacy_textcat" in config.baselines:
            from pipeline.classify.textcat import SpacyTextcat

            pred = SpacyTextcat(seed=config.seed).fit(list(texts[tr]), list(y[tr])).predict(list(texts[te]))
            baseline_scores.setdefault("spacy_textcat (baseline, not shipped)", []).append(
                float(f1_score(y[te], pred, average="macro")))
        progress(f"{task}: fold {fold + 1}/{config.folds} done")
    summary = {n: {"macro_f1_mean": float(np.mean(s)), "macro_f1_std": float(np.std(s)),
                   "folds": s} for n, s in fold_scores.items() if n not in skipped}
    if not summary:
        raise LabelDataError(f"Task {task!r}: no model family could be fitted ({skipped}).",
                             "Add labelled rows for the rare labels.")
    baselines = {n: {"macro_f1_mean": float(np.mean(s)), "macro_f1_std": float(np.std(s)), "folds": s}
                 for n, s in baseline_scores.items()}
    best = max(summary, key=lambda n: (round(summary[n]["macro_f1_mean"], 4), n.startswith("logreg")))
    labels = sorted(set(y))
    proba = np.zeros((len(rows), len(labels)))
    for te, p, classes in oof_proba[best]:
        for j, c in enumerate(classes):
            proba[te, labels.index(c)] = p[:, j]
    return best, {**summary, **baselines}, oof[best], proba


def train_models(rows: Sequence[LabelledRow], taxonomy: Taxonomy, config: TrainConfig | None = None,
                 version: str | None = None, progress: Callable[[str], None] | None = None) -> TrainResult:
    """Deduplicate, split, select a model per task by grouped CV, fit, and evaluate on held-out.

    Args:
        rows: validated labelled rows (every task labelled).
        taxonomy: the tasks and label sets.
        config: training options.
        version: artifact version name; default ``<taxonomy>-<UTC timestamp>-<data hash[:8]>``.
        progress: called with short status messages.

    Raises:
        LabelDataError: too few rows or a label with too few examples to cross-validate.
    """
    cfg = config or TrainConfig()
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    rows = list(rows)
    kept, n_dropped = drop_near_duplicates(rows, cfg.dedupe_threshold)
    train_rows, holdout_rows = split_rows(kept, cfg.holdout_percent)
    say(f"{len(rows)} rows, {n_dropped} near-duplicates dropped, {len(train_rows)} train, "
        f"{len(holdout_rows)} held out")
    for task in taxonomy.tasks:
        counts = Counter(r.labels[task.name] for r in train_rows)
        thin = [lbl for lbl in task.labels if counts.get(lbl, 0) < cfg.folds]
        if thin:
            raise LabelDataError(
                f"Task {task.name!r}: labels {thin} have fewer than {cfg.folds} training rows.",
                "Add labelled examples for them, or lower --folds.")
    d_hash = data_hash(kept)
    stamp = datetime.now(UTC)
    version = version or f"{taxonomy.name}-{stamp:%Y%m%dT%H%M%SZ}-{d_hash[:8]}"
    models: dict[str, Pipeline] = {}
    tasks_card: dict[str, Any] = {}
    for task in taxonomy.tasks:
        best, summary, oof_pred, oof_proba = _select(task.name, train_rows, cfg, say)
        y_train = [r.labels[task.name] for r in train_rows]
        cv_metrics = classification_metrics(y_train, list(oof_pred), task.labels,
                                            oof_proba, [r.text for r in train_rows])
        estimator = candidate_classifiers(cfg)[best]
        model = Pipeline([("features", build_feature_union()), ("classifier", clone(estimator))])
        model.fit([r.text for r in train_rows], y_train)
        models[task.name] = model
        task_card: dict[str, Any] = {
            "labels": list(task.labels),
            "selected": best,
            "candidates": summary,
            "cross_validated": cv_metrics,
            "train_counts": dict(Counter(y_train)),
        }
        if holdout_rows:
            h_texts = [r.text for r in holdout_rows]
            h_true = [r.labels[task.name] for r in holdout_rows]
            h_proba = model.predict_proba(h_texts)
            h_pred = [str(model.classes_[i]) for i in np.argmax(h_proba, axis=1)]
            task_card["holdout"] = classification_metrics(h_true, h_pred, task.labels, h_proba, h_texts)
            task_card["holdout_counts"] = dict(Counter(h_true))
        tasks_card[task.name] = task_card
        say(f"{task.name}: selected {best}, CV macro-F1 {cv_metrics['macro_f1']:.3f}"
            + (f", held-out macro-F1 {task_card['holdout']['macro_f1']:.3f}" if holdout_rows else ""))
    from pipeline.classify.artifacts import taxonomy_to_dict

    card: dict[str, Any] = {
        "version": version,
        "created_at": stamp.isoformat(),
        "taxonomy": taxonomy_to_dict(taxonomy),
        "data": {
            "hash": d_hash,
            "rows_total": len(rows),
            "near_duplicates_dropped": n_dropped,
            "near_duplicate_rule": f"cosine of char 3-5-gram TF-IDF of normalised text >= {cfg.dedupe_threshold}",
            "rows_train": len(train_rows),
            "rows_holdout": len(holdout_rows),
            "holdout_rule": f"sha256(group) % 100 < {cfg.holdout_percent}",
            "sources": dict(Counter(r.source for r in kept)),
        },
        "training": {"folds": cfg.folds, "cv": "StratifiedGroupKFold by conversation group",
                     "seed": cfg.seed, "families": list(cfg.families), "c_grid": list(cfg.c_grid),
                     "baselines": list(cfg.baselines),
                     "seconds": round(time.perf_counter() - started, 1)},
        "tasks": tasks_card,
        "libraries": _library_versions(),
    }
    return TrainResult(models=models, card=card, card_markdown=render_card_markdown(card),
                       holdout=holdout_rows)


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


def render_card_markdown(card: dict[str, Any]) -> str:
    """Human-readable model card."""
    data = card["data"]
    lines = [f"# Model card: {card['version']}", "",
             f"Created {card['created_at']}. Taxonomy **{card['taxonomy']['name']}** "
             f"v{card['taxonomy']['version']}.", "",
             "## Data", "",
             f"- data hash `{data['hash']}`",
             f"- {data['rows_total']} labelled rows; {data['near_duplicates_dropped']} near-duplicates dropped "
             f"({data['near_duplicate_rule']})",
             f"- {data['rows_train']} training rows, {data['rows_holdout']} held-out rows ({data['holdout_rule']})",
             "", "## Training", "",
             f"- {card['training']['cv']}, {card['training']['folds']} folds, seed {card['training']['seed']}",
             f"- candidates: {', '.join(card['training']['families'])} × C {card['training']['c_grid']}; "
             f"compared only: {', '.join(card['training'].get('baselines', [])) or 'none'}",
             f"- training time {card['training']['seconds']} s", ""]
    for name, task in card["tasks"].items():
        lines += [f"## Task `{name}`: {' / '.join(task['labels'])}", "",
                  f"Selected **{task['selected']}**.", "", "| candidate | CV macro-F1 | std |", "|---|---|---|"]
        for cand, s in task["candidates"].items():
            lines.append(f"| {cand} | {s['macro_f1_mean']:.3f} | {s['macro_f1_std']:.3f} |")
        lines += ["", "### Cross-validated (out-of-fold, training rows)", ""]
        lines += _metrics_table(task["cross_validated"])
        if "holdout" in task:
            lines += ["", "### Held-out split", ""]
            lines += _metrics_table(task["holdout"])
        lines.append("")
    lines += ["## Libraries", ""] + [f"- {k} {v}" for k, v in card["libraries"].items()]
    return "\n".join(lines) + "\n"
