"""Diarization benchmark: DER on generated mono calls and on real recordings with RTTM references.

Generated calls mix flite and espeak-ng voices (different synthesisers, varied speed and
pitch with sox), with short back-channels ("mm-hm") and small overlaps; the reference is
each speaker's clean track's speech activity. Real recordings are the files in
``../shared/realdata/audio`` that have an RTTM reference.

DER = (missed speech + false alarm + speaker confusion) / reference speech, scored
frame by frame (10 ms) outside a 0.25 s collar around every reference boundary, with
overlapping speech scored, after the optimal one-to-one mapping of hypothesis to
reference speakers (Hungarian). Written here, no scoring package.

Usage::

    python scripts/bench_diarize.py [--realdata ../shared/realdata/audio] [--calls 3] [--json out.json]

Prints a Markdown table (the one in BENCHMARKS.md). Needs flite, espeak-ng and sox for
the generated calls.

Timing is the pipeline's: with transcription timed (the default), each file is transcribed
first and diarized from the recogniser's VAD regions, as ``pipeline.process`` does (the VAD
network runs once); with ``--no-asr`` the diarizer runs its own VAD pass.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.config import AsrConfig, DiarizeOptions
from pipeline.ingest.audio import SAMPLE_RATE
from pipeline.speech.diarize import (
    Diarization,
    assign_words,
    diarize_file,
    ends_sentence,
    load_speaker_model,
    reusable_speech,
    snap_to_sentences,
)

STEP_S = 0.01

LINES = [
    "Thanks for taking the time to talk with me today.",
    "Sure, happy to. What did you want to cover?",
    "I wanted to understand how your team handles renewals right now.",
    "Honestly it is mostly spreadsheets and a lot of email.",
    "How many people touch a renewal before it closes?",
    "Usually three, sometimes four if legal gets involved.",
    "What happens when a customer asks for a discount late in the quarter?",
    "We escalate it to finance and wait, which can take a week.",
    "Could we book a short demo with your finance lead next Tuesday?",
    "Tuesday works, let us say two in the afternoon.",
    "Great, I will send the invite and a short agenda tonight.",
    "Please include the pricing sheet we talked about.",
    "Last time we spoke you mentioned the onboarding was slow.",
    "Yes, it took us almost two months to get everyone trained.",
    "If we cut that to two weeks, would that change your decision?",
    "It would, that is the main thing my manager cares about.",
    "Let me check with our support team and come back to you on Friday.",
    "That sounds fair. Who else should be on that call?",
    "I think our operations director should join as well.",
    "Perfect, then we can review the rollout plan together.",
    "Before we finish, is there anything we missed today?",
    "No, I think we covered everything for now.",
    "Our budget for next year is not final until March.",
    "Understood, we can start with a small pilot in January.",
]

# (synthesiser, voice, tempo, pitch cents): different engines, speeds and pitches.
VOICES = [
    ("flite", "slt", 1.0, 0),
    ("espeak-ng", "en-us+m3", 0.95, -200),
    ("flite", "awb", 1.05, 0),
    ("espeak-ng", "en-gb+f4", 1.0, 300),
    ("flite", "rms", 0.95, 150),
    ("espeak-ng", "en+m7", 1.1, -100),
]


@dataclass
class Case:
    name: str
    path: Path
    reference: list[tuple[str, float, float]]
    n_speakers: int


def _synth(voice: tuple[str, str, float, int], text: str, out: Path) -> np.ndarray:
    engine, name, tempo, pitch = voice
    raw = out.with_suffix(".raw.wav")
    if engine == "flite":
        subprocess.run(["flite", "-voice", name, "-t", text, "-o", str(raw)], check=True, capture_output=True)
    else:
        subprocess.run(["espeak-ng", "-v", name, "-s", "160", "-w", str(raw), text], check=True, capture_output=True)
    effects = ["rate", str(SAMPLE_RATE), "tempo", str(tempo)]
    if pitch:
        effects += ["pitch", str(pitch)]
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out), *effects,
                    "norm", "-3"], check=True, capture_output=True)
    with wave.open(str(out), "rb") as handle:
        audio = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.float32) / 32768
    # trim leading/trailing silence so utterance timing is known
    active = np.nonzero(np.abs(audio) > 0.02)[0]
    return audio[active[0] : active[-1] + 1] if active.size else audio


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16-bit mono WAV at 16 kHz."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def _activity(track: np.ndarray, min_gap_s: float = 0.3) -> list[tuple[float, float]]:
    """Speech activity of one clean track: 10 ms frames above -40 dB of peak, gaps < min_gap_s bridged."""
    hop = int(STEP_S * SAMPLE_RATE)
    n = len(track) // hop
    if n == 0:
        return []
    energy = np.sqrt(np.mean(track[: n * hop].reshape(n, hop) ** 2, axis=1))
    on = energy > max(energy.max(), 1e-9) * 0.01
    segs: list[list[float]] = []
    for i in np.nonzero(on)[0]:
        t = i * STEP_S
        if segs and t - segs[-1][1] <= min_gap_s:
            segs[-1][1] = t + STEP_S
        else:
            segs.append([t, t + STEP_S])
    return [(a, b) for a, b in segs if b - a >= 0.05]


def make_call(n_speakers: int, seed: int, work: Path, n_lines: int = 16) -> Case:
    """A generated mono call and its reference (speaker, start_s, end_s) list (reused when already in ``work``)."""
    suffix = "" if n_lines == 16 else f"_{n_lines}lines"
    path = work / f"gen_{n_speakers}spk_{seed}{suffix}.wav"
    name = f"generated {n_speakers} speakers #{seed}" + ("" if n_lines == 16 else f" ({n_lines} lines)")
    if path.is_file() and path.with_suffix(".rttm").is_file():
        return Case(name=name, path=path, reference=read_rttm(path.with_suffix(".rttm")), n_speakers=n_speakers)
    rng = np.random.default_rng(seed)
    voices = [VOICES[(seed + i) % len(VOICES)] for i in range(n_speakers)]
    order = list(range(n_speakers))
    rng.shuffle(order)
    speaker = order[0]
    placements: list[tuple[int, float, np.ndarray]] = []
    t = 0.5
    for k in range(n_lines):
        text = LINES[int(rng.integers(len(LINES)))]
        audio = _synth(voices[speaker], text, work / f"c{seed}_{k}.wav")
        placements.append((speaker, t, audio))
        dur = len(audio) / SAMPLE_RATE
        if dur > 2.5 and rng.random() < 0.4:  # a listener's back-channel inside the turn
            other = int(rng.choice([s for s in range(n_speakers) if s != speaker]))
            bc = _synth(voices[other], str(rng.choice(["mm-hm", "right", "okay", "yeah"])),
                        work / f"c{seed}_{k}_bc.wav")
            placements.append((other, t + dur * float(rng.uniform(0.4, 0.7)), bc))
        gap = float(rng.uniform(-0.25, 0.8)) if rng.random() < 0.25 else float(rng.uniform(0.15, 0.8))
        t += dur + gap
        speaker = int(rng.choice([s for s in range(n_speakers) if s != speaker]))
    total = int((t + 1.0) * SAMPLE_RATE)
    tracks = np.zeros((n_speakers, total), dtype=np.float32)
    for spk, start, audio in placements:
        a = int(start * SAMPLE_RATE)
        tracks[spk, a : a + len(audio)] += audio[: total - a]
    mix = tracks.sum(axis=0)
    mix += rng.normal(0, 0.002, size=mix.shape).astype(np.float32)  # a little line noise
    mix /= max(1.0, float(np.abs(mix).max()) / 0.9)
    write_wav(path, mix)
    reference = [(f"spk{s}", a, b) for s in range(n_speakers) for a, b in _activity(tracks[s])]
    path.with_suffix(".rttm").write_text("".join(
        f"SPEAKER {path.stem} 1 {a:.3f} {b - a:.3f} <NA> <NA> {spk} <NA> <NA>\n" for spk, a, b in reference))
    return Case(name=name, path=path, reference=reference, n_speakers=n_speakers)


def read_rttm(path: Path, file_id: str | None = None) -> list[tuple[str, float, float]]:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 8 or parts[0] != "SPEAKER" or (file_id and parts[1] != file_id):
            continue
        start, dur = float(parts[3]), float(parts[4])
        rows.append((parts[7], start, start + dur))
    return rows


def _matrix(segs: list[tuple[str, float, float]], names: list[str], n: int) -> np.ndarray:
    m = np.zeros((len(names), n), dtype=bool)
    index = {k: i for i, k in enumerate(names)}
    for spk, a, b in segs:
        m[index[spk], int(round(a / STEP_S)) : int(round(b / STEP_S))] = True
    return m


def der(reference: list[tuple[str, float, float]], hypothesis: list[tuple[str, float, float]],
        collar_s: float = 0.25) -> dict[str, float]:
    """Diarization error rate and its parts (fractions of scored reference speech)."""
    end = max([b for _, _, b in reference + hypothesis] + [0.0])
    n = int(np.ceil(end / STEP_S)) + 1
    ref_names = sorted({s for s, _, _ in reference})
    hyp_names = sorted({s for s, _, _ in hypothesis})
    ref = _matrix(reference, ref_names, n)
    hyp = _matrix(hypothesis, hyp_names, n)
    scored = np.ones(n, dtype=bool)
    c = int(round(collar_s / STEP_S))
    for _, a, b in reference:
        for edge in (int(round(a / STEP_S)), int(round(b / STEP_S))):
            scored[max(0, edge - c) : edge + c] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    correct = 0
    if ref_names and hyp_names:
        overlap = ref.astype(np.int64) @ hyp.T.astype(np.int64)
        rows, cols = linear_sum_assignment(-overlap)
        correct_per_frame = np.zeros(ref.shape[1], dtype=np.int64)
        for r, h in zip(rows, cols):
            correct_per_frame += ref[r] & hyp[h]
        correct = correct_per_frame
    total = float(n_ref.sum())
    miss = float(np.maximum(n_ref - n_hyp, 0).sum())
    fa = float(np.maximum(n_hyp - n_ref, 0).sum())
    conf = float((np.minimum(n_ref, n_hyp) - correct).sum())
    return {"der": (miss + fa + conf) / total, "miss": miss / total, "false_alarm": fa / total,
            "confusion": conf / total, "scored_s": total * STEP_S}


Word = tuple[str, float, float, float]


def word_attribution(reference: list[tuple[str, float, float]], words: list[Word],
                     labels: list[str]) -> dict[str, float]:
    """How many recognised words went to the wrong speaker, and how many sentences were cut by a change.

    A word's reference speaker is the one whose reference speech overlaps it most; a word that
    overlaps none (the recogniser gives some words no duration) goes to the reference speech
    within 0.5 s of its midpoint, nearest first, and is not scored when there is none. Hypothesis
    speakers are mapped one-to-one onto reference speakers by the words they share (Hungarian). A
    sentence (the recogniser's words up to a full stop, question or exclamation mark) is *cut* when
    its words carry more than one label.
    """
    ref_names = sorted({s for s, _, _ in reference})
    hyp_names = sorted(set(labels))
    truth: list[int] = []
    for _w, a, b, _p in words:
        per = np.zeros(len(ref_names))
        for spk, ra, rb in reference:
            per[ref_names.index(spk)] += max(0.0, min(b, rb) - max(a, ra))
        if per.max() <= 0:
            mid = 0.5 * (a + b)
            for spk, ra, rb in reference:
                gap = max(ra - mid, mid - rb, 0.0)
                if gap <= 0.5:
                    per[ref_names.index(spk)] = max(per[ref_names.index(spk)], 1.0 - gap)
        truth.append(int(np.argmax(per)) if per.max() > 0 else -1)
    counts = np.zeros((len(ref_names), max(1, len(hyp_names))), dtype=np.int64)
    for t, label in zip(truth, labels):
        if t >= 0:
            counts[t, hyp_names.index(label)] += 1
    rows, cols = linear_sum_assignment(-counts)
    mapped = {hyp_names[c]: r for r, c in zip(rows, cols)}
    scored = [(t, mapped.get(label, -1)) for t, label in zip(truth, labels) if t >= 0]
    wrong = int(sum(t != h for t, h in scored))
    cut = sentences = 0
    start = 0
    for i, (w, *_rest) in enumerate(words):
        if ends_sentence(w) or i == len(words) - 1:
            sentences += 1
            cut += len(set(labels[start : i + 1])) > 1
            start = i + 1
    return {"words_scored": len(scored), "words_wrong": wrong / max(1, len(scored)),
            "sentences": sentences, "sentences_cut": cut}


_ASR: list = []


def transcription_time(path: Path, options: DiarizeOptions
                       ) -> tuple[float, float, list[tuple[float, float]] | None, list[Word]]:
    """Wall and CPU seconds of ``transcribe_file`` (tiny.en, the pipeline's settings; second of two
    runs), the diarization regions taken from its VAD pass (``None`` where they cannot be shared)
    and the recognised words in time order."""
    from pipeline.speech.transcribe import load_asr_model, transcribe_file

    if not _ASR:
        _ASR.append(load_asr_model(AsrConfig()))
    transcribe_file(_ASR[0], path)  # warm up
    started, cpu = time.perf_counter(), time.process_time()
    audio = transcribe_file(_ASR[0], path)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    words = sorted(((w[0], float(w[1]), float(w[2]), float(w[3])) for p in audio.pieces for w in p.words),
                   key=lambda w: (w[1], w[2]))
    speech = reusable_speech(audio.speech.get(0), audio.duration_s, audio.speech_min_silence_ms, options)
    return wall, cpu, speech, words


def timed_diarize(model, path: Path, options: DiarizeOptions,
                  speech: list[tuple[float, float]] | None = None) -> tuple[Diarization, float, float]:
    """Diarization, wall and CPU seconds (second of two runs: the first warms caches)."""
    diarize_file(model, path, options, speech=speech)
    started, cpu = time.perf_counter(), time.process_time()
    result = diarize_file(model, path, options, speech=speech)
    return result, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description="Diarization error rate benchmark")
    parser.add_argument("--realdata", type=Path, default=Path(__file__).resolve().parents[1].parent
                        / "shared" / "realdata" / "audio")
    parser.add_argument("--calls", type=int, default=3, help="generated calls per speaker count")
    parser.add_argument("--lines", type=int, default=16,
                        help="lines per generated call (16: about a minute; 100: about six minutes)")
    parser.add_argument("--no-real", action="store_true", help="skip the real recordings")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--speakers", type=int, default=None, help="fix the number of speakers (default: estimate)")
    parser.add_argument("--no-asr", action="store_true", help="skip the transcription timing")
    parser.add_argument("--hop", type=float, default=None, help="seconds of speech per embedding window")
    parser.add_argument("--window", type=float, default=None, help="embedding window length, seconds")
    parser.add_argument("--min-windows", type=int, default=None, help="embedding windows per call at least")
    parser.add_argument("--dense-speech", type=float, default=None,
                        help="seconds of speech per block with one window per hop (0: all of it)")
    parser.add_argument("--model", type=Path, default=None,
                        help="speaker-embedding ONNX file (default: the bundled one in models/speaker/)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the generated calls (kept; calls already there are reused)")
    args = parser.parse_args()

    given = {"hop_s": args.hop, "window_s": args.window, "min_windows": args.min_windows,
             "dense_speech_s": args.dense_speech}
    options = DiarizeOptions(n_speakers=args.speakers, **{k: v for k, v in given.items() if v is not None})
    model = load_speaker_model(args.model)
    cases: list[Case] = []
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-diarize-"))
    work.mkdir(parents=True, exist_ok=True)
    if all(shutil.which(t) for t in ("flite", "espeak-ng", "sox")):
        for n_spk in (2, 3, 4):
            for k in range(args.calls):
                cases.append(make_call(n_spk, seed=100 * n_spk + k, work=work, n_lines=args.lines))
    else:
        print("flite, espeak-ng or sox missing: generated calls skipped")
    real = [("phone_call.wav", "phone_call.rttm", None), ("phone_call_8k_mulaw.wav", "phone_call.rttm", None),
            ("dev00.wav", "debug.development.rttm", "dev00"), ("tst00.wav", "debug.test.rttm", "tst00")]
    for wav, rttm, file_id in [] if args.no_real else real:
        if (args.realdata / wav).is_file():
            ref = read_rttm(args.realdata / rttm, file_id)
            cases.append(Case(name=wav, path=args.realdata / wav, reference=ref,
                              n_speakers=len({s for s, _, _ in ref})))

    results = []
    for case in cases:
        asr_wall = asr_cpu = None
        speech: list[tuple[float, float]] | None = None
        words: list[Word] = []
        if not args.no_asr:
            asr_wall, asr_cpu, speech, words = transcription_time(case.path, options)
        # the diarization, as the pipeline runs it (from the recogniser's VAD regions when there are some)
        result, elapsed, cpu = timed_diarize(model, case.path, options, speech)
        hyp = [(s.speaker, s.start_s, s.end_s) for s in result.segments]
        scores = der(case.reference, hyp)
        row = {"case": case.name, "duration_s": result.duration_s, "ref_speakers": case.n_speakers,
               "hyp_speakers": len(result.speakers), "diarize_s": round(elapsed, 3), "diarize_cpu_s": round(cpu, 3),
               "asr_s": None, "windows": result.n_windows, "stages": result.stage_s, "shared_vad": speech is not None,
               **{k: round(v, 4) for k, v in scores.items()}}
        if asr_wall is not None and asr_cpu is not None:
            row |= {"asr_s": round(asr_wall, 3), "asr_cpu_s": round(asr_cpu, 3)}
        if words:  # each word to a speaker as the pipeline does, before and after snapping to sentences
            labels = assign_words(words, result)
            row["words"] = word_attribution(case.reference, words, labels)
            row["words_moved"] = word_attribution(case.reference, words,
                                                  snap_to_sentences(words, labels, max_island_words=0))
            row["words_snapped"] = word_attribution(case.reference, words, snap_to_sentences(words, labels))
        results.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(f"machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")
    print("| recording | length s | speakers ref / found | DER | missed | false alarm | confusion "
          "| windows | diarize s | transcribe s | diarize / transcribe |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['diarize_s'] / r['asr_s']:.1%}" if r["asr_s"] else "-"
        asr = f"{r['asr_s']:.2f}" if r["asr_s"] else "-"
        print(f"| {r['case']} | {r['duration_s']:.1f} | {r['ref_speakers']} / {r['hyp_speakers']} | {r['der']:.1%} "
              f"| {r['miss']:.1%} | {r['false_alarm']:.1%} | {r['confusion']:.1%} | {r['windows']} "
              f"| {r['diarize_s']:.2f} | {asr} | {ratio} |")
    print()
    print("Where the time goes (wall seconds per stage, summed over the recordings above):")
    stages: dict[str, float] = {}
    for r in results:
        for k, v in r["stages"].items():
            stages[k] = stages.get(k, 0.0) + v
    total = sum(r["diarize_s"] for r in results)
    print("| " + " | ".join(list(stages) + ["decode and other", "total"]) + " |")
    print("|" + "---|" * (len(stages) + 2))
    print("| " + " | ".join(f"{v:.2f} ({v / total:.0%})" for v in stages.values())
          + f" | {total - sum(stages.values()):.2f} | {total:.2f} |")
    if any("words" in r for r in results):
        print()
        print("Words to speakers: each word to the speaker it overlaps most (plain); then changes inside a "
              "recognised sentence moved to a nearby sentence end (moved); and first another speaker's "
              "few words inside one sentence given back to it (both, the default):")
        print("| recording | words scored | wrong: plain / moved / both | sentences cut: plain / moved / both |")
        print("|---|---|---|---|")
        for r in results:
            if "words" in r:
                a, m, b = r["words"], r["words_moved"], r["words_snapped"]
                print(f"| {r['case']} | {a['words_scored']} | {a['words_wrong']:.1%} / {m['words_wrong']:.1%} / "
                      f"{b['words_wrong']:.1%} | {a['sentences_cut']} / {m['sentences_cut']} / "
                      f"{b['sentences_cut']} of {a['sentences']} |")
    groups: dict[str, list[dict]] = {}
    for r in results:
        key = r["case"].split(" #")[0] if r["case"].startswith("generated") else r["case"]
        groups.setdefault(key, []).append(r)
    print()
    print("| group | calls | mean DER | speaker count right | diarize / transcribe (wall) "
          "| diarize / transcribe (CPU) |")
    print("|---|---|---|---|---|---|")
    for key, rows in [*groups.items(), ("all", results)]:
        right = sum(r["ref_speakers"] == r["hyp_speakers"] for r in rows)
        asr_total = sum(r["asr_s"] or 0 for r in rows)
        ratio = f"{sum(r['diarize_s'] for r in rows) / asr_total:.1%}" if asr_total else "-"
        cpu = (f"{sum(r['diarize_cpu_s'] for r in rows) / sum(r['asr_cpu_s'] for r in rows):.1%}"
               if asr_total else "-")
        print(f"| {key} | {len(rows)} | {np.mean([r['der'] for r in rows]):.1%} | {right}/{len(rows)} | {ratio} "
              f"| {cpu} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
