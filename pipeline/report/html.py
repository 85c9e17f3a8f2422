"""The managers' report: one self-contained HTML file with a team view, a table of every call and
scorecards for the most recent calls.

It reads the ``calls`` and ``segments`` Parquet datasets written by ``callcycle run`` and
never recomputes a score: every figure on the page is a stored column or a plain aggregate
of stored columns (counts, means, medians). Charts are drawn with matplotlib as SVG and
inlined; the page loads nothing from the network (a Content-Security-Policy forbids it) and
all transcript text goes through Jinja2's autoescaping, so it renders as text, never markup.

The package's modules, arrows one way: :mod:`~pipeline.report.rules` (what figures mean) ←
:mod:`~pipeline.report.data` (reading) ← :mod:`~pipeline.report.charts` (SVG) ←
:mod:`~pipeline.report.terminal` and this module (rendering).
Long calls are summarised: a scorecard lists at most :data:`MAX_TRANSCRIPT_ROWS` segments and
:data:`MAX_COMMITMENT_ROWS` commitments, saying how many more are in the Parquet data. Large outputs
too: every call counts in the team figures and has a row in the calls table, but only the
:data:`MAX_SCORECARDS` most recent calls get a scorecard, saying so.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

from pipeline import PIPELINE_VERSION, __version__, objectstore
from pipeline.atomic import check_replaceable, write_bytes_atomic
from pipeline.display import printable, safe_text
from pipeline.errors import OutputError
from pipeline.report.charts import cached_timeline_svg, mmss, stage_colours, stage_mix_svg, trend_svg
from pipeline.report.data import ReportData, load_report_data, rep_name, resolve_team, team_members
from pipeline.report.rules import (
    MAX_CHART_CALLS,
    MAX_SCORECARDS,
    VERDICT_ORDER,
    Thresholds,
    call_flags,
    call_verdict,
    cycle_sentence,
    format_pct,
    format_share,
    marked_unsure,
    most_recent,
    other_versions,
    rep_display_name,
    rep_key,
    rep_summaries,
    scored_by,
    talk_heavy_stretch,
    team_glance,
    team_summaries,
    verdict,
    weekly_medians,
)
from pipeline.store.base import OutputLocation, open_store

__all__ = [
    # rendering (this module)
    "MAX_TRANSCRIPT_ROWS", "MAX_COMMITMENT_ROWS", "CACHE_DIR", "render_report", "report_html", "write_report",
    "default_report_name",
    # re-exported for callers of the one-module report
    "Thresholds", "ReportData", "load_report_data", "call_flags", "rep_summaries", "team_glance",
    "talk_heavy_stretch", "rep_key", "rep_display_name",
]

MAX_TRANSCRIPT_ROWS = 2000
MAX_COMMITMENT_ROWS = 300
#: Per-call chart cache under the output folder (hidden: dataset readers ignore it).
CACHE_DIR = ".cache/report"


_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
      var nx = x === "" ? NaN : Number(x), ny = y === "" ? NaN : Number(y);  /* a date is text, not 2026 */
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
""".strip()


def _script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def _terminal_safe(value: Any) -> Any:
    """A template value without terminal control characters (:func:`safe_text`); markup (a str with
    ``__html__``, already escaped) stays markup."""
    if not isinstance(value, str):
        return value
    return type(value)(safe_text(str(value))) if hasattr(value, "__html__") else safe_text(value)


