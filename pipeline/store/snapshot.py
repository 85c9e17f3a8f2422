"""A local output's small tables (``calls``, ``errors``) remembered between reads.

An output folder holds one ``calls`` file per call, so reading the table — for ``callcycle
summary``, the headline at the end of every ``callcycle run`` and the report — opens every file:
about 3 ms a call here, an hour for an archive of a million calls, every night. A snapshot keeps
the rows read last time together with each file's **signature** (device, inode, size, modification
and status-change time in nanoseconds, :func:`pipeline.ingest.fingerprints.file_signature`), and
the next read opens only the files whose signature is new. Files are only ever replaced whole, by a
rename (:func:`pipeline.atomic.publish`), which gives the name a new inode and new times, so a
changed file cannot keep its signature:

- a file whose times are less than :data:`~pipeline.ingest.fingerprints.RACY_S` (60 s) old when it
  is read is never remembered (a rewrite within the same clock tick; a server clock somewhat behind),
  so the calls a run has just written are read again by the next read, and remembered then;
- a file that has gone is dropped from the snapshot; a file that no longer reads back is read (and
  skipped with a warning) every time, as without a snapshot;
- the snapshot records the table's schema version and columns; another version is ignored;
- a snapshot no read has rewritten for 180 days (``FORGET_AFTER_S``, a folder nobody reads any more)
  is deleted by the next snapshot written.

Snapshots live in ``$XDG_CACHE_HOME/callcycle/tables/`` (:func:`default_path`, one file per output
folder and table), hold nothing that cannot be recomputed, and are written atomically. One that
cannot be read, does not fit or cannot be written is ignored (logged at debug level): the table is
read in full, as before.
S3 outputs are not covered (an object listing and a read per call, as before).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.atomic import write_bytes_atomic
from pipeline.ingest.fingerprints import FORGET_AFTER_S, RACY_S, file_signature
from pipeline.paths import cache_dir

__all__ = ["SNAPSHOT_FORMAT", "READ_THREADS", "default_path", "read_with_snapshot"]

logger = logging.getLogger("callcycle.store")

SNAPSHOT_FORMAT = "callcycle-table-snapshot/1"
#: Files read at once by a store's readers (Parquet reads release the GIL).
READ_THREADS = max(1, min(8, os.cpu_count() or 1))
_FILE, _SIGNATURE = "_snapshot_file", "_snapshot_signature"


def default_path(out_dir: Path, table: str) -> Path:
    """Where reads of ``out_dir``'s ``table`` keep their snapshot (keyed by the folder's real path)."""
    digest = hashlib.sha256(str(Path(out_dir).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return cache_dir("tables") / f"{digest}-{table}.parquet"


def _fingerprint(schema: pa.Schema) -> str:
    """The table's schema version and columns (names, types, nullability): a snapshot of any other
    shape is not used."""
    version = (schema.metadata or {}).get(b"callcycle.schema_version", b"").decode()
    columns = str(schema.remove_metadata())
    return f"{SNAPSHOT_FORMAT}|{version}|{hashlib.sha256(columns.encode()).hexdigest()[:16]}"


def _load(path: Path, schema: pa.Schema) -> tuple[pa.Table, dict[str, tuple[str, list[int]]]]:
    """The remembered rows and, per file name, its signature and row positions (empty if unusable)."""
    empty: tuple[pa.Table, dict[str, tuple[str, list[int]]]] = (schema.empty_table(), {})
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        return empty
    except (OSError, pa.ArrowException) as exc:
        logger.debug("snapshot %s not used (%s)", path, exc)
        return empty
    if ((table.schema.metadata or {}).get(b"callcycle.snapshot") != _fingerprint(schema).encode()
            or table.column_names != [*schema.names, _FILE, _SIGNATURE]):
        return empty
    index: dict[str, tuple[str, list[int]]] = {}
    for row, (name, signature) in enumerate(zip(table.column(_FILE).to_pylist(),
                                                table.column(_SIGNATURE).to_pylist(), strict=True)):
        index.setdefault(name, (signature, []))[1].append(row)
    return table, index


def _prune(folder: Path, keep: Path, now: float) -> None:
    """Drop snapshots no read has rewritten for :data:`FORGET_AFTER_S` (folders nobody reads any more)
    and temporary files a killed writer left more than a day ago."""
    for entry in folder.iterdir():
        try:
            age = now - entry.stat().st_mtime
            if entry != keep and (age > FORGET_AFTER_S or (entry.name.endswith(".tmp") and age > 86_400)):
                entry.unlink()
        except OSError:
            continue


def _save(path: Path, schema: pa.Schema, table: pa.Table) -> None:
    meta = dict(schema.metadata or {}) | {b"callcycle.snapshot": _fingerprint(schema).encode()}
    buffer = io.BytesIO()
    try:
        pq.write_table(table.replace_schema_metadata(meta), buffer, compression="zstd")
        write_bytes_atomic(path, buffer.getvalue())
        _prune(path.parent, path, time.time())
    except (OSError, pa.ArrowException) as exc:
        logger.debug("snapshot %s not written (%s)", path, exc)


def read_with_snapshot(files: Sequence[Path], schema: pa.Schema, read_file: Callable[[Path], pa.Table | None],
                       snapshot: Path, now: float | None = None) -> pa.Table:
    """``files`` (one folder, sorted) read as one table of ``schema``, in file order: rows of files
    whose signature is unchanged come from ``snapshot``, the others from ``read_file`` (``None``: the
    file does not read back; it is left out and read again next time). The snapshot is then rewritten
    when it was missing anything that is settled (see the module docstring). ``now`` is for tests.
    """
    clock = time.time() if now is None else now
    remembered, index = _load(snapshot, schema)
    keep: list[int] = []
    to_read: list[tuple[Path, str]] = []  # (file, signature or "" when too fresh to remember)
    for path in files:
        try:
            st = os.stat(path)
        except OSError:  # gone since the listing, a link loop, a stale NFS handle: read_file says so
            to_read.append((path, ""))
            continue
        signature = file_signature(st)
        known = index.get(path.name)
        if known is not None and known[0] == signature:
            keep.extend(known[1])
        else:
            to_read.append((path, signature if clock - max(st.st_mtime, st.st_ctime) >= RACY_S else ""))
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:  # reads release the GIL
        tables = list(pool.map(read_file, [path for path, _ in to_read]))
    fresh: list[pa.Table] = []
    settled_new = False
    for (path, signature), table in zip(to_read, tables, strict=True):
        if table is None:
            continue
        settled_new |= bool(signature)
        fresh.append(table.append_column(_FILE, pa.array([path.name] * table.num_rows, pa.string()))
                          .append_column(_SIGNATURE, pa.array([signature] * table.num_rows, pa.string())))
    parts = [remembered.take(pa.array(keep, pa.int64()))] if keep else []
    combined = pa.concat_tables(parts + fresh) if parts or fresh else None
    if combined is None:
        result = schema.empty_table()
        if index:
            _save(snapshot, schema, remembered.slice(0, 0))
        return result
    combined = combined.take(pc.sort_indices(combined, sort_keys=[(_FILE, "ascending")]))
    if settled_new or len(keep) != remembered.num_rows:  # something to remember, or files gone
        stored = combined.filter(pc.not_equal(combined.column(_SIGNATURE), ""))
        _save(snapshot, schema, stored)
    return combined.drop_columns([_FILE, _SIGNATURE]).cast(schema)
