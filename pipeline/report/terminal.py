"""The terminal summary: the scored-calls table, the failed inputs and the headline line.

``load_call_rows``/``load_error_rows``/``verdict``/``format_pct`` are re-exported from
:mod:`~pipeline.report.data` and :mod:`~pipeline.report.rules` for existing callers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.display import printable
from pipeline.report.data import load_call_rows, load_error_rows, report_taxonomy
from pipeline.report.rules import (
    COV_TAXONOMY,
    ReportTaxonomy,
    call_verdict,
    cycle_status,
    format_pct,
    format_share,
    marked_unsure,
    most_recent,
    open_loop_meaning,
    other_versions,
    scored_by,
    team_glance,
    verdict,
)

__all__ = [
    "load_call_rows", "load_error_rows", "verdict", "format_pct", "headline", "render_summary", "render_run_summary",
    "render_errors", "RUN_TABLE_ROWS",
]


def render_summary(rows: list[dict[str, Any]], console: Any = None, tax: ReportTaxonomy | None = None,
                   failed: int = 0, narrowed_to: str = "", limit: int | None = None) -> None:
    """Print the scored-calls table (rich) and the headline; every column fits an 80-column terminal.

    ``limit``: the table lists only the ``limit`` most recent calls (:func:`~pipeline.report.rules.most_recent`,
    kept in date order) and says how many it left out; the headline still covers every row.

    ``failed`` (rows of ``errors``) only changes what is said when no call is scored yet.
    ``narrowed_to`` names the filters that chose ``rows`` (:meth:`~pipeline.report.data.ReportData.narrowed_to`):
    the title and the headline say so, and no rows is "no calls matched", not "none scored".
    Names come from input files and are printed through :func:`~pipeline.display.printable`
    (no terminal escape sequences) and rich's markup escape.
    """
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    only = f" ({escape(printable(narrowed_to))})" if narrowed_to else ""
    if not rows:
        if narrowed_to:
            console.print(f"[yellow]No calls matched[/]{only}. Widen --since/--rep/--team.", soft_wrap=True)
        else:
            console.print(f"[yellow]No scored calls yet[/]: {failed} input(s) failed (below)." if failed else
                          "[yellow]No scored calls found.[/] Run `callcycle run` first.")
        return
    tax = tax or report_taxonomy(rows)
    shown = rows
    if limit is not None and len(rows) > limit:
        recent = {id(r) for r in most_recent(rows, limit)}
        shown = [r for r in rows if id(r) in recent]
    title = f"Scored calls ({len(rows)}){only}" + (f", the {len(shown)} most recent" if len(shown) < len(rows) else "")
    console.print(_calls_table(shown, tax, title, console.width))
    if len(shown) < len(rows):
        console.print(f"… {len(rows) - len(shown)} older call(s) not listed (--limit {limit}); the line below "
                      f"covers all {len(rows)}.", soft_wrap=True)
    console.print(("Only " + escape(printable(narrowed_to)) + ": " if narrowed_to else "")
                  + headline(rows, tax, narrowed=bool(narrowed_to)))
    _print_provenance(rows, console)


def _print_provenance(rows: list[dict[str, Any]], console: Any) -> None:
    """Say so under the headline when ``rows`` were scored by several classifiers or by another pipeline
    version (the HTML report's header says the same)."""
    from rich.markup import escape

    from pipeline import PIPELINE_VERSION

    if len({r.get("classifier_version") for r in rows}) > 1:
        console.print(f"[yellow]note:[/] scored by {escape(scored_by(rows))}")
    versions = other_versions(rows, PIPELINE_VERSION)
    if versions:
        console.print(f"[yellow]note:[/] {escape(versions)}")


#: At most this many calls are listed at the end of ``callcycle run``; ``callcycle summary`` lists them all.
RUN_TABLE_ROWS = 50


def render_run_summary(rows: list[dict[str, Any]], touched: set[str], out: str, console: Any = None,
                       limit: int = RUN_TABLE_ROWS) -> None:
    """What ``callcycle run`` prints at its end: the calls this run scored or updated (``touched``:
    their ``call_key``s; at most ``limit`` of them), then the headline over every stored call.

    A nightly run over a large archive lists what it did that night, not the whole archive.
    """
    import shlex

    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    if not rows:
        return
    tax = report_taxonomy(rows)
    mine = [r for r in rows if r["call_key"] in touched]
    look = f"`callcycle summary {escape(shlex.quote(printable(out)))}`"
    if mine:
        console.print(_calls_table(mine[:limit], tax, f"Scored or updated in this run ({len(mine)})", console.width))
        if len(mine) > limit:
            console.print(f"… and {len(mine) - limit} more; {look} lists every stored call.", soft_wrap=True)
    else:
        stored = f"{len(rows)} stored call{'' if len(rows) == 1 else 's'}"
        console.print(f"No call was scored or updated in this run; {look} lists the {stored}.", soft_wrap=True)
    console.print(headline(rows, tax))
    _print_provenance(rows, console)


#: Below this many columns the call's rep and date go under its name, which gets their width (at 80
#: columns a call id was folded every 10 characters).
STACKED_BELOW = 110


def _calls_table(rows: list[dict[str, Any]], tax: ReportTaxonomy, title: str, width: int = 80) -> Any:
    """The scored-calls table of ``rows`` (a rich Table) for a terminal ``width`` columns wide."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    stages = list(dict.fromkeys(k for r in rows for k, _ in (r["stage_shares"] or [])))
    mix_header = "/".join(s[:2] for s in stages) or "mix"
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=f"action: share of work talk that was action, ± half its 90% interval (cut at 0% and 100%; "
                          f"the HTML report gives the range), ? when that interval reaches another verdict; n=N: only "
                          f"N segments (or about N of work talk), too short to judge; "
                          f"+ (green) ≥35% "
                          f"moves work forward, ~ (yellow) some commitments, ! (red) mostly talk; t:a = seconds "
                          f"of talk per second of action; {mix_header} = % of speech per stage "
                          f"({', '.join(stages)}); cycle: complete, open loop ({open_loop_meaning(tax)}), "
                          f"partial (another stage missing), or no work (no stage of the cycle at all).")
    stacked = width < STACKED_BELOW
    if stacked:
        table.add_column("call · rep · date", overflow="fold", min_width=10, ratio=1)
    else:
        table.add_column("call", overflow="fold", min_width=10, ratio=3)
        table.add_column("rep", overflow="fold", min_width=4, ratio=1)
        table.add_column("date", no_wrap=True, min_width=10)
    table.add_column("min", justify="right", no_wrap=True)
    table.add_column("action", justify="right", no_wrap=True)
    table.add_column("t:a", justify="right", no_wrap=True)
    table.add_column(mix_header, justify="right", no_wrap=True)
    table.add_column("cycle", overflow="fold", min_width=8)
    colours = {"moves work forward": "green", "some commitments": "yellow", "mostly talk": "red"}
    marks = {"moves work forward": "+", "some commitments": "~", "mostly talk": "!"}  # the verdict without colour
    # two calls of one name (a.wav and a.mp3, or the same name in two folders) are told apart by identity
    counts = Counter(r["call_id"] for r in rows)
    for r in rows:
        shares = dict(r["stage_shares"] or [])
        ratio = r["talk_action_ratio"]
        cycle = cycle_status(r, tax)
        minutes = (r["audio_duration_s"] or r["speech_s"] or 0) / 60
        mix = "/".join(f"{100 * shares.get(s, 0.0):.0f}" for s in stages)
        said = call_verdict(r)  # "too short to judge" gets no mark: a verdict it cannot carry
        unsure = "?" if marked_unsure(r) else " "  # the interval reaches another verdict
        share = f"[{colours.get(said, 'dim')}]{format_share(r, compact=True)} {marks.get(said, ' ')}{unsure}[/]"
        name = escape(printable(r["call_id"] if counts[r["call_id"]] == 1 else r["source_id"] or r["source_path"]))
        rep, day = escape(printable(r["rep"] or "—")), str(r["call_date"] or "—")
        who = [f"{name}\n[dim]{rep} · {day}[/]"] if stacked else [name, rep, day]
        table.add_row(*who, f"{minutes:.1f}", share, "—" if ratio is None else f"{ratio:.1f}", mix, cycle)
    return table


def headline(rows: list[dict[str, Any]], tax: ReportTaxonomy = COV_TAXONOMY, narrowed: bool = False) -> str:
    """The report's "team at a glance" figures as one line (same numbers as the HTML report).

    ``narrowed``: ``rows`` were chosen by --since/--rep/--team, so the report that explains the flags
    is one written with the same options (the default report covers every call).
    """
    g = team_glance(rows, tax=tax)
    calls = f"{g['calls']} call{'s' if g['calls'] != 1 else ''}"
    where = "`callcycle report` with the same --since/--rep/--team" if narrowed else "the HTML report"
    return (f"{calls} · median action share {format_pct(g['median_action_share'])} · "
            f"{g['complete']}/{g['calls']} complete {tax.arrow()} cycles · {g['flagged']} flagged for "
            f"attention (see {where} for why)")


def render_errors(rows: list[dict[str, Any]], console: Any = None) -> None:
    """Print recorded failures with what to do about each."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if not rows:
        return
    console = console or Console()
    table = Table(title=f"Failed inputs ({len(rows)})", header_style="bold red", show_lines=False)
    for col in ("file", "step", "error", "what to do"):
        table.add_column(col, overflow="fold")
    # a file by its name, or by its path as given where two failed files share a name
    # (nightly/d1/call_0001.json and nightly/d2/call_0001.json are two inputs)
    names = Counter(Path(r["source_path"]).name for r in rows)
    for r in rows:
        name = Path(r["source_path"]).name
        table.add_row(escape(printable(name if names[name] == 1 else r["source_path"])), r["step"],
                      escape(printable(r["message"])), escape(printable(r["hint"] or "")))
    console.print(table)
