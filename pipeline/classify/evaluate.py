"""Evaluate a classifier artifact on labelled rows, compare artifacts, guard promotion."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.classify.artifacts import Artifact, current_version, load_artifact, set_current
from pipeline.classify.benchmark import BenchmarkSet
from pipeline.classify.labels import LabelledRow, drop_near_duplicates, validate_rows
from pipeline.classify.predict import predict_utterances
from pipeline.classify.train import classification_metrics, mean_interval
from pipeline.errors import LabelDataError, ModelArtifactError, PipelineError
from pipeline.schema import Segment

__all__ = ["evaluate_artifact", "evaluate_benchmark", "evaluate_sources", "benchmark_sets", "compare_on_sets",
           "compare_benchmark", "holdout_rows", "run_benchmark", "held_back_sets", "HELD_BACK_SOURCE",
           "evaluate_calls", "PromotionDecision", "promote"]


@dataclass(frozen=True, slots=True)
class _Scored:
    """One task's scored rows: gold and predicted labels, probabilities, texts, conversations."""

    gold: list[str]
    predicted: list[str]
    proba: np.ndarray
    texts: list[str]
    groups: list[str]


def _scored_predictions(artifact: Artifact, rows: Sequence[LabelledRow], in_context: bool,
                        scored: Sequence[int] | None) -> dict[str, _Scored]:
    """Task -> the scored rows' labels and predictions (every row is classified, as context)."""
    from pipeline.classify.train import rows_to_utterances

    out: dict[str, _Scored] = {}
    if not rows:
        return out
    predictions = predict_utterances(artifact, rows_to_utterances(rows, standalone=not in_context))
    candidates = range(len(rows)) if scored is None else scored
    for task in artifact.taxonomy.tasks:
        idx = [i for i in candidates if task.name in rows[i].labels]
        if not idx:
            continue
        preds = [predictions[task.name][i] for i in idx]
        out[task.name] = _Scored(
            [rows[i].labels[task.name] for i in idx], [p.label for p in preds],
            np.asarray([[p.probabilities.get(lbl, 0.0) for lbl in task.labels] for p in preds]),
            [rows[i].text for i in idx], [rows[i].group for i in idx])
    return out


def evaluate_artifact(artifact: Artifact, rows: Sequence[LabelledRow], in_context: bool = True,
                      scored: Sequence[int] | None = None) -> dict[str, Any]:
    """Per-task metrics (precision/recall/F1 per class, macro-F1 with its interval over
    conversations, confusion, ECE) on ``rows``.

    With ``in_context`` the rows are read as conversations (rows of one group, in order, are
    neighbours), as the model reads a call; otherwise one at a time. Only ``scored`` rows
    (default all) count, and only for the tasks they are labelled with.
    """
    result: dict[str, Any] = {"model_version": artifact.version, "n_rows": len(rows), "tasks": {}}
    labels = {t.name: list(t.labels) for t in artifact.taxonomy.tasks}
    for task, got in _scored_predictions(artifact, rows, in_context, scored).items():
        result["tasks"][task] = classification_metrics(got.gold, got.predicted, labels[task], got.proba,
                                                       got.texts, got.groups)
    return result


