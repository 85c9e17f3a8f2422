"""Find input files, fingerprint them and attach call metadata.

Inputs may be files, folders (searched recursively) or glob patterns, on disk or under an
``s3://`` prefix (:mod:`pipeline.ingest.remote`). Each file becomes a
:class:`~pipeline.schema.Source` with an identity (``source_id``: its path relative to the
folder or glob root it was found under, or ``call_id`` from ``calls.csv``) and a version (the
sha256 of its bytes). Discovery is defensive: symlinks that leave the input folder are refused,
unreadable folders and special files (FIFOs, devices) become errors instead of hangs or silence,
and a file still being written (it changes while hashed, or a WAV header promises more data
than a just-modified file holds) is deferred to a later run.
Call metadata (rep, customer, date) comes from a ``calls.csv`` sidecar next to the
inputs (columns ``path,rep,customer,date``; ``path`` relative to the CSV; an optional
``speakers`` column maps speakers to roles, ``S1=rep;S2=customer``) or, failing
that, from file names of the form ``YYYY-MM-DD__rep__customer__anything.ext``.
"""

from __future__ import annotations

import codecs
import csv
import glob
import hashlib
import io
import logging
import os
import re
import stat
import struct
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pipeline import objectstore
from pipeline.errors import InputChangingError, InputError
from pipeline.ingest.fingerprints import FingerprintCache, file_signature, file_status, settled
from pipeline.schema import ROLES, CallMetadata, Source
from pipeline.tables import csv_delimiter

__all__ = [
    "AUDIO_FORMATS",
    "TRANSCRIPT_FORMATS",
    "SIDECAR_NAME",
    "discover_inputs",
    "DiscoveryNotes",
    "unmatched_inputs",
    "output_over_inputs",
    "holds_no_inputs",
    "describe_source",
    "source_kind",
    "file_sha256",
    "read_sidecar",
    "parse_speaker_roles",
    "metadata_from_name",
]

logger = logging.getLogger("callcycle.ingest")

AUDIO_FORMATS = frozenset({"wav", "flac", "mp3", "m4a", "ogg", "opus", "webm", "aac", "wma",
                           "mp4", "mov", "m4v", "mkv"})  # video containers: their audio track is used
TRANSCRIPT_FORMATS = frozenset({"json", "vtt", "srt", "txt"})
SIDECAR_NAME = "calls.csv"
_HASH_CHUNK = 1 << 20
#: A WAV whose header promises more data than it holds is treated as still being written when it
#: was modified less than this many seconds ago (older ones are truncated files, scored as such).
SETTLE_S = 30.0


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def utf8_name(name: str) -> str:
    """``name`` as valid UTF-8 text: bytes of a file name that did not decode (held by Python as lone
    surrogates) are written ``\\xNN``; any other name is returned unchanged."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def try_sha256(path: Path) -> str | None:
    """sha256 of a file's bytes, or ``None`` when it is not a readable regular file."""
    try:
        return file_sha256(path) if Path(path).is_file() else None
    except OSError:
        return None


#: A date written YYYY-MM-DD, whether or not the day exists ("2026-02-30" is written right, not a date).
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


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


#: The columns a ``calls.csv`` sidecar may have (``path`` is required).
SIDECAR_COLUMNS = ("path", "rep", "customer", "date", "speakers", "call_id")


#: A ``calls.csv`` logs at most this many row warnings (a missing file, a bad date, ...), then how many more.
MAX_ROW_WARNINGS = 10


