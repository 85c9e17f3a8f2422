"""Parquet datasets on a local disk: one file per call identity, replaced atomically, verified on read.

Layout under the output folder (readers ignore dot files and ``quarantine/``)::

    calls/part-<identity>.parquet      one row: the call's current results (written last: the commit)
    segments/part-<identity>.parquet   its segments, carrying the same call_key
    errors/part-<identity>.parquet     one row while the input fails; removed once it succeeds
    <table>/_schema.parquet            no rows, the table's schema: a glob (DuckDB, Polars) matches a file
                                       even on a night with no failures (pyarrow.dataset skips ``_`` files)
    quarantine/<table>/...             files that did not read back (truncated, corrupt), moved aside

``<identity>`` hashes the call's ``source_id`` (see :mod:`pipeline.store.schema`), so a new
version of a call (fixed transcript, re-exported recording, new classifier) *replaces* the
old files with ``os.replace`` — every reader, ours or a DuckDB glob, sees one row per call.
A call counts as done only when both files read back (Parquet footer, row count, call_key);
anything else is quarantined and redone. :func:`read_dataset` hides segments whose calls row
is missing or belongs to another version, so a crash between the two writes is invisible.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.atomic import pid_alive, publish, temp_path, write_bytes_atomic
from pipeline.display import printable
from pipeline.errors import OutputError
from pipeline.store import claims
from pipeline.store.base import CallState, StoredCall
from pipeline.store.claims import Holder
from pipeline.store.schema import (
    CALLS_SCHEMA,
    COLUMN_DOCS,
    ERRORS_SCHEMA,
    SCHEMA_VERSION,
    SCHEMAS,
    SEGMENTS_SCHEMA,
    RunStamp,
    call_key,
    calls_table,
    error_key,
    errors_table,
    identity_key,
    schema_version_of,
    segments_table,
    source_identity,
    updated_calls_row,
)
from pipeline.store.snapshot import READ_THREADS, read_with_snapshot
from pipeline.store.snapshot import default_path as snapshot_path

__all__ = [
    # re-exported from pipeline.store.schema so `from pipeline.store import local as store` has it all
    "SCHEMA_VERSION", "SEGMENTS_SCHEMA", "CALLS_SCHEMA", "ERRORS_SCHEMA", "COLUMN_DOCS", "RunStamp",
    "call_key", "error_key", "identity_key", "source_identity", "segments_table", "calls_table", "errors_table",
    # files
    "CallState", "StoredCall", "stored_call", "write_call", "update_call", "write_error",
    "clear_error", "read_dataset", "read_segments", "write_table_atomic", "sweep_stale_temp", "quarantine",
    "QUARANTINE",
    "check_output_dir", "output_error", "retire_old_layout", "LEGACY", "LocalStore",
]

logger = logging.getLogger("callcycle.store")

QUARANTINE = "quarantine"


def _path(out_dir: Path, table: str, ident: str) -> Path:
    return Path(out_dir) / table / f"part-{ident}.parquet"


#: The names :func:`_path` gives (an identity key is 32 hex digits): any other file in a table's folder was
#: put there by someone else (an export, a copy) and no run replaces it.
_OWN_NAME = re.compile(r"part-[0-9a-f]{32}\.parquet")


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write Parquet to a hidden temporary file in the same folder, fsync, then rename over ``path``."""
    tmp = temp_path(path)
    try:
        pq.write_table(table, tmp, compression="zstd")
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep_stale_temp(out_dir: Path) -> int:
    """Delete temporary files left by writers that died (SIGKILL, power loss); returns how many.

    Temporary names carry the writer's process id; files of a live process on this machine
    (another run writing to the same output right now) are left alone. Readers never see
    these files either way: dot files are ignored by pyarrow, DuckDB globs and Polars.
    """
    removed = 0
    for name in SCHEMAS:
        folder = Path(out_dir) / name
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp"):
            match = re.search(r"\.pid(\d+)\.", tmp.name)
            if match and pid_alive(int(match.group(1))):
                continue
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def quarantine(out_dir: Path, path: Path, reason: str) -> Path | None:
    """Move a file that does not read back out of the readers' way (``quarantine/<table>/``)."""
    if not path.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    target = Path(out_dir) / QUARANTINE / path.parent.name / f"{path.name}.{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), target)
    logger.warning("%s: %s; moved to %s and the call will be redone", path, reason, target)
    return target


