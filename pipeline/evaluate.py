"""Evaluate a classifier artifact on labelled rows, compare artifacts, guard promotion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import Artifact, current_version, load_artifact, set_current
from pipeline.classify import predict_texts
from pipeline.labels import LabelledRow
from pipeline.train import classification_metrics

__all__ = ["evaluate_artifact", "PromotionDecision", "promote"]


def evaluate_artifact(artifact: Artifact, rows: Sequence[LabelledRow]) -> dict[str, Any]:
    """Per-task metrics (precision/recall/F1 per class, macro-F1, confusion, ECE) on ``rows``.

    Only tasks labelled in the rows are evaluated; rows missing a task's label are skipped
    for that task.
    """
    result: dict[str, Any] = {"model_version": artifact.version, "n_rows": len(rows), "tasks": {}}
    for task in artifact.taxonomy.tasks:
        subset = [r for r in rows if task.name in r.labels]
        if not subset:
            continue
        texts = [r.text for r in subset]
        preds = predict_texts(artifact, texts)[task.name]
        labels = sorted(preds[0].probabilities) if preds else list(task.labels)
        proba = np.asarray([[p.probabilities[lbl] for lbl in labels] for p in preds])
        result["tasks"][task.name] = classification_metrics(
            [r.labels[task.name] for r in subset], [p.label for p in preds], task.labels, proba, texts)
    return result


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    """Whether ``CURRENT`` moved, and why."""

    promoted: bool
    reason: str
    candidate: dict[str, float]
    incumbent: dict[str, float] | None


def promote(models_root: Path, version: str, holdout: Sequence[LabelledRow], force: bool = False) -> PromotionDecision:
    """Point ``models/CURRENT`` at ``version`` unless held-out macro-F1 drops.

    Both the candidate and the current model are scored on the same held-out rows; the
    pointer moves only when no task's macro-F1 is lower than the current model's (or with
    ``force``, or when nothing is promoted yet).
    """
    candidate = load_artifact(models_root, version)
    cand = {t: m["macro_f1"] for t, m in evaluate_artifact(candidate, holdout)["tasks"].items()}
    incumbent_version = current_version(models_root)
    inc: dict[str, float] | None = None
    if incumbent_version and incumbent_version != version:
        try:
            incumbent = load_artifact(models_root, incumbent_version)
            inc = {t: m["macro_f1"] for t, m in evaluate_artifact(incumbent, holdout)["tasks"].items()}
        except Exception as exc:  # a broken incumbent should not block a good candidate
            inc = None
            reason_broken = f"current model {incumbent_version} cannot be loaded ({exc})"
        else:
            reason_broken = ""
        worse = {t: (cand.get(t, 0.0), v) for t, v in (inc or {}).items() if cand.get(t, 0.0) < v - 1e-9}
        if worse and not force:
            detail = ", ".join(f"{t}: {c:.3f} < {v:.3f}" for t, (c, v) in worse.items())
            return PromotionDecision(False, f"held-out macro-F1 dropped ({detail}); use --force to promote anyway",
                                     cand, inc)
        reason = "forced" if worse else (reason_broken or "held-out macro-F1 did not drop")
    else:
        reason = "no current model" if not incumbent_version else "already current"
    set_current(models_root, version)
    return PromotionDecision(True, reason, cand, inc)
