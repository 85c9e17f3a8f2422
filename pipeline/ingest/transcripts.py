"""Parse text transcripts (canonical JSON, WebVTT, SRT, plain ``Name: text``) into turns.

JSON is the canonical ``{"call_id", "turns": [{"speaker", "text", "start", "end"}]}``, a bare list of
such turns, or what Whisper, faster-whisper and WhisperX write (``{"segments": [...]}``, with a
``speaker`` per segment where diarized).

Turns without timings get durations estimated from their word count (150 words per
minute by default) and are flagged ``timing_estimated``.
"""

from __future__ import annotations

import codecs
import html
import json
import math
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import TranscriptFormatError
from pipeline.ingest.speaker_labels import TIME_STAMP, Label, capitalised, read_label, read_stamp_line, speakers
from pipeline.schema import Turn, role_word

__all__ = ["ParsedTranscript", "parse_transcript", "parse_transcript_text", "estimate_timings"]

_TS = TIME_STAMP
_CUE_TIME = re.compile(rf"^\s*{_TS}\s*-->\s*{_TS}(?=\s|$)")
_LOOKS_TIMED = re.compile(r"[0-9]{1,2}:[0-9]{2}[.,:]?[0-9]{0,6}\s{0,3}-{0,3}>|-{0,3}>\s{0,3}[0-9]{1,2}:[0-9]{2}")
_CUE_ID = re.compile(r"^\s*[0-9]+\s*$")
_VTT_META_BLOCK = re.compile(r"^(?:NOTE|STYLE|REGION)(?:\s|$)")
_VOICE = re.compile(r"<v(?:\.[^\s>]{0,100})?\s+([^>]{1,200})>")
#: Where a voice tag starts, for cutting a line at one that follows other words.
_VOICE_START = re.compile(r"(?<=\S)\s*(?=<v(?:\.[^\s>]{0,100})?\s+[^>]{1,200}>)")
#: Markup in cue text: HTML-like tags (<i>, <c>, <00:00:01.200>) and ASS/SSA overrides ({\an8}).
_TAG = re.compile(r"</?[^<>]{1,200}>|\{\\[^{}]{0,200}\}")
#: A name's bracketed suffix: a role, pronouns or a company ("Marcus Lee (Contoso)").
_NAME_BRACKET = re.compile(r"^(.*?\S)\s*\(([^()]{1,40})\)\s*$")

#: A plain-text line's leading time stamp: "[00:01:02] Dana: ...", "(1:02) Dana: ...", "00:01:02 - Dana: ...".
_LEADING_TIME = re.compile(rf"^\s*[\[(]?{_TS}[\])]?\s*(?:[-–]\s*)?(?=\S)")
#: A subtitle line that starts a new speaker's words without naming them ("- No, Tuesday doesn't work.");
#: without the space ("-Wednesday?") only where the cue has two such lines.
_DASH_LINE = re.compile(r"^\s*[-–—]\s+(?=\S)")
_TIGHT_DASH_LINE = re.compile(r"^\s*[-–—](?=[^\W\d_])")
#: The speaker-change mark of broadcast captions and YouTube (">> DANA: ...", ">> it's fine").
_CHEVRONS = re.compile(r"^\s*>>\s*")
#: Editorial notes in transcripts, not speech: "[inaudible 00:00:09]", "[crosstalk]", "[Music]", "(laughs)",
#: a bare time in square brackets; other bracketed words ("the [redacted] account", "[sic]") are kept.
_NOTE_WORDS = (r"(?:laughs?|laughter|laughing|chuckles?|inaudible|unintelligible|indiscernible|crosstalk|cross-talk|"
               r"coughs?|coughing|sighs?|music|silence|pause|applause|background noise|noise|overlapping|overtalk|"
               r"phone rings?|phone ringing|beep|static|blank_audio|no audio|foreign|foreign language|"
               r"audio cuts? out|technical difficulties|muffled|distortion)")
_ANNOTATION = re.compile(
    rf"\[{_NOTE_WORDS}(?:[\s,:;-]+[0-9:.,]+)?\]|\[[0-9:.,\s-]{{4,30}}\]|\({_NOTE_WORDS}(?:[\s,:;-]+[0-9:.,]+)?\)",
    re.IGNORECASE)
