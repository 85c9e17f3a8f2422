"""Inputs in object storage: find calls under an ``s3://`` prefix, fingerprint them, fetch one to read.

An input spec may be a prefix (``s3://bucket/calls/``, searched recursively like a folder), one
object, or a quoted glob (``s3://bucket/calls/2026-*/*.json``). Each object's identity
(``source_id``) is its key relative to the prefix (or the glob's fixed part, or for one object its
"folder") — exactly what the same tree on a disk would give — or the ``call_id`` of a
``calls.csv`` sidecar stored beside it. Its version is the sha256 of its bytes, streamed once at
discovery. Work on a call reads a local copy (:func:`local_copy`), downloaded to a temporary
folder and checked against that sha256, so every decoder and parser reads a plain file.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline import objectstore
from pipeline.errors import InputChangingError, InputError
from pipeline.ingest.discover import (
    AUDIO_FORMATS,
    SIDECAR_NAME,
    TRANSCRIPT_FORMATS,
    file_sha256,
    metadata_from_name,
    read_sidecar,
    source_kind,
)
from pipeline.ingest.fingerprints import FingerprintCache, object_signature
from pipeline.schema import CallMetadata, Source

__all__ = ["discover_remote", "describe_object", "local_copy"]

logger = logging.getLogger("callcycle.ingest")

_CHUNK = 1 << 20
_ACCESS_HINT = "Check the bucket and prefix, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL."


def _glob_root(path: str) -> str:
    parts = path.split("/")
    fixed = parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]
    return "/".join(fixed)


def _list(fs: Any, spec: str) -> tuple[dict[str, dict[str, Any]], str, bool]:
    """``(objects with details, root their identities are relative to, explicit)`` for one spec."""
    bucket, key = objectstore.split_uri(spec)
    base = f"{bucket}/{key}" if key else bucket
    if key and fs.isfile(base):  # an object named outright, even one whose key holds glob characters
        return {base: fs.info(base)}, posixpath.dirname(base), True
    if glob.has_magic(key) and not fs.isdir(base):  # a prefix that exists is that prefix, as in spec_matches
        return dict(fs.glob(base, detail=True)), _glob_root(base), False
    return dict(fs.find(base, detail=True)), base, False


def _sidecar(fs: Any, csv_path: str) -> dict[str, CallMetadata]:
    """A ``calls.csv`` object read as :func:`~pipeline.ingest.discover.read_sidecar` reads a file:
    ``{s3fs path of the described object: metadata}``."""
    folder = tempfile.mkdtemp(prefix="callcycle-sidecar-")
    try:
        local = Path(folder) / SIDECAR_NAME
        with objectstore.translate_errors():
            fs.get_file(csv_path, str(local))
        base = Path(folder).resolve()
        parent = posixpath.dirname(csv_path)
        return {f"{parent}/{target.relative_to(base).as_posix()}": meta
                for target, meta in read_sidecar(local).items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def describe_object(fs: Any, path: str, info: dict[str, Any], metadata: CallMetadata | None = None, *,
                    source_id: str = "", fingerprints: FingerprintCache | None = None) -> Source:
    """Fingerprint one object (``bucket/key``) by streaming its bytes, or with ``fingerprints``, by
    taking the sha256 remembered for the same size, ETag and LastModified (no download).

    Raises:
        InputError: unsupported extension, or the object cannot be read.
        InputChangingError: the object was replaced while it was read.
    """
    name = posixpath.basename(path)
    kind, fmt = source_kind(name)
    uri = objectstore.to_uri(path)
    signature = object_signature(info)
    known = fingerprints.lookup(uri, signature) if fingerprints is not None else None
    if known is not None:
        return _object_source(uri, name, kind, fmt, known, info, metadata, source_id)
    digest = hashlib.sha256()
    try:
        with objectstore.translate_errors():
            with fs.open(path, "rb", block_size=_CHUNK) as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            after = fs.info(path)
    except FileNotFoundError as exc:
        raise InputError(f"{name} disappeared before it could be read.",
                         "Nothing was recorded for it; run again once the object is back.") from exc
    except OSError as exc:
        raise InputError(f"Cannot read {uri}: {exc}.", _ACCESS_HINT) from exc
    if after.get("ETag") != info.get("ETag") or after.get("size") != info.get("size"):
        raise InputChangingError(f"{name} was replaced while it was read.",
                                 "It is scored by the next run.")
    if fingerprints is not None:  # objects are replaced whole: no settling time to wait for
        fingerprints.remember(uri, signature, digest.hexdigest())
    return _object_source(uri, name, kind, fmt, digest.hexdigest(), after, metadata, source_id)


def _object_source(uri: str, name: str, kind: str, fmt: str, sha256: str, info: dict[str, Any],
                   metadata: CallMetadata | None, source_id: str) -> Source:
    meta = metadata or metadata_from_name(Path(name))
    return Source(
        path=uri,
        kind=kind,  # type: ignore[arg-type]
        fmt=fmt,
        sha256=sha256,
        size_bytes=int(info.get("size") or 0),
        call_id=meta.call_id or Path(name).stem,
        metadata=meta,
        source_id=meta.call_id or source_id or uri,
        mtime_ns=None,  # objects do not change in place: the sha256 is checked on download instead
    )


def spec_matches(spec: str) -> bool:
    """Whether an ``s3://`` spec names anything: an object, a prefix with objects under it, or a glob
    that matches; ``False`` too for a bucket that does not exist.

    Raises:
        InputError: the endpoint cannot be reached or the credentials may not list the bucket.
    """
    fs = objectstore.filesystem()
    bucket, key = objectstore.split_uri(spec)
    base = f"{bucket}/{key}" if key else bucket
    try:
        with objectstore.translate_errors():
            if fs.exists(base):  # an object or prefix, even one whose key holds glob characters
                return True
            return glob.has_magic(key) and bool(fs.glob(base))
    except (ConnectionError, PermissionError) as exc:  # not "nothing there": say what is wrong
        raise InputError(f"Cannot list {spec}: {exc}.", _ACCESS_HINT) from exc
    except (OSError, ValueError):
        return False


def _key_below(path: str, root: str) -> str:
    """``path`` relative to ``root`` as written: S3 keys are names, not paths, so ``a/../b.json``,
    ``a//b.json`` and ``b.json`` are three objects and are never normalised into one."""
    prefix = root.rstrip("/") + "/" if root else ""
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def discover_remote(spec: str, errors: list[tuple[str, InputError]],
                    fingerprints: FingerprintCache | None = None, exclude: str | None = None,
                    hidden: list[str] | None = None, sidecars: list[str] | None = None) -> list[Source]:
    """Sources under one ``s3://`` spec (see the module docstring); problems are appended to ``errors``.

    As for folders on a disk: ``calls.csv`` sidecars are read, hidden objects and "folders" are
    skipped (hidden objects found under a prefix are appended to ``hidden``, as a folder walk
    notes hidden files; one named outright is read; the URIs of sidecars read without an error are
    appended to ``sidecars``), and objects of unknown type are ignored unless
    named explicitly. An object whose key has an empty, ``.`` or ``..`` part below the prefix
    (``calls//a.json``, ``calls/x/../a.json``) is an error: read as a path it would be another
    object's call. Objects under ``exclude`` (the run's own ``s3://`` output, when it lies inside the
    input prefix) are not inputs.
    """
    if exclude is not None:
        bucket, key = objectstore.split_uri(exclude)
        skipped = f"{bucket}/{key.strip('/')}/" if key.strip("/") else f"{bucket}/"
    else:
        skipped = None
    fs = objectstore.filesystem()
    try:
        with objectstore.translate_errors():
            found, root, explicit = _list(fs, spec)
    except InputError as exc:  # the spec itself is unusable (s3:// with no bucket)
        errors.append((spec, exc))
        return []
    except (OSError, ValueError) as exc:
        errors.append((spec, InputError(f"Cannot list {spec}: {exc}.", _ACCESS_HINT)))
        return []
    files = {p: i for p, i in found.items() if i.get("type", "file") != "directory"
             and not (skipped is not None and p.startswith(skipped))}
    if not files:
        errors.append((spec, InputError(f"No input matches {spec!r}.",
                                        "Pass an s3:// prefix holding audio or transcripts, one object, or a "
                                        "quoted glob such as 's3://bucket/calls/**/*.json'.")))
        return []
    csvs = {p for p in files if posixpath.basename(p) == SIDECAR_NAME}
    if explicit or glob.has_magic(spec):  # a glob or one object: look for the sidecar beside each file
        for folder in sorted({posixpath.dirname(p) for p in files}):
            beside = f"{folder}/{SIDECAR_NAME}"
            try:
                with objectstore.translate_errors():
                    if beside not in csvs and fs.isfile(beside):
                        csvs.add(beside)
            except OSError:
                continue
    metadata: dict[str, CallMetadata] = {}
    for csv_path in sorted(csvs):
        try:
            metadata.update(_sidecar(fs, csv_path))
            if sidecars is not None:
                sidecars.append(objectstore.to_uri(csv_path))
        except (InputError, OSError) as exc:
            error = exc if isinstance(exc, InputError) else InputError(
                f"Cannot read the metadata sidecar {objectstore.to_uri(csv_path)}: {exc}.", _ACCESS_HINT)
            errors.append((objectstore.to_uri(csv_path), error))
    sources = []
    for path, info in sorted(files.items()):
        rel = _key_below(path, root)
        name = posixpath.basename(path)
        parts = rel.split("/")
        if any(part in ("", ".", "..") for part in parts):
            errors.append((objectstore.to_uri(path), InputError(
                f"{objectstore.to_uri(path)}: the key has an empty, '.' or '..' part, so as a path it would "
                f"name another object's call; not read.",
                "Copy the object to a key without '//', '/./' or '/../' (and delete this one); the other "
                "objects were read.")))
            continue
        if objectstore.has_version_query(path):
            errors.append((objectstore.to_uri(path), InputError(
                f"{objectstore.to_uri(path)}: the key holds '?versionId=', which the S3 client reads as a version "
                "of another object; not read.",
                "Copy the object to a key without '?versionId=' (and delete this one); the other objects were "
                "read.")))
            continue
        if name == SIDECAR_NAME:
            continue
        if any(part.startswith(".") for part in parts[:-1]):  # in a hidden "folder", as a walk skips one
            continue
        if name.startswith(".") and not explicit:
            if hidden is not None:
                hidden.append(objectstore.to_uri(path))
            continue
        if not explicit and posixpath.splitext(name)[1].lower().lstrip(".") not in AUDIO_FORMATS | TRANSCRIPT_FORMATS:
            continue
        try:
            sources.append(describe_object(fs, path, info, metadata.get(path), source_id=rel,
                                           fingerprints=fingerprints))
        except InputError as exc:
            errors.append((objectstore.to_uri(path), exc))
    return sources