def _check_sidecar(sidecar: Path, root: Path) -> None:
    """Refuse a ``calls.csv`` the rules for inputs would refuse: a link leading out of the input folder
    ``root`` (its rows would come from a file outside the inputs), or not a regular file (a pipe would
    block, a device never ends).

    Raises:
        InputError: saying why, and what to do.
    """
    try:
        outside = _escapes_root(sidecar, root)
        kind = sidecar.stat().st_mode
    except (OSError, RuntimeError) as exc:
        raise InputError(f"{sidecar}: cannot follow the link ({exc}).",
                         "Remove the broken or looping link, or put a calls.csv file there.") from exc
    if outside is not None:
        raise InputError(f"{sidecar} is a symbolic link to {outside}, outside the input folder {root}; not read.",
                         "Copy the sidecar into the folder; links may not lead out of the inputs.")
    if not stat.S_ISREG(kind):
        raise InputError(f"{sidecar} is not a regular file (a pipe, socket, device or folder); not read.",
                         "Put a calls.csv file there (UTF-8 CSV with the header path,rep,customer,date).")


def read_sidecar(csv_path: Path) -> dict[Path, CallMetadata]:
    """Read a ``calls.csv`` sidecar into ``{resolved file path: metadata}``.

    Header names are matched without regard to case or surrounding spaces (``Path, Rep``
    as written by spreadsheets works). Rows with a missing path are skipped with a
    warning; a row naming a file that does not exist is kept, with a warning; an unparseable
    date becomes ``None`` (with a warning); a ``call_id`` given to two files is warned about (only one of
    them can be scored). At most :data:`MAX_ROW_WARNINGS` row warnings are logged, then their number.
    A file that is not a readable CSV, or a path cell holding a NUL character, raises :class:`InputError`.
    """
    result: dict[Path, CallMetadata] = {}
    reader: csv.DictReader[str] | None = None
    try:
        with io.StringIO(_sidecar_text(csv_path), newline="") as handle:
            delimiter = csv_delimiter(handle.readline())  # a spreadsheet may save with ; or tabs
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=delimiter)
            header = reader.fieldnames
            names = [str(name).strip().lower() for name in header] if header is not None else []
            reader.fieldnames = names
            doubled = sorted({n for n in names if n in SIDECAR_COLUMNS and names.count(n) > 1})
            if doubled:  # DictReader keeps the last of two columns of one name, without a word
                logger.warning("%s: the header names %s more than once; the last such column is read", csv_path,
                               ", ".join(repr(n) for n in doubled))
            if "path" not in names:
                raise InputError(
                    f"{csv_path} has no 'path' column.",
                    "A calls.csv sidecar needs the header: path,rep,customer,date",
                )
            unread = [name for name in names if name and name not in SIDECAR_COLUMNS]
            if unread:  # a misspelt column would otherwise leave its field empty without a word
                logger.warning("%s: column(s) %s are not read (a calls.csv reads %s)%s", csv_path,
                               ", ".join(repr(n[:40]) for n in unread[:5]), ", ".join(SIDECAR_COLUMNS),
                               "; a rep's team goes in teams.csv (rep,team) in the output folder, read by the "
                               "report" if "team" in unread else "")
            warned = [0]
            named: dict[str, tuple[int, Path]] = {}  # call_id -> (line, file)

            def row_warning(message: str, *args: Any) -> None:  # a nightly log gets the first few, then a count
                warned[0] += 1
                if warned[0] <= MAX_ROW_WARNINGS:
                    logger.warning(message, *args)

            for row in reader:
                line_no = reader.line_num
                rel = _cell(row.get("path"))
                if not rel:
                    row_warning("%s line %d: empty path, row skipped", csv_path, line_no)
                    continue
                if "\x00" in rel:
                    raise InputError(
                        f"{csv_path} line {line_no}: the path holds a NUL character; the file is corrupt.",
                        "Re-save calls.csv as UTF-8 CSV with the header path,rep,customer,date.",
                    )
                raw_date = _cell(row.get("date"))
                call_date = _parse_date(raw_date)
                if raw_date and call_date is None:
                    row_warning("%s line %d: date %r is %s, left empty", csv_path, line_no, raw_date[:40],
                                   "not a calendar date" if _ISO_DAY.fullmatch(raw_date[:10]) else "not YYYY-MM-DD")
                try:
                    speaker_roles = parse_speaker_roles(_cell(row.get("speakers")))
                except ValueError as exc:
                    row_warning("%s line %d: %s; speaker map ignored", csv_path, line_no, exc)
                    speaker_roles = ()
                target = (csv_path.parent / rel).resolve()
                if not target.is_relative_to(csv_path.parent.resolve()):
                    row_warning("%s line %d: %r is outside the sidecar's folder; a calls.csv describes only "
                                   "files under its own folder, row ignored", csv_path, line_no, rel[:80])
                    continue
                if not os.path.lexists(target):
                    target = _same_name_other_form(target)  # café.json as macOS spells it (NFD) in the folder
                if not os.path.lexists(target):  # a typo, or a recording not delivered yet
                    row_warning("%s line %d: no file %r next to the sidecar; row kept for when it arrives "
                                   "(check the spelling)", csv_path, line_no, rel[:80])
                meta = CallMetadata(
                    rep=_cell(row.get("rep")) or None,
                    customer=_cell(row.get("customer")) or None,
                    call_date=call_date,
                    speaker_roles=speaker_roles,
                    call_id=_cell(row.get("call_id")) or None,
                )
                first_with_id = named.setdefault(meta.call_id, (line_no, target)) if meta.call_id else None
                if first_with_id is not None and first_with_id[1] != target:
                    row_warning("%s line %d: call_id %r is on line %d too, for another file; a call_id names one "
                                "call, so only one of the two files is scored (give each its own call_id)",
                                csv_path, line_no, (meta.call_id or "")[:80], first_with_id[0])
                if target in result and result[target] != meta:
                    row_warning("%s line %d: a second row for %r; this one is used (the earlier row is "
                                   "ignored; keep one row per file)", csv_path, line_no, rel[:80])
                result[target] = meta
            if warned[0] > MAX_ROW_WARNINGS:
                logger.warning("%s: %d more rows with a warning like those above, not shown (%d in all)", csv_path,
                               warned[0] - MAX_ROW_WARNINGS, warned[0])
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 0
        too_long = "field larger than field limit" in str(exc)
        raise InputError(
            f"Cannot read the metadata sidecar {csv_path} after line {line}: "
            + (f"a cell longer than {csv.field_size_limit():,} characters" if too_long else str(exc)) + ".",
            "If a double quote there is never closed, close it (or double a quote inside a quoted text, \"\", as "
            "spreadsheets save it); otherwise shorten the cell." if too_long else
            "Save it as UTF-8 CSV with the header path,rep,customer,date.",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"Cannot read the metadata sidecar {csv_path}: {exc}.",
            "Save it as UTF-8 CSV with the header path,rep,customer,date.",
        ) from exc
    return result


