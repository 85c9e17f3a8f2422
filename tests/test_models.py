"""The shipped classifiers on labelled rows they were never trained on.

- the fixed held-out split of labels/data (reproduces the model card's held-out metrics);
- the fully labelled calls in labels/calls (written separately, never used for training);
- real business email sentences from ../shared/realdata (talk vs action only).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MODELS, ROOT

from pipeline.classify.evaluate import evaluate_artifact, evaluate_calls
from pipeline.classify.labels import LabelledRow, is_holdout, load_labelled


@pytest.fixture(scope="module")
def labelled(artifact) -> list[LabelledRow]:
    return load_labelled(sorted((ROOT / "labels" / "data").glob("*.jsonl")), artifact.taxonomy)


def test_card_holdout_metrics_reproduce(artifact, labelled) -> None:
    card_tasks = artifact.card["tasks"]
    percent = int(artifact.card["data"]["holdout_rule"].split("<")[1])
    ids_in_training = artifact.card["data"]["rows_train"] + artifact.card["data"]["rows_holdout"]
    holdout = [r for r in labelled if is_holdout(r.group, percent)]
    assert holdout, "no held-out rows"
    assert len(labelled) >= ids_in_training - 5, "labelled data shrank since the shipped model was trained"
    metrics = evaluate_artifact(artifact, holdout)
    for task, m in metrics["tasks"].items():
        assert m["macro_f1"] == pytest.approx(card_tasks[task]["holdout"]["macro_f1"], abs=0.02), task


def test_holdout_quality(artifact, labelled) -> None:
    """The quality bar from the retraining issue: stage >= 0.85, talk/action >= 0.90 macro-F1."""
    holdout = [r for r in labelled if is_holdout(r.group)]
    metrics = evaluate_artifact(artifact, holdout)["tasks"]
    assert metrics["stage"]["macro_f1"] >= 0.85
    assert metrics["talk_action"]["macro_f1"] >= 0.90


def test_call_level_action_share_on_unseen_calls(artifact, nlp) -> None:
    files = sorted((ROOT / "labels" / "calls").glob("*.json"))
    assert len(files) >= 20
    result = evaluate_calls(artifact, files, nlp)
    assert result["action_share_mae"] <= 0.08
    assert result["stage_mix_mae"] <= 0.15


def test_real_email_requests_and_commitments(artifact, realdata: Path) -> None:
    lines = (realdata / "text" / "enron-email-intent" / "testSet-qualifiedBatch-fixed.txt").read_text(
        encoding="utf-8", errors="replace").splitlines()
    rows = [LabelledRow(f"e{i}", text, {"talk_action": "action" if label == "Yes" else "talk"}, f"e{i}", "enron")
            for i, (label, _, text) in enumerate(line.partition("\t") for line in lines) if text.strip()]
    metrics = evaluate_artifact(artifact, rows)["tasks"]["talk_action"]
    assert metrics["n"] > 900
    assert metrics["macro_f1"] >= 0.60


def test_model_card_is_complete() -> None:
    card = json.loads((MODELS / (MODELS / "CURRENT").read_text().strip() / "card.json").read_text())
    assert card["data"]["rows_total"] >= 800
    for task in ("stage", "talk_action"):
        t = card["tasks"][task]
        assert {"cross_validated", "holdout", "candidates", "selected"} <= set(t)
        assert "ece" in t["holdout"] and t["holdout"]["confusion"]
    assert {"scikit-learn", "spacy", "skops", "python"} <= set(card["libraries"])
