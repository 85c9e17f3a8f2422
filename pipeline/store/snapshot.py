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
S3 outputs use the same mechanism through :func:`read_remembered` (:class:`pipeline.store.s3.S3Store`):
there an object's signature is its size, ETag and LastModified from the listing
(:func:`pipeline.ingest.fingerprints.object_signature`); a rewrite (``update_call`` replaces a
calls object in place) gives it a new ETag, and objects younger than ``RACY_S`` are read but not
remembered, as files are (LastModified counts whole seconds; some stores list ahead of their reads).
Commit markers are remembered too, so a warm read of the calls table costs the listings of
``commits/`` and ``calls/`` and no GET per call.
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
from pipeline.objectstore import is_uri
from pipeline.paths import cache_dir
from pipeline.store.schema import schema_version_of

__all__ = ["SNAPSHOT_FORMAT", "READ_THREADS", "default_path", "read_remembered", "read_with_snapshot"]

logger = logging.getLogger("callcycle.store")

SNAPSHOT_FORMAT = "callcycle-table-snapshot/1"
#: Files read at once by a store's readers (Parquet reads release the GIL).
READ_THREADS = max(1, min(8, os.cpu_count() or 1))
_FILE, _SIGNATURE = "_snapshot_file", "_snapshot_signature"
#: Objects read, and their rows packed into one table, at a time (see :func:`read_remembered`).
READ_CHUNK = 64


def default_path(out_dir: Path | str, table: str) -> Path:
    """Where reads of ``out_dir``'s ``table`` keep their snapshot: keyed by the folder's real path, or
    by an object store's URI (a ``str`` holding ``://``) as given."""
    where = out_dir if isinstance(out_dir, str) and is_uri(out_dir) else str(Path(out_dir).resolve())
    digest = hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return cache_dir("tables") / f"{digest}-{table}.parquet"


def _fingerprint(schema: pa.Schema) -> str:
    """The table's schema version and columns (names, types, nullability): a snapshot of any other
    shape is not used."""
    version = schema_version_of(schema)
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


def read_remembered(entries: Sequence[tuple[str, str, float | None]], schema: pa.Schema,
                    read_many: Callable[[list[str]], Sequence[pa.Table | None]], snapshot: Path,
                    name_column: str | None = None) -> pa.Table:
    """The rows of the named objects ``entries`` (name, signature, seconds since it last changed), as
    one table of ``schema`` in name order: an object whose signature is the one remembered in
    ``snapshot`` is not read again, the others are read by ``read_many`` (one table per name, in the
    order given; ``None``: it does not read back — it is left out and read again next time). An
    object younger than :data:`RACY_S`, of unknown age or with an empty signature is read and never
    remembered (a rewrite within the clock's tick could keep its signature). The snapshot is
    rewritten when it was missing anything settled or remembered objects that are no longer listed.
    Names must be unique. With ``name_column`` the result has one more column, of that name, holding
    each row's object name. A snapshot whose rows do not fit (a column of another type under the
    same names) is not used: everything is read, and the snapshot written afresh.
    """
    settled = [(name, signature if age is not None and age >= RACY_S else "") for name, signature, age in entries]
    remembered, index = _load(snapshot, schema)
    try:
        return _merge(settled, schema, read_many, snapshot, name_column, remembered, index)
    except (pa.ArrowException, KeyError, ValueError, TypeError) as exc:
        if not index:
            raise
        logger.debug("snapshot %s not used (%s); read in full", snapshot, exc)
        return _merge(settled, schema, read_many, snapshot, name_column, schema.empty_table(), {})


def _merge(entries: Sequence[tuple[str, str]], schema: pa.Schema,
           read_many: Callable[[list[str]], Sequence[pa.Table | None]], snapshot: Path, name_column: str | None,
           remembered: pa.Table, index: dict[str, tuple[str, list[int]]]) -> pa.Table:
    """:func:`read_remembered` with the snapshot's rows and index already loaded."""
    keep: list[int] = []
    to_read: list[tuple[str, str]] = []
    for name, signature in entries:
        known = index.get(name)
        if known is not None and signature and known[0] == signature:
            keep.extend(known[1])
        else:
            to_read.append((name, signature))
    fresh: list[pa.Table] = []
    settled_new = False
    # read a chunk at a time and pack each chunk's rows into one table: thousands of one-row tables held at
    # once cost ~40 KB each outside Arrow's buffers (3,000 calls: 128 MB, packed: 14 MB)
    for start in range(0, len(to_read), READ_CHUNK):
        chunk = to_read[start:start + READ_CHUNK]
        tables = list(read_many([name for name, _ in chunk]))
        if len(tables) != len(chunk):
            raise ValueError(f"read {len(tables)} tables for {len(chunk)} objects")
        part: list[pa.Table] = []
        for (name, signature), table in zip(chunk, tables, strict=True):
            if table is None:
                continue
            settled_new |= bool(signature)
            part.append(table.append_column(_FILE, pa.array([name] * table.num_rows, pa.string()))
                             .append_column(_SIGNATURE, pa.array([signature] * table.num_rows, pa.string())))
        if part:
            fresh.append(pa.concat_tables(part).combine_chunks())
        del tables, part
    parts = [remembered.take(pa.array(keep, pa.int64()))] if keep else []
    combined = pa.concat_tables(parts + fresh) if parts or fresh else None
    if combined is None:
        if index:
            _save(snapshot, schema, remembered.slice(0, 0))
        empty = schema.empty_table()
        return empty.append_column(name_column, pa.array([], pa.string())) if name_column else empty
    combined = combined.take(pc.sort_indices(combined, sort_keys=[(_FILE, "ascending")]))
    if settled_new or len(keep) != remembered.num_rows:  # something to remember, or objects gone
        stored = combined.filter(pc.not_equal(combined.column(_SIGNATURE), ""))
        _save(snapshot, schema, stored)
    names = combined.column(_FILE)
    result = combined.drop_columns([_FILE, _SIGNATURE]).cast(schema)
    return result.append_column(name_column, names) if name_column else result


def read_with_snapshot(files: Sequence[Path], schema: pa.Schema, read_file: Callable[[Path], pa.Table | None],
                       snapshot: Path, now: float | None = None) -> pa.Table:
    """``files`` (one folder, sorted) read as one table of ``schema``, in file order: rows of files
    whose signature is unchanged come from ``snapshot``, the others from ``read_file`` (``None``: the
    file does not read back; it is left out and read again next time), a few at a time. A file is
    remembered only once it has settled (see the module docstring). ``now`` is for tests.
    """
    clock = time.time() if now is None else now
    by_name = {path.name: path for path in files}
    entries: list[tuple[str, str, float | None]] = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:  # gone since the listing, a link loop, a stale NFS handle: read_file says so
            entries.append((path.name, "", None))
            continue
        entries.append((path.name, file_signature(st), clock - max(st.st_mtime, st.st_ctime)))

    def read_many(names: list[str]) -> list[pa.Table | None]:
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:  # reads release the GIL
            return list(pool.map(read_file, [by_name[name] for name in names]))

    return read_remembered(entries, schema, read_many, snapshot)