def _short_name(name: str) -> str:
    """A file name of at most 80 bytes standing for ``name``: its sha256 and its (short) suffix."""
    suffix = posixpath.splitext(name)[1]
    suffix = suffix if len(suffix.encode("utf-8")) <= 16 else ""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:32] + suffix


@contextmanager
def local_copy(source: Source) -> Iterator[Path]:
    """A plain file holding the source's bytes: the file itself on a disk, a checked temporary
    download (same file name, removed afterwards) for an ``s3://`` object.

    Raises:
        InputError: the object cannot be fetched.
        InputChangingError: its bytes are no longer those fingerprinted at discovery.
    """
    if not objectstore.is_uri(source.path):
        yield Path(source.path)
        return
    bucket, key = objectstore.split_uri(source.path)
    name = posixpath.basename(key)
    folder = tempfile.mkdtemp(prefix="callcycle-input-")
    try:
        # the copy keeps the object's name (readers go by its suffix), shortened where the local file system
        # could not hold it: keys may be 1,024 bytes long, file names 255
        local = Path(folder) / (name if len(name.encode("utf-8")) <= 200 else _short_name(name))
        try:
            with objectstore.translate_errors():
                objectstore.filesystem().get_file(f"{bucket}/{key}", str(local))
        except FileNotFoundError as exc:
            raise InputError(f"{name} disappeared before it could be read.",
                             "Run again once the object is back (its errors row goes once it is scored).") from exc
        except OSError as exc:
            raise InputError(f"Cannot read {source.path}: {exc}.", _ACCESS_HINT) from exc
        if file_sha256(local) != source.sha256:
            raise InputChangingError(f"{name} changed while it was processed.",
                                     "It is scored by the next run.")
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)