def _read_one(path: Path) -> pa.Table:
    """One Parquet file, every column decoded (so a damaged page is found). ``ParquetFile`` rather than
    ``pq.read_table``: the same bytes read without the dataset layer, about half the time on the small
    per-call files (4.0 against 6.6 ms for a call's two files, measured on the 420-call set of
    BENCHMARKS.md "A nightly re-run")."""
    with pq.ParquetFile(path) as handle:
        return handle.read()


def stored_call(out_dir: Path, source_id: str, key: str) -> StoredCall:
    """Check the stored results of ``source_id`` against the expected ``key``.

    Returns ``current`` only when the calls file reads back (footer and data), holds exactly one
    row with ``call_key == key``, and the segments file reads back with ``n_segments`` rows of
    that key. A file that does not read back is quarantined (state ``broken``); results of
    another version (key or schema) are ``stale``; nothing stored is ``missing``.
    """
    ident = identity_key(source_id)
    calls_path, segs_path = _path(out_dir, "calls", ident), _path(out_dir, "segments", ident)
    if not calls_path.is_file():
        return StoredCall("missing")
    try:
        calls = _read_one(calls_path)
        if calls.num_rows != 1 or "call_key" not in calls.column_names:
            raise ValueError(f"{calls.num_rows} rows")
        row = calls.to_pylist()[0]
    except (pa.ArrowException, OSError, ValueError) as exc:
        quarantine(out_dir, calls_path, f"unreadable calls file ({exc})")
        quarantine(out_dir, segs_path, "its calls file was unreadable")
        return StoredCall("broken")
    if row["call_key"] != key or schema_version_of(calls.schema) != SCHEMA_VERSION:  # another version's rows
        return StoredCall("stale", row)
    try:
        segs = _read_one(segs_path)
        keys = set(segs.column("call_key").to_pylist())
        if segs.num_rows != row["n_segments"] or keys != {key}:
            raise ValueError(f"{segs.num_rows} segment rows for {row['n_segments']} segments")
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        quarantine(out_dir, segs_path, f"segments do not match their calls row ({exc})")
        quarantine(out_dir, calls_path, "its segments file was unreadable")
        return StoredCall("broken")
    return StoredCall("current", row)


def write_call(out_dir: Path, key: str, segments: pa.Table, calls: pa.Table) -> None:
    """Withdraw a call's stored calls row, replace its segments, then write its calls row (the commit:
    readers join on call_key).

    Two files cannot be replaced at once. With the old row withdrawn first, a run killed between the
    writes leaves the call absent until the next run redoes it, never an old calls row whose segments
    were already replaced (a call with no segments, in every reader); a reader during a replacement
    sees the call missing for that moment, not inconsistent.
    """
    source_id = calls.column("source_id")[0].as_py()
    if calls.column("call_key")[0].as_py() != key:
        raise ValueError("calls row and key disagree")
    ident = identity_key(source_id)
    _path(out_dir, "calls", ident).unlink(missing_ok=True)
    write_table_atomic(segments, _path(out_dir, "segments", ident))
    write_table_atomic(calls, _path(out_dir, "calls", ident))


def update_call(out_dir: Path, source_id: str, changes: dict[str, Any]) -> None:
    """Rewrite a stored calls row with some columns changed (metadata re-applied; no re-scoring)."""
    path = _path(out_dir, "calls", identity_key(source_id))
    write_table_atomic(updated_calls_row(_read_one(path).to_pylist()[0], changes), path)


def write_error(out_dir: Path, table: pa.Table) -> None:
    """Record a failed input, replacing any earlier record for the same identity."""
    write_table_atomic(table, _path(out_dir, "errors", identity_key(table.column("source_id")[0].as_py())))


