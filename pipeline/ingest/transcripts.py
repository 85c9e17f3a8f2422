"""Parse text transcripts (canonical JSON, WebVTT, SRT, plain ``Name: text``) into turns.

JSON is the canonical ``{"call_id", "turns": [{"speaker", "text", "start", "end"}]}``, a bare list of
such turns, or what Whisper, faster-whisper and WhisperX write (``{"segments": [...]}``, with a
``speaker`` per segment where diarized).

Turns without timings get durations estimated from their word count (150 words per
minute by default) and are flagged ``timing_estimated``.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import TranscriptFormatError
from pipeline.schema import Turn, role_word

__all__ = ["ParsedTranscript", "parse_transcript", "parse_transcript_text", "estimate_timings"]

# hours (optional), minutes, seconds, milliseconds (optional: "00:01:02 --> 00:01:05" is accepted too)
_TS = r"(?:([0-9]{1,5}):)?([0-9]{1,2}):([0-9]{2})(?:[.,]([0-9]{1,3}))?"
_CUE_TIME = re.compile(rf"^\s*{_TS}\s*-->\s*{_TS}(?=\s|$)")
_LOOKS_TIMED = re.compile(r"[0-9]{1,2}:[0-9]{2}[.,:]?[0-9]{0,6}\s{0,3}-{0,3}>|-{0,3}>\s{0,3}[0-9]{1,2}:[0-9]{2}")
_CUE_ID = re.compile(r"^\s*[0-9]+\s*$")
_VTT_META_BLOCK = re.compile(r"^(?:NOTE|STYLE|REGION)(?:\s|$)")
_VOICE = re.compile(r"<v(?:\.[^\s>]{0,100})?\s+([^>]{1,200})>")
_TAG = re.compile(r"</?[^<>]{1,200}>")
_PREFIX = re.compile(
    r"^\s*([^\W\d_][\w .'\-]{0,40}?|\[[^\]]{1,40}\]|[\w.\-]{1,40})(?:\s*\(([^()]{1,40})\))?\s*:\s+(.*)$")

#: A plain-text line's leading time stamp: "[00:01:02] Dana: ...", "(1:02) Dana: ...", "00:01:02 - Dana: ...".
_LEADING_TIME = re.compile(rf"^\s*[\[(]?{_TS}[\])]?\s*(?:[-–]\s*)?(?=\S)")
#: A subtitle line that starts a new speaker's words without naming them ("- No, Tuesday doesn't work.").
_DASH_LINE = re.compile(r"^\s*[-–—]\s+(?=\S)")
UNKNOWN_SPEAKER = "unknown"
#: A transcript longer than this is not one call (2 M characters is ~35 hours of speech).
MAX_TRANSCRIPT_CHARS = 2_000_000
#: One turn longer than this cannot be split into sentences (spaCy's limit is 1 M characters).
MAX_TURN_CHARS = 500_000


def _prefix(line: str) -> re.Match[str] | None:
    """A ``Name: text`` line's match (groups: name, bracketed role, text), or ``None``. A name of several
    words starts with a capital of any script ("Émile Zola:", "Łukasz Nowak:"), so an ordinary
    sentence with a colon in it ("so the plan is: ...") is not taken for a speaker."""
    match = _PREFIX.match(line)
    if match is None:
        return None
    name = match.group(1).rstrip()
    if " " in name and not name.startswith("[") and not name[0].isupper():
        return None
    return match


@dataclass(frozen=True, slots=True)
class ParsedTranscript:
    """A transcript's call id (when the file names one), its turns, and the roles it gives speakers
    (``{"Lee": "customer"}`` from ``Lee (customer): ...`` lines)."""

    call_id: str | None
    turns: list[Turn]
    roles: dict[str, str] = field(default_factory=dict)


def _seconds(groups: tuple[str | None, ...]) -> float:
    hours, minutes, secs, frac = groups
    return (int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(secs or 0)
            + int((frac or "0").ljust(3, "0")) / 1000)


def _clean(value: str) -> str:
    """``value`` with lone surrogates (from JSON ``\\udXXX`` escapes) replaced: Parquet needs valid UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _describe(value: Any) -> str:
    """A JSON value's type in words, for error messages."""
    if value is None:
        return "null or missing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


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


