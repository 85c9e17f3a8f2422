"""Versioned model artifacts: a skops file plus a model card, verified on load.

An artifact is a directory ``models/<version>/`` holding ``model.skops`` (one
:class:`~pipeline.classify.model.CycleModel` covering every task), ``card.json`` (label sets,
data hash, metrics per source, library versions, the sha256 of every file, and the sentence
encoder it needs) and ``card.md``. A sentence encoder is shared by versions and lives in
``models/encoders/<name>/`` (see :mod:`pipeline.classify.encoder`); the card pins its files'
hashes. ``models/CURRENT`` names the version the scoring flow uses. Loading checks every
checksum, then loads with skops, trusting only the types skops already trusts plus
:data:`TRUSTED_TYPES`; an artifact that needs any other type is refused, so loading never
runs code from the artifact.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.atomic import write_bytes_atomic
from pipeline.errors import ModelArtifactError
from pipeline.taxonomy import Task, Taxonomy

__all__ = [
    "ARTIFACT_FORMAT",
    "TRUSTED_TYPES",
    "POINTER_NAME",
    "RESERVED_NAMES",
    "check_version_name",
    "Artifact",
    "ArtifactCard",
    "save_artifact",
    "check_artifact",
    "load_artifact",
    "resolve_artifact_dir",
    "set_current",
    "current_version",
    "taxonomy_to_dict",
    "taxonomy_from_dict",
]

ARTIFACT_FORMAT = "callcycle-model/2"
MODEL_FILE = "model.skops"
#: The member of a skops file that describes the object tree.
_SCHEMA_MEMBER = "schema.json"
ENCODERS_DIR = "encoders"
POINTER_NAME = "CURRENT"
#: Types outside skops' default trusted set that a callcycle artifact may contain.
TRUSTED_TYPES: tuple[str, ...] = (
    "pipeline.classify.features.CueFeatures",
    "pipeline.classify.features.CompactTfidfVectorizer",
    "pipeline.classify.model.CycleModel",
    # the context level's gradient-boosted trees (arrays of nodes; no code)
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # scikit-learn's own helpers inside CalibratedClassifierCV (the calibrated linear SVM)
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)


@dataclass(frozen=True, slots=True)
class ArtifactCard:
    """An artifact's card, read and its model file checked, with nothing loaded.

    Enough to stamp rows and to refuse a missing or tampered model in milliseconds
    (:func:`check_artifact`), while the model itself loads elsewhere.
    """

    path: Path
    version: str
    taxonomy: Taxonomy
    card: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Artifact:
    """A loaded artifact: the fitted model, its card, and the sentence encoder it uses (if any)."""

    path: Path
    version: str
    taxonomy: Taxonomy
    model: Any
    card: dict[str, Any]
    encoder: Any = None


def taxonomy_to_dict(taxonomy: Taxonomy) -> dict[str, Any]:
    """Plain-data form of a taxonomy, stored in the card so an artifact is self-describing."""
    return {
        "name": taxonomy.name,
        "version": taxonomy.version,
        "tasks": [
            {"name": t.name, "role": t.role, "labels": list(t.labels), "positive": t.positive,
             "neutral": t.neutral, "definitions": dict(t.definitions)}
            for t in taxonomy.tasks
        ],
    }


def taxonomy_from_dict(data: dict[str, Any]) -> Taxonomy:
    """Inverse of :func:`taxonomy_to_dict`."""
    return Taxonomy(
        name=data["name"], version=str(data["version"]),
        tasks=tuple(Task(name=t["name"], role=t["role"], labels=tuple(t["labels"]),
                         definitions=dict(t.get("definitions", {})), positive=t.get("positive"),
                         neutral=t.get("neutral")) for t in data["tasks"]),
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: Names in a models folder that are not classifier versions: a version may never take one.
RESERVED_NAMES = frozenset({ENCODERS_DIR, POINTER_NAME, "roles", "speaker", "boundaries"})
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_version_name(version: str) -> None:
    """Refuse a version name that is not one plain folder name of the models folder: a path ("../x",
    "a/b"), a hidden or empty name, or one of :data:`RESERVED_NAMES` (a model written into ``encoders/``
    was mixed in with the sentence encoders).

    Raises:
        ModelArtifactError: naming what a version may be.
    """
    if not _VERSION_NAME.fullmatch(version) or version.casefold() in {n.casefold() for n in RESERVED_NAMES}:
        raise ModelArtifactError(
            f"{version!r} cannot be a model version name.",
            "Use letters, digits, '.', '-' and '_' (starting with a letter or digit; not "
            f"{', '.join(sorted(RESERVED_NAMES))}), or leave --version out for a dated one.")


def check_destination(models_root: Path, version: str | None = None) -> None:
    """Fail before training, not after it, when its artifact could not be saved: ``models_root`` is not a
    folder or cannot be written, or ``version`` already names an artifact there.

    Raises:
        ModelArtifactError: with what to do.
    """
    import tempfile

    root = Path(models_root)
    if version is not None:
        check_version_name(version)
        taken = root / version
        if (taken.exists() or taken.is_symlink()) and not (taken / "card.json").exists():
            raise ModelArtifactError(f"--version {version!r} names something else in {root} (not a model version).",
                                     "Choose another --version, or leave it out for a dated one.")
    if version is not None and (root / version / "card.json").exists():
        raise ModelArtifactError(f"An artifact {version!r} already exists in {root}.",
                                 "Choose a new --version (artifacts are immutable), or leave it out for a dated one.")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ModelArtifactError(f"Cannot save a model into {root}: {exc.strerror or exc}.",
                                 "Give --models a folder you can write to (it is created if missing).") from exc


#: Fitted attributes that hold a memory address of the saving process (scikit-learn's vectorisers remember
#: ``id(stop_words)`` only to skip re-checking them; after loading the address means nothing, and a missing
#: value just lets the check run again).
_ADDRESS_ATTRIBUTES = frozenset({"_stop_words_id"})

#: The time stamp every member of a saved model file carries (the earliest a zip can hold).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def canonical_skops(data: bytes) -> bytes:
    """The same model file with what skops takes from the saving process made canonical, so that two
    trainings that learned the same model save the same bytes (and the card the same sha256).

    skops names each object by its memory address (``__id__`` in ``schema.json``, and the ``<id>.npy``
    member holding an array) and stamps every zip member with the time of saving. Here the addresses are
    renumbered 1, 2, … in the order the schema first names them (objects shared in the model stay shared),
    array members are named after their new number, every member gets one fixed time, and fitted
    attributes that store an address (:data:`_ADDRESS_ATTRIBUTES`) are stored empty. Nothing else changes:
    skops loads the file (and audits its types) exactly as before. Measured: the test corpus trained in two
    processes with different ``PYTHONHASHSEED`` saves byte-identical files.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read(_SCHEMA_MEMBER))
    numbers: dict[int, int] = {}

    def number(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    numbers.setdefault(value, len(numbers) + 1)
                number(value)
        elif isinstance(node, list):
            for value in node:
                number(value)

    number(schema)
    renamed: dict[str, str] = {}
    for name in source.namelist():
        stem = name.removesuffix(".npy")
        if name != _SCHEMA_MEMBER and stem.isdigit() and int(stem) in numbers:
            renamed[name] = f"{numbers[int(stem)]}.npy"
    if len(set(renamed.values())) != len(renamed):  # two members for one object: leave the file as skops wrote it
        return data

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: numbers[value] if key == "__id__" and isinstance(value, int)
                    else renamed.get(value, value) if key == "file" and isinstance(value, str)
                    else {**rewrite(value), "content": "null"} if key in _ADDRESS_ATTRIBUTES and isinstance(value, dict)
                    and value.get("__loader__") == "JsonNode"
                    else rewrite(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rewrite(value) for value in node]
        return node

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename == _SCHEMA_MEMBER:
                name, payload = info.filename, json.dumps(rewrite(schema), indent=2).encode("utf-8")
            else:
                name, payload = renamed.get(info.filename, info.filename), source.read(info.filename)
            member = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            member.compress_type = info.compress_type
            member.external_attr = 0o644 << 16
            target.writestr(member, payload, compresslevel=6 if info.compress_type == zipfile.ZIP_DEFLATED else None)
    return out.getvalue()


def save_artifact(directory: Path, model: Any, card: dict[str, Any], card_markdown: str) -> Path:
    """Write the model and card into ``directory`` (created; must not already hold a card).

    The card gets ``format`` and ``files`` (sha256 per file) filled in.
    """
    import skops.io as sio

    directory = Path(directory)
    if (directory / "card.json").exists():
        raise ModelArtifactError(f"An artifact already exists at {directory}.",
                                 "Choose a new version name; artifacts are immutable.")
    directory.mkdir(parents=True, exist_ok=True)
    # deflate: TF-IDF vocabularies compress about 5x
    data = canonical_skops(sio.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=6))
    write_bytes_atomic(directory / MODEL_FILE, data)
    full = {**card, "format": ARTIFACT_FORMAT, "files": {MODEL_FILE: hashlib.sha256(data).hexdigest()}}
    write_bytes_atomic(directory / "card.md", card_markdown.encode("utf-8"))
    write_bytes_atomic(directory / "card.json", json.dumps(full, indent=2, sort_keys=False).encode("utf-8"))
    return directory


