"""What turns without punctuation cost, and how much the sentence-boundary model gives back.

Each labelled call (the labelled-calls JSON format: one turn per gold sentence) is rewritten the way a
recogniser or caption track without punctuation would give it: lower case, no punctuation, a speaker's
consecutive sentences joined into one turn. It is then segmented three ways — as a whole turn (no
boundary model), with the shipped boundary model, and with a full stop at every gold sentence end (the
ceiling) — classified with the current classifier, and every gold sentence takes the labels of the
segment holding most of its words. Reported per folder: stage and talk/action macro-F1 over the gold
sentences, and the mean absolute error of each call's action share (hard labels, each sentence or
segment weighted by its words, over what is not stage ``other``; the gold share the same way).

Usage: python scripts/eval_unpunctuated.py [FOLDER ...] [--json]
       (default: labels/calls, labels/held-back/outside-calls, labels/held-back/outside-calls-2)
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.metrics import f1_score  # noqa: E402

from pipeline.classify.artifacts import load_artifact  # noqa: E402
from pipeline.classify.predict import classify_segments  # noqa: E402
from pipeline.paths import models_dir  # noqa: E402
from pipeline.schema import Turn  # noqa: E402
from pipeline.speech.turns import Sentencizer, build_sentencizer, segment_turns  # noqa: E402

_WORDS = re.compile(r"[a-z0-9']+")
DEFAULT_FOLDERS = ("labels/calls", "labels/held-back/outside-calls", "labels/held-back/outside-calls-2")


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower().replace("-", " ").replace("’", "'"))


def read_calls(folder: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    calls = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        calls.append((str(data.get("call_id", path.stem)), list(data["turns"])))
    return calls


def unpunctuated_turns(sentences: list[dict[str, Any]], ceiling: bool = False) -> list[Turn]:
    """A call's gold sentences as an unpunctuated export gives them: lower case, no punctuation, a speaker's
    consecutive sentences one turn (with ``ceiling``, a full stop at each gold sentence end)."""
    turns: list[Turn] = []
    start = 0.0
    for speaker, run in itertools.groupby(sentences, key=lambda sentence: sentence["speaker"]):
        parts = [" ".join(words(s["text"])) for s in run]
        text = ". ".join(parts) + "." if ceiling else " ".join(parts)
        duration = len(text.split()) / 2.5
        turns.append(Turn(speaker=speaker, channel=None, start_s=start, end_s=start + duration, text=text,
                          confidence=None, timing_estimated=True))
        start += duration + 0.3
    return turns


def score_call(artifact: Any, splitter: Sentencizer, sentences: list[dict[str, Any]], ceiling: bool) -> dict[str, Any]:
    """Gold and predicted labels per sentence of one call, and its gold and predicted action share."""
    classified = classify_segments(artifact, segment_turns(unpunctuated_turns(sentences, ceiling), "call", splitter))
    gold_words, gold_of = [], []
    for i, sentence in enumerate(sentences):
        found = words(sentence["text"])
        gold_words += found
        gold_of += [i] * len(found)
    seg_words, seg_of = [], []
    for j, item in enumerate(classified):
        found = words(item.segment.text)
        seg_words += found
        seg_of += [j] * len(found)
    matched: list[int | None] = [None] * len(gold_words)
    for a, b, n in difflib.SequenceMatcher(a=gold_words, b=seg_words, autojunk=False).get_matching_blocks():
        for k in range(n):
            matched[a + k] = seg_of[b + k]
    rows = []
    for i, sentence in enumerate(sentences):
        held = Counter(m for k, m in enumerate(matched) if gold_of[k] == i and m is not None)
        item = classified[held.most_common(1)[0][0]]
        rows.append((sentence, item.stage.label, item.talk_action.label))

    def share(pairs: list[tuple[int, bool]]) -> float:
        total = sum(n for n, _ in pairs)
        return sum(n for n, action in pairs if action) / total if total else 0.0

    gold_share = share([(len(words(s["text"])), s.get("talk_action") == "action") for s in sentences
                        if s.get("stage") != "other" and s.get("talk_action")])
    predicted = share([(len(words(c.segment.text)), c.talk_action.label == "action") for c in classified
                       if c.stage.label != "other"])
    return {"rows": rows, "error": abs(gold_share - predicted), "segments": len(classified)}


def evaluate(artifact: Any, calls: list[tuple[str, list[dict[str, Any]]]], splitter: Sentencizer,
             ceiling: bool = False) -> dict[str, Any]:
    stage_gold, stage_pred, ta_gold, ta_pred, errors, segments = [], [], [], [], [], 0
    for _, sentences in calls:
        result = score_call(artifact, splitter, sentences, ceiling)
        segments += result["segments"]
        errors.append(result["error"])
        for sentence, stage, talk_action in result["rows"]:
            if sentence.get("stage"):
                stage_gold.append(sentence["stage"])
                stage_pred.append(stage)
            if sentence.get("talk_action"):
                ta_gold.append(sentence["talk_action"])
                ta_pred.append(talk_action)
    return {"calls": len(calls), "sentences": len(stage_gold), "segments": segments,
            "stage_macro_f1": round(float(f1_score(stage_gold, stage_pred, average="macro")), 3),
            "talk_action_macro_f1": round(float(f1_score(ta_gold, ta_pred, average="macro")), 3),
            "action_share_mae": round(sum(errors) / len(errors), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help="labelled-call folders")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    folders = args.folders or [ROOT / f for f in DEFAULT_FOLDERS]
    artifact = load_artifact(models_dir())
    ways = {"whole turns": (build_sentencizer(False), False), "boundary model": (build_sentencizer(), False),
            "gold sentence ends": (build_sentencizer(False), True)}
    results: dict[str, Any] = {"classifier": artifact.version}
    for folder in folders:
        calls = read_calls(folder)
        if calls:
            results[folder.name] = {way: evaluate(artifact, calls, splitter, ceiling)
                                    for way, (splitter, ceiling) in ways.items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"classifier {results['classifier']}")
    for name, by_way in results.items():
        if name == "classifier":
            continue
        print(f"\n{name}")
        for way, m in by_way.items():
            print(f"  {way:<19} stage {m['stage_macro_f1']:.3f}  talk/action {m['talk_action_macro_f1']:.3f}  "
                  f"action-share MAE {m['action_share_mae']:.4f}  ({m['sentences']} sentences, "
                  f"{m['segments']} segments, {m['calls']} calls)")


if __name__ == "__main__":
    main()
