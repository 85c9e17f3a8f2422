"""Score a call again from its stored segments when only the classifier changed.

A new classifier changes every call's version (:func:`pipeline.store.schema.call_key`), so the next run
scores the whole archive again. Everything before classification — decoding, recognition, diarization,
turns, roles and sentence segments — depends only on the input's bytes, the pipeline version and the
speech and segmentation settings, all of which the stored call's key already pins down. When the stored
key is what this run's key would be with the stored classifier, the stored segments are exactly the
segments a fresh read would give (for audio: if recognition is repeatable, which on one machine and one
CTranslate2 build it is), and classifying them again costs milliseconds where transcribing costs minutes.

``--force`` (``config.run.force``) never takes this path: it redoes everything, recognition included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.schema import Segment, Source
from pipeline.store import schema as store
from pipeline.store.base import OutputLocation, open_store

__all__ = ["StoredSegments", "stored_segments"]


@dataclass(frozen=True, slots=True)
class StoredSegments:
    """A stored call's segments, ready to classify again, and what its calls row says of the recording."""

    call_id: str
    segments: list[Segment]
    audio_duration_s: float | None
    classifier_version: str
    """The classifier that scored the stored rows (replaced by this run's)."""


def stored_segments(source: Source, stamp: store.RunStamp, out_dir: OutputLocation,
                    roles_changed: Callable[[dict[str, Any]], bool] | None = None) -> StoredSegments | None:
    """The stored segments of ``source``'s call when they can be classified again instead of read again.

    That is when the output holds a committed call under the same identity whose key is this run's key with
    the stored classifier version in place of ``stamp``'s: same bytes, pipeline version, ASR model, speech
    and segmentation settings, and another classifier. ``roles_changed`` (``row -> bool``) says whether
    ``calls.csv`` now gives the speakers other roles (roles are in every segment: then ``None``, so the call
    is read again). ``None`` also when anything does not read back or does not match (a segments file with
    another number of rows than its calls row says): the call is then read again, never scored from a guess.

    Raises:
        OSError: the output cannot be read (the caller says so as for any other read of it).
    """
    out = open_store(out_dir)
    ident = store.source_identity(source)
    stored = out.stored_call(ident, store.call_key(source.sha256, stamp, source.kind, ident))
    row = stored.row
    if stored.state != "stale" or row is None or not row.get("classifier_version"):
        return None
    if row["classifier_version"] == stamp.classifier_version:
        return None
    then = dataclasses.replace(stamp, classifier_version=row["classifier_version"])
    if store.call_key(source.sha256, then, source.kind, ident) != row["call_key"]:
        return None  # something besides the classifier changed (the key holds the bytes' sha256 too): read again
    if roles_changed is not None and roles_changed(row):
        return None
    table = out.read_segments([ident])
    rows = sorted((r for r in table.to_pylist() if r["call_key"] == row["call_key"]),
                  key=lambda r: r["segment_index"])
    if not rows or len(rows) != row["n_segments"]:
        return None
    segments = [store.segment_of_row(r, row["call_id"]) for r in rows]
    return StoredSegments(call_id=row["call_id"], segments=segments, audio_duration_s=row["audio_duration_s"],
                          classifier_version=row["classifier_version"])
