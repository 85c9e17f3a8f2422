"""Agreement between the AMI hand annotation and independent second annotations.

- ``labels/external/ami-agreement/second-annotation.jsonl``: a second annotator's labels for a
  random sample (seed 99) of 300 of the first 4,622 hand-annotated acts (round 1).
- ``labels/external/ami-agreement/second-annotation-round3.jsonl``: 300 acts of round 3
  (shards 9-14), stratified: 100 the first annotators labelled action, 200 they labelled talk
  (seed 2026), so that action is not a handful of rows. Agreement is also printed per stratum.
- ``labels/external/ami-agreement/second-annotation-round5.jsonl``: 200 acts of round 5 (shards
  21-25, the acts the model of 2026-12-03 was least sure of), a random sample (seed 7) of the
  1,800.
- ``labels/external/ami-agreement/second-annotation-disputed.jsonl``: 455 training-series acts whose
  hand label the model of 2026-12-05 (001830Z) disputed most, reading every act of their meetings in
  order: talk acts it read as action with probability above 0.65 (404) and action acts under 0.4
  (51) (docs/REALDATA.md, "a second look at the hand labels the model disputes").

All were made without seeing the first labels. Prints raw agreement and Cohen's kappa per task.

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
    from import_ami import read_hand_labels  # the one reader of annotation shards (scripts/)

    external = ROOT / "labels" / "external"
    # rounds 1-3 and 5 (trained on, in ami-hand) and round 4 (kept apart in ami-hand-round4)
    first = {k: v for folder in [external / "ami-hand", *sorted(external.glob("ami-hand-round*"))]
             for k, v in read_hand_labels(folder).items()}
    folder = ROOT / "labels" / "external" / "ami-agreement"
    for name, title in (("second-annotation.jsonl", "round 1, random sample"),
                        ("second-annotation-round3.jsonl", "round 3, stratified by the first label"),
                        ("second-annotation-round5.jsonl", "round 5, random sample of uncertain acts"),
                        ("second-annotation-disputed.jsonl", "acts whose hand label the model disputed")):
        path = folder / name
        if not path.is_file():
            continue
        second = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        print(f"{title} ({name}):")
        for task in ("talk_action", "stage"):
            a = [first[row["id"]][task] for row in second]
            b = [row[task] for row in second]
            observed, kappa = cohen_kappa(a, b)
            print(f"  {task}: {len(a)} acts, agreement {observed:.3f}, Cohen's kappa {kappa:.3f}")
            for stratum in ("action", "talk"):
                idx = [i for i, row in enumerate(second) if first[row["id"]]["talk_action"] == stratum]
                if idx:
                    same = sum(a[i] == b[i] for i in idx) / len(idx)
                    print(f"    first label {stratum}: {len(idx)} acts, agreement {same:.3f}")

if __name__ == "__main__":
    main()
