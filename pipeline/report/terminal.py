"""Read scored calls back and present them: the terminal summary table.

Reports read the Parquet datasets; they never recompute scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.display import printable
from pipeline.store import local as store

__all__ = [
    "load_call_rows", "load_error_rows", "verdict", "format_pct", "headline", "render_summary", "render_errors",
]


def load_call_rows(out_dir: Path) -> list[dict[str, Any]]:
    """Rows of the ``calls`` dataset as dicts, sorted by date then call id.

    One row per call identity (``source_id``); should an output folder written by an older
    callcycle hold several, only the newest is kept.
    """
    rows = store.read_dataset(out_dir, "calls").to_pylist()
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["source_id"] or row["source_path"]
        if key not in newest or row["processed_at"] > newest[key]["processed_at"]:
            newest[key] = row
    return sorted(newest.values(), key=lambda r: (str(r["call_date"] or ""), r["call_id"]))


def load_error_rows(out_dir: Path) -> list[dict[str, Any]]:
    """Rows of the ``errors`` dataset, oldest first."""
    return sorted(store.read_dataset(out_dir, "errors").to_pylist(), key=lambda r: r["occurred_at"])


def verdict(action_share: float | None) -> str:
    """Plain-language reading of a call's action share."""
    if action_share is None:
        return "no work discussed"
    if action_share >= 0.35:
        return "moves work forward"
    if action_share >= 0.15:
        return "some commitments"
    return "mostly talk"


def format_pct(value: float | None) -> str:
    """A share as a whole percentage; an em dash when undefined."""
    return "—" if value is None else f"{value:.0%}"


def render_summary(rows: list[dict[str, Any]], console: Any = None) -> None:
    """Print the scored-calls table (rich); every column fits an 80-column terminal.

    Names come from input files and are printed through :func:`~pipeline.display.printable`
    (no terminal escape sequences) and rich's markup escape.
    """
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    if not rows:
        console.print("[yellow]No scored calls found.[/] Run `callcycle run` first.")
        return
    stages = list(dict.fromkeys(k for r in rows for k, _ in (r["stage_shares"] or [])))
    mix_header = "/".join(s[:2] for s in stages) or "mix"
    table = Table(title=f"Scored calls ({len(rows)})", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=f"action: green ≥35% moves work forward, yellow some commitments, red mostly talk; "
                          f"{mix_header} = % of speech per stage ({', '.join(stages)}).")
    table.add_column("call", overflow="fold", min_width=10, ratio=3)
    table.add_column("rep", overflow="fold", min_width=4, ratio=1)
    table.add_column("date", no_wrap=True, min_width=10)
    table.add_column("min", justify="right", no_wrap=True)
    table.add_column("action", justify="right", no_wrap=True)
    table.add_column("t:a", justify="right", no_wrap=True)
    table.add_column(mix_header, justify="right", no_wrap=True)
    table.add_column("cycle", overflow="fold", min_width=8)
    colours = {"moves work forward": "green", "some commitments": "yellow", "mostly talk": "red"}
    for r in rows:
        shares = dict(r["stage_shares"] or [])
        ratio = r["talk_action_ratio"]
        present = r["stages_present"] or []
        cycle = "complete" if r["cycle_complete"] else ("open loop" if "adjust" not in present else "partial")
        minutes = (r["audio_duration_s"] or r["speech_s"] or 0) / 60
        mix = "/".join(f"{100 * shares.get(s, 0.0):.0f}" for s in stages)
        colour = colours.get(verdict(r["action_share"]), "dim")
        table.add_row(
            escape(printable(r["call_id"])), escape(printable(r["rep"] or "—")), str(r["call_date"] or "—"),
            f"{minutes:.1f}", f"[{colour}]{format_pct(r['action_share'])}[/]",
            "—" if ratio is None else f"{ratio:.1f}", mix, cycle,
        )
    console.print(table)
    console.print(headline(rows))


def headline(rows: list[dict[str, Any]]) -> str:
    """The report's "team at a glance" figures as one line (same numbers as the HTML report)."""
    from pipeline.report.html import team_glance

    g = team_glance(rows)
    return (f"{g['calls']} calls · median action share {format_pct(g['median_action_share'])} · "
            f"{g['complete']}/{g['calls']} complete Align → Act → Adjust cycles · {g['flagged']} flagged for "
            "attention (see the HTML report for why)")


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
    for r in rows:
        table.add_row(escape(printable(Path(r["source_path"]).name)), r["step"], escape(printable(r["message"])),
                      escape(printable(r["hint"] or "")))
    console.print(table)
