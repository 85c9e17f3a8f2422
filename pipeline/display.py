"""Text that is safe to print: file names, call ids and messages come from untrusted input.

A file name can hold terminal escape sequences (colours, window titles, OSC 8 links, cursor
moves). Everything callcycle prints about an input goes through :func:`printable`, which
drops C0/C1 control characters (keeping none: a name is one line) and bidi overrides.
Text that may span lines (a transcript's sentences in a CSV or the HTML report) goes through
:func:`safe_text`, which keeps tabs and line breaks.
"""

from __future__ import annotations

import logging
import re

__all__ = ["printable", "safe_text", "PrintableLogFilter", "printable_logging"]

#: Bidirectional embeddings, overrides and isolates, and the invisible direction marks (LRM, RLM, ALM).
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
         "\u200e", "\u200f", "\u061c"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Line breaks and tabs in a one-line text: a space, so "Dana\nKowalski" reads "Dana Kowalski".
_BREAKS = re.compile(r"[\t\n\x0b\x0c\r\x85]+")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """``str(value)`` without control characters or bidirectional overrides (one safe line; a line break
    or tab becomes a space)."""
    text = _CONTROL.sub("", _BREAKS.sub(" ", str(value)))
    return "".join(ch for ch in text if ch not in _BIDI)


def safe_text(value: str) -> str:
    """``value`` without control characters other than tab and line feed, and without bidirectional
    overrides: what a terminal running ``cat`` on a CSV or an HTML file could act on (clear the screen,
    recolour, retitle, reorder a line)."""
    text = _CONTROL_IN_TEXT.sub("", value)
    return "".join(ch for ch in text if ch not in _BIDI)


class PrintableLogFilter(logging.Filter):
    """Log lines name input files: their control characters go (:func:`printable`) before any handler
    writes the line, so a file name cannot drive a terminal or fake a second log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(record.getMessage()), None
        return True


def printable_logging(*loggers: str) -> None:
    """Put a :class:`PrintableLogFilter` on the named loggers and on every handler of the root logger
    (each once): what a process logs about its inputs (a Dask worker's log, Prefect's API logs) is as
    safe to read as what the command line prints."""
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in loggers]
    targets += logging.getLogger().handlers
    for target in targets:
        if not any(isinstance(f, PrintableLogFilter) for f in target.filters):
            target.addFilter(PrintableLogFilter())
