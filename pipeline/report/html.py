"""The managers' report: one self-contained HTML file with a team view and a scorecard per call.

It reads the ``calls`` and ``segments`` Parquet datasets written by ``callcycle run`` and
never recomputes a score: every figure on the page is a stored column or a plain aggregate
of stored columns (counts, means, medians). Charts are drawn with matplotlib as SVG and
inlined; the page loads nothing from the network (a Content-Security-Policy forbids it) and
all transcript text goes through Jinja2's autoescaping, so it renders as text, never markup.

Public functions: :func:`load_report_data`, :func:`call_flags`, :func:`rep_summaries`,
:func:`render_report`, :func:`write_report`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import PIPELINE_VERSION
from pipeline.atomic import write_bytes_atomic
from pipeline.report.terminal import format_pct, load_call_rows, verdict
from pipeline.store import local as store

__all__ = [
    "Thresholds",
    "ReportData",
    "load_report_data",
    "call_flags",
    "rep_summaries",
    "team_glance",
    "talk_heavy_stretch",
    "render_report",
    "write_report",
]

STAGE_COLOURS = {"align": "#3b6fb6", "act": "#2e9e5b", "adjust": "#d98a1c", "other": "#b9bec7"}
CYCLE = ("align", "act", "adjust")


@dataclass(frozen=True)
class Thresholds:
    """When a call or a rep is flagged for a manager's attention."""

    low_action_share: float = 0.15
    """A call whose action share is below this is "mostly talk"."""
    rep_gap_below_median: float = 0.15
    """A rep whose average action share is this far below the team median is flagged."""
    min_calls_for_rep_flags: int = 3
    """Rep-level pattern flags (no Align / no Adjust across calls) need at least this many calls."""
    pattern_share: float = 0.66
    """Share of a rep's calls missing a stage before the rep is flagged for it."""
    long_monologue_s: float = 90.0
    """A monologue longer than this is called out on the scorecard."""


@dataclass
class ReportData:
    """Calls (newest row per source file) and their segments, filtered as asked."""

    calls: list[dict[str, Any]]
    segments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    since: dt.date | None = None
    rep: str | None = None


def load_report_data(out_dir: Path, since: dt.date | None = None, rep: str | None = None) -> ReportData:
    """Read the stored calls and segments under ``out_dir``.

    ``since`` keeps calls on or after that date (calls without a date are dropped when it is set);
    ``rep`` keeps one rep's calls (case-insensitive). Segments are read only for the kept calls.
    """
    calls = load_call_rows(Path(out_dir))
    if since is not None:
        calls = [c for c in calls if c["call_date"] is not None and c["call_date"] >= since]
    if rep is not None:
        calls = [c for c in calls if rep_key(c["rep"]) == rep_key(rep)]
    keys = {c["call_key"] for c in calls}
    segments: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if keys:
        table = store.read_dataset(Path(out_dir), "segments")
        for row in table.to_pylist():
            if row["call_key"] in keys:
                segments[row["call_key"]].append(row)
    for rows in segments.values():
        rows.sort(key=lambda r: r["segment_index"])
    return ReportData(calls=calls, segments=dict(segments), since=since, rep=rep)


def call_flags(call: dict[str, Any], th: Thresholds = Thresholds()) -> list[str]:
    """Reasons a manager should look at this call, each a full sentence."""
    flags = []
    share = call["action_share"]
    present = set(call["stages_present"] or [])
    if share is not None and share < th.low_action_share:
        flags.append(f"Mostly talk: only {share:.0%} of work talk was action (flag below {th.low_action_share:.0%}).")
    if share is None:
        flags.append("No work was discussed: every segment was small talk or filler.")
    if "align" not in present:
        flags.append("No Align: nobody established goals, priorities or the customer's situation.")
    if "act" not in present:
        flags.append("No Act: no request, offer, promise or next step was made.")
    if "adjust" not in present:
        flags.append("Open loop: nothing was reviewed or adjusted.")
    for sp in call["speakers"] or []:
        if (sp["longest_monologue_s"] or 0) > th.long_monologue_s:
            flags.append(f"{sp['speaker']} spoke for {sp['longest_monologue_s']:.0f} s without a break.")
    return flags


