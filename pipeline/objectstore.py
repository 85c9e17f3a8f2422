"""S3 object storage: ``s3://`` URIs and the one place the S3 client is configured.

The endpoint and credentials come from the standard variables — ``AWS_ENDPOINT_URL`` (any
S3-compatible server: MinIO, Ceph, a local moto server; unset = AWS), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
or any other credential source botocore knows). The client is s3fs (fsspec), which sends
create-only writes as ``If-None-Match: *`` (see :mod:`pipeline.store.s3`).

Errors from the client are turned into :class:`OSError` subclasses (``PermissionError``,
``FileNotFoundError``, ``FileExistsError`` for a failed create-only write, ``ConnectionError``
when the endpoint cannot be reached), so callers handle one family of exceptions for disks
and buckets alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import InputError

__all__ = ["SCHEME", "is_uri", "same_location", "split_uri", "to_uri", "unreadable_scheme", "has_version_query",
           "filesystem", "exists", "translate_errors", "endpoint"]

SCHEME = "s3://"


def is_uri(location: object) -> bool:
    """True for an ``s3://bucket/...`` location (a plain path or ``Path`` is never one)."""
    return isinstance(location, str) and location.startswith(SCHEME)


def same_location(stored: str, path: str) -> bool:
    """Whether two spellings name the same input: equal, or (local files) the same file once resolved
    against the current folder (``data/calls/a.json`` and ``/srv/x/data/calls/a.json``)."""
    if stored == path:
        return True
    if is_uri(stored) or is_uri(path):
        return False
    return os.path.realpath(stored) == os.path.realpath(path)


def split_uri(uri: str) -> tuple[str, str]:
    """``("bucket", "key/prefix")`` of ``s3://bucket/key/prefix`` (the key without slashes at its ends).

    Raises:
        ValueError: ``uri`` is not an ``s3://`` URI (a mistake in the call).
        InputError: it names no bucket (``s3://``, ``s3:///key``): what a user typed.
    """
    if not is_uri(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len(SCHEME):].partition("/")
    if not bucket:
        raise InputError(f"{uri!r} names no bucket.", "Write s3://BUCKET or s3://BUCKET/PREFIX.")
    return bucket, key.strip("/")


_SCHEME_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/")


def unreadable_scheme(location: str | Path) -> str | None:
    """The scheme of a URL-like location callcycle cannot read (``S3://``, ``gs://``, ``https://``, ``s3:/x``),
    or ``None`` for a plain path or a well-formed ``s3://`` URI. Left alone, such a location would be taken
    for a local folder named ``S3:`` (an output written to the local disk while the user meant a bucket)."""
    if not isinstance(location, str) or is_uri(location):
        return None
    match = _SCHEME_LIKE.match(location)
    return match.group(1) if match and len(match.group(1)) > 1 else None  # "C:/..." is a Windows drive


def has_version_query(key: str) -> bool:
    """Whether ``key`` holds ``?versionId=``, which the S3 client reads as a version of another object (the key
    before it), so that such an object cannot be addressed by its own name."""
    return "?versionId=" in key


def to_uri(path: str) -> str:
    """``s3://`` + an s3fs path (``bucket/key``)."""
    return path if is_uri(path) else SCHEME + path.lstrip("/")


def endpoint() -> str:
    """Where requests go: ``AWS_ENDPOINT_URL`` or, unset, AWS itself (for messages)."""
    return os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


#: Seconds to wait for a connection to the S3 endpoint, and for each reply to go on: a store that stops
#: answering (a wedged server, a network partition) fails the run in minutes — exit 2, committed calls kept —
#: instead of hanging it without a word (botocore waits 60 s per read and tries 5 times, s3fs 5 more).
S3_CONNECT_TIMEOUT_S = 10.0
S3_READ_TIMEOUT_S = 20.0
#: botocore's attempts per request ("standard" retries, with backoff; the standard ``AWS_MAX_ATTEMPTS`` and
#: ``AWS_RETRY_MODE`` variables override), and s3fs's own attempts around them (1: botocore's are enough).
S3_MAX_ATTEMPTS = 3
S3FS_RETRIES = 1


def filesystem() -> Any:
    """An s3fs filesystem configured from the environment (see the module docstring).

    Directory listings are not cached: another worker's commit must be visible to the next
    listing. fsspec reuses one instance per set of arguments within a process. Every request has
    the time limits above, so a store that stops answering raises a timeout (an :class:`OSError`
    through :func:`translate_errors`) after about a minute (3 tries of 20 s, and botocore's backoff).
    """
    import s3fs

    client_kwargs: dict[str, Any] = {}
    if os.environ.get("AWS_ENDPOINT_URL"):
        client_kwargs["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client_kwargs["region_name"] = region
    try:
        attempts = max(1, int(os.environ.get("AWS_MAX_ATTEMPTS") or S3_MAX_ATTEMPTS))
    except ValueError:
        attempts = S3_MAX_ATTEMPTS
    config = {"connect_timeout": S3_CONNECT_TIMEOUT_S, "read_timeout": S3_READ_TIMEOUT_S,
              "retries": {"max_attempts": attempts, "mode": os.environ.get("AWS_RETRY_MODE") or "standard"}}
    fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, config_kwargs=config, use_listings_cache=False)
    fs.retries = S3FS_RETRIES  # s3fs's own loop around botocore's (its class default is 5)
    _without_expect_continue(fs)
    return fs


def _without_expect_continue(fs: Any) -> None:
    """Send uploads without ``Expect: 100-continue``: botocore adds it to every PUT, and the HTTP client then
    waits for the server's "100 Continue" with no time limit, so a store that stops answering hung a run for
    good whatever the timeouts above (measured: a frozen server, `kill -STOP`). The bodies callcycle sends
    are small; the header only saves resending a large one that the server would refuse."""
    from botocore.handlers import add_expect_header

    try:
        client = fs.connect()  # the client s3fs keeps (made here, no request sent)
        client.meta.events.unregister("before-call.s3", add_expect_header)
    except Exception:  # noqa: BLE001 - a client that cannot be made fails its first request with a clear error
        pass


def exists(uri: str) -> bool:
    """Whether the object ``uri`` is there (one HEAD request). Where the store cannot be asked (no
    credentials, unreachable), it counts as there: callers use this to let a vanished object go, and
    a store that cannot answer must not make a present one look gone. A key holding ``?versionId=`` cannot
    be asked about (the client reads it as a version of another object): it counts as there too."""
    if has_version_query(uri):
        return True
    try:
        with translate_errors():
            return bool(filesystem().exists(uri[len(SCHEME):]))
    except OSError:
        return True


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise the client's own exceptions (botocore, aiohttp) as :class:`OSError` subclasses."""
    try:
        yield
    except (OSError, InputError):  # InputError: a URI the user typed that names no bucket (split_uri)
        raise
    except Exception as exc:  # noqa: BLE001 - the client's exception classes, mapped below
        name = type(exc).__name__
        if "Endpoint" in name or "Connect" in name or "Timeout" in name:
            raise ConnectionError(f"cannot reach {endpoint()}: {exc}") from exc
        if "Credentials" in name or "NoCredentials" in name:
            raise PermissionError(f"no S3 credentials found ({exc}); set AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY") from exc
        raise OSError(f"S3 request failed: {exc}") from exc
