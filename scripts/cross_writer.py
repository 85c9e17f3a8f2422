"""Leave-one-writer-out evaluation: how well do the classifiers generalise to someone else's phrasing?

Each ``labels/data/corpus_*.jsonl`` file was written by a different writer. For each file, train
on all the others (same features and model family as the shipped model card selected) and test on
it. This is a stricter proxy than the grouped held-out split for "conversations written by people
we never saw", because the test writer's habits are never seen in training.

Usage: python scripts/cross_writer.py [--model "linear_svm(C=1.0)"] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.classify.features import build_feature_union  # noqa: E402
from pipeline.classify.labels import load_labelled, load_taxonomy  # noqa: E402
from pipeline.classify.train import TrainConfig, candidate_classifiers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="candidate name (default: what the current card selected)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    files = sorted((ROOT / "labels" / "data").glob("corpus_*.jsonl"))
    rows = {f.stem.removeprefix("corpus_"): load_labelled([f], taxonomy) for f in files}
    candidates = candidate_classifiers(TrainConfig())
    card = json.loads((ROOT / "models" / (ROOT / "models" / "CURRENT").read_text().strip() / "card.json").read_text())
    results: dict[str, dict[str, float]] = {}
    for task in taxonomy.tasks:
        name = args.model or card["tasks"][task.name]["selected"]
        scores = {}
        for writer, test in rows.items():
            train = [r for w, rs in rows.items() if w != writer for r in rs]
            model = Pipeline([("features", build_feature_union()), ("classifier", clone(candidates[name]))])
            model.fit([r.text for r in train], [r.labels[task.name] for r in train])
            pred = model.predict([r.text for r in test])
            scores[writer] = float(f1_score([r.labels[task.name] for r in test], pred, average="macro"))
            print(f"{task.name:12s} {name:20s} held-out writer {writer:5s} ({len(test):4d} rows): "
                  f"macro-F1 {scores[writer]:.3f}", flush=True)
        scores["mean"] = float(np.mean(list(scores.values())))
        scores["min"] = float(min(v for k, v in scores.items() if k != "mean"))
        print(f"{task.name}: mean {scores['mean']:.3f}, worst {scores['min']:.3f}")
        results[task.name] = scores
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
