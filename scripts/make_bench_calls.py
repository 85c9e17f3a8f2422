"""Generate the benchmark calls: conversational speech rendered from the labelled calls.

The speed benchmark (``scripts/bench.py``) and the stability benchmark
(``scripts/bench_stability.py``) need a fixed, regenerable set of calls with known scripts.
The labelled calls in ``labels/calls/`` are real-sounding conversations with a stage and a
talk/action label per turn; this script speaks them with espeak-ng (two voices), lays the
turns on a timeline with short seeded pauses (continuous conversation, not a sentence a
minute) and writes 16 kHz WAV files plus a ``.script.json`` per call (turns with channel,
start, end, text and labels) into ``bench-data/`` (git-ignored; a cache, regenerated when
missing).

Sets:

- ``speed``: 5 calls of about 4–6 minutes (two labelled calls each), 3 stereo (rep on
  channel 0, everyone else on channel 1) and 2 mono: about 25 minutes of audio;
- ``stability``: 4 single labelled calls of about 2 minutes, stereo.

Usage: python scripts/make_bench_calls.py [--set speed|stability|all] [--out bench-data]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.make_samples import RATE, synthesize  # noqa: E402  (one synthesiser for samples and benchmarks)

LABELLED = ROOT / "labels" / "calls"
#: Voices: the rep and everyone else (espeak-ng voice names).
VOICES = {"rep": "en-us", "other": "en-gb-x-rp"}
#: Pause between turns, seconds (uniform, seeded per call): a conversation, not a sentence a minute.
PAUSE_S = (0.15, 0.6)

#: name -> (labelled calls concatenated, layout)
SETS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "speed": {
        "bench-01-stereo": (("fc-01-discovery-logistics", "fc-02-demo-dental"), "stereo"),
        "bench-02-mono": (("fc-03-negotiation-construction", "fc-04-renewal-hr-software"), "mono"),
        "bench-03-stereo": (("fc-05-pipeline-review-cybersecurity", "fc-06-coaching-insurance"), "stereo"),
        "bench-04-mono": (("fc-08-winloss-hospital-supplies", "fc-09-partner-payments"), "mono"),
        "bench-05-stereo": (("fc-12-demo-fleet-telematics", "fc-13-negotiation-legal-services"), "stereo"),
    },
    "stability": {
        "stab-01": (("fc-14-renewal-restaurant-pos",), "stereo"),
        "stab-02": (("fc-21-discovery-agritech",), "stereo"),
        "stab-03": (("fc-24-renewal-edtech",), "stereo"),
        "stab-04": (("fc-27-coaching-sdr-software",), "stereo"),
    },
}


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import wave

    data = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data.T.tobytes())
    tmp.replace(path)


def render_call(name: str, sources: tuple[str, ...], layout: str, out_dir: Path) -> dict:
    """Speak the turns of ``sources`` one after another; writes ``name.wav`` and ``name.script.json``."""
    rng = random.Random(name)
    turns = [t for src in sources for t in json.loads((LABELLED / f"{src}.json").read_text())["turns"]]
    n_channels = 2 if layout == "stereo" else 1
    placed, cursor = [], 0.5
    with tempfile.TemporaryDirectory() as tmp:
        for turn in turns:
            is_rep = turn["role"] == "rep"
            audio = synthesize(turn["text"], VOICES["rep" if is_rep else "other"], Path(tmp))
            channel = (0 if is_rep else 1) if n_channels == 2 else 0
            start = cursor
            placed.append((channel, int(start * RATE), audio, turn, start, start + len(audio) / RATE))
            cursor = start + len(audio) / RATE + rng.uniform(*PAUSE_S)
    samples = np.zeros((n_channels, int((cursor + 0.5) * RATE)), dtype=np.float32)
    script_turns = []
    for channel, offset, audio, turn, start, end in placed:
        samples[channel, offset: offset + len(audio)] += 0.8 * audio
        script_turns.append({"speaker": turn["speaker"], "role": turn["role"], "channel": channel,
                             "start": round(start, 3), "end": round(end, 3), "text": turn["text"],
                             "stage": turn["stage"], "talk_action": turn["talk_action"]})
    _write_wav(out_dir / f"{name}.wav", samples)
    script = {"call_id": name, "layout": layout, "sources": list(sources),
              "duration_s": round(samples.shape[1] / RATE, 3), "turns": script_turns}
    (out_dir / f"{name}.script.json").write_text(json.dumps(script, indent=1) + "\n")
    return script


def ensure_calls(which: str, out_dir: Path) -> list[Path]:
    """WAV paths of set ``which``, rendering any that are missing (needs espeak-ng)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (sources, layout) in SETS[which].items():
        wav = out_dir / f"{name}.wav"
        if not (wav.is_file() and (out_dir / f"{name}.script.json").is_file()):
            if shutil.which("espeak-ng") is None:
                raise SystemExit("espeak-ng is not installed: run `apt-get install espeak-ng` and try again.")
            script = render_call(name, sources, layout, out_dir)
            print(f"{wav}: {layout}, {script['duration_s']:.1f} s", file=sys.stderr)
        paths.append(wav)
    return paths


def load_script(wav: Path) -> dict:
    """The ``.script.json`` written next to a benchmark call."""
    return json.loads(wav.with_suffix(".script.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=[*SETS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()
    for which in (SETS if args.set == "all" else [args.set]):
        for path in ensure_calls(which, args.out):
            print(path)


if __name__ == "__main__":
    main()
