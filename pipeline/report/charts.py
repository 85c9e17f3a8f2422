"""Charts for the report, drawn with matplotlib as inline SVG.

Every chart costs O(rows) and produces a bounded SVG: the call timeline draws one
``broken_barh`` per (speaker, stage, talk/action) — never one artist per segment — and merges
bars closer than a pixel, so a 50,000-segment call draws about as fast as a short one. Colours
follow the taxonomy: cycle stages take the palette in order, the neutral stage is grey.
Timelines are cached on disk by call version, so ``run`` redraws only calls that changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline import PIPELINE_VERSION
from pipeline.atomic import write_bytes_atomic
from pipeline.display import printable
from pipeline.report.rules import COV_TAXONOMY, ReportTaxonomy

__all__ = ["PALETTE", "stage_colours", "timeline_svg", "cached_timeline_svg", "stage_mix_svg", "trend_svg", "mmss"]

PALETTE = ("#3b6fb6", "#2e9e5b", "#d98a1c", "#8e5bb5", "#c4484f", "#2a9d9d", "#7a6a3a")
NEUTRAL_COLOUR = "#b9bec7"
#: Horizontal resolution of a timeline: bars closer than 1/TIMELINE_PX of the call are merged.
TIMELINE_PX = 1400
_TIMELINE_VERSION = "2"


def stage_colours(tax: ReportTaxonomy = COV_TAXONOMY) -> dict[str, str]:
    """``{label: colour}`` in taxonomy order; the neutral label grey."""
    colours, i = {}, 0
    for label in tax.labels:
        if label == tax.neutral:
            colours[label] = NEUTRAL_COLOUR
        else:
            colours[label] = PALETTE[i % len(PALETTE)]
            i += 1
    return colours


def mmss(seconds: float | None) -> str:
    """Seconds as ``m:ss`` (``—`` when unknown; negative as 0:00)."""
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # text stays text: the reader's browser draws it with its own fonts, so names in scripts the
    # bundled font lacks (Chinese, say) are legible, not baked in as empty boxes
    plt.rcParams.update({"svg.hashsalt": "callcycle", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "svg.fonttype": "none",
                         "font.family": ["DejaVu Sans", "sans-serif"]})
    return plt


def _safe_label(text: str) -> str:
    """Chart labels come from data: control characters dropped (no font has a glyph for them, and
    matplotlib's warning would print them on the terminal), mathtext dollar signs escaped."""
    return printable(str(text)).replace("$", r"\$")


def _svg(fig) -> str:
    buf = io.StringIO()
    no_metadata = {"Date": None, "Creator": None, "Format": None, "Type": None}
    with warnings.catch_warnings():  # a glyph the layout font lacks is the browser's to draw (text stays text)
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata=no_metadata)
    _mpl().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _merge(ranges: list[tuple[float, float]], tolerance: float, min_width: float) -> list[tuple[float, float]]:
    """Sorted ``(start, end)`` ranges merged where the gap is below ``tolerance``, as (start, width)."""
    merged: list[list[float]] = []
    for start, end in sorted(ranges):
        end = max(end, start + min_width)
        if merged and start - merged[-1][1] <= tolerance:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e - s) for s, e in merged]


def timeline_svg(segments: list[dict[str, Any]], duration_s: float | None,
                 tax: ReportTaxonomy = COV_TAXONOMY) -> str:
    """A strip per speaker coloured by stage, action solid (outlined), talk pale.

    One ``broken_barh`` per (speaker, stage, talk/action), bars merged below a pixel's width.
    """
    plt = _mpl()
    colours = stage_colours(tax)
    speakers = sorted({s["speaker"] for s in segments}) or ["—"]
    row_of = {sp: i for i, sp in enumerate(speakers)}
    end = max([duration_s or 0.0, *(s["end_s"] for s in segments)]) or 1.0
    pixel = end / TIMELINE_PX
    groups: dict[tuple[int, str, bool], list[tuple[float, float]]] = defaultdict(list)
    for s in segments:
        groups[(row_of[s["speaker"]], s["stage"], s["talk_action"] == "action")].append(
            (s["start_s"], s["start_s"] + s["duration_s"]))
    fig, ax = plt.subplots(figsize=(9, 0.45 + 0.38 * len(speakers)))
    for (row, stage, action), ranges in sorted(groups.items()):
        ax.broken_barh(_merge(ranges, pixel, max(0.2, pixel)), (row - 0.38, 0.76),
                       facecolors=colours.get(stage, "#888"), alpha=1.0 if action else 0.38,
                       edgecolor="#111" if action else "none", linewidth=0.6)
    ax.set_xlim(0, end)
    ax.set_yticks(range(len(speakers)), [_safe_label(s) for s in speakers])
    ax.set_ylim(-0.6, len(speakers) - 0.4)
    ax.invert_yaxis()
    ticks = ax.get_xticks()
    ax.set_xticks(ticks[(ticks >= 0) & (ticks <= end)])
    ax.set_xticklabels([mmss(t) for t in ax.get_xticks()])
    ax.set_xlabel("time in call (m:ss) — solid with outline = action, pale = talk")
    return _svg(fig)


