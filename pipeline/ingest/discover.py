"""Find input files, fingerprint them and attach call metadata.

Inputs may be files, folders (searched recursively) or glob patterns. Each file
becomes a :class:`~pipeline.schema.Source` keyed by the sha256 of its bytes.
Call metadata (rep, customer, date) comes from a ``calls.csv`` sidecar next to the
inputs (columns ``path,rep,customer,date``; ``path`` relative to the CSV; an optional
``speakers`` column maps speakers to roles, ``S1=rep;S2=customer``) or, failing
that, from file names of the form ``YYYY-MM-DD__rep__customer__anything.ext``.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import logging
from datetime import date
from pathlib import Path

from pipeline.errors import InputError
from pipeline.schema import ROLES, CallMetadata, Source

__all__ = [
    "AUDIO_FORMATS",
    "TRANSCRIPT_FORMATS",
    "SIDECAR_NAME",
    "discover_inputs",
    "describe_source",
    "file_sha256",
    "read_sidecar",
    "parse_speaker_roles",
    "metadata_from_name",
]

logger = logging.getLogger("callcycle.ingest")

AUDIO_FORMATS = frozenset({"wav", "flac", "mp3", "m4a", "ogg", "opus", "webm", "aac", "wma"})
TRANSCRIPT_FORMATS = frozenset({"json", "vtt", "srt", "txt"})
SIDECAR_NAME = "calls.csv"
_HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def try_sha256(path: Path) -> str | None:
    """sha256 of a file's bytes, or ``None`` when it is not a readable regular file."""
    try:
        return file_sha256(path) if Path(path).is_file() else None
    except OSError:
        return None


def _parse_date(value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _cell(value: object) -> str:
    """A CSV cell as stripped text (``DictReader`` gives ``None`` for missing cells)."""
    return value.strip() if isinstance(value, str) else ""


def read_sidecar(csv_path: Path) -> dict[Path, CallMetadata]:
    """Read a ``calls.csv`` sidecar into ``{resolved file path: metadata}``.

    Header names are matched without regard to case or surrounding spaces (``Path, Rep``
    as written by spreadsheets works). Rows with a missing path are skipped with a
    warning; an unparseable date becomes ``None`` (with a warning). A file that is not a
    readable CSV, or a path cell holding a NUL character, raises :class:`InputError`.
    """
    result: dict[Path, CallMetadata] = {}
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if header is not None:
                reader.fieldnames = [str(name).strip().lower() for name in header]
            if header is None or "path" not in reader.fieldnames:
                raise InputError(
                    f"{csv_path} has no 'path' column.",
                    "A calls.csv sidecar needs the header: path,rep,customer,date",
                )
            for row in reader:
                line_no = reader.line_num
                rel = _cell(row.get("path"))
                if not rel:
                    logger.warning("%s line %d: empty path, row skipped", csv_path, line_no)
                    continue
                if "\x00" in rel:
                    raise InputError(
                        f"{csv_path} line {line_no}: the path holds a NUL character; the file is corrupt.",
                        "Re-save calls.csv as UTF-8 CSV with the header path,rep,customer,date.",
                    )
                raw_date = _cell(row.get("date"))
                call_date = _parse_date(raw_date)
                if raw_date and call_date is None:
                    logger.warning("%s line %d: date %r is not YYYY-MM-DD, left empty", csv_path, line_no,
                                   raw_date[:40])
                try:
                    speaker_roles = parse_speaker_roles(_cell(row.get("speakers")))
                except ValueError as exc:
                    logger.warning("%s line %d: %s; speaker map ignored", csv_path, line_no, exc)
                    speaker_roles = ()
                meta = CallMetadata(
                    rep=_cell(row.get("rep")) or None,
                    customer=_cell(row.get("customer")) or None,
                    call_date=call_date,
                    speaker_roles=speaker_roles,
                )
                result[(csv_path.parent / rel).resolve()] = meta
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(
            f"Cannot read the metadata sidecar {csv_path}: {exc}.",
            "Save it as UTF-8 CSV with the header path,rep,customer,date.",
        ) from exc
    return result


def parse_speaker_roles(text: str) -> tuple[tuple[str, str], ...]:
    """Parse a sidecar speaker map ``S1=rep;S2=customer`` into ``(speaker, role)`` pairs.

    Speakers are diarized labels (``S1`` is whoever speaks first), transcript speaker names
    or channel names; roles are those in :data:`pipeline.schema.ROLES`.

    Raises:
        ValueError: an entry without ``=`` or with an unknown role.
    """
    pairs: list[tuple[str, str]] = []
    for item in text.split(";"):
        if not item.strip():
            continue
        speaker, sep, role = item.partition("=")
        role = role.strip().lower()
        if not sep or not speaker.strip() or role not in ROLES:
            raise ValueError(f"speaker map entry {item.strip()!r} is not speaker=role with a role in {ROLES}")
        pairs.append((speaker.strip(), role))
    return tuple(pairs)


def metadata_from_name(path: Path) -> CallMetadata:
    """Metadata from the ``YYYY-MM-DD__rep__customer__rest.ext`` naming convention."""
    parts = path.stem.split("__")
    if len(parts) >= 3:
        call_date = _parse_date(parts[0])
        if call_date is not None:
            return CallMetadata(rep=parts[1] or None, customer=parts[2] or None, call_date=call_date)
    return CallMetadata()


def _expand(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    if path.exists():
        return [path]
    matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))
    if not matches:
        raise InputError(
            f"No input matches {spec!r}.",
            "Pass an existing file, a folder or a quoted glob such as 'calls/**/*.wav'.",
        )
    return [p for p in matches if p.is_file()]


