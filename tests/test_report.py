"""The managers' HTML report, opened in real headless Chromium.

Scores come from a real Prefect flow run over transcripts (one with hostile markup in it);
the page is checked against the Parquet data it was built from.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MODELS, ROOT, require_tool
from typer.testing import CliRunner

from cli import app
from flows.score_flow import run_scoring
from pipeline.errors import InputError
from pipeline.report.html import call_flags, load_report_data, rep_summaries, talk_heavy_stretch
from pipeline.report.rules import cycle_status, format_share
from pipeline.report.terminal import load_call_rows
from pipeline.store import local as store

HOSTILE_SCRIPT = "<script>window.__pwned = 'script'; document.title = 'pwned'</script>"
HOSTILE_IMG = "<img src=x onerror=\"window.__pwned = 'img'\">"

CALLS = {
    "2026-11-02__dana__northwind__discovery.json": [
        ("Dana", "What would success look like for your team by the end of the quarter?"),
        ("Lee", "Honestly we just need invoices out on time, our current process is three spreadsheets."),
        ("Dana", "Last time we tried a pilot it slipped because nobody owned the data export."),
        ("Lee", "Yes, that was painful, the export broke twice."),
        ("Dana", "So I'll send you the pilot plan by Thursday, and can you book the IT review for Monday?"),
        ("Lee", "Sure, I'll book it for Monday at ten."),
    ],
    "2026-11-03__ben__lakeside__checkin.json": [
        ("Ben", "Hey, how was the weekend?"),
        ("Kim", "Good, we went hiking, the weather was great."),
        ("Ben", "I think the market is really tough right now, everybody says budgets are frozen."),
        ("Kim", "Yeah, and our director keeps changing his mind about everything " + HOSTILE_SCRIPT),
        ("Ben", "We should probably catch up again at some point " + HOSTILE_IMG),
        ("Kim", "Sure, sometime, thanks, bye."),
    ],
    "2026-11-10__dana__harbor__renewal.json": [
        ("Dana", "Before we talk renewal, what changed in your priorities this year?"),
        ("Ray", "We doubled the number of stores and support tickets went up."),
        ("Dana", "Looking back, the onboarding we did last spring did not stick, that's on us."),
        ("Dana", "If you sign by Friday I can add two training sessions at no cost."),
        ("Ray", "Deal, send the contract today."),
    ],
}


@pytest.fixture(scope="module")
def scored_out(tmp_path_factory, prefect_harness) -> Path:
    folder = tmp_path_factory.mktemp("report-in")
    for name, turns in CALLS.items():
        (folder / name).write_text(json.dumps({"turns": [{"speaker": s, "text": t} for s, t in turns]}))
    # a rep name with markup in it, via the sidecar
    (folder / "calls.csv").write_text(
        "path,rep,customer,date\n2026-11-03__ben__lakeside__checkin.json,<b>Ben</b>,Lakeside <i>Clinics</i>,2026-11-03\n")
    out = tmp_path_factory.mktemp("report-out")
    summary = run_scoring([str(folder)], out_dir=str(out), models=str(MODELS))
    assert summary.count("scored") == 3, summary.outcomes
    return out


def test_flags_and_rep_summaries_follow_the_stored_scores(scored_out: Path) -> None:
    calls = load_call_rows(scored_out)
    reps = {r["rep"]: r for r in rep_summaries(calls)}
    assert reps["dana"]["n_calls"] == 2 and reps["<b>Ben</b>"]["n_calls"] == 1
    dana_shares = [c["action_share"] for c in calls if c["rep"] == "dana"]
    assert reps["dana"]["median_action_share"] == pytest.approx(sum(dana_shares) / 2)  # the median of two
    assert set(reps["dana"]["trend"]) == {"2026-W45", "2026-W46"}
    for c in calls:
        flags = call_flags(c)
        # an open loop is Align and Act with no Adjust (README); a call missing Align too is partial
        open_loop = {"align", "act"} <= set(c["stages_present"]) and "adjust" not in c["stages_present"]
        assert ("Open loop: nothing was reviewed or adjusted." in flags) == open_loop
        assert cycle_status(c) == ("complete" if c["cycle_complete"] else "open loop" if open_loop else "partial")
    data = load_report_data(scored_out, since=dt.date(2026, 11, 5))
    assert [c["call_id"] for c in data.calls] == ["2026-11-10__dana__harbor__renewal"]
    assert load_report_data(scored_out, rep="DANA").calls
    with pytest.raises(InputError, match="No rep named 'nobody'"):  # not an empty report
        load_report_data(scored_out, rep="nobody")


def test_a_lopsided_interval_is_shown_as_its_range() -> None:
    """Near 0% or 100% the interval is lopsided, and "± half its width" would misstate it."""
    assert format_share({"action_share": 0.41, "action_share_low": 0.35, "action_share_high": 0.47}) == "41% ± 6"
    assert format_share({"action_share": 0.0, "action_share_low": 0.0, "action_share_high": 0.068}) == "0% (0–7)"
    assert format_share({"action_share": 0.56, "action_share_low": 0.17, "action_share_high": 1.0}) == "56% (17–100)"
    # the terminal's narrow column keeps "± half its width", as its legend says
    assert format_share({"action_share": 0.0, "action_share_low": 0.0, "action_share_high": 0.068},
                        compact=True) == "0%±3"


def test_talk_heavy_stretch_picks_longest_talk_run() -> None:
    segs = [{"talk_action": ta, "duration_s": d, "start_s": i * 10.0, "end_s": i * 10.0 + d, "speaker": sp, "text": str(i)}
            for i, (ta, d, sp) in enumerate([("talk", 3, "a"), ("action", 2, "b"), ("talk", 4, "a"), ("talk", 5, "b"), ("action", 1, "a")])]
    stretch = talk_heavy_stretch(segs)
    assert stretch["speech_s"] == 9 and stretch["speakers"] == ["a", "b"] and stretch["first_text"] == "2"
    assert talk_heavy_stretch([]) is None


def _browser(playwright):
    chromium = require_tool("chromium", "apt-get install chromium")
    return playwright.chromium.launch(
        executable_path=chromium,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])


def test_report_in_headless_chromium(scored_out: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    html = tmp_path / "team report.html"
    cli = subprocess.run([sys.executable, "-m", "cli", "report", str(scored_out), "--html", str(html)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "Report with 3 calls" in cli.stdout
    source = html.read_text()
    # no attribute or style that could load anything (SVG namespace declarations are not loads)
    for needle in ('src="http', 'href="http', "href='http", "@import", "<link", "<iframe"):
        assert needle not in source, needle
    assert not re.search(r"url\((?!#)", source), "only in-page url(#id) references are allowed"

    calls = {c["call_id"]: c for c in load_call_rows(scored_out)}
    segments = store.read_dataset(scored_out, "segments").to_pylist()
    with sync_api.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(html.as_uri())
        page.wait_for_load_state("load")

        # nothing left the page: the only request is the file itself
        assert requests == [html.as_uri()]
        assert errors == []
        # hostile transcript text neither ran nor became elements; it is shown as text
        assert page.evaluate("window.__pwned") is None
        assert page.title().startswith("callcycle report")
        assert page.locator("script").count() == 1  # only the report's own sorting script
        assert page.locator("img").count() == 0
        assert page.locator("main b:text-is('Ben')").count() == 0
        transcript = page.locator("section.scorecard[data-call-id='2026-11-03__ben__lakeside__checkin'] details.transcript")
        transcript.locator("summary").click()
        text = transcript.inner_text()
        assert "<script>window.__pwned" in text and "onerror=" in text
        assert page.get_by_text("<b>Ben</b>").count() >= 1

        # each scorecard shows the stored figures
        assert page.locator("section.scorecard").count() == 3
        for call_id, c in calls.items():
            card = page.locator(f"section.scorecard[data-call-id='{call_id}']")

            def field(name: str, card=card) -> str:
                return card.locator(f"[data-field='{name}']").inner_text().strip()

            expect_share = "—" if c["action_share"] is None else f"{c['action_share']:.0%}"
            if c["action_share"] is not None and c.get("action_share_low") is not None:
                low, high, share = c["action_share_low"], c["action_share_high"], c["action_share"]
                if abs((share - low) - (high - share)) >= 0.02:  # lopsided: the range, not "± half"
                    expect_share += f" ({low * 100:.0f}–{high * 100:.0f})"
                else:
                    expect_share += f" ± {(high - low) / 2 * 100:.0f}"
            assert field("action_share") == expect_share
            ratio = c["talk_action_ratio"]
            assert field("talk_action_ratio") == ("—" if ratio is None else f"{ratio:.1f}")
            assert field("rep") == c["rep"] and field("customer") == c["customer"]
            assert field("call_date") == str(c["call_date"])
            key = field("timeline_key")  # the timeline's colours are named on the page
            assert all(stage in key for stage in ("align", "act", "adjust", "other")), key
            assert (card.locator("[data-field='one_voice']").count() == 1) == (c["n_speakers"] == 1)
            assert field("n_speakers") == str(c["n_speakers"])
            mix = dict(c["stage_shares"])
            assert field("stage_mix") == " · ".join(f"{s} {mix.get(s, 0):.0%}" for s in ("align", "act", "adjust", "other"))
            for sp in c["speakers"]:
                row = card.locator(f"table.speakers tr[data-speaker='{sp['speaker']}']")
                assert row.locator("td[data-field='talk_share']").inner_text() == f"{sp['talk_share']:.0%}"
                assert row.locator("td[data-field='questions']").inner_text() == str(sp["questions"])
                assert row.locator("td[data-field='role']").inner_text() == (sp.get("role") or "—")
            n_actions = sum(s["talk_action"] == "action" for s in segments if s["call_id"] == call_id)
            assert card.locator("table.commitments tbody tr").count() == n_actions
            if cycle_status(c) == "open loop":
                assert "Open loop" in field("cycle")
            elif cycle_status(c) == "partial":
                assert field("cycle").startswith("Partial cycle: no ")

        # the calls table sorts by action share when its header is clicked
        page.locator("#call-table th", has_text="action share").click()
        ordered = page.locator("#call-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.callId)")
        by_share = sorted(calls, key=lambda k: -1 if calls[k]["action_share"] is None else calls[k]["action_share"])
        assert ordered == by_share
        # and by date, which is text: twice gives newest first (a date once parsed as the number 2026)
        for _ in range(2):
            page.locator("#call-table th", has_text="date").first.click()
        ordered = page.locator("#call-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.callId)")
        by_date = sorted(calls, key=lambda k: (str(calls[k]["call_date"] or ""), k), reverse=True)
        assert [str(calls[k]["call_date"]) for k in ordered] == [str(calls[k]["call_date"]) for k in by_date]

        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        browser.close()


def test_report_cli_errors_without_data(tmp_path: Path) -> None:
    cli = subprocess.run([sys.executable, "-m", "cli", "report", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "callcycle run" in cli.stdout + cli.stderr


def test_terminal_summary_shows_the_report_headline(scored_out: Path) -> None:
    import statistics

    cli = subprocess.run([sys.executable, "-m", "cli", "summary", str(scored_out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert cli.returncode == 0, cli.stderr
    calls = load_call_rows(scored_out)
    median = statistics.median(c["action_share"] for c in calls if c["action_share"] is not None)
    complete = sum(bool(c["cycle_complete"]) for c in calls)
    flagged = sum(bool(call_flags(c)) for c in calls)
    assert f"3 calls · median action share {median:.0%} · {complete}/3 complete" in cli.stdout
    assert f"{flagged} flagged for attention" in cli.stdout
    assert "<b>Ben</b>" in cli.stdout  # rich markup in data is shown literally, not interpreted
    # each call's share comes with its stored 90% interval (issue 8: "41% ± 6"), as in the HTML report
    for call in calls:
        assert call["action_share_low"] is not None and call["action_share_high"] is not None
        assert format_share(call, compact=True) in cli.stdout
        assert "±" in format_share(call, compact=True) or call["action_share"] is None


def _row(rep: str, share: float, low: float, high: float, day: int = 2) -> dict:
    """A stored ``calls`` row with what the flag rules read (every stage present, no long monologue)."""
    return {"call_id": f"{rep}-{share}-{day}", "rep": rep, "call_date": dt.date(2026, 11, day),
            "action_share": share, "action_share_low": low, "action_share_high": high,
            "stages_present": ["align", "act", "adjust"], "cycle_complete": True,
            "stage_shares": [("align", 0.3), ("act", 0.3), ("adjust", 0.3), ("other", 0.1)], "speakers": []}


def test_a_call_is_flagged_only_beyond_its_interval() -> None:
    """Issue 12: a low score whose 90% interval reaches the line is not "mostly talk"; one wholly below is."""
    mostly_talk = "Mostly talk"
    assert not any(f.startswith(mostly_talk) for f in call_flags(_row("a", 0.10, 0.04, 0.19)))
    assert any(f.startswith(mostly_talk) for f in call_flags(_row("a", 0.10, 0.04, 0.14)))
    # a row stored without an interval is judged on the share alone
    assert any(f.startswith(mostly_talk) for f in call_flags(_row("a", 0.10, None, None)))  # type: ignore[arg-type]


def test_a_rep_is_flagged_only_beyond_the_uncertainty_of_their_average() -> None:
    """Issue 12: a rep 20 points under the team median is flagged when their calls' intervals are tight,
    not when the average of their calls is less sure than that gap."""
    team = [_row(name, 0.45, 0.40, 0.50, day) for name in ("b", "c") for day in (2, 3, 4, 5)]
    tight = [_row("a", 0.25, 0.20, 0.30, day) for day in (2, 3, 4, 5)]
    # half-width 0.5 per call; over four calls the average's margin is 0.5 / 2 = 0.25 > the 0.20 gap
    wide = [_row("a", 0.25, 0.0, 1.0, day) for day in (2, 3, 4, 5)]
    below = "Median action share"
    flagged = {r["rep"]: r["flags"] for r in rep_summaries(team + tight)}
    assert any(f.startswith(below) for f in flagged["a"]) and not flagged["b"] and not flagged["c"]
    unsure = {r["rep"]: r["flags"] for r in rep_summaries(team + wide)}
    assert unsure["a"] == []


def test_a_filtered_report_never_replaces_the_team_report(scored_out: Path, tmp_path: Path) -> None:
    import shutil

    from pipeline.report.html import default_report_name, write_report

    out = tmp_path / "out"
    shutil.copytree(scored_out, out)
    team, n_team = write_report(out)
    assert Path(team).name == "report.html" and n_team == 3
    before = Path(team).read_bytes()
    filtered, n = write_report(out, rep="Dana", since=dt.date(2026, 11, 5))
    assert Path(filtered).name == "report-rep-dana-since-2026-11-05.html" and n == 1
    assert Path(team).read_bytes() == before
    page = Path(filtered).read_text()
    assert "of the calls shown" in page and "vs team median" in page and "not only the calls of this report" in page
    assert re.fullmatch(r"report-rep-x-y-[0-9a-f]{6}\.html", default_report_name(rep="../../x y"))  # never a path
    # reps whose names lose characters in a file name get a digest of the exact filter: "." and ".." both
    # gave report-rep.html, one report replacing the other (an outside tester's find, stop 57)
    assert default_report_name(rep=".") != default_report_name(rep="..")
    assert default_report_name(rep="x" * 90) != default_report_name(rep="x" * 91)
    # letters of any script stay, so two reps never share a file; spelling variants of one rep do
    assert default_report_name(rep="张伟") != default_report_name(rep="李娜")
    assert default_report_name(rep="José") == "report-rep-josé.html"
    assert default_report_name(rep="José Núñez") == default_report_name(rep=" JOSÉ núñez")  # one rep, one file
    assert re.fullmatch(r"report-rep-josé-núñez-[0-9a-f]{6}\.html", default_report_name(rep="José Núñez"))
    assert default_report_name(rep="Mary Ann") != default_report_name(rep="Mary-Ann")  # two reps (a tester's find)
    assert default_report_name(rep="Dana since 2026-11-01") != default_report_name(rep="Dana", since=dt.date(2026, 11, 1))
    result = CliRunner().invoke(app, ["report", str(out), "--rep", " "])
    assert result.exit_code == 2 and "--rep needs" in result.output and Path(team).read_bytes() == before


def test_report_html_never_replaces_an_input_a_link_or_a_device(scored_out: Path, tmp_path: Path) -> None:
    """--html replaced whatever its path named: an input transcript, a link (by a file), even /dev/full.
    It replaces only a report; anything else is refused before work, and left as it was."""
    transcript = tmp_path / "call.json"
    transcript.write_text('{"turns": []}')
    link = tmp_path / "link.html"
    link.symlink_to(transcript)
    for target, said in ((transcript, "is not a file callcycle wrote"), (link, "is a link"),
                         (Path("/dev/null"), "not a regular file"), (tmp_path, "is a folder")):
        result = CliRunner().invoke(app, ["report", str(scored_out), "--html", str(target)], env={"COLUMNS": "200"})
        assert result.exit_code == 2 and said in " ".join(result.output.split()), result.output
    assert transcript.read_text() == '{"turns": []}' and link.is_symlink() and Path("/dev/null").is_char_device()
    mine = tmp_path / "mine.html"
    for _ in range(2):  # a report is replaced by the next one
        assert CliRunner().invoke(app, ["report", str(scored_out), "--html", str(mine)]).exit_code == 0
    result = CliRunner().invoke(app, ["classify", str(transcript), "-o", str(link)], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "is a link" in result.output and link.is_symlink()
    # '-' is standard output (it once wrote a file named '-'); the page is the one a file would hold
    result = CliRunner().invoke(app, ["report", str(scored_out), "--html", "-"])
    assert result.exit_code == 0 and result.output.startswith("<!DOCTYPE html>"), result.output[:200]
    assert result.output.strip().endswith("</html>") and not (Path.cwd() / "-").exists()
    assert re.sub(r"generated [^<]*", "", result.output) == re.sub(r"generated [^<]*", "", mine.read_text())


def test_reps_are_compared_median_to_median_and_unsure_verdicts_are_marked() -> None:
    """A rep who is the whole team is not below it (a mean against the median put them there when
    calls score near 0%); a verdict whose interval reaches another one is marked as unsure."""
    from pipeline.report.rules import verdict_unsure

    shares = (0.0, 0.02, 0.65, 0.7, 0.9)
    alone = rep_summaries([_row("dana", v, max(0.0, v - 0.05), min(1.0, v + 0.05), 2 + i) for i, v in enumerate(shares)])
    assert alone[0]["gap_to_median"] == 0 and alone[0]["flags"] == []
    assert verdict_unsure(_row("a", 0.04, 0.0, 0.31)) and not verdict_unsure(_row("a", 0.04, 0.0, 0.10))
    assert not verdict_unsure({**_row("a", 0.04, 0.0, 0.31), "action_share": None})


def test_a_call_of_one_or_two_segments_gets_no_interval_verdict_or_mostly_talk_flag() -> None:
    """A one-sentence call's interval has nothing to resample ("100% ± 0"): it shows how little was
    said instead, its verdict is marked unsure, and it is flagged as too short rather than as talk."""
    from pipeline.report.rules import verdict_unsure

    one = {**_row("a", 1.0, 1.0, 1.0), "n_segments": 1}
    assert format_share(one) == "100% (only 1 segment)" and format_share(one, compact=True) == "100% n=1"
    assert verdict_unsure(one)
    quiet = {**_row("a", 0.0, 0.0, 0.0), "n_segments": 2}
    flags = call_flags(quiet)
    assert flags == ["Too short to judge: only 2 segments of speech (a voicemail, a dropped line or a failed "
                     "recording?)."]
    three = {**_row("a", 0.0, 0.0, 0.0), "n_segments": 3}
    assert format_share(three) == "0% ± 0" and any(f.startswith("Mostly talk") for f in call_flags(three))


def test_one_rep_written_in_two_unicode_forms_is_one_rep() -> None:
    """"José" with a combined accent and with a separate one, or a name with a zero-width space, looked the
    same in the report and were two reps (each maybe under the three calls rep flags need)."""
    from pipeline.report.rules import rep_key

    assert rep_key("Jos\u00e9") == rep_key("Jose\u0301") == rep_key(" JOSE\u0301 ")
    assert rep_key("Da\u200bna") == rep_key("dana")
    calls = [_row("Jos\u00e9", 0.4, 0.35, 0.45, 2), _row("Jose\u0301", 0.4, 0.35, 0.45, 3),
             _row("Jos\u00e9\u200b", 0.4, 0.35, 0.45, 4)]
    reps = rep_summaries(calls)
    assert [(r["rep"], r["n_calls"]) for r in reps] == [("Jos\u00e9", 3)]


def test_a_rep_is_not_flagged_on_one_or_two_calls() -> None:
    """Rep-level flags need three calls with work talk: one call far below the team is that call's flag."""
    team = [_row(name, 0.45, 0.40, 0.50, day) for name in ("b", "c") for day in (2, 3, 4, 5)]
    for n in (1, 2, 3):
        low = [_row("a", 0.05, 0.03, 0.07, day) for day in range(2, 2 + n)]
        flags = {r["rep"]: r["flags"] for r in rep_summaries(team + low)}["a"]
        if n < 3:
            assert flags == [], n
        else:
            assert any(f.startswith("Median action share 5% is 40 points below") for f in flags)
            assert "Calls are mostly talk: median action share 5%." in flags
    assert all(call_flags(c) for c in low)  # each call still says why