def _sidecar_text(path: Path) -> str:
    """A sidecar's text: UTF-8 (a BOM dropped), or UTF-16 when it starts with a UTF-16 byte-order mark (a
    spreadsheet's "Unicode text" save)."""
    raw = path.read_bytes()
    if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


def _same_name_other_form(target: Path) -> Path:
    """``target``, or the file beside it whose name is the same text in another Unicode form (NFC against NFD:
    macOS stores ``café.json`` decomposed, a spreadsheet types it composed)."""
    wanted = unicodedata.normalize("NFC", target.name)
    if wanted == target.name and unicodedata.normalize("NFD", target.name) == target.name:
        return target  # plain ASCII: no other form
    try:
        for entry in os.scandir(target.parent):
            if unicodedata.normalize("NFC", entry.name) == wanted:
                return target.parent / entry.name
    except OSError:
        pass
    return target


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
        if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", parts[0].strip()):  # meant as the convention, with a bad date
            logger.warning("%s: %r in the name is not a calendar date, so its rep, customer and date are not "
                           "read from the name (rename it, or give them in calls.csv)", path.name, parts[0][:20])
    return CallMetadata()


def _unreadable_folder(folder: str, exc: OSError) -> InputError:
    return InputError(f"Cannot read folder {folder}: {exc.strerror or exc}.",
                      "Give callcycle read and execute permission on it, or leave it out of the inputs.")


