"""Remembered fingerprints: an input whose bytes cannot have changed is not read again to be hashed.

A call's version is the sha256 of its bytes (:class:`~pipeline.schema.Source`). Hashing reads every
byte, so a nightly run over an archive that grows by a month of 30-minute recordings at a time would
otherwise re-read the whole archive each night only to find most of it already scored. This cache
remembers each input's sha256 together with a **signature** that changes whenever its bytes can have
changed, and discovery takes the remembered hash only when the signature is the same:

- a file on a disk: device, inode, size, modification time and status-change time, all in
  nanoseconds. Writing a file moves both times; ``ctime`` cannot be set back by a program (``touch -d``
  and ``os.utime`` set ``mtime`` only), and a file replaced by a rename or restored from a backup has
  another inode;
- an ``s3://`` object: its size, ETag and LastModified (objects are replaced whole, never changed in
  place; a replacement has a new LastModified and, in practice, a new ETag).

A signature is remembered only when the file's times are at least :data:`RACY_S` seconds older than
the hash (as git does for its index): on a filesystem whose clock ticks in whole seconds, a file
rewritten within the second it was hashed in would otherwise keep its signature.

The cache is one SQLite file (``$XDG_CACHE_HOME/callcycle/fingerprints/sha256.sqlite3`` by default,
:func:`default_path`); it holds nothing that cannot be recomputed. If it cannot be opened or written
(read-only home, damaged file) discovery hashes every input as before and says so in the log. An entry
no run has looked up for :data:`FORGET_AFTER_S` (180 days) is dropped, so inputs deleted from the
archive do not stay in the file for ever.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.paths import cache_dir

__all__ = ["FingerprintCache", "open_fingerprints", "fingerprints_for_run", "default_path", "file_signature",
           "object_signature", "settled", "RACY_S", "FORGET_AFTER_S"]

logger = logging.getLogger("callcycle.ingest")

#: A file modified less than this many seconds before it was hashed is hashed again next time.
RACY_S = 3.0

#: Entries no run has looked up or written for this long are dropped (files deleted or moved away),
#: so the file does not grow for ever; a dropped entry costs one hash if its input comes back.
FORGET_AFTER_S = 180 * 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    location TEXT PRIMARY KEY,
    signature TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    seen_at REAL NOT NULL
)
"""


def default_path() -> Path:
    """Where runs keep remembered fingerprints unless told otherwise."""
    return cache_dir("fingerprints") / "sha256.sqlite3"


def file_signature(st: os.stat_result) -> str:
    """What must stay the same for a file's bytes to be the ones hashed before."""
    return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def object_signature(info: dict[str, Any]) -> str | None:
    """The same for an object in S3 (``fs.info`` details); ``None`` when it has no ETag to go by."""
    etag, modified = info.get("ETag"), info.get("LastModified")
    if not etag or modified is None:
        return None
    return f"s3:{info.get('size')}:{etag}:{modified}"


def settled(st: os.stat_result, hashed_at: float) -> bool:
    """Whether a file's times are old enough for its signature to be trusted later (see :data:`RACY_S`)."""
    return hashed_at - max(st.st_mtime, st.st_ctime) >= RACY_S


class FingerprintCache:
    """sha256 digests remembered by input location and signature, in one SQLite file.

    Lookups read the file; new digests are kept in memory and written by :meth:`flush` (and on
    :meth:`close`), in one transaction. Use as a context manager. Two runs may share the file:
    SQLite serialises their writes, and the later writer's digest for a location wins, which is
    right either way since a digest is only taken with the signature it was computed under.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
        self._db.execute(_SCHEMA)
        self._db.commit()
        self._pending: dict[str, tuple[str, str, float]] = {}
        self._seen: list[str] = []
        self.hits = 0
        self.misses = 0
        self._broken = False

    def __enter__(self) -> FingerprintCache:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def lookup(self, location: str, signature: str | None) -> str | None:
        """The remembered sha256 of ``location`` if it was taken under ``signature``, else ``None``."""
        if signature is None or self._broken:
            self.misses += 1
            return None
        try:
            row = self._db.execute("SELECT signature, sha256 FROM fingerprints WHERE location = ?",
                                   (location,)).fetchone()
        except sqlite3.Error as exc:
            self._give_up(exc)
            row = None
        if row is not None and row[0] == signature:
            self.hits += 1
            self._seen.append(location)
            return str(row[1])
        self.misses += 1
        return None

    def remember(self, location: str, signature: str | None, sha256: str) -> None:
        """Keep a digest for the next run (written by :meth:`flush`)."""
        if signature is not None:
            self._pending[location] = (signature, sha256, time.time())

    def flush(self) -> None:
        """Write the digests remembered since the last flush, mark the ones looked up as seen, and drop
        entries unseen for :data:`FORGET_AFTER_S`."""
        now = time.time()
        rows = [(loc, sig, sha, at) for loc, (sig, sha, at) in self._pending.items()]
        seen = [(now, loc) for loc in self._seen]
        self._pending.clear()
        self._seen.clear()
        if self._broken or not (rows or seen):
            return
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?)", rows)
                self._db.executemany("UPDATE fingerprints SET seen_at = ? WHERE location = ?", seen)
                self._db.execute("DELETE FROM fingerprints WHERE seen_at < ?", (now - FORGET_AFTER_S,))
        except sqlite3.Error as exc:
            self._give_up(exc)

    def close(self) -> None:
        """Flush and close the file."""
        try:
            self.flush()
        finally:
            self._db.close()

    def _give_up(self, exc: sqlite3.Error) -> None:
        if not self._broken:
            logger.warning("The fingerprint cache %s cannot be used (%s); inputs are hashed in full. "
                           "Delete the file to start it afresh.", self.path, exc)
        self._broken = True


@contextmanager
def fingerprints_for_run(enabled: bool, path: str | Path | None = None) -> Iterator[FingerprintCache | None]:
    """The cache a run uses (``[run] reuse_fingerprints`` / ``fingerprint_cache``), closed (and
    written) afterwards; ``None`` when switched off or unusable."""
    cache = open_fingerprints(Path(path) if path else None) if enabled else None
    try:
        yield cache
    finally:
        if cache is not None:
            logger.info("discovery: %d inputs hashed, %d unchanged since an earlier run (%s)",
                        cache.misses, cache.hits, cache.path)
            cache.close()


def open_fingerprints(path: Path | None = None) -> FingerprintCache | None:
    """The cache at ``path`` (default :func:`default_path`), or ``None`` with a warning when it cannot be used."""
    target = Path(path) if path is not None else default_path()
    try:
        return FingerprintCache(target)
    except (OSError, sqlite3.Error) as exc:
        logger.warning("The fingerprint cache %s cannot be opened (%s); every input is hashed in full.", target, exc)
        return None
