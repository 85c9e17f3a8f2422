"""scripts/import_ami.py on a tiny hand-made NXT folder (no network, no mirror)."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_ami.py"
NS = 'xmlns:nite="http://nite.sourceforge.net/"'


@pytest.fixture(scope="module")
def importer():
    spec = importlib.util.spec_from_file_location("import_ami", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _w(mid: str, n: int, text: str, t0: float, t1: float, punc: bool = False) -> str:
    p = ' punc="true"' if punc else ""
    return f'<w nite:id="{mid}.words{n}" starttime="{t0}" endtime="{t1}"{p}>{text}</w>'


def _dact(n: int, type_id: str | None, href: str) -> str:
    ptr = f'<nite:pointer role="da-aspect" href="da-types.xml#id({type_id})"/>' if type_id else ""
    return f'<dact nite:id="d{n}">{ptr}<nite:child href="{href}"/></dact>'


def _make_corpus(root: Path) -> None:
    for d in ("words", "dialogueActs", "ontologies"):
        (root / d).mkdir(parents=True)
    (root / "ontologies" / "da-types.xml").write_text(
        f'<?xml version="1.0" encoding="ISO-8859-1"?><da-type nite:id="root" name="da-type" {NS}>'
        '<da-type nite:id="c0" name="minor"><da-type nite:id="ami_da_1" name="bck"/></da-type>'
        '<da-type nite:id="c1" name="task"><da-type nite:id="ami_da_4" name="inf"/>'
        '<da-type nite:id="ami_da_6" name="sug"/></da-type>'
        '<da-type nite:id="c3" name="other"><da-type nite:id="ami_da_7" name="off"/>'
        '<da-type nite:id="ami_da_16" name="oth"/></da-type></da-type>',
        encoding="iso-8859-1",
    )
    a = "ES2099a.A"
    b = "ES2099a.B"
    (root / "words" / f"{a}.words.xml").write_text(
        f'<nite:root nite:id="{a}.words" {NS}>'
        + _w(a, 0, "Okay", 1.0, 1.4)
        + _w(a, 1, ".", 1.4, 1.4, punc=True)
        + f'<vocalsound nite:id="{a}.words2" starttime="2.0" endtime="2.3" type="laugh"/>'
        + _w(a, 3, "I&#39;ll", 5.0, 5.2)
        + f'<disfmarker nite:id="{a}.words4" starttime="5.2" endtime="5.2"/>'
        + _w(a, 5, "send", 5.2, 5.5)
        + _w(a, 6, "it", 5.5, 5.6)
        + _w(a, 7, ".", 5.6, 5.6, punc=True)
        + f'<vocalsound nite:id="{a}.words8" starttime="9.0" endtime="9.5" type="laugh"/>'
        + "</nite:root>",
        encoding="iso-8859-1",
    )
    (root / "words" / f"{b}.words.xml").write_text(
        f'<nite:root nite:id="{b}.words" {NS}>'
        + _w(b, 0, "The", 3.0, 3.1)
        + _w(b, 1, "Budget", 3.1, 3.6)
        + _w(b, 2, "is", 3.6, 3.7)
        + _w(b, 3, "tight", 3.7, 4.0)
        + _w(b, 4, ".", 4.0, 4.0, punc=True)
        + _w(b, 5, "Mm-hmm", 6.0, 6.2)
        + "</nite:root>",
        encoding="iso-8859-1",
    )
    # One dialog-act file per speaker, as in the corpus, so rows of two speakers interleave by time.
    (root / "dialogueActs" / f"{a}.dialog-act.xml").write_text(
        f'<nite:root nite:id="{a}.dialog-act" {NS}>'
        + _dact(1, "ami_da_1", f"{a}.words.xml#id({a}.words0)..id({a}.words1)")
        + _dact(2, "ami_da_7", f"{a}.words.xml#id({a}.words3)..id({a}.words7)")
        + _dact(3, "ami_da_16", f"{a}.words.xml#id({a}.words8)")
        + _dact(4, None, f"{a}.words.xml#id({a}.words2)")
        + "</nite:root>",
        encoding="iso-8859-1",
    )
    (root / "dialogueActs" / f"{b}.dialog-act.xml").write_text(
        f'<nite:root nite:id="{b}.dialog-act" {NS}>'
        + _dact(1, "ami_da_4", f"{b}.words.xml#id({b}.words0)..id({b}.words4)")
        + _dact(2, "ami_da_6", f"{b}.words.xml#id({b}.words5)")
        + "</nite:root>",
        encoding="iso-8859-1",
    )
    # adjacency pairs and other layers are ignored
    (root / "dialogueActs" / "ES2099a.adjacency-pairs.xml").write_text(f"<nite:root {NS}/>")


def _read(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_rows_order_text_and_labels(importer, tmp_path):
    src = tmp_path / "release" / "ami_public_manual_1.6.2"
    _make_corpus(src)
    out = tmp_path / "out" / "ami.jsonl.gz"
    # the annotation root is found below the given folder
    assert importer.main(["--dir", str(tmp_path / "release"), "--out", str(out)]) == 0
    rows = _read(out)

    assert [r["id"] for r in rows] == [f"ami-ES2099a-{i:06d}" for i in range(6)]
    assert [r["index"] for r in rows] == list(range(6))
    assert [r["text"] for r in rows] == [
        "okay .",  # A 1.0   bck
        "",  # A 2.0   only a laugh, no type
        "the budget is tight .",  # B 3.0 inf
        "i'll send it .",  # A 5.0   off  (disfluency marker dropped, entity decoded)
        "mm-hmm",  # B 6.0   sug
        "",  # A 9.0   oth, laugh only
    ]
    assert [r["speaker"] for r in rows] == [
        "ES2099a.A",
        "ES2099a.A",
        "ES2099a.B",
        "ES2099a.A",
        "ES2099a.B",
        "ES2099a.A",
    ]
    assert [r["da_type"] for r in rows] == ["bck", "", "inf", "off", "sug", "oth"]
    assert [(r["talk_action"], r["stage"]) for r in rows] == [
        ("talk", "other"),
        (None, None),
        ("talk", None),
        (None, None),  # off: unlabelled after the spot-check
        (None, None),  # sug: unlabelled after the spot-check
        (None, None),
    ]
    assert rows[2]["start_s"] == 3.0 and rows[2]["end_s"] == 4.0
    assert rows[3]["start_s"] == 5.0 and rows[3]["end_s"] == 5.6
    assert all(r["source"] == "ami" and r["group"] == "ES2099a" for r in rows)
    assert rows[0]["origin"] == "ami-manual-1.6.2:dialogueActs/ES2099a.A.dialog-act.xml"
    assert rows[2]["origin"] == "ami-manual-1.6.2:dialogueActs/ES2099a.B.dialog-act.xml"
    assert set(rows[0]) == {
        "id",
        "text",
        "stage",
        "talk_action",
        "source",
        "group",
        "speaker",
        "index",
        "start_s",
        "end_s",
        "da_type",
        "origin",
    }


def test_output_is_byte_identical(importer, tmp_path):
    _make_corpus(tmp_path / "c")
    one, two = tmp_path / "1.jsonl.gz", tmp_path / "2.jsonl.gz"
    importer.main(["--dir", str(tmp_path / "c"), "--out", str(one)])
    importer.main(["--dir", str(tmp_path / "c"), "--out", str(two)])
    assert one.read_bytes() == two.read_bytes()
    assert one.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_series_split_rule(importer):
    assert importer.series_of("ES2002a") == "ES2002"
    assert importer.series_of("IB4003") == "IB4003"
    series = ("ES2002", "IS1008", "TS3003", "TS3004", "TS3005", "TS3006", "TS3007")
    assert [s for s in series if importer.is_heldout_series(s)] == ["IS1008", "TS3004", "TS3005", "TS3006"]
