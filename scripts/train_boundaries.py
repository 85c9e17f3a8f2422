"""Train the sentence-boundary model for turns without punctuation and write it to ``models/boundaries/``.

Fits :mod:`pipeline.speech.boundaries` on the training conversations of every
``labels/data/corpus_*.jsonl`` file and of the AMI dialogue acts (``labels/external/ami.jsonl.gz``),
measures it on their held-out conversations (the project's one held-out rule), and writes
``boundaries.json``, ``card.json`` and ``card.md``. Takes about half a minute on 2 cores.

Usage: python scripts/train_boundaries.py [--out models/boundaries] [--labels labels/data]
       [--ami labels/external/ami.jsonl.gz]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.atomic import write_bytes_atomic  # noqa: E402
from pipeline.speech.boundaries import (  # noqa: E402
    card_markdown,
    load_boundary_model,
    save_boundary_model,
    train_boundary_model,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "boundaries", help="folder to write the model to")
    parser.add_argument("--labels", type=Path, default=ROOT / "labels" / "data", help="the written corpus files")
    parser.add_argument("--ami", type=Path, default=ROOT / "labels" / "external" / "ami.jsonl.gz",
                        help="the AMI dialogue acts (leave out with --ami '')")
    args = parser.parse_args()
    files = sorted(args.labels.glob("corpus_*.jsonl"))
    if not files:
        raise SystemExit(f"no corpus_*.jsonl files in {args.labels}")
    ami = args.ami if str(args.ami) and args.ami.is_file() else None
    started = time.perf_counter()
    model, card = train_boundary_model(files, ami)
    card["training_s"] = round(time.perf_counter() - started, 1)
    save_boundary_model(model, args.out, card)
    saved = load_boundary_model(args.out)  # what a run will read, checksum included
    write_bytes_atomic(args.out / "card.md", card_markdown(saved.info).encode("utf-8"))
    print(card_markdown(saved.info))


if __name__ == "__main__":
    main()