def clear_error(out_dir: Path, source_id: str) -> None:
    """Remove an input's error record after it succeeded (or was fixed)."""
    _path(out_dir, "errors", identity_key(source_id)).unlink(missing_ok=True)


def _files(folder: Path) -> list[Path]:
    """The data files of one dataset folder; a pipe, socket or device named ``*.parquet`` is left out with a
    warning (opening a pipe would wait for ever); anything else that does not read is warned about by the reader."""
    found = []
    for path in sorted(folder.glob("*.parquet")):
        if path.name.startswith((".", "_")):
            continue
        try:
            mode = path.stat().st_mode
        except OSError:  # a dangling link: the reader says so
            mode = stat.S_IFREG
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            logger.warning("%s is not a file callcycle wrote (a pipe, socket or device); left out", path)
            continue
        found.append(path)
    return found


def _read_files(files: list[Path], schema: pa.Schema) -> pa.Table:
    """Read many files as one table; a file that does not read is skipped with a warning (never a crash)."""
    try:
        return ds.dataset([str(f) for f in files], format="parquet", schema=schema).to_table()
    except (pa.ArrowException, OSError, ValueError):  # one file is damaged or of another shape: read one by one
        pass
    parts = [t for t in (_read_single(file, schema) for file in files) if t is not None]
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _schema_version(path: Path) -> str | None:
    """The callcycle schema version a Parquet file was written with ("" if none); ``None`` if unreadable."""
    try:
        return schema_version_of(pq.read_schema(path))
    except (pa.ArrowException, OSError, UnicodeDecodeError):
        return None


def _on_current_layout(out_dir: Path) -> bool:
    """Whether a run of this version has tidied ``out_dir`` (:func:`retire_old_layout`'s marker)."""
    marker = out_dir / _LAYOUT_MARKER
    try:
        return marker.read_text(encoding="utf-8").strip() == SCHEMA_VERSION
    except OSError:
        return False


def _current_files(files: list[Path], warn: bool = True) -> list[Path]:
    """``files`` written with the current schema; older ones are left out, with a warning when ``warn``
    (reading them against today's schema would give rows with empty columns)."""
    kept: list[Path] = []
    old: list[Path] = []
    for path in files:
        version = _schema_version(path)
        (kept if version in (None, SCHEMA_VERSION) else old).append(path)  # unreadable: _read_files warns
    if old and warn:
        logger.warning("%s: %d file(s) from an older callcycle (schema other than %s) left out; "
                       "run `callcycle run` on this output to move them aside and score their calls again",
                       old[0].parent.parent, len(old), SCHEMA_VERSION)
    return kept


def _read_single(path: Path, schema: pa.Schema, old: list[Path] | None = None) -> pa.Table | None:
    """One file as a table of ``schema`` (``None``, with a warning, when it does not read back); a
    column the file lacks reads as nulls, as in :func:`_read_files`. With ``old``, a file written with
    another schema version is ``None`` too and added to ``old`` (the caller warns once for all)."""
    try:
        table = _read_one(path)
        version = schema_version_of(table.schema)
        if not version:  # no callcycle schema at all: an export, another tool's file
            logger.warning("%s is not a file callcycle wrote (no callcycle schema in it); left out: move it out of "
                           "the output folder", path)
            return None
        if old is not None and version != SCHEMA_VERSION:
            old.append(path)
            return None
        held = (table.schema.metadata or {}).get(b"callcycle.table", b"").decode("utf-8", "replace")
        if held and held != (schema.metadata or {}).get(b"callcycle.table", b"").decode():
            logger.warning("%s holds the %s table, not this folder's; left out (move it back, or delete it)",
                           path, printable(held))
            return None
        if table.column_names != schema.names:
            table = ds.dataset(str(path), format="parquet", schema=schema).to_table()
        return table.cast(schema)
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as exc:
        # ValueError: another table's file, or an export with some columns only (a required one would be null)
        if not _OWN_NAME.fullmatch(path.name):  # not a name callcycle gives: no run will replace it
            logger.warning("%s is not a file callcycle wrote (%s); left out: move it out of the output folder",
                           path, printable(str(exc))[:300])
        else:
            logger.warning("%s does not read back (%s); left out; a run over its input scores that call again",
                           path, printable(str(exc))[:300])
        return None


