"""Transcript-like copies of written training text (``callcycle train --speech-copies``)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.classify.augment import FILLER_WORDS, speech_noise
from pipeline.classify.labels import load_labelled, load_taxonomy
from pipeline.classify.train import TrainConfig, speech_copies, train_models

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "tests" / "fixtures" / "mini_labels.jsonl"
TEXT = "I will send the revised quote by Thursday, okay? Then we can book the call with Dana."


def test_the_same_row_and_copy_give_the_same_noise_and_other_copies_differ() -> None:
    first = speech_noise(TEXT, "row-1", 1)
    assert first == speech_noise(TEXT, "row-1", 1)
    variants = {speech_noise(TEXT, "row-1", n) for n in range(1, 9)} | {speech_noise(TEXT, f"row-{n}", 1)
                                                                         for n in range(2, 9)}
    assert len(variants) > 8
    assert TEXT not in variants  # every copy is noised


def test_noise_keeps_the_words_recognisable() -> None:
    original = {w.strip(",.?").lower() for w in TEXT.split()}
    for n in range(1, 40):
        noised = speech_noise(TEXT, "row-1", n)
        words = [w.strip(",.?").lower() for w in noised.split()]
        extra = [w for w in words if w not in original and w not in " ".join(FILLER_WORDS).split()]
        assert not extra, noised
        kept = original & set(words)
        assert len(kept) >= len(original) * 0.7, noised
    assert speech_noise("Yes.", "short", 1).lower() == "yes."
    assert speech_noise("", "empty", 1) == ""


def test_training_with_copies_keeps_copies_out_of_the_held_out_figures(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    rows = load_labelled([MINI], taxonomy)
    copies = speech_copies(rows, 2)
    assert len(copies) == 2 * sum(r.corpus == "written" for r in rows)
    assert all(c.labels == rows[i % len(rows)].labels for i, c in enumerate(copies))
    assert {c.group for c in copies}.isdisjoint({r.group for r in rows})
    plain = train_models(rows, taxonomy, TrainConfig(folds=2, holdout_percent=20, encoder=None, speech_copies=0),
                         version="plain")
    noised = train_models(rows, taxonomy, TrainConfig(folds=2, holdout_percent=20, encoder=None, speech_copies=1),
                          version="noised")
    # Copies are training rows only: the held-out split and its size are the same.
    assert noised.card["data"]["rows_holdout"] == plain.card["data"]["rows_holdout"]
    assert noised.card["data"]["hash"] == plain.card["data"]["hash"]
    assert noised.card["training"]["speech_copies"] == 1
    held = plain.card["data"]["rows_holdout"]
    assert held > 0
    # The cross-validated figures count each original once, not its copies.
    cv_plain = plain.card["tasks"]["talk_action"]["cross_validated"]
    cv_noised = noised.card["tasks"]["talk_action"]["cross_validated"]
    assert json.dumps(sorted(cv_plain)) == json.dumps(sorted(cv_noised))
    assert cv_noised["n"] == cv_plain["n"] == noised.card["data"]["rows_train"]
    assert sum(map(sum, cv_noised["confusion"])) == sum(map(sum, cv_plain["confusion"])) == cv_plain["n"]