def current_version(models_root: Path) -> str | None:
    """The version named in ``models/CURRENT``, or ``None``."""
    pointer = Path(models_root) / POINTER_NAME
    if not pointer.is_file():
        return None
    return pointer.read_text(encoding="utf-8").strip() or None


def set_current(models_root: Path, version: str) -> None:
    """Point ``models/CURRENT`` at ``version`` (atomically)."""
    if not (Path(models_root) / version / "card.json").is_file():
        raise ModelArtifactError(f"No artifact {version!r} in {models_root}.", "Train it first.")
    write_bytes_atomic(Path(models_root) / POINTER_NAME, f"{version}\n".encode())


def resolve_artifact_dir(location: Path, version: str | None = None) -> Path:
    """Find an artifact directory.

    Args:
        location: an artifact directory (holding ``card.json``) or a models root.
        version: a version inside the models root; default: the one named by ``CURRENT``.
    """
    location = Path(location)
    if version is None and (location / "card.json").is_file():
        return location
    if version is None:
        version = current_version(location)
        if version is None:
            said = "is empty" if (location / POINTER_NAME).is_file() else "is missing"
            raise ModelArtifactError(
                f"No model selected in {location}: {location / POINTER_NAME} {said}.",
                "Run `callcycle train --promote`, or pass --models an artifact directory (a folder holding card.json).",
            )
    path = location / version
    if not (path / "card.json").is_file() and location.is_dir() and "/" not in version:
        # a unique part of a version name, as the docs write them ("001830Z" for
        # cycle-of-value-20261205T001830Z-5f8058b1)
        matches = [d for d in location.iterdir() if version in d.name and (d / "card.json").is_file()
                   and _is_classifier(d)]
        if len(matches) == 1:
            path = matches[0]
        elif len(matches) > 1:
            names = sorted(d.name for d in matches)
            raise ModelArtifactError(f"Model version {version!r} is part of {len(names)} version names in {location}: "
                                     f"{', '.join(names)}.", "Give more of the name, so that only one matches.")
    if not (path / "card.json").is_file() or not _is_classifier(path):
        # classifier versions only (models/ also holds the speaker model and the sentence encoders)
        available = sorted(p.parent.name for p in location.glob("*/card.json")
                           if _is_classifier(p.parent)) if location.is_dir() else []
        raise ModelArtifactError(
            f"Model version {version!r} not found in {location}.",
            f"Available: {', '.join(available)}." if available else
            f"{location} holds no model versions: check the --models path, or train one with "
            "`callcycle train --promote`.")
    return path