def test_a_report_filtered_to_one_rep_compares_them_with_every_rep(scored_out: Path) -> None:
    """A rep's own report keeps the gap to the median of every rep's calls in the period, so a rep far
    below the team is flagged on their own page too, not measured against themselves (+0 pts)."""
    from pipeline.report.rules import median_share

    everyone = load_report_data(scored_out)
    dana = load_report_data(scored_out, rep="Dana")
    assert dana.team_median == median_share(everyone.calls) == everyone.team_median
    mine = [c["action_share"] for c in dana.calls]
    assert median_share(dana.calls) == pytest.approx(sorted(mine)[0] / 2 + sorted(mine)[1] / 2)
    alone = rep_summaries(dana.calls, team_median=dana.team_median)
    assert [r["gap_to_median"] for r in alone] == pytest.approx([sum(mine) / 2 - everyone.team_median])
    since = load_report_data(scored_out, since=dt.date(2026, 11, 5), rep="<b>Ben</b>")
    assert since.calls == [] and since.team_median == median_share(load_report_data(
        scored_out, since=dt.date(2026, 11, 5)).calls)


def test_a_complete_cycle_without_a_commitment_says_so() -> None:
    """Stages count by label, so vague talk about next steps is Act; the scorecard then says that nothing
    was committed rather than only "all happened" beside "Commitments made (0)"."""
    from pipeline.report.rules import cycle_sentence

    call = _row("a", 0.02, 0.0, 0.07)
    assert cycle_sentence(call) == "Complete cycle: Align, Act and Adjust all happened."
    assert cycle_sentence(call, n_commitments=2) == cycle_sentence(call)
    assert cycle_sentence(call, n_commitments=0).endswith("But Act was only talk about next steps: nothing was committed.")


