"""Word-timed turns (stereo interleaving), roles from each source, and per-speaker figures by hand."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline.classify.labels import load_taxonomy
from pipeline.schema import AsrPiece, CallMetadata, ClassifiedSegment, Prediction, Segment, Turn
from pipeline.score import count_fillers, score_call
from pipeline.speech.roles import assign_roles
from pipeline.speech.turns import channel_words, words_to_turns
from tests.conftest import espeak_wav, read_wav, word_error_rate, write_wav

TAXONOMY = load_taxonomy(Path(__file__).resolve().parents[1] / "labels" / "taxonomy.toml")


def _piece(channel: int, words: list[tuple[str, float, float]]) -> AsrPiece:
    return AsrPiece(channel=channel, start_s=words[0][1], end_s=words[-1][2], text=" ".join(w[0] for w in words),
                    confidence=0.9, words=tuple((w, a, b, 0.9) for w, a, b in words))


def test_stereo_segment_spanning_the_other_speakers_turn_is_cut_at_it() -> None:
    """The issue's case: a customer segment 52.9-63.9 s runs across the rep's turn 57.3-62.3 s."""
    customer = _piece(1, [("We", 52.9, 53.1), ("looked", 53.1, 53.5), ("at", 53.5, 53.6), ("it.", 53.6, 54.0),
                          ("Sure,", 62.6, 63.0), ("maybe", 63.0, 63.3), ("after", 63.3, 63.5),
                          ("the", 63.5, 63.6), ("budget", 63.6, 63.8), ("season.", 63.8, 63.9)])
    rep = _piece(0, [("Can", 57.3, 57.5), ("we", 57.5, 57.6), ("meet", 57.6, 58.0), ("next", 58.0, 58.4),
                     ("month?", 58.4, 62.3)])
    words = channel_words([customer, rep], {0: "rep", 1: "customer"})
    turns = words_to_turns(words, max_pause_s=1.0)
    assert [(t.speaker, t.text) for t in turns] == [
        ("customer", "We looked at it."),
        ("rep", "Can we meet next month?"),
        ("customer", "Sure, maybe after the budget season."),
    ]
    assert turns[2].start_s == pytest.approx(62.6)


def test_crosstalk_words_are_kept_once_in_time_order() -> None:
    rep = _piece(0, [("I", 1.0, 1.2), ("think", 1.2, 1.5), ("we", 1.5, 1.7), ("should", 1.7, 2.0),
                     ("start", 2.0, 2.4)])
    customer = _piece(1, [("mm-hm", 1.4, 1.7), ("yes", 2.3, 2.6)])
    turns = words_to_turns(channel_words([rep, customer], {0: "rep", 1: "customer"}), max_pause_s=1.0)
    assert [(t.speaker, t.text) for t in turns] == [
        ("rep", "I think"), ("customer", "mm-hm"), ("rep", "we should start"), ("customer", "yes")]
    kept = Counter(w[0] for t in turns for w in t.words)
    assert kept == Counter(["I", "think", "we", "should", "start", "mm-hm", "yes"])


def test_on_separate_channels_a_sentence_is_never_cut_by_the_other_speaker() -> None:
    """Stereo calls interleave by sentence: the customer's "Okay." said inside the rep's sentence, or a
    reply that starts before the rep has finished, follows the rep's sentence instead of cutting it into
    fragments that are classified on their own; every word is still kept once."""
    rep = _piece(0, [("Hello,", 0.0, 0.3), ("this", 0.3, 0.5), ("is", 0.5, 0.6), ("Dana.", 0.6, 1.0),
                     ("I", 1.1, 1.2), ("wanted", 1.2, 1.5), ("to", 1.5, 1.6), ("follow", 1.6, 1.9), ("up", 1.9, 2.0),
                     ("on", 2.0, 2.1), ("the", 2.1, 2.2), ("proposal.", 2.2, 2.8)])
    customer = _piece(1, [("Okay.", 1.15, 1.6), ("Sure,", 2.5, 3.0), ("send", 3.0, 3.2), ("it", 3.2, 3.3),
                          ("over.", 3.3, 3.6)])
    words = channel_words([rep, customer], {0: "rep", 1: "customer"})
    by_word = words_to_turns(words, max_pause_s=1.0)
    assert [t.text for t in by_word][:3] == ["Hello, this is Dana. I", "Okay.", "wanted to follow up on the proposal."]
    turns = words_to_turns(words, max_pause_s=1.0, by_sentence=True)
    assert [(t.speaker, t.text) for t in turns] == [
        ("rep", "Hello, this is Dana. I wanted to follow up on the proposal."),
        ("customer", "Okay. Sure, send it over."),
    ]
    assert turns[1].start_s == pytest.approx(1.15) and turns[0].end_s == pytest.approx(2.8)
    assert Counter(w[0] for t in turns for w in t.words) == Counter(w[0] for t in by_word for w in t.words)
    # a customer sentence said between two of the rep's sentences stays between them
    between = channel_words([rep, _piece(1, [("Right.", 1.02, 1.08)])], {0: "rep", 1: "customer"})
    assert [t.speaker for t in words_to_turns(between, max_pause_s=1.0, by_sentence=True)] == ["rep", "customer", "rep"]
    # without punctuation, the other speaker starting in a silence is turn-taking: the dialogue keeps its order
    rep = _piece(0, [("can", 0.0, 0.3), ("we", 0.3, 0.5), ("meet", 0.5, 0.9), ("tuesday", 0.9, 1.5),
                     ("great", 3.2, 3.6), ("i'll", 3.6, 3.8), ("send", 3.8, 4.1), ("it", 4.1, 4.3)])
    customer = _piece(1, [("yes", 2.1, 2.3), ("works", 2.3, 2.6), ("fine", 4.9, 5.2)])
    plain = words_to_turns(channel_words([rep, customer], {0: "rep", 1: "customer"}), 1.0, by_sentence=True)
    assert [t.text for t in plain] == ["can we meet tuesday", "yes works", "great i'll send it", "fine"]
    # the spanning case reads the same either way
    customer = _piece(1, [("We", 52.9, 53.1), ("looked", 53.1, 53.5), ("at", 53.5, 53.6), ("it.", 53.6, 54.0),
                          ("Sure,", 62.6, 63.0), ("maybe", 63.0, 63.3), ("after", 63.3, 63.5)])
    rep = _piece(0, [("Can", 57.3, 57.5), ("we", 57.5, 57.6), ("meet", 57.6, 58.0), ("next", 58.0, 58.4),
                     ("month?", 58.4, 62.3)])
    spanning = channel_words([customer, rep], {0: "rep", 1: "customer"})
    assert [t.text for t in words_to_turns(spanning, 1.0, by_sentence=True)] == \
        [t.text for t in words_to_turns(spanning, 1.0)] == ["We looked at it.", "Can we meet next month?", "Sure, maybe after"]


def test_long_pause_starts_a_new_turn() -> None:
    rep = _piece(0, [("Hello", 0.0, 0.4), ("there.", 0.4, 0.8), ("Anyway,", 3.0, 3.5), ("next.", 3.5, 3.9)])
    turns = words_to_turns(channel_words([rep], {0: "rep"}), max_pause_s=1.0)
    assert [t.text for t in turns] == ["Hello there.", "Anyway, next."]


def test_real_stereo_call_interleaves_and_keeps_every_word(tmp_path: Path, asr_model) -> None:
    """A rep's two sentences with the customer's reply in the pause between them, on the other channel."""
    from pipeline.speech.transcribe import transcribe_file

    first, _ = read_wav(espeak_wav("Can we book the demo for Tuesday", tmp_path / "a.wav", "en-us"))
    reply, rate = read_wav(espeak_wav("Yes, that sounds good to us", tmp_path / "b.wav", "en-us"))
    second, _ = read_wav(espeak_wav("Great, I will send the invite tonight", tmp_path / "c.wav", "en-us"))
    gap = np.zeros(int(0.4 * rate), dtype=np.int16)
    left = np.concatenate([first[0], gap, np.zeros_like(reply[0]), gap, second[0]])
    right = np.concatenate([np.zeros_like(first[0]), gap, reply[0], gap, np.zeros_like(second[0])])
    path = write_wav(tmp_path / "call.wav", np.stack([left, right]), rate)
    audio = transcribe_file(asr_model, path)
    words = channel_words(audio.pieces, {0: "rep", 1: "customer"})
    turns = words_to_turns(words, max_pause_s=1.0)
    assert [t.speaker for t in turns] == ["rep", "customer", "rep"]
    assert word_error_rate("Yes, that sounds good to us", turns[1].text) <= 0.5
    assert word_error_rate("Great, I will send the invite tonight", turns[2].text) <= 0.5
    assert sorted(w[0] for t in turns for w in t.words) == sorted(w[0] for p in audio.pieces for w in p.words)


def _turn(speaker: str, text: str, start: float = 0.0) -> Turn:
    return Turn(speaker=speaker, channel=None, start_s=start, end_s=start + 1, text=text)


def test_roles_from_the_sidecar_speaker_map() -> None:
    turns = [_turn("S1", "Hi."), _turn("S2", "What is the price?"), _turn("S3", "I approve it.")]
    meta = CallMetadata(speaker_roles=(("s1", "customer"), ("S2", "rep"), ("S3", "manager")))
    assert [(t.role, t.role_source) for t in assign_roles(turns, meta)] == [
        ("customer", "sidecar"), ("rep", "sidecar"), ("manager", "sidecar")]


def test_rep_name_from_the_sidecar_marks_the_rep() -> None:
    turns = [_turn("Dana", "Hi."), _turn("Lee", "Hello?")]
    result = assign_roles(turns, CallMetadata(rep="dana"))
    assert [(t.role, t.role_source) for t in result] == [("rep", "sidecar"), ("customer", "heuristic")]


def test_the_rep_named_by_calls_csv_or_the_file_name_is_found_by_first_or_full_name() -> None:
    """"Ben Okafor" in calls.csv did not match the transcript's "Ben", so the role model decided (and made the
    customer the rep); accents and case aside, a first or last name matches, unless two speakers do."""
    from pipeline.speech.roles import names_match

    assert names_match("Zoë Müller", "zoe muller") == 3 and names_match("Ben", "Ben Okafor") == 1
    assert names_match("Whitfield, Dana", "Dana Whitfield") == 3 == names_match("Dr. Dana Whitfield", "Dana Whitfield")
    assert names_match("王 小明", "王小明") == 3 and names_match("Dana W.", "Dana Whitfield") == 2
    assert names_match("Okafor", "Ben Okafor") == 1 and names_match("Ben Smith", "Ben Okafor") == 0
    turns = [_turn("Carla", "Thanks for having me."), _turn("Ben", "So how has the quarter gone?")]
    result = {t.speaker: (t.role, t.role_source) for t in assign_roles(turns, CallMetadata(rep="Ben Okafor"))}
    assert result["Ben"] == ("rep", "sidecar")
    both = [_turn("Ben", "Hi."), _turn("Ben Okafor", "Hello."), _turn("Lee", "Hey.")]
    result = {t.speaker: t.role_source for t in assign_roles(both, CallMetadata(rep="ben okafor"))}
    assert result["Ben Okafor"] == "sidecar" and result["Ben"] != "sidecar"  # the full name matches better
    tie = [_turn("Ben Okafor", "Hi."), _turn("Ben Adams", "Hello.")]
    assert all(t.role_source != "sidecar" for t in assign_roles(tie, CallMetadata(rep="Ben")))


def test_of_two_unnamed_speakers_the_model_makes_exactly_one_the_rep() -> None:
    """Both speakers of a two-person call came out as reps; one is, the likelier by the model."""
    from pipeline.speech.rolemodel import load_role_model

    turns = [_turn("S1", "Thanks for making time, I'll send the proposal and the pricing today."),
             _turn("S2", "Great, and I'll send over the order form and the pricing sheet this afternoon.")]
    model = load_role_model()
    alone = model.roles({"S1": turns[0].text, "S2": turns[1].text})
    assert [role for role, _ in alone.values()] == ["rep", "rep"]  # each read on its own sounds like a rep
    roles = [t.role for t in assign_roles(turns, model=model)]
    assert roles.count("rep") == 1


def test_roles_from_the_channel_layout() -> None:
    turns = [_turn("rep", "Hi."), _turn("customer", "Why?"), _turn("channel_2", "Hm.")]
    assert [(t.role, t.role_source) for t in assign_roles(turns, channel_layout=True)] == [
        ("rep", "channel"), ("customer", "channel"), ("unknown", "channel")]


def test_roles_from_transcript_speaker_names() -> None:
    turns = [_turn("Agent", "Hi."), _turn("Caller", "Hello."), _turn("Manager", "Go ahead.")]
    assert [(t.role, t.role_source) for t in assign_roles(turns)] == [
        ("rep", "name"), ("customer", "name"), ("manager", "name")]
    from pipeline.schema import role_word

    assert [role_word(w) for w in ("Sales Rep", "sales-representative", "AE", "SDR")] == ["rep"] * 4
    # a role the transcript gives ("Lee (customer): ...") is a name's role; the sidecar's map wins over it
    named = [_turn("Dana", "Hi."), _turn("Lee", "Hello.")]
    declared = {"Lee": "customer", "Dana": "manager"}
    assert [(t.role, t.role_source) for t in assign_roles(named, declared=declared)] == [
        ("manager", "name"), ("customer", "name")]
    sidecar = CallMetadata(speaker_roles=(("dana", "rep"),))
    assert [(t.role, t.role_source) for t in assign_roles(named, sidecar, declared=declared)] == [
        ("rep", "sidecar"), ("customer", "name")]


def test_role_heuristic_most_questions_is_the_rep() -> None:
    turns = [_turn("S1", "Hello, this is Sam."), _turn("S2", "Hi Sam. How many seats do you have? Who decides?"),
             _turn("S1", "About fifty."), _turn("S2", "When do you renew?")]
    result = {t.speaker: (t.role, t.role_source) for t in assign_roles(turns)}
    assert result == {"S2": ("rep", "heuristic"), "S1": ("customer", "heuristic")}
    three = assign_roles([_turn("S1", "Why?"), _turn("S2", "Because."), _turn("S3", "Right.")])
    assert [(t.role, t.role_source) for t in three] == [
        ("rep", "heuristic"), ("unknown", "heuristic"), ("unknown", "heuristic")]


def test_sidecar_speakers_column_is_read(tmp_path: Path) -> None:
    from pipeline.ingest.discover import read_sidecar

    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "calls.csv").write_text("path,rep,customer,date,speakers\n"
                                        "a.wav,dana,acme,2026-11-02,S1=rep;S2=customer\n"
                                        "b.wav,dana,acme,2026-11-02,S1=boss\n")
    meta = read_sidecar(tmp_path / "calls.csv")
    assert meta[(tmp_path / "a.wav").resolve()].speaker_roles == (("S1", "rep"), ("S2", "customer"))
    assert meta[(tmp_path / "b.wav").resolve()].speaker_roles == ()  # unknown role: warned and ignored


def _seg(i: int, speaker: str, start: float, end: float, text: str, question: bool = False,
         stage: str = "align", ta: str = "talk") -> ClassifiedSegment:
    s = Segment("c", i, i, speaker, None, start, end, text, None, False, question, "rep" if speaker == "rep" else
                "customer", "channel")
    return ClassifiedSegment(s, Prediction(stage, {stage: 1.0}), Prediction(ta, {ta: 1.0}))


def test_per_speaker_figures_by_hand() -> None:
    segments = [
        _seg(0, "rep", 0.0, 10.0, "Um so here is what we found in the audit last month okay"),  # 10 s
        _seg(1, "rep", 11.0, 21.0, "And uh you know the numbers are clear for everyone here", stage="act",
             ta="action"),                                                                      # 10 s, gap 1 s
        _seg(2, "customer", 23.0, 28.0, "What does it cost?", question=True),                   # pause 2 s
        _seg(3, "rep", 28.0, 33.0, "About ten thousand a year for all seats"),                  # pause 0 s
        _seg(4, "customer", 32.0, 60.0, "Okay we need to think about it and come back next week"),  # overlap: 0
    ]
    score = score_call(segments, TAXONOMY)
    rep = next(s for s in score.speakers if s.speaker == "rep")
    cust = next(s for s in score.speakers if s.speaker == "customer")
    # speech: rep 10 + 10 + 5 = 25 s, customer 5 + 28 = 33 s
    assert rep.speech_s == pytest.approx(25) and cust.speech_s == pytest.approx(33)
    assert rep.talk_to_listen == pytest.approx(25 / 33) and cust.talk_to_listen == pytest.approx(33 / 25)
    # longest monologue counts speech only: 0-10 and 11-21 join (1 s pause) = 20 s, not the 21 s span
    assert rep.longest_monologue_s == pytest.approx(20)
    assert cust.longest_monologue_s == pytest.approx(28)
    # the call spans 0-60 s = 1 minute; floor takings: customer at 23 and 32, rep at 28
    assert score.interactivity_per_min == pytest.approx(3)
    assert cust.interactivity_per_min == pytest.approx(2) and rep.interactivity_per_min == pytest.approx(1)
    # patience: customer waited 2 s (21 -> 23) and 0 s (overlap at 32) -> 1 s; rep 0 s (28 -> 28)
    assert cust.patience_s == pytest.approx(1.0) and rep.patience_s == pytest.approx(0.0)
    assert cust.question_rate_per_min == pytest.approx(1.0) and rep.question_rate_per_min == pytest.approx(0.0)
    # fillers: "Um", "uh", "you know" = 3 in 13 + 11 + 8 = 32 rep words
    assert rep.n_words == 32
    assert rep.filler_rate_per_100_words == pytest.approx(100 * 3 / 32)
    assert cust.filler_rate_per_100_words == pytest.approx(0.0)
    assert rep.action_share == pytest.approx(10 / 25)
    assert rep.stage_shares["act"] == pytest.approx(10 / 25)
    assert (rep.role, rep.role_source) == ("rep", "channel")


def test_monologue_is_never_longer_than_speech() -> None:
    segments = [_seg(i, "rep", 1.4 * i, 1.4 * i + 0.1, "word") for i in range(10)]  # 0.1 s each, 1.3 s pauses
    rep = score_call(segments, TAXONOMY).speakers[0]
    assert rep.longest_monologue_s <= rep.speech_s
    assert rep.talk_to_listen is None and rep.patience_s is None


def test_filler_count() -> None:
    assert count_fillers("Um, you know, I mean... uh umbrella erm") == 5


def test_diarize_options_from_toml_and_cli_overrides(tmp_path: Path) -> None:
    from pipeline.config import load_config

    toml = tmp_path / "c.toml"
    toml.write_text("[diarize]\nmax_speakers = 4\nhop_s = 0.5\n")
    cfg = load_config(toml, diarize__n_speakers=3, diarize__enabled=None)
    assert (cfg.diarize.max_speakers, cfg.diarize.hop_s, cfg.diarize.n_speakers, cfg.diarize.enabled) == (4, 0.5, 3, True)
    assert load_config(None, diarize__enabled=False).diarize.enabled is False


def test_run_help_lists_the_diarization_options() -> None:
    from typer.testing import CliRunner

    from cli import app

    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--speakers" in result.output and "--no-diarize" in result.output
    # a count above the estimate's default cap is the user's to give (a meeting of eight)
    many = CliRunner().invoke(app, ["run", "no-such-folder", "--speakers", "8"], env={"COLUMNS": "200"})
    assert many.exit_code == 2 and "no-such-folder" in many.output and "--speakers" not in many.output, many.output
    none = CliRunner().invoke(app, ["run", "no-such-folder", "--speakers", "0"], env={"COLUMNS": "200"})
    assert none.exit_code == 2 and "--speakers" in none.output


# --- the role model (pipeline.speech.rolemodel)

def test_role_model_reads_a_coaching_call_the_question_rule_gets_wrong() -> None:
    """In a coaching call the manager asks the questions: the rule makes them the rep, the model does not."""
    from pipeline.speech.rolemodel import load_role_model

    turns = [_turn("S1", "So walk me through the Hartley deal, where are we on it this week?"),
             _turn("S2", "I sent them the proposal on Monday and their CFO still has it."),
             _turn("S1", "What did you commit to in your forecast for this quarter, and what's your plan if it slips?"),
             _turn("S2", "I have it as commit. I'll call their CFO tomorrow and ask for a decision by Friday."),
             _turn("S1", "Okay. Next time let's role-play that pricing objection before you get on the call.")]
    rule = {t.speaker: t.role for t in assign_roles(turns)}
    assert rule == {"S1": "rep", "S2": "customer"}
    model = {t.speaker: (t.role, t.role_source) for t in assign_roles(turns, model=load_role_model())}
    assert model == {"S1": ("manager", "model"), "S2": ("rep", "model")}


def test_role_model_only_fills_in_speakers_without_a_stronger_source() -> None:
    from pipeline.speech.rolemodel import load_role_model

    loads: list[int] = []

    def loader():  # called only when some speaker needs the model
        loads.append(1)
        return load_role_model()

    turns = [_turn("rep", "Hi."), _turn("customer", "Why?")]
    assert [(t.role, t.role_source) for t in assign_roles(turns, channel_layout=True, model=loader)] == [
        ("rep", "channel"), ("customer", "channel")]
    assert loads == []
    meta = CallMetadata(speaker_roles=(("S1", "customer"),))
    mixed = [_turn("S1", "We need the contract signed by the end of the month."),
             _turn("S2", "Thanks for your time today, I'll send over the pricing and the order form this afternoon.")]
    result = [(t.speaker, t.role, t.role_source) for t in assign_roles(mixed, meta, model=loader)]
    assert result == [("S1", "customer", "sidecar"), ("S2", "rep", "model")] and loads == [1]
    # the call's rep named in the sidecar stays its only rep: the other speaker is read as another role,
    # even when their words sound like a rep's
    named = [_turn("Alice", "How many seats do you need, and who signs off?"),
             _turn("Bob", "Thanks for your time today, I'll send over the pricing and the order form this afternoon.")]
    roles = {t.speaker: (t.role, t.role_source) for t in assign_roles(named, CallMetadata(rep="alice"), model=loader)}
    assert roles["Alice"] == ("rep", "sidecar") and roles["Bob"][1] == "model" and roles["Bob"][0] != "rep"
    alone = assign_roles([_turn("mixed", "Hello there, how are you?")], model=loader)
    assert [(t.role, t.role_source) for t in alone] == [("unknown", "heuristic")]


def test_role_model_round_trips_as_json_with_a_checksum(tmp_path: Path) -> None:
    """Saved and loaded, the model gives the fitted probabilities; a changed byte is refused."""
    from pipeline.errors import PipelineError
    from pipeline.speech.rolemodel import SpeakerDocument, fit_role_model, load_role_model, save_role_model

    docs = [SpeakerDocument(f"g{i}", "a", "we can send the quote and set up the demo for you", "rep")
            for i in range(3)] + [SpeakerDocument(f"g{i}", "b", "our team uses spreadsheets and the budget is tight",
                                                  "customer") for i in range(3)]
    fitted = fit_role_model(docs, min_df=1)
    save_role_model(fitted, tmp_path / "roles", {"data_hash": "x"})
    loaded = load_role_model(tmp_path / "roles")
    texts = ["we can send the demo", "the budget is tight for our team", "unrelated words"]
    assert np.allclose(fitted.probabilities(texts), loaded.probabilities(texts), atol=1e-6)
    assert np.array_equal(fitted.probabilities(texts), loaded.probabilities(texts))  # full precision on disk
    both = loaded.roles({"x": texts[0], "y": texts[1]})
    assert [both["x"][0], both["y"][0]] == ["rep", "customer"]
    assert both["x"][1] == pytest.approx(float(fitted.probabilities([texts[0]])[0][list(fitted.classes).index("rep")]))
    assert loaded.roles({"x": texts[0]}, exclude=("rep",))["x"][0] == "customer"
    raw = (tmp_path / "roles" / "roles.json").read_bytes()
    (tmp_path / "roles" / "roles.json").write_bytes(raw.replace(b'"rep"', b'"rap"', 1))
    with pytest.raises(PipelineError, match="checksum"):
        load_role_model(tmp_path / "roles")
    with pytest.raises(PipelineError, match="Cannot read the role model"):
        load_role_model(tmp_path / "missing")


def test_shipped_role_model_card_beats_the_question_rule_on_the_labelled_calls() -> None:
    """The shipped model's card: measured on labels/calls (never trained on), next to the rule it replaced,
    and the same figures come out when the card's measurement is repeated now."""
    from pipeline.speech.rolemodel import evaluate_calls, load_role_model, read_labelled_calls

    model = load_role_model()
    calls = read_labelled_calls(Path(__file__).resolve().parents[1] / "labels" / "calls")
    assert len(calls) == model.info["labelled_calls"]["model"]["calls"]
    assert evaluate_calls(calls, model) == model.info["labelled_calls"]["model"]
    assert evaluate_calls(calls, None) == model.info["labelled_calls"]["question_rule"]
    assert model.info["labelled_calls"]["model"]["role_accuracy"] > model.info["labelled_calls"]["question_rule"][
        "role_accuracy"]


