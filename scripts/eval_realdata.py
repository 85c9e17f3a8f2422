"""Evaluate the shipped classifiers on real conversation text nobody on this project wrote.

Reads ``../shared/realdata/text`` (not copied into the project), maps its labels to ours,
and reports results separately from the project's own labelled data:

- **Enron email intent** (test file, 992 sentences): ``Yes`` (a request, proposal, or a
  commitment with a date/time) -> ``action``; ``No`` -> ``talk``. Only ``talk_action`` is mapped.
- **PersuasionForGood** (10,864 chat sentences with strategy labels):
  ``talk_action``: persuader ``proposition-of-donation``, ``ask-donation-amount``,
  ``ask-donate-more``, ``confirm-donation`` and persuadee ``agree-donation``,
  ``provide-donation-amount``, ``disagree-donation``, ``disagree-donation-more``,
  ``confirm-donation`` -> ``action`` (they make, ask for, accept or decline a specific
  commitment); every other *labelled* sentence -> ``talk``; unlabelled sentences are skipped.
  ``stage``: greetings, thanks, closings, off-task, you-are-welcome -> ``other``; the donation
  moves above -> ``act``; the rest has no clean stage equivalent and is left out of stage scoring.

Usage: python scripts/eval_realdata.py [--models models] [--json FILE] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.classify.artifacts import load_artifact  # noqa: E402
from pipeline.classify.evaluate import evaluate_artifact  # noqa: E402
from pipeline.classify.labels import LabelledRow  # noqa: E402

REALDATA = ROOT.parent / "shared" / "realdata" / "text"
ACTION_ER = {"proposition-of-donation", "ask-donation-amount", "ask-donate-more", "confirm-donation"}
ACTION_EE = {"agree-donation", "provide-donation-amount", "disagree-donation", "disagree-donation-more",
             "confirm-donation"}
OTHER = {"greeting", "thank", "closing", "off-task", "you-are-welcome"}


def enron_rows(path: Path) -> list[LabelledRow]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        label, _, text = line.partition("\t")
        if text.strip() and label in {"Yes", "No"}:
            rows.append(LabelledRow(id=f"enron-{i}", text=text.strip(),
                                    labels={"talk_action": "action" if label == "Yes" else "talk"},
                                    group=f"enron-{i}", source=str(path)))
    return rows


def persuasion_rows(path: Path) -> list[LabelledRow]:
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for i, rec in enumerate(csv.DictReader(handle)):
            label = rec["er_label_1"] if rec["B4"] == "0" else rec["ee_label_1"]
            text = rec["Unit"].strip()
            if not label or not text:
                continue
            action = label in (ACTION_ER if rec["B4"] == "0" else ACTION_EE)
            labels = {"talk_action": "action" if action else "talk"}
            if label in OTHER:
                labels = {"stage": "other", "talk_action": "talk"}
            elif action:
                labels["stage"] = "act"
            rows.append(LabelledRow(id=f"p4g-{i}", text=text, labels=labels, group=rec["B2"], source=str(path)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if not REALDATA.is_dir():
        raise SystemExit(f"{REALDATA} not found: the shared real data is needed for this evaluation.")
    artifact = load_artifact(Path(args.models))
    sets = {
        "enron-email-intent (test)": enron_rows(REALDATA / "enron-email-intent" / "testSet-qualifiedBatch-fixed.txt"),
        "persuasionforgood": persuasion_rows(REALDATA / "persuasionforgood" / "300_dialog.csv"),
    }
    results = {name: evaluate_artifact(artifact, rows) for name, rows in sets.items()}
    lines = [f"# Real-data evaluation of {artifact.version}", "",
             "Label mapping: see scripts/eval_realdata.py. These sets were never used for training.", "",
             "macro-F1 (gold labels) averages F1 over the labels that occur in the mapped gold data only: the",
             "persuasion data maps to `act` and `other` alone, so align/adjust F1 is 0 by construction there.", "",
             "| data set | task | rows | macro-F1 (all labels) | macro-F1 (gold labels) | accuracy | per-class F1 |",
             "|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for task, m in res["tasks"].items():
            present = [k for k, v in m["per_class"].items() if v.get("support", 0) > 0]
            gold_macro = sum(m["per_class"][k]["f1"] for k in present) / max(1, len(present))
            m["macro_f1_gold_labels"] = gold_macro
            per = ", ".join(f"{k} {v['f1']:.2f}" for k, v in m["per_class"].items())
            lines.append(f"| {name} | {task} | {m['n']} | {m['macro_f1']:.3f} | {gold_macro:.3f} | "
                         f"{m['accuracy']:.3f} | {per} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
