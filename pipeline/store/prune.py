"""Stored calls whose input is gone: found after a run, retired on request (``callcycle run --prune``).

A call is stored under its identity (its path relative to the input folder). When the file is deleted
or renamed, its rows stay: the report keeps counting a call that is no longer in the archive, and a
renamed file is counted twice. After a run over local folders, :func:`vanished_inputs` lists the stored
``calls`` and ``errors`` rows that belong to those folders (or ``s3://`` prefixes) and whose file no
longer exists; :func:`retire` moves their files to ``retired/<table>/`` (nothing is deleted; readers
never look there), in a local folder or a bucket.

A row counts as vanished only when all three hold, so that a row written by a run from another working
folder, of another input folder, or of a file that is only unreadable tonight is never touched:

- its stored ``source_path``, made absolute from the current folder, lies under one of the run's input
  folders (made absolute the same way), or, for an object, under one of the run's ``s3://`` prefixes;
- nothing exists at that path (not even a broken link; the store says the object is not there);
- its identity was not found by the run (as a call, a failure or a link).
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline import objectstore
from pipeline.store.base import open_store
from pipeline.store.local import _path, read_dataset
from pipeline.store.schema import identity_key

__all__ = ["RETIRED", "VanishedInput", "vanished_inputs", "retire", "input_exists"]

#: Folder under the output where retired calls' files go, per table.
RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class VanishedInput:
    """A stored identity (a call, or only a failure) whose file is gone: its identity and the path it was
    read from."""

    source_id: str
    source_path: str
    failed_only: bool = False
    """True when only a failure is stored for it (an ``errors`` row, no scored call)."""


def _absolute(path: str) -> Path | None:
    try:
        return Path(os.path.abspath(path))
    except (OSError, ValueError):
        return None


def input_exists(path: str) -> bool:
    """Whether a stored call's input is still there: a local file (or link, even broken), or an object (asked
    of the store, which counts as there when it cannot answer: see :func:`pipeline.objectstore.exists`)."""
    return objectstore.exists(path) if objectstore.is_uri(path) else os.path.lexists(path)


def _roots(inputs: Iterable[str]) -> tuple[list[Path], list[str]]:
    """The run's local input folders (absolute) and ``s3://`` input prefixes (globs left out: what a
    pattern did not match may still be there)."""
    local: list[Path] = []
    remote: list[str] = []
    for spec in inputs:
        if objectstore.is_uri(spec):
            if not glob.has_magic(spec):
                remote.append(spec.rstrip("/") + "/")
        elif Path(spec).is_dir() and (root := _absolute(str(spec))) is not None:
            local.append(root)
    return local, remote


def vanished_inputs(out_dir: str | Path, inputs: Iterable[str], found: set[str]) -> list[VanishedInput]:
    """Stored identities under the input folders or ``s3://`` prefixes of ``inputs`` whose files no longer
    exist and that this run did not find (``found``: the identities it saw)."""
    local_roots, remote_roots = _roots(inputs)
    if not local_roots and not remote_roots:
        return []
    result: dict[str, VanishedInput] = {}
    for table in ("calls", "errors"):
        if objectstore.is_uri(str(out_dir)):
            stored = open_store(str(out_dir)).read_dataset(table)
        else:
            stored = read_dataset(Path(out_dir), table, snapshots=True)
        for row in stored.select(["source_id", "source_path"]).to_pylist():
            ident, path = row["source_id"], row["source_path"]
            if ident in found or ident in result:
                continue
            if objectstore.is_uri(path):
                if not any(path.startswith(root) for root in remote_roots):
                    continue
            elif (where := _absolute(path)) is None or not any(where.is_relative_to(root) for root in local_roots):
                continue
            if input_exists(path):
                continue
            result[ident] = VanishedInput(ident, path, failed_only=table == "errors")
    return sorted(result.values(), key=lambda v: v.source_path)


def _free_name(target: Path) -> Path:
    """``target``, or ``<stem>.2<suffix>``, ``.3`` … when an earlier retired copy already has that name."""
    number = 1
    candidate = target
    while candidate.exists():
        number += 1
        candidate = target.with_name(f"{target.stem}.{number}{target.suffix}")
    return candidate


def retire(out_dir: str | Path, vanished: Iterable[VanishedInput]) -> int:
    """Move the ``calls``, ``segments`` and ``errors`` files of each vanished identity to
    ``retired/<table>/`` (on ``s3://``, :meth:`~pipeline.store.s3.S3Store.retire`); returns how many
    identities moved. A call name used again (recorders reuse ``call_0001.wav``) is retired again next
    to the earlier copy, never over it."""
    if objectstore.is_uri(str(out_dir)):
        from pipeline.store.s3 import S3Store

        bucket = S3Store(str(out_dir))
        return sum(bucket.retire(item.source_id) for item in vanished)
    moved = 0
    for item in vanished:
        ident = identity_key(item.source_id)
        any_moved = False
        for table in ("calls", "errors", "segments"):  # the calls row first: no call left without segments
            source = _path(Path(out_dir), table, ident)
            if source.is_file():
                target = _free_name(Path(out_dir) / RETIRED / table / source.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), target)
                any_moved = True
        moved += any_moved
    return moved
