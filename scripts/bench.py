"""Benchmark: the callcycle scoring flow against plain faster-whisper, same tracks, one run.

The audio is the fixed speed set of ``scripts/make_bench_calls.py`` (about 21 minutes of
conversational speech in five calls of 4–5 minutes, three stereo and two mono, regenerated
into ``bench-data/`` when missing). Every phase transcribes the same tracks — each distinct
channel of a stereo call separately, as the flow does — and runs in its own child process so
its peak memory (max RSS) is its own:

- ``whisper``: plain ``WhisperModel.transcribe(track)`` with faster-whisper's defaults
  (beam 5, temperature fallback, no VAD, conditioned on previous text);
- ``batched``: ``BatchedInferencePipeline(model).transcribe(track)`` with its defaults
  (beam 5, VAD, batch size 8, no timestamp tokens);
- ``asr``: the flow's own recogniser and nothing else: the model loaded as the flow loads it
  (``[asr]`` options, ``[run] threads`` files at once on threads sharing it) and
  ``transcribe_file`` on every file — the flow's "batched transcription time", against which
  the flow's non-ASR cost is measured (flow wall / asr wall - 1: what reading, diarization,
  turns, classification, scoring, Parquet, model loading and Prefect add, overlap included);
- ``flow``: the whole ``score-calls`` Prefect flow with callcycle's configuration (the
  defaults in ``pipeline/config.py``, or ``--flow-config``), ``--force`` into a fresh folder:
  decode, transcribe, turns, segment, classify, score, Parquet; time per step is measured
  by wrapping the pipeline functions;
- ``text``: the flow over the 28 labelled calls as JSON transcripts (calls scored per
  second), and classification alone over their segments (segments per second).

Word error rate is against the scripts, per channel (a channel's hypothesis against the
turns spoken on it), summed over tracks. All three ASR phases load the same model with the
same compute type (the flow's: ``[asr] model`` of ``--flow-config``, e.g. ``bundled:base``);
``--rounds 2`` interleaves the phases (A B C A B C) and keeps each one's
faster round, so load on a shared machine hits all phases alike.

Usage: python scripts/bench.py [--out bench-out] [--rounds 1] [--flow-config FILE] [--phases ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("whisper", "batched", "asr", "flow", "text")


# --- helpers shared by the phases -------------------------------------------------------

def _tracks(wav: Path) -> list[tuple[int, Any]]:
    """``(channel, samples)`` of each distinct channel, decoded the way the flow decodes."""
    from pipeline.ingest.audio import load_audio
    from pipeline.speech.transcribe import distinct_channels

    audio = load_audio(wav)
    return [(ch, audio.samples[ch]) for ch in distinct_channels(audio)]


def _reference(wav: Path) -> dict[int, str]:
    from make_bench_calls import load_script

    by_channel: dict[int, list[str]] = defaultdict(list)
    for turn in load_script(wav)["turns"]:
        by_channel[turn["channel"]].append(turn["text"])
    return {ch: " ".join(texts) for ch, texts in by_channel.items()}


def _wer(files: list[Path], hyp: dict[tuple[str, int], str]) -> dict[str, float]:
    """Corpus WER over every (file, channel) track, and per file."""
    from pipeline.speech.metrics import word_errors

    total_e = total_n = 0
    per_file = {}
    for wav in files:
        fe = fn = 0
        for ch, ref in _reference(wav).items():
            e, n = word_errors(ref, hyp.get((wav.stem, ch), ""))
            fe, fn = fe + e, fn + n
        per_file[wav.stem] = round(fe / max(1, fn), 4)
        total_e, total_n = total_e + fe, total_n + fn
    return {"wer": round(total_e / max(1, total_n), 4), "wer_per_file": per_file, "ref_words": total_n}


def _model(cfg: Any) -> Any:
    from faster_whisper import WhisperModel

    from pipeline.speech.transcribe import resolve_model_path

    return WhisperModel(resolve_model_path(cfg.model), device=cfg.device, compute_type=cfg.compute_type,
                        cpu_threads=cfg.cpu_threads)


# --- phases (each in its own child process) ----------------------------------------------

def phase_plain(files: list[Path], batched: bool, flow_config: Path | None = None) -> dict:
    """faster-whisper alone with its own defaults; only language and model are set.

    The model (and its device, compute type, threads) is the flow's: ``[asr] model`` of
    ``flow_config`` when given, so a larger model is compared like for like.
    """
    from faster_whisper import BatchedInferencePipeline

    from pipeline.config import AsrConfig, load_config

    flow = load_config(flow_config).asr if flow_config else AsrConfig()
    cfg = AsrConfig(model=flow.model, device=flow.device, compute_type=flow.compute_type,
                    cpu_threads=flow.cpu_threads, language=flow.language)
    t0 = time.perf_counter()
    model = _model(cfg)
    engine = BatchedInferencePipeline(model=model) if batched else model
    load_s = time.perf_counter() - t0
    hyp: dict[tuple[str, int], str] = {}
    decode_s = asr_s = 0.0
    for wav in files:
        t = time.perf_counter()
        tracks = _tracks(wav)
        decode_s += time.perf_counter() - t
        for ch, samples in tracks:
            t = time.perf_counter()
            segments, _ = engine.transcribe(samples, language=cfg.language)
            hyp[(wav.stem, ch)] = " ".join(s.text.strip() for s in segments)
            asr_s += time.perf_counter() - t
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "model_load_s": load_s, "steps": {"decode": decode_s, "asr": asr_s}, **_wer(files, hyp)}


def phase_asr(files: list[Path], flow_config: Path | None = None) -> dict:
    """The flow's recogniser alone: same options, same threads, same files, nothing else."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.config import load_config
    from pipeline.speech.transcribe import load_asr_model, transcribe_file

    cfg = load_config(flow_config)
    threads = cfg.run.threads_for(len(files))
    t0 = time.perf_counter()
    model = load_asr_model(cfg.asr, threads)
    load_s = time.perf_counter() - t0
    order = sorted(files, key=lambda f: -f.stat().st_size)  # as the flow orders them
    with ThreadPoolExecutor(threads) as pool:
        done = dict(zip(order, pool.map(lambda f: transcribe_file(model, f), order)))
    hyp: dict[tuple[str, int], list[str]] = defaultdict(list)
    for wav, result in done.items():
        for piece in sorted(result.pieces, key=lambda p: p.start_s):
            hyp[(wav.stem, piece.channel)].append(piece.text)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "model_load_s": load_s, "threads": threads,
            **_wer(files, {k: " ".join(v) for k, v in hyp.items()})}


