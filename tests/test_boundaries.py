"""Sentence ends in turns without punctuation: the shipped boundary model, its training and its checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.schema import Turn as SpokenTurn
from pipeline.speech.boundaries import (
    THRESHOLD,
    Turn,
    check_boundary_model,
    corpus_chunks,
    default_boundary_model_dir,
    fit_boundary_model,
    is_unpunctuated,
    load_boundary_model,
    score_boundaries,
)
from pipeline.speech.turns import build_sentencizer, segment_turns

SUPPORT = ("okay thank you for calling i can see your account here "
           "could you read me the serial number on the back of the modem")


@pytest.fixture(scope="module")
def splitter():
    return build_sentencizer()


def test_the_shipped_model_is_checked_and_measured_on_held_out_conversations() -> None:
    card = check_boundary_model()
    model = load_boundary_model()
    assert card["format"] == "callcycle-boundary-model/1" and model.threshold == THRESHOLD
    held_out = card["held_out"]
    assert {"ami", "written"} <= set(held_out)
    assert held_out["ami"]["sentence_ends"] > 1000 and 0.0 < held_out["ami"]["f1"] <= 1.0
    assert card["data"]["train_turns"] > card["data"]["held_out_turns"] > 0


def test_an_unpunctuated_turn_is_cut_into_sentences_and_a_punctuated_one_is_not_touched(splitter) -> None:
    assert is_unpunctuated(SUPPORT) and not is_unpunctuated("Okay. Could you read me the serial number?")
    pieces = [SUPPORT[a:b].strip() for a, b in splitter.spans(SUPPORT)]
    assert len(pieces) >= 2
    assert pieces[-1].startswith("could you read me the serial number")  # the request is a sentence of its own
    assert " ".join(pieces).split() == SUPPORT.split()  # nothing lost, nothing reordered
    punctuated = "Okay, thank you for calling. I can see your account here, could you read me the serial number?"
    assert splitter.spans(punctuated) == build_sentencizer(False).spans(punctuated)
    assert build_sentencizer(False).spans(SUPPORT) == [(0, len(SUPPORT))]  # switched off: one sentence


def test_segments_of_an_unpunctuated_turn_share_out_its_time(splitter) -> None:
    turn = SpokenTurn(speaker="agent", channel=None, start_s=10.0, end_s=20.0, text=SUPPORT, confidence=None,
                      timing_estimated=True)
    segments = segment_turns([turn], "call", splitter)
    assert len(segments) >= 2
    assert segments[-1].text.startswith("could you read me")
    assert segments[0].start_s == 10.0 and segments[-1].end_s == pytest.approx(20.0, abs=0.01)
    assert all(a.end_s <= b.start_s + 1e-6 for a, b in zip(segments, segments[1:]))
    assert segments[-1].is_question
    whole = segment_turns([turn], "call", build_sentencizer(False))
    assert [s.text for s in whole] == [SUPPORT]


def test_training_learns_where_sentences_end() -> None:
    sentences = ["i will send the quote by friday", "can you check with your team", "we tried that last year",
                 "the budget is set", "let's book tuesday", "what does success look like"]
    rows = [{"group": f"g{g}", "text": f"{sentences[(g + i) % 6].capitalize()}. {sentences[(g + i + 1) % 6]}."}
            for g in range(40) for i in range(3)]
    turns = list(corpus_chunks(rows, "toy"))
    assert all(isinstance(t, Turn) for t in turns) and sum(len(t.ends) for t in turns) > 100
    train, test = turns[: len(turns) * 2 // 3], turns[len(turns) * 2 // 3 :]
    model = fit_boundary_model(train, min_count=1)
    measured = score_boundaries(model, test)
    assert measured["sentence_ends"] > 20 and measured["f1"] > 0.9, measured
    untrained = fit_boundary_model([Turn(("a", "b", "c"), frozenset(), "g", "toy")] * 3 +
                                   [Turn(("a", "b", "c"), frozenset({0}), "g", "toy")], min_count=1)
    assert score_boundaries(untrained, test)["f1"] < 0.5


def test_a_damaged_or_foreign_model_is_refused_with_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / "boundaries"
    shutil.copytree(default_boundary_model_dir(), folder)
    data = bytearray((folder / "boundaries.json").read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / "boundaries.json").write_bytes(bytes(data))
    with pytest.raises(PipelineError, match="checksum") as caught:
        load_boundary_model(folder)
    assert "train_boundaries.py" in caught.value.hint
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "format": "callcycle-role-model/1"}))
    with pytest.raises(PipelineError, match="not a sentence-boundary model"):
        check_boundary_model(folder)
    (folder / "card.json").unlink()
    with pytest.raises(PipelineError, match="Cannot read"):
        load_boundary_model(folder)


def test_full_stops_inside_tokens_and_other_scripts_marks(splitter) -> None:
    """A price, a version, a web address or "p.m." in a run-on turn is no sentence punctuation (the model still
    cuts the turn); the sentence marks of other scripts are (spaCy splits those turns, as before the model);
    the model never starts a sentence inside a token ("okay-okay", "yes/no")."""
    for run_on in ("we upgraded to version 2.5 last week and since then the export fails every night could you "
                   "look at the logs and call me back", "see acme.com and dana@example.com", "call me at 3 p.m. ok"):
        assert is_unpunctuated(run_on), run_on
    assert len(splitter.spans("we upgraded to version 2.5 last week and since then the export fails every night "
                              "could you look at the logs and call me back")) == 2
    for punctuated in ("Okay. Could you?", "wait.", "so…yeah", "好的。我会发送", "كيف حالك؟ نعم",
                       "میں ٹھیک ہوں۔ آپ کیسے ہیں", "नमस्ते, मैं दाना बोल रही हूँ। क्या आप सुन सकते हैं। मैं भेज दूँगी।"):
        assert not is_unpunctuated(punctuated), punctuated
    hindi = "नमस्ते, मैं दाना बोल रही हूँ। क्या आप सुन सकते हैं। मैं शुक्रवार तक कोटेशन भेज दूँगी।"
    assert splitter.spans(hindi) == build_sentencizer(False).spans(hindi) and len(splitter.spans(hindi)) == 3
    for text in ("we talked about it last week okay-okay i'll send it today to your team",
                 "so i looked at the account yes/no okay so let me check the billing page",
                 "yeah that works for us, can you send the contract over by friday, thanks so much for your help"):
        spans = splitter.spans(text)
        assert all(text[start - 1].isspace() for start, _end in spans[1:]), [text[a:b] for a, b in spans]
    assert len(splitter.spans("we talked about it last week okay-okay i'll send it today to your team")) == 2


def test_a_model_damaged_behind_a_matching_checksum_stops_the_batch_before_any_file(
        tmp_path: Path, prefect_harness) -> None:
    """The card's checksum is rewritten with the file, so only reading the weights finds the damage: the run
    stops up front (as for a checksum mismatch) instead of failing every file at its segment step. The model
    is chosen with ``[segmentation] unpunctuated_model_path``; an intact copy there scores the file."""
    import dataclasses
    import hashlib

    from conftest import MODELS

    from flows.score_flow import run_scoring
    from pipeline.config import PipelineConfig

    folder = tmp_path / "boundaries"
    shutil.copytree(default_boundary_model_dir(), folder)
    payload = json.loads((folder / "boundaries.json").read_text())
    payload["weights"]["bias"] = "abc"
    (folder / "boundaries.json").write_text(json.dumps(payload))
    card = json.loads((folder / "card.json").read_text())
    card["sha256"] = hashlib.sha256((folder / "boundaries.json").read_bytes()).hexdigest()
    (folder / "card.json").write_text(json.dumps(card))
    base = PipelineConfig()
    damaged = dataclasses.replace(base, segmentation=dataclasses.replace(base.segmentation,
                                                                         unpunctuated_model_path=str(folder)))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.json").write_text(json.dumps({"turns": [{"speaker": "A", "text": "Can you send it?"}]}))
    with pytest.raises(PipelineError, match="damaged"):
        run_scoring([str(tmp_path / "in")], out_dir=str(tmp_path / "out"), models=str(MODELS), config=damaged)
    written = [p.name for p in (tmp_path / "out").rglob("*.parquet") if not p.name.startswith("_")]
    assert written == []  # no file was scored or recorded as failed
    intact = tmp_path / "intact"
    shutil.copytree(default_boundary_model_dir(), intact)
    chosen = dataclasses.replace(base, segmentation=dataclasses.replace(base.segmentation,
                                                                        unpunctuated_model_path=str(intact)))
    summary = run_scoring([str(tmp_path / "in")], out_dir=str(tmp_path / "out"), models=str(MODELS), config=chosen)
    assert [o.status for o in summary.outcomes] == ["scored"]
