"""The one per-call storage protocol, and the function that picks its backend for an output location.

Two backends implement :class:`Store`:

- :class:`pipeline.store.local.LocalStore` — a folder on a disk: one file per call identity,
  replaced with an atomic rename (``os.replace``);
- :class:`pipeline.store.s3.S3Store` — an ``s3://`` prefix: S3 has no rename, so data files are
  written under a name unique to the attempt and a create-only commit marker per call key
  (``If-None-Match: *``) says which files are the call's results.

Both give readers only complete, current rows: one calls row per call identity and the segments
of that version. The scoring code (:mod:`pipeline.process`) talks to a :class:`Store` and never
to a backend directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

from pipeline.errors import OutputError
from pipeline.store.claims import Holder

__all__ = ["CallState", "StoredCall", "Store", "OutputLocation", "open_store"]

CallState = Literal["missing", "current", "stale", "broken"]


@dataclass(frozen=True, slots=True)
class StoredCall:
    """What the output holds for one call identity."""

    state: CallState
    row: dict[str, Any] | None = None


@runtime_checkable
class Store(Protocol):
    """Where a run's ``segments``, ``calls`` and ``errors`` datasets live.

    Every method that touches storage raises :class:`OSError` (or a subclass) when the storage
    cannot be used; :meth:`output_error` turns that into a message with what to do next.
    """

    @property
    def location(self) -> str:
        """The output as a user would write it (an absolute folder, or the ``s3://`` URI)."""
        ...

    def check(self) -> None:
        """Prove the output can be written, before any work starts (raises :class:`OutputError`)."""
        ...

    def prepare(self) -> None:
        """Housekeeping before a batch (dead writers' temporary files, an older layout)."""
        ...

    def stored_call(self, source_id: str, key: str) -> StoredCall:
        """``current`` when ``source_id``'s stored results are version ``key`` and read back completely;
        ``stale`` (another version), ``missing``, or ``broken`` (moved out of the readers' way)."""
        ...

    def write_call(self, key: str, segments: pa.Table, calls: pa.Table, *, replace: bool = False) -> bool:
        """Store a call's segments and its calls row as version ``key`` of its identity.

        Returns ``False`` when another attempt had already committed this version (nothing of this
        attempt is visible); ``replace`` commits over it all the same (``--force``).
        """
        ...

    def update_call(self, source_id: str, changes: dict[str, Any]) -> None:
        """Rewrite the stored calls row with some columns changed (metadata; no re-scoring)."""
        ...

    def claim(self, source_id: str, batch: str = "") -> AbstractContextManager[Holder | None]:
        """Hold ``source_id`` for this process (in run ``batch``) while it is scored, so another run on the
        same output leaves it alone (:mod:`pipeline.store.claims`). The context yields ``None`` when this
        process holds it, or the live :class:`~pipeline.store.claims.Holder` of another run's claim."""
        ...

    def write_error(self, table: pa.Table) -> None:
        """Record a failed input, replacing any earlier record for the same identity."""
        ...

    def clear_error(self, source_id: str) -> None:
        """Remove an input's error record (it succeeded or was fixed)."""
        ...

    def read_dataset(self, table: str) -> pa.Table:
        """One dataset (``segments``, ``calls`` or ``errors``): committed, current rows only."""
        ...

    def read_segments(self, source_ids: Sequence[str]) -> pa.Table:
        """The committed, current segments of these call identities only (none for an identity with
        no readable calls row): what a report needs for a few calls, without reading the archive."""
        ...

    def has_results(self) -> bool:
        """True when a run has written here (there is something to summarise or report)."""
        ...

    def sweep(self, older_than_s: float) -> int:
        """Delete what failed or superseded attempts left behind; returns how many objects/files."""
        ...

    def write_bytes(self, name: str, data: bytes) -> str:
        """Publish a whole file (``report.html``) beside the datasets; returns where it went."""
        ...

    def output_error(self, exc: OSError, doing: str) -> OutputError:
        """An :class:`OutputError` saying what is wrong with this output and what to do."""
        ...


OutputLocation = str | Path | Store


def open_store(out: OutputLocation) -> Store:
    """The store for ``--out``: an ``s3://`` URI is an :class:`~pipeline.store.s3.S3Store`, anything
    else a folder (:class:`~pipeline.store.local.LocalStore`); a :class:`Store` is returned as is."""
    from pipeline import objectstore

    if isinstance(out, (str, Path)):
        scheme = objectstore.unreadable_scheme(out)
        if scheme is not None:  # else taken for a local folder named "S3:", while the user meant a bucket
            raise OutputError(f"The output {out!r} is an address callcycle cannot write to ({scheme}://).",
                              "Pass a local folder or an s3:// URI, written in lower case: s3://BUCKET/PREFIX.")
        if objectstore.is_uri(out):
            from pipeline.store.s3 import S3Store

            return S3Store(str(out))
        from pipeline.store.local import LocalStore

        return LocalStore(Path(out))
    return out
