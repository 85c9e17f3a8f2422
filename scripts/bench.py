"""Benchmark: the callcycle scoring flow vs plain faster-whisper on the same audio, in one run.

Each phase runs in its own child process so peak memory (max RSS) is measured per phase:

- ``whisper``: plain faster-whisper (same model, same options) transcribing every audio
  file as faster-whisper does by default (the file decoded to mono);
- ``pipeline``: the full scoring flow (decode per channel, transcribe, segment, classify,
  score, write Parquet) with ``--force`` into a fresh folder;
- ``pipeline-batched``: the same with faster-whisper's BatchedInferencePipeline.

Reports wall seconds, realtime factor (processing seconds per second of audio; lower is
faster), the pipeline/whisper time ratio and peak memory, as a table and as JSON.

Usage: python scripts/bench.py [--calls data/calls] [--out bench-out] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

AUDIO = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus"}


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO)


def _duration(paths: list[Path]) -> float:
    from pipeline.ingest.audio import load_audio, probe_duration

    total = 0.0
    for p in paths:
        d = probe_duration(p)
        total += d if d else load_audio(p).duration_s
    return total


def phase_whisper(files: list[Path]) -> dict:
    from faster_whisper import WhisperModel

    from pipeline.config import AsrConfig
    from pipeline.speech.transcribe import resolve_model_path

    cfg = AsrConfig()
    t0 = time.perf_counter()
    model = WhisperModel(resolve_model_path(cfg.model), device="cpu", compute_type=cfg.compute_type)
    load_s = time.perf_counter() - t0
    words = 0
    for f in files:
        segments, _ = model.transcribe(str(f), language=cfg.language, beam_size=cfg.beam_size,
                                       vad_filter=cfg.vad_filter, word_timestamps=cfg.word_timestamps,
                                       condition_on_previous_text=False)
        words += sum(len(s.text.split()) for s in segments)
    return {"wall_s": time.perf_counter() - t0, "model_load_s": load_s, "words": words}


def phase_pipeline(files: list[Path], out: Path, batched: bool) -> dict:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    from flows.score_flow import run_scoring
    from pipeline.config import load_config

    if out.exists():
        shutil.rmtree(out)
    cfg = load_config(None, asr__batched=batched, run__force=True)
    t0 = time.perf_counter()
    summary = run_scoring([str(f) for f in files], out_dir=str(out), config=cfg)
    wall = time.perf_counter() - t0
    import pyarrow.dataset as ds

    words = sum(len(t.split()) for t in ds.dataset(out / "segments").to_table(columns=["text"])["text"].to_pylist())
    # summary.wall_s is measured inside the flow; the rest is Prefect's ephemeral API start-up
    return {"wall_s": wall, "flow_s": summary.wall_s, "prefect_startup_s": wall - summary.wall_s,
            "words": words, "scored": summary.count("scored"), "failed": summary.count("failed")}


def _child(phase: str, files: list[Path], out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--out", str(out), "--files", *map(str, files)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=Path, default=Path("data/calls"))
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--repeat", type=int, default=1, help="Repeat each phase and keep the fastest.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.child == "whisper":
            result = phase_whisper(args.files)
        else:
            result = phase_pipeline(args.files, args.out / args.child, args.child.endswith("batched"))
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    files = _audio_files(args.calls)
    if not files:
        raise SystemExit(f"No audio files under {args.calls}.")
    audio_s = _duration(files)
    results: dict[str, dict] = {}
    for phase in ("whisper", "pipeline", "pipeline-batched"):
        runs = [_child(phase, files, args.out) for _ in range(max(1, args.repeat))]
        results[phase] = min(runs, key=lambda r: r["wall_s"])
        results[phase]["rtf"] = results[phase]["wall_s"] / audio_s
        print(f"{phase:>17}: {results[phase]['wall_s']:7.1f} s  RTF {results[phase]['rtf']:.3f}  "
              f"peak {results[phase]['peak_rss_mib']:.0f} MiB", flush=True)
    report = {
        "files": len(files), "audio_s": round(audio_s, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "phases": results,
        "ratio_pipeline_vs_whisper": results["pipeline"]["wall_s"] / results["whisper"]["wall_s"],
        "ratio_batched_vs_whisper": results["pipeline-batched"]["wall_s"] / results["whisper"]["wall_s"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    print(f"\n{len(files)} files, {audio_s:.1f} s of audio, {os.cpu_count()} CPUs")
    print("| phase | wall s | realtime factor | peak RSS MiB |\n|---|---|---|---|")
    for phase, r in results.items():
        extra = f" (in flow {r['flow_s']:.1f} s)" if "flow_s" in r else ""
        print(f"| {phase} | {r['wall_s']:.1f}{extra} | {r['rtf']:.3f} | {r['peak_rss_mib']:.0f} |")
    print(f"\npipeline / plain faster-whisper: {report['ratio_pipeline_vs_whisper']:.2f}x; "
          f"batched pipeline / plain: {report['ratio_batched_vs_whisper']:.2f}x  (written to {args.out}/bench.json)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
