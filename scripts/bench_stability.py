"""Stability benchmark: does a call's score move when nobody could hear a difference?

For each call of the stability set (``scripts/make_bench_calls.py --set stability``: labelled
calls spoken with espeak-ng, stereo, about 2 minutes each) this makes imperceptible variants
and format variants of the same recording, scores each one through the real pipeline
(decode, transcribe, turns, segment, classify, score — no Prefect), and reports per call the
spread (max − min, in points) of:

- ``action_share`` as the pipeline computes it (``pipeline/score.py``; the default ``tempered`` method,
  or the one ``--method`` names);
- a probability-weighted action share computed from the stored segment probabilities
  (Σ w·(1−p_other)·p_action / Σ w·(1−p_other), w = segment seconds) — what a score from
  calibrated probabilities would give;
- each stage's share of speech (stage mix; the largest spread of the four stages).

And where the variance enters, per variant against the original: ASR (word error rate of the
variant's transcript against the original's), segment boundaries (share of the original's
segments whose exact text is not a segment of the variant) and classifier flips (segments
with the same text always get the same label, so flips only follow changed text; counted as
segments overlapping in time whose talk/action label differs).

Variants: ``noise-<seed>`` (±1 least-significant bit of random integer noise, fixed seeds),
``gain+0.5``/``gain-0.5`` (dB), ``lead10ms`` (10 ms of leading silence); formats: ``flac``,
``opus`` (Ogg Opus 32 kb/s, PyAV has no Vorbis encoder here), ``mp3`` (128 kb/s), ``mulaw8k``
(8 kHz μ-law WAV, telephone).

It also reports, per variant, the action share of the call's script (the labelled turns'
gold labels over their spoken seconds) and the error against it, so a change that steadies
the score can be checked for accuracy on the audio path too.

The turns of every variant (what Whisper heard) are saved under ``<out>/asr-cache/<key>/``
(key: the ASR options); ``--reuse-asr`` scores those instead of transcribing again, so
segmentation and scoring changes can be compared on identical transcripts in seconds.
Batched decoding is deterministic run to run, so reusing changes nothing but the time.

Usage: python scripts/bench_stability.py [--config FILE.toml ...] [--calls N] [--out bench-out/stability]
       [--reuse-asr] [--method labels|expected|tempered]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
import wave
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from data.make_samples import RATE, encode  # noqa: E402  (one encoder for samples, benchmarks and variants)

NOISE_SEEDS = (1, 2, 3)
NOISE_VARIANTS = [f"noise-{s}" for s in NOISE_SEEDS] + ["gain+0.5", "gain-0.5", "lead10ms"]
FORMAT_VARIANTS = ["flac", "opus", "mp3", "mulaw8k"]


# --- variants ----------------------------------------------------------------------------

def _read_int16(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, w.getnchannels()).T.copy()


def _write_int16(path: Path, data: np.ndarray, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(data.T).tobytes())


def make_variants(wav: Path, folder: Path) -> dict[str, Path]:
    """Write every variant of ``wav`` into ``folder``; returns name -> path (``original`` included)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = _read_int16(wav)
    out = {"original": wav}
    for seed in NOISE_SEEDS:
        rng = np.random.default_rng(seed)
        noisy = np.clip(data.astype(np.int32) + rng.integers(-1, 2, size=data.shape), -32768, 32767)
        out[f"noise-{seed}"] = folder / f"noise-{seed}.wav"
        _write_int16(out[f"noise-{seed}"], noisy.astype(np.int16))
    for db in (0.5, -0.5):
        name = f"gain{db:+.1f}"
        out[name] = folder / f"{name}.wav"
        _write_int16(out[name], np.clip(np.round(data * 10 ** (db / 20)), -32768, 32767).astype(np.int16))
    out["lead10ms"] = folder / "lead10ms.wav"
    _write_int16(out["lead10ms"], np.concatenate([np.zeros((data.shape[0], RATE // 100), np.int16), data], axis=1))
    floats = data.astype(np.float32) / 32768
    for name, suffix, codec, rate, bits in [("flac", ".flac", "flac", RATE, None),
                                            ("opus", ".ogg", "libopus", 48_000, 32_000),
                                            ("mp3", ".mp3", "libmp3lame", RATE, 128_000),
                                            ("mulaw8k", ".wav", "pcm_mulaw", 8_000, None)]:
        out[name] = folder / f"{name}{suffix}"
        encode(floats, out[name], codec=codec, rate=rate, bit_rate=bits)
    return out


# --- scoring -------------------------------------------------------------------------------

def soft_action_share(classified: list[Any], neutral: str, positive: str) -> float | None:
    """Σ w·(1−p_neutral)·p_action / Σ w·(1−p_neutral) over all segments (w = seconds, min 0.05)."""
    num = den = 0.0
    for seg in classified:
        w = max(seg.segment.duration_s, 0.05) * (1.0 - seg.stage.probabilities.get(neutral, 0.0))
        num += w * seg.talk_action.probabilities.get(positive, 0.0)
        den += w
    return num / den if den > 0 else None


def gold_action_share(script: dict) -> float | None:
    """Action share of a benchmark call's script: gold labels over each turn's spoken seconds."""
    cycle = action = 0.0
    for turn in script["turns"]:
        if turn["stage"] == "other":
            continue
        seconds = max(turn["end"] - turn["start"], 0.05)
        cycle += seconds
        action += seconds * (turn["talk_action"] == "action")
    return action / cycle if cycle > 0 else None


def _asr_key(config: Any) -> str:
    return hashlib.sha256(json.dumps(asdict(config.asr), sort_keys=True).encode()).hexdigest()[:12]


def score_variant(path: Path, asr: Any, artifact: Any, nlp: Any, config: Any, cache: Path | None = None,
                  reuse: bool = False, method: str | None = None) -> dict:
    from pipeline.ingest.discover import discover_inputs
    from pipeline.process import read_call, score_turns
    from pipeline.score import action_share

    if reuse and cache is not None and cache.is_file():
        call = pickle.loads(cache.read_bytes())
    else:
        (source,), _ = discover_inputs([str(path)])
        call = read_call(source, asr, config)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(pickle.dumps(call))
    scored = score_turns(call, artifact, nlp, config)
    stage, ta = artifact.taxonomy.by_role("stage"), artifact.taxonomy.by_role("talk_action")
    share = scored.score.action_share
    if method is not None and method != scored.score.action_share_method:
        share = action_share(scored.segments, artifact.taxonomy, method)[0]
    return {
        "action_share": share,
        "interval": [scored.score.action_share_low, scored.score.action_share_high],
        "soft_action_share": soft_action_share(scored.segments, stage.neutral, ta.positive),
        "stage_shares": scored.score.stage_shares,
        "segments": [{"text": s.segment.text, "start": s.segment.start_s, "end": s.segment.end_s,
                      "channel": s.segment.channel, "stage": s.stage.label, "talk_action": s.talk_action.label}
                     for s in scored.segments],
    }


def _sources_of_variance(base: dict, other: dict) -> dict:
    from pipeline.speech.metrics import word_error_rate

    def text(result: dict) -> str:
        return " ".join(s["text"] for s in sorted(result["segments"], key=lambda s: (s["channel"] or 0, s["start"])))

    base_texts = {s["text"] for s in base["segments"]}
    other_texts = {s["text"] for s in other["segments"]}
    flips = 0
    for s in base["segments"]:
        for o in other["segments"]:
            overlap = min(s["end"], o["end"]) - max(s["start"], o["start"])
            if s["channel"] == o["channel"] and overlap > 0.5 * max(1e-3, s["end"] - s["start"]):
                flips += s["talk_action"] != o["talk_action"]
                break
    return {"asr_wer_vs_original": round(word_error_rate(text(base), text(other)), 4),
            "segments_changed": round(len(base_texts - other_texts) / max(1, len(base_texts)), 3),
            "talk_action_flips": flips}


def _spread(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return round(100 * (max(present) - min(present)), 2) if present else 0.0


def run_config(config_path: Path | None, calls: list[Path], work: Path, reuse: bool = False,
               method: str | None = None, *, models: Path) -> dict:
    from pipeline.classify.artifacts import load_artifact
    from pipeline.config import load_config
    from pipeline.speech.transcribe import load_asr_model
    from pipeline.speech.turns import build_sentencizer

    config = load_config(config_path)
    from make_bench_calls import load_script

    asr, artifact, nlp = load_asr_model(config.asr), load_artifact(models), build_sentencizer()
    result: dict[str, Any] = {"config": str(config_path or "defaults"), "asr": asdict(config.asr),
                              "segmentation": asdict(config.segmentation), "method": method or "default",
                              "model": artifact.version, "calls": {}}
    cache_root = work.parent / "asr-cache" / _asr_key(config)
    started = time.perf_counter()
    for wav in calls:
        variants = make_variants(wav, work / wav.stem)
        scores = {name: score_variant(path, asr, artifact, nlp, config, cache_root / wav.stem / f"{name}.pkl",
                                      reuse, method)
                  for name, path in variants.items()}
        gold = gold_action_share(load_script(wav))
        per_call: dict[str, Any] = {"gold_action_share": gold}
        for group, names in (("noise", ["original", *NOISE_VARIANTS]), ("formats", ["original", *FORMAT_VARIANTS])):
            per_call[group] = {
                "action_share_spread": _spread([scores[n]["action_share"] for n in names]),
                "soft_action_share_spread": _spread([scores[n]["soft_action_share"] for n in names]),
                "stage_mix_spread": max(_spread([scores[n]["stage_shares"].get(k) for n in names])
                                        for k in scores["original"]["stage_shares"]),
            }
        per_call["variants"] = {n: {"action_share": s["action_share"], "soft_action_share": s["soft_action_share"],
                                    "interval": s["interval"],
                                    "error_vs_script": (None if gold is None or s["action_share"] is None
                                                        else round(abs(s["action_share"] - gold), 4)),
                                    **({} if n == "original" else _sources_of_variance(scores["original"], s))}
                                for n, s in scores.items()}
        result["calls"][wav.stem] = per_call
        print(f"  {wav.stem}: noise {per_call['noise']}  formats {per_call['formats']}", file=sys.stderr, flush=True)
        errors = [v["error_vs_script"] for v in per_call["variants"].values() if v["error_vs_script"] is not None]
        per_call["mean_error_vs_script"] = round(float(np.mean(errors)), 4) if errors else None
        for name, v in per_call["variants"].items():
            print(f"    {name:9s} " + "  ".join(f"{k} {x}" for k, x in v.items()), file=sys.stderr, flush=True)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    for group in ("noise", "formats"):
        result[f"max_{group}"] = {k: max(c[group][k] for c in result["calls"].values())
                                  for k in ("action_share_spread", "soft_action_share_spread", "stage_mix_spread")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, nargs="*", default=[None],
                        help="TOML configs to compare (default: callcycle's defaults).")
    parser.add_argument("--calls", type=int, default=4, help="How many calls of the stability set.")
    parser.add_argument("--out", type=Path, default=Path("bench-out/stability"))
    parser.add_argument("--reuse-asr", action="store_true",
                        help="Score the turns saved by an earlier run with the same ASR options instead of "
                             "transcribing again (segmentation/scoring comparisons).")
    parser.add_argument("--method", choices=["labels", "expected", "tempered"], default=None,
                        help="Action-share method to report (default: the pipeline's ACTION_SHARE_METHOD).")
    parser.add_argument("--models", type=Path, default=ROOT / "models",
                        help="Models folder (its CURRENT model) or one model's folder, to score with another "
                             "classifier (with --reuse-asr: on the same transcripts).")
    args = parser.parse_args()
    from make_bench_calls import ensure_calls

    calls = ensure_calls("stability", ROOT / "bench-data")[: args.calls]
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for cfg in args.config:
        print(f"config {cfg or 'defaults'}", file=sys.stderr)
        results.append(run_config(cfg, calls, args.out / "variants", args.reuse_asr, args.method, models=args.models))
    (args.out / "stability.json").write_text(json.dumps(results, indent=2))
    print("| config | call | noise: action share | noise: soft share | noise: stage mix | "
          "formats: action share | formats: soft share | formats: stage mix | mean error vs script |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for call, c in r["calls"].items():
            n, f = c["noise"], c["formats"]
            cells = [n["action_share_spread"], n["soft_action_share_spread"], n["stage_mix_spread"],
                     f["action_share_spread"], f["soft_action_share_spread"], f["stage_mix_spread"]]
            err = c["mean_error_vs_script"]
            print(f"| {Path(r['config']).stem} | {call} | " + " | ".join(f"{v:.1f}" for v in cells)
                  + f" | {'—' if err is None else f'{100 * err:.1f}'} |")
    print("(spreads are max − min over the variants, in percentage points)")


if __name__ == "__main__":
    main()
