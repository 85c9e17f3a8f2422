#!/usr/bin/env python3
"""Draw AMI training-series acts for hand annotation: contiguous stretches (round 4) or the acts
the shipped model is least sure of (round 5, ``--uncertain``).

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

Uncertainty sampling (round 5 of 2026-12-04: ``--uncertain 1800 --batches 5 --first-shard 21
--seed 20261204 --exclude-hand labels/external/ami-hand-round4``): every non-empty act of the
training series is classified by the model (``--models``, its ``CURRENT``) in meeting order, as the
product reads a call; the ``--uncertain`` acts not yet hand-labelled (rounds 1-3 in the AMI file,
plus the folders given with ``--exclude-hand``) whose ``other`` probability is under 0.5 and whose
action probability lies nearest the decision line (0.5; the model's offsets are inside its
probabilities) are shuffled with ``--seed`` and dealt round-robin into ``--batches`` batches, each
batch in meeting order. Each act is shown with up to five acts before and two after (context).

A second look at disputed labels (2026-12-05: ``--disputed 0.65 0.4 --batches 3 --first-shard 1
--seed 20261205``, model 001830Z): the hand-labelled acts of the training series (rounds 1-3 and 5)
that the model, reading every act in meeting order, calls action with probability above the first
number though they are labelled talk, or below the second though they are labelled action; shown
with the same context as above and without their labels, for a blind relabelling
(``labels/external/ami-agreement/second-annotation-disputed.jsonl``).

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
    parser.add_argument("--uncertain", type=int, default=0,
                        help="draw this many acts nearest the model's decision line instead of stretches")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="with --uncertain: the models folder")
    parser.add_argument("--exclude-hand", type=Path, action="append", default=[],
                        help="with --uncertain: a folder of hand-label shards whose acts are not drawn again")
    parser.add_argument("--disputed", type=float, nargs=2, metavar=("TALK_ABOVE", "ACTION_BELOW"),
                        help="draw the hand-labelled acts the model disputes: talk acts whose action "
                             "probability is above TALK_ABOVE and action acts below ACTION_BELOW")
    args = parser.parse_args()

    with gzip.open(args.ami, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    meetings: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        meetings[row["group"]].append(row)
    if args.uncertain:
        write_uncertain(rows, meetings, args)
        return
    if args.disputed:
        write_disputed(rows, meetings, args)
        return
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
                lines.append(act_line(row, marked))
            lines.append("")
        write_batch(args.out, args.first_shard + b, lines, ids)


def act_line(row: dict, marked: bool) -> str:
    """One act as the annotator sees it: ``<mark> <id> [<speaker letter>] <text>``."""
    return f"{'*' if marked else ' '} {row['id']} [{row['speaker'].split('.')[-1]}] {row['text']}"


def write_batch(out: Path, shard: int, lines: list[str], ids: list[str]) -> None:
    """The annotator's file and the list of ids to label, for one batch."""
    (out / f"batch-{shard}.txt").write_text("\n".join(lines), encoding="utf-8")
    (out / f"batch-{shard}.ids").write_text("\n".join(ids) + "\n", encoding="utf-8")
    print(f"batch {shard}: {len(ids)} acts to label")


def score_training_acts(rows: list[dict], models: Path) -> list[tuple[dict, float, float]]:
    """Every non-empty act of the training series, classified in meeting order by the model in
    ``models`` (its ``CURRENT``) as the product reads a call: (act, action probability, ``other``
    probability), the model's decision offsets inside the probabilities."""
    from pipeline.classify.artifacts import load_artifact
    from pipeline.classify.model import Utterances
    from pipeline.classify.train import embed_texts

    acts = sorted((r for r in rows if r["text"].strip() and not is_holdout(split_key("ami", r["group"]))),
                  key=lambda r: (r["group"], r["index"]))
    artifact = load_artifact(models)
    texts = [r["text"] for r in acts]
    vectors = embed_texts(artifact.encoder, texts, progress=print) if artifact.encoder is not None else None
    utterances = Utterances(tuple(texts), tuple(r["group"] for r in acts), tuple(r["speaker"] for r in acts))
    proba = artifact.model.predict_proba(utterances, vectors)
    action = list(artifact.model.classes_["talk_action"]).index("action")
    other = list(artifact.model.classes_["stage"]).index("other")
    return [(r, float(ta[action]), float(st[other]))
            for r, ta, st in zip(acts, proba["talk_action"], proba["stage"])]


def write_uncertain(rows: list[dict], meetings: dict[str, list[dict]], args: argparse.Namespace) -> None:
    """Round 5: the acts the model is least sure of, each with its context (see the module docstring)."""
    from import_ami import read_hand_labels  # the one reader of annotation shards (scripts/)

    hand = {r["id"] for r in rows if r["label_source"] == "hand"}
    for folder in args.exclude_hand:
        hand |= set(read_hand_labels(folder))
    pool = [(abs(p_action - 0.5), r["id"]) for r, p_action, p_other in score_training_acts(rows, args.models)
            if r["id"] not in hand and p_other < 0.5]
    pool.sort(key=lambda item: item[0])
    chosen = [act_id for _distance, act_id in pool[: args.uncertain]]
    print(f"{len(pool)} unlabelled acts scored; drawing {len(chosen)} within "
          f"{pool[len(chosen) - 1][0]:.3f} of the decision line")
    write_items(chosen, meetings, args)


def write_disputed(rows: list[dict], meetings: dict[str, list[dict]], args: argparse.Namespace) -> None:
    """A second look (2026-12-05): the hand-labelled acts whose label the model disputes most, shown
    without their labels (see the module docstring)."""
    talk_above, action_below = args.disputed
    chosen = [r["id"] for r, p_action, _p_other in score_training_acts(rows, args.models)
              if r["label_source"] == "hand" and ((r["talk_action"] == "talk" and p_action > talk_above)
                                                   or (r["talk_action"] == "action" and p_action < action_below))]
    print(f"{len(chosen)} hand-labelled acts disputed by the model")
    write_items(chosen, meetings, args)


def write_items(chosen: list[str], meetings: dict[str, list[dict]], args: argparse.Namespace) -> None:
    """Deal the chosen acts, shuffled with ``--seed``, round-robin into ``--batches`` batches, each in
    meeting order and each act shown with up to five acts before and two after."""
    position: dict[str, tuple[str, int]] = {}
    for group, meeting in meetings.items():
        meeting.sort(key=lambda r: r["index"])
        position.update({r["id"]: (group, i) for i, r in enumerate(meeting)})
    chosen = list(chosen)
    random.Random(args.seed).shuffle(chosen)
    args.out.mkdir(parents=True, exist_ok=True)
    for b in range(args.batches):
        part = sorted(chosen[b :: args.batches], key=lambda act_id: position[act_id])
        lines: list[str] = []
        for k, act_id in enumerate(part, start=1):
            group, i = position[act_id]
            meeting = meetings[group]
            lines.append(f"# item {k}: meeting {group}")
            for j in range(max(0, i - 5), min(len(meeting), i + 3)):
                row = meeting[j]
                if row["text"].strip():
                    lines.append(act_line(row, j == i))
            lines.append("")
        write_batch(args.out, args.first_shard + b, lines, part)


if __name__ == "__main__":
    main()
