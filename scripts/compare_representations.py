"""Compare text representations and context, by the real-speech dev score, cross-writer proxy and speed.

Trains the same recipe (labels/data + labels/external, the default TrainConfig) in variants:

- ``tfidf``            TF-IDF word + char n-grams + cues, one segment at a time
- ``tfidf+context``    the same plus the context level (neighbouring segments)
- ``encoder``          TF-IDF + cues + MiniLM sentence vectors (onnxruntime), one segment at a time
- ``encoder+context``  the shipped recipe

and reports, per variant: macro-F1 per evaluation source (written held-out in context and one
sentence at a time, AMI held-out real speech), the labelled calls' action-share error, and
classification speed (segments per second, one call of 300 segments at a time, on this machine).

Usage: python scripts/compare_representations.py [--variants tfidf,encoder+context] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.classify.artifacts import load_artifact, save_artifact  # noqa: E402
from pipeline.classify.evaluate import evaluate_calls  # noqa: E402
from pipeline.classify.labels import load_labelled, load_taxonomy  # noqa: E402
from pipeline.classify.predict import classify_segments  # noqa: E402
from pipeline.classify.train import TrainConfig, train_models  # noqa: E402
from pipeline.schema import Segment  # noqa: E402
from pipeline.speech.turns import build_sentencizer  # noqa: E402

VARIANTS = {
    "tfidf": {"encoder": None, "context": False},
    "tfidf+context": {"encoder": None, "context": True},
    "encoder": {"context": False},
    "encoder+context": {},
}


def speed(artifact, texts: list[str], per_call: int = 300, repeats: int = 3) -> float:
    """Segments per second through classify_segments, calls of ``per_call`` segments."""
    segments = [Segment("bench", i, i, "rep" if i % 2 else "customer", None, i * 4.0, i * 4.0 + 3.5, text,
                        None, False, False) for i, text in enumerate(texts[:per_call])]
    classify_segments(artifact, segments[:20])  # warm up (lazy spaCy matcher, onnxruntime)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        classify_segments(artifact, segments)
        best = max(best, len(segments) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    written = load_labelled(sorted((ROOT / "labels" / "data").glob("*.jsonl")), taxonomy)
    external = load_labelled(sorted((ROOT / "labels" / "external").glob("*.jsonl.gz")), taxonomy, partial=True)
    calls = sorted((ROOT / "labels" / "calls").glob("*.json"))
    nlp = build_sentencizer()
    texts = [r.text for r in written[:300]]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        (models / "encoders").symlink_to(ROOT / "models" / "encoders")
        for name in args.variants.split(","):
            cfg = dataclasses.replace(TrainConfig(), **VARIANTS[name])
            started = time.perf_counter()
            result = train_models(written + external, taxonomy, cfg, version=name, models_root=models)
            seconds = time.perf_counter() - started
            save_artifact(models / name, result.model, result.card, result.card_markdown)
            artifact = load_artifact(models / name)
            call_eval = evaluate_calls(artifact, calls, nlp)
            entry = {
                "sources": {src: {t: round(m["macro_f1"], 4) for t, m in metrics.items()}
                            for src, metrics in result.card["evaluation"].items()},
                "calls_action_share_mae": call_eval["action_share_mae_by_method"],
                "segments_per_second": round(speed(artifact, texts), 1),
                "train_seconds": round(seconds, 1),
            }
            results[name] = entry
            print(name, json.dumps(entry), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
