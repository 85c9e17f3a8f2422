"""Stored calls whose input is gone: found after a run, retired on request (``callcycle run --prune``).

A call is stored under its identity (its path relative to the input folder). When the file is deleted
or renamed, its rows stay: the report keeps counting a call that is no longer in the archive, and a
renamed file is counted twice. After a run over local folders, :func:`vanished_inputs` lists the stored
``calls`` and ``errors`` rows that belong to those folders and whose file no longer exists;
:func:`retire` moves their files to ``retired/<table>/`` (nothing is deleted; readers never look
there). Only local output folders are pruned.

A row counts as vanished only when all three hold, so that a row written by a run from another working
folder, of another input folder, or of a file that is only unreadable tonight is never touched:

- its stored ``source_path``, made absolute from the current folder, lies under one of the run's input
  folders (made absolute the same way);
- nothing exists at that path (not even a broken link);
- its identity was not found by the run (as a call, a failure or a link).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline import objectstore
from pipeline.store.local import _path, read_dataset
from pipeline.store.schema import identity_key

__all__ = ["RETIRED", "VanishedInput", "vanished_inputs", "retire"]

#: Folder under the output where retired calls' files go, per table.
RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class VanishedInput:
    """A stored identity (a call, or only a failure) whose file is gone: its identity and the path it was
    read from."""

    source_id: str
    source_path: str


def _absolute(path: str) -> Path | None:
    try:
        return Path(os.path.abspath(path))
    except (OSError, ValueError):
        return None


def vanished_inputs(out_dir: str | Path, inputs: Iterable[str], found: set[str]) -> list[VanishedInput]:
    """Stored identities under the local input folders of ``inputs`` whose files no longer exist and that
    this run did not find (``found``: the identities it saw); ``[]`` for an ``s3://`` output."""
    if objectstore.is_uri(str(out_dir)):
        return []
    roots = [root for spec in inputs if not objectstore.is_uri(spec) and Path(spec).is_dir()
             for root in [_absolute(str(spec))] if root is not None]
    if not roots:
        return []
    result: dict[str, VanishedInput] = {}
    for table in ("calls", "errors"):
        rows = read_dataset(Path(out_dir), table, snapshots=True).select(["source_id", "source_path"]).to_pylist()
        for row in rows:
            ident, path = row["source_id"], row["source_path"]
            if ident in found or ident in result or objectstore.is_uri(path):
                continue
            where = _absolute(path)
            if where is None or not any(where.is_relative_to(root) for root in roots):
                continue
            if os.path.lexists(where):
                continue
            result[ident] = VanishedInput(ident, path)
    return sorted(result.values(), key=lambda v: v.source_path)


def retire(out_dir: Path, vanished: Iterable[VanishedInput]) -> int:
    """Move the ``calls``, ``segments`` and ``errors`` files of each vanished identity to
    ``retired/<table>/`` (replacing an earlier retired copy); returns how many identities moved."""
    moved = 0
    for item in vanished:
        ident = identity_key(item.source_id)
        any_moved = False
        for table in ("calls", "errors", "segments"):  # the calls row first: no call left without segments
            source = _path(Path(out_dir), table, ident)
            if source.is_file():
                target = Path(out_dir) / RETIRED / table / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), target)
                any_moved = True
        moved += any_moved
    return moved