_SPACE_BEFORE_STOP = re.compile(r"\s+([.,!?;:])")
#: Lines of a Google Meet transcript export around the speech.
_MEET_HEADINGS = frozenset({"transcript", "attendees"})
_MEET_END = re.compile(r"^\s*Meeting ended after [0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?\b")
#: A speaker label in Markdown bold or italics ("**Dana:** Hi.", "__Dana__: Hi.").
_MARKDOWN_LABEL = re.compile(r"^(\*\*|__|\*)(.{1,80}?)\1")
UNKNOWN_SPEAKER = "unknown"
#: A transcript longer than this is not one call (2 M characters is ~35 hours of speech).
MAX_TRANSCRIPT_CHARS = 2_000_000
#: One turn longer than this cannot be split into sentences (spaCy's limit is 1 M characters).
MAX_TURN_CHARS = 500_000


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
    rows: list[tuple[str, str, float | None, float | None]], words_per_minute: float = 150.0,
    pieces: list[tuple[tuple[int, float, float], ...]] | None = None,
) -> list[Turn]:
    """Build turns from ``(speaker, text, start, end)``, estimating missing times.

    A turn without a start begins where the previous one ended; a turn without an
    end lasts ``words / words_per_minute``. ``pieces``, one entry per row, become ``Turn.pieces``.
    """
    turns: list[Turn] = []
    clock = 0.0
    for i, (speaker, text, start, end) in enumerate(rows):
        estimated = start is None or end is None
        begin = clock if start is None else float(start)
        finish = begin + _word_seconds(text, words_per_minute) if end is None else float(end)
        if finish < begin:
            finish = begin
        turns.append(
            Turn(speaker=speaker, channel=None, start_s=begin, end_s=finish, text=text,
                 timing_estimated=estimated, pieces=pieces[i] if pieces and not estimated else ())
        )
        clock = max(clock, finish)
    return turns


def _fail(name: str, what: str, hint: str) -> TranscriptFormatError:
    return TranscriptFormatError(f"{name}: {what}", hint)


Row = tuple[str, str, float | None, float | None]


#: What other tools call a turn's fields (Fireflies, Gong-like exports, AssemblyAI utterances), first match wins.
_SPEAKER_KEYS = ("speaker", "speaker_name", "speakerName", "speaker_label", "speakerLabel", "name")
_TEXT_KEYS = ("text", "sentence", "content", "transcript")
_START_KEYS = ("start", "start_time", "startTime", "start_s")
_END_KEYS = ("end", "end_time", "endTime", "end_s")
_START_MS_KEYS = ("start_ms", "startMs")
_END_MS_KEYS = ("end_ms", "endMs")


def _speaker_of(turn: dict[str, Any]) -> Any:
    """A turn's speaker: the first non-blank name among :data:`_SPEAKER_KEYS`, else an id (a number, or
    ``speaker_id``), else ``None`` ({"speaker": 0, "speaker_name": "Dana"} is Dana)."""
    values = [turn.get(key) for key in (*_SPEAKER_KEYS, "speaker_id", "speakerId")]
    named = [v for v in values if isinstance(v, str) and v.strip()]
    if named:
        return named[0]
    return next((v for v in values if v is not None and not (isinstance(v, str) and not v.strip())), None)


def _first(turn: dict[str, Any], keys: tuple[str, ...], named: bool = False) -> Any:
    """The value of the first of ``keys`` that ``turn`` holds (``(value, key)`` with ``named``), else ``None``."""
    for key in keys:
        if key in turn and turn[key] is not None:
            return (turn[key], key) if named else turn[key]
    return None


#: Turns timed slower than this many words per minute (the median turn) have times in milliseconds, not
#: seconds: people speak 100-200 words a minute, and "Hi Marcus, thanks for joining" over 2,910 s is 0.1.
MIN_PLAUSIBLE_WPM = 3.0