def _walk_folders(root: Path, onerror: Callable[[OSError], None],
                  passed: list[str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """``(folder, its file names)`` under ``root``, lazily: hidden folders skipped, symlinked folders not
    followed (each appended to ``passed`` where given)."""
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        kept = sorted(d for d in dirnames if not d.startswith(".") and not Path(dirpath, d).is_symlink())
        if passed is not None:
            passed.extend(str(Path(dirpath, d)) for d in sorted(set(dirnames) - set(kept)))
        dirnames[:] = kept
        yield dirpath, sorted(filenames)


def _walk(root: Path, errors: list[tuple[str, InputError]], passed: list[str] | None = None) -> list[Path]:
    """Every entry under ``root`` (:func:`_walk_folders`' rules)."""

    def onerror(exc: OSError) -> None:
        errors.append((str(exc.filename), _unreadable_folder(str(exc.filename), exc)))

    return [Path(dirpath) / name for dirpath, names in _walk_folders(root, onerror, passed) for name in names]


def _glob_root(spec: str) -> Path:
    """The folder part of a glob before its first wildcard (the root that identities are relative to)."""
    parts = Path(spec).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


def _expand(spec: str, errors: list[tuple[str, InputError]] | None = None,
            passed: list[str] | None = None) -> list[tuple[Path, Path]]:
    """``(file, root)`` pairs for one input spec; ``root`` is what the file's identity is relative to
    (hidden and symlinked sub-folders not entered are appended to ``passed``)."""
    errors = errors if errors is not None else []
    path = Path(spec)
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            errors.append((str(path), _unreadable_folder(str(path), PermissionError(13, "Permission denied"))))
            return []
        return [(p, path) for p in _walk(path, errors, passed)]
    if path.exists() or path.is_symlink():
        return [(path, path.parent)]
    matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))
    if not matches:
        raise InputError(
            f"No input matches {spec!r}.",
            "Pass an existing file, a folder or a quoted glob such as 'calls/**/*.wav'.",
        )
    root = _glob_root(spec)
    return [(p, root) for p in matches if not p.is_dir()]


def _identity(file: Path, root: Path) -> str:
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return file.name


def _escapes_root(file: Path, root: Path) -> Path | None:
    """Where a symlink points when that is outside ``root`` (else ``None``)."""
    if not file.is_symlink():
        return None
    target = file.resolve()
    return None if target.is_relative_to(root.resolve()) else target


def _still_being_written(path: Path, st: os.stat_result, settle_s: float) -> str | None:
    """Why a just-modified WAV looks incomplete (its header promises more bytes than it has)."""
    if path.suffix.lower() != ".wav" or time.time() - st.st_mtime > settle_s:
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    declared = struct.unpack("<I", head[4:8])[0] + 8
    if declared > st.st_size and declared != 0xFFFFFFFF + 8:
        return f"its header announces {declared} bytes but it holds {st.st_size}"
    return None


def source_kind(name: str) -> tuple[str, str]:
    """``(kind, format)`` of an input file name: ``("audio", "wav")``, ``("transcript", "json")`` ...

    Raises:
        InputError: the extension is not a supported format.
    """
    fmt = Path(name).suffix.lower().lstrip(".")
    if fmt in AUDIO_FORMATS:
        return "audio", fmt
    if fmt in TRANSCRIPT_FORMATS:
        return "transcript", fmt
    raise InputError(
        f"{name}: unsupported file type '.{fmt}'.",
        f"Use audio ({', '.join(sorted(AUDIO_FORMATS))}) or transcripts "
        f"({', '.join(sorted(TRANSCRIPT_FORMATS))}).",
    )


