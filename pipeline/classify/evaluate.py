"""Evaluate a classifier artifact on labelled rows, compare artifacts, guard promotion."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.classify.artifacts import Artifact, current_version, load_artifact, set_current
from pipeline.classify.labels import LabelledRow
from pipeline.classify.predict import predict_texts
from pipeline.classify.train import classification_metrics
from pipeline.schema import Segment

__all__ = ["evaluate_artifact", "evaluate_calls", "PromotionDecision", "promote"]


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


def evaluate_calls(artifact: Artifact, call_files: Sequence[Path], nlp: Any,
                   words_per_minute: float = 150.0) -> dict[str, Any]:
    """Call-level accuracy on fully labelled calls: error of action share and stage mix.

    Each file is a canonical JSON transcript whose turns also carry gold ``stage`` and
    ``talk_action`` labels. The gold score uses the gold labels on the turns; the predicted
    score runs the real segment -> classify -> score path on the same turns. Timings are
    estimated from word counts for both, so only the labels differ.
    """
    from pipeline.classify.predict import classify_segments
    from pipeline.ingest.transcripts import parse_transcript_text
    from pipeline.schema import ClassifiedSegment, Prediction
    from pipeline.score import score_call
    from pipeline.speech.turns import segment_turns

    stage_task = artifact.taxonomy.by_role("stage")
    ta_task = artifact.taxonomy.by_role("talk_action")
    per_call: list[dict[str, Any]] = []
    for path in call_files:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        parsed = parse_transcript_text(json.dumps({"turns": data["turns"]}), "json", name=Path(path).name,
                                       words_per_minute=words_per_minute)
        gold_segments = []
        for i, (turn, raw) in enumerate(zip(parsed.turns, [t for t in data["turns"] if t["text"].strip()])):
            seg = Segment(call_id=data.get("call_id", Path(path).stem), index=i, turn_index=i,
                          speaker=turn.speaker, channel=None, start_s=turn.start_s, end_s=turn.end_s,
                          text=turn.text, confidence=None, timing_estimated=True, is_question=False)
            gold_segments.append(ClassifiedSegment(seg, Prediction(raw[stage_task.name], {}),
                                                   Prediction(raw[ta_task.name], {})))
        gold = score_call(gold_segments, artifact.taxonomy)
        predicted_segments = classify_segments(artifact, segment_turns(parsed.turns, "eval", nlp))
        pred = score_call(predicted_segments, artifact.taxonomy)
        mix_error = float(np.mean([abs(gold.stage_shares[k] - pred.stage_shares.get(k, 0.0))
                                   for k in stage_task.labels]))
        per_call.append({
            "call": Path(path).stem, "turns": len(gold_segments),
            "gold_action_share": gold.action_share, "predicted_action_share": pred.action_share,
            "action_share_error": (None if gold.action_share is None or pred.action_share is None
                                   else abs(gold.action_share - pred.action_share)),
            "stage_mix_mean_abs_error": mix_error,
            "gold_cycle_complete": gold.cycle_complete, "predicted_cycle_complete": pred.cycle_complete,
        })
    errors = [c["action_share_error"] for c in per_call if c["action_share_error"] is not None]
    mixes = [c["stage_mix_mean_abs_error"] for c in per_call]
    return {
        "model_version": artifact.version, "calls": len(per_call),
        "action_share_mae": float(np.mean(errors)) if errors else None,
        "action_share_max_error": float(np.max(errors)) if errors else None,
        "stage_mix_mae": float(np.mean(mixes)) if mixes else None,
        "cycle_complete_agreement": (float(np.mean([c["gold_cycle_complete"] == c["predicted_cycle_complete"]
                                                    for c in per_call])) if per_call else None),
        "per_call": per_call,
    }
