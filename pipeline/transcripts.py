"""Parse text transcripts (canonical JSON, WebVTT, SRT, plain ``Name: text``) into turns.

Turns without timings get durations estimated from their word count (150 words per
minute by default) and are flagged ``timing_estimated``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import TranscriptFormatError
from pipeline.schema import Turn

__all__ = ["ParsedTranscript", "parse_transcript", "parse_transcript_text", "estimate_timings"]

_TS = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_CUE_TIME = re.compile(rf"^\s*{_TS}\s*-->\s*{_TS}")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")
_TAG = re.compile(r"</?[^>]+>")
_PREFIX = re.compile(r"^\s*([A-Z][\w .'\-]{0,40}?|\[[^\]]{1,40}\]|[\w.\-]{1,40})\s*:\s+(.*)$")
UNKNOWN_SPEAKER = "unknown"


@dataclass(frozen=True, slots=True)
class ParsedTranscript:
    """A transcript's call id (when the file names one) and its turns."""

    call_id: str | None
    turns: list[Turn]


def _seconds(groups: tuple[str | None, ...]) -> float:
    hours, minutes, secs, frac = groups
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + int(frac.ljust(3, "0")) / 1000


def _word_seconds(text: str, words_per_minute: float) -> float:
    return max(0.4, len(text.split()) * 60.0 / words_per_minute)


def estimate_timings(
    rows: list[tuple[str, str, float | None, float | None]], words_per_minute: float = 150.0
) -> list[Turn]:
    """Build turns from ``(speaker, text, start, end)``, estimating missing times.

    A turn without a start begins where the previous one ended; a turn without an
    end lasts ``words / words_per_minute``.
    """
    turns: list[Turn] = []
    clock = 0.0
    for speaker, text, start, end in rows:
        estimated = start is None or end is None
        begin = clock if start is None else float(start)
        finish = begin + _word_seconds(text, words_per_minute) if end is None else float(end)
        if finish < begin:
            finish = begin
        turns.append(
            Turn(speaker=speaker, channel=None, start_s=begin, end_s=finish, text=text,
                 timing_estimated=estimated)
        )
        clock = max(clock, finish)
    return turns


def _fail(name: str, what: str, hint: str) -> TranscriptFormatError:
    return TranscriptFormatError(f"{name}: {what}", hint)


