"""Labelled-data files and the project's one held-out rule.

:func:`read_rows` reads JSONL, CSV, TSV or JSON-array files of labelled rows with line numbers in its
errors; :func:`split_key` and :func:`is_holdout` decide which conversations are held out of training.
The classifiers and the models of the speech stage (sentence boundaries, roles) are trained from these.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pipeline.errors import LabelDataError
from pipeline.tables import csv_delimiter

__all__ = ["HOLDOUT_PERCENT", "is_holdout", "read_rows", "split_key"]

#: Percentage of groups (by a hash of the group id) in the fixed held-out split.
HOLDOUT_PERCENT = 20



def read_rows(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL, CSV, TSV or JSON-array file into dicts, with line numbers in errors.

    A ``.csv`` may be separated by commas, semicolons or tabs (:func:`csv_delimiter` reads the
    header line); a ``.tsv`` is tab-separated; a ``.json`` file holds one array of objects (errors
    then count its items). Anything else is JSON Lines (``.gz`` compressed too).
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    reader: csv.DictReader[str] | None = None
    try:
        if path.suffix.lower() in (".csv", ".tsv"):
            with open(path, newline="", encoding="utf-8-sig") as handle:
                delimiter = "\t" if path.suffix.lower() == ".tsv" else csv_delimiter(handle.readline())
                handle.seek(0)
                reader = csv.DictReader(handle, delimiter=delimiter, strict=True)
                names = [n for n in (reader.fieldnames or []) if n]
                doubled = sorted({n for n in names if names.count(n) > 1})
                if doubled:
                    raise LabelDataError(f"{path}:1: the header names {', '.join(repr(n) for n in doubled)} "
                                         "more than once; only one of those columns could be read.",
                                         "Rename or delete the repeated column, then run again.")
                for record in reader:  # a row's file line, as a spreadsheet numbers it (header = 1)
                    extra = record.pop(None, None)  # type: ignore[call-overload]
                    if extra and any(str(cell).strip() for cell in extra):
                        # more cells than the header names: a text with an unquoted separator (empty trailing
                        # cells, as some exporters end every row with a separator, are dropped)
                        name = "tab" if delimiter == "\t" else repr(delimiter)
                        raise LabelDataError(
                            f"{path}:{reader.line_num}: {len(reader.fieldnames or []) + len(extra)} cells "
                            f"where the header has {len(reader.fieldnames or [])}.",
                            f"Put double quotes around a text that contains a {name}, as spreadsheets save it.")
                    rows.append({**record, "_line": reader.line_num})
        elif path.suffix.lower() == ".json":  # one JSON array of objects, as many tools export
            try:
                data = json.loads(path.read_text(encoding="utf-8-sig"))
            except json.JSONDecodeError as exc:
                raise LabelDataError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno}).",
                                     "A .json file must hold one array of objects; use .jsonl for one object "
                                     "per line.") from exc
            if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
                raise LabelDataError(f"{path}: not an array of objects.",
                                     "A .json file must hold one array of objects; use .jsonl for one object "
                                     "per line.")
            rows = [{**item, "_line": f"item {i}"} for i, item in enumerate(data, start=1)]  # where errors point
        else:
            opener = gzip.open if path.suffix.lower() == ".gz" else open
            with opener(path, "rt", encoding="utf-8-sig") as handle:  # a BOM, as Notepad saves, is dropped
                for line_no, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise LabelDataError(f"{path}:{line_no}: invalid JSON ({exc.msg}, column {exc.colno}).",
                                             "Each line must be one JSON object.") from exc
                    if not isinstance(obj, dict):
                        raise LabelDataError(f"{path}:{line_no}: not a JSON object.",
                                             "Each line must be one JSON object.")
                    obj.setdefault("_line", line_no)
                    rows.append(obj)
    except FileNotFoundError as exc:
        raise LabelDataError(f"File {path} not found.", "Check the path.") from exc
    except csv.Error as exc:  # e.g. a quote that is never closed would swallow every row after it
        last = reader.line_num if reader is not None else 0
        raise LabelDataError(f"{path}: cannot read the CSV after line {last} ({exc}); a double quote there is "
                             "probably never closed.",
                             "Close the quote, or double a quote inside a quoted text (\"\"), as spreadsheets save it."
                             ) from exc
    except UnicodeDecodeError as exc:
        raise LabelDataError(f"{path}: not UTF-8 ({_where_undecodable(path)}).",
                             "Re-save the file as UTF-8 (a spreadsheet: 'CSV UTF-8'; or "
                             "`iconv -f cp1252 -t utf-8`).") from exc
    return rows


def _where_undecodable(path: Path) -> str:
    """Line and value of the first byte of ``path`` that is not UTF-8, for the error message."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix.lower() == ".gz" else path.read_bytes()
        raw.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile):
        return "a byte that is not UTF-8"
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return f"line {line}, byte 0x{raw[exc.start]:02x}"
    return "a byte that is not UTF-8"


def split_key(corpus: str, group: str) -> str:
    """The unit the held-out split is drawn by: the conversation, or a whole meeting series.

    AMI meetings come in series of four (ES2002a-d) with the same people and project; a
    series is held out whole so no speaker or topic straddles the split. Everything else is
    split by its conversation group.
    """
    if corpus == "ami":
        return re.sub(r"[a-z]$", "", group)
    return group


def is_holdout(group: str, percent: int = HOLDOUT_PERCENT) -> bool:
    """Fixed held-out membership from a hash of the group id (stable across runs and machines).

    The one held-out rule of the project: pass ``row.split_group`` (see :func:`split_key`).
    """
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest()[:8], 16) % 100 < percent
