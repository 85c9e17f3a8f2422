"""The shipped classifiers on labelled rows they were never trained on.

- the fixed held-out split of labels/data (reproduces the model card's held-out metrics);
- held-out AMI meeting series: real speech, annotated against the taxonomy (the real-speech dev set);
- the fully labelled calls in labels/calls (written separately, never used for training);
- real business email sentences from ../shared/realdata (talk vs action only).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MODELS, ROOT

from pipeline.classify.evaluate import evaluate_artifact, evaluate_calls, evaluate_sources, holdout_rows
from pipeline.classify.labels import LabelledRow, load_labelled
from pipeline.config import DEFAULT_ENCODER

#: Regression bars for the shipped model: the measured figures less a margin. The issue's targets
#: (real speech >= 0.80, call action-share error <= 0.04) are not met yet; see the model card.
#: Measured when the bars were set (model of 2026-12-02T08:50): 0.738 / 0.791 and call MAE 0.043; the
#: 050436Z: 0.752 / 0.813 and call MAE 0.043; 001830Z: 0.753 / 0.815 and 0.043; 230619Z: 0.738 /
#: 0.790 and 0.037; the shipped 081718Z: 0.750 / 0.807 and 0.035.
REAL_SPEECH_BARS = {"AMI held-out: hand-labelled": 0.71, "AMI held-out: actions vs statements of 6+ words": 0.77,
                    # the same acts classified one at a time (a list of utterances with no conversation):
                    # 0.736 / 0.794 for the shipped model (230619Z 0.733 / 0.790, 001830Z 0.727 / 0.783;
                    # 0.718 / 0.737 before the one-sentence level)
                    "AMI held-out: hand-labelled (one act at a time)": 0.69,
                    "AMI held-out: actions vs statements of 6+ words (one act at a time)": 0.75}
CALL_MAE_BAR = 0.055
#: The float32 encoder gives a text the same vector in any batch (within 6e-8) and has no CPU-specific
#: int8 kernels, so the benchmark reproduces the card; the int8 encoder before it moved macro-F1 by up
#: to 0.016.
BATCH_TOLERANCE = 0.003


@pytest.fixture(scope="module")
def labelled(artifact) -> list[LabelledRow]:
    return load_labelled(sorted((ROOT / "labels" / "data").glob("*.jsonl")), artifact.taxonomy)


@pytest.fixture(scope="module")
def external(artifact) -> list[LabelledRow]:
    return load_labelled(sorted((ROOT / "labels" / "external").glob("*.jsonl.gz")), artifact.taxonomy, partial=True)


@pytest.fixture(scope="module")
def sources(artifact, labelled, external) -> dict:
    return evaluate_sources(artifact, labelled, external, None)[0]


def test_card_metrics_reproduce_per_source(artifact, sources) -> None:
    """Every held-out figure in the card is what evaluating the shipped model gives now."""
    card = artifact.card["evaluation"]
    for source, metrics in sources.items():
        for task, m in metrics.items():
            assert m["macro_f1"] == pytest.approx(card[source][task]["macro_f1"], abs=BATCH_TOLERANCE), (source, task)
            assert m["n"] == card[source][task]["n"], (source, task)


def test_holdout_quality(sources) -> None:
    """The bars from the real-speech issue: written held-out stage >= 0.90 and talk/action >= 0.95."""
    written = sources["written held-out (in context)"]
    assert written["stage"]["macro_f1"] >= 0.90
    assert written["talk_action"]["macro_f1"] >= 0.94  # the issue asks 0.95; the shipped model has 0.963


def test_real_speech_dev(sources) -> None:
    """Held-out AMI meetings (real speech, split by meeting series): talk/action macro-F1."""
    real = {k: v for k, v in sources.items() if k.startswith("AMI held-out")}
    assert len(real) == 4
    for name, metrics in real.items():
        assert metrics["talk_action"]["n"] >= 300, name
        assert metrics["talk_action"]["macro_f1"] >= REAL_SPEECH_BARS[name], name


def test_holdout_rows_never_trained_on(artifact, labelled, external) -> None:
    held = holdout_rows(artifact, labelled + external)
    assert {r.corpus for r in held} == {"written", "ami"}
    assert {r.split_group for r in held if r.corpus == "ami"} == {"IS1008", "TS3004", "TS3005", "TS3006"}


def test_call_level_action_share_on_unseen_calls(artifact, nlp) -> None:
    files = sorted((ROOT / "labels" / "calls").glob("*.json"))
    assert len(files) >= 20
    result = evaluate_calls(artifact, files, nlp)
    assert result["action_share_mae"] <= CALL_MAE_BAR
    assert result["stage_mix_mae"] <= 0.15
    assert result["interval_coverage"] >= 0.8  # 0.96 measured
    low, high = result["action_share_mae_interval"]  # resampling the calls: 0.022-0.050 measured (081718Z)
    assert low < result["action_share_mae"] < high


def test_real_email_requests_and_commitments(artifact, realdata: Path) -> None:
    lines = (realdata / "text" / "enron-email-intent" / "testSet-qualifiedBatch-fixed.txt").read_text(
        encoding="utf-8", errors="replace").splitlines()
    rows = [LabelledRow(f"e{i}", text, {"talk_action": "action" if label == "Yes" else "talk"}, f"e{i}", "enron")
            for i, (label, _, text) in enumerate(line.partition("\t") for line in lines) if text.strip()]
    metrics = evaluate_artifact(artifact, rows)["tasks"]["talk_action"]
    assert metrics["n"] > 900
    assert metrics["macro_f1"] >= 0.60


def test_model_card_is_complete() -> None:
    card = json.loads((MODELS / (MODELS / "CURRENT").read_text().strip() / "card.json").read_text())
    assert card["data"]["rows_total"] >= 800
    assert card["encoder"]["name"] == DEFAULT_ENCODER
    assert {"written", "ami"} <= set(card["data"]["corpora"])
    for task in ("stage", "talk_action"):
        t = card["tasks"][task]
        assert {"cross_validated", "holdout", "selected"} <= set(t)
        assert "ece" in t["holdout"] and t["holdout"]["confusion"]
    assert any(k.startswith("AMI held-out") for k in card["evaluation"])
    assert {"scikit-learn", "spacy", "skops", "python"} <= set(card["libraries"])


def test_per_source_figures_carry_an_interval_over_conversations(sources) -> None:
    """Each benchmark figure comes with a 95% interval from resampling whole conversations."""
    for source, tasks in sources.items():
        for task, m in tasks.items():
            low, high = m["macro_f1_interval"]
            assert low <= high, (source, task)
            assert low - 0.01 <= m["macro_f1"] <= high + 0.01, (source, task)
            assert m["interval_groups"] >= 2
    ami = sources["AMI held-out: hand-labelled"]["talk_action"]
    assert ami["interval_groups"] == 16  # the held-out series' meetings, not their acts


def test_a_model_compared_with_itself_differs_by_nothing(artifact, labelled, external) -> None:
    from pipeline.classify.benchmark import BenchmarkSet
    from pipeline.classify.evaluate import compare_on_sets

    held = [r for r in holdout_rows(artifact, labelled + external) if r.corpus == "written"][:150]
    bench = BenchmarkSet("written sample", held, list(range(len(held))), True)
    result = compare_on_sets(artifact, artifact, [bench])["written sample"]
    for task, d in result.items():
        assert d["difference"] == 0.0 and d["interval"] == [0.0, 0.0], task
        assert d["a"] == d["b"] > 0.5


def test_evaluate_names_the_worst_writer(artifact) -> None:
    """`callcycle evaluate` prints leave-one-writer-out as mean / worst and who the worst writer is."""
    import io

    from rich.console import Console

    from cli.models import _print_benchmark

    lowo = json.loads((MODELS / artifact.version / "cross_writer.json").read_text())
    worst = min(lowo["writers"], key=lambda w: lowo["writers"][w]["in_context"]["stage"])
    out = io.StringIO()
    _print_benchmark(Console(file=out, width=400, color_system=None), artifact,
                     {"sources": {}, "leave_one_writer_out": lowo, "skipped": {}})
    row = next(line for line in out.getvalue().splitlines() if "leave-one-writer-out, in context" in line)
    summary = lowo["summary"]["stage (in_context)"]
    assert f"{summary['mean']:.3f} / worst {summary['worst']:.3f} ({worst})" in row


def test_two_writers_filling_the_embedding_cache_at_once_both_publish(tmp_path: Path, monkeypatch, caplog) -> None:
    """Parallel leave-one-writer-out runs fill the sentence-vector cache at the same moment: each
    writes under its own temporary name (they once shared one, and the later rename failed), and
    the cache file left behind reads back with a whole writer's vectors."""
    import threading

    import numpy as np

    from pipeline.classify import train
    from pipeline.classify.train import embed_texts

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    both_encoding, both_written = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30)
    savez = np.savez

    def savez_then_wait(*args, **kwargs):  # both temporaries written before either is renamed
        savez(*args, **kwargs)
        both_written.wait()

    monkeypatch.setattr(train.np, "savez", savez_then_wait)

    class Encoder:  # the attributes embed_texts reads from a loaded encoder
        name, batch_size, dimension, info = "probe", 8, 4, {"files": {"model.onnx": "0" * 64}}

        def encode(self, texts):
            both_encoding.wait()  # neither has written the cache yet
            return np.asarray([[len(t), 1.0, 2.0, 3.0] for t in texts], dtype=np.float32)

    results: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    def fill(name: str, texts: list[str]) -> None:
        try:
            results[name] = embed_texts(Encoder(), texts)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=("a", ["one", "three"])),
               threading.Thread(target=fill, args=("b", ["seven", "eleven!"]))]
    with caplog.at_level("WARNING", logger="callcycle"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert "could not write the embedding cache" not in caplog.text
    assert errors == [] and results["a"][:, 0].tolist() == [3, 5] and results["b"][:, 0].tolist() == [5, 7]
    cache = list((tmp_path / "callcycle" / "embeddings").iterdir())
    assert len(cache) == 1 and cache[0].suffix == ".npz"  # no temporary left behind
    with np.load(cache[0]) as data:
        assert data["vectors"].shape == (2, 4)


def test_a_damaged_embedding_cache_is_encoded_again(tmp_path: Path, monkeypatch, caplog) -> None:
    """A cache file whose bytes were damaged (a torn write once left one) costs an encode, not the training run."""
    import numpy as np

    from pipeline.classify.train import embed_texts

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    class Encoder:
        name, batch_size, dimension, info = "probe", 8, 2, {"files": {"model.onnx": "1" * 64}}
        calls = 0

        def encode(self, texts):
            Encoder.calls += 1
            return np.asarray([[len(t), 0.5] for t in texts], dtype=np.float32)

    texts = [f"sentence number {i}" for i in range(500)]
    first = embed_texts(Encoder(), texts)
    cache = next((tmp_path / "callcycle" / "embeddings").iterdir())
    data = bytearray(cache.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # inside the stored arrays: the zip's CRC check fails
    cache.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="callcycle"):
        again = embed_texts(Encoder(), texts)
    assert "ignoring an unreadable embedding cache" in caplog.text and Encoder.calls == 2
    assert np.array_equal(first, again)
    assert np.array_equal(embed_texts(Encoder(), texts), first) and Encoder.calls == 2  # rewritten whole


def test_a_partial_leave_one_writer_out_says_so(artifact) -> None:
    """Until every writer is in, the card and `callcycle evaluate` say how many writers the figures cover
    and which are still to run (scripts/cross_writer.py writes such a file after each writer)."""
    import io

    from rich.console import Console

    from cli.models import _print_benchmark
    from pipeline.classify.train import render_card_markdown

    entry = {"rows": 10, "in_context": {"stage": 0.9, "talk_action": 0.95},
             "one_sentence_at_a_time": {"stage": 0.85, "talk_action": 0.93}}
    lowo = {"model_recipe_from": artifact.version, "scope": "the full recipe", "partial": True,
            "writers": {"c2": entry}, "writers_missing": ["c7", "lead"],
            "summary": {f"{t} ({v})": {"mean": entry[v][t], "worst": entry[v][t]}
                        for t in ("stage", "talk_action") for v in ("in_context", "one_sentence_at_a_time")}}
    out = io.StringIO()
    _print_benchmark(Console(file=out, width=400, color_system=None), artifact,
                     {"sources": {}, "leave_one_writer_out": lowo, "skipped": {}})
    assert "1 of 3 writers so far" in out.getvalue() and "0.900 / worst 0.900 (c2)" in out.getvalue()
    card = render_card_markdown(artifact.card, lowo)
    assert "Partial: 1 of 3 writers done; not yet run: c7, lead** (`make cross-writer`" in card


def test_leave_one_writer_out_runs_add_up_without_losing_a_finished_run() -> None:
    """scripts/cross_writer.py saves after every writer through merged_results: partial runs of the same
    recipe and data add up, a file of every writer is never replaced by part of a run, and a partial file of
    other data is not mixed in."""
    from pipeline.classify.crosswriter import is_complete, merged_results

    writers, tasks = ["c1", "c2", "lead"], ["stage", "talk_action"]

    def entry(score: float) -> dict:
        return {"rows": 5, "in_context": {"stage": score, "talk_action": score},
                "one_sentence_at_a_time": {"stage": score - 0.1, "talk_action": score - 0.1}}

    run = {"model_recipe_from": "m", "options": {"c": 4.0}, "scope": "the full recipe", "data": "d1"}
    first = merged_results(None, {**run, "writers": {"c2": entry(0.9)}}, writers, tasks, False)
    assert first["partial"] and first["writers_missing"] == ["c1", "lead"]
    assert first["summary"]["stage (in_context)"] == {"mean": 0.9, "worst": 0.9}
    # a later run of the same recipe and data adds its writers; the file lists them in corpus order
    second = merged_results(first, {**run, "writers": {"lead": entry(0.8)}}, writers, tasks, False)
    assert list(second["writers"]) == ["c2", "lead"] and second["writers_missing"] == ["c1"]
    assert second["summary"]["stage (in_context)"]["worst"] == 0.8
    whole = merged_results(second, {**run, "writers": {"c1": entry(0.95)}}, writers, tasks, False)
    assert "partial" not in whole and is_complete(whole, writers)
    # a finished file is kept against part of a run, even of another recipe or scope ...
    assert merged_results(whole, {**run, "writers": {"c1": entry(0.5)}}, writers, tasks, False) is None
    assert merged_results(whole, {**run, "scope": "text level only", "writers": {"c1": entry(0.5)}},
                          writers, tasks, False) is None
    # ... and replaced by a whole new run
    again = {**run, "data": "d2", "writers": {w: entry(0.7) for w in writers}}
    assert merged_results(whole, again, writers, tasks, True)["data"] == "d2"
    # a partial file of other labelled data is not mixed into this run's
    other = merged_results(first, {**run, "data": "d2", "writers": {"c1": entry(0.6)}}, writers, tasks, False)
    assert list(other["writers"]) == ["c1"] and other["data"] == "d2"


def test_written_rows_kept_apart_are_sources_of_the_benchmark(artifact) -> None:
    """`callcycle evaluate` and `compare --benchmark` read each file of labels/held-back as a source of
    its own (every row, in context): the blind meetings writer c18 gives the figures the README
    reports for the shipped model (stage 0.736, talk/action 0.875)."""
    from pipeline.classify.evaluate import evaluate_artifact, evaluate_benchmark, held_back_sets

    found, skipped = held_back_sets(ROOT / "labels" / "held-back", artifact)
    sets = {s.name: s for s in found}
    assert skipped == []
    meetings = sets["kept apart, never trained on: corpus_c18-meetings.jsonl"]
    assert meetings.in_context and len(meetings.scored) == len(meetings.rows) == 611
    got = evaluate_benchmark(artifact, [meetings])[meetings.name]["tasks"]
    alone = evaluate_artifact(artifact, meetings.rows)["tasks"]
    assert got["stage"]["macro_f1"] == alone["stage"]["macro_f1"]
    if artifact.version == "cycle-of-value-20261206T081718Z-c02d4131":  # the README's figures are this model's
        assert got["stage"]["macro_f1"] == pytest.approx(0.736, abs=0.0006)
        assert got["talk_action"]["macro_f1"] == pytest.approx(0.875, abs=0.0006)
    assert held_back_sets(ROOT / "no-such-folder", artifact) == ([], [])
    # copied into the training corpus (as the folder's README says how to), a file is no longer kept apart
    found, skipped = held_back_sets(ROOT / "labels" / "held-back", artifact, meetings.rows[:3])
    assert meetings.name not in {s.name for s in found} and "corpus_c18-meetings.jsonl" in skipped[0]


def test_labelled_calls_kept_apart_are_printed_with_the_benchmark(artifact, nlp) -> None:
    """`callcycle evaluate` scores each folder of labelled calls in labels/held-back (the six outside
    calls) and prints its action-share error: the README's 0.069 for the shipped model."""
    import io

    from rich.console import Console

    from cli.models import _print_benchmark
    from pipeline.classify.evaluate import evaluate_calls

    kept = evaluate_calls(artifact, sorted((ROOT / "labels" / "held-back" / "outside-calls").glob("*.json")), nlp)
    assert kept["calls"] == 6
    if artifact.version == "cycle-of-value-20261206T081718Z-c02d4131":
        assert kept["action_share_mae"] == pytest.approx(0.069, abs=0.0006)
    out = io.StringIO()
    _print_benchmark(Console(file=out, width=400, color_system=None), artifact,
                     {"sources": {}, "held_back_calls": {"outside-calls": kept}, "skipped": []})
    line = next(x for x in out.getvalue().splitlines() if "kept apart" in x)
    assert "(outside-calls, 6)" in line and f"{kept['action_share_mae']:.3f}" in line and "in context" in line


def test_the_benchmark_says_why_the_call_level_figures_are_missing(tmp_path: Path) -> None:
    """With no labelled calls folder beside $CALLCYCLE_LABELS, `evaluate --json` gave "calls": null with no
    reason among the skipped sources (a tester's note, stop 57)."""
    from pipeline.classify.artifacts import load_artifact
    from pipeline.classify.evaluate import run_benchmark

    (tmp_path / "data").mkdir()
    result = run_benchmark(load_artifact(ROOT / "models"), tmp_path / "data", tmp_path / "external", None,
                           tmp_path / "calls", None)
    assert result["calls"] is None
    assert any(f"no labelled calls folder {tmp_path / 'calls'}" in reason for reason in result["skipped"])
