"""Check labelled corpus files (stdlib only): schema, label values, ids, duplicates, balance.

Usage: python3 scripts/check_corpus.py labels/data/corpus_x.jsonl [more files...]
Exits 1 and lists every problem when a file is invalid; prints counts per stage x talk_action cell.
"""

from __future__ import annotations

import collections
import json
import re
import sys
from pathlib import Path

STAGES = {"align", "act", "adjust", "other"}
TALK_ACTION = {"talk", "action"}
STYLES = {"clean", "asr"}
REQUIRED = ("id", "text", "stage", "talk_action", "situation", "industry", "style", "speaker_role", "group", "origin")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", text.lower()).strip()


def main(paths: list[str]) -> int:
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    seen_text: dict[str, str] = {}
    cells: collections.Counter = collections.Counter()
    styles: collections.Counter = collections.Counter()
    situations: collections.Counter = collections.Counter()
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path}:{n}"
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: not JSON ({exc})")
                continue
            missing = [k for k in REQUIRED if not str(row.get(k, "")).strip()]
            if missing:
                problems.append(f"{where}: missing {missing}")
                continue
            if row["stage"] not in STAGES:
                problems.append(f"{where}: stage {row['stage']!r} not in {sorted(STAGES)}")
            if row["talk_action"] not in TALK_ACTION:
                problems.append(f"{where}: talk_action {row['talk_action']!r} not in {sorted(TALK_ACTION)}")
            if row["stage"] == "other" and row["talk_action"] != "talk":
                problems.append(f"{where}: stage other must be talk")
            if row["style"] not in STYLES:
                problems.append(f"{where}: style {row['style']!r} not in {sorted(STYLES)}")
            if row["id"] in seen_ids:
                problems.append(f"{where}: duplicate id {row['id']} (first at {seen_ids[row['id']]})")
            seen_ids[row["id"]] = where
            key = _norm(row["text"])
            if key in seen_text:
                problems.append(f"{where}: duplicate text (first at {seen_text[key]}): {row['text'][:60]!r}")
            seen_text.setdefault(key, where)
            cells[(row["stage"], row["talk_action"])] += 1
            styles[row["style"]] += 1
            situations[row["situation"]] += 1
    for p in problems[:200]:
        print(p)
    total = sum(cells.values())
    print(f"rows: {total}")
    for cell, count in sorted(cells.items()):
        print(f"  {cell[0]:>7} / {cell[1]:<6} {count}")
    print("styles:", dict(styles))
    print("situations:", dict(situations))
    print("problems:", len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