def test_shipped_role_model_is_the_one_its_corpus_gives_and_reads_outside_transcripts() -> None:
    """The shipped model was trained on today's corpus (a writer added since would make `make train-roles`
    give another model than the one shipped), and its card's outside figures (transcripts written and keyed
    blind, read as `callcycle run` reads them) come out again."""
    from pipeline.classify.labels import read_rows
    from pipeline.speech.rolemodel import (
        corpus_documents,
        documents_hash,
        evaluate_calls,
        load_role_model,
        read_transcript_calls,
    )

    root = Path(__file__).resolve().parents[1]
    model = load_role_model()
    files = sorted((root / "labels" / "data").glob("corpus_*.jsonl"))
    documents = [d for path in files for d in corpus_documents(read_rows(path), path.stem.removeprefix("corpus_"))]
    assert documents_hash(documents) == model.info["data_hash"]
    assert model.info["corpus_files"] == [p.name for p in files]
    outside = read_transcript_calls(root / "labels" / "held-back" / "roles-outside")
    assert len(outside) == 16 and evaluate_calls(outside, model) == model.info["outside_calls"]["model"]
    assert evaluate_calls(outside, None) == model.info["outside_calls"]["question_rule"]


def test_roles_section_of_the_config_turns_the_model_off(tmp_path: Path) -> None:
    from pipeline.config import load_config

    (tmp_path / "c.toml").write_text("[roles]\nmodel = false\n")
    assert load_config(tmp_path / "c.toml").roles.model is False
    assert load_config().roles.model is True and load_config().roles.model_path is None


