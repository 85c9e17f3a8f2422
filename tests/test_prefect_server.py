"""`callcycle run` against a real `prefect server start` on 127.0.0.1 (no temporary API per run).

Slow: starting a Prefect server (database migrations) takes well over 30 s on a small machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import MODELS, ROOT

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
    assert [(r["state_type"], r["state_name"]) for r in after] == [("COMPLETED", "Completed with failures")], after
    assert after[0]["state"]["message"].startswith("1 of 2 inputs failed"), after
    assert [r["state_type"] for r in runs if r["name"] and r["flow_id"]] == ["COMPLETED"], runs
    assert "1 scored" in output
    # the server keeps the run's logs (the terminal does not show them)
    assert any("notes.json: scored" in message for message in logs), logs
    assert "Beginning flow run" not in output and "Finished in state" not in output, output
    print(f"callcycle run against a server: {wall:.1f} s")