def test_end_of_run_lists_only_what_the_run_did(scored_out: Path) -> None:
    """``callcycle run`` lists the calls it scored or updated (at most ``limit``), not the whole archive;
    its headline still covers every stored call, as the HTML report does."""
    import io

    from rich.console import Console

    from pipeline.report.terminal import headline, render_run_summary

    rows = load_call_rows(scored_out)

    def shown(touched: set[str], limit: int = 50) -> str:
        buffer = io.StringIO()
        render_run_summary(rows, touched, "night out", Console(file=buffer, width=200), limit=limit)
        return " ".join(buffer.getvalue().split())

    everything = shown({r["call_key"] for r in rows})
    assert "Scored or updated in this run (3)" in everything and headline(rows) in everything
    one = shown({rows[0]["call_key"]})
    assert "in this run (1)" in one and rows[0]["call_id"] in one and rows[1]["call_id"] not in one
    assert headline(rows) in one
    capped = shown({r["call_key"] for r in rows}, limit=2)
    assert "in this run (3)" in capped and "… and 1 more; `callcycle summary 'night out'` lists every" in capped
    nothing = shown(set())
    assert "No call was scored or updated in this run; `callcycle summary 'night out'` lists the 3 stored" in nothing


def test_large_outputs_get_scorecards_for_the_most_recent_calls(scored_out: Path, tmp_path: Path) -> None:
    """Every call stays in the figures and the calls table; only the newest get a scorecard (and the
    segments read for it), and the page says so and how to see others."""
    from pipeline.report.html import write_report
    from pipeline.report.rules import most_recent

    calls = load_call_rows(scored_out)
    newest = most_recent(calls, 1)[0]
    assert newest["call_date"] == max(c["call_date"] for c in calls)
    path, n = write_report(scored_out, tmp_path / "capped.html", max_scorecards=1)
    html = Path(path).read_text(encoding="utf-8")
    assert n == 3 and html.count('<section class="scorecard"') == 1
    assert f'<section class="scorecard" id="call-{newest["call_key"][:12]}"' in html
    assert html.count("<tr data-call-id=") == 3 and html.count('href="#call-') >= 1
    for call in calls:
        linked = f'href="#call-{call["call_key"][:12]}"' in html
        assert linked == (call["call_key"] == newest["call_key"]), call["call_id"]
    assert "Scorecards below for the 1 most recent of 3 calls" in html and "--scorecards N" in html
    full = Path(write_report(scored_out, tmp_path / "full.html")[0]).read_text(encoding="utf-8")
    assert full.count('<section class="scorecard"') == 3 and "scorecards-note" not in full
    assert '<b data-kpi="calls">3</b>' in html and '<b data-kpi="calls">3</b>' in full  # same team figures


