"""A nightly re-run over an archive that is already scored: what it costs before any new call is scored.

Two measurements, each like against like in one run:

1. **Discovery** over audio-sized files (seeded noise WAVs, never scored here): every byte hashed
   (``--rehash``; what every run did before the fingerprint cache) against the fingerprints remembered
   by an earlier run (``pipeline.ingest.fingerprints``). When the script may drop the page cache
   (root on Linux) each timing starts with a cold cache, as a nightly run over a large archive does.
2. **The whole no-op run**: ``callcycle run ARCHIVE --out OUT --no-summary --no-report`` over transcripts
   that are all scored already (the labelled calls, copied ``--copies`` times with distinct bytes), in a
   new process each: this checkout with its defaults, this checkout with ``--rehash``, and optionally
   another checkout (``--baseline``, e.g. a ``git worktree`` of an older commit) run the same way.

    python scripts/bench_nightly.py --out bench-out/nightly [--baseline /path/to/worktree]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.ingest.discover import discover_inputs  # noqa: E402
from pipeline.ingest.fingerprints import RACY_S, FingerprintCache  # noqa: E402


def drop_page_cache() -> bool:
    """Empty the kernel's page cache so the next read comes from the disk; False when not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def make_audio(folder: Path, files: int, megabytes: float, seed: int = 7) -> int:
    """``files`` 16-bit mono 16 kHz WAVs of seeded noise, ``megabytes`` each; returns total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = int(megabytes * 1e6 / 2)
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(files):
        path = folder / f"call-{i:04d}.wav"
        if not path.exists() or path.stat().st_size < frames * 2:
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(16000)
                out.writeframes(rng.integers(-2000, 2000, frames, dtype=np.int16).tobytes())
        total += path.stat().st_size
    return total


def make_transcripts(folder: Path, copies: int) -> int:
    """The labelled calls (``labels/calls``) copied ``copies`` times, each copy's bytes distinct."""
    folder.mkdir(parents=True, exist_ok=True)
    calls = sorted((ROOT / "labels" / "calls").glob("*.json"))
    for i in range(copies):
        for call in calls:
            target = folder / f"n{i:02d}-{call.name}"
            if not target.exists():
                target.write_text(call.read_text(encoding="utf-8") + " " * (i + 1), encoding="utf-8")
    return copies * len(calls)


def time_discovery(folder: Path, cache_path: Path | None, cold: bool) -> tuple[float, int, int]:
    """Seconds to discover ``folder``, and the cache's hits and misses."""
    if cold:
        drop_page_cache()
    started = time.perf_counter()
    if cache_path is None:
        sources, errors = discover_inputs([str(folder)])
        hits = misses = 0
    else:
        with FingerprintCache(cache_path) as cache:
            sources, errors = discover_inputs([str(folder)], fingerprints=cache)
            hits, misses = cache.hits, cache.misses
    seconds = time.perf_counter() - started
    assert not errors, errors
    return seconds, hits, misses


def run_cli(checkout: Path, args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """``(wall seconds, the flow's own seconds from its last line, output)`` of one CLI run."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cli", "run", *args], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"callcycle run failed in {checkout}:\n{text[-3000:]}")
    match = re.search(r"(\d+) scored, (\d+) skipped.*? in ([\d.]+) s", " ".join(text.split()))
    if not match:
        raise SystemExit(f"no summary line in the output of {checkout}:\n{text[-2000:]}")
    return wall, float(match.group(3)), match.group(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "nightly")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data" / "nightly",
                        help="where the generated archive lives (regenerated when missing)")
    parser.add_argument("--audio-files", type=int, default=100)
    parser.add_argument("--audio-mb", type=float, default=20.0, help="size of each audio file (MB)")
    parser.add_argument("--copies", type=int, default=15, help="copies of the 28 labelled calls (transcripts)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to run the no-op run with")
    args = parser.parse_args()
    args.out, args.data = args.out.resolve(), args.data.resolve()  # the runs below start in other folders
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}

    audio = args.data / "audio"
    total = make_audio(audio, args.audio_files, args.audio_mb)
    cold = drop_page_cache()
    results["page_cache_dropped"] = cold
    print(f"audio: {args.audio_files} files, {total / 1e9:.2f} GB; page cache dropped before each timing: {cold}")
    with tempfile.TemporaryDirectory() as scratch:
        cache_path = Path(scratch) / "sha256.sqlite3"
        newest = max(max(p.stat().st_mtime, p.stat().st_ctime) for p in audio.iterdir())
        time.sleep(max(0.0, RACY_S + 1 - (time.time() - newest)))  # fresh files are not remembered (RACY_S)
        first, _, misses = time_discovery(audio, cache_path, cold)  # fills the cache: every file hashed
        rehash = [time_discovery(audio, None, cold)[0] for _ in range(args.repeats)]
        remembered = []
        for _ in range(args.repeats):
            seconds, hits, _ = time_discovery(audio, cache_path, cold)
            assert hits == args.audio_files, hits
            remembered.append(seconds)
    discovery = {"files": args.audio_files, "bytes": total, "first_run_s": first, "first_run_hashed": misses,
                 "rehash_s": rehash, "remembered_s": remembered,
                 "ratio": statistics.median(rehash) / statistics.median(remembered)}
    results["discovery"] = discovery
    print(f"discovery: every byte hashed {statistics.median(rehash):.2f} s (median of {args.repeats}), "
          f"fingerprints remembered {statistics.median(remembered):.3f} s: {discovery['ratio']:.0f}x")

    archive = args.data / "transcripts"
    n_calls = make_transcripts(archive, args.copies)
    out = args.out / "scored"
    env = {**os.environ, "COLUMNS": "100"}
    checkouts = {"this checkout": (ROOT, [])}
    checkouts["this checkout, --rehash"] = (ROOT, ["--rehash"])
    if args.baseline:
        checkouts[f"baseline {args.baseline.name}"] = (args.baseline.resolve(), [])
    first_line = run_cli(ROOT, [str(archive), "--out", str(out), "--no-summary", "--no-report"], env)[2]
    print(f"archive: {n_calls} transcripts; first run (scores what is not stored yet): {first_line}")
    noop: dict[str, dict[str, object]] = {}
    for _ in range(args.repeats):  # interleaved, so a busy spell hits every variant alike
        for name, (checkout, extra) in checkouts.items():
            wall, flow_s, line = run_cli(checkout, [str(archive), "--out", str(out), "--no-summary", "--no-report",
                                                    *extra], env)
            assert f"0 scored, {n_calls} skipped" in line, line
            entry = noop.setdefault(name, {"wall_s": [], "flow_s": []})
            entry["wall_s"].append(wall)  # type: ignore[union-attr]
            entry["flow_s"].append(flow_s)  # type: ignore[union-attr]
    results["noop_run"] = {"calls": n_calls, **noop}
    for name, entry in noop.items():
        print(f"no-op run, {name}: wall {statistics.median(entry['wall_s']):.1f} s, "  # type: ignore[arg-type]
              f"flow {statistics.median(entry['flow_s']):.2f} s (medians of {args.repeats})")  # type: ignore[arg-type]
    (args.out / "nightly.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"written: {args.out / 'nightly.json'}")


if __name__ == "__main__":
    main()