Row = tuple[str, str, float | None, float | None]


def _parse_json(name: str, text: str) -> tuple[str | None, list[Row]]:
    hint = 'Expected {"call_id": "...", "turns": [{"speaker": "...", "text": "...", "start": 0.0, "end": 2.5}]}.'
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(name, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.", hint) from exc
    except RecursionError as exc:
        raise _fail(name, "invalid JSON: lists or objects are nested too deeply.", hint) from exc
    except ValueError as exc:  # an integer literal longer than Python's 4300-digit limit
        what = "a number is too long to read" if "digits" in str(exc) else str(exc)
        raise _fail(name, f"invalid JSON: {what}.", hint) from exc
    if isinstance(data, list):  # a bare list of turns
        data = {"turns": data}
    if not isinstance(data, dict):
        raise _fail(name, f"the top level is a {type(data).__name__}, not an object.", hint)
    call_id = data.get("call_id")
    if call_id is not None and (isinstance(call_id, bool) or not isinstance(call_id, (str, int))):
        raise _fail(name, f"'call_id' must be a string, not {_describe(call_id)}.", hint)
    # Whisper, faster-whisper and WhisperX write {"segments": [{"start", "end", "text", "speaker"?}]}
    key = "turns" if "turns" in data or not isinstance(data.get("segments"), list) else "segments"
    turns = data.get(key)
    if not isinstance(turns, list):
        raise _fail(name, f"no 'turns' list ('turns' is {_describe(turns)}).",
                    hint + ' A Whisper-style {"segments": [...]} or a bare list of turns is read too.')
    rows: list[Row] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _fail(name, f"{key[:-1]} {i + 1} is {_describe(turn)}, not an object.", hint)
        speaker, body = turn.get("speaker"), turn.get("text")
        if not isinstance(body, str):
            raise _fail(name, f"turn {i + 1} has no text string ('text' is {_describe(body)}).", hint)
        if speaker is None:
            speaker = UNKNOWN_SPEAKER
        if not isinstance(speaker, (str, int)) or isinstance(speaker, bool):
            raise _fail(name, f"turn {i + 1}: 'speaker' must be a string, not {_describe(speaker)}.", hint)
        times: list[float | None] = []
        for key in ("start", "end"):
            value = turn.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise _fail(name, f"turn {i + 1}: '{key}' must be a number of seconds, not {_describe(value)} "
                                  f"({json.dumps(value)[:40]}).", hint)
            if value is not None:
                try:
                    seconds = float(value)
                except OverflowError:  # an integer too large for a float
                    seconds = float("inf")
                if not math.isfinite(seconds) or seconds < 0:
                    raise _fail(name, f"turn {i + 1}: '{key}' must be a finite, non-negative number of seconds.",
                                hint)
                value = seconds
            times.append(value)
        if times[0] is not None and times[1] is not None and times[1] < times[0]:
            raise _fail(name, f"turn {i + 1} ends before it starts (start {times[0]:g} s, end {times[1]:g} s).",
                        "Fix the turn's times (seconds from the start of the call, end later than start), "
                        "or leave them out to have them estimated.")
        if body.strip():
            rows.append((_clean(str(speaker)).strip() or UNKNOWN_SPEAKER, _clean(body.strip()), times[0], times[1]))
    # a blank call_id ("   ") names nothing: the call keeps the name from its file, not an empty one
    named = _clean(str(call_id)).strip() if call_id is not None else ""
    return named or None, rows


def _speaker_and_text(line: str, current: str) -> tuple[str, str]:
    voice = _VOICE.search(line)
    if voice:
        speaker = voice.group(1).strip() or current
        return speaker, _TAG.sub("", line).strip()
    clean = _TAG.sub("", line).strip()
    prefix = _prefix(clean)
    if prefix:
        return prefix.group(1).strip("[] ") or current, prefix.group(3).strip()
    return current, clean


def _cue_hint(kind: str) -> str:
    sep = "," if kind == "SRT" else "."
    return (f"Each cue needs a timing line 'HH:MM:SS{sep}mmm --> HH:MM:SS{sep}mmm' (e.g. 00:01:02{sep}500 --> "
            f"00:01:05{sep}000) directly above its text; fix that line or delete the cue, then run again.")


def _blocks(text: str) -> list[list[tuple[int, str]]]:
    """Blank-line separated blocks of ``(line number, line)``."""
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        if line.strip():
            current.append((number, line))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _parse_cues(name: str, text: str, kind: str) -> list[Row]:
    """Cues of a WebVTT or SRT file.

    A cue's speaker comes from a ``<v Name>`` tag or a ``Name:`` prefix; a cue without one continues the
    last named speaker (a long turn broken over several cues); a cue holding two speakers (two tags or
    prefixes, or ``- `` dialogue lines) gives each its own row, the cue's time shared by word count.
    Overlapping cues (cross-talk) are kept and sorted by start time. A timing line that
    cannot be read, or cue text with no timing line above it, is an error naming the line:
    dropping that cue silently would change the call's scores.
    """
    rows: list[Row] = []
    found_cue = False
    problem: TranscriptFormatError | None = None
    hint = _cue_hint(kind)

    def flush(cue: tuple[float, float] | None, pieces: list[tuple[str, list[str]]]) -> None:
        """One row per speaker's piece of the cue, the cue's time shared by word count."""
        said = [(who, " ".join(parts).strip()) for who, parts in pieces]
        said = [(who, body) for who, body in said if body]
        if cue is None or not said:
            return
        words = [max(1, len(body.split())) for _who, body in said]
        begin, span, done = cue[0], cue[1] - cue[0], 0
        for (who, body), n in zip(said, words):
            start = begin + span * done / sum(words)
            done += n
            rows.append((who, body, round(start, 3), round(begin + span * done / sum(words), 3)))

    speaker = UNKNOWN_SPEAKER  # a cue without a name continues the last named speaker (subtitle line breaks)
    for block_index, block in enumerate(_blocks(text)):
        first = block[0][1].lstrip().lstrip("\ufeff")
        if kind == "WebVTT" and block_index == 0 and first.startswith("WEBVTT"):
            # the header; a sloppy file may start its first cue right under it, without a blank line
            timed = [i for i, (_n, line) in enumerate(block) if "-->" in line]
            if not timed:
                continue
            block = block[timed[0]:]
        elif kind == "WebVTT" and _VTT_META_BLOCK.match(first):
            continue  # NOTE, STYLE and REGION blocks
        cue: tuple[float, float] | None = None
        pieces: list[tuple[str, list[str]]] = []  # (speaker, lines) in the cue, a new piece per speaker
        orphan: tuple[int, str] | None = None
        for pos, (number, line) in enumerate(block):
            match = _CUE_TIME.match(line)
            if match is None and "-->" in line:
                problem = problem or _fail(name, f"line {number}: cannot read the cue times in "
                                                 f"{line.strip()[:80]!r}.", hint)
                continue
            if match is not None:
                groups = match.groups()
                for value in (groups[1], groups[2], groups[5], groups[6]):
                    if int(value) >= 60:
                        problem = problem or _fail(name, f"line {number}: minutes and seconds must be below 60 in "
                                                         f"{line.strip()[:80]!r}.", hint)
                start, end = _seconds(groups[:4]), _seconds(groups[4:])
                if end < start:
                    problem = problem or _fail(
                        name, f"line {number}: a cue ends before it starts ({line.strip()[:80]}).",
                        "Fix the cue's timestamps (start --> end, end later than start).")
                if pieces and pieces[-1][1] and _CUE_ID.match(pieces[-1][1][-1]):
                    pieces[-1][1].pop()  # the next cue's number, in a file without blank lines between cues
                flush(cue, pieces)
                found_cue = True
                cue, pieces = (start, end), []
                continue
            if cue is None:
                if pos == 0 and len(block) > 1:
                    continue  # a cue identifier above the timing line
                if orphan is None and not _CUE_ID.match(line):
                    orphan = (number, line)
                continue
            dash = _DASH_LINE.match(line)  # "- No, it doesn't.": someone else's words, unnamed
            if dash:
                line, speaker = line[dash.end():], UNKNOWN_SPEAKER
            speaker, clean = _speaker_and_text(line, speaker)
            if clean:
                if dash or not pieces or speaker != pieces[-1][0]:
                    pieces.append((speaker, [clean]))
                else:
                    pieces[-1][1].append(clean)
        if cue is None and orphan is None and len(block) > 1:
            orphan = block[1] if _CUE_ID.match(block[0][1]) else block[0]
        if orphan is not None:
            number, line = orphan
            if _LOOKS_TIMED.search(line):
                what = f"cannot read the cue times in {line.strip()[:80]!r}"
            else:
                what = (f"text {line.strip()[:60]!r} has no cue timing line above it "
                        "(the 'start --> end' line is missing or broken)")
            problem = problem or _fail(name, f"line {number}: {what}.", hint)
        flush(cue, pieces)
    if not found_cue:
        raise _fail(name, f"no {kind} cues with timestamps (HH:MM:SS.mmm --> HH:MM:SS.mmm) found.",
                    f"Check that the file is a valid {kind} file.")
    if problem is not None:
        raise problem
    rows.sort(key=lambda r: (r[2] or 0.0))
    return rows


def _parse_plain(name: str, text: str, roles: dict[str, str] | None = None) -> list[Row]:
    """``Name: text`` lines (a line without a name continues the current speaker's turn), each optionally
    led by a time stamp (``[00:01:02] Name: text``); a stamped turn lasts until the next turn's stamp.

    A role word in brackets after a name (``Lee (customer): ...``) is added to ``roles`` (the first
    one said for a speaker), where given."""
    turns: list[tuple[str, list[str], float | None]] = []
    speaker = UNKNOWN_SPEAKER
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        stamp = None
        timed = _LEADING_TIME.match(line)
        if timed and _prefix(line[timed.end():]):  # a stamp only before a name ("10:30 works" is words)
            groups = timed.groups()
            if (groups[0] is not None and int(groups[1]) >= 60) or int(groups[2]) >= 60:
                raise _fail(name, f"line {number}: minutes and seconds must be below 60 in the time stamp "
                                  f"{line[:timed.end()].strip()[:40]!r}.",
                            "Write stamps as [HH:MM:SS] or [MM:SS], e.g. [00:01:02] Dana: ..., then run again.")
            stamp = _seconds(groups)
            line = line[timed.end():]
        match = _prefix(line)
        if match:
            speaker, body = match.group(1).strip("[] ") or UNKNOWN_SPEAKER, match.group(3).strip()
            declared = role_word(match.group(2))  # "Lee (customer): ..." names Lee's role
            if declared and roles is not None:
                roles.setdefault(speaker, declared)
            if body:
                turns.append((speaker, [body], stamp))
        elif turns and turns[-1][0] == speaker and stamp is None:
            turns[-1][1].append(line.strip())
        else:
            turns.append((speaker, [line.strip()], stamp))
    rows: list[Row] = []
    for i, (who, parts, start) in enumerate(turns):
        following = turns[i + 1][2] if i + 1 < len(turns) else None  # the next turn's stamp ends this one
        end = following if start is not None and following is not None and following >= start else None
        rows.append((who, " ".join(parts), start, end))
    return rows


def _check_size(name: str, text: str) -> None:
    """Refuse text far larger than any call before parsing it (and before spaCy's 1 M-character limit)."""
    if len(text) <= MAX_TRANSCRIPT_CHARS:
        return
    hours = len(text.split()) / 150 / 60
    shape = "on a single line" if "\n" not in text.strip() else f"on {text.count(chr(10)) + 1:,} lines"
    raise _fail(
        name, f"{len(text):,} characters {shape} (about {hours:,.0f} hours of speech); that is not one call "
              f"(the limit is {MAX_TRANSCRIPT_CHARS:,} characters).",
        "callcycle scores one call per transcript: split the file into one transcript per call, or remove it "
        "from the inputs if it is not a call transcript (a log, a data dump or a file that lost its line breaks).")


def parse_transcript_text(
    text: str, fmt: str, *, name: str = "transcript", words_per_minute: float = 150.0
) -> ParsedTranscript:
    """Parse transcript text of a given format (``json``, ``vtt``, ``srt``, ``txt``).

    Raises:
        TranscriptFormatError: malformed content, no speech in it, or far too long for one call.
    """
    fmt = fmt.lower()
    _check_size(name, text)
    text = _clean(text)
    call_id: str | None = None
    roles: dict[str, str] = {}
    if fmt == "json":
        call_id, rows = _parse_json(name, text)
    elif fmt == "vtt":
        if not text.lstrip("\ufeff").lstrip().startswith("WEBVTT"):
            raise _fail(name, "a WebVTT file must start with 'WEBVTT'.", "Check the file is WebVTT.")
        rows = _parse_cues(name, text, "WebVTT")
    elif fmt == "srt":
        rows = _parse_cues(name, text, "SRT")
    elif fmt == "txt":
        rows = _parse_plain(name, text, roles)
    else:
        raise _fail(name, f"unknown transcript format {fmt!r}.", "Use json, vtt, srt or txt.")
    if not rows:
        raise _fail(name, "the transcript contains no spoken text.",
                    "Check the export: every turn is empty or missing.")
    for i, (speaker, body, _start, _end) in enumerate(rows):
        if len(body) > MAX_TURN_CHARS:
            raise _fail(name, f"turn {i + 1} ({speaker!r}) is {len(body):,} characters long without a speaker change "
                              f"(the limit is {MAX_TURN_CHARS:,}).",
                        "Put each speaker turn on its own line ('Name: text'), or one entry per turn in JSON.")
    return ParsedTranscript(call_id=call_id, turns=estimate_timings(rows, words_per_minute), roles=roles)


#: How common audio and video containers begin (``RIFF....WAVE``, MP3 with or without an ID3 tag,
#: Ogg, FLAC, MP4/MOV, Matroska/WebM), with the extension such a file should have.
_AUDIO_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"RIFF", 0, ".wav"), (b"ID3", 0, ".mp3"), (b"\xff\xfb", 0, ".mp3"), (b"\xff\xf3", 0, ".mp3"),
    (b"\xff\xf2", 0, ".mp3"), (b"OggS", 0, ".ogg"), (b"fLaC", 0, ".flac"), (b"ftyp", 4, ".m4a or .mp4"),
    (b"\x1aE\xdf\xa3", 0, ".webm or .mkv"),
)