def describe_source(path: Path, metadata: CallMetadata | None = None, *, source_id: str = "",
                    settle_s: float = SETTLE_S, fingerprints: FingerprintCache | None = None) -> Source:
    """Fingerprint one input file.

    With ``fingerprints``, a file whose signature (inode, size, times) is the one its remembered
    sha256 was taken under is not read again (:mod:`pipeline.ingest.fingerprints`).

    Raises:
        InputError: the file is unreadable, not a regular file, or its extension is not a
            supported format.
        InputChangingError: the file changed while it was hashed, or is a WAV still being written.
    """
    kind, fmt = source_kind(path.name)
    try:
        before = path.stat()
        if not stat.S_ISREG(before.st_mode):  # a FIFO would block the hash read for ever
            raise InputError(f"{path.name}: not a regular file (a pipe, socket or device).",
                             "Copy the recording to a regular file and pass that.")
        location, signature, known = "", None, None
        if fingerprints is not None:
            location = str(path.resolve())
            signature = file_signature(file_status(path))
            known = fingerprints.lookup(location, signature)
        hashed_at = time.time()
        sha = known if known is not None else file_sha256(path)
        after = path.stat()
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise InputError(f"{path.name} is a symbolic link to {os.readlink(path)}, which does not exist.",
                             "Point the link at the recording, or delete it.") from exc
        raise InputError(f"{path.name} disappeared before it could be read.",
                         "Nothing was recorded for it; run again once the file is back.") from exc
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.", "Check the path and permissions.") from exc
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise InputChangingError(f"{path.name} is still being written (it changed while it was read).",
                                 "It is scored by the next run, once it has stopped changing.")
    growing = _still_being_written(path, after, settle_s)
    if growing:
        raise InputChangingError(f"{path.name} looks like it is still being written ({growing}).",
                                 f"It is scored by a later run; a file unchanged for {settle_s:.0f} s is scored "
                                 "as it is (a truncated recording keeps the audio that is there).")
    if fingerprints is not None and known is None and file_signature(after) == signature and settled(after, hashed_at):
        fingerprints.remember(location, signature, sha)  # a digest read from the cache is not a new check
    meta = metadata or metadata_from_name(path)
    return Source(
        path=str(path),
        kind=kind,  # type: ignore[arg-type]
        fmt=fmt,
        sha256=sha,
        size_bytes=after.st_size,
        call_id=meta.call_id or path.stem,
        metadata=meta,
        source_id=meta.call_id or source_id or str(path),
        mtime_ns=after.st_mtime_ns,
    )


def unmatched_inputs(inputs: list[str] | list[Path]) -> list[str]:
    """The local input specs that name nothing: no such file or folder, and a glob that matches nothing.

    A batch checks this before any work: a mistyped path is a usage error to fix and run again,
    not a failed input to record (an ``errors/`` row keyed by a path that never existed would stay
    there for good). An ``s3://`` spec counts as unmatched when nothing is under it or it cannot be
    listed (:func:`pipeline.ingest.remote.spec_matches`).
    """
    missing = []
    for spec in inputs:
        if objectstore.is_uri(spec):
            from pipeline.ingest import remote

            if not remote.spec_matches(str(spec)):
                missing.append(str(spec))
            continue
        path = Path(spec)
        if path.exists() or path.is_symlink() or glob.glob(str(spec), recursive=True):
            continue
        missing.append(str(spec))
    return missing


def unmatched_inputs_error(missing: list[str], defaulted: bool = False) -> InputError:
    """The usage error for :func:`unmatched_inputs`; ``defaulted``: no inputs were given, the default was tried."""
    if defaulted:
        return InputError(f"No inputs were given, and there is no {missing[0]} here to score by default.",
                          "Pass audio files, transcripts, folders or a quoted glob, e.g. "
                          "`callcycle run recordings/ --out out`.")
    shown = ", ".join(repr(m) for m in missing[:3]) + (" ..." if len(missing) > 3 else "")
    remote = " For s3://, also check the bucket, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL." \
        if any(objectstore.is_uri(m) for m in missing) else ""
    schemes = sorted({s for s in map(objectstore.unreadable_scheme, missing) if s})
    if schemes:
        remote += (f" callcycle reads local paths and s3:// URIs (in lower case), not {', '.join(schemes)}:// "
                   "addresses.")
    return InputError(f"No input matches {shown}; nothing was scored or recorded.",
                      "Check the path (or quote a glob such as 'calls/**/*.wav') and run again." + remote)


