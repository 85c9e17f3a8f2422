"""Train the role model (who is the rep) and write it to ``models/roles/``.

Fits :mod:`pipeline.speech.rolemodel` on every ``labels/data/corpus_*.jsonl`` file, measures it
leave-one-writer-out, on the labelled calls (``labels/calls``) and on outside transcripts
(``labels/held-back/roles-outside``), neither ever trained on, next to the question rule it replaces,
and writes ``roles.json``, ``card.json`` and ``card.md``. Takes about a minute on 2 cores.

Usage: python scripts/train_roles.py [--out models/roles] [--labels labels/data] [--calls labels/calls]
       [--outside labels/held-back/roles-outside]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.atomic import write_bytes_atomic  # noqa: E402
from pipeline.speech.rolemodel import card_markdown, load_role_model, save_role_model, train_role_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "roles", help="folder to write the model to")
    parser.add_argument("--labels", type=Path, default=ROOT / "labels" / "data", help="the written corpus files")
    parser.add_argument("--calls", type=Path, default=ROOT / "labels" / "calls",
                        help="labelled calls to measure on (never trained on)")
    parser.add_argument("--outside", type=Path, default=ROOT / "labels" / "held-back" / "roles-outside",
                        help="transcripts (calls/) with a role key (key/truth.json), written blind, to measure on")
    args = parser.parse_args()
    files = sorted(args.labels.glob("corpus_*.jsonl"))
    if not files:
        raise SystemExit(f"no corpus_*.jsonl files in {args.labels}")
    started = time.perf_counter()
    outside = args.outside if (args.outside / "key" / "truth.json").is_file() else None
    model, card = train_role_model(files, args.calls if args.calls.is_dir() else None, outside_dir=outside)
    card["training_s"] = round(time.perf_counter() - started, 1)
    save_role_model(model, args.out, card)
    saved = load_role_model(args.out)  # what a run will read, checksum included
    write_bytes_atomic(args.out / "card.md", card_markdown(saved.info).encode("utf-8"))
    print(card_markdown(saved.info))


if __name__ == "__main__":
    main()