def _check_time_unit(name: str, rows: list[Row], hint: str) -> None:
    """Refuse JSON times that can only be milliseconds (Gong-style exports: whole numbers, the median turn
    spoken at under :data:`MIN_PLAUSIBLE_WPM`), rather than score an hour-long call from a two-minute one."""
    rates = sorted(len(body.split()) * 60.0 / (end - start) for _speaker, body, start, end in rows
                   if start is not None and end is not None and end - start > 0)
    if len(rates) >= 2 and rates[len(rates) // 2] < MIN_PLAUSIBLE_WPM:
        raise _fail(name, f"the turns' times look like milliseconds, not seconds (the median turn would be spoken "
                          f"at {rates[len(rates) // 2]:.2f} words a minute).",
                    "Name the fields start_ms and end_ms (callcycle reads them as milliseconds), or divide the "
                    "times by 1000. " + hint)


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
    whole = True  # every time a whole number, as milliseconds are written (seconds rarely are, to the second)
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _fail(name, f"{key[:-1]} {i + 1} is {_describe(turn)}, not an object.", hint)
        speaker, body = _speaker_of(turn), _first(turn, _TEXT_KEYS)
        if not isinstance(body, str):
            raise _fail(name, f"turn {i + 1} has no text string ('text' is {_describe(body)}).", hint)
        if speaker is None:
            speaker = UNKNOWN_SPEAKER
        if not isinstance(speaker, (str, int)) or isinstance(speaker, bool):
            raise _fail(name, f"turn {i + 1}: 'speaker' must be a string, not {_describe(speaker)}.", hint)
        times: list[float | None] = []
        for key, aliases, millis in (("start", _START_KEYS, _START_MS_KEYS), ("end", _END_KEYS, _END_MS_KEYS)):
            value, key = _first(turn, aliases, named=True) or _first(turn, millis, named=True) or (None, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise _fail(name, f"turn {i + 1}: '{key}' must be a number of seconds, not {_describe(value)} "
                                  f"({json.dumps(value)[:40]}).", hint)
            if value is not None:
                whole = whole and isinstance(value, int) and key not in millis
                try:
                    seconds = float(value)
                except OverflowError:  # an integer too large for a float
                    seconds = float("inf")
                if key in millis:
                    seconds /= 1000.0
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
    if whole:
        _check_time_unit(name, rows, hint)
    if rows and all(row[2] is not None for row in rows):
        rows.sort(key=lambda row: row[2] or 0.0)  # by start, as cues are; a stable sort keeps ties in file order
    # a blank call_id ("   ") names nothing: the call keeps the name from its file, not an empty one
    named = _clean(str(call_id)).strip() if call_id is not None else ""
    return named or None, rows


def _strip_markup(line: str) -> str:
    """Cue text without tags or overrides, HTML entities read (``&gt;&gt;`` is ``>>``)."""
    return html.unescape(_TAG.sub("", line)).replace("\\N", " ").strip()


def _split_name(name: str) -> tuple[str, str | None]:
    """``("Marcus Lee", "Contoso")`` from ``"Marcus Lee (Contoso)"``: a bracketed suffix is not part of a name."""
    match = _NAME_BRACKET.match(name.strip())
    return (match.group(1), match.group(2)) if match else (name.strip(), None)


def _note_role(roles: dict[str, str] | None, speaker: str, bracket: str | None) -> None:
    """Record the role a bracket names (``Lee (customer): ...``), the first one said for a speaker."""
    declared = role_word(bracket)
    if declared and roles is not None:
        roles.setdefault(speaker, declared)


def _cue_speaker(voice: str | None, line: str, current: str, accepted: set[str],
                 roles: dict[str, str] | None) -> tuple[str, str]:
    """The speaker and the words of one cue line (``line`` without its markup; ``voice`` the name in its
    ``<v Name>`` tag, if any): the tag or an accepted ``Name:`` label names the speaker; otherwise the line
    continues ``current``."""
    if voice is not None:
        speaker, bracket = _split_name(voice)
        _note_role(roles, speaker, bracket)
        return speaker or current, line
    label = read_label(line)
    if label is not None and label.shape != "timed" and label.name in accepted:
        _note_role(roles, label.name, label.bracket)
        return label.name, label.text
    return current, line


def _cue_hint(kind: str) -> str:
    sep = "," if kind == "SRT" else "."
    return (f"Each cue needs a timing line 'HH:MM:SS{sep}mmm --> HH:MM:SS{sep}mmm' (e.g. 00:01:02{sep}500 --> "
            f"00:01:05{sep}000) directly above its text; fix that line or delete the cue, then run again.")


def _blocks(text: str) -> list[list[tuple[int, str]]]:
    """Blocks of ``(line number, line)`` separated by empty lines. A line of spaces does not end a cue (WebVTT
    ends one at an empty line; YouTube puts a line of one space inside its cues): it is left out."""
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        if line.strip():
            current.append((number, line))
        elif not line and current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


Cue = tuple[tuple[float, float], list[str]]


def _cues(name: str, text: str, kind: str) -> list[Cue]:
    """The cues of a WebVTT or SRT file: each one's ``(start, end)`` and its text lines as written.

    A timing line that cannot be read, or cue text with no timing line above it, is an error naming the
    line: dropping that cue silently would change the call's scores.
    """
    cues: list[Cue] = []
    found_cue = False
    problem: TranscriptFormatError | None = None
    hint = _cue_hint(kind)
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
        lines: list[str] = []
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
                if lines and _CUE_ID.match(lines[-1]):
                    lines.pop()  # the next cue's number, in a file without blank lines between cues
                if cue is not None:
                    cues.append((cue, lines))
                found_cue = True
                cue, lines = (start, end), []
                continue
            if cue is None:
                if pos == 0 and len(block) > 1:
                    continue  # a cue identifier above the timing line
                if orphan is None and not _CUE_ID.match(line):
                    orphan = (number, line)
                continue
            lines.append(line)
        if cue is None and orphan is None and len(block) > 1:
            orphan = block[1] if _CUE_ID.match(block[0][1]) else block[0]
        if orphan is not None:
            number, line = orphan
            if _LOOKS_TIMED.search(_TAG.sub("", line)):
                what = f"cannot read the cue times in {line.strip()[:80]!r}"
            else:
                what = (f"text {line.strip()[:60]!r} has no cue timing line above it "
                        "(the 'start --> end' line is missing or broken)")
            problem = problem or _fail(name, f"line {number}: {what}.", hint)
        if cue is not None:
            cues.append((cue, lines))
    if not found_cue:
        raise _fail(name, f"no {kind} cues with timestamps (HH:MM:SS.mmm --> HH:MM:SS.mmm) found.",
                    f"Check that the file is a valid {kind} file.")
    if problem is not None:
        raise problem
    return cues


#: A caption that repeats the previous one's last lines (YouTube's rolling captions) repeats at least this
#: many words before they are dropped as an echo: "Yes." said twice is two answers.
ROLLING_ECHO_WORDS = 3
#: ... and starts within this many seconds of the previous cue's end (rolling captions follow on).
ROLLING_GAP_S = 0.05


def _without_echo(previous: list[str], lines: list[str]) -> list[str]:
    """``lines`` less the leading lines that repeat the end of the previous cue (rolling captions show each
    line twice, and a 10 ms cue repeats the last line once more)."""
    for k in range(min(len(previous), len(lines)), 0, -1):
        if lines[:k] == previous[-k:] and sum(len(line.split()) for line in lines[:k]) >= ROLLING_ECHO_WORDS:
            return lines[k:]
    return lines


def _parse_cues(name: str, text: str, kind: str, roles: dict[str, str] | None = None) -> list[tuple[Row, Pieces]]:
    """Cues of a WebVTT or SRT file.

    A cue's speaker comes from a ``<v Name>`` tag or a ``Name:`` label (:mod:`speaker_labels` decides which
    labels are names); a cue without one continues the last named speaker (a long turn broken over several
    cues); a cue holding two speakers (two tags or labels, ``- `` dialogue lines, or ``>>`` marks) gives
    each its own row, the cue's time shared by word count. Lines that repeat the previous cue (rolling
    captions) are read once. Overlapping cues (cross-talk) are kept and sorted by start time.
    """
    cues = _cues(name, text, kind)
    shown: list[list[tuple[str | None, str]]] = []  # per cue: (voice tag's name, words) of each line shown
    previous: list[str] = []
    previous_end: float | None = None
    for (start, end), raw in cues:
        lines: list[tuple[str | None, str]] = []
        # a <v Name> tag in the middle of a line speaks from there on: the words before it are the speaker's before;
        # a tag with no words after it on its line (at a line's end, or alone) speaks for the next line
        pending: str | None = None
        for line in (part for whole in raw for part in _VOICE_START.split(whole)):
            voice = _VOICE.search(line)
            clean = _strip_markup(line)
            named = voice.group(1) if voice else pending
            if clean:
                lines.append((named, clean))
                pending = None
            else:
                pending = named
        texts = [clean for _voice, clean in lines]
        # rolling captions follow on without a gap and name nobody; a repeat after a pause, or by a named
        # speaker, was said again
        rolling = previous_end is not None and abs(start - previous_end) <= ROLLING_GAP_S and not any(
            voice for voice, _clean in lines)
        kept = len(_without_echo(previous, texts)) if rolling else len(texts)
        shown.append(lines[len(lines) - kept:])
        previous, previous_end = texts, end
    candidates, texts = [], []
    for lines in shown:
        for _name, line in lines:
            label = read_label(_DASH_LINE.sub("", _CHEVRONS.sub("", line)))
            if label is not None:
                candidates.append(label)
            texts.append(label.text if label is not None else line)
    accepted = speakers(candidates, capitalised(texts))
    rows: list[tuple[Row, bool]] = []  # each with: it starts a turn (a change mark, or a cue of several speakers)
    speaker = UNKNOWN_SPEAKER  # a cue without a name continues the last named speaker (subtitle line breaks)
    for (cue, _raw), lines in zip(cues, shown):
        pieces: list[tuple[str, list[str], bool]] = []  # (speaker, lines, after a change mark) per speaker
        dashes = sum(1 for _name, line in lines if _TIGHT_DASH_LINE.match(line) or _DASH_LINE.match(line))
        voiced: str | None = None  # a <v Name> tag speaks for the rest of its cue (WebVTT), list lines included
        for tagged, line in lines:
            voiced = tagged or voiced
            mark = None if voiced is not None else (_CHEVRONS.match(line) or _DASH_LINE.match(line) or (
                _TIGHT_DASH_LINE.match(line) if dashes >= 2 else None))
            if mark:  # "- No, it doesn't." / ">> it's fine": someone else's words, unnamed unless labelled
                line, speaker = line[mark.end():], UNKNOWN_SPEAKER
            speaker, words = _cue_speaker(voiced, line, speaker, accepted, roles)
            if words:
                if mark or not pieces or speaker != pieces[-1][0]:
                    pieces.append((speaker, [words], bool(mark)))
                else:
                    pieces[-1][1].append(words)
        said = [(who, " ".join(parts).strip(), changed) for who, parts, changed in pieces]
        said = [(who, body, changed) for who, body, changed in said if body]
        if not said:
            continue
        words_in = [max(1, len(body.split())) for _who, body, _changed in said]
        begin, span, done = cue[0], cue[1] - cue[0], 0
        for i, ((who, body, changed), n) in enumerate(zip(said, words_in)):
            start = begin + span * done / sum(words_in)
            done += n
            # in a cue shared by two speakers each later speaker starts a turn; its first words may finish
            # the sentence of the speaker before the cue ("by friday at the latest" / "Marcus: okay great")
            rows.append(((who, body, round(start, 3), round(begin + span * done / sum(words_in), 3)),
                         changed or (len(said) > 1 and i > 0)))
    rows.sort(key=lambda flagged: flagged[0][2] or 0.0)
    # editorial notes go before cues are joined, so each cue's place in its turn's text stays known
    cleaned = [(_without_annotations(row), fresh) for row, fresh in rows]
    return _joined_cues([(row, fresh) for row, fresh in cleaned if row[1]])


#: Consecutive cues of one speaker that follow on within this many seconds are one turn.
CUE_JOIN_GAP_S = 1.0


#: Where each joined cue begins in its turn's text, and its start and end (``Turn.pieces``).
Pieces = tuple[tuple[int, float, float], ...]


def _joined_cues(rows: list[tuple[Row, bool]]) -> list[tuple[Row, Pieces]]:
    """One turn per stretch of one speaker's cues that follow on (within :data:`CUE_JOIN_GAP_S`).

    A caption track breaks speech where the screen runs out, not where sentences end: "so i'll send" /
    "the quote by friday" are two cues of one sentence. Joined, the turn is split into sentences at its
    punctuation, or by the boundary model when it has none (auto-captions), instead of at cue edges.
    A row marked as a change of speaker (``>>``, a ``- `` dialogue line, a cue shared by two speakers)
    always starts a turn, even when both speakers are unnamed. Each turn comes with its cues' places and
    times (none for a turn of one cue), so its sentences keep the times of the cues that showed them.
    """
    # per turn: speaker, its cues' texts, first start, last end, and each cue's (offset, start, end)
    turns: list[tuple[str, list[str], float | None, float | None, list[tuple[int, float, float]]]] = []
    length = 0  # characters of the last turn's text so far (its cues joined by single spaces)
    for (who, body, start, end), fresh in rows:
        if turns and not fresh:
            last_who, bodies, last_start, last_end, pieces = turns[-1]
            if (who == last_who and start is not None and last_end is not None and last_start is not None
                    and -1e-6 <= start - last_end <= CUE_JOIN_GAP_S + 1e-6):  # times are rounded to ms
                if not pieces:
                    pieces.append((0, last_start, last_end))
                pieces.append((length + 1, start, end if end is not None else start))
                bodies.append(body)
                length += 1 + len(body)
                turns[-1] = (who, bodies, last_start, max(end or start, last_end), pieces)
                continue
        turns.append((who, [body], start, end, []))
        length = len(body)
    return [((who, " ".join(bodies), start, end), tuple(pieces)) for who, bodies, start, end, pieces in turns]


@dataclass(slots=True)
class _Line:
    """A non-empty line of a plain-text transcript, read in the first pass."""

    number: int
    text: str
    stamp: tuple[str | None, ...] | None = None  # a time stamp in front of the line (groups of TIME_STAMP)
    bracketed: bool = False  # the stamp is in brackets ("[00:00:20] words"): a time even without a name
    label: Label | None = None
    only_stamp: bool = False  # the line is nothing but a time ("00:05:00" in a Google Meet export)
    change: bool = False  # ">>": another speaker starts


def _stamp_seconds(name: str, number: int, groups: tuple[str | None, ...], written: str) -> float:
    """A speaker line's stamp in seconds; a stamp that cannot be a time is an error naming the line."""
    seconds = _plain_seconds(groups)
    if seconds is None:
        raise _fail(name, f"line {number}: minutes and seconds must be below 60 in the time stamp "
                          f"{written.strip()[:40]!r}.",
                    "Write stamps as [HH:MM:SS] or [MM:SS], e.g. [00:01:02] Dana: ..., then run again.")
    return seconds


_STAMP_GROUPS = re.compile(_TS)


def _read_plain_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _MARKDOWN_LABEL.sub(r"\2", raw.strip().lstrip("\ufeff"))  # "**Dana:** Hi." is "Dana: Hi."
        if not line:
            continue
        only = read_stamp_line(line)
        if only is not None:
            match = _STAMP_GROUPS.search(only)
            lines.append(_Line(number, line, match.groups() if match else None, True, only_stamp=True))
            continue
        entry = _Line(number, line)
        chevrons = _CHEVRONS.match(line)
        if chevrons:
            entry.change, line = True, line[chevrons.end():]
            entry.text = line
        timed = _LEADING_TIME.match(line)
        if timed:
            entry.stamp = timed.groups()
            entry.bracketed = line.lstrip()[:1] in "[("
            label = read_label(line[timed.end():])
            entry.label = replace(label, stamped=True) if label is not None else None
        else:
            entry.label = read_label(line)
        lines.append(entry)
    _drop_untimely_labels(lines)
    return lines


def _plain_seconds(groups: tuple[str | None, ...] | None) -> float | None:
    """A stamp's seconds, or ``None`` when it cannot be a time (``99:99:99``)."""
    if groups is None or (groups[0] is not None and int(groups[1] or 0) >= 60) or int(groups[2] or 0) >= 60:
        return None
    return _seconds(groups)


def _label_seconds(label: Label) -> float | None:
    match = _STAMP_GROUPS.search(label.time or "")
    return _plain_seconds(match.groups()) if match else None


def _drop_untimely_labels(lines: list[_Line]) -> None:
    """A name-and-time line (Otter, Fireflies) is a speaker's heading only when words follow it and its time
    does not go back: "Tuesday 2:30" / "Thursday 4:00" in a list of options, or an agenda ("Demo - 10:15"),
    are words."""
    last = -1.0
    for i, line in enumerate(lines):
        if line.label is None or line.label.shape != "timed":
            continue
        after = lines[i + 1] if i + 1 < len(lines) else None
        seconds = _label_seconds(line.label)
        followed = after is not None and not after.only_stamp and (after.label is None or after.label.shape != "timed")
        if not followed or seconds is None or seconds < last:
            line.label = None
            continue
        last = seconds


def _parse_plain(name: str, text: str, roles: dict[str, str] | None = None) -> list[Row]:
    """Plain-text transcripts: ``Name: text`` lines (a line without a name continues the current speaker's
    turn), a label alone on its line with the words below it (``Name:``, Rev's ``Speaker 1 (00:01):``,
    Otter's ``Name  0:02``, Fireflies' ``Name - 00:04``, Zoom's ``[Name] 14:23:05``), each optionally led by
    a time stamp (``[00:01:02] Name: text``); a stamped turn lasts until the next turn's stamp. Which labels
    are names is decided over the whole file (:func:`~pipeline.ingest.speaker_labels.speakers`).

    In a stamped export (two stamps or more), a line of only a time (Google Meet) stamps the turn after it,
    and a bracketed stamp before words without a name starts a new paragraph of the current speaker, as
    long as the time fits between the stamps around it; otherwise such a line is words ("Tuesday" /
    "2:30").

    A role word in brackets after a name (``Lee (customer): ...``) is added to ``roles`` (the first
    one said for a speaker), where given."""
    lines = _read_plain_lines(text)
    typed = capitalised(line.label.text if line.label is not None else line.text for line in lines)
    accepted = speakers((line.label for line in lines if line.label is not None), typed)
    named = [i for i, line in enumerate(lines) if line.label is not None and line.label.name in accepted]
    headings = [i for i, line in enumerate(lines[:named[0]] if named else []) if line.text.casefold() in _MEET_HEADINGS]
    if headings:
        lines = lines[headings[-1] + 1:]  # a Google Meet export's title and attendee list, above the first speaker
    if lines and _MEET_END.match(lines[-1].text):
        lines = lines[:-1]  # "Meeting ended after 00:12:41", the last line of a Google Meet export
    labels = [line.label if line.label is not None and line.label.name in accepted else None for line in lines]
    # the stamp each speaker line carries, and the next one after each line (a nameless stamp must fit before it)
    spoken_at = [None if label is None else _plain_seconds(line.stamp) if line.stamp is not None
                 else _label_seconds(label) for line, label in zip(lines, labels)]
    nameless = sum(1 for line, label in zip(lines, labels) if label is None and (line.only_stamp or line.bracketed))
    stamped_file = nameless + sum(at is not None for at in spoken_at) >= 2
    upcoming: list[float | None] = [None] * len(lines)
    for i in range(len(lines) - 2, -1, -1):
        upcoming[i] = spoken_at[i + 1] if spoken_at[i + 1] is not None else upcoming[i + 1]
    turns: list[tuple[str, list[str], float | None]] = []
    speaker = UNKNOWN_SPEAKER
    pending: float | None = None  # a time on a line of its own, for the turn that follows
    clock = 0.0  # the latest stamp used: a nameless one may not go back before it

    def fits(seconds: float | None, i: int) -> bool:
        return (stamped_file and seconds is not None and seconds >= clock
                and (upcoming[i] is None or seconds <= (upcoming[i] or 0.0)))

    for i, (line, label) in enumerate(zip(lines, labels)):
        stamp = None
        body = line.text
        if line.stamp is not None and label is not None:
            stamp = _stamp_seconds(name, line.number, line.stamp, line.text)
            body = _LEADING_TIME.sub("", line.text, count=1)
        elif line.stamp is not None and (line.bracketed or line.only_stamp):
            seconds = _plain_seconds(line.stamp)
            if fits(seconds, i):
                if line.only_stamp:
                    pending = seconds
                    continue
                stamp, body = seconds, _LEADING_TIME.sub("", line.text, count=1)
            # otherwise a time said as words ("Tuesday" / "2:30"), kept as the line's text
        if label is not None:
            speaker, body = label.name, label.text
            _note_role(roles, speaker, label.bracket)
            match = _STAMP_GROUPS.search(label.time or "")
            if stamp is None and match is not None:
                stamp = _stamp_seconds(name, line.number, match.groups(), label.time or "")
        elif line.change:
            speaker = UNKNOWN_SPEAKER
        if stamp is None and pending is not None and (label is not None or line.change):
            stamp, pending = pending, None
        if stamp is not None:
            clock = max(clock, stamp)
        if label is not None or line.change or stamp is not None:
            turns.append((speaker, [body] if body else [], stamp))
        elif turns and turns[-1][0] == speaker:
            turns[-1][1].append(body)
        else:
            turns.append((speaker, [body], None))
    turns = [turn for turn in turns if turn[1]]
    clocked = [label for label in labels if label is not None and label.time is not None]
    if clocked and all(label.clock for label in clocked):  # times of day (Zoom's saved captions): from 0
        first = min((start for _who, _parts, start in turns if start is not None), default=0.0)
        turns = [(who, parts, None if start is None else start - first) for who, parts, start in turns]
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


def _without_annotations(row: Row) -> Row:
    """A row's words without editorial notes ("[inaudible 00:00:09]", "[laughs]", "(crosstalk)"): they are not
    speech, and the sentence splitter cut "works. [laughs] We" into "works. [" and "laughs] We"."""
    speaker, body, start, end = row
    if "[" in body or "(" in body:
        stripped = _ANNOTATION.sub(" ", body)
        if stripped != body:
            body = _SPACE_BEFORE_STOP.sub(r"\1", " ".join(stripped.split()))
    return speaker, body, start, end


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
    cues: list[tuple[Row, Pieces]] | None = None
    if fmt == "json":
        call_id, rows = _parse_json(name, text)
    elif fmt == "vtt":
        if not text.lstrip("\ufeff").lstrip().startswith("WEBVTT"):
            raise _fail(name, "a WebVTT file must start with 'WEBVTT'.", "Check the file is WebVTT.")
        cues = _parse_cues(name, text, "WebVTT", roles)
    elif fmt == "srt":
        cues = _parse_cues(name, text, "SRT", roles)
    elif fmt == "txt":
        rows = _parse_plain(name, text, roles)
    else:
        raise _fail(name, f"unknown transcript format {fmt!r}.", "Use json, vtt, srt or txt.")
    if cues is None:
        cues = [(row, ()) for row in rows]
    # a note left in a joined turn (one cut by a cue edge) changes its text: its cues' places no longer hold
    cleaned = [(clean, pieces if clean == row else ()) for clean, row, pieces in
               ((_without_annotations(row), row, pieces) for row, pieces in cues)]
    cleaned = [(row, pieces) for row, pieces in cleaned if row[1]]
    rows = [row for row, _pieces in cleaned]
    if not rows:
        raise _fail(name, "the transcript contains no spoken text.",
                    "Check the export: every turn is empty or missing, or holds only notes such as [inaudible].")
    for i, (speaker, body, _start, _end) in enumerate(rows):
        if len(body) > MAX_TURN_CHARS:
            raise _fail(name, f"turn {i + 1} ({speaker!r}) is {len(body):,} characters long without a speaker change "
                              f"(the limit is {MAX_TURN_CHARS:,}).",
                        "Put each speaker turn on its own line ('Name: text'), or one entry per turn in JSON.")
    return ParsedTranscript(call_id=call_id, turns=estimate_timings(rows, words_per_minute,
                                                                    [pieces for _row, pieces in cleaned]),
                            roles=roles)


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
