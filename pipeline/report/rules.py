"""What the figures mean: verdicts, flags, rep groupings, the team glance — one rule in one place.

Pure functions over stored rows (dicts read from the ``calls``/``segments`` datasets); both the
terminal summary and the HTML report use them, so a figure means the same thing in both.
Stage names, the cycle and its order come from a :class:`ReportTaxonomy` (the artifact's
taxonomy), so a different taxonomy (e.g. Plan-Do-Check-Act) is reported without code changes.
"""

from __future__ import annotations

import datetime as dt
import statistics
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from pipeline import version_order

__all__ = [
    "Thresholds", "ReportTaxonomy", "COV_TAXONOMY", "verdict", "verdict_unsure", "format_pct", "format_share",
    "interval_half_width", "rep_key", "rep_display_name",
    "call_flags", "rep_summaries", "median_share", "team_glance", "talk_heavy_stretch", "cycle_sentence",
    "cycle_status", "iso_week", "MAX_SCORECARDS", "MAX_CHART_CALLS", "most_recent",
    "MIN_SEGMENTS_TO_JUDGE", "too_short_to_judge", "work_segments", "call_verdict", "marked_unsure",
    "judged_share", "gap_points", "VERDICT_ORDER", "team_summaries", "NO_TEAM", "open_loop_meaning",
    "scored_by", "other_versions",
]

#: The report gives a scorecard to at most this many calls, the most recent (``callcycle report --scorecards``).
MAX_SCORECARDS = 200
#: At most this many bars in the report's per-call stage chart (the most recent calls).
MAX_CHART_CALLS = 40
#: A call with fewer segments than this gets no verdict, interval or "mostly talk" flag: its stored
#: interval covers what the classifiers are unsure of and which of its segments were said, and with one
#: or two segments that resampling has nothing to draw from (a one-sentence call reads "100% ± 0").
MIN_SEGMENTS_TO_JUDGE = 3


def work_segments(call: dict[str, Any], neutral: str | None = "other") -> float | None:
    """About how many of a call's segments were work talk: its segments times the share of its speech that
    was not small talk (``neutral``), as the calls table stores no count by stage. ``None`` when not stored."""
    n = call.get("n_segments")
    if n is None:
        return None
    shares = dict(call.get("stage_shares") or [])
    if neutral is None or neutral not in shares:
        return float(n)
    return n * max(0.0, 1.0 - float(shares[neutral] or 0.0))


def too_short_to_judge(call: dict[str, Any]) -> bool:
    """True when a call has a share but fewer than :data:`MIN_SEGMENTS_TO_JUDGE` segments, or about that few
    segments of work talk (:func:`work_segments`): four segments of which three are greetings rest the share
    on one sentence, and resampling one sentence cannot say how sure it is."""
    n, work = call.get("n_segments"), work_segments(call)
    if call.get("action_share") is None or n is None:
        return False
    return n < MIN_SEGMENTS_TO_JUDGE or (work is not None and round(work) < MIN_SEGMENTS_TO_JUDGE)


def judged_share(call: dict[str, Any]) -> float | None:
    """A call's action share as it counts in medians, weekly trends and rep flags: ``None`` for a call with
    no work talk or one :func:`too_short_to_judge` (a voicemail's "0% (only 2 segments)" is no evidence
    that a rep's calls are mostly talk, and the report itself gives it no verdict)."""
    return None if too_short_to_judge(call) else call.get("action_share")


def _judged_count(call: dict[str, Any]) -> tuple[int, bool]:
    """What a call too short to judge rests on: ``(its segments, False)`` when fewer than
    :data:`MIN_SEGMENTS_TO_JUDGE`, else ``(its segments of work talk, True)`` — :func:`work_segments` as a
    whole number, at least 1 for a call with a share (it has some work talk)."""
    n = call["n_segments"]
    if n < MIN_SEGMENTS_TO_JUDGE:
        return n, False
    return max(1, round(work_segments(call) or 0)), True


