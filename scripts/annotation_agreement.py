"""Agreement between the AMI hand annotation and an independent second annotation of 300 acts.

``labels/external/ami-agreement/second-annotation.jsonl`` holds a second annotator's labels for a
random sample (seed 99) of the 4,622 hand-annotated AMI dialogue acts, made without seeing the
first labels. This prints raw agreement and Cohen's kappa per task.

Usage: python scripts/annotation_agreement.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cohen_kappa(a: list[str], b: list[str]) -> tuple[float, float]:
    """(observed agreement, Cohen's kappa) of two label sequences."""
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    labels = set(a) | set(b)
    chance = sum((a.count(lbl) / n) * (b.count(lbl) / n) for lbl in labels)
    return observed, (observed - chance) / (1 - chance) if chance < 1 else 1.0


def main() -> None:
    first: dict[str, dict] = {}
    for path in sorted((ROOT / "labels" / "external" / "ami-hand").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            first[row["id"]] = row
    second_path = ROOT / "labels" / "external" / "ami-agreement" / "second-annotation.jsonl"
    second = [json.loads(line) for line in second_path.read_text(encoding="utf-8").splitlines()]
    for task in ("talk_action", "stage"):
        a = [first[row["id"]][task] for row in second]
        b = [row[task] for row in second]
        observed, kappa = cohen_kappa(a, b)
        print(f"{task}: {len(a)} acts, agreement {observed:.3f}, Cohen's kappa {kappa:.3f}")


if __name__ == "__main__":
    main()
