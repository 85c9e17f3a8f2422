"""Where callcycle finds its shipped data and writes by default — every default path in one place.

Lookup order for the classifiers (``models/``: ``CURRENT`` plus the version it names and any
other shared model files) and the taxonomy (``labels/taxonomy.toml``):

1. an explicit argument (``--models``, ``--taxonomy``);
2. the environment (``CALLCYCLE_MODELS``, ``CALLCYCLE_TAXONOMY``);
3. the copy inside the installed package (``pipeline/_data/``, put there when a wheel is built;
   see ``setup.py``);
4. the source checkout the package was imported from (``<repo>/models``, ``<repo>/labels``), which
   is what an editable install (``make run``) uses.

Nothing here depends on the current folder, so ``callcycle run some/dir`` works from anywhere.
Caches (sentence vectors, joined speech models) live under ``$XDG_CACHE_HOME/callcycle``
(``~/.cache/callcycle`` when unset); deleting them costs only recomputation.
Outputs default to ``./out`` (relative to the current folder, on purpose: that is where a user
expects results) and labelled data to the checkout's ``labels/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "PACKAGE_DATA",
    "DEFAULT_OUT",
    "DEFAULT_INPUTS",
    "models_dir",
    "shipped_model_dir",
    "taxonomy_path",
    "labels_data_dir",
    "held_back_dir",
    "DEFAULT_REALDATA",
    "external_corpora",
    "cache_dir",
]

#: Shipped data inside an installed package (present in wheels; absent in a checkout).
PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
#: The source checkout this package was imported from (meaningful only for editable installs).
_CHECKOUT = Path(__file__).resolve().parent.parent
#: Default output folder of ``callcycle run`` (relative to the current folder).
DEFAULT_OUT = Path("out")
#: Default input of ``callcycle run`` when none is given (relative to the current folder).
DEFAULT_INPUTS = Path("data") / "calls"
#: The shared real-text folder evaluated in model cards and by the benchmark, never trained on
#: (relative to the current folder; skipped with a reason where absent).
DEFAULT_REALDATA = Path("../shared/realdata/text")


def _first_existing(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.exists()), None)


def models_dir(explicit: str | Path | None = None) -> Path:
    """The models root (holding ``CURRENT``) or artifact directory to load classifiers from.

    Args:
        explicit: ``--models`` as given; wins when set.

    Returns:
        The first of: ``explicit``, ``$CALLCYCLE_MODELS``, the packaged copy, the checkout's
        ``models/``. When none exists the packaged location is returned, so the error that
        follows names a path that says what is missing.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get("CALLCYCLE_MODELS"):
        return Path(os.environ["CALLCYCLE_MODELS"])
    found = _first_existing(PACKAGE_DATA / "models" / "CURRENT", _CHECKOUT / "models" / "CURRENT")
    return found.parent if found else PACKAGE_DATA / "models"


def shipped_model_dir(name: str, model_file: str) -> Path:
    """A shared model shipped beside the classifiers (``roles/``, ``boundaries/``): the packaged copy or the
    checkout's ``models/<name>/``, whichever holds ``model_file``; the checkout's path when neither does,
    so the error that follows names a place."""
    found = _first_existing(PACKAGE_DATA / "models" / name / model_file, _CHECKOUT / "models" / name / model_file)
    return found.parent if found else _CHECKOUT / "models" / name


def taxonomy_path(explicit: str | Path | None = None) -> Path:
    """The taxonomy TOML: ``explicit``, ``$CALLCYCLE_TAXONOMY``, the packaged copy, the checkout's."""
    if explicit:
        return Path(explicit)
    if os.environ.get("CALLCYCLE_TAXONOMY"):
        return Path(os.environ["CALLCYCLE_TAXONOMY"])
    found = _first_existing(PACKAGE_DATA / "labels" / "taxonomy.toml", _CHECKOUT / "labels" / "taxonomy.toml")
    return found or PACKAGE_DATA / "labels" / "taxonomy.toml"


def labels_data_dir(explicit: str | Path | None = None) -> Path:
    """Folder of labelled JSONL files used by ``train``/``compare``/``import-labels``.

    Labelled data is not shipped in wheels (it is for retraining in a checkout): the default is
    ``$CALLCYCLE_LABELS`` or the checkout's ``labels/data``, falling back to ``./labels/data``.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get("CALLCYCLE_LABELS"):
        return Path(os.environ["CALLCYCLE_LABELS"])
    checkout = _CHECKOUT / "labels" / "data"
    return checkout if checkout.is_dir() else Path("labels") / "data"


def labelled_calls_dir(labels_dir: Path | None = None) -> Path:
    """The fully labelled calls ``evaluate-calls`` reads by default: ``labels/calls`` beside
    ``labels_dir`` (default :func:`labels_data_dir`, so the checkout's wherever the command runs)."""
    return (labels_dir or labels_data_dir()).parent / "calls"


def held_back_dir(labels_dir: Path | None = None) -> Path:
    """The written rows and labelled calls kept apart from training: ``labels/held-back`` beside
    ``labels_dir`` (default :func:`labels_data_dir`); benchmark sources, never training data."""
    return (labels_dir or labels_data_dir()).parent / "held-back"


def external_dir(labels_dir: Path | None = None) -> Path:
    """The folder of real-speech corpora (``labels/external``) beside ``labels_dir`` (:func:`labels_data_dir`)."""
    return (labels_dir or labels_data_dir()).parent / "external"


def external_corpora(labels_dir: Path | None = None) -> list[Path]:
    """The partially labelled real-speech corpora training reads by default: every
    ``*.jsonl.gz`` of :func:`external_dir`."""
    return sorted(external_dir(labels_dir).glob("*.jsonl.gz"))


def cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/callcycle/<kind>`` (``~/.cache/...`` when unset): recomputable files only."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callcycle" / kind