def _judged_on(call: dict[str, Any]) -> str:
    """What a call too short to judge has: "1 segment" or "1 segment of work talk" (an estimate)."""
    n, of_work = _judged_count(call)
    return f"{n} segment{'s' if n != 1 else ''}" + (" of work talk" if of_work else "")


def call_verdict(call: dict[str, Any]) -> str:
    """The verdict a call is shown with: :func:`verdict` of its share, or "too short to judge"."""
    return "too short to judge" if too_short_to_judge(call) else verdict(call.get("action_share"))


def marked_unsure(call: dict[str, Any]) -> bool:
    """Whether the shown verdict gets its "?": :func:`verdict_unsure`, except for a call whose verdict is
    already "too short to judge"."""
    return verdict_unsure(call) and not too_short_to_judge(call)


def _as_shown(share: float) -> float:
    """A share as the report prints it (whole percent), so a verdict never contradicts the number beside
    it (0.3494 prints "35%" and must read "moves work forward", as the legend says of 35%)."""
    return int(f"{share:.0%}".rstrip("%")) / 100


def most_recent(calls: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The ``n`` most recent calls, by call date and then by when they were scored (undated calls last)."""
    def when(call: dict[str, Any]) -> tuple[dt.date, dt.datetime]:
        return (call["call_date"] or dt.date.min,
                call.get("processed_at") or dt.datetime.min.replace(tzinfo=dt.UTC))

    return sorted(calls, key=when, reverse=True)[:max(0, n)]


@dataclass(frozen=True, slots=True)
class ReportTaxonomy:
    """The stage labels a report shows: all of them in taxonomy order, the neutral one, the cycle."""

    name: str
    labels: tuple[str, ...]
    neutral: str | None

    @property
    def cycle(self) -> tuple[str, ...]:
        """Stages that make up the cycle, in order (every label but the neutral one)."""
        return tuple(label for label in self.labels if label != self.neutral)

    def arrow(self) -> str:
        return " → ".join(s.capitalize() for s in self.cycle)


COV_TAXONOMY = ReportTaxonomy("cycle-of-value", ("align", "act", "adjust", "other"), "other")

# Plain-language reasons for the shipped Cycle-of-Value stages; other taxonomies get a generic sentence.
_MISSING = {
    "align": "No Align: nobody established goals, priorities or the customer's situation.",
    "act": "No Act: no request, offer, promise or next step was made.",
    "adjust": "Open loop: nothing was reviewed or adjusted.",
}


@dataclass(frozen=True)
class Thresholds:
    """When a call or a rep is flagged for a manager's attention."""

    low_action_share: float = 0.15
    """A call whose action share is below this is "mostly talk"."""
    rep_gap_below_median: float = 0.15
    """A rep whose median action share is this far below the team median is flagged."""
    min_calls_for_rep_flags: int = 3
    """Every rep-level flag (below the team median, mostly talk, no Align / no Adjust across calls) needs
    at least this many of the rep's calls with work talk; fewer are flagged call by call only."""
    pattern_share: float = 0.66
    """Share of a rep's calls missing a stage before the rep is flagged for it."""
    long_monologue_s: float = 90.0
    """A monologue longer than this is called out on the scorecard."""


def verdict(action_share: float | None) -> str:
    """Plain-language reading of a call's action share."""
    if action_share is None:
        return "no work discussed"
    action_share = _as_shown(action_share)
    if action_share >= 0.35:
        return "moves work forward"
    if action_share >= 0.15:
        return "some commitments"
    return "mostly talk"


#: Verdicts from worst to best: the calls table sorts its verdict column in this order, not alphabetically.
VERDICT_ORDER = ("no work discussed", "too short to judge", "mostly talk", "some commitments", "moves work forward")


def verdict_unsure(call: dict[str, Any]) -> bool:
    """True when the call's 90% action-share interval reaches another verdict than its share's (the
    report marks the verdict with "?", and flags a call "mostly talk" only when the whole interval is),
    or when the call is :func:`too_short_to_judge`."""
    if too_short_to_judge(call):
        return True
    low, high = call.get("action_share_low"), call.get("action_share_high")
    if call.get("action_share") is None or low is None or high is None:
        return False
    return verdict(low) != verdict(high)


def format_pct(value: float | None) -> str:
    """A share as a whole percentage; an em dash when undefined."""
    return "—" if value is None else f"{value:.0%}"


def interval_half_width(call: dict[str, Any]) -> float | None:
    """Half the width of a call's 90% action-share interval; ``None`` when not stored."""
    low, high = call.get("action_share_low"), call.get("action_share_high")
    if low is None or high is None or call.get("action_share") is None:  # no share, nothing to be unsure of
        return None
    return max(0.0, (high - low) / 2.0)


def format_share(call: dict[str, Any], compact: bool = False) -> str:
    """A call's action share with its 90% interval as ``41% ± 6`` (points), or as its range when the
    interval is lopsided (``0% (0–7)``); plain when none is stored.

    ``compact`` drops the spaces (``41%±6``), for the terminal table's narrow column. A call
    :func:`too_short_to_judge` shows its number of segments instead of an interval (``100% (only 1
    segment)``, compact ``100% n=1``).
    """
    share = call.get("action_share")
    half = interval_half_width(call)
    if too_short_to_judge(call):
        n, _of_work = _judged_count(call)
        return f"{format_pct(share)} n={n}" if compact else f"{format_pct(share)} (only {_judged_on(call)})"
    if share is None or half is None:
        return format_pct(share)
    low, high = call["action_share_low"], call["action_share_high"]
    if not compact and abs((share - low) - (high - share)) * 100 >= 2:
        # lopsided (near 0% or 100%): "± half its width" would misstate where it lies; the terminal's
        # narrow column keeps "± half", which its legend defines
        return f"{share:.0%} ({low * 100:.0f}–{high * 100:.0f})"
    sep = "±" if compact else " ± "
    return f"{share:.0%}{sep}{half * 100:.0f}"


def _missing_sentence(stage: str, tax: ReportTaxonomy) -> str:
    if stage in _MISSING and tax.labels == COV_TAXONOMY.labels:
        return _MISSING[stage]
    if tax.cycle and stage == tax.cycle[-1]:
        return f"Open loop: no {stage.capitalize()} in this call."
    return f"No {stage.capitalize()} in this call."


def cycle_status(call: dict[str, Any], tax: ReportTaxonomy = COV_TAXONOMY) -> str:
    """``complete``; ``open loop`` (every stage of the cycle but its last happened: Align and Act, but no
    Adjust); ``partial`` (any other stage missing); or ``no work`` (no stage of the cycle at all: a voicemail
    or small talk is not a loop left open)."""
    present = call["stages_present"] or []
    if not present and call.get("action_share") is None:
        return "no work"
    if call["cycle_complete"]:
        return "complete"
    if tax.cycle and tax.cycle[-1] not in present and all(s in present for s in tax.cycle[:-1]):
        return "open loop"
    return "partial"


def _listed(words: list[str], last: str = "or") -> str:
    """"Align", "Align or Act", "Align, Act or Adjust" (or with "and")."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def open_loop_meaning(tax: ReportTaxonomy = COV_TAXONOMY) -> str:
    """What :func:`cycle_status` calls an open loop, in words: "Align and Act, no Adjust"."""
    if len(tax.cycle) < 2:
        return "the last stage missing"
    return f"{_listed([s.capitalize() for s in tax.cycle[:-1]], 'and')}, no {tax.cycle[-1].capitalize()}"


def cycle_sentence(call: dict[str, Any], tax: ReportTaxonomy = COV_TAXONOMY,
                   n_commitments: int | None = None) -> str:
    """The scorecard's sentence about the cycle.

    Stages count by their labels, so a call whose only Act is talk about next steps ("we should catch
    up sometime") has a complete cycle; given ``n_commitments`` (segments labelled action) of 0, the
    sentence says that nothing was committed.
    """
    present = call["stages_present"] or []
    status = cycle_status(call, tax)
    if status == "complete":
        sentence = (f"Complete cycle: {', '.join(s.capitalize() for s in tax.cycle[:-1])} and "
                    f"{tax.cycle[-1].capitalize()} all happened." if len(tax.cycle) > 1 else "Complete cycle.")
        if n_commitments == 0 and "act" in tax.cycle:
            sentence += " But Act was only talk about next steps: nothing was committed."
        return sentence
    if status == "no work":
        return "No cycle: no work was discussed."
    if status == "open loop":
        happened = [s.capitalize() for s in tax.cycle if s in present]
        return (f"Open loop: {_listed(happened, 'and')}, but no {tax.cycle[-1].capitalize()}." if happened
                else _missing_sentence(tax.cycle[-1], tax))
    return f"Partial cycle: no {_listed([s.capitalize() for s in tax.cycle if s not in present])}."


def call_flags(call: dict[str, Any], th: Thresholds = Thresholds(), tax: ReportTaxonomy = COV_TAXONOMY) -> list[str]:
    """Reasons a manager should look at this call, each a full sentence."""
    flags = []
    share = call["action_share"]
    present = set(call["stages_present"] or [])
    high = call.get("action_share_high")
    # flag only when even the top of the 90% interval is below the line: never on a difference the
    # score cannot tell apart
    if too_short_to_judge(call) and call["n_segments"] < MIN_SEGMENTS_TO_JUDGE:
        flags.append(f"Too short to judge: only {_judged_on(call)} of speech "
                     f"(a voicemail, a dropped line or a failed recording?).")
    elif too_short_to_judge(call):
        flags.append(f"Too little work talk to judge: only about {_judged_on(call)}; the rest was small talk.")
    elif share is not None and _as_shown(share) < th.low_action_share and (
            high is None or _as_shown(high) < th.low_action_share):
        flags.append(f"Mostly talk: only {format_share(call)} of work talk was action "
                     f"(flag below {th.low_action_share:.0%}).")
    if share is None:  # the missing stages follow from it: one reason, not four
        flags.append("No work was discussed: every segment was small talk or filler.")
    elif not too_short_to_judge(call):  # which stages one or two sentences happened to touch says nothing
        # the stages between the cycle's first and last (Act) are flagged when missing, and the last only as
        # an open loop (all the others happened): a discovery call with no review, or a call that set no
        # goals, is a pattern to see across a rep's calls (rep flags), not a call to look at
        for stage in tax.cycle[1:-1]:
            if stage not in present:
                flags.append(_missing_sentence(stage, tax))
        if cycle_status(call, tax) == "open loop":
            flags.append(_missing_sentence(tax.cycle[-1], tax))
    for sp in call.get("speakers") or []:
        if (sp["longest_monologue_s"] or 0) > th.long_monologue_s:
            flags.append(f"{sp['speaker']} spoke for {sp['longest_monologue_s']:.0f} s without a break.")
    return flags


def gap_points(share: float, median: float) -> int:
    """How many points ``share`` lies above (negative: below) ``median``, as the two whole percentages shown
    beside it subtract: 65% against 66% is -1, never "-0"."""
    return round(_as_shown(share) * 100) - round(_as_shown(median) * 100)


def iso_week(day: dt.date) -> str:
    """The ISO week of ``day`` as ``YYYY-Www`` (the weekly trend's buckets)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _normal(name: str | None) -> str:
    """A name in one Unicode form (NFC: "José" typed with a combined or a separate accent is one
    spelling), without invisible format characters (zero-width spaces, bidi marks), spaces collapsed."""
    text = unicodedata.normalize("NFC", name or "")
    return " ".join("".join(ch for ch in text if unicodedata.category(ch) != "Cf").split())


def rep_key(name: str | None) -> str:
    """Grouping key of a rep's name: "Dana", "dana " and "DANA" are one rep, as are "José" written with
    a combined or a separate accent, and a name with a zero-width space in it."""
    return _normal(name).casefold()


def rep_display_name(names: list[str | None]) -> str:
    """How to show a rep written several ways: the most common spelling (ties: the first in sort order)."""
    cleaned = [_normal(n) for n in names if _normal(n)]
    if not cleaned:
        return "(unknown rep)"
    counts = Counter(cleaned)
    return sorted(counts, key=lambda n: (-counts[n], n))[0]


def rep_summaries(calls: list[dict[str, Any]], th: Thresholds = Thresholds(),
                  tax: ReportTaxonomy = COV_TAXONOMY, team_median: float | None = None) -> list[dict[str, Any]]:
    """Per rep: calls, median action share, stage mix, weekly trend, gap to the team median, flags.

    A rep's calls are summarised as the team's are, by their median: a mean against a median would
    put every rep below the team when many calls score near 0%, even a rep who is the whole team.

    ``team_median`` is the median a rep is compared with; by default that of ``calls`` (a report
    filtered to one rep passes the median of every rep's calls in its period instead).
    """
    if team_median is None:
        team_median = median_share(calls)
    by_rep: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        by_rep[rep_key(c["rep"])].append(c)
    out = []
    for _key, rows in sorted(by_rep.items()):
        rep = rep_display_name([c["rep"] for c in rows])
        med = median_share(rows)
        mix: dict[str, float] = defaultdict(float)  # share of the rep's speech seconds, as a call's mix is
        seconds = sum(float(c.get("speech_s") or 0.0) for c in rows)
        for c in rows:
            weight = float(c.get("speech_s") or 0.0) / seconds if seconds > 0 else 1.0 / len(rows)
            for k, v in (c["stage_shares"] or []):
                mix[k] += v * weight
        trend = weekly_medians(rows)
        flags = []
        gap = points = None
        if med is not None and team_median is not None:
            gap, points = med - team_median, gap_points(med, team_median)
        # small-talk-only calls miss every stage, and a voicemail's one or two sentences say nothing of a rep
        worked = [c for c in rows if judged_share(c) is not None]
        halves = [h for h in (interval_half_width(c) for c in worked) if h is not None]
        # the uncertainty of a rep's figure: calls' interval half-widths averaged, shrinking with sqrt(n)
        margin = statistics.fmean(halves) / len(halves) ** 0.5 if halves else 0.0
        enough = len(worked) >= th.min_calls_for_rep_flags  # one or two calls say nothing about a rep
        if enough and gap is not None and gap <= -max(th.rep_gap_below_median, margin):
            flags.append(f"Median action share {med:.0%} is {-(points or 0)} points below the team "
                         f"median ({team_median:.0%}).")
        if enough and med is not None and med + margin < th.low_action_share:
            flags.append(f"Calls are mostly talk: median action share {med:.0%}.")
        if enough:
            ends = dict.fromkeys((tax.cycle[0], tax.cycle[-1])) if tax.cycle else {}
            for stage, text in ((s, f"No {s.capitalize()}") for s in ends):
                missing = sum(stage not in (c["stages_present"] or []) for c in worked)
                if missing / len(worked) >= th.pattern_share:
                    flags.append(f"{text} in {missing} of {len(worked)} calls with work talk.")
        out.append({
            "rep": rep, "n_calls": len(rows), "median_action_share": med, "gap_to_median": gap,
            "gap_points": points,
            "stage_mix": dict(mix), "trend": trend, "flags": flags,
            "calls_flagged": sum(bool(call_flags(c, th, tax)) for c in rows),
            "complete_cycles": sum(bool(c["cycle_complete"]) for c in rows),
        })
    return out


#: How the report names the team of calls whose rep the teams file does not list.
NO_TEAM = "(no team)"


def team_summaries(calls: list[dict[str, Any]], th: Thresholds = Thresholds(),
                   tax: ReportTaxonomy = COV_TAXONOMY) -> list[dict[str, Any]]:
    """Per team (each call's ``team``, set from a teams file): calls, reps, median action share (as
    :func:`median_share`), complete cycles and calls flagged; teams by name, calls of no team last.
    Empty when no call has a team (no teams file)."""
    if not any(c.get("team") for c in calls):
        return []
    by_team: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        by_team[c.get("team") or NO_TEAM].append(c)
    return [{
        "team": team, "n_calls": len(rows), "n_reps": len({rep_key(c["rep"]) for c in rows if c.get("rep")}),
        "median_action_share": median_share(rows),
        "complete_cycles": sum(bool(c["cycle_complete"]) for c in rows),
        "calls_flagged": sum(bool(call_flags(c, th, tax)) for c in rows),
    } for team, rows in sorted(by_team.items(), key=lambda item: (item[0] == NO_TEAM, item[0].casefold()))]


def weekly_medians(calls: list[dict[str, Any]]) -> dict[str, float]:
    """``{ISO week: median action share}`` of the dated calls with a :func:`judged_share`, weeks in order."""
    weekly: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        share = judged_share(c)
        if c["call_date"] is not None and share is not None:
            weekly[iso_week(c["call_date"])].append(share)
    return {w: statistics.median(v) for w, v in sorted(weekly.items())}


def median_share(calls: list[dict[str, Any]]) -> float | None:
    """The median action share of ``calls`` (calls with no work talk, or too short to judge, left out:
    :func:`judged_share`); ``None`` if none has one."""
    shares = [s for s in (judged_share(c) for c in calls) if s is not None]
    return statistics.median(shares) if shares else None


def team_glance(calls: list[dict[str, Any]], th: Thresholds = Thresholds(),
                tax: ReportTaxonomy = COV_TAXONOMY) -> dict[str, Any]:
    """The headline figures: calls, median action share, complete cycles, calls flagged."""
    return {
        "calls": len(calls),
        "median_action_share": median_share(calls),
        "complete": sum(bool(c["cycle_complete"]) for c in calls),
        "flagged": sum(bool(call_flags(c, th, tax)) for c in calls),
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




def _counted(counts: Counter[str]) -> str:
    return ", ".join(f"{name} ({n} call{'s' if n != 1 else ''})" for name, n in counts.most_common())


def scored_by(calls: list[dict[str, Any]]) -> str:
    """Which classifier versions scored ``calls``: one named, or each with its number of calls (a mix means
    some calls were scored by an older model and are not strictly comparable)."""
    counts = Counter(str(c.get("classifier_version") or "unknown") for c in calls)
    if not counts:
        return "no classifier (no calls)"
    if len(counts) == 1:
        return f"classifier {next(iter(counts))}"
    return (f"{len(counts)} classifiers — {_counted(counts)}; calls scored by different models are not strictly "
            "comparable")


def other_versions(calls: list[dict[str, Any]], current: str) -> str | None:
    """A warning when some of ``calls`` were scored by another pipeline version than ``current`` (the
    stored ``pipeline_version``: a release that changes the rows written for the same input); ``None`` when
    all were scored by ``current``. Such rows stay until a run over their inputs scores them again, and
    figures mixing versions are not strictly comparable. A row without the column counts for neither."""
    counts = Counter(str(c["pipeline_version"]) for c in calls if c.get("pipeline_version"))
    others = Counter({version: n for version, n in counts.items() if version != current})
    if not others:
        return None
    n = sum(others.values())
    share = ("the only call" if len(calls) == 1 else f"all {n} calls" if n == len(calls)
             else f"{n} of {len(calls)} calls")
    newer = [v for v in others if version_order(v) > version_order(current)]
    what = []
    if len(newer) < len(others):
        what.append("`callcycle run` over their inputs scores the older ones again")
    if newer:
        what.append("the newer ones are left as they are by this release: upgrade it to score with theirs")
    return (f"{share} scored by another callcycle pipeline than this one ({current}): {_counted(others)}; "
            f"{'; '.join(what)}; figures that mix versions are not strictly comparable")