def _parse_json(name: str, text: str) -> tuple[str | None, list[tuple[str, str, float | None, float | None]]]:
    hint = 'Expected {"call_id": "...", "turns": [{"speaker": "...", "text": "...", "start": 0.0, "end": 2.5}]}.'
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(name, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.", hint) from exc
    if not isinstance(data, dict):
        raise _fail(name, f"the top level is a {type(data).__name__}, not an object.", hint)
    call_id = data.get("call_id")
    if call_id is not None and not isinstance(call_id, (str, int)):
        raise _fail(name, "'call_id' must be a string.", hint)
    turns = data.get("turns")
    if not isinstance(turns, list):
        raise _fail(name, "no 'turns' list.", hint)
    rows: list[tuple[str, str, float | None, float | None]] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _fail(name, f"turn {i} is a {type(turn).__name__}, not an object.", hint)
        speaker, body = turn.get("speaker", UNKNOWN_SPEAKER), turn.get("text")
        if not isinstance(body, str):
            raise _fail(name, f"turn {i} has no text string.", hint)
        if not isinstance(speaker, (str, int)) or isinstance(speaker, bool):
            raise _fail(name, f"turn {i}: 'speaker' must be a string.", hint)
        times: list[float | None] = []
        for key in ("start", "end"):
            value = turn.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise _fail(name, f"turn {i}: '{key}' must be a number of seconds.", hint)
            if value is not None and (value != value or value < 0 or value == float("inf")):
                raise _fail(name, f"turn {i}: '{key}' must be a finite, non-negative number.", hint)
            times.append(None if value is None else float(value))
        if body.strip():
            rows.append((str(speaker).strip() or UNKNOWN_SPEAKER, body.strip(), times[0], times[1]))
    return (None if call_id is None else str(call_id)), rows


def _speaker_and_text(line: str, current: str) -> tuple[str, str]:
    voice = _VOICE.search(line)
    if voice:
        speaker = voice.group(1).strip()
        return speaker, _TAG.sub("", line).strip()
    clean = _TAG.sub("", line).strip()
    prefix = _PREFIX.match(clean)
    if prefix:
        return prefix.group(1).strip("[] "), prefix.group(2).strip()
    return current, clean


def _parse_cues(name: str, text: str, kind: str) -> list[tuple[str, str, float | None, float | None]]:
    rows: list[tuple[str, str, float | None, float | None]] = []
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    found_cue = False
    for block in blocks:
        lines = [ln for ln in block.split("\n") if ln.strip()]
        for idx, line in enumerate(lines):
            match = _CUE_TIME.match(line)
            if not match:
                continue
            found_cue = True
            start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
            if end < start:
                raise _fail(name, f"a cue ends before it starts ({line.strip()}).",
                            "Fix the cue's timestamps (start --> end, end later than start).")
            speaker = UNKNOWN_SPEAKER
            parts: list[str] = []
            for body in lines[idx + 1 :]:
                speaker, clean = _speaker_and_text(body, speaker)
                if clean:
                    parts.append(clean)
            body_text = " ".join(parts).strip()
            if body_text:
                rows.append((speaker, body_text, start, end))
            break
    if not found_cue:
        raise _fail(name, f"no {kind} cues with timestamps (HH:MM:SS.mmm --> HH:MM:SS.mmm) found.",
                    f"Check that the file is a valid {kind} file.")
    rows.sort(key=lambda r: (r[2] or 0.0))
    return rows


def _parse_plain(text: str) -> list[tuple[str, str, float | None, float | None]]:
    rows: list[tuple[str, str, float | None, float | None]] = []
    speaker = UNKNOWN_SPEAKER
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _PREFIX.match(line)
        if match:
            speaker, body = match.group(1).strip("[] "), match.group(2).strip()
            if body:
                rows.append((speaker, body, None, None))
        elif rows and rows[-1][0] == speaker:
            prev = rows[-1]
            rows[-1] = (prev[0], f"{prev[1]} {line.strip()}", None, None)
        else:
            rows.append((speaker, line.strip(), None, None))
    return rows


def parse_transcript_text(
    text: str, fmt: str, *, name: str = "transcript", words_per_minute: float = 150.0
) -> ParsedTranscript:
    """Parse transcript text of a given format (``json``, ``vtt``, ``srt``, ``txt``).

    Raises:
        TranscriptFormatError: malformed content, or no speech in it.
    """
    fmt = fmt.lower()
    call_id: str | None = None
    if fmt == "json":
        call_id, rows = _parse_json(name, text)
    elif fmt == "vtt":
        if not text.lstrip("\ufeff").lstrip().startswith("WEBVTT"):
            raise _fail(name, "a WebVTT file must start with 'WEBVTT'.", "Check the file is WebVTT.")
        rows = _parse_cues(name, text, "WebVTT")
    elif fmt == "srt":
        rows = _parse_cues(name, text, "SRT")
    elif fmt == "txt":
        rows = _parse_plain(text)
    else:
        raise _fail(name, f"unknown transcript format {fmt!r}.", "Use json, vtt, srt or txt.")
    if not rows:
        raise _fail(name, "the transcript contains no spoken text.",
                    "Check the export: every turn is empty or missing.")
    return ParsedTranscript(call_id=call_id, turns=estimate_timings(rows, words_per_minute))


def parse_transcript(path: Path, *, words_per_minute: float = 150.0) -> ParsedTranscript:
    """Read and parse a transcript file; the format comes from the extension.

    Raises:
        TranscriptFormatError: unreadable, not UTF-8, or malformed.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TranscriptFormatError(f"{Path(path).name}: cannot read ({exc.strerror}).",
                                    "Check the path and permissions.") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TranscriptFormatError(
            f"{Path(path).name}: not UTF-8 text (byte {exc.start} is invalid).",
            "Re-save the transcript as UTF-8.",
        ) from exc
    return parse_transcript_text(
        text, Path(path).suffix.lstrip("."), name=Path(path).name, words_per_minute=words_per_minute
    )
