"""Sweep ASR settings on the benchmark calls: wall time and WER per setting, interleaved.

Each setting is an ``AsrConfig`` override; all run in one process on the same tracks, in
``--rounds`` interleaved rounds (A B C A B C), keeping each setting's fastest round, so a
busy shared machine slows every setting alike. The model is loaded once per distinct
(model, compute type, threads) and reused, as the flow does.

Usage: python scripts/sweep_asr.py [--files bench-data/bench-01-stereo.wav ...] [--rounds 2]
       [--set name:key=value,key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

DEFAULT_SETS = [
    "sequential-b1:",
    "batched8-b1:batched=true,batch_size=8",
    "batched8-b1-nots:batched=true,batch_size=8,without_timestamps=true",
    "batched16-b1:batched=true,batch_size=16",
    "batched8-b5:batched=true,batch_size=8,beam_size=5",
]


def _parse(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    values: dict = {}
    for item in filter(None, rest.split(",")):
        key, _, raw = item.partition("=")
        values[key] = json.loads(raw)
    return name, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--set", dest="sets", nargs="*", default=DEFAULT_SETS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from bench import _wer
    from make_bench_calls import ensure_calls

    from pipeline.config import AsrConfig
    from pipeline.ingest.audio import load_audio
    from pipeline.speech.transcribe import load_asr_model, transcribe_audio

    files = args.files or ensure_calls("speed", ROOT / "bench-data")
    audio = {f: load_audio(f) for f in files}
    models: dict = {}
    results: dict[str, dict] = {}
    for r in range(args.rounds):
        for spec in args.sets:
            name, values = _parse(spec)
            cfg = replace(AsrConfig(), **values)
            key = (cfg.model, cfg.compute_type, cfg.cpu_threads)
            if key not in models:
                models[key] = load_asr_model(replace(AsrConfig(), model=cfg.model, compute_type=cfg.compute_type,
                                                     cpu_threads=cfg.cpu_threads))
            from faster_whisper import BatchedInferencePipeline

            base = models[key]
            batched = BatchedInferencePipeline(model=base.whisper) if cfg.batched else None
            model = replace(base, config=cfg, batched=batched)
            t = time.perf_counter()
            hyp: dict[tuple[str, int], list[str]] = {}
            for f in files:
                for p in transcribe_audio(model, audio[f]):
                    hyp.setdefault((f.stem, p.channel), []).append(p.text)
            wall = time.perf_counter() - t
            wer = _wer(files, {k: " ".join(v) for k, v in hyp.items()})
            best = results.get(name)
            if best is None or wall < best["wall_s"]:
                results[name] = {"wall_s": round(wall, 2), **values, **wer}
            print(f"round {r + 1} {name:24s} {wall:7.1f} s  WER {wer['wer']:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