def test_read_call_uses_the_role_model_unless_the_config_turns_it_off(tmp_path: Path) -> None:
    import json

    from pipeline.config import PipelineConfig, RoleOptions
    from pipeline.ingest.discover import describe_source
    from pipeline.process import read_call

    path = tmp_path / "coaching.json"
    path.write_text(json.dumps({"turns": [
        {"speaker": "A", "text": "So walk me through the Hartley deal, what did you put in your forecast?"},
        {"speaker": "B", "text": "I have it as commit, I'll call their CFO tomorrow and ask for a decision."},
        {"speaker": "A", "text": "What's your plan if it slips? Let's role-play the pricing objection first."}]}))
    source = describe_source(path)
    on = {t.speaker: (t.role, t.role_source) for t in read_call(source, None, PipelineConfig()).turns}
    assert on == {"A": ("manager", "model"), "B": ("rep", "model")}
    off = read_call(source, None, PipelineConfig(roles=RoleOptions(model=False))).turns
    assert {t.speaker: (t.role, t.role_source) for t in off} == {"A": ("rep", "heuristic"),
                                                                 "B": ("customer", "heuristic")}
    broken = PipelineConfig(roles=RoleOptions(model_path=str(tmp_path / "no-such-model")))
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match="role model"):
        read_call(source, None, broken)