def _iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def rep_key(name: str | None) -> str:
    """Grouping key of a rep's name: "Dana", "dana " and "DANA" are one rep."""
    return " ".join((name or "").split()).casefold()


def rep_display_name(names: list[str | None]) -> str:
    """How to show a rep written several ways: the most common spelling (ties: the first in sort order)."""
    cleaned = [" ".join(n.split()) for n in names if n and n.strip()]
    if not cleaned:
        return "(unknown rep)"
    counts = Counter(cleaned)
    return sorted(counts, key=lambda n: (-counts[n], n))[0]


def rep_summaries(calls: list[dict[str, Any]], th: Thresholds = Thresholds()) -> list[dict[str, Any]]:
    """Per rep: calls, average action share, stage mix, weekly trend, gap to the team median, flags."""
    shares = [c["action_share"] for c in calls if c["action_share"] is not None]
    team_median = statistics.median(shares) if shares else None
    by_rep: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        by_rep[rep_key(c["rep"])].append(c)
    out = []
    for _key, rows in sorted(by_rep.items()):
        rep = rep_display_name([c["rep"] for c in rows])
        rep_shares = [c["action_share"] for c in rows if c["action_share"] is not None]
        avg = statistics.fmean(rep_shares) if rep_shares else None
        mix: dict[str, float] = defaultdict(float)
        for c in rows:
            for k, v in (c["stage_shares"] or []):
                mix[k] += v / len(rows)
        weekly: dict[str, list[float]] = defaultdict(list)
        for c in rows:
            if c["call_date"] is not None and c["action_share"] is not None:
                weekly[_iso_week(c["call_date"])].append(c["action_share"])
        trend = {w: statistics.fmean(v) for w, v in sorted(weekly.items())}
        flags = []
        gap = None if avg is None or team_median is None else avg - team_median
        if gap is not None and gap <= -th.rep_gap_below_median:
            flags.append(f"Average action share {avg:.0%} is {-gap:.0%} below the team median ({team_median:.0%}).")
        if avg is not None and avg < th.low_action_share:
            flags.append(f"Calls are mostly talk: average action share {avg:.0%}.")
        if len(rows) >= th.min_calls_for_rep_flags:
            for stage, text in (("align", "No Align"), ("adjust", "No Adjust")):
                missing = sum(stage not in (c["stages_present"] or []) for c in rows)
                if missing / len(rows) >= th.pattern_share:
                    flags.append(f"{text} in {missing} of {len(rows)} calls.")
        out.append({
            "rep": rep, "n_calls": len(rows), "avg_action_share": avg, "gap_to_median": gap,
            "stage_mix": dict(mix), "trend": trend, "flags": flags,
            "complete_cycles": sum(bool(c["cycle_complete"]) for c in rows),
        })
    return out


def team_glance(calls: list[dict[str, Any]], th: Thresholds = Thresholds()) -> dict[str, Any]:
    """The headline figures: calls, median action share, complete cycles, calls flagged."""
    shares = [c["action_share"] for c in calls if c["action_share"] is not None]
    return {
        "calls": len(calls),
        "median_action_share": statistics.median(shares) if shares else None,
        "complete": sum(bool(c["cycle_complete"]) for c in calls),
        "flagged": sum(bool(call_flags(c, th)) for c in calls),
    }


