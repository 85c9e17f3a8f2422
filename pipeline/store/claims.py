"""Claims: two runs on one output folder do not score the same call at the same time.

Results are idempotent without claims (a call's files are replaced atomically, the calls row last), but
two runs on one output would each do all the work: a nightly run that starts while last night's is still
going works through the same pending calls in the same order, transcribing every one twice. So before a
run scores a call it creates ``<out>/.claims/<identity key>`` with ``O_EXCL`` (under an ``s3://`` output, an
object created with ``If-None-Match: *``), holding who claims it (host, process id, the process's start
time, when). A run that finds a live claim leaves that call to its holder:
the input is ``deferred``, and a later run scores it if the holder did not. The claim is removed when the
call is committed or recorded as failed.

A claim is stale, and the next run takes it over, when its holder is gone: on this machine, no process
with that id and start time (so a reused process id does not keep a dead run's claims alive); from
another machine sharing the folder, when it is older than :data:`REMOTE_STALE_S`. A claim made by the
same run (batch id) is taken over at once: the task was given again because its first attempt was lost
(a Dask worker that died, prefect#15442). A claim that cannot be read (a crash between creating and
writing it) is stale once it is a minute old.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.atomic import pid_alive, process_started
from pipeline.errors import OutputError

__all__ = ["CLAIMS", "REMOTE_STALE_S", "ClaimFile", "Holder", "LocalClaimFile", "claim", "hold", "sweep",
           "sweep_folder"]

logger = logging.getLogger(__name__)

#: Folder of the claims inside an output folder (a dot folder: readers and globs never see it).
CLAIMS = ".claims"
#: A claim made on another machine counts as abandoned after this long (six hours).
REMOTE_STALE_S = 6 * 3600.0
#: A claim file that does not parse (its writer died between creating and writing it) after this long.
_UNREADABLE_STALE_S = 60.0


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a claim."""

    host: str
    pid: int
    started: str
    """The process's start time as the kernel counts it (``/proc/<pid>/stat``), empty where unknown."""
    since: float
    """When the claim was made (seconds since the epoch)."""
    batch: str = ""
    """The run (batch id) that made it, empty outside a batch."""

    def describe(self) -> str:
        """For messages: ``process 1234 on host-a since 2026-12-07 03:40:12 UTC``."""
        if not self.pid:
            return "a run that is writing its claim right now"
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"process {self.pid} on {self.host} since {when}"


def _me(batch: str) -> Holder:
    return Holder(socket.gethostname(), os.getpid(), process_started(os.getpid()), time.time(), batch)


def _alive(holder: Holder, now: float) -> bool:
    if holder.host != socket.gethostname():
        return now - holder.since < REMOTE_STALE_S
    if holder.pid == 1 or not pid_alive(holder.pid):  # pid 1 is init, never a run
        return False
    started = process_started(holder.pid)
    return not (started and holder.started and started != holder.started)  # the id now names another process


class ClaimFile(Protocol):
    """Where one claim lives: a file in an output folder, or an object under an ``s3://`` output."""

    def create(self, data: bytes) -> bool:
        """Write ``data`` only if there is no claim yet; ``False`` when there is one."""
        ...

    def read(self) -> tuple[bytes, float] | None:
        """The claim's bytes and its age in seconds, or ``None`` when there is none."""
        ...

    def delete(self) -> None:
        """Remove the claim (nothing happens when it is gone)."""
        ...


@dataclass(frozen=True, slots=True)
class LocalClaimFile:
    """A claim as a file, created with ``O_EXCL``."""

    path: Path

    def create(self, data: bytes) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True

    def read(self) -> tuple[bytes, float] | None:
        try:
            if self.path.is_symlink() or not self.path.is_file():  # not a claim this module wrote
                return b"", math.inf
            with open(self.path, "rb") as handle:
                return handle.read(4096), time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None

    def delete(self) -> None:
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)


def _parse(data: bytes) -> Holder | None:
    """The holder a claim names, or ``None`` for anything that is not a claim this module wrote (garbage, a
    process id no system uses, a time that is not a number): such a claim counts as unreadable."""
    try:
        raw = json.loads(data.decode("utf-8"))
        holder = Holder(str(raw["host"]), int(raw["pid"]), str(raw.get("started", "")), float(raw["since"]),
                        str(raw.get("batch", "")))
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return None
    if not 0 < holder.pid < 2**22 or not math.isfinite(holder.since):  # Linux process ids stay below 2**22
        return None
    return holder


