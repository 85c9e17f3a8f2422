"""Generate a long stereo call recording (default one hour) for memory and robustness checks.

Speech clips synthesised with espeak-ng are placed every ``--every`` seconds, alternating
between channel 0 (rep) and channel 1 (customer), over a quiet noise floor (a line hiss, not
digital silence). The WAV is written block by block, so generating it needs little memory.

Usage: python scripts/make_long_call.py OUT.wav [--minutes 60] [--every 60]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

RATE = 16_000
PHRASES = [
    "Thanks for making time today. What would success look like for your team this quarter?",
    "Honestly the main problem is that invoices go out late and nobody trusts the totals.",
    "Last month the rollout slipped because nobody owned the data export.",
    "I will send you the revised proposal by Thursday, and can you book the review for Monday?",
    "Sure, I will book it for Monday at ten and bring our finance lead.",
    "Looking back, the pilot worked for the warehouse team but not for the stores.",
]


def _clip(text: str, voice: str, folder: Path) -> np.ndarray:
    path = folder / "clip.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
        rate = w.getframerate()
    # espeak writes 22.05 kHz; resample linearly to 16 kHz
    n = int(len(data) * RATE / rate)
    return np.interp(np.linspace(0, len(data) - 1, n), np.arange(len(data)), data).astype(np.float32)


def make_long_call(out: Path, minutes: float = 60.0, every_s: float = 60.0, seed: int = 7) -> Path:
    """Write the recording to ``out`` and return its path."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        clips = [_clip(t, "en-us" if i % 2 == 0 else "en-gb-x-rp", Path(tmp)) for i, t in enumerate(PHRASES)]
    total = int(minutes * 60 * RATE)
    block = int(every_s * RATE)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        for i, start in enumerate(range(0, total, block)):
            n = min(block, total - start)
            data = rng.normal(0, 0.003, size=(2, n)).astype(np.float32)
            clip = clips[i % len(clips)]
            ch = i % 2
            m = min(len(clip), n - RATE)
            if m > 0:
                data[ch, RATE:RATE + m] += clip[:m] * 0.8
            w.writeframes((np.clip(data, -1, 1) * 32767).astype(np.int16).T.tobytes())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between speech clips")
    args = parser.parse_args()
    path = make_long_call(args.out, args.minutes, args.every)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB, {args.minutes:.0f} min)")


if __name__ == "__main__":
    main()
