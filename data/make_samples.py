"""Regenerate the sample calls in data/calls/ from the scripts in data/scripts/.

Each script (``data/scripts/<call_id>.json``) lists speakers (espeak-ng voice, channel,
role) and labelled turns. Audio layouts are synthesised turn by turn with espeak-ng, laid
on a timeline with short pauses (seeded, so output is reproducible), and encoded with
PyAV: ``stereo`` puts each speaker on their own channel (channel 0 = rep), ``mono`` mixes
everyone into one channel. ``json`` and ``vtt`` layouts are written as transcripts with
timings estimated at 150 words per minute. ``calls.csv`` gets each call's rep, customer and
date, and ``<call_id>.timing.json`` next to the script records when each turn was placed.

Usage: python data/make_samples.py      (needs espeak-ng on PATH)
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "scripts"
CALLS = HERE / "calls"
RATE = 16_000
WORDS_PER_MINUTE = 150
ESPEAK_SPEED = 160


def synthesize(text: str, voice: str, workdir: Path) -> np.ndarray:
    """Speak ``text`` with espeak-ng; returns float32 mono samples at 16 kHz."""
    wav_path = workdir / "turn.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(ESPEAK_SPEED), "-w", str(wav_path), text], check=True)
    with wave.open(str(wav_path)) as handle:
        rate = handle.getframerate()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    if rate != RATE:  # espeak-ng speaks at 22.05 kHz; linear interpolation is enough for speech
        positions = np.arange(0, len(samples), rate / RATE)
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    return samples


def render_audio(script: dict, workdir: Path) -> tuple[np.ndarray, list[dict]]:
    """Lay the turns on a timeline; returns (channels x samples, timing records)."""
    rng = random.Random(script["call_id"])
    speakers = script["speakers"]
    n_channels = 2 if script["layout"] == "stereo" else 1
    pieces, timing, cursor = [], [], 0.5
    for turn in script["turns"]:
        spec = speakers[turn["speaker"]]
        audio = synthesize(turn["text"], spec["voice"], workdir)
        channel = spec["channel"] if n_channels == 2 else 0
        start = cursor
        pieces.append((channel, int(start * RATE), audio))
        end = start + len(audio) / RATE
        timing.append({"speaker": turn["speaker"], "channel": channel, "start": round(start, 3), "end": round(end, 3)})
        cursor = end + rng.uniform(0.3, 0.8)
    total = int((cursor + 0.5) * RATE)
    out = np.zeros((n_channels, total), dtype=np.float32)
    for channel, offset, audio in pieces:
        out[channel, offset : offset + len(audio)] += 0.8 * audio
    return np.clip(out, -1, 1), timing


def encode(samples: np.ndarray, path: Path, *, codec: str | None = None, rate: int | None = None,
           bit_rate: int | None = None) -> None:
    """Encode float samples (16 kHz, channels x n) with PyAV.

    The codec follows the file extension unless ``codec`` names one (``pcm_mulaw`` for telephone
    audio); ``rate`` is the output sample rate (default 16 kHz, 48 kHz for Opus, which runs at no
    other rate) and ``bit_rate`` the encoder's target in bits per second (codec default if ``None``).
    Frames are cut at the codec's own frame size; the decoded audio does not depend on that cut.
    """
    import av

    codec = codec or {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus",
                      ".m4a": "aac"}[path.suffix]
    layout = "stereo" if samples.shape[0] == 2 else "mono"
    out_rate = rate or (48_000 if codec == "libopus" else RATE)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=out_rate)
        stream.layout = layout
        if bit_rate:
            stream.bit_rate = bit_rate
        formats = [f.name for f in stream.codec.audio_formats] if stream.codec.audio_formats else ["s16"]
        stream.format = "s16" if "s16" in formats else ("fltp" if "fltp" in formats else formats[0])
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=out_rate)
        frame_size = 960 if codec == "libopus" else 1152 if codec == "libmp3lame" else 1024
        step = frame_size * RATE // out_rate if out_rate != RATE else frame_size
        for start in range(0, samples.shape[1], step):
            chunk = np.ascontiguousarray(samples[:, start : start + step], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = RATE
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    container.mux(packet)
        for converted in resampler.resample(None):
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def estimated_timing(script: dict) -> list[dict]:
    """Turn timings for transcript layouts: words at 150 wpm plus half-second pauses."""
    clock, timing = 0.0, []
    for turn in script["turns"]:
        length = len(turn["text"].split()) * 60 / WORDS_PER_MINUTE
        timing.append({"speaker": turn["speaker"], "channel": None, "start": round(clock, 2),
                       "end": round(clock + length, 2)})
        clock += length + 0.5
    return timing


def _vtt_time(seconds: float) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:06.3f}"


def write_transcript(script: dict, path: Path, timing: list[dict]) -> None:
    if path.suffix == ".json":
        turns = [{"speaker": t["speaker"], "text": t["text"], "start": tm["start"], "end": tm["end"]}
                 for t, tm in zip(script["turns"], timing)]
        path.write_text(json.dumps({"call_id": script["call_id"], "turns": turns}, indent=2) + "\n")
    else:
        cues = [f"{i}\n{_vtt_time(tm['start'])} --> {_vtt_time(tm['end'])}\n<v {t['speaker']}>{t['text']}\n"
                for i, (t, tm) in enumerate(zip(script["turns"], timing), start=1)]
        path.write_text("WEBVTT\n\n" + "\n".join(cues))


def main() -> None:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: run `apt-get install espeak-ng` and try again.")
    CALLS.mkdir(exist_ok=True)
    rows = []
    for script_path in sorted(SCRIPTS.glob("*.json")):
        if script_path.name.endswith(".timing.json"):
            continue
        script = json.loads(script_path.read_text())
        layout = script["layout"]
        if layout in {"stereo", "mono"}:
            target = CALLS / f"{script['call_id']}.{script['format']}"
            with tempfile.TemporaryDirectory() as tmp:
                samples, timing = render_audio(script, Path(tmp))
            encode(samples, target)
        else:
            target = CALLS / f"{script['call_id']}.{layout}"
            timing = estimated_timing(script)
            write_transcript(script, target, timing)
        (SCRIPTS / f"{script['call_id']}.timing.json").write_text(json.dumps(timing, indent=1) + "\n")
        rows.append({"path": target.name, "rep": script["rep"], "customer": script["customer"], "date": script["date"]})
        print(f"{target.relative_to(HERE.parent)}: {layout}, {timing[-1]['end']:.1f} s")
    with open(CALLS / "calls.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "rep", "customer", "date"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