#: Tables small enough per file to be remembered between reads (:mod:`pipeline.store.snapshot`).
SNAPSHOT_TABLES = ("calls", "errors")


def _table_folder(out_dir: Path, table: str) -> Path:
    """``out_dir/table``, refused when something other than a folder is there: read as "nothing scored", it
    made summary say so and report replace a good report with one of no calls (or of no transcripts).

    Raises:
        OutputError: naming the file in the way and what to do.
    """
    folder = out_dir / table
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError(f"{folder} is not a folder: this output's {table} table cannot be read.",
                          f"Move the file {folder} away (callcycle keeps a table's files in a folder of that "
                          "name), then run the command again; `callcycle run` scores again what is missing.")
    return folder


def _read_table(out_dir: Path, table: str, warn: bool = True, snapshots: bool = False) -> pa.Table:
    """One dataset's current-schema files as one table (no filtering of uncommitted segments)."""
    schema = SCHEMAS[table]
    folder = _table_folder(Path(out_dir), table)
    files = _files(folder) if folder.is_dir() else []
    if files and not _on_current_layout(Path(out_dir)):
        files = _current_files(files, warn)
    if not files:
        return schema.empty_table()
    if table not in SNAPSHOT_TABLES:  # segments: kept only where a current calls row names them
        return _read_files(files, schema)
    # each file's schema version is checked even in a folder on the current layout: an older release
    # still running somewhere (a second host, a forgotten cron job) writes old files into it afterwards
    old: list[Path] = []

    def read(path: Path) -> pa.Table | None:
        return _read_single(path, schema, old)

    try:
        where = snapshot_path(Path(out_dir), table) if snapshots else None
    except RuntimeError:  # no home folder to keep it in
        where = None
    if where is not None:
        result = read_with_snapshot(files, schema, read, where)
    else:
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:  # reads release the GIL
            parts = [t for t in pool.map(read, files) if t is not None]
        result = pa.concat_tables(parts) if parts else schema.empty_table()
    if old and warn:
        logger.warning("%s: %d file(s) written by an older callcycle (schema other than %s) after this folder was "
                       "last tidied (is an older release still running on another host or in a scheduled job?) "
                       "left out of the figures; `callcycle run` over their inputs scores those calls again",
                       Path(out_dir), len(old), SCHEMA_VERSION)
    return result


def read_dataset(out_dir: Path, table: str, snapshots: bool = False) -> pa.Table:
    """Read one dataset (``segments``, ``calls`` or ``errors``) as a single Arrow table.

    A dataset that does not exist yet reads as an empty table with the right schema; unreadable
    files are skipped (and redone by the next run); files of an older schema are left out until a
    run tidies the folder; segments are returned only when their calls row, of the same version,
    is there. With ``snapshots`` the ``calls`` and ``errors`` files read before and unchanged since
    are not opened again (:mod:`pipeline.store.snapshot`); the rows are the same.
    """
    result = _read_table(Path(out_dir), table, snapshots=snapshots)
    if table == "segments":
        committed = _read_table(Path(out_dir), "calls", warn=False, snapshots=snapshots).column("call_key")
        result = result.filter(pc.is_in(result.column("call_key"), value_set=committed))
    return result


