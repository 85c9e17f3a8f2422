"""A new classifier over an archive already scored: stored segments classified again against a fresh read.

Like against like in one process, on the same calls (default: the samples in ``data/calls``), with the
speech, speaker, role and classifier models loaded once before any timing:

1. every call is scored into ``A`` as if by an older classifier (the shipped artifact under another version
   name, so the stored keys differ only in the classifier);
2. **fresh**: every call is read (decoded, transcribed, diarized, segmented), classified and written into a
   new output ``B`` by the shipped classifier — what a promotion cost before ``pipeline/rescore.py``;
3. **from stored segments**: the same classifier over ``A``, where each call's stored segments are
   classified again (``process.rescore_stored``).

The rows of 2 and 3 are compared (all columns but ``processed_at`` and ``processing_s``).

    python scripts/bench_rescore.py --out bench-out/rescore [--inputs data/calls] [--rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import process  # noqa: E402
from pipeline.classify.artifacts import load_artifact  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.ingest.discover import discover_inputs  # noqa: E402
from pipeline.paths import models_dir  # noqa: E402
from pipeline.speech.diarize import load_speaker_model  # noqa: E402
from pipeline.speech.rolemodel import load_role_model  # noqa: E402
from pipeline.speech.transcribe import load_asr_model  # noqa: E402
from pipeline.speech.turns import build_sentencizer  # noqa: E402
from pipeline.store import local as store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default=str(ROOT / "data" / "calls"))
    parser.add_argument("--out", default=str(ROOT / "bench-out" / "rescore"))
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each (the median is reported)")
    args = parser.parse_args()
    config = PipelineConfig()
    artifact = load_artifact(models_dir(None))
    older = dataclasses.replace(artifact, version=artifact.version + "-older")
    asr = load_asr_model(config.asr)
    models = {"asr": asr, "nlp": build_sentencizer(config.segmentation.unpunctuated_model,
                                                   config.segmentation.unpunctuated_model_path),
              "speaker_model": load_speaker_model(config.diarize.model_path),
              "role_model": load_role_model(config.roles.model_path)}
    sources, bad = discover_inputs([args.inputs])
    if bad or not sources:
        raise SystemExit(f"inputs: {len(sources)} usable, {len(bad)} unusable")

    def score_all(art: object, out: Path) -> tuple[float, int]:
        started = time.perf_counter()
        outcomes = [process.process_source(s, artifact=art, config=config, out_dir=out, **models) for s in sources]
        failed = [o for o in outcomes if o.status != "scored"]
        if failed:
            raise SystemExit(f"not scored: {failed}")
        return time.perf_counter() - started, sum(o.restored for o in outcomes)

    work = Path(tempfile.mkdtemp(prefix="bench-rescore-"))
    fresh_s, again_s, restored = [], [], 0
    try:
        for r in range(args.rounds):
            a, b = work / f"A{r}", work / f"B{r}"
            score_all(older, a)
            seconds, _ = score_all(artifact, b)
            fresh_s.append(seconds)
            seconds, restored = score_all(artifact, a)
            again_s.append(seconds)
            for table in ("calls", "segments"):
                drop = ["processed_at", "processing_s"] if table == "calls" else []
                got, want = (store.read_dataset(o, table).drop_columns(drop).sort_by("call_key") for o in (a, b))
                if not got.equals(want):
                    raise SystemExit(f"{table}: rows from stored segments differ from a fresh read")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    audio_s = sum(s.kind == "audio" for s in sources)
    fresh, again = sorted(fresh_s)[len(fresh_s) // 2], sorted(again_s)[len(again_s) // 2]
    result = {"machine": platform.processor() or platform.machine(), "calls": len(sources), "audio_calls": audio_s,
              "rounds": args.rounds, "fresh_s": fresh_s, "from_stored_s": again_s, "restored": restored,
              "speed_up": round(fresh / again, 1), "rows_equal": True}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "rescore.json").write_text(json.dumps(result, indent=2))
    print(f"{len(sources)} calls ({audio_s} recordings), median of {args.rounds} round(s):")
    print(f"  fresh read + classify: {fresh:.2f} s")
    print(f"  from stored segments:  {again:.2f} s ({restored} of {len(sources)} calls restored)")
    print(f"  ratio: {fresh / again:.1f}x; rows equal: yes")


if __name__ == "__main__":
    main()
