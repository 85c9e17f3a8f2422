"""Rows in and out of JSONL/CSV files written for people (spreadsheets, labelling tools).

One rule in one place: every CSV callcycle writes for a spreadsheet goes through
:func:`write_rows`, which neutralises cells a spreadsheet would run as a formula (text
starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading ``'``) and drops the
control characters a terminal would act on (:func:`pipeline.display.safe_text`: a CSV has no way to
escape them, and people ``cat`` CSV files), and :func:`unneutralise` undoes the prefix when such a file
is read back. JSON and JSON Lines keep every character, the unsafe ones written as ``\\uXXXX``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from pipeline.atomic import write_bytes_atomic
from pipeline.display import safe_text

__all__ = ["FORMULA_PREFIXES", "CSV_DELIMITERS", "csv_delimiter", "spreadsheet_safe", "unneutralise", "rows_to_csv",
           "rows_to_jsonl", "write_rows"]

#: First characters that make Excel, LibreOffice or Google Sheets treat a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


#: Field separators a spreadsheet may save a ``.csv`` with (commas; semicolons where the comma is the
#: decimal mark; tabs), in the order a tie goes.
CSV_DELIMITERS = (",", ";", "\t")


def csv_delimiter(header: str) -> str:
    """The separator of a CSV whose first line is ``header``: whichever of :data:`CSV_DELIMITERS`
    occurs most often outside double quotes (a comma when none occurs)."""
    outside, quoted = [], False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted:
            outside.append(char)
    counts = {d: outside.count(d) for d in CSV_DELIMITERS}
    best = max(CSV_DELIMITERS, key=lambda d: (counts[d], -CSV_DELIMITERS.index(d)))
    return best if counts[best] else ","


#: A plain number ("-5", "+3", "-1.5e3"): a spreadsheet reads it as that number, not as a formula.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would evaluate; then prefixed with ``'``.

    A plain signed number ("-5", "+3.5") is left as it is: a spreadsheet reads it as the number. Text
    that starts with ``'`` itself gets one more, so that :func:`unneutralise` gives it back whole (a
    spreadsheet shows the cell as the text: it takes a leading ``'`` as "this is text").
    """
    if isinstance(value, str) and (value.startswith("'") or value.startswith(FORMULA_PREFIXES)
                                   and not _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    """A CSV cell for ``value``: JSON values that are not text or numbers (true, null, objects, lists)
    are written as JSON, not in Python's notation, then made spreadsheet-safe."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        value = "" if value is None else json.dumps(value, ensure_ascii=False)
    return spreadsheet_safe(safe_text(value) if isinstance(value, str) else value)


def unneutralise(value: Any) -> Any:
    """Inverse of :func:`spreadsheet_safe` for a cell read back from a CSV callcycle wrote."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(("'", *FORMULA_PREFIXES)):
        return value[1:]
    return value


def rows_to_csv(rows: Iterable[Mapping[str, Any]], fields: list[str] | None = None, delimiter: str = ",") -> str:
    """CSV text with a header, every cell spreadsheet-safe (``delimiter="\t"`` for TSV)."""
    rows = list(rows)
    names = fields or list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, delimiter=delimiter)
    # column names come from the user's data too (JSONL keys, CSV headers): neutralised like any cell
    csv.writer(buf, delimiter=delimiter).writerow([spreadsheet_safe(safe_text(str(name))) for name in names])
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


#: Characters a terminal may act on (C1 controls such as U+009B, bidi overrides and isolates) that
#: ``json.dumps(ensure_ascii=False)`` leaves raw; JSON output writes them as ``\\uXXXX`` (the same data).
_RAW_UNSAFE = re.compile("[\u0080-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _json(value: Any, **kwargs: Any) -> str:
    return _RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False, **kwargs))


def rows_to_jsonl(rows: Iterable[Mapping[str, Any]], handle: IO[str]) -> None:
    """JSON Lines (UTF-8, one object per line; characters a terminal would act on written escaped)."""
    for row in rows:
        handle.write(_json(row) + "\n")


def write_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows atomically, in the format the file name says: ``.jsonl`` JSON Lines, ``.json`` one
    JSON array, ``.tsv`` tab-separated, anything else comma-separated; CSV and TSV spreadsheet-safe."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        buf = io.StringIO()
        rows_to_jsonl(rows, buf)
        text = buf.getvalue()
    elif suffix == ".json":
        text = _json(rows, indent=1) + "\n"
    else:
        text = rows_to_csv(rows, delimiter="\t" if suffix == ".tsv" else ",")
    write_bytes_atomic(path, text.encode("utf-8"))
    return path
