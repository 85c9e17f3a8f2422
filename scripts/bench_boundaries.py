"""What the sentence-boundary model costs: segmenting unpunctuated turns with and without it, in one run.

The 28 labelled calls are rewritten as an unpunctuated export would give them (lower case, no
punctuation, a speaker's consecutive sentences joined into one turn; as ``scripts/eval_unpunctuated.py``
does) and segmented by ``segment_turns`` with the model switched off and on, alternating, best of
``--repeat``. Also timed: loading the model (once per process) and, for scale, classifying the same
segments.

Usage: python scripts/bench_boundaries.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval_unpunctuated import read_calls, unpunctuated_turns  # noqa: E402

from pipeline.classify.artifacts import load_artifact  # noqa: E402
from pipeline.classify.predict import classify_segments  # noqa: E402
from pipeline.paths import models_dir  # noqa: E402
from pipeline.speech.boundaries import load_boundary_model  # noqa: E402
from pipeline.speech.turns import build_sentencizer, segment_turns  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    calls = [unpunctuated_turns(sentences) for _, sentences in read_calls(ROOT / "labels" / "calls")]
    n_words = sum(len(t.text.split()) for turns in calls for t in turns)
    started = time.perf_counter()
    load_boundary_model()
    load_s = time.perf_counter() - started
    splitters = {"without the model": build_sentencizer(False), "with the model": build_sentencizer()}
    best = {name: float("inf") for name in splitters}
    segments = {}
    for _ in range(args.repeat):
        for name, splitter in splitters.items():
            started = time.perf_counter()
            segments[name] = [segment_turns(turns, "bench", splitter) for turns in calls]
            best[name] = min(best[name], time.perf_counter() - started)
    artifact = load_artifact(models_dir())
    started = time.perf_counter()
    for call in segments["with the model"]:
        classify_segments(artifact, call)
    classify_s = time.perf_counter() - started
    print(f"{len(calls)} calls, {sum(len(c) for c in calls)} unpunctuated turns, {n_words} words; "
          f"best of {args.repeat}")
    for name, seconds in best.items():
        count = sum(len(c) for c in segments[name])
        print(f"  segmenting {name:<18} {seconds * 1000:8.1f} ms  ({n_words / seconds:,.0f} words/s, {count} segments)")
    print(f"  ratio with / without: {best['with the model'] / best['without the model']:.2f}")
    print(f"  loading the model (once per process): {load_s * 1000:.0f} ms")
    print(f"  classifying the {sum(len(c) for c in segments['with the model'])} segments: {classify_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
