"""Remembered fingerprints: an input whose bytes cannot have changed is not read again to be hashed.

A call's version is the sha256 of its bytes (:class:`~pipeline.schema.Source`). Hashing reads every
byte, so a nightly run over an archive that grows by a month of 30-minute recordings at a time would
otherwise re-read the whole archive each night only to find most of it already scored. This cache
remembers each input's sha256 together with a **signature** that ordinary ways of changing a file
change, and discovery takes the remembered hash only when the signature is the same:

- a file on a disk: device, inode, size, modification time and status-change time, all in
  nanoseconds. Writing a file moves both times; a program can set ``mtime`` back (``touch -d``,
  ``os.utime``, ``cp -p``) but not ``ctime``, and a file replaced by a rename or restored from a
  backup has another inode. The signature is read from an opened file (``fstat``), which makes an NFS
  client check the file's attributes with the server instead of answering from its cache;
- an ``s3://`` object: its size, ETag and LastModified (objects are replaced whole, never changed in
  place; a replacement has a new LastModified).

What a signature cannot see, and the safeguards:

- *Fresh files.* A signature is remembered only when the file's times are at least :data:`RACY_S`
  (60 s) older than the hash, by this machine's clock. This covers clocks that tick in whole seconds
  (a rewrite in the same tick keeps the times; git's "racy" rule) and a file server whose clock is
  somewhat behind this machine's.
- *Writes that move no time.* Writes through a memory map the writer already holds, and
  filesystems with no real status-change time (FAT/exFAT, some FUSE mounts) where a same-size edit
  with its ``mtime`` put back changes nothing. So no remembered digest is trusted for ever: each entry
  is hashed again after :data:`REVERIFY_S` (30 days) plus a fixed share of another 30 that depends on its
  location. Re-checks of an archive scored in one night are thus spread over a month of nights,
  about 1/30 of it each night. ``callcycle run --rehash`` reads everything now.

The cache is one SQLite file (``$XDG_CACHE_HOME/callcycle/fingerprints/sha256.sqlite3`` by default,
:func:`default_path`); it holds nothing that cannot be recomputed. If it cannot be opened or written
(read-only or missing home, damaged file, locked for longer than 30 s) discovery hashes every input
as before and says so in the log. An entry no run has looked up for :data:`FORGET_AFTER_S` (180 days)
is dropped, so inputs deleted from the archive do not stay in the file for ever.
"""

from __future__ import annotations

import hashlib
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
           "object_signature", "file_status", "trusted_until", "settled", "RACY_S", "REVERIFY_S",
           "FORGET_AFTER_S"]

logger = logging.getLogger("callcycle.ingest")

#: A file modified less than this many seconds before it was hashed is hashed again next time.
RACY_S = 60.0

#: A remembered digest is trusted for this long after its hash, plus a share of as long again that
#: depends on the location (so re-checks spread over nights), then the input is hashed again.
REVERIFY_S = 30 * 86400.0

#: Entries no run has looked up or written for this long are dropped (files deleted or moved away),
#: so the file does not grow for ever; a dropped entry costs one hash if its input comes back.
FORGET_AFTER_S = 180 * 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    location TEXT PRIMARY KEY,
    signature TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    hashed_at REAL NOT NULL,
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


def file_status(path: Path) -> os.stat_result:
    """``fstat`` of the opened file (see the module docstring: NFS checks attributes on open).

    Raises:
        OSError: it cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def trusted_until(location: str, hashed_at: float) -> float:
    """When a digest taken at ``hashed_at`` is due to be checked again (:data:`REVERIFY_S`)."""
    share = int.from_bytes(hashlib.sha256(location.encode("utf-8", "surrogateescape")).digest()[:4], "big") / 2**32
    return hashed_at + REVERIFY_S * (1.0 + share)


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
        self._db = sqlite3.connect(str(self.path), timeout=30.0)
        self._db.execute(_SCHEMA)
        self._db.commit()
        self._pending: dict[str, tuple[str, str, float]] = {}
        self.rechecks = 0
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
            row = self._db.execute("SELECT signature, sha256, hashed_at FROM digests WHERE location = ?",
                                   (location,)).fetchone()
        except sqlite3.Error as exc:
            self._give_up(exc)
            row = None
        if row is not None and row[0] == signature:
            if time.time() < trusted_until(location, float(row[2])):
                self.hits += 1
                self._seen.append(location)
                return str(row[1])
            self.rechecks += 1  # due for a check: hashed again, and remembered afresh
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
        rows = [(loc, sig, sha, at, at) for loc, (sig, sha, at) in self._pending.items()]
        seen = [(now, loc) for loc in self._seen]
        self._pending.clear()
        self._seen.clear()
        if self._broken or not (rows or seen):
            return
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?)", rows)
                self._db.executemany("UPDATE digests SET seen_at = ? WHERE location = ?", seen)
                self._db.execute("DELETE FROM digests WHERE seen_at < ?", (now - FORGET_AFTER_S,))
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
    target: Path | str = path if path is not None else "the default location"
    try:
        target = Path(path) if path is not None else default_path()  # no home folder: RuntimeError
        return FingerprintCache(target)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        logger.warning("The fingerprint cache %s cannot be opened (%s); every input is hashed in full.", target, exc)
        return None