def _gone(holder: Holder | None, age: float, now: float) -> bool:
    """Whether a claim (its parsed holder, ``None`` when unreadable, and its age in seconds) holds nothing
    any more: its holder is not alive, or it has been unreadable for :data:`_UNREADABLE_STALE_S`."""
    return age >= _UNREADABLE_STALE_S if holder is None else not _alive(holder, now)


def _take(file: ClaimFile, me: Holder) -> Holder | None:
    """Create the claim; ``None`` when it is ours now, else the live holder."""
    data = json.dumps({"host": me.host, "pid": me.pid, "started": me.started, "since": me.since,
                       "batch": me.batch}).encode("utf-8")
    for _ in range(3):
        if file.create(data):
            return None
        found = file.read()
        if found is None:
            continue  # released meanwhile: try again
        holder, age = _parse(found[0]), found[1]
        now = time.time()
        # the same batch claimed it before: the scheduler gave this task again because that attempt was lost
        # (a Dask worker that died, prefect#15442), so the claim is ours to take over, from any machine
        rerun = holder is not None and bool(me.batch) and holder.batch == me.batch
        if not rerun and not _gone(holder, age, now):
            return holder or Holder("?", 0, "", now - age)  # a claim being written right now
        logger.info("taking over a claim left by %s", holder.describe() if holder else "an unfinished write")
        file.delete()
    found = file.read()
    return (_parse(found[0]) if found else None) or Holder("?", 0, "", time.time())


@contextmanager
def hold(file: ClaimFile, batch: str = "") -> Iterator[Holder | None]:
    """Claim ``file`` for this process (in run ``batch``) while the block runs.

    Yields ``None`` when this process holds the claim (removed when the block ends, unless it ends with an
    :class:`~pipeline.errors.OutputError` on an object store: one that failed is not asked again), or
    the :class:`Holder` of a live claim, in which case the caller must leave the call alone.

    Raises:
        OSError: the claim cannot be written (the output is not writable).
    """
    me = _me(batch)
    holder = _take(file, me)
    if holder is not None:
        yield holder
        return
    try:
        yield None
    except OutputError:
        if not isinstance(file, LocalClaimFile):  # an object store that failed (or stopped answering): releasing
            raise  # would wait on it too; the claim stays, and turns stale for the next run (REMOTE_STALE_S)
        _release(file, me)  # a folder (a full disk): removing a file still works, and a long-lived process
        raise  # (a deployment) must not find its own claim on its next run
    except BaseException:
        _release(file, me)
        raise
    _release(file, me)


def _release(file: ClaimFile, me: Holder) -> None:
    """Remove this process's claim, unless another run took it over meanwhile."""
    found = file.read()
    if found is not None and _parse(found[0]) == me:
        file.delete()


def sweep(files: Iterable[ClaimFile]) -> int:
    """Remove the claims among ``files`` whose holders are gone (the rules of the module docstring); returns
    how many. Run before a batch: a run killed after committing a call but before releasing its claim leaves
    a claim that no later run looks at (the call is already done)."""
    removed = 0
    now = time.time()
    for file in files:
        found = file.read()
        if found is None:
            continue
        if _gone(_parse(found[0]), found[1], now):
            file.delete()
            removed += 1
    return removed


def sweep_folder(out_dir: Path) -> int:
    """:func:`sweep` over the claims of output folder ``out_dir``."""
    folder = Path(out_dir) / CLAIMS
    if not folder.is_dir():
        return 0
    return sweep(LocalClaimFile(path) for path in sorted(folder.iterdir()))


def claim(out_dir: Path, name: str, batch: str = "") -> AbstractContextManager[Holder | None]:
    """:func:`hold` the claim on call ``name`` (its identity key) in output folder ``out_dir``."""
    folder = Path(out_dir) / CLAIMS
    folder.mkdir(parents=True, exist_ok=True)
    return hold(LocalClaimFile(folder / name), batch)