def compare_on_sets(artifact: Artifact, other: Artifact, sets: Sequence[BenchmarkSet],
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Per source and task: both models' macro-F1 and a paired 95% interval of ``other - artifact``.

    The same rows, the same resampled conversations (:func:`pipeline.classify.train.paired_macro_f1_difference`).
    ``progress`` is called with the name of each source before it is scored.
    """
    from pipeline.classify.train import paired_macro_f1_difference

    say = progress or (lambda _m: None)
    labels = {t.name: list(t.labels) for t in artifact.taxonomy.tasks}
    out: dict[str, Any] = {}
    for bench in sets:
        say(f"{bench.name} ({len(bench.rows)} rows)")
        mine = _scored_predictions(artifact, bench.rows, bench.in_context, bench.scored)
        theirs = _scored_predictions(other, bench.rows, bench.in_context, bench.scored)
        out[bench.name] = {task: paired_macro_f1_difference(got.gold, got.predicted, theirs[task].predicted,
                                                            labels[task], got.groups)
                           for task, got in mine.items() if task in theirs}
    return out


def evaluate_benchmark(artifact: Artifact, sets: Sequence[BenchmarkSet],
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Metrics per benchmark source (see :mod:`pipeline.classify.benchmark`); ``progress`` is called
    with the name of each source before it is scored."""
    say = progress or (lambda _m: None)
    out: dict[str, Any] = {}
    for bench in sets:
        say(f"{bench.name} ({len(bench.rows)} rows)")
        out[bench.name] = evaluate_artifact(artifact, bench.rows, bench.in_context, bench.scored)
    return out


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    """Whether ``CURRENT`` moved, and why."""

    promoted: bool
    reason: str
    candidate: dict[str, float]
    incumbent: dict[str, float] | None


def _unmeasured_corpora(incumbent: Artifact, holdout: Sequence[LabelledRow]) -> str:
    """Why the held-out rows cannot compare a candidate with ``incumbent`` ("" when they can): there are none,
    or they lack a corpus the incumbent's card says it was trained on."""
    if not holdout:
        return ("the candidate has no held-out rows to compare it with the current model on (too little data, "
                "or every group fell in training); train on more data, or use --force to promote anyway")
    trained_on = set((incumbent.card.get("data") or {}).get("corpora") or {})
    missing = sorted(trained_on - {row.corpus for row in holdout})
    if not missing:
        return ""
    return (f"the candidate's held-out rows hold no {', '.join(missing)} rows, on which the current model was "
            f"trained and measured (real speech left out of the retrain?); train with the same corpora (the "
            f"default --external), or use --force to promote anyway")


def promote(models_root: Path, version: str, holdout: Sequence[LabelledRow], force: bool = False) -> PromotionDecision:
    """Point ``models/CURRENT`` at ``version`` unless held-out macro-F1 drops.

    Both the candidate and the current model are scored on the same held-out rows; the
    pointer moves only when no task's macro-F1 is lower than the current model's (or with
    ``force``, or when nothing is promoted yet). Without held-out rows, or when the candidate's
    held-out rows lack a corpus the current model was trained and measured on (real speech left out of
    the retrain), nothing can show the candidate is no worse: it is not promoted without ``force``.
    """
    candidate = load_artifact(models_root, version)
    cand = {t: m["macro_f1"] for t, m in evaluate_artifact(candidate, holdout)["tasks"].items()}
    incumbent_version = current_version(models_root)
    inc: dict[str, float] | None = None
    if incumbent_version and incumbent_version != version:
        reason_broken = ""
        try:
            incumbent: Artifact | None = load_artifact(models_root, incumbent_version)
        except ModelArtifactError as exc:  # a broken incumbent should not block a good candidate
            incumbent, reason_broken = None, f"current model {incumbent_version} cannot be loaded ({exc.message})"
        if incumbent is not None and incumbent.taxonomy != candidate.taxonomy:
            if not force:
                return PromotionDecision(
                    False, f"current model {incumbent_version} has another taxonomy "
                    f"({incumbent.taxonomy.name} v{incumbent.taxonomy.version}), so the held-out rows cannot "
                    "compare the two; use --force to promote anyway", cand, None)
            incumbent, reason_broken = None, "forced over a current model with another taxonomy"
        if incumbent is not None and not force:
            unmeasured = _unmeasured_corpora(incumbent, holdout)
            if unmeasured:
                return PromotionDecision(False, unmeasured, cand, None)
        if incumbent is not None:  # an error while scoring it is a real error, not a reason to skip the gate
            inc = {t: m["macro_f1"] for t, m in evaluate_artifact(incumbent, holdout)["tasks"].items()}
        worse = {t: (cand.get(t, 0.0), v) for t, v in (inc or {}).items() if cand.get(t, 0.0) < v - 1e-9}
        if worse and not force:
            detail = ", ".join(f"{t}: {c:.3f} < {v:.3f}" for t, (c, v) in worse.items())
            return PromotionDecision(False, f"held-out macro-F1 dropped ({detail}); use --force to promote anyway",
                                     cand, inc)
        if worse:
            detail = ", ".join(f"{t} {c:.3f} against {v:.3f}" for t, (c, v) in worse.items())
            reason = f"forced over {incumbent_version}, though held-out macro-F1 dropped ({detail})"
        elif not holdout:  # nothing was measured: say so rather than "did not drop"
            reason = "forced, with no held-out rows to compare on" if force else (
                reason_broken or "no held-out rows to compare on")
        else:
            reason = reason_broken or "held-out macro-F1 did not drop"
    else:
        reason = "no current model" if not incumbent_version else "already current"
    set_current(models_root, version)
    return PromotionDecision(True, reason, cand, inc)


def evaluate_calls(artifact: Artifact, call_files: Sequence[Path], nlp: Any,
                   words_per_minute: float = 150.0) -> dict[str, Any]:
    """Call-level accuracy on fully labelled calls: error of action share and stage mix.

    Each file is a canonical JSON transcript whose turns also carry gold ``stage`` and
    ``talk_action`` labels. The gold score uses the gold labels on the turns; the predicted
    score runs the real segment -> classify -> score path on the same turns. Timings are
    estimated from word counts for both, so only the labels differ.
    """
    from pipeline.classify.predict import classify_segments
    from pipeline.ingest.transcripts import parse_transcript_text
    from pipeline.schema import ClassifiedSegment, Prediction
    from pipeline.score import ACTION_SHARE_METHODS, score_call
    from pipeline.speech.turns import segment_turns

    stage_task = artifact.taxonomy.by_role("stage")
    ta_task = artifact.taxonomy.by_role("talk_action")
    per_call: list[dict[str, Any]] = []
    turn_rows: list[LabelledRow] = []
    for path in call_files:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LabelDataError(f"{path}: cannot read the labelled call ({exc}).",
                                 "Each file is a JSON transcript whose turns carry stage and talk_action.") from exc
        turns = data.get("turns") if isinstance(data, dict) else None
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise LabelDataError(f"{path}: no 'turns' list of objects.",
                                 "Each file is a JSON transcript whose turns carry stage and talk_action.")
        spoken = [(i, t) for i, t in enumerate(turns) if isinstance(t.get("text"), str) and t["text"].strip()]
        # gold labels checked as any labelled data is: unknown labels refused, case and spaces normalised,
        # "other" never "action"
        gold_rows = validate_rows([{"id": f"{Path(path).stem}#{i}", "text": t["text"], "_line": f"turn {i + 1}",
                                    stage_task.name: t.get(stage_task.name), ta_task.name: t.get(ta_task.name)}
                                   for i, t in spoken], artifact.taxonomy, str(path))
        for row, (_, t) in zip(gold_rows, spoken):
            turn_rows.append(LabelledRow(id=row.id, text=row.text, labels=row.labels, group=Path(path).stem,
                                         source=str(path), speaker=str(t.get("speaker", "")), corpus="calls"))
        parsed = parse_transcript_text(json.dumps({"turns": turns}), "json", name=Path(path).name,
                                       words_per_minute=words_per_minute)
        gold_segments = []
        for i, (turn, row) in enumerate(zip(parsed.turns, gold_rows)):
            seg = Segment(call_id=data.get("call_id", Path(path).stem), index=i, turn_index=i,
                          speaker=turn.speaker, channel=None, start_s=turn.start_s, end_s=turn.end_s,
                          text=turn.text, confidence=None, timing_estimated=True, is_question=False)
            gold_segments.append(ClassifiedSegment(seg, Prediction(row.labels[stage_task.name], {}),
                                                   Prediction(row.labels[ta_task.name], {})))
        gold = score_call(gold_segments, artifact.taxonomy, method="labels")
        predicted_segments = classify_segments(artifact, segment_turns(parsed.turns, "eval", nlp))
        pred = score_call(predicted_segments, artifact.taxonomy)
        by_method = {m: score_call(predicted_segments, artifact.taxonomy, method=m).action_share
                     for m in ACTION_SHARE_METHODS}
        mix_error = float(np.mean([abs(gold.stage_shares[k] - pred.stage_shares.get(k, 0.0))
                                   for k in stage_task.labels]))
        per_call.append({
            "call": Path(path).stem, "turns": len(gold_segments),
            "gold_action_share": gold.action_share, "predicted_action_share": pred.action_share,
            "action_share_error": (None if gold.action_share is None or pred.action_share is None
                                   else abs(gold.action_share - pred.action_share)),
            "predicted_interval": [pred.action_share_low, pred.action_share_high],
            "in_interval": (None if gold.action_share is None or pred.action_share_low is None
                            or pred.action_share_high is None
                            else pred.action_share_low - 1e-9 <= gold.action_share <= pred.action_share_high + 1e-9),
            "error_by_method": {m: (None if gold.action_share is None or v is None else abs(gold.action_share - v))
                                for m, v in by_method.items()},
            "stage_mix_mean_abs_error": mix_error,
            "gold_cycle_complete": gold.cycle_complete, "predicted_cycle_complete": pred.cycle_complete,
        })
    errors = [c["action_share_error"] for c in per_call if c["action_share_error"] is not None]
    by_method_errors = {m: [c["error_by_method"][m] for c in per_call if c["error_by_method"][m] is not None]
                        for m in ACTION_SHARE_METHODS}
    covered = [c["in_interval"] for c in per_call if c["in_interval"] is not None]
    mixes = [c["stage_mix_mean_abs_error"] for c in per_call]
    turn_level: dict[str, dict[str, float]] = {}
    for view, ctx in (("in_context", True), ("one_turn_at_a_time", False)):
        if turn_rows:
            tasks = evaluate_artifact(artifact, turn_rows, in_context=ctx)["tasks"]
            turn_level[view] = {task: m["macro_f1"] for task, m in tasks.items()}
    return {
        "model_version": artifact.version, "calls": len(per_call),
        "turn_level_macro_f1": turn_level,
        "action_share_mae": float(np.mean(errors)) if errors else None,
        # how sure that mean is: 95% interval from resampling the calls (mean_interval)
        "action_share_mae_interval": _rounded(mean_interval(errors)),
        "action_share_max_error": float(np.max(errors)) if errors else None,
        "action_share_method": pred.action_share_method if per_call else None,
        "action_share_mae_by_method": {m: (float(np.mean(v)) if v else None) for m, v in by_method_errors.items()},
        "interval_coverage": float(np.mean(covered)) if covered else None,
        "interval_mean_width": (float(np.mean([c["predicted_interval"][1] - c["predicted_interval"][0]
                                               for c in per_call if c["in_interval"] is not None]))
                                if covered else None),
        "stage_mix_mae": float(np.mean(mixes)) if mixes else None,
        "cycle_complete_agreement": (float(np.mean([c["gold_cycle_complete"] == c["predicted_cycle_complete"]
                                                    for c in per_call])) if per_call else None),
        "per_call": per_call,
    }


def _rounded(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]


def holdout_rows(artifact: Artifact, rows: Sequence[LabelledRow]) -> list[LabelledRow]:
    """The rows of ``rows`` that fall in the artifact's held-out split, prepared as training did.

    Written rows are de-duplicated, external rows thinned and windowed with the options
    recorded in the card, then split by the card's held-out percentage, so evaluating these
    rows reproduces the card's held-out figures.
    """
    from pipeline.classify.train import TrainConfig, prepare_external, split_rows

    training = artifact.card.get("training", {})
    defaults = TrainConfig()
    # the percentage as trained (cards record their options); the rule's text only for cards without it
    percent = int(training.get("holdout_percent", str(artifact.card["data"]["holdout_rule"]).split("<")[1]))
    written = [r for r in rows if r.corpus == "written"]
    external = prepare_external([r for r in rows if r.corpus != "written"],
                                int(training.get("mapped_label_percent", defaults.mapped_label_percent)),
                                int(training.get("context_radius", defaults.context_radius)))
    kept = drop_near_duplicates(written, float(training.get("dedupe_threshold", defaults.dedupe_threshold)),
                                # cards from before the option were trained with it off
                                bool(training.get("dedupe_short_in_context", False)))[0]
    return split_rows(kept + external, percent)[1]


def benchmark_sets(artifact: Artifact, written: Sequence[LabelledRow], external: Sequence[LabelledRow],
                   realdata_dir: Path | None = None) -> tuple[list[BenchmarkSet], list[str]]:
    """The benchmark's sources for ``artifact``'s held-out split: written held-out (in context and
    one sentence at a time), real-speech held-out conversations (AMI views), and the shared real
    text when present. Returns ``(sets, reasons for skipped sources)``.
    """
    from pipeline.classify.benchmark import ami_views, realdata_sets

    held = holdout_rows(artifact, list(written) + list(external))
    sets: list[BenchmarkSet] = []
    held_written = [r for r in held if r.corpus == "written"]
    if held_written:
        sets.append(BenchmarkSet("written held-out (in context)", held_written, list(range(len(held_written))), True))
        sets.append(BenchmarkSet("written held-out (one sentence at a time)", held_written,
                                 list(range(len(held_written))), False))
    held_ami = [r for r in held if r.corpus == "ami"]
    if held_ami:
        sets.extend(ami_views(held_ami))
    extra, skipped = realdata_sets(realdata_dir)
    sets.extend(extra)
    return sets, skipped


#: How a file of ``labels/held-back/`` is named among the benchmark's sources.
HELD_BACK_SOURCE = "kept apart, never trained on: {name}"


def _normal_text(text: str) -> str:
    return " ".join(text.casefold().split())


def trained_texts(artifact: Artifact, search: Sequence[Path] = ()) -> set[str] | None:
    """The texts (case and spacing aside) ``artifact`` was trained on: the rows of its training files (the
    card's ``data.sources``, found where the card says or by name in ``search`` folders) outside its
    held-out split. ``None`` when none of the training files can be found."""
    from pipeline.classify.labels import load_labelled

    trained: set[str] = set()
    found = False
    for source in artifact.card.get("data", {}).get("sources", {}):
        where = [Path(str(source)), *(Path(folder) / Path(str(source)).name for folder in search)]
        path = next((p for p in where if p.is_file()), None)
        if path is None:
            continue
        try:
            loaded = load_labelled([path], artifact.taxonomy, partial=True)
        except (LabelDataError, OSError, ValueError):
            continue
        found = True
        held = {row.id for row in holdout_rows(artifact, loaded)}
        trained.update(_normal_text(row.text) for row in loaded if row.id not in held and row.labels)
    return trained if found else None


#: Shorter texts ("yeah", "okay, thanks") are said in every conversation: one in both the training data and
#: other rows is no sign those rows were trained on.
LEARNED_MIN_WORDS = 4


def learned_rows(artifact: Artifact, rows: Sequence[LabelledRow], search: Sequence[Path] = (),
                 trained: set[str] | None = None) -> int | None:
    """How many of ``rows`` have a text ``artifact`` was trained on (:func:`trained_texts`, or ``trained``
    when already read; texts of :data:`LEARNED_MIN_WORDS` words or more): a file renamed, re-imported or
    copied under other conversation names is caught by its texts, not its name. ``None`` when none of the
    training files can be found."""
    texts = trained if trained is not None else trained_texts(artifact, search)
    if texts is None:
        return None
    return sum(len(row.text.split()) >= LEARNED_MIN_WORDS and _normal_text(row.text) in texts for row in rows)


def training_folders() -> list[Path]:
    """Where a model's training files are looked for by name when not where its card says."""
    from pipeline.paths import external_dir, labels_data_dir

    return [labels_data_dir(), external_dir()]


def held_back_sets(folder: Path | None, artifact: Artifact,
                   training: Sequence[LabelledRow] = ()) -> tuple[list[BenchmarkSet], list[str]]:
    """Each ``*.jsonl`` file in ``folder`` (the written rows kept apart from training,
    ``labels/held-back/``) as a source of its own: every row scored, read as conversations. Rows
    of files written by other people, in situations our corpus is thin on, that no model was
    trained on (``labels/held-back/README.md``); none when ``folder`` is missing. A file sharing a
    row id with ``training`` (the labelled corpus, which a model may have learned it from: the
    README says how to copy one in) is no longer kept apart and is skipped, with the reason.
    Returns ``(sets, reasons for skipped files)``.
    """
    from pipeline.classify.labels import load_labelled

    if folder is None or not Path(folder).is_dir():
        return [], []
    trained = {r.id for r in training}
    trained_files = {Path(str(source)).name for source in artifact.card.get("data", {}).get("sources", {})}
    texts: set[str] | None = None
    sets, skipped = [], []
    for path in sorted(Path(folder).glob("*.jsonl")):
        if path.name in trained_files:
            skipped.append(f"{path}: {artifact.version} was trained on it (its card lists the file), so it is not "
                           "kept apart for this model")
            continue
        rows = load_labelled([path], artifact.taxonomy)
        if texts is None:
            texts = trained_texts(artifact, training_folders()) or set()
        learned = learned_rows(artifact, rows, trained=texts) or 0
        if learned >= len(rows) / 2:  # a copy under another name, caught by its texts
            skipped.append(f"{path}: {learned} of its {len(rows)} rows are texts {artifact.version} was trained on, "
                           "so it is not kept apart for this model")
            continue
        if trained.intersection(r.id for r in rows):
            skipped.append(f"{path}: its rows are also in the labelled corpus (trained on), so it is not kept apart")
        elif rows:
            sets.append(BenchmarkSet(HELD_BACK_SOURCE.format(name=path.name), rows, list(range(len(rows))), True))
    return sets, skipped


def evaluate_sources(artifact: Artifact, written: Sequence[LabelledRow], external: Sequence[LabelledRow],
                     realdata_dir: Path | None = None,
                     progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The per-source benchmark (:func:`benchmark_sets`).

    Returns ``(source name -> task metrics, reasons for skipped sources)``.
    """
    sets, skipped = benchmark_sets(artifact, written, external, realdata_dir)
    results = {name: m["tasks"] for name, m in evaluate_benchmark(artifact, sets, progress).items()}
    return results, skipped


def _benchmark_inputs(labels_dir: Path, external_dir: Path | None,
                      artifact: Artifact) -> tuple[list[LabelledRow], list[LabelledRow], list[str]]:
    from pipeline.classify.labels import load_labelled

    written = load_labelled(sorted(Path(labels_dir).glob("*.jsonl")), artifact.taxonomy)
    ext_files = sorted(Path(external_dir).glob("*.jsonl.gz")) if external_dir and Path(external_dir).is_dir() else []
    external = load_labelled(ext_files, artifact.taxonomy, partial=True) if ext_files else []
    skipped = [] if ext_files else [f"no real-speech corpora in {external_dir}"]
    return written, external, skipped


def compare_benchmark(artifact: Artifact, other: Artifact, labels_dir: Path, external_dir: Path | None,
                      realdata_dir: Path | None, progress: Callable[[str], None] | None = None,
                      held_back_dir: Path | None = None) -> dict[str, Any]:
    """Two artifacts on the same benchmark rows (``artifact``'s held-out split, then the files of
    ``held_back_dir``: :func:`held_back_sets`), per source, with paired intervals of the difference
    (:func:`compare_on_sets`); ``progress`` gets each step."""
    say = progress or (lambda _m: None)
    say("reading the labelled corpora")
    written, external, skipped = _benchmark_inputs(labels_dir, external_dir, artifact)
    sets, more = benchmark_sets(artifact, written, external, realdata_dir)
    kept_apart, not_kept = held_back_sets(held_back_dir, artifact, written)
    sets += kept_apart
    more += not_kept
    return {"model_version": artifact.version, "other_version": other.version,
            "sources": compare_on_sets(artifact, other, sets, progress), "skipped": skipped + more}


def run_benchmark(artifact: Artifact, labels_dir: Path, external_dir: Path | None, realdata_dir: Path | None,
                  calls_dir: Path | None, nlp: Any, progress: Callable[[str], None] | None = None,
                  held_back_dir: Path | None = None) -> dict[str, Any]:
    """Everything the model card reports, recomputed for ``artifact``, per source.

    - per-source macro-F1 (:func:`evaluate_sources`): written held-out in context and one
      sentence at a time, real-speech held-out conversations, shared real text;
    - ``held_back``: the same for each file of ``held_back_dir`` (:func:`held_back_sets`; not in
      the card, which only has what training measured), and ``held_back_calls``: the call level
      (:func:`evaluate_calls`) for each of its folders of labelled calls (``outside-calls/``);
    - call level on the fully labelled calls (:func:`evaluate_calls`);
    - leave-one-writer-out, read from ``cross_writer.json`` beside the artifact (written by
      ``scripts/cross_writer.py``; retraining 15 times is too slow to repeat here).
    """
    say = progress or (lambda _m: None)
    say("reading the labelled corpora")
    written, external, skipped = _benchmark_inputs(labels_dir, external_dir, artifact)
    sources, more = evaluate_sources(artifact, written, external, realdata_dir, progress)
    skipped = more + skipped
    kept_apart, not_kept = held_back_sets(held_back_dir, artifact, written)
    skipped += not_kept
    held_back = {name: m["tasks"] for name, m in evaluate_benchmark(artifact, kept_apart, progress).items()}
    calls = None
    if calls_dir is not None and Path(calls_dir).is_dir():
        say(f"labelled calls in {calls_dir}")
        calls = evaluate_calls(artifact, sorted(Path(calls_dir).glob("*.json")), nlp)
    elif calls_dir is not None:  # said, as every other source left out is ("calls": null had no reason)
        skipped.append(f"no labelled calls folder {calls_dir}: the call-level figures (action-share error) are "
                       "left out")
    held_back_calls = {}
    for folder in sorted(Path(held_back_dir).iterdir()) if held_back_dir and Path(held_back_dir).is_dir() else []:
        files = sorted(folder.glob("*.json")) if folder.is_dir() and not folder.name.startswith(".") else []
        if files:
            say(f"labelled calls kept apart in {folder}")
            try:
                held_back_calls[folder.name] = evaluate_calls(artifact, files, nlp)
            except (PipelineError, KeyError, TypeError, ValueError, OSError) as exc:  # not labelled calls
                skipped.append(f"{folder}: not read as labelled calls ({type(exc).__name__}: {exc})")
    lowo_path = artifact.path / "cross_writer.json"
    lowo = json.loads(lowo_path.read_text(encoding="utf-8")) if lowo_path.is_file() else None
    if lowo is None:
        skipped.append(f"{lowo_path} not found: run scripts/cross_writer.py for leave-one-writer-out figures")
    return {"model_version": artifact.version, "sources": sources, "held_back": held_back, "calls": calls,
            "held_back_calls": held_back_calls, "leave_one_writer_out": lowo, "skipped": skipped}
