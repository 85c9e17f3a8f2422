"""The report package (issue 11): scales to a 50,000-segment call, redraws only changed calls,
follows the artifact's taxonomy (a PDCA taxonomy renders), and has no import cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from pipeline.classify.artifacts import taxonomy_to_dict
from pipeline.classify.labels import Task, Taxonomy
from pipeline.report import charts
from pipeline.report.data import report_taxonomy
from pipeline.report.html import write_report
from pipeline.report.terminal import headline, load_call_rows
from pipeline.schema import CallMetadata, ClassifiedSegment, Prediction, Segment, Source
from pipeline.score import score_call
from pipeline.store import local as store

ROOT = Path(__file__).resolve().parents[1]
PDCA = Taxonomy("pdca", "1", (
    Task("stage", "stage", ("plan", "do", "check", "act", "small-talk"), neutral="small-talk"),
    Task("talk_action", "talk_action", ("talk", "action"), positive="action"),
))


def _write(out: Path, taxonomy: Taxonomy, stages: list[str], call: str = "c1", version: str = "pdca-v1") -> None:
    segs = []
    for i, stage in enumerate(stages):
        s = Segment(call, i, i, "rep" if i % 2 else "customer", i % 2, i * 3.0, i * 3.0 + 2.5, f"line {i}", 0.9,
                    False, False)
        probs = {lbl: (0.8 if lbl == stage else 0.05) for lbl in taxonomy.tasks[0].labels}
        action = i % 3 == 0 and stage != "small-talk"
        segs.append(ClassifiedSegment(s, Prediction(stage, probs), Prediction(
            "action" if action else "talk", {"action": 0.9 if action else 0.1, "talk": 0.1 if action else 0.9})))
    source = Source(f"/in/{call}.json", "transcript", "json", call * 32, 1, call,
                    CallMetadata("Dana", "Acme", date(2026, 11, 2)), source_id=f"{call}.json")
    stamp = store.RunStamp(version, f"{taxonomy.name}/{taxonomy.version}", None)
    key = store.call_key(source.sha256, stamp, "transcript", source.source_id)
    store.write_call(out, key, store.segments_table(key, source, call, segs, taxonomy),
                     store.calls_table(key, source, call, score_call(segs, taxonomy), stamp, None, False, 0.1))


def test_pdca_taxonomy_renders_with_its_own_labels_and_cycle(tmp_path: Path) -> None:
    out, models = tmp_path / "out", tmp_path / "models"
    (models / "pdca-v1").mkdir(parents=True)
    (models / "pdca-v1" / "card.json").write_text(json.dumps({"taxonomy": taxonomy_to_dict(PDCA)}))
    _write(out, PDCA, ["small-talk", "plan", "do", "check", "do", "small-talk"])
    html_path, n = write_report(out, models=models)
    html = html_path.read_text()
    assert n == 1 and "Plan → Do → Check → Act" in html
    assert "Open loop: no Act in this call." in html  # the cycle's last stage never happened
    colours = charts.stage_colours(report_taxonomy(load_call_rows(out), models))
    assert colours["small-talk"] == charts.NEUTRAL_COLOUR and colours["plan"] in html
    assert "Align" not in html and "adjust" not in html.lower().replace("adjusted", "")


def test_taxonomy_is_inferred_when_no_card_is_found(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, PDCA, ["plan", "do", "check", "act", "small-talk"], version="gone")
    tax = report_taxonomy(load_call_rows(out), tmp_path / "no-models")
    assert tax.labels == ("plan", "do", "check", "act", "small-talk") and tax.neutral == "small-talk"
    assert "Plan → Do → Check → Act" in headline(load_call_rows(out), tax)
    # a complete PDCA call is flagged by neither view (the terminal once judged it by Align/Adjust, and
    # flagged it for missing both)
    assert "0 flagged" in headline(load_call_rows(out), tax)
    assert "0 flagged" in headline(load_call_rows(out))


def test_rerun_redraws_only_calls_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    cov = Taxonomy("cycle-of-value", "1", (
        Task("stage", "stage", ("align", "act", "adjust", "other"), neutral="other"),
        Task("talk_action", "talk_action", ("talk", "action"), positive="action")))
    _write(out, cov, ["align", "act", "adjust"], "c1", "v")
    _write(out, cov, ["other", "act"], "c2", "v")
    drawn: list[int] = []
    real = charts.timeline_svg

    def counting(segments, duration_s, tax=charts.COV_TAXONOMY):
        drawn.append(len(segments))
        return real(segments, duration_s, tax)

    monkeypatch.setattr(charts, "timeline_svg", counting)
    write_report(out)
    assert sorted(drawn) == [2, 3]
    first = (out / "report.html").read_text()
    write_report(out)
    assert sorted(drawn) == [2, 3], "unchanged calls are not redrawn"
    _write(out, cov, ["other", "act", "adjust", "align"], "c2", "v")  # c2 changed
    write_report(out)
    assert sorted(drawn) == [2, 3, 4]
    assert first.count("<svg") == (out / "report.html").read_text().count("<svg")


def test_50k_segment_call_renders_under_30_s_and_1_gib(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "report_scale.py"), "--segments", "50000",
                             "--out", str(tmp_path / "out"), "--json"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(figures)
    assert figures["render_s"] < 30 and figures["peak_rss_mib"] < 1024
    assert figures["html_mib"] < 20  # the transcript is summarised, not 50,000 table rows


def test_report_modules_import_one_way() -> None:
    """rules <- data <- charts <- terminal/html: no module imports one to its right (no cycle)."""
    order = ["rules", "data", "charts", "terminal", "html"]
    allowed = {name: set(order[:i]) for i, name in enumerate(order)}
    allowed["terminal"].discard("charts")
    for name in order:
        tree = ast.parse((ROOT / "pipeline" / "report" / f"{name}.py").read_text())
        imported = {n.module.rsplit(".", 1)[-1] for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("pipeline.report.")}
        assert imported <= allowed[name], (name, imported - allowed[name])


def test_a_broken_classifier_card_is_said_when_the_report_falls_back(tmp_path: Path, caplog) -> None:
    """A card that cannot be read made the report infer its stage labels without a word (a reviewer's find)."""
    from pipeline.report.data import report_taxonomy

    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "card.json").write_text("{ not json")
    calls = [{"taxonomy": "cycle-of-value/1", "classifier_version": "v1", "stage_shares": [("align", 1.0)],
              "stage_order": ["align"]}]
    with caplog.at_level("WARNING", logger="callcycle.report"):
        tax = report_taxonomy(calls, tmp_path)
    assert tax.name == "cycle-of-value" and "card of classifier v1" in caplog.text and "cannot be read" in caplog.text
