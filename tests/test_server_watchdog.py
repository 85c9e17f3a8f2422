"""A run killed outright (kill -9) does not leave its temporary Prefect API server running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import MODELS, ROOT

from flows.server_watchdog import is_prefect_server, watch

_SLEEPER = "import time; time.sleep(120)"


def _gone(process: subprocess.Popen, within_s: float) -> bool:
    try:
        process.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def _started(process: subprocess.Popen, within_s: float = 30.0) -> subprocess.Popen:
    """Wait until the child has replaced the forked copy of pytest with its own command line.

    Right after ``Popen`` returns, ``/proc/<pid>/cmdline`` may still show the parent's, so a check made at once
    races the child's exec (seen on a loaded CI machine).
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if _SLEEPER.encode() in Path(f"/proc/{process.pid}/cmdline").read_bytes():
                return process
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"process {process.pid} did not start within {within_s} s")


def test_the_watchdog_stops_the_server_of_a_dead_run_and_nothing_else() -> None:
    run = _started(subprocess.Popen([sys.executable, "-c", _SLEEPER]))
    server = _started(subprocess.Popen([sys.executable, "-c", _SLEEPER, "prefect.server.api.server:create_app"]))
    bystander = _started(subprocess.Popen([sys.executable, "-c", _SLEEPER]))
    try:
        assert is_prefect_server(server.pid) and not is_prefect_server(bystander.pid)
        outcome: list[bool] = []
        watcher = threading.Thread(target=lambda: outcome.append(watch(run.pid, server.pid, poll_s=0.05)))
        watcher.start()
        time.sleep(0.3)
        assert server.poll() is None  # the run is alive: the server is left alone
        run.kill()
        run.wait()
        watcher.join(timeout=10)
        assert outcome == [True] and _gone(server, 5)
        # a process id that no longer runs the server (reused) is never touched
        other_run = subprocess.Popen([sys.executable, "-c", _SLEEPER])
        other_run.kill()
        other_run.wait()
        assert watch(other_run.pid, bystander.pid, poll_s=0.05) is False
        assert bystander.poll() is None
    finally:
        for process in (run, server, bystander):
            if process.poll() is None:
                process.kill()
                process.wait()


def _processes(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_a_run_killed_with_sigkill_leaves_no_prefect_server(tmp_path: Path) -> None:
    env = {**os.environ, "CALLCYCLE_MODELS": str(MODELS), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    before = set(_processes("prefect.server.api.server"))
    run = subprocess.Popen([sys.executable, "-m", "cli", "run", str(ROOT / "labels" / "calls"), "--out",
                            str(tmp_path / "out")], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        watchdogs: list[int] = []
        while not watchdogs and time.monotonic() < deadline and run.poll() is None:
            watchdogs = [p for p in _processes("flows.server_watchdog")
                         if f" {run.pid} ".encode() in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")]
            time.sleep(0.2)
        assert watchdogs, "the run started no watchdog for its temporary server"
        servers = set(_processes("prefect.server.api.server")) - before
        assert servers
        run.send_signal(signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 15
        while set(_processes("prefect.server.api.server")) & servers and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not set(_processes("prefect.server.api.server")) & servers, "the temporary server outlived its run"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