def read_segments(out_dir: Path, source_ids: Sequence[str]) -> pa.Table:
    """The segments of these call identities only, each kept only when its calls row reads back and
    names the same version (as :func:`read_dataset` does for the whole dataset). Files that do not
    read back are skipped with a warning, files of an older schema silently (reading the calls table
    warns about those); two files per call are opened, a few at a time, so a report of the 200 most
    recent calls costs the same for an archive of a thousand or a million."""
    schema = SCHEMAS["segments"]
    if source_ids and not _table_folder(Path(out_dir), "segments").is_dir():
        logger.warning("%s has no segments folder: the calls' sentences cannot be shown; `callcycle run` on "
                       "their inputs scores them again", out_dir)
    tidy = _on_current_layout(Path(out_dir))

    def one(ident: str) -> pa.Table | None:
        calls_path, segs_path = _path(out_dir, "calls", ident), _path(out_dir, "segments", ident)
        if not segs_path.is_file() or not calls_path.is_file():
            return None
        if not tidy and len(_current_files([calls_path, segs_path], warn=False)) < 2:
            return None
        calls, table = _read_single(calls_path, CALLS_SCHEMA), _read_single(segs_path, schema)
        if calls is None or table is None:
            return None
        return table.filter(pc.is_in(table.column("call_key"), value_set=calls.column("call_key")))

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:  # reads release the GIL
        parts = [t for t in pool.map(one, sorted({identity_key(s) for s in source_ids})) if t is not None]
    return pa.concat_tables(parts) if parts else schema.empty_table()


def output_error(out_dir: Path, exc: OSError, doing: str) -> OutputError:
    """An :class:`OutputError` that says what is wrong with the output folder and what to do."""
    import errno

    where = Path(out_dir)
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return OutputError(f"The disk holding {where} is full ({doing}).",
                           "Free space (or pass another --out) and run again: finished calls are kept "
                           "and the rerun scores the rest.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"Cannot write to {where}: {exc.strerror or 'permission denied'} ({doing}).",
                           "Pass a folder you can write to with --out, or fix its permissions.")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocking = next((p for p in [where, *(where / name for name in SCHEMAS)]  # the file in the way, by name
                         if os.path.lexists(p) and not p.is_dir()), where)
        inside = "" if blocking == where else f" ({blocking} is a file where callcycle keeps a folder)"
        return OutputError(f"--out {where} is not a folder callcycle can use{inside}.",
                           "Pass a folder with --out, or move the file in the way.")
    return OutputError(f"Cannot write to {where}: {exc.strerror or exc} ({doing}).",
                       "Check the output folder (--out) exists and is writable.")


