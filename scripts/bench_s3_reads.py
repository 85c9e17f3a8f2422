"""What reading the calls table of an ``s3://`` output costs, with and without the readers' snapshot.

Starts moto's S3 server on 127.0.0.1 (a real HTTP server in this process's threads), writes N
synthetic scored calls into a bucket with the real store (``S3Store.write_call``: two data files and
a create-only commit marker per call; default 2,000), then times, median of ``--rounds``, in one run:

- the calls table read with ``snapshots=False`` (every commit marker and every calls object fetched:
  what every read did before);
- the first read with the snapshot (everything fetched, the snapshot written);
- later reads (only the listings of ``commits/`` and ``calls/``);
- a read after ``--changed`` calls had their metadata rewritten in place (``update_call``).

Objects fetched are counted per read. A local moto server has no network latency and no per-request
price, so the time ratio here is a floor: against a real bucket each GET costs a round trip and
$0.0004 per 1,000. Results go to ``<out>/s3_reads.json``.

Usage: python scripts/bench_s3_reads.py [--calls 2000] [--changed 20] [--rounds 3] [--out bench-out/s3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_archive_reads import synthetic_call  # noqa: E402

from pipeline.classify.labels import load_taxonomy  # noqa: E402
from pipeline.ingest.fingerprints import RACY_S  # noqa: E402
from pipeline.score import score_call  # noqa: E402
from pipeline.store import local as store  # noqa: E402
from pipeline.store.s3 import S3Store  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--changed", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "s3")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1"})
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    uri = f"s3://{bucket}/scored"
    try:
        taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
        stamp = store.RunStamp("bench", "cycle-of-value/1", "bundled:tiny.en")
        writer = S3Store(uri)
        started = time.perf_counter()
        for i in range(args.calls):
            source, segments = synthetic_call(i, taxonomy)
            key = store.call_key(source.sha256, stamp, source.kind, store.source_identity(source))
            writer.write_call(key, store.segments_table(key, source, source.call_id, segments, taxonomy),
                              store.calls_table(key, source, source.call_id, score_call(segments, taxonomy),
                                                stamp, 240.0, False, 1.0))
            if i % 500 == 499:
                print(f"  wrote {i + 1} calls ({time.perf_counter() - started:.0f} s)", flush=True)

        built = time.time()
        fetched: list[int] = []
        real_cat = S3Store._cat

        def counting_cat(self, paths):  # type: ignore[no-untyped-def]
            fetched.append(len(paths))
            return real_cat(self, paths)

        S3Store._cat = counting_cat  # type: ignore[method-assign]

        def timed(snapshots: bool, rounds: int) -> tuple[float, int, int]:
            times, rows, gets = [], 0, 0
            for _ in range(rounds):
                fetched.clear()
                t = time.perf_counter()
                rows = S3Store(uri, snapshots=snapshots).read_dataset("calls").num_rows
                times.append(time.perf_counter() - t)
                gets = sum(fetched)
            return statistics.median(times), rows, gets

        results: dict[str, object] = {"calls": args.calls, "rounds": args.rounds, "cpus": os.cpu_count(),
                                      "load_average_start": os.getloadavg()[0]}
        full_s, full_rows, full_gets = timed(False, args.rounds)
        wait = built + RACY_S + 1 - time.time()  # a reader remembers only objects a minute old (the racy rule)
        if wait > 0:
            print(f"  waiting {wait:.0f} s until the newest objects are settled", flush=True)
            time.sleep(wait)
        with tempfile.TemporaryDirectory() as cache:
            os.environ["XDG_CACHE_HOME"] = cache
            first_s, first_rows, first_gets = timed(True, 1)
            warm_s, warm_rows, warm_gets = timed(True, args.rounds)
            ids = sorted(S3Store(uri).read_dataset("calls").column("source_id").to_pylist())
            for source_id in ids[:: max(1, args.calls // max(1, args.changed))][: args.changed]:
                writer.update_call(source_id, {"rep": "rep-renamed"})
            changed_s, changed_rows, changed_gets = timed(True, 1)
        assert full_rows == first_rows == warm_rows == changed_rows == args.calls
        results["calls_table"] = {
            "full_read": {"s": round(full_s, 3), "objects_fetched": full_gets},
            "snapshot_first_read": {"s": round(first_s, 3), "objects_fetched": first_gets},
            "snapshot_read": {"s": round(warm_s, 3), "objects_fetched": warm_gets},
            f"after_{args.changed}_rewritten": {"s": round(changed_s, 3), "objects_fetched": changed_gets},
            "ratio_full_to_snapshot": round(full_s / warm_s, 1),
        }
        results["load_average_end"] = os.getloadavg()[0]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "s3_reads.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
