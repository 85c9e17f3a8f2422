"""Time and memory of the HTML report for one very long call (issue 11: 50,000 segments < 30 s, < 1 GiB).

Writes a synthetic scored call with N segments (two speakers, every stage, talk and action) into an
output folder through the real store, then renders the report in this process and prints wall
seconds and peak resident memory. A second render shows the cost with the timeline cache warm.

Usage: python scripts/report_scale.py [--segments 50000] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from peak_memory import peak_rss_mib  # noqa: E402

from pipeline.classify.labels import load_taxonomy  # noqa: E402
from pipeline.paths import taxonomy_path  # noqa: E402
from pipeline.report.html import write_report  # noqa: E402
from pipeline.schema import CallMetadata, ClassifiedSegment, Prediction, Segment, Source  # noqa: E402
from pipeline.score import score_call  # noqa: E402
from pipeline.store import local as store  # noqa: E402

STAGES = ("align", "act", "adjust", "other")


def write_long_call(out: Path, n: int) -> None:
    taxonomy = load_taxonomy(taxonomy_path())
    segments = []
    t = 0.0
    for i in range(n):
        stage = STAGES[(i // 7) % 4]
        action = stage != "other" and i % 5 == 0
        seg = Segment("long", i, i // 2, "rep" if i % 2 == 0 else "customer", i % 2, t, t + 2.5,
                      f"segment {i}: we will look at item {i % 97} next week", 0.9, True, i % 11 == 0)
        t += 2.7
        probs = {s: (0.7 if s == stage else 0.1) for s in STAGES}
        segments.append(ClassifiedSegment(seg, Prediction(stage, probs),
                                          Prediction("action" if action else "talk",
                                                     {"action": 0.8 if action else 0.2,
                                                      "talk": 0.2 if action else 0.8})))
    source = Source(str(out / "long.json"), "transcript", "json", "ab" * 32, 1, "long",
                    CallMetadata("dana", "acme", date(2026, 11, 2)), source_id="long.json")
    stamp = store.RunStamp("synthetic", f"{taxonomy.name}/{taxonomy.version}", None)
    key = store.call_key(source.sha256, stamp, "transcript", "long.json")
    store.write_call(out, key, store.segments_table(key, source, "long", segments, taxonomy),
                     store.calls_table(key, source, "long", score_call(segments, taxonomy), stamp, None, True, 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="callcycle-report-scale-"))
    write_long_call(out, args.segments)
    started = time.perf_counter()
    path, _ = write_report(out)
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    write_report(out)
    warm_s = time.perf_counter() - started
    peak_mib = peak_rss_mib()
    result = {"segments": args.segments, "render_s": round(cold_s, 2), "rerender_cached_s": round(warm_s, 2),
              "peak_rss_mib": round(peak_mib), "html_mib": round(path.stat().st_size / 2**20, 2)}
    print(json.dumps(result) if args.json else
          f"{args.segments} segments: report in {cold_s:.1f} s (again, timeline cached: {warm_s:.1f} s), "
          f"peak RSS {peak_mib:.0f} MiB, HTML {result['html_mib']} MiB")


if __name__ == "__main__":
    main()
