"""Parquet datasets under an ``s3://`` prefix, each call version committed exactly once.

S3 has no rename, so the local store's "write a temporary file, rename it over the old one"
cannot be used. Instead (layout under the prefix)::

    calls/<identity>/<call_key>.<attempt>.parquet      the call's row      } data files: written once,
    segments/<identity>/<call_key>.<attempt>.parquet   its segments        } named per attempt
    commits/<identity>/<call_key>.json                 commit marker: names the two data files
    errors/part-<identity>.parquet                     one row while the input fails (plain overwrite)
    quarantine/commits/<identity>/...                  markers whose data files did not read back

``<identity>`` hashes the call's ``source_id`` and ``<call_key>`` is the version of its results
(see :mod:`pipeline.store.schema`); ``<attempt>`` is unique to one attempt (time + random).

**Commit.** An attempt writes its two data files, then creates the marker with a create-only PUT
(``If-None-Match: *``). S3 accepts exactly one such PUT per marker name: the winner's files are the
call's results; a loser gets HTTP 412, deletes its own data files and reports that the version
was already committed. A Dask task re-run after its worker died (prefect#15442), or two batches
over the same inputs, therefore leave exactly one committed row set per call version.

**Readers** (:meth:`S3Store.read_dataset`, so ``callcycle summary``/``report``) list the markers and
read only the files they name; per identity the newest marker wins (S3's ``LastModified``, then
the writer's ``committed_at``), so a new version of a call replaces the old one for every reader.
Data files that no marker names — a crashed attempt's, a loser's that could not be deleted, an
old version's — are invisible, and :meth:`S3Store.sweep` deletes them once older than a given
age (``callcycle sweep s3://… --older-than 24``). A glob over ``calls/**/*.parquet`` by another
tool would see them too: read the markers, or use :func:`committed_files`.

**Readers remember** what they read (``snapshots``, on by default): the commit markers' bodies and the
``calls`` and ``errors`` rows are kept in a local snapshot (:mod:`pipeline.store.snapshot`) keyed by
each object's size, ETag and LastModified in the listing, so the next read lists ``commits/`` and
``calls/`` and GETs only objects that are new or were rewritten — not two objects per call every
night. An object written less than a minute before is read but not remembered (the racy rule of
local files, in :func:`pipeline.store.snapshot.read_remembered`). Writers (``stored_call``,
``commit``) always read markers afresh.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import objectstore
from pipeline.config import DEFAULT_ORPHAN_AGE_S
from pipeline.errors import OutputError
from pipeline.ingest.fingerprints import object_signature
from pipeline.store import claims
from pipeline.store.base import StoredCall
from pipeline.store.schema import (
    CALLS_SCHEMA,
    SCHEMA_VERSION,
    SCHEMAS,
    VERSION_KEY,
    identity_key,
    schema_version_of,
    updated_calls_row,
)
from pipeline.store.snapshot import default_path as snapshot_path
from pipeline.store.snapshot import read_remembered

__all__ = ["S3Store", "Attempt", "Marker", "COMMITS", "QUARANTINE", "DEFAULT_ORPHAN_AGE_S", "committed_files"]

logger = logging.getLogger("callcycle.store")

COMMITS = "commits"
QUARANTINE = "quarantine"
#: Where ``--prune`` moves the rows of calls whose input is gone (copies of their files; readers never look).
RETIRED = "retired"
_MARKER_FORMAT = 1
#: A commit marker's bytes, as a reader's snapshot keeps them (one row per marker object).
_MARKER_BODY = pa.schema([pa.field("body", pa.binary(), nullable=False)],
                         metadata={VERSION_KEY: f"commit-marker-{_MARKER_FORMAT}"})


@dataclass(frozen=True, slots=True)
class Attempt:
    """Data files written by one attempt at one call version, not yet committed."""

    identity: str
    source_id: str
    call_key: str
    name: str
    files: dict[str, str]  # dataset -> path relative to the store's prefix
    n_segments: int


@dataclass(frozen=True, slots=True)
class Marker:
    """A commit marker as read back."""

    path: str  # s3fs path of the marker object
    identity: str
    call_key: str
    files: dict[str, str]
    committed_at: str
    last_modified: datetime = field(compare=False)

    @property
    def order(self) -> tuple[datetime, str, str]:
        """Newest wins: the server's clock first, then the writer's, then the key (deterministic)."""
        return (self.last_modified, self.committed_at, self.call_key)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def _read_parquet(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def _response(exc: BaseException) -> dict[str, Any]:
    """The S3 reply behind an error s3fs raised (botocore's ``response`` on its cause), or ``{}``."""
    cause = getattr(exc, "__cause__", None)
    return getattr(cause, "response", {}) if cause is not None else {}


def _is_conflict(exc: BaseException) -> bool:
    """A 409 ConditionalRequestConflict: AWS's answer when a create-only PUT races another conditional
    write or a delete of the same key; AWS says to retry."""
    response = _response(exc)
    return (response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 409
            or response.get("Error", {}).get("Code") == "ConditionalRequestConflict"
            or "ConditionalRequestConflict" in str(exc))


#: Tries of a create-only PUT that AWS answers with 409 ConditionalRequestConflict, and the pause before
#: the first retry (doubled each time, with jitter).
CONFLICT_TRIES = 4
CONFLICT_PAUSE_S = 0.2


def _is_precondition_failed(exc: BaseException) -> bool:
    """A 412 to a create-only PUT (s3fs maps it to FileExistsError; older ones to a plain OSError)."""
    if isinstance(exc, FileExistsError):
        return True
    return isinstance(exc, OSError) and _response(exc).get("ResponseMetadata", {}).get("HTTPStatusCode") == 412


def _now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return _now()


class S3Store:
    """:class:`pipeline.store.base.Store` over ``s3://bucket/prefix`` (see the module docstring).

    Args:
        uri: the output, ``s3://bucket`` or ``s3://bucket/some/prefix``.
        fs: an fsspec S3 filesystem; default :func:`pipeline.objectstore.filesystem` (environment).
        snapshots: readers remember the commit markers and the ``calls`` and ``errors`` rows they
            read, keyed by each object's size, ETag and LastModified from the listing
            (:func:`pipeline.ingest.fingerprints.object_signature`), in a local snapshot
            (:mod:`pipeline.store.snapshot`): a later read lists the prefix and fetches only the
            objects that are new or changed, instead of two GETs per call. Writers never use them.
    """

    def __init__(self, uri: str, fs: Any | None = None, snapshots: bool = True) -> None:
        bucket, prefix = objectstore.split_uri(uri)
        self.bucket = bucket
        self.root = f"{bucket}/{prefix}" if prefix else bucket
        self._fs = fs
        self.snapshots = snapshots

    def __repr__(self) -> str:
        return f"S3Store({self.location!r})"

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = objectstore.filesystem()
        return self._fs

    @property
    def location(self) -> str:
        return objectstore.to_uri(self.root)

    # ---- objects -------------------------------------------------------------------------------

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _rel(self, path: str) -> str:
        return path[len(self.root) + 1:] if path.startswith(self.root + "/") else path

    def _put(self, rel: str, data: bytes, *, create: bool = False) -> None:
        """Write one object; ``create``: only if none exists (:class:`FileExistsError` if one does). A
        409 ConditionalRequestConflict to a create is retried (:data:`CONFLICT_TRIES`) before it counts."""
        for attempt in range(CONFLICT_TRIES):
            with objectstore.translate_errors():
                try:
                    self.fs.pipe_file(self._path(rel), data, mode="create" if create else "overwrite")
                    return
                except OSError as exc:
                    if create and _is_precondition_failed(exc) and not isinstance(exc, FileExistsError):
                        raise FileExistsError(str(exc)) from exc
                    if not (create and _is_conflict(exc)) or attempt == CONFLICT_TRIES - 1:
                        raise
            time.sleep(CONFLICT_PAUSE_S * 2 ** attempt * (1 + random.random()))

    def _get(self, rel: str) -> bytes:
        with objectstore.translate_errors():
            return bytes(self.fs.cat_file(self._path(rel)))

    def _delete(self, path: str) -> bool:
        """Delete one object (an s3fs path); ``False`` when it was already gone."""
        with objectstore.translate_errors():
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                return False
        return True

    def _list(self, rel: str) -> dict[str, dict[str, Any]]:
        """Every object under ``rel/`` with its details (``{}`` when there is none)."""
        with objectstore.translate_errors():
            try:
                found = self.fs.find(self._path(rel), detail=True)
            except FileNotFoundError:
                return {}
        return {path: info for path, info in found.items() if info.get("type", "file") == "file"}

    def _probes(self) -> dict[str, dict[str, Any]]:
        """The write-check objects (``.callcycle-probe-<hex>``, directly under the prefix) with their details."""
        with objectstore.translate_errors():
            try:
                listed = self.fs.ls(self.root, detail=True, refresh=True)
            except FileNotFoundError:
                return {}
        return {info["name"]: info for info in listed if info.get("type", "file") == "file"
                and info["name"].rsplit("/", 1)[-1].startswith(".callcycle-probe-")}

    def _cat(self, paths: list[str]) -> dict[str, bytes | Exception]:
        """Many objects at once (s3fs fetches them concurrently); a failure is returned, not raised."""
        if not paths:
            return {}
        with objectstore.translate_errors():
            result = self.fs.cat(list(paths), on_error="return")
        return {path: result.get(path, FileNotFoundError(path)) for path in paths}

    # ---- markers -------------------------------------------------------------------------------

    def _markers(self, identity: str | None = None, *, repair: bool = False) -> list[Marker]:
        """The commit markers of one identity, or of all. A marker that does not parse is skipped
        with a warning, and with ``repair`` (writers only; readers never write) quarantined."""
        found = self._list(f"{COMMITS}/{identity}" if identity else COMMITS)
        paths = sorted(p for p in found if p.endswith(".json"))
        bodies = self._cat(paths) if identity or repair else self._remembered_bodies(paths, found)
        markers = []
        for path, body in bodies.items():
            if isinstance(body, FileNotFoundError):
                continue  # superseded and retired meanwhile
            if isinstance(body, Exception):
                raise body if isinstance(body, OSError) else OSError(str(body))
            try:
                data = json.loads(body)
                files = {name: str(data["files"][name]) for name in ("calls", "segments")}
                markers.append(Marker(path=path, identity=str(data["identity"]), call_key=str(data["call_key"]),
                                      files=files, committed_at=str(data["committed_at"]),
                                      last_modified=_as_utc(found[path].get("LastModified"))))
            except (ValueError, KeyError, TypeError) as exc:
                if repair:
                    self._quarantine(path, f"unreadable commit marker ({exc})")
                else:
                    logger.warning("%s: unreadable commit marker (%s); skipped", objectstore.to_uri(path), exc)
        return markers

    def _snapshot(self, name: str) -> Path | None:
        """Where this output's readers keep the snapshot ``name`` (``None``: snapshots off, or no home)."""
        if not self.snapshots:
            return None
        try:  # keyed by the endpoint too: the same bucket name on another server is another output
            return snapshot_path(f"{objectstore.endpoint()} {self.location}", name)
        except RuntimeError:
            return None

    def _remembered(self, name: str, paths: list[str], found: dict[str, dict[str, Any]], schema: pa.Schema,
                    read_many: Callable[[list[str]], dict[str, pa.Table]]) -> dict[str, pa.Table]:
        """``paths`` (object paths, with their listing details in ``found``) read as one table each;
        through the snapshot ``name`` when snapshots are on, so that only new or changed objects are
        fetched. A path ``read_many`` leaves out is left out (and fetched again next time)."""
        where = self._snapshot(name)
        if where is None:
            return read_many(paths)
        now = _now()

        def age(info: dict[str, Any]) -> float | None:
            """Seconds since LastModified (whole seconds in listings; ``None`` when unknown)."""
            try:
                return (now - _as_utc(info["LastModified"])).total_seconds()
            except (KeyError, TypeError, ValueError):
                return None

        entries = [(path, object_signature(found.get(path, {})) or "", age(found.get(path, {}))) for path in paths]

        def read_listed(names: list[str]) -> list[pa.Table | None]:
            got = read_many(names)
            return [got.get(name) for name in names]

        table = read_remembered(entries, schema, read_listed, where, name_column="_object")
        out: dict[str, pa.Table] = {}
        names = table.column("_object").to_pylist()
        rows = table.drop_columns(["_object"])
        start = 0
        for i in range(1, len(names) + 1):  # rows come grouped by object, in name order
            if i == len(names) or names[i] != names[start]:
                out[names[start]] = rows.slice(start, i - start)
                start = i
        return out

    def _remembered_bodies(self, paths: list[str], found: dict[str, dict[str, Any]]) -> dict[str, bytes | Exception]:
        """Marker bodies for a reader: :meth:`_cat`, through the ``markers`` snapshot when it is on."""
        failed: dict[str, bytes | Exception] = {}

        def read_many(names: list[str]) -> dict[str, pa.Table]:
            got = {}
            for path, body in self._cat(names).items():
                if isinstance(body, Exception):
                    failed[path] = body
                else:
                    got[path] = pa.table({"body": pa.array([bytes(body)], pa.binary())}, schema=_MARKER_BODY)
            return got

        tables = self._remembered("markers", paths, found, _MARKER_BODY, read_many)
        bodies: dict[str, bytes | Exception] = {path: t.column("body")[0].as_py() for path, t in tables.items()}
        return {path: bodies[path] if path in bodies else failed.get(path, FileNotFoundError(path))
                for path in paths}

    @staticmethod
    def _current(markers: list[Marker]) -> dict[str, Marker]:
        """The current marker of each identity (the newest, see :attr:`Marker.order`)."""
        best: dict[str, Marker] = {}
        for marker in markers:
            seen = best.get(marker.identity)
            if seen is None or marker.order > seen.order:
                best[marker.identity] = marker
        return best

    def _quarantine(self, marker_path: str, reason: str) -> None:
        """Move a marker out of the readers' way; its data files become orphans (see :meth:`sweep`)."""
        stamp = _now().strftime("%Y%m%dT%H%M%S%f")
        rel = self._rel(marker_path)
        target = self._path(f"{QUARANTINE}/{rel}.{stamp}")
        with objectstore.translate_errors():
            try:
                self.fs.copy(marker_path, target)
            except FileNotFoundError:
                return
        self._delete(marker_path)
        logger.warning("%s: %s; moved to %s and the call will be redone", objectstore.to_uri(marker_path),
                       reason, objectstore.to_uri(target))

    def _broken(self, markers: list[Marker], current: Marker, reason: str) -> None:
        """Quarantine the current marker of an identity and retire its superseded ones, so readers
        show nothing for the call until it is redone (an older version would not match the input)."""
        self._quarantine(current.path, reason)
        for marker in markers:
            if marker is not current:
                self._delete(marker.path)

    # ---- the Store protocol --------------------------------------------------------------------

    def check(self) -> None:
        """Write, refuse to overwrite and delete a probe object: the bucket is there, the credentials
        may write, and the server honours create-only writes (without which exactly-once is lost)."""
        probe = f".callcycle-probe-{uuid.uuid4().hex}"
        try:
            self._put(probe, b"probe", create=True)
            try:
                self._put(probe, b"probe again", create=True)
                honoured = False
            except FileExistsError:
                honoured = True
            finally:
                self._delete(self._path(probe))
        except OSError as exc:
            raise self.output_error(exc, "checking the output location") from exc
        if not honoured:
            raise OutputError(
                f"The S3 server at {objectstore.endpoint()} ignores create-only writes (If-None-Match: *), "
                f"so calls written to {self.location} could be committed twice.",
                "Use AWS S3 or an S3-compatible server that supports conditional writes.")

    def prepare(self) -> None:
        """Before a batch: remove claims whose holders are gone (one listing of ``.claims/``, usually empty);
        orphaned data files are swept on request (:meth:`sweep`)."""
        with objectstore.translate_errors():
            found = self._list(claims.CLAIMS)
        claims.sweep(_S3ClaimFile(self, self._rel(path)) for path in sorted(found))

    def stored_call(self, source_id: str, key: str) -> StoredCall:
        """Check the current committed version of ``source_id`` against ``key``.

        ``current`` only when its calls file holds one row with ``call_key == key`` and its segments
        file ``n_segments`` rows of that key; committed files that are missing, do not read back or
        were written with another schema version have their marker quarantined (``broken``: the call
        is redone). Storage that cannot be
        reached raises :class:`OSError`.
        """
        markers = self._markers(identity_key(source_id), repair=True)
        if not markers:
            return StoredCall("missing")
        current = self._current(markers)[markers[0].identity]
        try:
            calls = _read_parquet(self._get(current.files["calls"]))
            if calls.num_rows != 1 or "call_key" not in calls.column_names:
                raise ValueError(f"{calls.num_rows} rows")
            row = calls.to_pylist()[0]
            if row["call_key"] != current.call_key:
                raise ValueError("its calls row is of another version than its marker")
        except (FileNotFoundError, pa.ArrowException, ValueError) as exc:
            self._broken(markers, current, f"committed calls file does not read back ({exc})")
            return StoredCall("broken")
        version = schema_version_of(calls.schema)
        if version != SCHEMA_VERSION:
            # committed by a callcycle of another schema: readers leave it out, so its marker is set
            # aside like a broken one's and the call is scored again (its version key may be the same)
            self._broken(markers, current, f"committed with schema {version or 'unknown'}, not {SCHEMA_VERSION}")
            return StoredCall("broken")
        if row["call_key"] != key:
            return StoredCall("stale", row)
        try:
            segs = _read_parquet(self._get(current.files["segments"]))
            keys = set(segs.column("call_key").to_pylist())
            if segs.num_rows != row["n_segments"] or keys != {key}:
                raise ValueError(f"{segs.num_rows} segment rows for {row['n_segments']} segments")
        except (FileNotFoundError, pa.ArrowException, ValueError, KeyError) as exc:
            self._broken(markers, current, f"committed segments do not match their calls row ({exc})")
            return StoredCall("broken")
        return StoredCall("current", row)

    def stage(self, key: str, segments: pa.Table, calls: pa.Table) -> Attempt:
        """Write an attempt's data files under names unique to it (invisible until :meth:`commit`)."""
        source_id = calls.column("source_id")[0].as_py()
        if calls.column("call_key")[0].as_py() != key:
            raise ValueError("calls row and key disagree")
        ident = identity_key(source_id)
        name = f"{key}.{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:16]}"
        files = {table: f"{table}/{ident}/{name}.parquet" for table in ("segments", "calls")}
        self._put(files["segments"], _parquet_bytes(segments))
        self._put(files["calls"], _parquet_bytes(calls))
        return Attempt(identity=ident, source_id=source_id, call_key=key, name=name, files=files,
                       n_segments=segments.num_rows)

    def commit(self, attempt: Attempt, *, replace: bool = False) -> bool:
        """Create the attempt's commit marker; ``False`` (and its files deleted) when another
        attempt committed this version first (HTTP 412).

        A marker of the same key that is no longer current (the input went back to bytes scored
        before) or, with ``replace``, the current one, is retired and the create tried once more.
        """
        marker = f"{COMMITS}/{attempt.identity}/{attempt.call_key}.json"
        body = json.dumps({
            "format": _MARKER_FORMAT, "identity": attempt.identity, "source_id": attempt.source_id,
            "call_key": attempt.call_key, "attempt": attempt.name, "files": attempt.files,
            "n_segments": attempt.n_segments, "committed_at": _now().isoformat(timespec="microseconds"),
            "writer": f"{socket.gethostname()}:{os.getpid()}",
        }, sort_keys=True).encode()
        for retry in (False, True):
            try:
                self._put(marker, body, create=True)
                return True
            except FileExistsError:
                if retry:
                    break
                current = self._current(self._markers(attempt.identity, repair=True)).get(attempt.identity)
                if current is not None and current.call_key == attempt.call_key and not replace:
                    break
                self._delete(self._path(marker))  # superseded (or replaced): its files become orphans
        logger.info("%s: version %s was already committed by another attempt; this attempt's files are "
                    "deleted", attempt.source_id, attempt.call_key)
        self.discard(attempt)
        return False

    def discard(self, attempt: Attempt) -> None:
        """Delete an uncommitted attempt's data files (best effort: :meth:`sweep` gets any left)."""
        for rel in attempt.files.values():
            try:
                self._delete(self._path(rel))
            except OSError as exc:
                logger.warning("%s not deleted (%s); the orphan sweep will remove it", rel, exc)

    def write_call(self, key: str, segments: pa.Table, calls: pa.Table, *, replace: bool = False) -> bool:
        return self.commit(self.stage(key, segments, calls), replace=replace)

    def claim(self, source_id: str, batch: str = "") -> AbstractContextManager[claims.Holder | None]:
        """Claim the call with a create-only object ``.claims/<identity key>`` (:mod:`pipeline.store.claims`):
        the commit marker already keeps one result per version; the claim saves a second run the work."""
        return claims.hold(_S3ClaimFile(self, f"{claims.CLAIMS}/{identity_key(source_id)}"), batch)

    def update_call(self, source_id: str, changes: dict[str, Any]) -> None:
        """Rewrite the committed calls file in place (one PUT replaces it whole; same key and rows)."""
        ident = identity_key(source_id)
        current = self._current(self._markers(ident)).get(ident)
        if current is None:
            raise FileNotFoundError(f"no committed results for {source_id}")
        row = _read_parquet(self._get(current.files["calls"])).to_pylist()[0]
        self._put(current.files["calls"], _parquet_bytes(updated_calls_row(row, changes)))

    def write_error(self, table: pa.Table) -> None:
        self._put(f"errors/part-{identity_key(table.column('source_id')[0].as_py())}.parquet", _parquet_bytes(table))

    def clear_error(self, source_id: str) -> None:
        self._delete(self._path(f"errors/part-{identity_key(source_id)}.parquet"))

    def committed_files(self, table: str) -> list[str]:
        """``s3://`` URIs of the files holding the current rows of ``calls`` or ``segments``."""
        current = self._current(self._markers())
        return [objectstore.to_uri(self._path(current[ident].files[table])) for ident in sorted(current)]

    def _read_files(self, paths: list[str], schema: pa.Schema) -> dict[str, pa.Table]:
        """Read many Parquet objects at once; one that does not read is left out with a warning
        (the next run's :meth:`stored_call` quarantines its marker and redoes the call), and so is
        one written with another schema version (read against today's schema its rows would have
        empty or misread columns; the next run scores its call again, as on a disk)."""
        tables = {}
        old: list[str] = []
        for path, body in self._cat(paths).items():
            try:
                if isinstance(body, Exception):
                    raise body
                table = _read_parquet(body)
                if schema_version_of(table.schema) != SCHEMA_VERSION:
                    old.append(path)
                    continue
                tables[path] = table.select(schema.names).cast(schema)
            except (OSError, pa.ArrowException, KeyError) as exc:
                logger.warning("%s does not read back (%s); left out; a run over its input scores that call again",
                               objectstore.to_uri(path), exc)
        if old:
            logger.warning("%s: %d file(s) from an older callcycle (schema other than %s) left out; "
                           "run `callcycle run` on the inputs with this output to score their calls again",
                           self.location, len(old), SCHEMA_VERSION)
        return tables

    def read_dataset(self, table: str) -> pa.Table:
        """Committed, current rows of one dataset (files that do not read back are skipped).

        Segments are returned only for calls whose committed calls row reads back too, as on a disk.
        """
        schema = SCHEMAS[table]
        if table == "errors":
            found = self._list("errors")
            paths = sorted(p for p in found if p.endswith(".parquet"))
            tables = self._remembered("errors", paths, found, schema, lambda ps: self._read_files(ps, schema))
            parts = [tables[path] for path in paths if path in tables]
            return pa.concat_tables(parts) if parts else schema.empty_table()
        current = self._current(self._markers())
        markers = [current[ident] for ident in sorted(current)]
        paths = [self._path(m.files[table]) for m in markers]
        listed = None
        if table == "calls" and self.snapshots:  # calls objects are rewritten in place by update_call
            try:
                listed = self._list("calls")
            except PermissionError:  # a reader allowed to list commits/ only: read as without a snapshot
                pass
        if listed is not None:
            tables = self._remembered("calls", paths, listed, schema, lambda ps: self._read_files(ps, schema))
        else:
            tables = self._read_files(paths, schema)
        if table == "segments":
            calls = self._read_files([self._path(m.files["calls"]) for m in markers], CALLS_SCHEMA)
            readable = {self._path(m.files["segments"]) for m in markers
                        if self._path(m.files["calls"]) in calls}
            tables = {path: t for path, t in tables.items() if path in readable}
        parts = [tables[path] for path in (self._path(m.files[table]) for m in markers) if path in tables]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def read_segments(self, source_ids: Sequence[str]) -> pa.Table:
        """The committed, current segments of these call identities only (their calls rows must read
        back, as in :meth:`read_dataset`): the commit markers are listed, then only these calls'
        files are fetched."""
        schema = SCHEMAS["segments"]
        wanted = {identity_key(s) for s in source_ids}
        current = self._current(self._markers())
        markers = [current[ident] for ident in sorted(wanted & set(current))]
        calls = self._read_files([self._path(m.files["calls"]) for m in markers], CALLS_SCHEMA)
        markers = [m for m in markers if self._path(m.files["calls"]) in calls]
        tables = self._read_files([self._path(m.files["segments"]) for m in markers], schema)
        parts = [tables[path] for path in (self._path(m.files["segments"]) for m in markers) if path in tables]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def has_results(self) -> bool:
        with objectstore.translate_errors():
            return bool(self.fs.exists(self._path(COMMITS)) or self.fs.exists(self._path("errors")))

    def sweep(self, older_than_s: float = DEFAULT_ORPHAN_AGE_S, now: datetime | None = None) -> int:
        """Delete orphans: data files no marker names, older than ``older_than_s`` seconds; and
        markers superseded by a newer version of their call that is itself that old (then their
        files). Returns how many objects were deleted.

        The age keeps in-flight attempts (files written, marker not yet) and readers that listed
        the markers just before a new version was committed safe. ``now`` is for tests.
        """
        cutoff = (now or _now()) - timedelta(seconds=older_than_s)
        markers = self._markers(repair=True)
        current = self._current(markers)
        retired = [m for m in markers if current[m.identity] is not m and current[m.identity].last_modified <= cutoff]
        removed = sum(self._delete(m.path) for m in retired)  # markers first: a crash leaves only orphans
        kept = {self._path(rel) for m in markers if m not in retired for rel in m.files.values()}
        for table in ("calls", "segments"):
            for path, info in sorted(self._list(table).items()):
                if path not in kept and _as_utc(info.get("LastModified")) <= cutoff:
                    removed += self._delete(path)
        for path, info in self._probes().items():  # never left unless a check crashed
            if _as_utc(info.get("LastModified")) <= cutoff:
                removed += self._delete(path)
        if removed:
            logger.info("%s: swept %d orphaned or superseded objects", self.location, removed)
        return removed

    def retire(self, source_id: str) -> bool:
        """Take a call whose input is gone out of the readers' view, keeping its rows (``--prune``).

        Its current data files, its commit marker and its error file are copied under ``retired/``
        (names made unique by the time, so a call name used again keeps both copies), then its markers and
        error file are deleted: readers stop counting it, and :meth:`sweep` later removes the data files
        the deleted markers named (the copies stay). Returns whether anything was retired.
        """
        ident = identity_key(source_id)
        stamp = _now().strftime("%Y%m%dT%H%M%S%f")
        markers = self._markers(ident)
        current = self._current(markers).get(ident)
        error = f"errors/part-{ident}.parquet"
        with objectstore.translate_errors():
            has_error = self.fs.exists(self._path(error))
            if current is None and not has_error:
                return False
            copies = [(rel, f"{RETIRED}/{table}/{Path(rel).stem}.{stamp}.parquet")
                      for table, rel in sorted(current.files.items())] if current else []
            if current is not None:
                copies.append((self._rel(current.path), f"{RETIRED}/{self._rel(current.path)}.{stamp}"))
            if has_error:
                copies.append((error, f"{RETIRED}/errors/part-{ident}.{stamp}.parquet"))
            for source, target in copies:  # every copy first: a crash in between leaves the call as it was
                self.fs.copy(self._path(source), self._path(target))
        for marker in markers:
            self._delete(marker.path)
        if has_error:
            self._delete(self._path(error))
        return True

    def write_bytes(self, name: str, data: bytes) -> str:
        self._put(name, data)
        return objectstore.to_uri(self._path(name))

    def output_error(self, exc: OSError, doing: str) -> OutputError:
        where, endpoint = self.location, objectstore.endpoint()
        if isinstance(exc, PermissionError) and "no S3 credentials" in str(exc):
            return OutputError(f"No S3 credentials were found for {where} ({doing}).",
                               "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a server "
                               "other than AWS).")
        if isinstance(exc, PermissionError):
            return OutputError(f"Access to {where} was denied ({doing}).",
                               "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that they may list, read, "
                               "write and delete objects under that prefix.")
        if isinstance(exc, FileNotFoundError):
            return OutputError(f"Bucket {self.bucket} was not found at {endpoint} ({doing}).",
                               "Create the bucket, or check its name in --out and AWS_ENDPOINT_URL.")
        if isinstance(exc, ConnectionError):
            return OutputError(f"Cannot reach the S3 endpoint {endpoint} ({doing}).",
                               "Check AWS_ENDPOINT_URL and the network, then run again: committed calls are kept.")
        return OutputError(f"Cannot write to {where}: {exc} ({doing}).",
                           "Check the bucket, the credentials and AWS_ENDPOINT_URL.")


def committed_files(uri: str, table: str) -> list[str]:
    """The ``s3://`` files holding the current rows of ``calls`` or ``segments`` under ``uri`` —
    for DuckDB (``read_parquet([...])``) or Polars, which would otherwise also see uncommitted files."""
    return S3Store(uri).committed_files(table)


@dataclass(frozen=True, slots=True)
class _S3ClaimFile:
    """A claim as an object, created with ``If-None-Match: *`` (:class:`pipeline.store.claims.ClaimFile`)."""

    store: S3Store
    rel: str

    def create(self, data: bytes) -> bool:
        try:
            self.store._put(self.rel, data, create=True)
        except FileExistsError:
            return False
        return True

    def read(self) -> tuple[bytes, float] | None:
        path = self.store._path(self.rel)
        with objectstore.translate_errors():
            self.store.fs.invalidate_cache(path)
            try:
                info = self.store.fs.info(path)
                data = bytes(self.store.fs.cat_file(path))
            except FileNotFoundError:
                return None
        return data, (_now() - _as_utc(info.get("LastModified"))).total_seconds()

    def delete(self) -> None:
        self.store._delete(self.store._path(self.rel))
