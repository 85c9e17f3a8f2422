"""Stop a run's temporary Prefect API server when the run's process dies without stopping it.

With no ``PREFECT_API_URL`` configured, a run starts Prefect's temporary API server (a uvicorn child
process) and stops it at exit. A run killed outright (``kill -9``, the out-of-memory killer, a
scheduler's hard timeout) never reaches its exit handlers, and the server, about 230 MB, is left
running with no parent; a nightly job that is killed every night leaks one each time.

:func:`guard` starts this module as a small separate process (it imports only the standard library
and ``pipeline.atomic``, so it starts in milliseconds). It checks every half second whether the run's
process is still there; once it is gone, it sends the server SIGTERM (SIGKILL after 5 s if it does not
stop), but only if that process id still runs the Prefect server, so a reused process id is never
touched. When the run stops the server
itself, the watchdog finds nothing to do and exits.

Usage (internal): ``python -m flows.server_watchdog RUN_PID SERVER_PID``
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.atomic import pid_alive

__all__ = ["guard", "is_prefect_server", "watch"]

#: What the temporary server's command line holds (``uvicorn … prefect.server.api.server:create_app``).
_SERVER_MARK = b"prefect.server.api.server"


def is_prefect_server(pid: int) -> bool:
    """True when process ``pid`` runs Prefect's API server (read from ``/proc``; False where unknown)."""
    try:
        return _SERVER_MARK in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def watch(run_pid: int, server_pid: int, poll_s: float = 0.5, grace_s: float = 5.0) -> bool:
    """Wait until ``run_pid`` is gone, then stop ``server_pid`` if it still runs the Prefect server.

    Returns True when it had to stop the server.
    """
    while pid_alive(run_pid):
        if not pid_alive(server_pid):
            return False  # the run stopped its server itself
        time.sleep(poll_s)
    if not (pid_alive(server_pid) and is_prefect_server(server_pid)):
        return False
    os.kill(server_pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(server_pid) and is_prefect_server(server_pid):
        os.kill(server_pid, signal.SIGKILL)
    return True


def guard(server_pid: int) -> subprocess.Popen[bytes] | None:
    """Start a watchdog that stops ``server_pid`` once this process is gone; ``None`` where the platform
    has no ``/proc`` to tell the server by (the server is then left to Prefect's own exit handler)."""
    if not Path("/proc/self/cmdline").exists():
        return None
    return subprocess.Popen([sys.executable, "-m", "flows.server_watchdog", str(os.getpid()), str(server_pid)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True,
                            cwd=str(Path(__file__).resolve().parents[1]))


if __name__ == "__main__":
    try:
        watch(int(sys.argv[1]), int(sys.argv[2]))
    except (IndexError, ValueError):
        sys.exit("usage: python -m flows.server_watchdog RUN_PID SERVER_PID")
    except OSError:
        pass