def _readable_type(name: str) -> bool:
    """A file name that a folder walk takes as a call: a supported type, not hidden."""
    return Path(name).suffix.lower().lstrip(".") in AUDIO_FORMATS | TRANSCRIPT_FORMATS and not name.startswith(".")


def _discovery_reads(name: str) -> bool:
    """A file name discovery reads from a walked folder or a glob: a call, or the ``calls.csv`` sidecar."""
    return _readable_type(name) or name == SIDECAR_NAME


def holds_no_inputs(inputs: list[str] | list[Path]) -> bool:
    """True when every input is a local folder or glob under which a walk finds no file it would read.

    A cheap check before a batch starts anything (Prefect, the output folder): it stops at the first
    file of a supported type. Anything it cannot judge cheaply counts as holding inputs: an
    ``s3://`` spec, an explicitly named file, an unreadable folder, a ``calls.csv`` sidecar (discovery
    records a damaged one as an error) — so :func:`discover_inputs` stays the one judge of what is
    scored and recorded.
    """
    for spec in inputs:
        if objectstore.is_uri(spec):
            return False
        path = Path(spec)
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):
                return False
            unreadable: list[OSError] = []
            for _, names in _walk_folders(path, unreadable.append):
                if unreadable or any(_discovery_reads(name) for name in names):
                    return False
            if unreadable:
                return False
        elif path.exists() or path.is_symlink():
            return False
        else:
            for match in glob.iglob(str(spec), recursive=True):
                if not Path(match).is_dir() and _discovery_reads(Path(match).name):
                    return False
    return True


def output_over_inputs(inputs: list[str] | list[Path], out: str | Path) -> InputError | None:
    """The usage error when the output folder is an input folder or holds one: ``run in --out in`` or
    ``run in --out .`` (everything under the output is left out of the inputs, so nothing would be
    read), ``run data/calls --out data`` (Parquet written among the recordings). An output beside or
    *inside* an input is fine (inside, it is left out of the inputs). ``None`` when they do not clash."""
    def place(spec: str | Path) -> str:
        text = str(spec)
        if objectstore.is_uri(text):
            return text.rstrip("/") + "/"
        root = _glob_root(text) if glob.has_magic(text) else Path(text)
        return str(root.absolute().resolve()).rstrip("/") + "/"

    target = place(out)
    for spec in inputs:
        if place(spec).startswith(target):
            return InputError(f"The output {out} is the input {spec} or holds it: the inputs would be left out as "
                              f"output, or results written among them; nothing was written.",
                              "Pass an --out folder beside the inputs (or inside one: it is then left out of "
                              "them), e.g. --out scored.")
    return None


def no_inputs_error(inputs: list[str] | list[Path]) -> InputError:
    """The error for a batch whose inputs hold no audio or transcript at all."""
    shown = ", ".join(str(i) for i in inputs[:3]) + (" ..." if len(inputs) > 3 else "")
    return InputError(f"No audio or transcript files found in {shown}.",
                      f"callcycle reads audio ({', '.join(sorted(AUDIO_FORMATS))}) and transcripts "
                      f"({', '.join(sorted(TRANSCRIPT_FORMATS))}); check the folder and the extensions. "
                      f"Hidden sub-folders and symbolic links to folders are not entered: name such a folder "
                      f"as an input to read it.")


