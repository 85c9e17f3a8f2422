"""Leave-one-writer-out evaluation: how well do the classifiers generalise to someone else's phrasing?

Each ``labels/data/corpus_*.jsonl`` file was written by a different writer. For each writer,
train the shipped recipe (the options recorded in the current model card, real-speech corpora
included) on every other writer, and test on the unseen writer's conversations — in context
and one sentence at a time. This is a stricter proxy than the grouped held-out split for
"conversations written by people we never saw", because the test writer's habits are never
seen in training.

The result is written next to the current model (``models/<version>/cross_writer.json``), where
``callcycle evaluate`` reports it beside the other sources, and the model's ``card.md`` is
re-rendered with a leave-one-writer-out section (``card.json`` is left as trained).

The results file (``--json``, and the model's ``cross_writer.json``) is rewritten after each
writer, so a run that stops part-way keeps what it finished. Until every writer is in, the model's
file says so (``"partial": true``, ``writers_missing``; its summary covers the writers done), and so
do the card and ``callcycle evaluate``. A later run continues from the model's own partial file by
itself (``make cross-writer``); ``--resume FILE`` adds the writers of another such file (e.g. a
``--writers`` run's ``--json``). Writers are only carried over from runs of the same model, recipe
and labelled data (``pipeline.classify.crosswriter``, which also keeps a file of every writer from
being replaced by part of a run). Two runs for one model at once (say ``--writers c1`` and
``--writers c2``) each merge their save into the model's file under a lock
(``$XDG_CACHE_HOME/callcycle/locks``), so neither drops the other's writers; on 2 cores they are
no faster than one after the other. A ``--text-level`` run writes its ``--json`` only.

Usage: python scripts/cross_writer.py [--models models] [--writers c1,c2] [--json FILE] [--resume FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.atomic import exclusive_lock, write_bytes_atomic  # noqa: E402
from pipeline.classify.artifacts import current_version  # noqa: E402
from pipeline.classify.crosswriter import earlier_writers, is_complete, merged_results, same_run, summarise  # noqa: E402
from pipeline.classify.encoder import load_encoder  # noqa: E402
from pipeline.classify.labels import data_hash, load_labelled, load_taxonomy  # noqa: E402
from pipeline.classify.train import (  # noqa: E402
    TrainConfig,
    embed_texts,
    evaluate_rows,
    render_card_markdown,
    train_models,
)
from pipeline.paths import cache_dir  # noqa: E402


def config_from_card(card: dict) -> TrainConfig:
    """The TrainConfig a card was trained with (unknown keys ignored)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in card.get("training", {}).items() if k in fields}
    values.setdefault("speech_copies", 0)  # cards from before the option trained without copies
    values.setdefault("alone_corpora", ())  # ... and with one context level for everything
    values.setdefault("dedupe_short_in_context", False)  # ... and dropped every repeat of a short reply
    values["alone_corpora"] = tuple(values["alone_corpora"])
    if "corpus_weights" in values:
        values["corpus_weights"] = tuple(tuple(x) for x in values["corpus_weights"])
    return TrainConfig(**values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--writers", default=None, help="comma-separated writer ids (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--text-level", action="store_true",
                        help="fit the text level only (no context level): about a quarter of the time per writer; "
                             "the result says so")
    parser.add_argument("--resume", type=Path, default=None,
                        help="results of an earlier run of the same model and recipe: its writers are kept, not rerun")
    args = parser.parse_args()
    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    version = current_version(args.models)
    if version is None:
        raise SystemExit(f"no models/CURRENT in {args.models}")
    card = json.loads((args.models / version / "card.json").read_text())
    cfg = dataclasses.replace(config_from_card(card), holdout_percent=0)
    if args.text_level:
        cfg = dataclasses.replace(cfg, context=False)
    files = sorted((ROOT / "labels" / "data").glob("corpus_*.jsonl"))
    rows = {f.stem.removeprefix("corpus_"): load_labelled([f], taxonomy) for f in files}
    external_files = sorted((ROOT / "labels" / "external").glob("*.jsonl.gz"))
    external = load_labelled(external_files, taxonomy, partial=True) if external_files else []
    wanted = args.writers.split(",") if args.writers else list(rows)
    unknown = sorted(set(wanted) - set(rows))
    if unknown:
        raise SystemExit(f"unknown writer(s) {', '.join(unknown)}; known: {', '.join(rows)}")
    data = data_hash([r for rs in rows.values() for r in rs] + external)
    results: dict[str, Any] = {"model_recipe_from": version, "options": dataclasses.asdict(cfg),
                               "scope": "text level only (context level not fitted)" if args.text_level
                               else "the full recipe", "data": data, "writers": {}}
    tasks = [t.name for t in taxonomy.tasks]
    everyone = not args.writers
    # only runs of the full recipe speak for the model: a text-level run writes its --json alone
    model_file = None if args.text_level else args.models / version / "cross_writer.json"

    def read(path: Path | None) -> dict[str, Any] | None:
        try:
            value = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    on_disk = read(model_file)
    if everyone and not args.resume and is_complete(on_disk, rows) and same_run(on_disk, results):
        raise SystemExit(f"{model_file} already holds every writer for this model and data; "
                         "delete it to run them again")
    if args.resume:
        earlier = read(args.resume)
        if earlier is None or not same_run(earlier, results):
            raise SystemExit(f"{args.resume} was made with another model, recipe or labelled data (or does not "
                             "read): delete it, or run without --resume")
        results["writers"] = {w: e for w, e in earlier["writers"].items() if w in wanted}
        print(f"resumed {len(results['writers'])} writer(s) from {args.resume}: {', '.join(results['writers'])}")
    if on_disk is not None and on_disk.get("partial"):  # carry on where the last partial run stopped
        here = {w: e for w, e in earlier_writers(on_disk, results).items() if w in wanted}
        if here:
            results["writers"] = {**here, **results["writers"]}
            print(f"continuing from {model_file}: writer(s) {', '.join(here)} already done")
    encoder = load_encoder(args.models / "encoders" / cfg.encoder) if cfg.encoder else None

    def save(final: bool) -> None:
        done = {w: results["writers"][w] for w in wanted if w in results["writers"]}  # the writers' order
        out = {**results, "writers": done, **({} if final else {"partial": True})}
        if args.json:
            write_bytes_atomic(args.json, (json.dumps(out, indent=2) + "\n").encode())
        if model_file is None:
            return
        # two runs for one model (e.g. different --writers) take turns to read, merge and write its file,
        # so neither drops the writers the other saved in between
        with exclusive_lock(cache_dir("locks") / f"cross-writer-{version}.lock"):
            whole = merged_results(read(model_file), results, list(rows), tasks, final and everyone)
            if whole is None:
                return  # a finished run of every writer is not replaced by a part of one
            write_bytes_atomic(model_file, (json.dumps(whole, indent=2) + "\n").encode())
            # The card shows it too; card.json (the training record) is not touched.
            write_bytes_atomic(args.models / version / "card.md", render_card_markdown(card, whole).encode("utf-8"))

    if model_file is not None and is_complete(on_disk, rows) and not everyone and not args.json:
        print(f"note: {model_file} holds every writer and is kept; this run's figures are printed only "
              "(pass --json FILE to keep them)")
    for writer in wanted:
        if writer in results["writers"]:
            continue
        started = time.perf_counter()
        train = [r for w, rs in rows.items() if w != writer for r in rs] + external
        result = train_models(train, taxonomy, cfg, version=f"lowo-{writer}", models_root=args.models)
        test = rows[writer]
        vectors = embed_texts(encoder, [r.text for r in test]) if encoder is not None else None
        in_context = evaluate_rows(result.model, test, taxonomy, vectors)
        alone = evaluate_rows(result.model, test, taxonomy, vectors, standalone=True)
        entry = {"rows": len(test), "seconds": round(time.perf_counter() - started, 1),
                 "in_context": {t: m["macro_f1"] for t, m in in_context.items()},
                 "one_sentence_at_a_time": {t: m["macro_f1"] for t, m in alone.items()}}
        results["writers"][writer] = entry
        print(f"held-out writer {writer:5s} ({len(test):4d} rows): "
              + ", ".join(f"{t} {v:.3f}/{entry['one_sentence_at_a_time'][t]:.3f}"
                          for t, v in entry["in_context"].items())
              + " (in context / alone)", flush=True)
        save(final=False)
    results["summary"] = summarise(results["writers"], tasks)
    for name, stats in results["summary"].items():
        print(f"{name}: mean {stats['mean']:.3f}, worst {stats['worst']:.3f}")
    save(final=True)


if __name__ == "__main__":
    main()