def check_output_dir(out_dir: Path) -> None:
    """Create the output folders and prove a file can be written there, before any work starts.

    Raises:
        OutputError: ``out_dir`` is a file, read-only, not permitted, or on a full disk.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file, not a folder.",
                          "Pass a folder with --out (it is created if missing), or move the file away.")
    try:
        for name in SCHEMAS:
            (out_dir / name).mkdir(parents=True, exist_ok=True)
        probe = temp_path(out_dir / "calls" / "write-probe")
        try:
            with open(probe, "wb") as handle:
                handle.write(b"\0" * 4096)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise output_error(out_dir, exc, "checking the output folder") from exc


LEGACY = "legacy"
_LAYOUT_MARKER = ".layout"

#: In each table's folder: no rows, the current schema (see the module docstring).
SCHEMA_FILE = "_schema.parquet"


def write_schema_files(out_dir: Path) -> None:
    """Give every table folder a row-less ``_schema.parquet`` of the current schema (kept if it is one).

    ``read_parquet('out/errors/*.parquet')`` in DuckDB or Polars fails on a folder with no file ("No
    files found") — the errors table after a night without failures; with this file it gives zero
    rows of the right columns. Our readers and pyarrow.dataset skip names starting with ``_``.
    """
    for table, schema in SCHEMAS.items():
        path = Path(out_dir) / table / SCHEMA_FILE
        if _schema_version(path) == SCHEMA_VERSION:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table_atomic(schema.empty_table(), path)


def retire_old_layout(out_dir: Path) -> int:
    """Move files written by an older schema (one file per *content* hash) out of the readers' way.

    Schema 1 named files by the bytes' hash, so one call could have several rows; its rows cannot
    be re-keyed by identity (the input root is unknown), so they move to ``legacy/<table>/`` and the
    calls are scored again. A marker file records that the folder is on the current layout, so
    this scan runs once per output folder. Returns how many files moved.
    """
    out_dir = Path(out_dir)
    marker = out_dir / _LAYOUT_MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == SCHEMA_VERSION:
        return 0
    moved = calls = 0
    for table in SCHEMAS:
        folder = out_dir / table
        for path in _files(folder) if folder.is_dir() else []:
            version = _schema_version(path)
            if version is not None and version != SCHEMA_VERSION:  # unreadable: stored_call/read_dataset
                target = out_dir / LEGACY / table / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), target)
                moved += 1
                calls += table == "calls"
    if moved:  # a call whose input is not among this run's inputs is out of the figures until one is
        logger.warning("%s: %d files from an older callcycle (%d call(s)) moved to %s/; a call counts again once "
                       "a run over its input scores it (this run does so for its own inputs; run `callcycle run` "
                       "over the other folders with this output for the rest)", out_dir, moved, calls,
                       out_dir / LEGACY)
    write_bytes_atomic(marker, f"{SCHEMA_VERSION}\n".encode())
    return moved


class LocalStore:
    """:class:`pipeline.store.base.Store` over an output folder (the functions of this module).

    Every write is a whole file replaced with ``os.replace``; the calls file is written last and
    is the commit. ``replace`` in :meth:`write_call` changes nothing here: a rename always replaces.
    ``snapshots`` (on by default): :meth:`read_dataset` remembers the ``calls`` and ``errors`` rows
    between reads, so a summary of a large archive opens only the files written since
    (:mod:`pipeline.store.snapshot`).
    """

    def __init__(self, out_dir: Path, snapshots: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.snapshots = snapshots

    def __repr__(self) -> str:
        return f"LocalStore({str(self.out_dir)!r})"

    @property
    def location(self) -> str:
        return str(self.out_dir.resolve())

    def check(self) -> None:
        check_output_dir(self.out_dir)

    def prepare(self) -> None:
        sweep_stale_temp(self.out_dir)
        claims.sweep_folder(self.out_dir)
        retire_old_layout(self.out_dir)
        write_schema_files(self.out_dir)

    def stored_call(self, source_id: str, key: str) -> StoredCall:
        return stored_call(self.out_dir, source_id, key)

    def write_call(self, key: str, segments: pa.Table, calls: pa.Table, *, replace: bool = False) -> bool:
        """Always True: a folder replaces the call's files atomically (one attempt at a time holds the call's
        claim, and another attempt at the same version writes the same rows), so nothing is refused here."""
        write_call(self.out_dir, key, segments, calls)
        return True

    def update_call(self, source_id: str, changes: dict[str, Any]) -> None:
        update_call(self.out_dir, source_id, changes)

    def claim(self, source_id: str, batch: str = "") -> AbstractContextManager[Holder | None]:
        return claims.claim(self.out_dir, identity_key(source_id), batch)

    def write_error(self, table: pa.Table) -> None:
        write_error(self.out_dir, table)

    def clear_error(self, source_id: str) -> None:
        clear_error(self.out_dir, source_id)

    def read_dataset(self, table: str) -> pa.Table:
        return read_dataset(self.out_dir, table, snapshots=self.snapshots)

    def read_segments(self, source_ids: Sequence[str]) -> pa.Table:
        return read_segments(self.out_dir, source_ids)

    def has_results(self) -> bool:
        # a run leaves its layout marker (older versions: Parquet files); a calls/ folder alone may be
        # an input folder (./data/calls holds the sample recordings)
        if (self.out_dir / _LAYOUT_MARKER).is_file():
            return True
        return any(_files(self.out_dir / table) for table in ("calls", "errors") if (self.out_dir / table).is_dir())

    def sweep(self, older_than_s: float) -> int:
        """Dead writers' temporary files (any age: a live writer's are recognised by its process id)."""
        return sweep_stale_temp(self.out_dir)

    def write_bytes(self, name: str, data: bytes) -> str:
        path = self.out_dir / name
        write_bytes_atomic(path, data)
        return str(path)

    def output_error(self, exc: OSError, doing: str) -> OutputError:
        return output_error(self.out_dir, exc, doing)