@dataclass(slots=True)
class DiscoveryNotes:
    """What discovery passed over without it being an error, so a run can say so.

    Attributes:
        aliases: ``(path, path of the same file already taken)`` for a link (or a second spelling)
            to a file that is also an input: it is scored once, under the file's own path (a
            link's path is taken only when the file itself is not an input).
        ignored: files of a type callcycle does not read, found while walking a folder.
        hidden: files whose names start with ``.`` found while walking a folder (editor and
            system files such as macOS's ``._call.wav``); left alone. A hidden file named as an
            input is read.
        empty: folders and patterns that held no audio or transcript at all.
        folders: sub-folders a folder walk did not enter: hidden ones (``.git``) and symbolic links to
            folders (name one as an input to read it).
        formats: groups of inputs in one folder with one name in several formats (``call.wav``,
            ``call.vtt``): each is scored as a call of its own, so one conversation may count twice.
        sidecars: the ``calls.csv`` files read without an error (as an error row names them), so a run
            removes the error row an earlier run wrote for one that was broken then.
        identities: the identity (``source_id``) of each failed or aliased input's path, relative
            to the folder it was found in as a call's is, so the error row a failure writes is the
            one the call replaces once the file is fixed (or that goes once it is only an alias).
    """

    aliases: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    identities: dict[str, str] = field(default_factory=dict)
    folders: list[str] = field(default_factory=list)
    formats: list[list[str]] = field(default_factory=list)
    sidecars: list[str] = field(default_factory=list)


