"""The Typer app, consoles and the one error-mapping wrapper every command uses."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer

__all__ = ["app", "command", "console", "fail", "quiet_prefect", "step_reporter"]

app = typer.Typer(
    name="callcycle",
    help="Score recorded sales calls by Cycle-of-Value stage (align / act / adjust) and talk vs action.\n\n"
    "Quick start: `callcycle run data/calls` then `callcycle summary out`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            from pipeline import PIPELINE_VERSION

            typer.echo(f"callcycle {version('callcycle')} (pipeline {PIPELINE_VERSION}: stamped on every row it "
                       "writes; a new one re-scores calls stored by an older one)")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("callcycle (not installed: run `pip install -e .`)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print callcycle's version and exit."),
) -> None:
    """Options that come before the command."""


def console(stderr: bool = False) -> Any:
    """A rich console that never wraps a plain line (tables still fit the terminal)."""
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def step_reporter(con: Any, status: Any, what: str) -> Callable[[str], None]:
    """A progress callback for a long command: each step becomes one line, ``[  12 s] message``
    (seconds since the command started), on ``con`` (use the stderr console where stdout carries
    results, e.g. ``--json``), and the spinner ``status`` shows the step now running."""
    from rich.markup import escape

    from pipeline.display import printable

    started = time.monotonic()

    def show(message: str) -> None:
        text = printable(message)
        con.print(f"[{time.monotonic() - started:4.0f} s] {text}", markup=False, highlight=False)
        status.update(f"{what}: {escape(text)} ...")

    return show


def fail(exc: BaseException | str, code: int = 2) -> NoReturn:
    """Print ``error: <message>`` on stderr (markup and control characters removed) and exit.

    A message that lists problems keeps one per line; every line after the first is indented, so
    a newline hidden in a file name cannot pass for a line of callcycle's own.
    """
    from rich.markup import escape

    from pipeline.display import printable

    lines = [printable(line).strip() for line in str(exc).splitlines()] or [""]
    text = "\n  ".join([lines[0], *(line for line in lines[1:] if line)])
    console(stderr=True).print(f"[bold red]error:[/] {escape(text)}")
    raise typer.Exit(code)


def _exit_now(exc: Exception, code: int) -> None:
    """Say what went wrong and end the process at once, without the exit handlers (see
    :class:`pipeline.errors.OrchestratorLostError`: Prefect would spend seconds per queued event trying to
    reach an API that is gone, which for a large batch is hours). Results are already committed on disk or
    in the bucket; nothing of callcycle's waits on exit handlers."""
    try:  # on a line of its own: Prefect may have left one unfinished ("All connection attempts failed")
        sys.stderr.write("\n")
        fail(exc, code)
    except typer.Exit:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class _ClosedPipeTolerant:
    """Standard output that outlives its reader: after ``callcycle run ... | head`` closes the pipe, writes
    go nowhere instead of raising ``BrokenPipeError`` in the middle of a batch (Click would end the
    process with status 1 and no word, the report unwritten). The run goes on to its normal end and
    status; one note on stderr says the output was cut."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.cut = False

    def _gone(self) -> None:
        if not self.cut:
            self.cut = True
            try:  # the interpreter flushes fd 1 at exit: point it at /dev/null so that flush succeeds too
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):  # no real descriptor (a test runner's buffer)
                pass
            try:
                sys.stderr.write("note: standard output was closed early (e.g. by | head): the rest of it is not "
                                 "shown, and callcycle finishes its work as usual\n")
            except (OSError, ValueError):
                pass

    def write(self, text: str) -> int:
        if not self.cut:
            try:
                return int(self._stream.write(text))
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.cut:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding ... as the real stream has them
        return getattr(self._stream, name)


def command(func: F) -> F:
    """Run a command, turning callcycle's own errors (and OS errors on the user's paths) into exit 2.

    Anything else is a bug and keeps its traceback.
    """
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pipeline.errors import PipelineError

        setup_logging()
        real_stdout = sys.stdout
        sys.stdout = _ClosedPipeTolerant(real_stdout)  # type: ignore[assignment]
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except PipelineError as exc:
            if getattr(exc, "exit_now", False):
                _exit_now(exc, getattr(exc, "exit_code", 2))
            fail(exc, getattr(exc, "exit_code", 2))
        except OSError as exc:
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            fail(f"{exc.strerror or exc}:{where}".rstrip(":"))
        except KeyboardInterrupt:
            fail("interrupted; finished calls are kept, rerun to finish the rest.", 130)
        finally:
            sys.stdout = real_stdout

    return wrapper  # type: ignore[return-value]


def _rebind_closed_streams() -> None:
    """Point log handlers whose stream was closed (Prefect's console handler keeps the stderr of the
    first command run in the process) at the current stderr.

    In one long-lived process that runs several commands with their own streams (a notebook, a test
    runner), a handler writing to a closed stream fails, and logging's fallback then dumps the raw
    record, file names with their control characters included, onto the terminal.
    """
    import sys

    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:
        for handler in lg.handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and getattr(stream, "closed", False):
                handler.stream = sys.stderr  # not setStream(): it flushes the closed stream first
                if hasattr(handler, "console"):  # Prefect's rich console handler holds its own reference
                    handler.console.file = sys.stderr


def setup_logging(level: int = logging.WARNING) -> None:
    """callcycle's warnings on stderr, one safe line each (idempotent)."""
    from flows import RUN_LOGGERS
    from pipeline.display import PrintableLogFilter, printable_logging

    _rebind_closed_streams()
    logger = logging.getLogger("callcycle")
    if any(isinstance(f, PrintableLogFilter) for h in logger.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(PrintableLogFilter())
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.propagate = False
    # Prefect's task and flow loggers repeat file names too (shown with --verbose)
    printable_logging(*RUN_LOGGERS)
    logging.getLogger("prefect._internal.concurrency").addFilter(_UndeliveredEventsFilter())


class _UndeliveredEventsFilter(logging.Filter):
    """When the Prefect API goes away mid-run, Prefect logs every event it cannot deliver, each a screenful
    repeating the run's parameters, seconds apart: one short line instead, then nothing more."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "failed to process item" not in str(record.msg):  # Prefect's "Service %r failed to process item %r"
            return True
        if self.said:
            return False
        self.said = True
        record.msg, record.args, record.exc_info = (
            "Prefect cannot deliver this run's events to its API: is the Prefect server still up? (further "
            "such errors are not shown)", None, None)
        return True


def quiet_prefect(verbose: bool = False) -> None:
    """Keep Prefect's ephemeral-server chatter out of the user's terminal.

    callcycle reports progress and failures itself; ``--verbose`` (or setting
    ``PREFECT_LOGGING_LEVEL``) shows Prefect's own task logs as well. With a Prefect server
    configured (``PREFECT_API_URL``) the runs' logs go to the server and not to the terminal.
    Telemetry is off: the tool runs offline.
    """
    if os.environ.get("PREFECT_API_URL") and not verbose:
        # a Prefect server keeps run history and logs: send it the runs' logs, keep them off the terminal
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:  # a local Dask cluster's scheduler and workers (their processes read it at start)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")
    # a busy machine (CI, a nightly batch beside other jobs) can take longer than Prefect's 20 s
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not verbose:
        # the temporary API's database pool now and then logs a CancelledError traceback while it shuts
        # down after a finished run (seen once in four `callcycle train` runs); the results are already
        # written, so it is shutdown noise, not a failure the user can act on
        logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
        # a Dask scheduler that goes away makes the client log its broken connections as tracebacks; the
        # run itself says what happened and what to do (ServiceError)
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)


def _stop_at_once(signum: int, _frame: object) -> None:
    """Stop a run on Ctrl-C or SIGTERM within a second, without a traceback.

    Prefect's engine would otherwise spend a minute or more reporting the cancellation to a temporary
    API that got the same signal. Nothing is lost: every call is written whole (temporary file, then
    rename or commit marker), the next run scores what is missing, and a dead writer's temporary files
    are cleared by the next run.
    """
    from flows.interrupt import mark_flow_run_interrupted, stop_temporary_api

    stop_temporary_api()
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    mark_flow_run_interrupted(name)
    sys.stderr.write(f"\ninterrupted ({name}): the calls written so far are kept; run the same command again "
                     "to score the rest.\n")
    sys.stderr.flush()
    os._exit(130 if signum == signal.SIGINT else 128 + signum)


@contextmanager
def stop_at_once_on_interrupt() -> Iterator[None]:
    """Within the block, Ctrl-C and SIGTERM end the process at once (see :func:`_stop_at_once`)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return
    previous = {sig: signal.signal(sig, _stop_at_once) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