def talk_heavy_stretch(segments: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The longest run of consecutive talk segments (by speech seconds), with its span and speakers."""
    best: tuple[float, int, int] | None = None
    start = None
    total = 0.0
    for i, seg in enumerate([*segments, None]):
        if seg is not None and seg["talk_action"] == "talk":
            if start is None:
                start, total = i, 0.0
            total += seg["duration_s"]
            continue
        if start is not None and (best is None or total > best[0]):
            best = (total, start, i - 1)
        start = None
    if best is None:
        return None
    total, i, j = best
    run = segments[i:j + 1]
    return {
        "start_s": run[0]["start_s"], "end_s": run[-1]["end_s"], "speech_s": total, "n_segments": len(run),
        "speakers": sorted({s["speaker"] for s in run}), "first_text": run[0]["text"],
    }


def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


# ----------------------------------------------------------------------------- charts


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "callcycle", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "svg.fonttype": "path"})
    return plt


def _safe_label(text: str) -> str:
    """Chart labels come from data: escape matplotlib's mathtext dollar signs."""
    return str(text).replace("$", r"\$")


def _svg(fig) -> str:
    buf = io.StringIO()
    no_metadata = {"Date": None, "Creator": None, "Format": None, "Type": None}
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=no_metadata)
    _mpl().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def timeline_svg(segments: list[dict[str, Any]], duration_s: float | None) -> str:
    """A strip per speaker: each segment coloured by stage, action segments solid, talk segments pale."""
    plt = _mpl()
    speakers = sorted({s["speaker"] for s in segments}) or ["—"]
    fig, ax = plt.subplots(figsize=(9, 0.45 + 0.38 * len(speakers)))
    for row, speaker in enumerate(speakers):
        for s in (s for s in segments if s["speaker"] == speaker):
            action = s["talk_action"] == "action"
            ax.broken_barh([(s["start_s"], max(s["duration_s"], 0.2))], (row - 0.38, 0.76),
                           facecolors=STAGE_COLOURS.get(s["stage"], "#888"), alpha=1.0 if action else 0.38,
                           edgecolor="#111" if action else "none", linewidth=0.6)
    end = max([duration_s or 0.0, *(s["end_s"] for s in segments)]) or 1.0
    ax.set_xlim(0, end)
    ax.set_yticks(range(len(speakers)), [_safe_label(s) for s in speakers])
    ax.set_ylim(-0.6, len(speakers) - 0.4)
    ax.invert_yaxis()
    ticks = ax.get_xticks()
    ax.set_xticks(ticks[(ticks >= 0) & (ticks <= end)])
    ax.set_xticklabels([_mmss(t) for t in ax.get_xticks()])
    ax.set_xlabel("time in call (m:ss) — solid with outline = action, pale = talk")
    return _svg(fig)


def stage_mix_svg(mixes: list[tuple[str, dict[str, float]]], title: str) -> str:
    """Horizontal stacked bars of stage shares, one bar per label."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.32 * max(len(mixes), 1)))
    names = [_safe_label(n) for n, _ in mixes]
    left = [0.0] * len(mixes)
    for stage, colour in STAGE_COLOURS.items():
        values = [m.get(stage, 0.0) for _, m in mixes]
        ax.barh(names, values, left=left, color=colour, label=stage, height=0.66)
        left = [a + b for a, b in zip(left, values)]
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
    ax.invert_yaxis()
    ax.set_title(title, loc="left")
    ax.legend(ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    return _svg(fig)


def trend_svg(reps: list[dict[str, Any]], calls: list[dict[str, Any]]) -> str | None:
    """Weekly average action share per rep, with the team's weekly median dashed."""
    weeks = sorted({w for r in reps for w in r["trend"]})
    if not weeks:
        return None
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    for r in reps:
        xs = [weeks.index(w) for w in r["trend"]]
        ax.plot(xs, list(r["trend"].values()), marker="o", label=_safe_label(r["rep"]))
    team: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        if c["call_date"] is not None and c["action_share"] is not None:
            team[_iso_week(c["call_date"])].append(c["action_share"])
    ax.plot(range(len(weeks)), [statistics.median(team[w]) if team[w] else float("nan") for w in weeks],
            linestyle="--", color="#444", label="team median")
    ax.set_xticks(range(len(weeks)), weeks)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
    ax.set_ylabel("action share")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _svg(fig)