def _template():
    from jinja2 import Environment, PackageLoader, select_autoescape

    # every value written into the page loses the control characters a terminal would act on (the
    # report is also read with cat and grep); escaping keeps it markup-safe, not terminal-safe
    env = Environment(loader=PackageLoader("pipeline.report", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True, finalize=_terminal_safe)
    env.filters["pct"] = format_pct
    env.filters["share"] = format_share
    env.filters["mmss"] = mmss
    env.filters["printable"] = printable  # names from files: no control or bidi characters (escaping is not enough)
    return env.get_template("report.html")


def _table_row(call: dict[str, Any], th: Thresholds, tax: Any) -> dict[str, Any]:
    """What the calls table shows of one call (cheap: no segments)."""
    return {
        "call": call,
        "anchor": "call-" + call["call_key"][:12],
        "verdict": call_verdict(call),
        "verdict_rank": VERDICT_ORDER.index(call_verdict(call)),
        "unsure": marked_unsure(call),
        "order": " → ".join(s.capitalize() for s in (call["stage_order"] or [])) or "—",
        "flags": call_flags(call, th, tax),
        "duration": call["audio_duration_s"] or call["speech_s"],
    }


def _scorecard(row: dict[str, Any], segments: list[dict[str, Any]], data: ReportData,
               cache_dir: Path | None) -> dict[str, Any]:
    """A call's table row (:func:`_table_row`) with what its scorecard adds from its segments."""
    call, tax = row["call"], data.taxonomy
    ratio = call["talk_action_ratio"]
    commitments = [s for s in segments if s["talk_action"] == "action"]
    return {
        **row,
        "ratio_text": ("no action at all" if ratio is None else "no talk: all the work talk was action" if ratio == 0
                       else f"{ratio:.1f} s of talk per second of action"),
        "cycle": cycle_sentence(call, tax, len(commitments)),
        "mix": dict(call["stage_shares"] or []),
        "commitments": commitments[:MAX_COMMITMENT_ROWS],
        "n_commitments": len(commitments),
        "stretch": talk_heavy_stretch(segments),
        "timeline": cached_timeline_svg(cache_dir, call, segments, row["duration"], tax),
        "speakers": sorted(call["speakers"] or [], key=lambda s: -(s["speech_s"] or 0)),
        "segments": segments[:MAX_TRANSCRIPT_ROWS],
        "n_segments": len(segments),
    }


#: "Needs your attention" spells out the flags of at most this many calls, the most recent flagged ones.
MAX_ATTENTION_CALLS = 50


def render_report(data: ReportData, th: Thresholds = Thresholds(), generated_at: dt.datetime | None = None,
                  cache_dir: Path | None = None, max_scorecards: int = MAX_SCORECARDS) -> str:
    """The report as one HTML string (inline CSS, SVG and a hashed inline script; no external resources).

    Every call is in the team figures and the calls table; the scorecards (timeline, commitments,
    transcript) and the per-call stage chart cover the ``max_scorecards`` most recent calls (and at
    most :data:`MAX_CHART_CALLS` bars), so the page stays readable: it grows by a table row (and any
    flags) per call, not a scorecard.
    """
    calls = data.calls
    tax = data.taxonomy
    reps = rep_summaries(calls, th, tax, data.team_median)
    glance = team_glance(calls, th, tax)
    rows = [_table_row(c, th, tax) for c in calls]  # each call's flags, worked out once
    flagged = [(r["call"], r["flags"]) for r in rows if r["flags"]]
    # the most recent flagged calls, spelt out; every one counts in the figure above and in the calls table
    recent = {c["call_key"] for c in most_recent([c for c, _ in flagged], MAX_ATTENTION_CALLS)}
    attention = [(c, flags) for c, flags in flagged if c["call_key"] in recent]
    carded = {c["call_key"] for c in most_recent(calls, max_scorecards)}
    cards = [_scorecard(r, data.segments.get(r["call"]["call_key"], []), data, cache_dir)
             for r in rows if r["call"]["call_key"] in carded]
    team_mix = stage_mix_svg([(r["rep"], r["stage_mix"]) for r in reps], "Stage mix per rep", tax) if reps else None
    charted = most_recent(calls, MAX_CHART_CALLS)
    call_mix = stage_mix_svg([(c["call_id"], dict(c["stage_shares"] or [])) for c in charted],
                             "Stage mix per call" if len(charted) == len(calls) else
                             f"Stage mix of the {len(charted)} most recent calls", tax) if calls else None
    generated = generated_at or dt.datetime.now(dt.UTC)
    return _template().render(
        calls=calls, reps=reps, teams=team_summaries(calls, th, tax), team=data.team, rows=rows, cards=cards,
        undated=sum(c["call_date"] is None for c in calls),
        carded=carded, attention=attention, flagged_calls=len(flagged), th=th,
        team_median=glance["median_action_share"], complete=glance["complete"],
        reps_median=data.team_median, since=data.since.isoformat() if data.since else None, rep=data.rep,
        total_minutes=sum((c["audio_duration_s"] or c["speech_s"] or 0) for c in calls) / 60,
        trend=trend_svg(reps, data.team_trend or weekly_medians(calls)), team_mix=team_mix, call_mix=call_mix,
        colours=stage_colours(tax),
        cycle_arrow=tax.arrow(), filters=data.narrowed_to(), generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        version=f"{__version__} (pipeline {PIPELINE_VERSION})", classifiers=scored_by(calls),
        versions_note=other_versions(calls, PIPELINE_VERSION), script=_SORT_SCRIPT,
        script_hash=_script_hash(_SORT_SCRIPT),
        flagged_reps=[r for r in reps if r["flags"]], verdict=verdict, failed_inputs=data.failed_inputs,
    )


def default_report_name(since: dt.date | None = None, rep: str | None = None, team: str | None = None) -> str:
    """``report.html``, or for a filtered report a name that says the filter
    (``report-team-east-rep-dana-since-2026-11-01.html``), so a filtered report never replaces the team's."""
    parts = (([f"team-{rep_key(team)}"] if team else []) + ([f"rep-{rep_key(rep)}"] if rep else [])
             + ([f"since-{since.isoformat()}"] if since else []))
    if not parts:
        return "report.html"
    # letters of any script stay ("张伟", "josé"): two reps never share a file name by losing them
    exact = "-".join(parts)
    slug = re.sub(r"[\W_]+", "-", exact).strip("-")[:80] or "filtered"
    if slug != exact:  # characters changed, dropped or cut: "." and ".." (or "Mary Ann" and "Mary-Ann") collided
        slug += "-" + hashlib.sha256(exact.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"report-{slug}.html"


#: What every report starts with (its title), so ``--html`` replaces a report and never another file.
REPORT_SIGNATURE = b"<title>callcycle report"


def write_report(out_dir: OutputLocation, html_path: Path | None = None, since: dt.date | None = None,
                 rep: str | None = None, th: Thresholds = Thresholds(),
                 models: Path | None = None, max_scorecards: int = MAX_SCORECARDS, team: str | None = None,
                 teams: Path | None = None) -> tuple[Path | str, int]:
    """Render the report for ``out_dir`` and write it atomically; returns (where, number of calls).

    The default path is ``<out_dir>/report.html``, or :func:`default_report_name` when filtered (for
    an ``s3://`` output, an object there: the URI is returned). Timelines of a folder output are
    cached under ``<out_dir>/.cache/report`` by call version, so a rerun redraws only calls that changed.
    """
    if rep is not None and html_path is None:  # the file is named after the rep, not after what was typed
        rep = rep_name(out_dir, rep)  # ("dana", "Whitfield" and "dana whitfield" write one file)
    if team is not None and html_path is None:  # likewise the team ("east" for "East")
        team = resolve_team(team_members(out_dir, teams), team)
    if html_path is not None or not objectstore.is_uri(out_dir):  # before any work; never over an input
        check_replaceable(Path(html_path) if html_path else Path(str(out_dir)) / default_report_name(since, rep, team),
                          looks_like=REPORT_SIGNATURE)
    html, n_calls = report_html(out_dir, since=since, rep=rep, th=th, models=models, max_scorecards=max_scorecards,
                                team=team, teams=teams)
    name = default_report_name(since, rep, team)
    where = str(html_path) if html_path else f"{str(out_dir).rstrip('/')}/{name}"
    try:
        if objectstore.is_uri(out_dir) and html_path is None:
            return open_store(out_dir).write_bytes(name, html.encode("utf-8")), n_calls
        path = Path(html_path) if html_path else Path(str(out_dir)) / name
        write_bytes_atomic(path, html.encode("utf-8"))
    except OSError as exc:  # a full disk or a read-only folder: say where, and that nothing scored is lost
        raise OutputError(f"Cannot write the report to {where}: {exc.strerror or exc}.",
                          "The scores are stored: free space in (or allow writing to) that folder and run "
                          "`callcycle report` again, or write the report elsewhere with --html FILE.") from exc
    return path, n_calls


def report_html(out_dir: OutputLocation, since: dt.date | None = None, rep: str | None = None,
                th: Thresholds = Thresholds(), models: Path | None = None,
                max_scorecards: int = MAX_SCORECARDS, team: str | None = None,
                teams: Path | None = None) -> tuple[str, int]:
    """The report for ``out_dir`` as one HTML string, and how many calls it covers (nothing written but
    a folder output's cached timelines, see :func:`write_report`)."""
    remote = objectstore.is_uri(out_dir)
    where = out_dir if remote else Path(str(out_dir))
    data = load_report_data(where, since=since, rep=rep, models=models, scorecards=max_scorecards, team=team,
                            teams=teams)
    cache = None if remote else Path(str(out_dir)) / CACHE_DIR
    return render_report(data, th, cache_dir=cache, max_scorecards=max_scorecards), len(data.calls)