class _StepTimer:
    """Wraps pipeline functions in place to add up the seconds spent in each step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, module: Any, name: str, step: str) -> None:
        inner = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[step] += time.perf_counter() - t

        setattr(module, name, timed)

    def wrap_generator(self, module: Any, name: str, step: str) -> None:
        inner = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            iterator = iter(inner(*args, **kwargs))
            while True:
                t = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    self.seconds[step] += time.perf_counter() - t
                yield item

        setattr(module, name, timed)


def phase_flow(files: list[Path], out: Path, config_path: Path | None, workers: int) -> dict:
    """The whole scoring flow, with the seconds of each pipeline step."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    import flows.resources as resources
    import pipeline.process as process
    import pipeline.speech.transcribe as transcribe
    from pipeline.store import local as store

    timer = _StepTimer()
    timer.wrap(resources, "load_asr_model", "load_models")
    timer.wrap(resources, "load_artifact", "load_models")
    timer.wrap(resources, "build_sentencizer", "load_models")
    timer.wrap(resources, "load_speaker_model", "load_models")
    timer.wrap(process, "diarize_file", "diarize")
    timer.wrap_generator(transcribe, "iter_audio_blocks", "decode")
    timer.wrap(transcribe, "_distinct", "decode")
    timer.wrap(transcribe, "_transcribe_window", "asr")
    timer.wrap(process, "pieces_to_turns", "turns")
    timer.wrap(process, "segment_turns", "segment")
    timer.wrap(process, "classify_segments", "classify")
    timer.wrap(process, "score_call", "score")
    timer.wrap(process, "build_tables", "tables")
    timer.wrap(store, "write_call", "write")

    import pyarrow.dataset as ds

    from flows.score_flow import run_scoring
    from pipeline.config import load_config

    if out.exists():
        shutil.rmtree(out)
    cfg = load_config(config_path, run__force=True)
    t0 = time.perf_counter()
    summary = run_scoring([str(f) for f in files], out_dir=str(out), config=cfg, workers=workers)
    wall = time.perf_counter() - t0
    rows = ds.dataset(out / "segments").to_table(columns=["call_id", "channel", "start_s", "text"]).to_pylist()
    rows.sort(key=lambda r: r["start_s"])
    hyp: dict[tuple[str, int], list[str]] = defaultdict(list)
    for r in rows:
        hyp[(r["call_id"], r["channel"])].append(r["text"])
    steps = dict(timer.seconds)
    # ASR runs inside the decode generator's consumer, never inside it, so steps do not overlap
    steps["orchestration"] = summary.wall_s - sum(steps.values())
    steps["prefect_startup"] = wall - summary.wall_s
    return {"wall_s": wall, "flow_s": summary.wall_s, "steps": steps, "asr_config": _asdict(cfg.asr),
            "workers": workers, "threads": cfg.run.threads_for(len(files)) if workers <= 1 else 1,
            "scored": summary.count("scored"), "failed": summary.count("failed"),
            **_wer(files, {k: " ".join(v) for k, v in hyp.items()})}