def test_a_call_resting_on_one_sentence_of_work_is_too_short_to_judge() -> None:
    """Four segments of which three were greetings showed "100% ± 2 +" with no doubt: the share rests on
    about one sentence of work talk, so it is too short to judge like a one-segment call."""
    from pipeline.report.rules import verdict_unsure, work_segments

    chat = {**_row("a", 1.0, 1.0, 1.0), "n_segments": 4,
            "stage_shares": [("align", 0.0), ("act", 0.3), ("adjust", 0.0), ("other", 0.7)]}
    assert work_segments(chat) == pytest.approx(1.2)
    assert format_share(chat) == "100% (only 1 segment of work talk)" and format_share(chat, compact=True) == "100% n=1"
    assert verdict_unsure(chat)
    from pipeline.report.rules import call_verdict

    assert call_verdict(chat) == "too short to judge"  # not "moves work forward?" beside "n=1"
    assert call_flags(chat)[0] == "Too little work talk to judge: only about 1 segment of work talk; the rest was small talk."
    worked = {**chat, "n_segments": 12}  # 12 x 0.3 = 3.6 segments of work talk: judged
    assert format_share(worked) == "100% ± 0" and not verdict_unsure(worked)
    assert call_verdict(worked) == "moves work forward"
    # a share always rests on some work talk: "only 0 segments" (one long segment among many) reads 1
    lopsided = {**chat, "n_segments": 9, "stage_shares": [("align", 0.02), ("other", 0.98)]}
    assert format_share(lopsided) == "100% (only 1 segment of work talk)"