def cached_timeline_svg(cache_dir: Path | None, call: dict[str, Any], segments: list[dict[str, Any]],
                        duration_s: float | None, tax: ReportTaxonomy = COV_TAXONOMY) -> str:
    """:func:`timeline_svg`, reused from ``cache_dir`` while the call's version (call_key) is unchanged."""
    if cache_dir is None:
        return timeline_svg(segments, duration_s, tax)
    raw = f"{call['call_key']}|{duration_s}|{tax}|{PIPELINE_VERSION}|{_TIMELINE_VERSION}"
    path = Path(cache_dir) / f"timeline-{hashlib.sha256(raw.encode()).hexdigest()[:24]}.svg"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    svg = timeline_svg(segments, duration_s, tax)
    try:
        write_bytes_atomic(path, svg.encode("utf-8"))
    except OSError:  # a cache that cannot be written is only slower
        pass
    return svg


def stage_mix_svg(mixes: list[tuple[str, dict[str, float]]], title: str,
                  tax: ReportTaxonomy = COV_TAXONOMY) -> str:
    """Horizontal stacked bars of stage shares, one bar per label."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.32 * max(len(mixes), 1)))
    names = [_safe_label(n) for n, _ in mixes]
    left = [0.0] * len(mixes)
    for stage, colour in stage_colours(tax).items():
        values = [m.get(stage, 0.0) for _, m in mixes]
        ax.barh(names, values, left=left, color=colour, label=_safe_label(stage), height=0.66)
        left = [a + b for a, b in zip(left, values)]
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
    ax.invert_yaxis()
    ax.set_title(title, loc="left")
    ax.legend(ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    return _svg(fig)


#: The trend chart draws at most this many reps (those with the most calls) beside the team median.
MAX_TREND_REPS = 10


def trend_svg(reps: list[dict[str, Any]], team_trend: dict[str, float]) -> str | None:
    """Weekly median action share per rep (at most :data:`MAX_TREND_REPS`, those with the most calls), with
    the team's weekly median (``team_trend``, every rep's calls, also in a report filtered to one rep) dashed."""
    weeks = sorted({w for r in reps for w in r["trend"]})
    if not weeks:
        return None

    def monday(week: str) -> dt.date:
        year, number = week.split("-W")
        return dt.date.fromisocalendar(int(year), int(number), 1)

    # weeks placed by the calendar: a week without calls is a gap on the axis, not a step skipped
    first = monday(weeks[0])

    def x(week: str) -> int:
        return (monday(week) - first).days // 7

    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    # a line per rep stops being readable past a few (ten colours, a legend taller than the chart)
    drawn = sorted(reps, key=lambda r: (-r["n_calls"], r["rep"]))[:MAX_TREND_REPS]
    for r in sorted(drawn, key=lambda r: r["rep"]):
        ax.plot([x(w) for w in r["trend"]], list(r["trend"].values()), marker="o", label=_safe_label(r["rep"]))
    if len(drawn) < len(reps):
        ax.set_title(f"the {len(drawn)} of {len(reps)} reps with the most calls; the Reps table has every rep",
                     fontsize=8, loc="left")
    shown = [w for w in sorted(team_trend) if weeks[0] <= w <= weeks[-1]]
    ax.plot([x(w) for w in shown], [team_trend[w] for w in shown], linestyle="--", color="#444",
            label="team median")
    step = max(1, len(weeks) // 12)  # at most about a dozen labels
    ax.set_xticks([x(w) for w in weeks[::step]], weeks[::step])
    if len(weeks[::step]) > 6:  # "2026-W45" labels side by side overlap past about six
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
    ax.set_ylabel("action share")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _svg(fig)


