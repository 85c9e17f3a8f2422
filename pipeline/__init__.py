"""callcycle's library: turn recorded sales calls into scored data.

The stages follow the data's journey, one sub-package each::

    ingest/ (discover, audio, transcripts) -> speech/ (transcribe, turns)
        -> classify/ (features, predict; train, artifacts, evaluate) -> score -> store/ -> report/

Every public function is usable from a notebook without Prefect; ``flows/`` wraps them.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Bumped whenever a change in ``pipeline/`` changes the rows written for the same input.
PIPELINE_VERSION = "0.5.3"

__all__ = ["__version__", "PIPELINE_VERSION", "version_order"]


def version_order(version: object) -> tuple[int, ...]:
    """A pipeline version as a sortable key: ``"0.5.3"`` -> ``(0, 5, 3)``; anything that is not dotted
    numbers (missing, malformed) -> ``()``, older than every version."""
    try:
        return tuple(int(part) for part in str(version).split("."))
    except ValueError:
        return ()