def test_verdicts_follow_the_number_shown_and_small_talk_is_no_open_loop() -> None:
    """0.3494 printed "35%" beside "some commitments" while the legend says 35% moves work forward; a
    voicemail was an "open loop"; a rep's stage mix averaged an 8-second call with an 8-minute one."""
    from pipeline.report.rules import cycle_sentence, cycle_status, verdict

    assert verdict(0.3494) == "moves work forward" and verdict(0.3449) == "some commitments"
    assert verdict(0.1449) == "mostly talk" and verdict(0.1451) == "some commitments"
    voicemail = {**_row("a", 0.0, 0.0, 0.0), "action_share": None, "stages_present": [], "cycle_complete": False}
    assert cycle_status(voicemail) == "no work" and cycle_sentence(voicemail) == "No cycle: no work was discussed."
    open_loop = {**_row("a", 0.3, 0.2, 0.4), "stages_present": ["align", "act"], "cycle_complete": False}
    assert cycle_status(open_loop) == "open loop"
    assert cycle_sentence(open_loop) == "Open loop: Align and Act, but no Adjust."
    short = {**_row("d", 0.2, 0.1, 0.3, 2), "speech_s": 8.0, "stage_shares": [("align", 0.0), ("other", 1.0)]}
    long = {**_row("d", 0.2, 0.1, 0.3, 3), "speech_s": 504.0, "stage_shares": [("align", 0.7), ("other", 0.3)]}
    mix = rep_summaries([short, long])[0]["stage_mix"]
    assert mix["align"] == pytest.approx(0.7 * 504 / 512) and mix["other"] == pytest.approx((8 + 0.3 * 504) / 512)


def test_rep_filter_takes_a_first_name_and_lists_the_reps_when_none_matches() -> None:
    """`--rep dana` found nothing for "Dana Kowalski", exited 0 and wrote an empty report; an unknown
    name now lists the output's reps, and a first name shared by two reps names both."""
    from pipeline.errors import InputError
    from pipeline.report.data import resolve_rep

    calls = [_row("Dana Kowalski", 0.3, 0.2, 0.4), _row("dana kowalski ", 0.4, 0.3, 0.5, 3), _row("Ben Okafor", 0.2, 0.1, 0.3)]
    assert resolve_rep(calls, "DANA KOWALSKI") == resolve_rep(calls, "dana") == "dana kowalski"
    assert resolve_rep(calls, "Okafor") == "ben okafor"
    with pytest.raises(InputError, match="No rep named 'Zed' in this output; its reps are 'Ben Okafor', 'Dana Kowalski'"):
        resolve_rep(calls, "Zed")
    with pytest.raises(InputError, match="could be any of 2 reps: 'Ben Adams', 'Ben Okafor'"):
        resolve_rep([*calls, _row("Ben Adams", 0.2, 0.1, 0.3)], "ben")


