"""The labelled calls as audio: how close is a call's score to its gold score once the call is spoken and recognised?

`callcycle evaluate-calls` scores the 28 labelled calls (``labels/calls``) from their written turns, so it
measures the classifiers alone. A manager's figures come from audio: the recogniser mishears words (word
error rate about 0.18 with `tiny.en` on synthetic speech), Whisper's punctuation decides where segments
end, and the classifiers read that text. This script speaks every labelled call with espeak-ng (stereo:
the rep on channel 0, everyone else on channel 1, seeded pauses; ``scripts/make_bench_calls.py``, cached
in ``bench-data/spoken-calls/``), runs the real pipeline once per call (decode, recognise, turns, segment)
and scores the recognised turns with each model given, against the gold labels of the script:

- **action-share error**: |score − gold| per call, where gold is the script's turns with their gold labels
  and spoken durations scored by ``pipeline.score.score_call`` (labels method, as ``callcycle
  evaluate-calls`` scores its gold): action seconds over non-`other` seconds; mean over the calls with a
  95% interval from resampling them;
- **stage-mix error**: the mean over the taxonomy's stages of |share − gold share|, the gold share from
  the same gold score;
- **interval coverage**: how many calls' gold share lies inside the call's stored 90% interval;
- the action-share error of each way of computing the share (``pipeline.score.ACTION_SHARE_METHODS``:
  labels, expected, tempered; the default is what the first error uses).

The models read the same recognised turns, so two models are compared like for like. Each model also
scores the script's own words with the same speakers and seconds (``script text``: no recognition), so
the difference between the two rows is what recognition costs.

Usage: python scripts/eval_spoken_calls.py [--models models] [--model VERSION ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_bench_calls import load_script, render_call  # noqa: E402


def gold_score(script: dict, taxonomy: Any) -> Any:
    """The script's score from its gold labels and spoken seconds, by the pipeline's own scoring rules."""
    from pipeline.schema import ClassifiedSegment, Prediction, Segment
    from pipeline.score import score_call

    stage, talk_action = taxonomy.by_role("stage").name, taxonomy.by_role("talk_action").name
    segments = [ClassifiedSegment(Segment(call_id=script["call_id"], index=i, turn_index=i, speaker=t["speaker"],
                                          channel=t["channel"], start_s=t["start"], end_s=t["end"], text=t["text"],
                                          confidence=None, timing_estimated=False, is_question=False),
                                  Prediction(t[stage], {}), Prediction(t[talk_action], {}))
                for i, t in enumerate(script["turns"])]
    return score_call(segments, taxonomy, method="labels")


def spoken_calls(out_dir: Path) -> list[Path]:
    """The labelled calls as stereo WAV files: rendered when missing, or again when the labelled call's turns
    no longer match the rendered script (an edited call); needs espeak-ng then."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wavs = []
    for path in sorted((ROOT / "labels" / "calls").glob("*.json")):
        wav = out_dir / f"{path.stem}.wav"
        wanted = [(t["text"], t["stage"], t["talk_action"]) for t in json.loads(path.read_text())["turns"]]
        try:
            rendered = [(t["text"], t["stage"], t["talk_action"]) for t in load_script(wav)["turns"]]
        except (OSError, ValueError, KeyError):
            rendered = None
        if not wav.is_file() or rendered != wanted:
            if shutil.which("espeak-ng") is None:
                raise SystemExit("espeak-ng is not installed: run `apt-get install espeak-ng` and try again.")
            render_call(path.stem, (path.stem,), "stereo", out_dir)
        wavs.append(wav)
    return wavs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="models folder (default: the project's)")
    parser.add_argument("--model", action="append", default=None,
                        help="classifier version to score with; repeat for several (default: CURRENT)")
    parser.add_argument("--audio", type=Path, default=ROOT / "bench-data" / "spoken-calls",
                        help="where the spoken calls are rendered (a cache)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    from pipeline.classify.artifacts import load_artifact
    from pipeline.config import load_config
    from pipeline.ingest.discover import discover_inputs
    from pipeline.process import read_call
    from pipeline.speech.transcribe import load_asr_model
    from pipeline.speech.turns import build_sentencizer

    wavs = spoken_calls(args.audio)
    config = load_config(None)
    asr = load_asr_model(config.asr)
    started = time.perf_counter()
    recognised = []
    for n, wav in enumerate(wavs, 1):
        (source,), _ = discover_inputs([str(wav)])
        recognised.append((wav.stem, read_call(source, asr, config), load_script(wav)))
        print(f"recognised {n}/{len(wavs)}: {wav.stem}", file=sys.stderr, flush=True)
    seconds = round(time.perf_counter() - started, 1)
    nlp = build_sentencizer()
    results: dict[str, Any] = {"calls": len(wavs), "recognition_s": seconds, "asr": asdict(config.asr), "models": {}}
    for version in args.model or [None]:
        artifact = load_artifact(args.models, version)
        entry = {"recognised": _scored(recognised, artifact, nlp, config),
                 "script_text": _scored([(name, _script_call(script, call), script)
                                         for name, call, script in recognised], artifact, nlp, config)}
        results["models"][artifact.version] = entry
        for kind, row in entry.items():
            low, high = row["action_share_mae_interval"]
            print(f"{artifact.version}, {kind.replace('_', ' ')}: action-share MAE {row['action_share_mae']:.4f} "
                  f"[{low:.3f}-{high:.3f}], stage-mix MAE {row['stage_mix_mae']:.4f}, gold inside the 90% "
                  f"interval on {row['interval_coverage']} of {len(recognised)} calls; action-share MAE by method: "
                  + ", ".join(f"{m} {v:.4f}" for m, v in row["action_share_mae_by_method"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


def _script_call(script: dict, recognised: Any) -> Any:
    """The call as the script says it: its turns' own words, speakers and seconds (roles as recognised)."""
    from dataclasses import replace

    from pipeline.schema import Turn

    roles = {t.channel: (t.speaker, t.role, t.role_source) for t in recognised.turns}
    turns = []
    for turn in script["turns"]:
        speaker, role, source = roles.get(turn["channel"], (turn["role"], turn["role"], "channel"))
        turns.append(Turn(speaker=speaker, channel=turn["channel"], start_s=turn["start"], end_s=turn["end"],
                          text=turn["text"], role=role, role_source=source))
    return replace(recognised, turns=turns)


def _scored(calls: list[tuple[str, Any, dict]], artifact: Any, nlp: Any, config: Any) -> dict[str, Any]:
    from pipeline.classify.train import mean_interval
    from pipeline.process import score_turns
    from pipeline.score import ACTION_SHARE_METHODS, action_share

    stages = artifact.taxonomy.by_role("stage").labels
    per_call, errors, stage_errors, covered = [], [], [], 0
    by_method: dict[str, list[float]] = {m: [] for m in ACTION_SHARE_METHODS}
    for name, call, script in calls:
        scored = score_turns(call, artifact, nlp, config)
        score, gold = scored.score, gold_score(script, artifact.taxonomy)
        share, gold_share = score.action_share, gold.action_share
        error = None if gold_share is None or share is None else abs(share - gold_share)
        stage_error = float(np.mean([abs(score.stage_shares.get(s, 0.0) - gold.stage_shares.get(s, 0.0))
                                     for s in stages]))
        inside = (gold_share is not None and score.action_share_low is not None
                  and score.action_share_high is not None
                  and score.action_share_low <= gold_share <= score.action_share_high)
        covered += inside
        if error is not None:
            errors.append(error)
            for method, values in by_method.items():
                other = action_share(scored.segments, artifact.taxonomy, method)[0]
                if other is not None:
                    values.append(abs(other - gold_share))
        stage_errors.append(stage_error)
        per_call.append({"call": name, "gold_action_share": gold_share, "action_share": share,
                         "interval": [score.action_share_low, score.action_share_high],
                         "stage_mix_error": round(stage_error, 4)})
    low, high = mean_interval(errors) or (float("nan"), float("nan"))
    return {"action_share_mae": round(float(np.mean(errors)), 4), "action_share_mae_interval": [low, high],
            "stage_mix_mae": round(float(np.mean(stage_errors)), 4), "interval_coverage": covered,
            "action_share_mae_by_method": {m: round(float(np.mean(v)), 4) for m, v in by_method.items() if v},
            "calls": per_call}


if __name__ == "__main__":
    main()