def describe_source(path: Path, metadata: CallMetadata | None = None) -> Source:
    """Fingerprint one input file.

    Raises:
        InputError: the file is unreadable or its extension is not a supported format.
    """
    fmt = path.suffix.lower().lstrip(".")
    if fmt in AUDIO_FORMATS:
        kind = "audio"
    elif fmt in TRANSCRIPT_FORMATS:
        kind = "transcript"
    else:
        raise InputError(
            f"{path.name}: unsupported file type '.{fmt}'.",
            f"Use audio ({', '.join(sorted(AUDIO_FORMATS))}) or transcripts "
            f"({', '.join(sorted(TRANSCRIPT_FORMATS))}).",
        )
    try:
        size = path.stat().st_size
        sha = file_sha256(path)
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.", "Check the path and permissions.") from exc
    return Source(
        path=str(path),
        kind=kind,  # type: ignore[arg-type]
        fmt=fmt,
        sha256=sha,
        size_bytes=size,
        call_id=path.stem,
        metadata=metadata or metadata_from_name(path),
    )


def discover_inputs(inputs: list[str] | list[Path]) -> tuple[list[Source], list[tuple[str, InputError]]]:
    """Expand inputs into sources, skipping sidecars and files of unknown type quietly.

    Files given explicitly with an unsupported type are reported as errors; files of
    unknown type found while walking a folder (READMEs, scripts) are ignored.

    Returns:
        ``(sources, errors)``: sources sorted by path, and ``(path, error)`` pairs for
        inputs that could not be used. Duplicate paths appear once.
    """
    sidecars: dict[Path, CallMetadata] = {}
    sources: list[Source] = []
    errors: list[tuple[str, InputError]] = []
    seen: set[Path] = set()
    candidates: list[tuple[Path, bool]] = []
    for spec in inputs:
        spec_path = Path(spec)
        try:
            files = _expand(str(spec))
        except InputError as exc:
            errors.append((str(spec), exc))
            continue
        explicit = spec_path.is_file()
        for file in files:
            candidates.append((file, explicit))
            sidecar = file.parent / SIDECAR_NAME
            if sidecar.is_file() and sidecar.resolve() not in seen:
                seen.add(sidecar.resolve())
                try:
                    sidecars.update(read_sidecar(sidecar))
                except InputError as exc:
                    errors.append((str(sidecar), exc))
    done: set[Path] = set()
    for file, explicit in candidates:
        resolved = file.resolve()
        if resolved in done or file.name == SIDECAR_NAME or file.name.startswith("."):
            continue
        done.add(resolved)
        fmt = file.suffix.lower().lstrip(".")
        if not explicit and fmt not in AUDIO_FORMATS | TRANSCRIPT_FORMATS:
            continue
        try:
            sources.append(describe_source(file, sidecars.get(resolved)))
        except InputError as exc:
            errors.append((str(file), exc))
    sources.sort(key=lambda s: s.path)
    return sources, errors
