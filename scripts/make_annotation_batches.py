#!/usr/bin/env python3
"""Draw contiguous stretches of AMI training-series meetings for hand annotation (round 4).

Reads ``labels/external/ami.jsonl.gz`` and writes, per batch, a text file for the annotator
(``<mark> <id> [<speaker letter>] <text>``: lines marked ``*`` are to be labelled, the others are
context) and the list of marked ids. Brief: ``docs/annotation-brief.md``; the labels go to
``labels/external/ami-hand/shard-<n>.jsonl`` and are overlaid by ``scripts/import_ami.py
--hand-labels``.

Selection (round 4 of 2026-12-02 used the defaults): every window of ``--length`` acts starting at
a multiple of 50 in a meeting of a *training* series (the held-out rule of
``pipeline.classify.labels``) with at most ``--max-labelled`` acts already hand-labelled; windows
whose density of tag-mapped action rows is at or above the median; shuffled with ``--seed``; at most
one window per meeting; the first ``--stretches`` of them, dealt round-robin into ``--batches``
batches. Acts already hand-labelled inside a window are shown as context, not marked.

Usage: python scripts/make_annotation_batches.py --out /tmp/batches [--first-shard 15]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.classify.labels import is_holdout, split_key  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ami", type=Path, default=ROOT / "labels/external/ami.jsonl.gz")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--max-labelled", type=int, default=30)
    parser.add_argument("--stretches", type=int, default=18)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--first-shard", type=int, default=15)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()

    with gzip.open(args.ami, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    meetings: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        meetings[row["group"]].append(row)
    hand = {r["id"] for r in rows if r["label_source"] == "hand"}
    length = args.length
    candidates = []
    for group, acts in meetings.items():
        if is_holdout(split_key("ami", group)):
            continue
        acts.sort(key=lambda r: r["index"])
        for start in range(0, max(1, len(acts) - length), 50):
            window = acts[start : start + length]
            if len(window) < length or sum(r["id"] in hand for r in window) > args.max_labelled:
                continue
            density = sum(r["talk_action"] == "action" for r in window) / length
            candidates.append((density, group, start))
    if not candidates:
        raise SystemExit("no stretch qualifies; lower --length or raise --max-labelled")
    median = sorted(c[0] for c in candidates)[len(candidates) // 2]
    pool = [c for c in candidates if c[0] >= median]
    random.Random(args.seed).shuffle(pool)
    chosen, seen = [], set()
    for candidate in pool:
        if candidate[1] not in seen:
            seen.add(candidate[1])
            chosen.append(candidate)
        if len(chosen) == args.stretches:
            break
    args.out.mkdir(parents=True, exist_ok=True)
    for b in range(args.batches):
        lines: list[str] = []
        ids: list[str] = []
        for _density, group, start in chosen[b :: args.batches]:
            acts = meetings[group]
            lines.append(f"# meeting {group}, acts {start}-{start + length - 1} (context lines unmarked)")
            for i in range(max(0, start - 12), min(len(acts), start + length + 4)):
                row = acts[i]
                marked = start <= i < start + length and row["id"] not in hand
                if marked:
                    ids.append(row["id"])
                lines.append(f"{'*' if marked else ' '} {row['id']} [{row['speaker'].split('.')[-1]}] {row['text']}")
            lines.append("")
        shard = args.first_shard + b
        (args.out / f"batch-{shard}.txt").write_text("\n".join(lines), encoding="utf-8")
        (args.out / f"batch-{shard}.ids").write_text("\n".join(ids) + "\n", encoding="utf-8")
        print(f"batch {shard}: {len(ids)} acts to label")


if __name__ == "__main__":
    main()