def discover_inputs(inputs: list[str] | list[Path], *, settle_s: float = SETTLE_S,
                    notes: DiscoveryNotes | None = None, fingerprints: FingerprintCache | None = None,
                    exclude: str | Path | None = None) -> tuple[list[Source], list[tuple[str, InputError]]]:
    """Expand inputs into sources, skipping sidecars and files of unknown type quietly.

    Files given explicitly with an unsupported type are reported as errors; files of
    unknown type found while walking a folder (READMEs, scripts) are ignored. Unreadable
    folders, symlinks that point outside the input folder, special files with a known
    extension and files still being written (:class:`InputChangingError`) come back as errors.
    What is passed over quietly is listed in ``notes`` when given (:class:`DiscoveryNotes`).
    With ``fingerprints`` (:mod:`pipeline.ingest.fingerprints`), inputs unchanged since an earlier
    run are not read again to be hashed; the digests taken here are written to it before returning.
    Files under ``exclude`` (the run's own output folder or ``s3://`` prefix, when it lies inside an
    input) are not inputs and are passed over without a note.

    Returns:
        ``(sources, errors)``: sources sorted by path, and ``(path, error)`` pairs for
        inputs that could not be used. Duplicate paths appear once.

    Raises:
        TypeError: ``inputs`` is one path rather than a list of them.
    """
    if isinstance(inputs, (str, Path)):
        raise TypeError(f"inputs is one path: pass a list, e.g. [{str(inputs)!r}]")
    sidecars: dict[Path, CallMetadata] = {}
    sources: list[Source] = []
    errors: list[tuple[str, InputError]] = []
    seen: set[Path] = set()
    candidates: list[tuple[Path, Path, bool]] = []
    notes = notes if notes is not None else DiscoveryNotes()
    for spec in inputs:
        if objectstore.is_uri(spec):
            from pipeline.ingest import remote

            sources.extend(remote.discover_remote(str(spec), errors, fingerprints,
                                                  exclude=str(exclude) if objectstore.is_uri(exclude) else None,
                                                  hidden=notes.hidden, sidecars=notes.sidecars))
            continue
        spec_path = Path(spec)
        try:
            files = _expand(str(spec), errors, notes.folders)
        except InputError as exc:
            errors.append((str(spec), exc))
            continue
        explicit = spec_path.is_file() or (spec_path.exists() and not spec_path.is_dir())
        if not explicit and not any(_readable_type(f.name) for f, _ in files):
            notes.empty.append(str(spec))
        for file, root in files:
            candidates.append((file, root, explicit))
            sidecar = file.parent / SIDECAR_NAME
            if not os.path.lexists(sidecar) or sidecar.absolute() in seen:
                continue
            seen.add(sidecar.absolute())
            try:
                _check_sidecar(sidecar, root)
                sidecars.update(read_sidecar(sidecar))
                notes.sidecars.append(str(sidecar))
            except InputError as exc:
                errors.append((str(sidecar), exc))
    done: dict[Path, str] = {}  # each file once, under the first path it was found by
    excluded = Path(exclude).absolute() if exclude is not None and not objectstore.is_uri(exclude) else None

    def failed(file: Path, root: Path, error: InputError) -> None:
        errors.append((str(file), error))
        notes.identities[str(file)] = _identity(file, root)

    # a file's own path before any link to it (stable otherwise): which path names a call must not
    # depend on the order a folder is walked in
    for file, root, explicit in sorted(candidates, key=lambda c: c[0].is_symlink()):
        if file.name == SIDECAR_NAME:
            continue
        if excluded is not None and file.absolute().is_relative_to(excluded):
            continue
        shown = utf8_name(str(file))  # the name itself, unless it is not UTF-8 (then with \\xNN)
        if file.name.startswith(".") and not explicit:
            notes.hidden.append(shown)
            continue
        fmt = file.suffix.lower().lstrip(".")
        if not explicit and fmt not in AUDIO_FORMATS | TRANSCRIPT_FORMATS:
            notes.ignored.append(shown)
            continue
        if shown != str(file):  # a name that is not UTF-8 (a Windows zip): stored rows are UTF-8 text
            errors.append((shown, InputError(
                f"{utf8_name(file.name)}: the file name is not valid UTF-8 (its odd bytes are shown as "
                f"\\xNN); callcycle stores names as text, so the file was not read.",
                "Rename the file to a UTF-8 name (e.g. `convmv -f cp1252 -t utf-8 --notest FILE`); the "
                "other files were read.")))
            notes.identities[shown] = utf8_name(_identity(file, root))
            continue
        try:  # a symbolic link loop raises here (RuntimeError), for this file only
            outside = None if explicit else _escapes_root(file, root)
            resolved = file.resolve()
        except (OSError, RuntimeError) as exc:
            failed(file, root, InputError(f"{file.name}: cannot follow the link ({exc}).",
                                          "Remove the broken or looping link; the other files were read."))
            continue
        if outside is not None:
            failed(file, root, InputError(
                f"{file.name} is a symbolic link to {outside}, outside the input folder {root}; refused.",
                "Copy the file into the folder if it is a call; links may not lead out of the inputs."))
            continue
        if resolved in done:
            if str(file) != done[resolved]:
                notes.aliases.append((str(file), done[resolved]))
                notes.identities[str(file)] = _identity(file, root)
            continue
        done[resolved] = str(file)
        try:
            sources.append(describe_source(file, sidecars.get(resolved), source_id=_identity(file, root),
                                           settle_s=settle_s, fingerprints=fingerprints))
        except InputError as exc:
            failed(file, root, exc)
    if fingerprints is not None:
        fingerprints.flush()
    notes.folders[:] = [utf8_name(f) for f in dict.fromkeys(notes.folders)  # not the run's own output's
                        if excluded is None or not Path(f).absolute().is_relative_to(excluded)]
    sources = list({s.path: s for s in sources}.values())  # an object listed by two s3:// specs
    sources.sort(key=lambda s: s.path)
    by_name: dict[tuple[str, str], list[str]] = {}
    for source in sources:  # one name, several formats: a recording and its transcript, say
        where = source.path.rsplit("/", 1)
        folder, name = (where[0], where[1]) if len(where) == 2 else ("", where[0])
        by_name.setdefault((folder, name.rsplit(".", 1)[0].casefold()), []).append(source.path)
    notes.formats[:] = [paths for paths in by_name.values() if len(paths) > 1]
    return sources, errors
