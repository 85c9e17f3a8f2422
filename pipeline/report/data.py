"""Read what the report shows: stored calls (one row per call identity), errors, segments, taxonomy.

Reports read the Parquet datasets; they never recompute scores.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.display import printable
from pipeline.objectstore import same_location
from pipeline.report.rules import (
    COV_TAXONOMY,
    ReportTaxonomy,
    median_share,
    most_recent,
    rep_display_name,
    rep_key,
    weekly_medians,
)
from pipeline.store.base import OutputLocation, open_store

__all__ = ["ReportData", "load_call_rows", "load_error_rows", "load_report_data", "report_taxonomy", "resolve_rep",
           "rep_name", "read_teams", "default_teams", "team_members", "resolve_team", "TEAMS_FILE"]

logger = logging.getLogger("callcycle.report")

#: The rep-to-team file a folder output's report reads when none is named (``OUT/teams.csv``).
TEAMS_FILE = "teams.csv"


def load_call_rows(out_dir: OutputLocation) -> list[dict[str, Any]]:
    """Rows of the ``calls`` dataset as dicts, sorted by date (undated calls last) then call id.

    A rep written several ways ("Dana Whitfield", "dana whitfield ") gets one name in every row, the
    most common spelling (:func:`~pipeline.report.rules.rep_display_name`); the Parquet rows keep what
    their input gave. One row per call identity (``source_id``); should an output folder written by an older
    callcycle hold several, only the newest is kept. A call whose input now fails (an ``errors`` row
    of the same identity and the same file: it was scored, then replaced by one that does not read) is
    left out: its stored row scores bytes that are no longer the input, and the failure is what is
    current. (Another file failing under a stored call's identity leaves that call in.)
    """
    store = open_store(out_dir)
    failing: dict[str, list[str]] = defaultdict(list)
    for e in store.read_dataset("errors").select(["source_id", "source_path"]).to_pylist():
        failing[e["source_id"]].append(e["source_path"])
    rows = [r for r in store.read_dataset("calls").to_pylist()
            if not any(same_location(r["source_path"], path) for path in failing.get(r["source_id"], ()))]
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["source_id"] or row["source_path"]
        if key not in newest or row["processed_at"] > newest[key]["processed_at"]:
            newest[key] = row
    for row in newest.values():  # names come from files: shown without control or bidi characters anywhere
        for name in ("call_id", "rep", "customer"):
            if isinstance(row.get(name), str):
                row[name] = printable(row[name])
    spellings: dict[str, list[str | None]] = defaultdict(list)
    for row in newest.values():
        if row.get("rep"):
            spellings[rep_key(row["rep"])].append(row["rep"])
    for row in newest.values():  # one rep, one name: "dana whitfield " is shown as "Dana Whitfield" everywhere
        if row.get("rep"):
            row["rep"] = rep_display_name(spellings[rep_key(row["rep"])])
    return sorted(newest.values(), key=lambda r: (r["call_date"] is None, str(r["call_date"] or ""), r["call_id"]))


def resolve_rep(calls: list[dict[str, Any]], rep: str) -> str:
    """The :func:`~pipeline.report.rules.rep_key` of the rep ``rep`` names among ``calls``: the same name
    (case, spacing and accent encoding aside), else the one rep whose first or last name it is ("dana" for
    "Dana Kowalski", :func:`~pipeline.speech.roles.best_matches`).

    Raises:
        InputError: no rep of that name, or several reps it could be (both listed).
    """
    from pipeline.errors import InputError
    from pipeline.speech.roles import best_matches

    names: dict[str, list[str | None]] = defaultdict(list)
    for call in calls:
        if call.get("rep"):
            names[rep_key(call["rep"])].append(call["rep"])
    if rep_key(rep) in names:
        return rep_key(rep)
    shown_as = {rep_display_name(spelled): key for key, spelled in names.items()}
    close = sorted(shown_as[name] for name in best_matches(rep, list(shown_as)))
    if len(close) == 1:
        return close[0]
    shown = [rep_display_name(names[key]) for key in (close or sorted(names))]
    listing = ", ".join(repr(name) for name in shown[:20]) + (f" and {len(shown) - 20} more" if len(shown) > 20 else "")
    if close:
        raise InputError(f"--rep {rep!r} could be any of {len(close)} reps: {listing}.",
                         "Give the rep's full name as the report's Reps table shows it.")
    raise InputError(f"No rep named {rep!r} in this output" + (f"; its reps are {listing}." if shown else
                                                                  " (no call in it has a rep)."),
                     "Give a rep's name as the report's Reps table shows it (case does not matter), or leave "
                     "--rep out for the whole team.")


def rep_name(out_dir: OutputLocation, rep: str) -> str:
    """The name the rep ``rep`` stands for (:func:`resolve_rep`) is shown with in ``out_dir``'s calls.

    Raises:
        InputError: as :func:`resolve_rep`.
    """
    calls = load_call_rows(out_dir)
    wanted = resolve_rep(calls, rep)
    return next(c["rep"] for c in calls if rep_key(c["rep"]) == wanted)


def read_teams(path: Path) -> dict[str, str]:
    """``{rep_key: team}`` from a CSV with the columns ``rep`` and ``team`` (any order, any case; comma,
    semicolon or tab separated, as a spreadsheet saves it). A team is a group of reps, not of calls: a rep's
    calls all count for the team the file names now. Rows with an empty rep or team are skipped.

    Raises:
        InputError: the file does not read as such a CSV, or names one rep in two teams.
    """
    from pipeline.errors import InputError
    from pipeline.tables import csv_delimiter

    hint = f"Save {path.name} as UTF-8 CSV with the header rep,team and one row per rep."
    teams: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            delimiter = csv_delimiter(handle.readline())
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=delimiter)
            reader.fieldnames = [str(n).strip().lower() for n in reader.fieldnames or []]
            if not {"rep", "team"} <= set(reader.fieldnames):
                raise InputError(f"{printable(str(path))} has no 'rep' and 'team' columns.", hint)
            for row in reader:
                rep, team = (" ".join(str(row.get(k) or "").split()) for k in ("rep", "team"))
                if not rep or not team:
                    continue
                key = rep_key(rep)
                if teams.get(key, team) != team:
                    raise InputError(f"{printable(str(path))} line {reader.line_num}: {printable(rep)!r} is in two "
                                     f"teams, {printable(teams[key])!r} and {printable(team)!r}.",
                                     "Keep one row per rep: the team they are in now.")
                teams[key] = team
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"Cannot read the teams file {printable(str(path))}: {exc}.", hint) from exc
    return teams


def default_teams(out_dir: OutputLocation) -> Path | None:
    """``OUT/teams.csv`` when ``out_dir`` is a folder that has one (an ``s3://`` output: name it with --teams)."""
    from pipeline import objectstore

    if objectstore.is_uri(str(out_dir)):
        return None
    path = Path(str(out_dir)) / TEAMS_FILE
    return path if path.is_file() else None


def team_members(out_dir: OutputLocation, teams: Path | None = None) -> dict[str, str]:
    """:func:`read_teams` of ``teams``, else of :func:`default_teams` (``{}`` when there is no teams file)."""
    teams = teams if teams is not None else default_teams(out_dir)
    return read_teams(Path(teams)) if teams is not None else {}


def resolve_team(teams: dict[str, str], team: str) -> str:
    """The team of ``teams`` that ``team`` names (case and spacing aside).

    Raises:
        InputError: no such team (the teams are listed), or no teams file.
    """
    from pipeline.errors import InputError

    names = sorted(set(teams.values()))
    wanted = [name for name in names if rep_key(name) == rep_key(team)]
    if wanted:
        return wanted[0]
    if not names:
        raise InputError(f"--team {team!r}: there is no teams file, so no team is known.",
                         f"Write {TEAMS_FILE} (columns rep,team) into the output folder, or name one with --teams.")
    raise InputError(f"No team named {team!r}; the teams are " + ", ".join(repr(n) for n in names[:20]) + ".",
                     "Give a team's name as the teams file writes it (case does not matter).")


def load_error_rows(out_dir: OutputLocation) -> list[dict[str, Any]]:
    """Rows of the ``errors`` dataset, oldest first."""
    return sorted(open_store(out_dir).read_dataset("errors").to_pylist(), key=lambda r: r["occurred_at"])


def report_taxonomy(calls: list[dict[str, Any]], models: Path | None = None) -> ReportTaxonomy:
    """The stage taxonomy the calls were scored with.

    Looked up in the card of the classifier that scored them (``models`` or the default models
    folder), then the default taxonomy file when its name matches; failing both, inferred from the
    stored stage shares (labels in stored order; the neutral label is the one never in a cycle).
    """
    from pipeline.paths import models_dir, taxonomy_path

    names = {c["taxonomy"] for c in calls if c.get("taxonomy")}
    root = models_dir(models)
    for version in dict.fromkeys(c["classifier_version"] for c in calls if c.get("classifier_version")):
        card = root / version / "card.json"
        if card.is_file():
            try:
                tax = json.loads(card.read_text(encoding="utf-8"))["taxonomy"]
                stage = next(t for t in tax["tasks"] if t["role"] == "stage")
                return ReportTaxonomy(tax["name"], tuple(stage["labels"]), stage.get("neutral"))
            except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
                logger.warning("the card of classifier %s (%s) cannot be read (%s); the report's stage labels come "
                               "from the taxonomy file or the stored shares instead", version, card, exc)
    try:
        from pipeline.taxonomy import load_taxonomy

        default = load_taxonomy(taxonomy_path())
        if not names or names <= {f"{default.name}/{default.version}"}:
            stage_task = default.by_role("stage")
            return ReportTaxonomy(default.name, tuple(stage_task.labels), stage_task.neutral)
    except Exception as exc:  # noqa: BLE001 - a missing or broken default taxonomy: infer below
        logger.warning("the taxonomy file cannot be read (%s); the report's stage labels are inferred from the "
                       "stored shares", exc)
    labels = tuple(dict.fromkeys(k for c in calls for k, _ in (c["stage_shares"] or [])))
    if not labels:
        return COV_TAXONOMY
    in_cycle = {s for c in calls for s in (c["stage_order"] or [])}
    outside = [label for label in labels if label not in in_cycle]
    return ReportTaxonomy(next(iter(names), "unknown"), labels, outside[0] if len(outside) == 1 else None)


@dataclass
class ReportData:
    """Calls (one row per call identity) and their segments, filtered as asked, and their taxonomy."""

    calls: list[dict[str, Any]]
    segments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    since: dt.date | None = None
    rep: str | None = None
    team: str | None = None
    """The team the report is narrowed to (its name as the teams file writes it)."""
    taxonomy: ReportTaxonomy = COV_TAXONOMY
    team_median: float | None = None
    """Median action share of every rep's calls in the period (``since``), before the ``rep`` filter:
    what a rep is compared with, also in a report filtered to that rep."""
    team_trend: dict[str, float] = field(default_factory=dict)
    """Weekly median action share of every rep's calls in the period, before the ``rep`` filter."""
    failed_inputs: int = 0
    """Inputs that could not be scored (rows of ``errors``, whatever the filters): the report says how
    many, so a manager knows some recordings are missing from the figures."""

    def narrowed_to(self) -> str:
        """The filters as words ("calls since 2026-11-01, team East, rep Dana Whitfield"; "" for none)."""
        filters = []
        if self.since:
            filters.append(f"calls since {self.since.isoformat()}")
        if self.team:
            filters.append(f"team {' '.join(self.team.split())}")
        if self.rep:
            filters.append(f"rep {' '.join(self.rep.split())}")
        return ", ".join(filters)


def load_report_data(out_dir: OutputLocation, since: dt.date | None = None, rep: str | None = None,
                     models: Path | None = None, scorecards: int | None = None, team: str | None = None,
                     teams: Path | None = None, call_rows: list[dict[str, Any]] | None = None) -> ReportData:
    """Read the stored calls and segments under ``out_dir`` (a folder or an ``s3://`` prefix).

    ``since`` keeps calls on or after that date (calls without a date are dropped when it is set);
    ``rep`` keeps one rep's calls (case-insensitive). Segments are kept only for the kept calls, and
    with ``scorecards`` only for that many of them, the most recent (:func:`~pipeline.report.rules.most_recent`:
    the calls the report gives a scorecard). ``teams`` (default :func:`default_teams`) gives each call the
    ``team`` of its rep (:func:`read_teams`; ``None`` for a rep it does not name), and ``team`` keeps one
    team's calls: its reps are then compared with that team's median. ``call_rows``: the rows of
    :func:`load_call_rows` for ``out_dir`` when the caller has them already (they are not read again).
    """
    out = open_store(out_dir)
    calls = every = load_call_rows(out) if call_rows is None else call_rows
    members = team_members(out_dir, teams)
    for call in every:
        call["team"] = members.get(rep_key(call["rep"])) if call.get("rep") else None
    if team is not None:
        team = resolve_team(members, team)
        calls = [c for c in calls if c["team"] == team]
    if since is not None:
        calls = [c for c in calls if c["call_date"] is not None and c["call_date"] >= since]
    team_median, team_trend = median_share(calls), weekly_medians(calls)
    if rep is not None:
        wanted_rep = resolve_rep(every, rep)  # any rep of the output, so "no such rep" is not "no calls since"
        calls = [c for c in calls if rep_key(c["rep"]) == wanted_rep]
        rep = next(c["rep"] for c in every if rep_key(c["rep"]) == wanted_rep)  # one name per rep (above)
    keys = {c["call_key"] for c in (calls if scorecards is None else most_recent(calls, scorecards))}
    segments: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if keys:
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = [c["source_id"] for c in calls if c["call_key"] in keys]
        table = out.read_segments(wanted)  # only these calls' files, not the whole archive's
        table = table.filter(pc.is_in(table.column("call_key"), value_set=pa.array(sorted(keys))))
        for row in table.to_pylist():
            segments[row["call_key"]].append(row)
    for rows in segments.values():
        rows.sort(key=lambda r: r["segment_index"])
    return ReportData(calls=calls, segments=dict(segments), since=since, rep=rep, team=team,
                      taxonomy=report_taxonomy(calls, models), team_median=team_median, team_trend=team_trend,
                      failed_inputs=out.read_dataset("errors").num_rows)


