"""`callcycle run` against a real `prefect server start` on 127.0.0.1 (no temporary API per run).

Slow: starting a Prefect server (database migrations) takes well over 30 s on a small machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import MODELS, ROOT, numbered_transcripts

from flows.local_server import local_prefect_server

pytestmark = pytest.mark.slow


def _flow_runs(api: str, what: str = "flow_runs") -> list[dict]:
    request = urllib.request.Request(f"{api}/{what}/filter", data=json.dumps({"limit": 50}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def _children(pid: int) -> list[str]:
    """Command lines of the processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_run_reports_to_a_real_server_and_starts_no_temporary_api(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    transcript = tmp_path / "in" / "notes.json"
    transcript.parent.mkdir()
    transcript.write_text(json.dumps({"call_id": "notes-1", "turns": [
        {"speaker": "Priya", "text": "What would a good outcome look like for your team this quarter?"},
        {"speaker": "Tom", "text": "Honestly we just need the invoices out on time."},
        {"speaker": "Priya", "text": "Okay. I'll send you a pilot plan by Thursday."}]}))
    with local_prefect_server(home) as api:
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "client-home")}
        env.pop("PREFECT_LOGGING_LEVEL", None)  # the CLI's own choice, as a user gets it (conftest sets one)
        cmd = [sys.executable, "-m", "cli", "run", str(transcript), "--out", str(tmp_path / "out"),
               "--models", str(MODELS), "--no-report", "--no-summary"]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        spawned: set[str] = set()
        while proc.poll() is None:  # watch for a temporary API server being spawned by the run
            spawned.update(c for c in _children(proc.pid) if "uvicorn" in c or "prefect.server" in c)
            time.sleep(0.1)
        output = proc.stdout.read().decode() if proc.stdout else ""
        wall = time.monotonic() - started
        assert proc.returncode == 0, output
        assert not spawned, spawned
        runs = _flow_runs(api)
        logs = [entry["message"] for entry in _flow_runs(api, "logs")]
        # a run in which an input failed says so on the server ("Completed with failures", with a count)
        broken = transcript.parent / "broken.json"
        broken.write_text("{ nope")
        failing = subprocess.run([*cmd[:5], str(broken), *cmd[5:]], cwd=ROOT, env=env, capture_output=True,
                                 text=True, timeout=300)
        assert failing.returncode == 1, failing.stdout + failing.stderr
        after = [r for r in _flow_runs(api) if r["name"] and r["flow_id"] and r["id"] not in {x["id"] for x in runs}]
        # Ctrl-C mid-run: the server's record of the run is set Cancelled, not left Running for ever
        import signal

        many, out = numbered_transcripts(tmp_path / "many", 40), tmp_path / "out-interrupted"
        interrupted = subprocess.Popen([*cmd[:4], str(many), "--out", str(out), *cmd[7:]], cwd=ROOT, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(out.glob("calls/part-*.parquet"))) < 2:
            time.sleep(0.05)
        interrupted.send_signal(signal.SIGINT)
        said = interrupted.communicate(timeout=60)[0].decode()
        assert interrupted.returncode == 130 and "interrupted (Ctrl-C)" in said, said
        known = {x["id"] for x in runs} | {x["id"] for x in after}
        stopped = [r for r in _flow_runs(api) if r["name"] and r["flow_id"] and r["id"] not in known]
    assert [r["state_type"] for r in stopped] == ["CANCELLED"], stopped
    assert [(r["state_type"], r["state_name"]) for r in after] == [("COMPLETED", "Completed with failures")], after
    assert after[0]["state"]["message"].startswith("1 of 2 inputs failed"), after
    assert [r["state_type"] for r in runs if r["name"] and r["flow_id"]] == ["COMPLETED"], runs
    assert "1 scored" in output
    # the server keeps the run's logs (the terminal does not show them)
    assert any("notes.json: scored" in message for message in logs), logs
    assert "Beginning flow run" not in output and "Finished in state" not in output, output
    print(f"callcycle run against a server: {wall:.1f} s")


def _server_pids(port: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and "server start" in cmdline and f"--port {port}" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_a_server_that_dies_mid_run_stops_it_with_a_clear_error_and_keeps_what_was_committed(tmp_path: Path) -> None:
    """The configured server is killed once the run has committed calls: the run ends promptly with exit 2 and
    one message (not a traceback after minutes of Prefect retrying every queued event), every call it
    committed stays and is in the report written on the way out (an operator's find, stop 55: no report at
    all), and a later run finishes the batch."""
    import signal
    import threading

    folder, out = numbered_transcripts(tmp_path / "in", 40), tmp_path / "out"
    home = tmp_path / "prefect-home"
    home.mkdir()
    with local_prefect_server(home) as api:
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "client-home"),
               "PREFECT_CLIENT_MAX_RETRIES": "1"}  # Prefect's own back-off is not what this test measures
        cmd = [sys.executable, "-m", "cli", "run", str(folder), "--out", str(out), "--models", str(MODELS),
               "--no-summary"]
        port = int(api.rsplit(":", 1)[1].split("/")[0])
        killed: list[float] = []

        def kill_when_calls_are_committed() -> None:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                if (out / "calls").is_dir() and len(list((out / "calls").glob("part-*.parquet"))) >= 5:
                    break
                time.sleep(0.05)
            for pid in _server_pids(port):
                os.killpg(pid, signal.SIGKILL)
            killed.append(time.monotonic())

        killer = threading.Thread(target=kill_when_calls_are_committed)
        killer.start()
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
        ended = time.monotonic()
        killer.join()
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output
    assert "stopped answering during the run" in output and "everything committed is kept" in output, output
    assert "Traceback" not in output and output.count("cannot deliver this run's events") <= 1, output
    assert killed and ended - killed[0] < 120, ended - killed[0]
    committed = len(list((out / "calls").glob("part-*.parquet")))
    assert committed >= 5
    reported = re.search(r"<title>callcycle report — (\d+) calls</title>", (out / "report.html").read_text())
    assert "Report:" in output and reported and 5 <= int(reported.group(1)) <= committed, output
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400,
                           env={k: v for k, v in env.items() if k != "PREFECT_API_URL"})
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{40 - committed} scored, {committed} skipped" in " ".join(rerun.stdout.split()), rerun.stdout