def _audio_extension(raw: bytes) -> str | None:
    """The extension of the audio or video container ``raw`` starts like, if any."""
    for magic, offset, extension in _AUDIO_SIGNATURES:
        if raw[offset:offset + len(magic)] == magic:
            return extension
    return None


def _encoding_guess(raw: bytes) -> tuple[str, str]:
    """``(description, iconv name)`` of the encoding a non-UTF-8 file most likely uses."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw[:200].count(b"\x00") > 20:
        return "UTF-16", "UTF-16"
    return "Windows-1252 / Latin-1 (Western European)", "CP1252"


def parse_transcript(path: Path, *, words_per_minute: float = 150.0) -> ParsedTranscript:
    """Read and parse a transcript file; the format comes from the extension.

    UTF-8 (with or without a byte-order mark) is read; so is UTF-16 with a byte-order
    mark (Windows "Unicode" text). Anything else is refused with the fix in the hint
    rather than guessed, which could garble names silently.

    Raises:
        TranscriptFormatError: unreadable, not UTF-8, or malformed.
    """
    name = Path(path).name
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TranscriptFormatError(f"{name}: cannot read ({exc.strerror}).",
                                    "Check the path and permissions.") from exc
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        audio = _audio_extension(raw)
        if audio is not None:
            raise TranscriptFormatError(
                f"{name}: this is an audio or video recording, not a transcript (it starts like a {audio} file).",
                f"Rename it with the extension {audio} so callcycle transcribes it, then run again.") from exc
        offset = min(exc.start + (3 if raw.startswith(codecs.BOM_UTF8) else 0), len(raw) - 1)
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        described, iconv = _encoding_guess(raw)
        raise TranscriptFormatError(
            f"{name}: not UTF-8 text (byte 0x{raw[offset]:02X} at line {line}, column {column} is invalid; "
            f"the file looks like {described}).",
            f"Re-save the transcript as UTF-8 (Save As -> Encoding: UTF-8), or convert it with "
            f"`iconv -f {iconv} -t UTF-8 {shlex.quote(str(path))} > {shlex.quote('fixed' + Path(path).suffix)}`, "
            f"then run again.",
        ) from exc
    return parse_transcript_text(text, Path(path).suffix.lstrip("."), name=name, words_per_minute=words_per_minute)
