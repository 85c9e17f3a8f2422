"""Errors with messages that tell the user what happened and what to do next."""

from __future__ import annotations

__all__ = [
    "PipelineError",
    "OrchestratorLostError",
    "InputError",
    "AudioDecodeError",
    "EmptyAudioError",
    "TranscriptFormatError",
    "TranscriptionError",
    "ModelArtifactError",
    "LabelDataError",
    "TaxonomyError",
    "FileTimeoutError",
    "WorkerCrashError",
    "ServiceError",
    "OutputError",
    "InputChangingError",
    "AlreadyCommittedError",
]


class PipelineError(Exception):
    """Base class for every error callcycle raises on purpose.

    Attributes:
        message: what went wrong, in plain words.
        hint: what the user can do about it.
        step: the pipeline step that failed (``ingest``, ``decode``, ``transcribe`` ...).
    """

    step = "pipeline"

    def __init__(self, message: str, hint: str = "", *, step: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if step is not None:
            self.step = step

    def __str__(self) -> str:
        # a message listing problems line by line gets its hint on a line of its own, not glued to the last one
        sep = "\n" if "\n" in self.message else " "
        return f"{self.message}{sep}{self.hint}".strip() if self.hint else self.message


class InputError(PipelineError):
    """An input path is missing, unreadable or of an unsupported kind."""

    step = "ingest"


class AudioDecodeError(PipelineError):
    """The file could not be decoded as audio."""

    step = "decode"


class EmptyAudioError(PipelineError):
    """The audio decoded but holds no usable speech (empty, too short or silent)."""

    step = "decode"


class TranscriptFormatError(PipelineError):
    """A transcript file (JSON, VTT, SRT, text) is malformed."""

    step = "parse"


class TranscriptionError(PipelineError):
    """The speech recogniser failed or could not be loaded."""

    step = "transcribe"


class ModelArtifactError(PipelineError):
    """A classifier artifact is missing, corrupt, tampered with or incompatible."""

    step = "classify"


class LabelDataError(PipelineError):
    """Labelled data does not follow the taxonomy or the file format."""

    step = "labels"


class TaxonomyError(PipelineError):
    """The taxonomy file is malformed."""

    step = "labels"


class FileTimeoutError(PipelineError):
    """Reading or transcribing one file took longer than the per-file limit."""

    step = "transcribe"


class WorkerCrashError(PipelineError):
    """Scoring one file took its worker process down (a decoder crash, running out of memory): that file
    fails, the batch goes on."""

    step = "worker"


class ServiceError(PipelineError):
    """A service the run depends on (the configured Prefect server, the Dask cluster) does not answer:
    before a run nothing is started or written; during one the batch stops, and the calls committed so
    far are kept (exit status 2)."""

    step = "orchestration"
    exit_code = 2


class OrchestratorLostError(ServiceError):
    """The Prefect API stopped answering during a run. What was committed is kept. Prefect still holds the
    run's state changes and events for that API, and would try to deliver each of them, seconds apiece,
    before the process could end: a command that gets this error should exit without waiting for them."""

    exit_now = True


class OutputError(PipelineError):
    """The output folder cannot be written (missing permission, read-only, a file, disk full).

    Not a problem of one input: the batch stops (exit status 2) and a rerun finishes it.
    """

    step = "store"
    exit_code = 2


class InputChangingError(InputError):
    """The file is still being written or changed while it was processed: deferred, not scored.

    Not recorded as a failure; the next run scores it once it has settled.
    """

    deferred = True


class AlreadyCommittedError(Exception):
    """Another attempt committed this version of the call first (its create-only commit marker
    got there; object storage answered HTTP 412). Not a failure: the call is stored exactly once,
    and this attempt's files were discarded. Reported as ``skipped``.
    """

    def __init__(self, call_key: str) -> None:
        super().__init__(f"version {call_key} was already committed by another attempt; this one was discarded")
        self.call_key = call_key

    def __reduce__(self) -> tuple[type, tuple[str]]:  # pickles across Dask workers with its key
        return (type(self), (self.call_key,))
