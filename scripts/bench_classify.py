"""Classification speed: ``classify_segments`` on one call of N written segments, best of 3.

Reads the first N texts of ``labels/data/*.jsonl`` as one call (alternating speakers, 3 s apart),
classifies them with the current model (both levels, sentence encoder included) and the encoder
alone, and prints segments per second. Run it on an idle machine and say the load average.

Usage: python scripts/bench_classify.py [--n 300] [--models models]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.classify.artifacts import load_artifact  # noqa: E402
from pipeline.classify.predict import classify_segments  # noqa: E402
from pipeline.schema import Segment  # noqa: E402


def best_of(runs: int, fn) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    artifact = load_artifact(args.models)
    texts: list[str] = []
    for path in sorted((ROOT / "labels" / "data").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = texts[: args.n]
    segments = [Segment(call_id="bench", index=i, turn_index=i, speaker="rep" if i % 2 else "customer",
                        channel=None, start_s=3.0 * i, end_s=3.0 * i + 2.5, text=t, confidence=None,
                        timing_estimated=True, is_question=t.rstrip().endswith("?")) for i, t in enumerate(texts)]
    classify_segments(artifact, segments[:20])  # warm-up
    whole = best_of(3, lambda: classify_segments(artifact, segments))
    encoder = (best_of(3, lambda: artifact.encoder.encode(texts)) if artifact.encoder is not None else None)
    load = os.getloadavg()[0]
    print(f"model {artifact.version}: {len(segments) / whole:.0f} segments/s (classify_segments, {len(segments)} "
          f"segments, best of 3)" + (f"; encoder alone {len(texts) / encoder:.0f} texts/s" if encoder else "")
          + f"; load average {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