def phase_text(out: Path) -> dict:
    """Text path: labelled calls as transcripts through the flow, and classification alone."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows import resources
    from flows.score_flow import run_scoring
    from pipeline.classify.predict import classify_segments
    from pipeline.config import PipelineConfig, load_config
    from pipeline.ingest.transcripts import parse_transcript
    from pipeline.speech.turns import segment_turns

    folder = out / "transcripts"
    if out.exists():
        shutil.rmtree(out)
    folder.mkdir(parents=True)
    for path in sorted((ROOT / "labels" / "calls").glob("*.json")):
        call = json.loads(path.read_text())
        turns = [{"speaker": t["speaker"], "text": t["text"]} for t in call["turns"]]
        (folder / path.name).write_text(json.dumps({"call_id": call["call_id"], "turns": turns}))
    cfg = load_config(None, run__force=True)
    t0 = time.perf_counter()
    summary = run_scoring([str(folder)], out_dir=str(out / "scored"), config=cfg)
    wall = time.perf_counter() - t0
    artifact, nlp = resources.artifact("models", None), resources.sentencizer()
    segments = []
    for path in sorted(folder.glob("*.json")):
        parsed = parse_transcript(path, words_per_minute=PipelineConfig().segmentation.words_per_minute)
        segments.extend(segment_turns(parsed.turns, parsed.call_id, nlp, cfg.segmentation))
    t = time.perf_counter()
    classify_segments(artifact, segments)
    classify_s = time.perf_counter() - t
    n = summary.count("scored")
    return {"wall_s": wall, "flow_s": summary.wall_s, "calls": n, "calls_per_s_flow": n / summary.wall_s,
            "segments": len(segments), "segments_per_s_classify": len(segments) / classify_s}


def _asdict(obj: Any) -> dict:
    from dataclasses import asdict

    return asdict(obj)


# --- driver ------------------------------------------------------------------------------

def _child(phase: str, files: list[Path], args: argparse.Namespace, env: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--out", str(args.out), "--workers", str(args.workers)]
    if args.flow_config:
        cmd += ["--flow-config", str(args.flow_config)]
    cmd += ["--files", *map(str, files)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {phase:>8}: {result['wall_s']:7.1f} s  peak {result['peak_rss_mib']:.0f} MiB"
          + (f"  WER {result['wer']:.3f}" if "wer" in result else ""), file=sys.stderr, flush=True)
    return result


def _machine() -> dict:
    import ctranslate2
    import faster_whisper

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "platform": platform.platform(), "python": platform.python_version(),
            "faster_whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__,
            "load_avg_at_start": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--rounds", type=int, default=1, help="Interleaved rounds; each phase keeps its fastest.")
    parser.add_argument("--phases", nargs="*", default=list(PHASES), choices=PHASES)
    parser.add_argument("--flow-config", type=Path,
                        help="TOML for the flow phase (default: callcycle's defaults); its [asr] model is also the "
                             "plain phases' model.")
    parser.add_argument("--workers", type=int, default=1, help="Files in flight in the flow phase.")
    parser.add_argument("--prefect-server", action="store_true",
                        help="Also run the flow against a real local `prefect server` (phase flow-server).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "scripts"))

    if args.child:
        if args.child in ("whisper", "batched"):
            result = phase_plain(args.files, batched=args.child == "batched", flow_config=args.flow_config)
        elif args.child == "asr":
            result = phase_asr(args.files, args.flow_config)
        elif args.child == "flow":
            result = phase_flow(args.files, args.out / "flow", args.flow_config, args.workers)
        else:
            result = phase_text(args.out / "text")
        from peak_memory import peak_rss_mib

        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return

    from make_bench_calls import ensure_calls, load_script

    files = ensure_calls("speed", args.data)
    audio_s = sum(load_script(f)["duration_s"] for f in files)
    track_s = sum(load_script(f)["duration_s"] * (2 if load_script(f)["layout"] == "stereo" else 1) for f in files)
    rounds: dict[str, list[dict]] = defaultdict(list)
    with contextlib.ExitStack() as stack:
        server_env = {}
        if args.prefect_server:
            from flows.local_server import local_prefect_server

            home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            server_env = {"PREFECT_API_URL": stack.enter_context(local_prefect_server(home))}
        for r in range(max(1, args.rounds)):
            print(f"round {r + 1}", file=sys.stderr)
            for phase in args.phases:
                rounds[phase].append(_child(phase, files, args))
                if phase == "flow" and server_env:
                    rounds["flow-server"].append(_child("flow", files, args, server_env))
    results = {phase: min(runs, key=lambda x: x["wall_s"]) for phase, runs in rounds.items()}
    for phase, res in results.items():
        if phase != "text":
            res["rtf"] = res["wall_s"] / audio_s
            res["rounds_wall_s"] = [round(x["wall_s"], 2) for x in rounds[phase]]
    report: dict[str, Any] = {"files": len(files), "audio_s": round(audio_s, 1), "track_s": round(track_s, 1),
                              "machine": _machine(), "phases": results}
    if "whisper" in results:
        base = results["whisper"]["wall_s"]
        report["speedup_vs_whisper"] = {p: round(base / r["wall_s"], 3) for p, r in results.items() if p != "text"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    print(_markdown(report))


def _markdown(report: dict) -> str:
    lines = [f"{report['files']} calls, {report['audio_s'] / 60:.1f} min of audio "
             f"({report['track_s'] / 60:.1f} min of tracks), {report['machine']['cpus']} CPUs "
             f"({report['machine']['cpu']}), faster-whisper {report['machine']['faster_whisper']}", "",
             "| phase | wall s | realtime factor | speed-up vs plain | WER | peak RSS MiB |",
             "|---|---|---|---|---|---|"]
    for phase, r in report["phases"].items():
        if phase == "text":
            continue
        speed = report.get("speedup_vs_whisper", {}).get(phase)
        lines.append(f"| {phase} | {r['wall_s']:.1f} | {r['rtf']:.4f} | {f'{speed:.2f}x' if speed else '-'} | "
                     f"{r['wer']:.3f} | {r['peak_rss_mib']:.0f} |")
    for name in ("flow", "flow-server"):
        if name not in report["phases"]:
            continue
        flow = report["phases"][name]
        lines += ["", f"{name} steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in flow["steps"].items())]
        if flow.get("threads", 1) > 1:
            lines.append(f"{name}: steps are summed over {flow['threads']} threads that overlap; "
                         "orchestration is the wall time left over (negative when steps overlap)")
        else:
            non_asr = flow["wall_s"] - flow["steps"].get("asr", 0.0) - flow["steps"].get("decode", 0.0)
            lines.append(f"{name}: non-ASR share (everything but decode + ASR, incl. model loading and Prefect): "
                         f"{non_asr / flow['wall_s']:.1%}")
        if "asr" in report["phases"]:
            asr = report["phases"]["asr"]["wall_s"]
            lines.append(f"{name}: adds {flow['wall_s'] / asr - 1:.1%} to the flow's recognition alone "
                         f"(asr phase, {asr:.1f} s: same model, options and threads)")
    if "text" in report["phases"]:
        t = report["phases"]["text"]
        lines.append(f"text path: {t['calls']} transcripts scored in {t['flow_s']:.2f} s in the flow "
                     f"({t['calls_per_s_flow']:.1f} calls/s); classification {t['segments_per_s_classify']:.0f} "
                     f"segments/s ({t['segments']} segments)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