def _is_classifier(path: Path) -> bool:
    """Whether the folder is a classifier artifact: it holds the model file, or a card that says so."""
    if (path / MODEL_FILE).is_file():
        return True
    try:
        return json.loads((path / "card.json").read_text(encoding="utf-8")).get("format") == ARTIFACT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _read_card(location: Path, version: str | None) -> ArtifactCard:
    path = resolve_artifact_dir(location, version)
    try:
        card = json.loads((path / "card.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{path / 'card.json'} is unreadable: {exc}.",
                                 "Restore the artifact from version control or retrain.") from exc
    if card.get("format") != ARTIFACT_FORMAT:
        raise ModelArtifactError(f"{path}: unknown artifact format {card.get('format')!r}.",
                                 f"This callcycle reads {ARTIFACT_FORMAT!r}; retrain with this version.")
    return ArtifactCard(path=path, version=str(card.get("version", path.name)),
                        taxonomy=taxonomy_from_dict(card["taxonomy"]), card=card)


def _verified_model_bytes(info: ArtifactCard) -> bytes:
    """The model file's bytes, refused unless they match the card's checksum."""
    file = info.path / MODEL_FILE
    expected = info.card.get("files", {}).get(MODEL_FILE)
    if not file.is_file() or expected is None:
        raise ModelArtifactError(f"{info.path}: model file {MODEL_FILE} is missing.",
                                 "The artifact is incomplete; restore it or retrain.")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise ModelArtifactError(
            f"{file}: checksum mismatch; the file is truncated or was modified after training.",
            "Refusing to load it. Restore the artifact from version control or retrain.",
        )
    return data


def check_artifact(location: Path, version: str | None = None) -> ArtifactCard:
    """Read an artifact's card and check its model file's checksum, without loading anything.

    The checks :func:`load_artifact` starts with, plus the encoder's identity (tens of milliseconds
    against seconds), so a batch can refuse a missing or tampered model at once and leave loading it
    to the processes that classify.

    Raises:
        ModelArtifactError: missing files, checksum mismatch or an unknown format.
    """
    info = _read_card(Path(location), version)
    _verified_model_bytes(info)
    spec = info.card.get("encoder")
    if spec:  # the encoder's own files are hashed when it loads; here, that it is the right one
        encoder_json = _encoder_dir(info) / "encoder.json"
        try:
            shipped = json.loads(encoder_json.read_text(encoding="utf-8")).get("files", {})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            shipped = None
        if shipped != dict(spec.get("files", {})):
            raise _wrong_encoder(info)
    return info


def _encoder_dir(info: ArtifactCard) -> Path:
    return info.path.parent / ENCODERS_DIR / str(info.card["encoder"]["name"])


def _wrong_encoder(info: ArtifactCard) -> ModelArtifactError:
    return ModelArtifactError(
        f"{_encoder_dir(info)} is missing or is not the encoder {info.path.name} was trained with "
        "(file hashes differ).", "Restore models/encoders/ from the same commit as the model, or retrain.")


def load_artifact(location: Path, version: str | None = None) -> Artifact:
    """Load and verify an artifact.

    Raises:
        ModelArtifactError: missing files, checksum mismatch (truncated or tampered),
            an unknown format, or a model that needs types outside the trusted list.
    """
    import skops.io as sio

    info = _read_card(Path(location), version)
    path, card, taxonomy = info.path, info.card, info.taxonomy
    file = path / MODEL_FILE
    # the bytes loaded are the bytes checked: the file is read once
    data = _verified_model_bytes(info)
    # skops audits every type in the file against the trusted list before it constructs anything,
    # so one pass both checks and loads; the untrusted types are listed only when it refuses
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        model = sio.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        try:
            unexpected = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
        except Exception:  # noqa: BLE001 - the refusal stands; the list is only for the message
            unexpected = [str(exc)]
        raise ModelArtifactError(f"{file} contains types callcycle does not trust: {unexpected}.",
                                 "Refusing to load it; retrain with callcycle.") from exc
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{file}: not a valid skops file ({exc}).", "Retrain the model.") from exc
    except Exception as exc:
        raise ModelArtifactError(f"{file}: cannot be loaded ({exc}).",
                                 "It may come from an incompatible scikit-learn; retrain.") from exc
    encoder = None
    if card.get("encoder"):
        from pipeline.classify.encoder import load_encoder

        encoder = load_encoder(_encoder_dir(info))
        if dict(encoder.info.get("files", {})) != dict(card["encoder"].get("files", {})):
            raise _wrong_encoder(info)
    return Artifact(path=path, version=info.version, taxonomy=taxonomy, model=model, card=card, encoder=encoder)
