"""pipeline.atomic.exclusive_lock: processes doing read-merge-write on one file take turns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WORKER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from pipeline.atomic import exclusive_lock, write_bytes_atomic
target, lock, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for i in range(25):
    with exclusive_lock(lock):
        seen = json.loads(target.read_text()) if target.exists() else []
        time.sleep(0.002)  # widen the window between reading and writing
        write_bytes_atomic(target, json.dumps(seen + [f"{{name}}-{{i}}"]).encode())
"""


def test_two_processes_merging_into_one_file_under_the_lock_lose_nothing(tmp_path: Path) -> None:
    """The pattern of scripts/cross_writer.py's save: each process reads the file, adds its entry and
    writes it back. Under the lock all 50 entries survive; without it, writes overwrite each other."""
    script = _WORKER.format(root=str(ROOT))
    target, lock = tmp_path / "results.json", tmp_path / "locks" / "results.lock"
    workers = [subprocess.Popen([sys.executable, "-c", script, str(target), str(lock), name]) for name in "ab"]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    entries = json.loads(target.read_text())
    assert sorted(entries) == sorted(f"{n}-{i}" for n in "ab" for i in range(25))


def test_the_lock_is_held_until_the_block_ends(tmp_path: Path) -> None:
    from pipeline.atomic import exclusive_lock

    lock = tmp_path / "x.lock"
    probe = ("import fcntl, sys\n"
             "with open(sys.argv[1], 'a+b') as f:\n"
             "    try:\n"
             "        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "    except BlockingIOError:\n"
             "        sys.exit(3)\n")
    with exclusive_lock(lock):
        assert subprocess.run([sys.executable, "-c", probe, str(lock)], timeout=60).returncode == 3
    assert subprocess.run([sys.executable, "-c", probe, str(lock)], timeout=60).returncode == 0
