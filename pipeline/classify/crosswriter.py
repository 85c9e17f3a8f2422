"""Leave-one-writer-out results: what ``models/<version>/cross_writer.json`` holds, and how runs add up.

``scripts/cross_writer.py`` retrains a model's recipe once per writer of the written corpus and scores
the unseen writer (about 8 minutes a writer on 2 cores, so a run of every writer often spans
sessions). After each writer it saves what it has; this module decides what the model's file then
holds, so that the rule lives in one place and is tested without training anything:

- a file holding **every writer** is replaced only by another run of every writer;
- otherwise the file holds every writer done so far **by runs of the same recipe on the same data**
  (the run keys :data:`RUN_KEYS` agree), marked ``"partial": true`` with ``writers_missing``, and its
  summary covers the writers done; a partial file of other data or another recipe is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["RUN_KEYS", "VIEWS", "same_run", "is_complete", "summarise", "merged_results", "earlier_writers"]

#: What makes two runs' per-writer figures comparable: the model whose recipe was retrained, its
#: options, the scope (full recipe or text level only) and the fingerprint of the labelled data.
RUN_KEYS = ("model_recipe_from", "options", "scope", "data")
#: How each held-out writer is read: as conversations, and one sentence at a time.
VIEWS = ("in_context", "one_sentence_at_a_time")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def same_run(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two results files were made by the same recipe on the same data (:data:`RUN_KEYS`)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return all(_plain(a.get(k)) == _plain(b.get(k)) for k in RUN_KEYS)


def is_complete(results: dict[str, Any] | None, writers: Iterable[str]) -> bool:
    """Whether ``results`` is a finished run: not marked partial, and holding every one of ``writers``."""
    if not isinstance(results, dict) or results.get("partial") or not isinstance(results.get("writers"), dict):
        return False
    return set(writers) <= set(results["writers"])


def summarise(writers: dict[str, Any], tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean and worst macro-F1 per task and view over the writers given (``"<task> (<view>)"`` keys)."""
    summary: dict[str, dict[str, float]] = {}
    for view in VIEWS:
        for task in tasks:
            scores = [entry[view][task] for entry in writers.values() if task in entry.get(view, {})]
            if scores:
                summary[f"{task} ({view})"] = {"mean": float(np.mean(scores)), "worst": float(min(scores))}
    return summary


def earlier_writers(earlier: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any]:
    """The per-writer entries of an earlier results file that ``run`` may keep (same run, else none)."""
    if not same_run(earlier, run) or not isinstance(earlier.get("writers"), dict):  # type: ignore[union-attr]
        return {}
    return dict(earlier["writers"])  # type: ignore[index]


def merged_results(on_disk: dict[str, Any] | None, run: dict[str, Any], writers: Sequence[str],
                   tasks: Sequence[str], every_writer_run: bool) -> dict[str, Any] | None:
    """What the model's ``cross_writer.json`` should hold after ``run`` saved its progress.

    Args:
        on_disk: the file as it is now (``None`` when absent or unreadable).
        run: this run's results (:data:`RUN_KEYS` and ``writers``: writer -> entry).
        writers: every writer of the corpus, in the order the file lists them.
        tasks: the taxonomy's task names.
        every_writer_run: ``run`` is a finished run of every writer.

    Returns:
        The new contents, or ``None`` to leave the file as it is (it holds a finished run and this is
        not one).
    """
    if is_complete(on_disk, writers) and not every_writer_run:
        return None
    earlier = earlier_writers(on_disk, run) if isinstance(on_disk, dict) and on_disk.get("partial") else {}
    known = {**earlier, **run.get("writers", {})}
    held = {w: known[w] for w in writers if w in known}
    missing = [w for w in writers if w not in held]
    return {**{k: run[k] for k in RUN_KEYS if k in run}, "writers": held, "summary": summarise(held, tasks),
            **({"partial": True, "writers_missing": missing} if missing else {})}