def test_a_run_with_a_damaged_role_model_stops_before_scoring(tmp_path: Path) -> None:
    """The batch checks the role model's card and checksum up front, as it does the classifier's."""
    import json
    import shutil

    from typer.testing import CliRunner

    from cli import app

    models = Path(__file__).resolve().parents[1] / "models"
    damaged = tmp_path / "roles"
    shutil.copytree(models / "roles", damaged)
    (damaged / "roles.json").write_bytes((damaged / "roles.json").read_bytes()[:-10] + b"0000000000")
    (tmp_path / "c.toml").write_text(f"[roles]\nmodel_path = {json.dumps(str(damaged))}\n")
    call = tmp_path / "in" / "a.json"
    call.parent.mkdir()
    call.write_text(json.dumps({"turns": [{"speaker": "A", "text": "I'll send the quote by Friday."},
                                          {"speaker": "B", "text": "Great, thanks."}]}))
    result = CliRunner().invoke(app, ["run", str(call.parent), "--out", str(tmp_path / "out"), "--models",
                                      str(models), "--config", str(tmp_path / "c.toml")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "checksum" in text and "[roles] model = false" in text, text
    assert not list((tmp_path / "out").glob("calls/**/part-*.parquet"))


def test_a_run_with_a_damaged_speaker_model_stops_before_any_recording(tmp_path: Path) -> None:
    """A damaged [diarize] model_path failed every recording, each after its transcription, where a model
    problem should stop the run at once with exit 2 (a tester's find on 02f9cbe, stop 57); the message names
    the card actually checked. With --no-diarize the run does not need the model."""
    import json
    import shutil

    from typer.testing import CliRunner

    from cli import app
    from pipeline.speech.diarize import SPEAKER_MODEL_FILE

    models = Path(__file__).resolve().parents[1] / "models"
    damaged = tmp_path / "speaker"
    damaged.mkdir()
    shutil.copy(models / "speaker" / "card.json", damaged / "card.json")
    raw = bytearray((models / "speaker" / SPEAKER_MODEL_FILE).read_bytes())
    raw[-100] ^= 0xFF
    (damaged / SPEAKER_MODEL_FILE).write_bytes(bytes(raw))
    (tmp_path / "c.toml").write_text(f"[diarize]\nmodel_path = {json.dumps(str(damaged / SPEAKER_MODEL_FILE))}\n")
    call = tmp_path / "in" / "a.json"
    call.parent.mkdir()
    call.write_text(json.dumps({"turns": [{"speaker": "A", "text": "I'll send the quote by Friday."}]}))
    args = ["run", str(call.parent), "--out", str(tmp_path / "out"), "--models", str(models), "--config",
            str(tmp_path / "c.toml"), "--no-report"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "does not match the checksum" in text, text
    assert str(damaged / "card.json") in text and "--no-diarize" in text
    assert not list((tmp_path / "out").glob("calls/part-*.parquet"))
    assert CliRunner().invoke(app, [*args, "--no-diarize"]).exit_code == 0
