"""Atomic file publication: write under a hidden temporary name, fsync, then rename into place.

A reader never sees a half-written file. Temporary names carry the writer's process id so a
later run can tell a dead writer's leftovers from a live one's (see ``store.sweep_stale_temp``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["temp_path", "publish", "write_bytes_atomic", "exclusive_lock", "check_replaceable", "pid_alive",
           "process_started"]


def check_replaceable(path: Path, looks_like: bytes | None = None) -> None:
    """Refuse to replace ``path`` with a new file unless it is missing or a regular file (no link, device,
    pipe or folder: a rename would swap a link or ``/dev/...`` for a plain file); with ``looks_like``,
    an existing file must also hold those bytes in its first 4 KiB (a report, not someone's input).

    Raises:
        OutputError: what is there, and what to do.
    """
    from pipeline.errors import OutputError

    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = ("a link" if path.is_symlink() else "a folder" if path.is_dir()
                else "not a regular file (a device or pipe)")
        raise OutputError(f"{path} is {kind}; callcycle writes a new file in its place only over a regular file.",
                          "Pass another file name.")
    if looks_like is not None and path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(4096)
        if looks_like not in head:
            raise OutputError(f"{path} exists and is not a file callcycle wrote; it was not overwritten.",
                              "Pass a new file name, or delete the file first if it may go.")


def temp_path(path: Path) -> Path:
    """A new, empty, hidden temporary file beside ``path`` (``.<name>.pid<pid>.<random>.tmp``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, give it the usual file mode (mkstemp makes 0600) and rename it to ``path``."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that it appears complete or not at all.

    Raises:
        IsADirectoryError: ``path`` is a folder (named in the error, not the temporary file).
    """
    if Path(path).is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a folder, not a file; pass a file name", str(path))
    tmp = temp_path(path)
    try:
        tmp.write_bytes(data)
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (an empty file, created if missing) for the block.

    Processes that take the same lock take turns, so a read-merge-write of a shared file done inside
    it never loses another process's write. POSIX ``flock``: one machine's local filesystem.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), ``[]`` where /proc cannot say."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this machine (a zombie, exited but not yet collected by its
    parent, does not): used to tell a writer's leftovers, or a run that is gone, from a live one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return not fields or fields[0] != "Z"  # no /proc to ask: it answered the signal


def process_started(pid: int) -> str:
    """When process ``pid`` started, in clock ticks after boot (``""`` where /proc cannot say): with the id,
    it names one process, where an id alone may be reused by a later one."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""
