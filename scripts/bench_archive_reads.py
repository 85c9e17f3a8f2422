"""What reading a large output folder costs: the calls table (summary, end-of-run headline, report)
and the segments of the report's most recent calls — before and after, in one run, like for like.

Writes N synthetic scored calls (default 20,000; 40 segments each, with the real store functions and
schemas) into ``--out`` once (kept for later runs), then times, median of ``--rounds``:

- the ``calls`` table read in full (every file opened: what every read did before) against the same
  read through the local store's snapshot (:mod:`pipeline.store.snapshot`), first with no snapshot
  (it is written) and then with one (only the folder is listed and each file stat'ed);
- the segments of the 200 most recent calls: the whole ``segments`` dataset read and filtered (what
  the report did before) against :meth:`LocalStore.read_segments` (those calls' files only).

Usage: python scripts/bench_archive_reads.py [--calls 20000] [--out bench-out/archive] [--rounds 3]
Results go to ``<out>/archive_reads.json``. The page cache is warm (the files were just listed). Files
written less than a minute before are not remembered by a snapshot, so a fresh build waits a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from pipeline.classify.labels import load_taxonomy  # noqa: E402
from pipeline.report.rules import MAX_SCORECARDS, most_recent  # noqa: E402
from pipeline.schema import CallMetadata, ClassifiedSegment, Prediction, Segment, Source  # noqa: E402
from pipeline.score import score_call  # noqa: E402
from pipeline.store import local as store  # noqa: E402
from pipeline.store.snapshot import RACY_S  # noqa: E402

STAGES = ("align", "act", "adjust", "other")


def synthetic_call(i: int, taxonomy) -> tuple[Source, list[ClassifiedSegment]]:  # type: ignore[no-untyped-def]
    sha = f"{i:064x}"
    source = Source(path=f"/archive/{i // 1000:03d}/call-{i:06d}.wav", kind="audio", fmt="wav", sha256=sha,
                    size_bytes=28_800_000, call_id=f"call-{i:06d}",
                    metadata=CallMetadata(f"rep-{i % 40}", f"customer-{i % 997}",
                                          date(2026, 1, 1) + timedelta(days=i % 330)))
    segments = []
    for k in range(40):
        stage = STAGES[(i + k) % 4]
        ta = "action" if stage == "act" and k % 3 else "talk"
        seg = Segment(source.call_id, k, k, "rep" if k % 2 else "customer", None, 6.0 * k, 6.0 * k + 5.5,
                      f"segment {k} of call {i}", None, False, k % 5 == 0)
        segments.append(ClassifiedSegment(seg, Prediction(stage, {stage: 0.8}), Prediction(ta, {ta: 0.7})))
    return source, segments


def build(out: Path, n: int) -> None:
    done = out / ".synthetic-calls"
    if done.is_file() and done.read_text().strip() == str(n):
        return
    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    stamp = store.RunStamp("bench", "cycle-of-value/1", "bundled:tiny.en")
    started = time.perf_counter()
    for i in range(n):
        source, segments = synthetic_call(i, taxonomy)
        key = store.call_key(source.sha256, stamp, source.kind, store.source_identity(source))
        store.write_call(out, key, store.segments_table(key, source, source.call_id, segments, taxonomy),
                         store.calls_table(key, source, source.call_id, score_call(segments, taxonomy), stamp,
                                           240.0, False, 1.0))
        if i % 2000 == 1999:
            print(f"  wrote {i + 1} calls ({time.perf_counter() - started:.0f} s)", flush=True)
    store.retire_old_layout(out)  # as every run does: marks the folder as on the current layout
    done.write_text(f"{n}\n")


def timed(fn, rounds: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "archive")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    out = args.out / "scored"
    build(out, args.calls)
    # a snapshot remembers only files whose times are 60 s old (the racy rule): wait for the newest
    newest = max(max(p.stat().st_mtime, p.stat().st_ctime) for p in (out / "calls").glob("part-*.parquet"))
    wait = newest + RACY_S + 1 - time.time()
    if wait > 0:
        print(f"  waiting {wait:.0f} s until the newest calls file is settled", flush=True)
        time.sleep(wait)
    results: dict[str, object] = {"calls": args.calls, "rounds": args.rounds, "cpus": os.cpu_count(),
                                  "load_average_start": os.getloadavg()[0]}
    full_s, full = timed(lambda: store.read_dataset(out, "calls"), args.rounds)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache  # a fresh snapshot for the "first read" timing
        started = time.perf_counter()
        first = store.LocalStore(out).read_dataset("calls")
        first_s = time.perf_counter() - started
        warm_s, warm = timed(lambda: store.LocalStore(out).read_dataset("calls"), args.rounds)
    assert isinstance(full, pa.Table) and first.equals(full) and isinstance(warm, pa.Table) and warm.equals(full)
    results["calls_table"] = {"full_read_s": round(full_s, 3), "snapshot_first_read_s": round(first_s, 3),
                              "snapshot_read_s": round(warm_s, 4), "ratio_full_to_snapshot": round(full_s / warm_s, 1)}
    rows = full.to_pylist()
    recent = most_recent(rows, MAX_SCORECARDS)
    keys = pa.array(sorted(r["call_key"] for r in recent))
    ids = [r["source_id"] for r in recent]

    def whole() -> pa.Table:
        table = store.read_dataset(out, "segments")
        return table.filter(pc.is_in(table.column("call_key"), value_set=keys))

    whole_s, old = timed(whole, args.rounds)
    only_s, new = timed(lambda: store.LocalStore(out).read_segments(ids), args.rounds)
    assert isinstance(old, pa.Table) and isinstance(new, pa.Table)
    assert sorted(map(str, old.to_pylist())) == sorted(map(str, new.to_pylist()))
    results["report_segments"] = {"scorecards": len(recent), "rows": new.num_rows, "whole_dataset_s": round(whole_s, 3),
                                  "read_segments_s": round(only_s, 3), "ratio": round(whole_s / only_s, 1)}
    results["load_average_end"] = os.getloadavg()[0]
    (args.out / "archive_reads.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