# ----------------------------------------------------------------------------- page


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
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
""".strip()


def _script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def _template():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("pipeline.report", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = format_pct
    env.filters["mmss"] = _mmss
    return env.get_template("report.html")


def _scorecard(call: dict[str, Any], segments: list[dict[str, Any]], th: Thresholds) -> dict[str, Any]:
    present = call["stages_present"] or []
    if call["cycle_complete"]:
        cycle = "Complete cycle: Align, Act and Adjust all happened."
    elif "adjust" not in present:
        cycle = "Open loop: nothing was reviewed or adjusted."
    else:
        missing = ", ".join(s.capitalize() for s in CYCLE if s not in present)
        cycle = f"Partial cycle: no {missing}."
    ratio = call["talk_action_ratio"]
    return {
        "call": call,
        "anchor": "call-" + call["call_key"][:12],
        "verdict": verdict(call["action_share"]),
        "ratio_text": "no action at all" if ratio is None else f"{ratio:.1f} s of talk per second of action",
        "cycle": cycle,
        "order": " → ".join(s.capitalize() for s in (call["stage_order"] or [])) or "—",
        "mix": dict(call["stage_shares"] or []),
        "flags": call_flags(call, th),
        "commitments": [s for s in segments if s["talk_action"] == "action"],
        "stretch": talk_heavy_stretch(segments),
        "timeline": timeline_svg(segments, call["audio_duration_s"] or call["speech_s"]),
        "duration": call["audio_duration_s"] or call["speech_s"],
        "speakers": sorted(call["speakers"] or [], key=lambda s: -(s["speech_s"] or 0)),
        "segments": segments,
    }


def render_report(data: ReportData, th: Thresholds = Thresholds(), generated_at: dt.datetime | None = None) -> str:
    """The report as one HTML string (inline CSS, SVG and a hashed inline script; no external resources)."""
    calls = data.calls
    reps = rep_summaries(calls, th)
    glance = team_glance(calls, th)
    attention = [(c, f) for c in calls if (f := call_flags(c, th))]
    cards = [_scorecard(c, data.segments.get(c["call_key"], []), th) for c in calls]
    team_mix = stage_mix_svg([(r["rep"], r["stage_mix"]) for r in reps], "Stage mix per rep") if reps else None
    call_mix = stage_mix_svg([(c["call_id"], dict(c["stage_shares"] or [])) for c in calls],
                             "Stage mix per call") if calls else None
    filters = []
    if data.since:
        filters.append(f"calls since {data.since.isoformat()}")
    if data.rep:
        filters.append(f"rep {data.rep}")
    generated = generated_at or dt.datetime.now(dt.UTC)
    return _template().render(
        calls=calls, reps=reps, cards=cards, attention=attention, th=th,
        team_median=glance["median_action_share"], complete=glance["complete"],
        total_minutes=sum((c["audio_duration_s"] or c["speech_s"] or 0) for c in calls) / 60,
        trend=trend_svg(reps, calls), team_mix=team_mix, call_mix=call_mix, colours=STAGE_COLOURS,
        filters=", ".join(filters), generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        version=PIPELINE_VERSION, script=_SORT_SCRIPT, script_hash=_script_hash(_SORT_SCRIPT),
        flagged_reps=[r for r in reps if r["flags"]], verdict=verdict,
    )


def write_report(out_dir: Path, html_path: Path | None = None, since: dt.date | None = None,
                 rep: str | None = None, th: Thresholds = Thresholds()) -> tuple[Path, int]:
    """Render the report for ``out_dir`` and write it atomically; returns (path, number of calls).

    The default path is ``<out_dir>/report.html``.
    """
    out_dir = Path(out_dir)
    data = load_report_data(out_dir, since=since, rep=rep)
    html = render_report(data, th)
    path = Path(html_path) if html_path else out_dir / "report.html"
    write_bytes_atomic(path, html.encode("utf-8"))
    return path, len(data.calls)