def test_report_for_an_unknown_rep_is_refused(scored_out: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(scored_out), "--rep", "Nobody", "--html", str(tmp_path / "r.html")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "No rep named 'Nobody'" in result.output, result.output
    assert not (tmp_path / "r.html").exists()
    dana = load_report_data(scored_out, rep="dana")
    assert dana.calls and dana.rep == "dana"  # the name as the output spells it


def test_the_report_names_the_classifiers_that_scored_its_calls() -> None:
    """The model version was only in each scorecard's footer: calls past the 200 scorecards showed none, and
    a report mixing models did not say so."""
    from pipeline.report.rules import scored_by as _classifiers

    one = [{"classifier_version": "m1"}, {"classifier_version": "m1"}]
    assert _classifiers(one) == "classifier m1"
    mixed = _classifiers([*one, {"classifier_version": "m0"}])
    assert mixed.startswith("2 classifiers — m1 (2 calls), m0 (1 call)") and "not strictly comparable" in mixed


def test_calls_too_short_to_judge_stay_out_of_medians_trends_and_rep_flags() -> None:
    """A sales manager's find (stop 55): three voicemails, each "0% (only 2 segments) / too short to judge",
    put a rep 64 points under the team median and "mostly talk", although her one real call scored 55%, and
    dragged the team median and the weekly trend to 0%."""
    from pipeline.report.rules import median_share, weekly_medians

    team = [_row(name, 0.65, 0.60, 0.70, day) for name in ("b", "c") for day in (2, 3, 4, 5)]
    voicemails = [{**_row("lena", 0.0, 0.0, 0.0, day), "n_segments": 2} for day in (9, 10, 11)]
    lena = [*voicemails, {**_row("lena", 0.55, 0.50, 0.60, 12), "n_segments": 12}]
    reps = {r["rep"]: r for r in rep_summaries(team + lena)}
    assert reps["lena"]["median_action_share"] == pytest.approx(0.55) and reps["lena"]["flags"] == []
    assert reps["lena"]["n_calls"] == 4 and reps["lena"]["calls_flagged"] == 3  # each voicemail says why
    assert median_share(team + lena) == median_share(team + lena[-1:])
    assert weekly_medians(voicemails) == {} and median_share(voicemails) is None
    # with three judged calls that low, the rep is flagged as before
    low = [{**_row("lena", 0.05, 0.03, 0.07, day), "n_segments": 12} for day in (13, 14, 15)]
    assert any(f.startswith("Median action share") for f in {r["rep"]: r for r in rep_summaries(
        team + lena + low)}["lena"]["flags"])


def test_an_open_loop_is_align_and_act_without_adjust_and_only_it_is_flagged() -> None:
    """The README's definition: Align and Act but no Adjust. A call of Align alone, or of Act alone, is a
    partial cycle; a missing Align is a pattern for the rep flags, not a call for a manager to look at; a
    call too short to judge gets no missing-stage flags (which stages two sentences touched says nothing)."""
    from pipeline.report.rules import cycle_sentence

    def call(*stages: str, n: int = 12) -> dict:
        return {**_row("a", 0.5, 0.4, 0.6), "stages_present": list(stages), "cycle_complete": False, "n_segments": n}

    assert cycle_status(call("align", "act")) == "open loop"
    assert cycle_sentence(call("align", "act")) == "Open loop: Align and Act, but no Adjust."
    assert call_flags(call("align", "act")) == ["Open loop: nothing was reviewed or adjusted."]
    assert cycle_status(call("align")) == "partial" and cycle_sentence(call("align")) == "Partial cycle: no Act or Adjust."
    assert call_flags(call("align")) == ["No Act: no request, offer, promise or next step was made."]
    assert cycle_status(call("act")) == "partial" and call_flags(call("act")) == []
    assert cycle_status(call("act", "adjust")) == "partial" and call_flags(call("act", "adjust")) == []
    assert call_flags(call("align", n=2)) == ["Too short to judge: only 2 segments of speech (a voicemail, a "
                                               "dropped line or a failed recording?)."]


def test_the_gap_to_the_team_median_is_the_difference_of_the_numbers_shown() -> None:
    """65% against a team median shown as 66% read "-0 pts"; the gap is now taken between the whole
    percentages shown."""
    from pipeline.report.rules import gap_points

    assert gap_points(0.654, 0.656) == -1 and gap_points(0.6549, 0.6551) == -1
    assert gap_points(0.652, 0.654) == 0 and gap_points(0.70, 0.55) == 15
    team = [_row("b", 0.656, 0.60, 0.70, day) for day in (2, 3, 4)]
    reps = {r["rep"]: r for r in rep_summaries(team + [_row("a", 0.654, 0.60, 0.70, 5)])}
    assert reps["a"]["gap_points"] == -1 and reps["b"]["gap_points"] == 0


def test_a_last_name_with_an_apostrophe_or_hyphen_names_its_rep() -> None:
    """`--rep "O'Brien"` was refused while `--rep Whitfield` worked: the apostrophe split the name in two."""
    from pipeline.report.data import resolve_rep
    from pipeline.report.rules import rep_key
    from pipeline.speech.roles import names_match

    calls = [_row(name, 0.4, 0.3, 0.5) for name in ("Kim O'Brien", "Anna Smith-Jones", "Alex Kim")]
    assert resolve_rep(calls, "O'Brien") == rep_key("Kim O'Brien")
    assert resolve_rep(calls, "o\u2019brien") == rep_key("Kim O'Brien")  # a curly apostrophe
    assert resolve_rep(calls, "Smith-Jones") == rep_key("Anna Smith-Jones")
    with pytest.raises(InputError, match="could be any of 2 reps"):  # "Kim": a first name and a last name
        resolve_rep(calls, "kim")
    assert names_match("O'Brien", "Kim O'Brien") == 1 and names_match("Kim OBrien", "Kim O'Brien") == 3


def test_teams_from_a_rep_to_team_file(scored_out: Path, tmp_path: Path) -> None:
    """Managers read figures per team (a sales manager's find, stop 55: no team anywhere). A team is a group
    of reps (teams.csv: rep,team), so it needs no re-scoring: the report adds a Teams table, `--team` narrows
    it and compares each rep with that team's median, and a filtered report's file says the team."""
    from pipeline.report.data import read_teams
    from pipeline.report.html import default_report_name, render_report
    from pipeline.report.rules import team_summaries

    teams = tmp_path / "teams.csv"
    teams.write_text("\ufeffTeam;Rep\nEast;DANA\nWest;<b>Ben</b>\n;nobody\n", encoding="utf-8")  # BOM, ;, any order
    assert read_teams(teams) == {"dana": "East", "<b>ben</b>": "West"}
    data = load_report_data(scored_out, teams=teams)
    assert {c["rep"]: c["team"] for c in data.calls} == {"dana": "East", "<b>Ben</b>": "West"}
    summary = {t["team"]: t for t in team_summaries(data.calls)}
    assert summary["East"]["n_calls"] == 2 and summary["East"]["n_reps"] == 1 and summary["West"]["n_calls"] == 1
    html = render_report(data)
    assert 'id="team-table"' in html and "<td data-sort=\"East\">East</td>" in html
    east = load_report_data(scored_out, teams=teams, team="east")
    assert east.team == "East" and {c["rep"] for c in east.calls} == {"dana"}
    assert "East at a glance" in render_report(east)
    with pytest.raises(InputError, match="No team named 'north'; the teams are 'East', 'West'"):
        load_report_data(scored_out, teams=teams, team="north")
    with pytest.raises(InputError, match="no teams file"):
        load_report_data(scored_out, team="east")
    assert "id=\"team-table\"" not in render_report(load_report_data(scored_out))  # no file, no table
    assert default_report_name(rep="dana", team="East") == "report-team-east-rep-dana.html"
    twice = tmp_path / "twice.csv"
    twice.write_text("rep,team\nDana,East\ndana,West\n")
    with pytest.raises(InputError, match="in two teams"):
        read_teams(twice)
    (tmp_path / "bad.csv").write_text("name,group\nDana,East\n")
    with pytest.raises(InputError, match="no 'rep' and 'team' columns"):
        read_teams(tmp_path / "bad.csv")
    # the command line: --teams and --team
    page = tmp_path / "east.html"
    result = CliRunner().invoke(app, ["report", str(scored_out), "--teams", str(teams), "--team", "EAST",
                                      "--html", str(page)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "East at a glance" in page.read_text() and "Report with 2 calls" in result.output
    missing = CliRunner().invoke(app, ["report", str(scored_out), "--teams", str(tmp_path / "none.csv")],
                                 env={"COLUMNS": "200"})
    assert missing.exit_code == 2 and "No teams file" in missing.output


def test_summary_narrows_like_the_report(scored_out: Path, tmp_path: Path) -> None:
    """`callcycle summary` takes --since/--rep/--team as the report does (a sales manager's find, stop 55: the
    terminal had no per-team view); the title and headline say what was left out, a filter nothing passes is
    "no calls matched" (not "run callcycle run first"), and a team no file names is refused."""
    teams = tmp_path / "teams.csv"
    teams.write_text("rep,team\ndana,East\n<b>Ben</b>,West\n", encoding="utf-8")
    env = {"COLUMNS": "200"}
    east = CliRunner().invoke(app, ["summary", str(scored_out), "--teams", str(teams), "--team", "east"], env=env)
    assert east.exit_code == 0, east.output
    assert "Scored calls (2) (team East)" in east.output and "Only team East: 2 calls" in east.output
    assert "<b>Ben</b>" not in east.output
    since = CliRunner().invoke(app, ["summary", str(scored_out), "--rep", "DANA", "--since", "2026-11-05"], env=env)
    assert since.exit_code == 0, since.output
    assert "(calls since 2026-11-05, rep dana)" in since.output and "2026-11-10__dana__harbor__renewal" in since.output
    assert "Only calls since 2026-11-05, rep dana: 1 call " in since.output
    # the flags are explained by a report of the same calls, not by the default report of every call
    assert "`callcycle report` with the same --since/--rep/--team" in " ".join(since.output.split())
    assert "see the HTML report" not in since.output
    none = CliRunner().invoke(app, ["summary", str(scored_out), "--since", "2030-01-01"], env=env)
    assert none.exit_code == 0 and "No calls matched (calls since 2030-01-01)" in none.output
    unknown = CliRunner().invoke(app, ["summary", str(scored_out), "--teams", str(teams), "--team", "north"], env=env)
    assert unknown.exit_code == 2 and "No team named 'north'" in unknown.output
    everyone = CliRunner().invoke(app, ["summary", str(scored_out)], env=env)
    assert "Scored calls (3)" in everyone.output and "<b>Ben</b>" in everyone.output and "Only " not in everyone.output
    assert "see the HTML report for why" in " ".join(everyone.output.split())
    # an output with failed inputs only: every filter says what the unfiltered summary says
    from pipeline import process
    from pipeline.classify.artifacts import load_artifact
    from pipeline.errors import InputError as Refused

    failed_only = tmp_path / "failed-only"
    process.prepare_output(failed_only)
    process.record_failure(failed_only, str(tmp_path / "x.json"), None, Refused("x.json: no turns.", "Fix it."),
                           process.run_stamp(load_artifact(MODELS), None))
    for option in (["--since", "2026-01-01"], ["--rep", "dana"], ["--teams", str(teams), "--team", "East"]):
        said = CliRunner().invoke(app, ["summary", str(failed_only), *option], env=env)
        assert said.exit_code == 0 and "No scored calls yet: 1 input(s) failed" in said.output, (option, said.output)


def test_summary_limit_lists_the_most_recent_calls_and_counts_them_all(scored_out: Path) -> None:
    """`callcycle summary --limit N` (an archive of 20,000 calls printed every row): the N most recent calls
    in date order, a line saying how many were left out, and the headline over every call."""
    env = {"COLUMNS": "200"}
    two = CliRunner().invoke(app, ["summary", str(scored_out), "--limit", "2"], env=env)
    assert two.exit_code == 0, two.output
    assert "Scored calls (3), the 2 most recent" in two.output
    assert "2026-11-10__dana__harbor__renewal" in two.output and "2026-11-03__ben" in two.output
    assert "2026-11-02__dana__northwind" not in two.output
    assert "1 older call(s) not listed (--limit 2)" in two.output and "3 calls · median" in two.output
    every = CliRunner().invoke(app, ["summary", str(scored_out), "--limit", "3"], env=env)
    assert "most recent" not in every.output and "not listed" not in every.output
    assert "2026-11-02__dana__northwind" in every.output
    narrowed = CliRunner().invoke(app, ["summary", str(scored_out), "--rep", "dana", "--limit", "1"], env=env)
    assert "Scored calls (2) (rep dana), the 1 most recent" in narrowed.output, narrowed.output
    refused = CliRunner().invoke(app, ["summary", str(scored_out), "--limit", "0"], env=env)
    assert refused.exit_code == 2 and "--limit" in refused.output


def test_a_sidecar_column_callcycle_does_not_read_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """calls.csv's `team` column was dropped without a word; any column a sidecar does not read is said."""
    from pipeline.ingest.discover import read_sidecar

    (tmp_path / "calls.csv").write_text("path,rep,team,Custmer\na.json,Dana,East,Acme\n")
    with caplog.at_level("WARNING"):
        meta = read_sidecar(tmp_path / "calls.csv")
    assert meta[(tmp_path / "a.json").resolve()].rep == "Dana"
    assert "'team', 'custmer' are not read" in caplog.text and "teams.csv" in caplog.text


def test_a_report_that_cannot_be_written_says_where_and_that_the_scores_are_kept(scored_out: Path,
                                                                                 tmp_path: Path) -> None:
    """An operator's find (stop 55): a full disk while the report was written printed only
    "error: No space left on device". Now the error names the file and says what to do."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    result = CliRunner().invoke(app, ["report", str(scored_out), "--html", str(blocker / "r.html")],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert f"Cannot write the report to {blocker / 'r.html'}" in said and "The scores are stored" in said


def test_calls_of_another_pipeline_version_or_classifier_are_named_in_both_views(scored_out: Path) -> None:
    """An upgrade tester's find (stop 56): after a partial run rows from two pipeline versions stood under one
    headline, and the report's header named only the version that wrote the page; the terminal never
    mentioned mixed classifiers. Both views now say which calls come from another version or classifier."""
    import io

    from rich.console import Console

    from pipeline import PIPELINE_VERSION
    from pipeline.report.html import render_report
    from pipeline.report.terminal import render_summary

    data = load_report_data(scored_out)
    assert 'id="versions-note"' not in render_report(data)
    older = dict(data.calls[0], pipeline_version="0.0.9", classifier_version="cycle-of-value-older")
    data.calls = [older, *data.calls[1:]]
    page = render_report(data)
    assert f"1 of 3 calls scored by another callcycle pipeline than this one ({PIPELINE_VERSION}): 0.0.9 (1 call)" in page
    assert "2 classifiers — " in page and "cycle-of-value-older (1 call)" in page
    buffer = io.StringIO()
    render_summary(data.calls, Console(file=buffer, width=80, force_terminal=False))
    text = " ".join(buffer.getvalue().split())
    assert "note: scored by 2 classifiers" in text and "0.0.9 (1 call); `callcycle run` over their inputs" in text
    buffer = io.StringIO()
    render_summary(load_call_rows(scored_out), Console(file=buffer, width=80, force_terminal=False))
    assert "note:" not in buffer.getvalue()


def test_a_report_of_many_calls_and_reps_stays_readable(scored_out: Path) -> None:
    """A scale tester's find (stop 56): with 2,010 calls and 300 reps "Needs your attention" listed all 764
    flagged calls and the trend chart drew 300 lines with a 300-entry legend. The attention list spells out
    the 50 most recent flagged calls (the figure still counts all of them) and the chart draws the 10 reps
    with the most calls, saying so."""
    from pipeline.report.charts import MAX_TREND_REPS
    from pipeline.report.html import MAX_ATTENTION_CALLS, render_report

    data = load_report_data(scored_out)
    flagged = next(c for c in data.calls if call_flags(c))
    many = []
    for i in range(MAX_ATTENTION_CALLS + 10):
        day = dt.date(2026, 1, 5) + dt.timedelta(days=i)
        many.append(dict(flagged, call_key=f"{i:032x}", call_id=f"call-{i:03d}", source_id=f"call-{i:03d}.json",
                         rep=f"Rep {i % (MAX_TREND_REPS + 5):02d}", call_date=day))
    data.calls, data.segments = many, {}
    page = render_report(data, max_scorecards=0)
    assert f'data-kpi="attention">{len(many)}</b>' in page
    assert page.count('<div class="call-flag">') == MAX_ATTENTION_CALLS
    assert f"The {MAX_ATTENTION_CALLS} most recent of {len(many)} flagged calls are above" in page
    assert "call-059" in page.split('id="attention"')[1].split("</section>")[0]  # the newest are the ones shown
    assert "call-000" not in page.split('id="attention"')[1].split("</section>")[0]
    assert f"the {MAX_TREND_REPS} of {MAX_TREND_REPS + 5} reps with the most calls" in page


def test_a_table_folder_replaced_by_a_file_is_an_error_not_an_empty_archive(scored_out: Path, tmp_path: Path) -> None:
    """With out/calls replaced by a file, summary said "No scored calls yet" (exit 0) and report replaced the
    team's report with one of 0 calls (an outside tester's find, stop 57); run blamed --out itself."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(scored_out, out)
    shutil.rmtree(out / "calls")
    (out / "calls").write_text("x")
    before = (out / "report.html").read_bytes() if (out / "report.html").exists() else None
    env = {"COLUMNS": "200"}
    for command in (["summary", str(out)], ["report", str(out)]):
        result = CliRunner().invoke(app, command, env=env)
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and f"{out / 'calls'} is not a folder" in said and "Move the file" in said, said
    after = (out / "report.html").read_bytes() if (out / "report.html").exists() else None
    assert after == before
    from pipeline.store.local import output_error

    said = str(output_error(out, NotADirectoryError(20, "Not a directory"), "preparing"))
    assert f"({out / 'calls'} is a file where callcycle keeps a folder)" in said
    shutil.rmtree(out)  # segments/ as a file: the report would have been written without a transcript
    shutil.copytree(scored_out, out)
    shutil.rmtree(out / "segments")
    (out / "segments").write_text("x")
    result = CliRunner().invoke(app, ["report", str(out)], env=env)
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and f"{out / 'segments'} is not a folder" in said, said
