"""Real transcription with the bundled Whisper model, speaker turns and segments."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import espeak_wav, word_error_rate

from pipeline.config import SegmentationConfig
from pipeline.ingest.audio import load_audio
from pipeline.schema import Turn
from pipeline.speech.transcribe import distinct_channels, transcribe_audio
from pipeline.speech.turns import looks_like_question, pieces_to_turns, segment_turns


def test_espeak_speech_word_error_rate(tmp_path: Path, asr_model) -> None:
    text = ("Thanks for joining the call today. I will send you the revised proposal by Friday, "
            "and we can review the pricing together next week.")
    audio = load_audio(espeak_wav(text, tmp_path / "speech.wav"))
    hypothesis = " ".join(p.text for p in transcribe_audio(asr_model, audio))
    wer = word_error_rate(text, hypothesis)
    assert wer < 0.25, (wer, hypothesis)


def test_real_speech_jfk(realdata: Path, asr_model) -> None:
    audio = load_audio(realdata / "audio" / "jfk.flac")
    assert distinct_channels(audio) == [0], "dual-mono channels must be transcribed once"
    hypothesis = " ".join(p.text for p in transcribe_audio(asr_model, audio))
    reference = ("And so my fellow Americans, ask not what your country can do for you, "
                 "ask what you can do for your country.")
    assert word_error_rate(reference, hypothesis) < 0.15


def test_a_chunk_that_comes_back_short_is_decoded_again_region_by_region(two_speaker_stereo) -> None:
    """With beam search the decoder ends the customer's chunk (two utterances spliced together)
    after the first one; the check that every stretch of speech got words decodes it again, one
    region at a time, so the second utterance is not lost."""
    from pipeline.config import AsrConfig
    from pipeline.speech.transcribe import load_asr_model

    path, script = two_speaker_stereo
    model = load_asr_model(AsrConfig(beam_size=5))
    turns = pieces_to_turns(transcribe_audio(model, load_audio(path)), {0: "rep", 1: "customer"})
    assert [t.speaker for t in turns] == ["rep", "customer", "rep", "customer"]
    assert word_error_rate(script[3][1], turns[3].text) < 0.3, turns[3].text


def test_stereo_call_splits_into_two_speakers(two_speaker_stereo, asr_model, nlp) -> None:
    path, script = two_speaker_stereo
    audio = load_audio(path)
    pieces = transcribe_audio(asr_model, audio)
    turns = pieces_to_turns(pieces, {0: "rep", 1: "customer"})
    assert [t.speaker for t in turns] == ["rep", "customer", "rep", "customer"]
    for turn, (_, reference) in zip(turns, script):
        assert word_error_rate(reference, turn.text) < 0.3, (reference, turn.text)
    assert all(a.end_s <= b.start_s + 0.5 for a, b in zip(turns, turns[1:]))
    segments = segment_turns(turns, "stereo", nlp)
    assert {s.speaker for s in segments} == {"rep", "customer"}
    assert all(s.confidence is not None and 0 < s.confidence <= 1 for s in segments)
    assert any(s.is_question for s in segments if s.speaker == "rep")


def test_real_two_channel_recording(realdata: Path, asr_model) -> None:
    audio = load_audio(realdata / "audio" / "stereo_diarization.wav")
    pieces = transcribe_audio(asr_model, audio)
    left = " ".join(p.text for p in pieces if p.channel == 0)
    right = " ".join(p.text for p in pieces if p.channel == 1)
    assert word_error_rate("He began a confused complaint against the wizard, who had vanished behind "
                           "the curtain on the left.", left) < 0.25
    assert word_error_rate("The horizon seems extremely distant.", right) < 0.25


def test_segments_split_sentences_and_merge_fragments(nlp) -> None:
    turn = Turn(speaker="Dana", channel=None, start_s=10.0, end_s=20.0,
                text="Okay. I will send the quote by Friday. Thanks. Can you book the room for Tuesday?")
    segs = segment_turns([turn], "c", nlp, SegmentationConfig(min_segment_words=3))
    assert [s.text for s in segs] == ["Okay. I will send the quote by Friday. Thanks.",
                                      "Can you book the room for Tuesday?"]
    assert segs[0].start_s == 10.0 and segs[-1].end_s == 20.0
    assert segs[0].end_s == pytest.approx(segs[1].start_s, abs=0.5)
    assert segs[1].is_question and not segs[0].is_question


def test_word_timings_time_each_segment(nlp) -> None:
    words = (("I", 0.0, 0.2, 0.9), ("will", 0.2, 0.4, 0.9), ("call", 0.4, 0.6, 0.9), ("you.", 0.6, 0.8, 0.9),
             ("What", 2.0, 2.2, 0.8), ("is", 2.2, 2.3, 0.8), ("the", 2.3, 2.4, 0.8), ("budget?", 2.4, 2.9, 0.8))
    turn = Turn("rep", 0, 0.0, 2.9, "I will call you. What is the budget?", 0.85, False, words)
    segs = segment_turns([turn], "c", nlp)
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 0.8), (2.0, 2.9)]
    assert segs[1].confidence == pytest.approx(0.8)


@pytest.mark.parametrize("text,expected", [
    ("What is the budget?", True), ("what is the budget", True), ("can you send it", True),
    ("I will send it.", False), ("so how does that work", True), ("great thanks", False)])
def test_question_detection(text: str, expected: bool) -> None:
    assert looks_like_question(text) is expected


@pytest.mark.parametrize("name", ["phone_call.wav", "phone_call_8k_mulaw.wav"])
def test_real_telephone_conversation(realdata: Path, asr_model, name: str) -> None:
    """A real two-party phone call (16 kHz and the 8 kHz mu-law original) against its STM reference."""
    rows = [line.split(maxsplit=5) for line in (realdata / "audio" / "phone_call.stm").read_text().splitlines()
            if line.strip() and not line.startswith(";")]
    reference = " ".join(r[5] for r in sorted(rows, key=lambda r: float(r[3])))
    audio = load_audio(realdata / "audio" / name)
    hypothesis = " ".join(p.text for p in transcribe_audio(asr_model, audio))
    assert word_error_rate(reference, hypothesis) < 0.25


def test_real_overlapping_stereo_keeps_each_speakers_sentence_whole(realdata: Path, asr_model) -> None:
    """pyannote's stereo test file: two people reading at the same time, one per channel. Interleaved by
    word it came apart into 11 alternating fragments; the pipeline (by sentence) gives each speaker's
    sentence whole, and every word once."""
    from pipeline.speech.transcribe import transcribe_file
    from pipeline.speech.turns import channel_words, words_to_turns

    audio = transcribe_file(asr_model, realdata / "audio" / "stereo_diarization.wav")
    words = channel_words(audio.pieces, {0: "left", 1: "right"})
    by_word = words_to_turns(words, 1.0)
    turns = words_to_turns(words, 1.0, by_sentence=True)
    assert len(by_word) > 4, "the file's two readings overlap"
    assert [t.speaker for t in turns] == ["left", "right"]
    assert word_error_rate("He began a confused complaint against the wizard, who had vanished behind the curtain "
                           "on the left.", turns[0].text) <= 0.2
    assert word_error_rate("The horizon seems extremely distant.", turns[1].text) <= 0.2
    assert sorted(w[0] for t in turns for w in t.words) == sorted(w[0] for t in by_word for w in t.words)
