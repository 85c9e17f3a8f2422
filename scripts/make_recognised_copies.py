"""Recognised copies of the written corpus: each conversation spoken by espeak-ng and read back by the recogniser.

The classifiers are trained on clean written text, but in a scored call they read what Whisper
`tiny.en` heard: misheard words ("near-rove" for "narrow"), dropped and merged words, punctuation
that moves. The noised copies of :mod:`pipeline.classify.augment` imitate the shape of a transcript;
these copies carry the recogniser's own errors. Every conversation of ``labels/data`` is laid out as
one mono recording (one espeak-ng voice per speaker, seeded pauses of 0.3-0.8 s between rows, as
``scripts/make_bench_calls.py`` does for the benchmark calls), transcribed with callcycle's recogniser
and its default settings, and each recognised word goes back to the row whose speech it falls in.

Output: one JSON object per written row, ``{"id": ..., "of": <hash of the written text>, "text":
<recognised text>}`` (rows the recogniser heard nothing of are left out; ``of`` is
the first 16 hex digits of the SHA-256 of the text that was spoken, so a reader can skip a copy
whose row was edited since), sorted by id, gzip with mtime 0, and a summary JSON next
to it (settings, word error rate against the written text, machine). The recogniser's int8 kernels give
other words on other kinds of CPU (BENCHMARKS.md), so a rerun elsewhere gives a slightly different
file.

Measured on 2026-12-07 and not kept: trained next to the noised copies, or instead of them (a scratch
wrapper over ``callcycle train``), they did not bring the scores of recognised calls closer to the
gold (``scripts/eval_spoken_calls.py``) and read real speech one act at a time worse
(docs/REALDATA.md, "Recognised copies of the written corpus"). The script stays for the next try.

Usage: python scripts/make_recognised_copies.py [--out bench-data/recognised/written-tiny-en.jsonl.gz]
       [--groups N] (the first N conversations only, for a quick look)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.make_samples import RATE, synthesize  # noqa: E402  (the synthesiser of the samples and benchmarks)
from pipeline.config import AsrConfig  # noqa: E402
from pipeline.ingest.audio import AudioData  # noqa: E402
from pipeline.speech.metrics import word_errors  # noqa: E402
from pipeline.speech.transcribe import load_asr_model, transcribe_audio  # noqa: E402

#: espeak-ng voices, given to a conversation's speakers in order of their first row.
VOICES = ("en-us", "en-gb-x-rp", "en-us+f3", "en-gb-scotland", "en-us+m7")
#: Pause between rows, seconds (seeded per conversation).
PAUSE_S = (0.3, 0.8)
#: A word belongs to the row whose speech (widened by this much, seconds) holds its midpoint.
SLACK_S = 0.25


def text_key(text: str) -> str:
    """Which written text a copy was made from (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def conversations(data_dir: Path) -> dict[str, list[dict]]:
    """The written rows per conversation (``group``), in file order."""
    out: dict[str, list[dict]] = {}
    for path in sorted(data_dir.glob("corpus_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.setdefault(row["group"], []).append(row)
    return out


def render(group: str, rows: list[dict], workdir: Path) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """One mono recording of a conversation and each row's (start, end) in it."""
    rng = random.Random(group)
    voices: dict[str, str] = {}
    pieces, spans, cursor = [], [], 0.5
    for row in rows:
        speaker = str(row.get("speaker") or row.get("speaker_role") or "?")
        voice = voices.setdefault(speaker, VOICES[len(voices) % len(VOICES)])
        audio = synthesize(row["text"], voice, workdir)
        pieces.append((int(cursor * RATE), audio))
        spans.append((cursor, cursor + len(audio) / RATE))
        cursor += len(audio) / RATE + rng.uniform(*PAUSE_S)
    samples = np.zeros(int((cursor + 0.5) * RATE), dtype=np.float32)
    for offset, audio in pieces:
        samples[offset: offset + len(audio)] += 0.8 * audio
    return np.clip(samples, -1, 1)[None, :], spans


def assign(words: list[tuple[str, float, float]], spans: list[tuple[float, float]]) -> list[list[str]]:
    """The recognised words of each row: a word goes to the row whose widened span holds its midpoint,
    else to the nearest row."""
    out: list[list[str]] = [[] for _ in spans]
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    for word, start, end in words:
        mid = (start + end) / 2
        inside = np.nonzero((starts - SLACK_S <= mid) & (mid <= ends + SLACK_S))[0]
        if len(inside):
            i = int(inside[0])
        else:
            i = int(np.argmin(np.minimum(np.abs(starts - mid), np.abs(ends - mid))))
        out[i].append(word)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "labels" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-data" / "recognised" / "written-tiny-en.jsonl.gz")
    parser.add_argument("--groups", type=int, default=0, help="only the first N conversations (a quick look)")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: run `apt-get install espeak-ng` and try again.")
    convs = conversations(args.data)
    names = sorted(convs)[: args.groups] if args.groups else sorted(convs)
    config = AsrConfig()
    model = load_asr_model(config, parallel=2)
    started = time.perf_counter()
    results: dict[str, tuple[str, str]] = {}
    errors = ref_words = 0
    audio_s = 0.0

    def one(group: str) -> tuple[str, list[str], float]:
        with tempfile.TemporaryDirectory() as tmp:
            samples, spans = render(group, convs[group], Path(tmp))
        pieces = transcribe_audio(model, AudioData(samples, RATE, RATE))
        words = [(w, s, e) for p in pieces for (w, s, e, _) in p.words]
        texts = [" ".join(ws).strip() for ws in assign(words, spans)]
        return group, texts, samples.shape[1] / RATE

    with ThreadPoolExecutor(max_workers=2) as pool:
        for done, (group, texts, seconds) in enumerate(pool.map(one, names), 1):
            audio_s += seconds
            for row, text in zip(convs[group], texts):
                # row by row: one edit distance over the whole corpus is quadratic
                wrong, words = word_errors(row["text"], text)
                errors += wrong
                ref_words += words
                if text:
                    results[row["id"]] = (text_key(row["text"]), text)
            if done % 25 == 0 or done == len(names):
                print(f"{done}/{len(names)} conversations, {audio_s / 60:.0f} min of audio, "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        for row_id in sorted(results):
            key, text = results[row_id]
            gz.write((json.dumps({"id": row_id, "of": key, "text": text}, ensure_ascii=False) + "\n").encode())
    args.out.write_bytes(buf.getvalue())
    summary = {
        "rows": sum(len(convs[g]) for g in names), "rows_recognised": len(results), "conversations": len(names),
        "audio_minutes": round(audio_s / 60, 1), "seconds": round(time.perf_counter() - started, 1),
        "word_error_rate": round(errors / max(ref_words, 1), 4),
        "asr": {"model": config.model, "beam_size": config.beam_size, "batched": config.batched},
        "voices": list(VOICES), "pause_s": list(PAUSE_S), "machine": platform.processor() or platform.machine(),
    }
    args.out.with_name(args.out.name.removesuffix(".jsonl.gz") + ".summary.json").write_text(
        json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
