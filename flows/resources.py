"""Heavy objects loaded once per worker process and shared by every task in it.

The speech model, the classifier artifact and the sentence splitter take seconds to
load; tasks fetch them here instead of loading them per file. A task loads the classifier
artifact (scikit-learn, skops, the sentence encoder: about 3 s) only once its file is read, so
the first files' transcription does not wait for it; a batch checks the artifact's card and
checksum first (:func:`artifact_card`, milliseconds) to refuse a broken model at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any

from pipeline.classify.artifacts import Artifact, ArtifactCard, check_artifact, load_artifact
from pipeline.config import AsrConfig
from pipeline.speech.diarize import SpeakerModel, load_speaker_model
from pipeline.speech.rolemodel import RoleModel, load_role_model
from pipeline.speech.transcribe import AsrModel, load_asr_model
from pipeline.speech.turns import Sentencizer, build_sentencizer

__all__ = ["asr_model", "speaker_model", "role_model", "artifact", "artifact_card", "sentencizer", "LOADS"]

#: How many times each resource was loaded in this process (tests check "once per worker").
LOADS: Counter[str] = Counter()


def _once(cached: Any) -> Any:
    """``cached`` (an ``lru_cache``-wrapped loader), called under a lock of its own.

    Files run on several threads of one process ([run] threads): the first two tasks would both
    miss an empty cache and load the same model twice, so loads of one resource take turns. Each
    resource has its own lock, so one resource's load never waits for another's.
    """
    lock = threading.Lock()

    @wraps(cached)
    def locked(*args: Any) -> Any:
        with lock:
            return cached(*args)

    return locked


@_once
@lru_cache(maxsize=2)
def asr_model(config: AsrConfig, parallel: int = 1) -> AsrModel:
    """The faster-whisper model for ``config``, loaded on first use for ``parallel`` threads at once."""
    LOADS["asr_model"] += 1
    return load_asr_model(config, parallel)


@_once
@lru_cache(maxsize=2)
def speaker_model(path: str | None) -> SpeakerModel:
    """The speaker-embedding model used to diarize mono audio, loaded on first use."""
    return load_speaker_model(path)


@_once
@lru_cache(maxsize=2)
def role_model(path: str | None) -> RoleModel:
    """The role model (who is the rep) for speakers nothing else names, loaded on first use."""
    LOADS["role_model"] += 1
    return load_role_model(path)


@_once
@lru_cache(maxsize=4)
def artifact(location: str, version: str | None) -> Artifact:
    """The verified classifier artifact, loaded on first use."""
    LOADS["artifact"] += 1
    return load_artifact(Path(location), version)


@lru_cache(maxsize=4)
def artifact_card(location: str, version: str | None) -> ArtifactCard:
    """The artifact's card with its model file's checksum checked; nothing loaded (milliseconds)."""
    return check_artifact(Path(location), version)


@_once
@lru_cache(maxsize=1)
def sentencizer(unpunctuated_model: bool = True, model_path: str | None = None) -> Sentencizer:
    """The sentence splitter (spaCy's sentencizer, and the boundary model for unpunctuated turns)."""
    LOADS["sentencizer"] += 1
    return build_sentencizer(unpunctuated_model, model_path)
