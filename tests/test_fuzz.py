"""Property tests: every transcript parser and the calls.csv reader either return a parsed result or
raise a PipelineError with a message; never any other exception.

Inputs are arbitrary text and bytes, and structured-but-mutated documents: random JSON trees,
canonical JSON with wrong types, random cue timing lines, random ``Name: text`` lines and
random CSV rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError, PipelineError
from pipeline.ingest.discover import read_sidecar
from pipeline.ingest.transcripts import ParsedTranscript, parse_transcript, parse_transcript_text
from pipeline.schema import CallMetadata

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])
FORMATS = ("json", "vtt", "srt", "txt")

# any code point, lone surrogates included (JSON "\udXXX" escapes produce them too)
any_text = st.text(st.characters(blacklist_categories=()), max_size=400)
names = st.one_of(
    st.sampled_from(["Dana", "Tom", "Dr. O'Neil", "[Agent]", "[ ]", "SPEAKER_01", "Zoë", "李", "-", "A" * 60, ""]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)
words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


def check_parsed(parsed: ParsedTranscript) -> None:
    """Invariants of a successful parse (what the rest of the pipeline relies on)."""
    assert isinstance(parsed, ParsedTranscript) and parsed.turns
    assert parsed.call_id is None or isinstance(parsed.call_id, str)
    if parsed.call_id is not None:
        parsed.call_id.encode("utf-8")  # writable to Parquet
    for turn in parsed.turns:
        assert isinstance(turn.speaker, str) and turn.speaker.strip()
        assert isinstance(turn.text, str) and turn.text.strip()
        turn.speaker.encode("utf-8"), turn.text.encode("utf-8")
        assert math.isfinite(turn.start_s) and math.isfinite(turn.end_s)
        assert 0 <= turn.start_s <= turn.end_s


def check_error(exc: BaseException) -> None:
    assert isinstance(exc, PipelineError), f"{type(exc).__name__}: {exc}"
    assert exc.message.strip() and str(exc).strip()
    assert exc.hint.strip(), f"no hint for: {exc.message}"


def parse_or_error(text: str, fmt: str) -> ParsedTranscript | None:
    try:
        parsed = parse_transcript_text(text, fmt, name=f"fuzz.{fmt}")
    except PipelineError as exc:
        check_error(exc)
        event(f"{fmt}: error")
        return None
    check_parsed(parsed)
    event(f"{fmt}: parsed")
    return parsed


# --- arbitrary text and bytes ------------------------------------------------------------------------

@FUZZ
@given(text=any_text, fmt=st.sampled_from(FORMATS))
@example(text="[" * 50_000, fmt="json")
@example(text='{"turns": [{"text": "hi", "start": 1' + "0" * 5000 + "}]}", fmt="json")
@example(text="WEBVTT\n\n" + "9" * 5000 + ":00:00.000 --> 00:00:01.000\nhi\n", fmt="vtt")
@example(text="1\n00:00:00,000 --> 00:00:01,000\n\n\n", fmt="srt")
def test_any_text_parses_or_explains(text: str, fmt: str) -> None:
    parse_or_error(text, fmt)
    parse_or_error("WEBVTT\n\n" + text if fmt == "vtt" else text, fmt)


@FUZZ
@given(raw=st.binary(max_size=600), bom=st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE,
                                                          codecs.BOM_UTF16_BE]),
       fmt=st.sampled_from(FORMATS))
def test_any_file_bytes_parse_or_explain(tmp_path_factory, raw: bytes, bom: bytes, fmt: str) -> None:
    path = tmp_path_factory.mktemp("bytes") / f"call.{fmt}"
    path.write_bytes(bom + raw)
    try:
        check_parsed(parse_transcript(path))
    except PipelineError as exc:
        check_error(exc)


# --- JSON: random trees, canonical documents with random values, and byte mutations ----------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                         st.text(max_size=20))
json_trees = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=4)), max_leaves=20)
turn_values = {
    "speaker": st.one_of(names, st.none(), json_trees),
    "start": st.one_of(st.floats(0, 1e4), st.floats(), st.integers(min_value=-(10**400), max_value=10**400),
                       json_trees),
    "end": st.one_of(st.floats(0, 1e4), st.floats(), st.integers(min_value=-(10**30), max_value=10**30),
                     json_trees),
    "extra": json_trees,
}
# mostly well-formed turns (so the success path is exercised), some with a text of the wrong type
turns = st.lists(st.one_of(st.fixed_dictionaries({"text": words}, optional=turn_values),
                           st.fixed_dictionaries({}, optional={**turn_values, "text": st.one_of(words, json_trees)}),
                           json_trees), max_size=6)
documents = st.fixed_dictionaries({}, optional={"call_id": st.one_of(st.text(max_size=10), json_trees),
                                                "turns": st.one_of(turns, json_trees), "meta": json_trees})
well_typed = st.fixed_dictionaries(
    {"turns": st.lists(st.fixed_dictionaries({"text": words}, optional={
        "speaker": names, "start": st.floats(0, 1e4), "end": st.floats(0, 1e4), "extra": json_trees}).filter(
            lambda t: "start" not in t or "end" not in t or t["end"] >= t["start"]),  # ending before it starts is refused
        max_size=5)},
    optional={"call_id": st.one_of(st.text(max_size=10), st.integers())})


@FUZZ
@given(doc=st.one_of(well_typed, documents, json_trees))
def test_json_documents_parse_or_explain(doc: object) -> None:
    parsed = parse_or_error(json.dumps(doc), "json")
    if parsed is not None:
        assert isinstance(doc, dict) and isinstance(doc.get("turns"), list)


@FUZZ
@given(doc=well_typed.filter(lambda d: any(t["text"].strip() for t in d["turns"])))
def test_well_typed_json_documents_parse(doc: dict) -> None:
    """A document of the documented shape with something said is read, not refused (the error path
    above would otherwise pass a parser that refused everything)."""
    parsed = parse_or_error(json.dumps(doc), "json")
    assert parsed is not None, doc
    assert [t.text for t in parsed.turns] and all(t.text.strip() for t in parsed.turns)


spoken = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEZ0123456789 ,.'?!éß李"), min_size=1,
                 max_size=60).filter(lambda w: w.strip())


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["vtt", "srt"]))
def test_well_formed_cue_files_parse(data, kind: str) -> None:
    """Cue files whose every block has a valid timing line and a spoken line are read, not refused."""
    sep = "," if kind == "srt" else "."
    blocks = []
    for index in range(data.draw(st.integers(1, 5))):
        start = data.draw(st.floats(0, 36_000))
        end = start + data.draw(st.floats(0.01, 30))
        blocks.append(f"{index + 1}\n{clock(start, sep)} --> {clock(end, sep)}\n"
                      + data.draw(spoken))
    text = ("WEBVTT\n\n" if kind == "vtt" else "") + "\n\n".join(blocks) + "\n"
    parsed = parse_or_error(text, kind)
    assert parsed is not None, text
    assert len(parsed.turns) >= 1


@st.composite
def mutated(draw, base: st.SearchStrategy[str]) -> str:
    """A document with a few random edits: cut, insert, duplicate or swap a slice."""
    text = draw(base)
    for _ in range(draw(st.integers(0, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 30)))
        action = draw(st.sampled_from(["cut", "insert", "dup", "replace"]))
        if action == "cut":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + draw(st.sampled_from(['"', "{", "}", "[", "]", ",", ":", "\\u", "\\ud800", "\n",
                                                    "-->", "\x00", "1e999", "-", "."])) + text[i:]
        elif action == "dup":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + draw(any_text.map(lambda s: s[:5])) + text[j:]
    return text


valid_json = st.builds(
    lambda cid, ts: json.dumps({"call_id": cid, "turns": [{"speaker": s, "text": t, "start": a, "end": b}
                                                          for s, t, a, b in ts]}),
    st.text(max_size=8),
    st.lists(st.tuples(names, words, st.floats(0, 1e4), st.floats(0, 1e4)), min_size=1, max_size=5),
)


@FUZZ
@given(text=mutated(valid_json))
def test_mutated_json_parses_or_explains(text: str) -> None:
    parse_or_error(text, "json")


# --- WebVTT / SRT: random timing lines and cue blocks --------------------------------------------------

digits = st.text(st.sampled_from("0123456789"), min_size=0, max_size=7)


@st.composite
def timestamps(draw) -> str:
    sep = draw(st.sampled_from([".", ",", ":", ""]))
    parts = [draw(digits) for _ in range(draw(st.integers(1, 4)))]
    stamp = ":".join(parts)
    if sep and draw(st.booleans()):
        stamp += sep + draw(digits)
    return stamp


@st.composite
def timing_lines(draw) -> str:
    arrow = draw(st.sampled_from(["-->", " --> ", "->", "-- >", "—>", "-->-->", " "]))
    settings_ = draw(st.sampled_from(["", " align:start position:10%", "garbage", " line:0"]))
    return draw(st.sampled_from(["", " ", "\t"])) + draw(timestamps()) + arrow + draw(timestamps()) + settings_


body_lines = st.one_of(
    st.builds(lambda n, t: f"{n}: {t}", names, words),
    st.builds(lambda n, t: f"<v {n}>{t}</v>", names, words),
    st.builds(lambda n, t: f"<v.loud {n}>{t}", names, words),
    words,
    st.sampled_from(["NOTE a note", "STYLE", "REGION", "1", "42", "<b>bold</b>", "-->", "WEBVTT"]),
)


def clock(seconds: float, sep: str) -> str:
    """``HH:MM:SS.mmm`` (``sep`` is ``.`` for WebVTT, ``,`` for SRT)."""
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}{sep}{int(seconds % 1 * 1000):03d}"


@st.composite
def cue_files(draw, kind: str) -> str:
    blocks = []
    for index in range(draw(st.integers(0, 6))):
        lines = []
        if draw(st.booleans()):
            lines.append(str(index + 1))
        good = draw(st.sampled_from([True, True, True, False]))
        if good:
            start = draw(st.floats(0, 36_000))
            end = start + draw(st.floats(0, 30))
            sep = "," if kind == "srt" else "."
            lines.append(f"{clock(start, sep)} --> {clock(end, sep)}")
        else:
            lines.append(draw(timing_lines()))
        lines += draw(st.lists(body_lines, max_size=3))
        blocks.append("\n".join(lines))
    joiner = draw(st.sampled_from(["\n\n", "\n", "\r\n\r\n", "\n \n", "\n\n\n"]))
    head = draw(st.sampled_from(["WEBVTT\n\n", "\ufeffWEBVTT - title\nKind: captions\n\n", "WEBVTT", ""]))
    return (head if kind == "vtt" else "") + joiner.join(blocks)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["vtt", "srt"]))
def test_cue_files_parse_or_explain(data, kind: str) -> None:
    text = data.draw(st.one_of(cue_files(kind), mutated(cue_files(kind))))
    parsed = parse_or_error(text, kind)
    if parsed is not None:
        starts = [t.start_s for t in parsed.turns]
        assert starts == sorted(starts) and not any(t.timing_estimated for t in parsed.turns)


@FUZZ
@given(line=st.one_of(timing_lines(), st.builds(lambda a, b, sep: f"{clock(a, sep)} --> {clock(b, sep)}",
                                                 st.floats(0, 1e6), st.floats(0, 1e6), st.sampled_from(".,"))),
       body=body_lines, kind=st.sampled_from(["vtt", "srt"]))
def test_single_random_timing_line(line: str, body: str, kind: str) -> None:
    parse_or_error(("WEBVTT\n\n" if kind == "vtt" else "") + f"1\n{line}\n{body}\n", kind)


# --- plain text: random "Name: text" lines --------------------------------------------------------------

plain_lines = st.one_of(
    st.builds(lambda n, sep, t: f"{n}{sep}{t}", names, st.sampled_from([": ", ":", " : ", ":\t", "："]), words),
    words,
    st.sampled_from(["", " ", "\x85", "\u2028", "\x0c", "Dana:", ": x"]),
)


@FUZZ
@given(lines=st.lists(plain_lines, max_size=12), newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_plain_text_lines_parse_or_explain(lines: list[str], newline: str) -> None:
    parsed = parse_or_error(newline.join(lines), "txt")
    if parsed is not None:
        assert all(t.timing_estimated for t in parsed.turns)


# --- calls.csv sidecar ----------------------------------------------------------------------------------

def read_or_error(path: Path) -> dict | None:
    try:
        result = read_sidecar(path)
    except InputError as exc:
        check_error(exc)
        return None
    assert isinstance(result, dict)
    for key, meta in result.items():
        assert isinstance(key, Path) and key.is_absolute() and isinstance(meta, CallMetadata)
        assert meta.call_date is None or isinstance(meta.call_date, date)
        assert meta.rep is None or (isinstance(meta.rep, str) and meta.rep == meta.rep.strip() and meta.rep)
    return result


@FUZZ
@given(raw=st.one_of(st.binary(max_size=400), any_text.map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_sidecar_any_bytes(tmp_path_factory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("csv") / "calls.csv"
    path.write_bytes(raw)
    read_or_error(path)


cells = st.one_of(words, st.sampled_from(["", " ", "2026-11-03", "2026-13-45", "11/03/2026", "a\x00b.wav",
                                          "../x.wav", "/abs/x.wav", "x" * 300, '"', "a,b", "\n"]))


@FUZZ
@given(header=st.lists(st.sampled_from(["path", " Path ", "PATH", "rep", "customer", "date", "extra", "", "path"]),
                       max_size=6),
       rows=st.lists(st.lists(cells, max_size=7), max_size=6),
       bom=st.booleans())
@example(header=["path", "rep", "customer", "date"], rows=[["call.wav", "dana", "acme", "2026-11-03"]], bom=True)
def test_sidecar_rows(tmp_path_factory, header: list[str], rows: list[list[str]], bom: bool) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("csv") / "calls.csv"
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")
    result = read_or_error(path)
    if header == ["path", "rep", "customer", "date"] and rows == [["call.wav", "dana", "acme", "2026-11-03"]]:
        assert result == {(path.parent / "call.wav").resolve(): CallMetadata("dana", "acme", date(2026, 11, 3))}


@pytest.mark.parametrize("content", ["path,rep\na\x00b.wav,x\n", " Path , Rep ,Date\ncall.wav,dana,2026-11-03\n"])
def test_sidecar_edge_cases(tmp_path: Path, content: str) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(content)
    result = read_or_error(path)
    if "\x00" in content:
        assert result is None
    else:
        assert result == {(tmp_path / "call.wav").resolve(): CallMetadata("dana", None, date(2026, 11, 3))}
