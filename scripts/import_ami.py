#!/usr/bin/env python3
"""Import the AMI Meeting Corpus dialogue acts as real-speech training / dev data.

Reads the NXT manual annotations of the AMI Meeting Corpus (release "ami_public_manual_1.6.2";
its 00README_MANUAL.txt calls it release 1.7, which changed only non-scenario word timings) and
writes ``labels/external/ami.jsonl.gz``: one row per dialogue act (DA), every DA of every meeting
that has DA annotation, in time order, mapped onto our taxonomy (/work/shared/spec/taxonomy.md).

Licence: the AMI corpus and its annotations are released under CC BY 4.0 (stated in the release's
LICENCE.txt and 00README_MANUAL.txt). See labels/external/LICENSE-AMI.md for the attribution.

Inputs (only three layers are read):

* ``words/<meeting>.<letter>.words.xml``  -- the word stream of one speaker: ``<w>`` tokens with
  ``starttime``/``endtime`` (punctuation is a ``<w punc="true">``) plus non-word elements
  (``vocalsound``, ``disfmarker``, ``gap``, ``transformerror``, ...).
* ``dialogueActs/<meeting>.<letter>.dialog-act.xml`` -- ``<dact>`` elements; a
  ``<nite:child href="X.words.xml#id(first)..id(last)">`` names a contiguous range of the words
  file (or a single ``#id(x)``), and ``<nite:pointer role="da-aspect" href="da-types.xml#id(..)">``
  names the DA type.
* ``ontologies/da-types.xml`` -- the DA type ontology (``ami_da_4`` -> ``inf`` etc.).

Source: either a plain folder (the extracted release, or any folder holding the three
sub-folders above) with ``--dir``, or a git mirror with ``--git-dir`` and ``--commit``; blobs are
then read with ``git cat-file`` at that commit, so the output is reproducible from the commit.
The annotation root inside the source is found automatically (the folder holding
``ontologies/da-types.xml``) unless ``--prefix`` is given.

Row fields::

    id          "ami-<meeting>-<index:06d>"
    text        the DA's <w> tokens (words and punctuation as the words file has them, truncated
                words included), lowercased, joined with single spaces; non-word elements
                (vocal sounds, disfluency markers, gaps, transform errors) are dropped
    stage       align / act / adjust / other or null (see MAPPING)
    talk_action talk / action or null
    source      "ami"
    group       meeting id, e.g. "ES2002a"
    speaker     "<meeting>.<letter>", e.g. "ES2002a.B"
    index       0-based position of the DA in the meeting after sorting
    start_s     earliest start time of a timed element in the DA's range (seconds)
    end_s       latest end time of a timed element in the DA's range (seconds)
    da_type     AMI short tag (inf, sug, off, el.sug, ...) or "" when the DA has no type
    origin      "ami-manual-1.6.2:dialogueActs/<file>"

Order: meetings sorted by id; within a meeting by (start_s, end_s, speaker letter, position of
the DA in its file). DAs without any timed element (none in release 1.6.2) would inherit the
start/end of the previous DA of the same speaker so that they keep their place.
The gzip is written with mtime=0 and no file name, so equal input gives equal bytes.

Label mapping (AMI DA tag -> talk_action, stage); justified in docs/REALDATA.md:

    off     Offer                          -> null,   null  (spot-check: 24/80 fit action)
    sug     Suggest                        -> null,   null  (spot-check: 5/40 fit action)
    el.sug  Elicit-Offer-Or-Suggestion     -> null,   null  (spot-check: 1/40 fit action)
    inf     Inform                         -> talk,   null  (stage unknown: align or adjust; 39/40)
    ass     Assess                         -> talk,   null  (35/40)
    el.inf, el.ass, el.und, und, be.pos, be.neg
                                           -> talk,   null
    bck     Backchannel                    -> talk,   other
    stl     Stall                          -> talk,   other
    fra     Fragment                       -> talk,   other
    oth / no type                          -> null,   null

The first draft mapped off, sug and el.sug to (action, act). Reading random rows against the
taxonomy showed that AMI's Offer is mostly the speaker announcing what they will say or present
next in the meeting ("first i'll tell you a little bit about the setting"), Suggest is mostly a
design idea or opinion about the product ("it should be made of strong plastic"), and
Elicit-Offer-Or-Suggestion is mostly a question asking for ideas or handing over the floor
("any ideas?", "who wants to go next?"). None of these is a specific commitment, request or
decision, so the three tags are unlabelled rather than taught as `action`. Consequently this
data set carries no `action` and no `act` rows: it adds real-speech `talk` and `other` only.

A DA whose text is empty after dropping non-word elements (e.g. only a laugh) keeps its row (so
neighbours and indices stay intact) but gets null for both labels.

Dev-benchmark split (not stored in the rows): a meeting series (ES2002a-d -> ES2002) is held out
by the project's one held-out rule, ``pipeline.classify.labels.is_holdout`` of ``split_key("ami", meeting)``
(what training uses); see ``is_heldout_series``. With this release that holds out IS1008, TS3004, TS3005
and TS3006 (16 meetings, 17,370 DAs).

Reproduce the committed file (the mirror is a snapshot of github.com/Hasetomo2142/ami-corpus-preprocessing,
whose folder ``ami_public_manual_1.6.2/`` holds the unchanged release)::

    python3 scripts/import_ami.py \\
        --git-dir /work/.mirror/Hasetomo2142+ami-corpus-preprocessing/repo \\
        --commit 6d845bc07b21c8862afbf38f1b1f9ab3bf40c437 \\
        --out labels/external/ami.jsonl.gz

Add ``--summary`` to print counts per tag / label and the held-out series of the dev split, and
``--sample off --sample sug ...`` to print the rows of the hand spot-check (``--sample-seed``,
default 20261202; the second ``off`` sample used seed 7).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.corpus import is_holdout, split_key  # noqa: E402

NITE = "{http://nite.sourceforge.net/}"
ORIGIN_PREFIX = "ami-manual-1.6.2:"

# AMI short tag -> (talk_action, stage).  None means "unknown" (null in the JSONL).
MAPPING: dict[str, tuple[str | None, str | None]] = {
    # off / sug / el.sug were first mapped to (action, act); the hand spot-check in
    # docs/REALDATA.md found them mostly wrong for our taxonomy, so they carry no label.
    "off": (None, None),
    "sug": (None, None),
    "el.sug": (None, None),
    "inf": ("talk", None),
    "ass": ("talk", None),
    "el.inf": ("talk", None),
    "el.ass": ("talk", None),
    "el.und": ("talk", None),
    "und": ("talk", None),
    "be.pos": ("talk", None),
    "be.neg": ("talk", None),
    "bck": ("talk", "other"),
    "stl": ("talk", "other"),
    "fra": ("talk", "other"),
    "oth": (None, None),
    "": (None, None),
}

_WORDS_FILE = re.compile(r"^(?P<meeting>[A-Z]{2}\d{4}[a-z]?)\.(?P<spk>[A-Z])\.words\.xml$")
_DA_FILE = re.compile(r"^(?P<meeting>[A-Z]{2}\d{4}[a-z]?)\.(?P<spk>[A-Z])\.dialog-act\.xml$")
_HREF = re.compile(r"^(?P<file>[^#]+)#id\((?P<first>[^)]+)\)(?:\.\.id\((?P<last>[^)]+)\))?$")


# ---------------------------------------------------------------------------------------------
# Sources


class DirSource:
    """Annotation files in a plain folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def list(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*.xml"))

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()


class GitSource:
    """Annotation files in a (bare) git repository at a fixed commit."""

    def __init__(self, git_dir: Path, commit: str):
        self.git_dir = str(git_dir)
        self.commit = self._git("rev-parse", "--verify", f"{commit}^{{commit}}").decode().strip()

    def _git(self, *args: str) -> bytes:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], check=True, capture_output=True).stdout

    def list(self) -> list[str]:
        out = self._git("ls-tree", "-r", "--name-only", "-z", self.commit)
        return sorted(p for p in out.decode("utf-8").split("\0") if p.endswith(".xml"))

    def read(self, rel: str) -> bytes:
        return self._git("cat-file", "blob", f"{self.commit}:{rel}")


def find_prefix(paths: list[str]) -> str:
    """The folder (relative to the source) that holds ontologies/da-types.xml."""
    hits = sorted(
        (p for p in paths if p == "ontologies/da-types.xml" or p.endswith("/ontologies/da-types.xml")),
        key=lambda p: (p.count("/"), p),
    )
    if not hits:
        raise SystemExit("no ontologies/da-types.xml found in the source")
    parent = PurePosixPath(hits[0]).parent.parent.as_posix()
    return "" if parent == "." else parent


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_da_types(data: bytes) -> dict[str, str]:
    """nite:id -> short name for every leaf-or-class da-type element."""
    root = ET.fromstring(data)
    return {el.get(f"{NITE}id"): el.get("name", "") for el in root.iter("da-type") if el.get(f"{NITE}id")}


def _time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        t = float(value)
    except ValueError:
        return None
    return t if t == t else None  # drop NaN


def parse_words(data: bytes) -> tuple[list[tuple[str, str | None, float | None, float | None]], dict[str, int]]:
    """Elements of a words file in document order as (tag, text, start, end), and id -> position."""
    root = ET.fromstring(data)
    elems: list[tuple[str, str | None, float | None, float | None]] = []
    pos: dict[str, int] = {}
    for el in root:
        tag = el.tag.replace(NITE, "nite:")
        nid = el.get(f"{NITE}id")
        if nid is not None:
            pos[nid] = len(elems)
        elems.append((tag, el.text, _time(el.get("starttime")), _time(el.get("endtime"))))
    return elems, pos


def _type_id(href: str | None) -> str | None:
    if not href:
        return None
    m = re.search(r"#id\(([^)]+)\)", href)
    return m.group(1) if m else None


def read_meetings(source, prefix: str) -> dict[str, list[dict]]:
    """meeting -> list of DA dicts (unsorted, without index/id)."""
    pre = f"{prefix}/" if prefix else ""
    paths = [p for p in source.list() if p.startswith(pre)]
    rel = [p[len(pre) :] for p in paths]
    da_types = parse_da_types(source.read(pre + "ontologies/da-types.xml"))

    words_cache: dict[str, tuple[list, dict]] = {}

    def words(name: str):
        if name not in words_cache:
            words_cache[name] = parse_words(source.read(pre + "words/" + name))
        return words_cache[name]

    meetings: dict[str, list[dict]] = collections.defaultdict(list)
    for r in sorted(rel):
        d, _, fname = r.rpartition("/")
        m = _DA_FILE.match(fname)
        if d != "dialogueActs" or not m:
            continue
        meeting, spk = m.group("meeting"), m.group("spk")
        root = ET.fromstring(source.read(pre + r))
        last_times: tuple[float, float] | None = None
        for n, dact in enumerate(root.iter("dact")):
            tag = ""
            for ptr in dact.findall(f"{NITE}pointer"):
                if ptr.get("role") == "da-aspect":
                    tag = da_types.get(_type_id(ptr.get("href")) or "", "")
            tokens: list[str] = []
            starts: list[float] = []
            ends: list[float] = []
            for child in dact.findall(f"{NITE}child"):
                hm = _HREF.match(child.get("href", ""))
                if not hm:
                    raise ValueError(f"{r}: cannot read href {child.get('href')!r}")
                elems, pos = words(hm.group("file"))
                a = pos[hm.group("first")]
                b = pos[hm.group("last") or hm.group("first")]
                for etag, text, t0, t1 in elems[a : b + 1]:
                    if t0 is not None:
                        starts.append(t0)
                    if t1 is not None:
                        ends.append(t1)
                    if etag == "w" and text and text.strip():
                        tokens.append(text.strip().lower())
            if starts or ends:
                start = min(starts) if starts else min(ends)
                end = max(ends) if ends else max(starts)
            elif last_times is not None:
                start, end = last_times
            else:
                start = end = 0.0
            last_times = (start, end)
            text = " ".join(tokens)
            talk_action, stage = MAPPING.get(tag, (None, None)) if text else (None, None)
            meetings[meeting].append(
                {
                    "text": text,
                    "stage": stage,
                    "talk_action": talk_action,
                    "source": "ami",
                    "group": meeting,
                    "speaker": f"{meeting}.{spk}",
                    "start_s": start,
                    "end_s": end,
                    "da_type": tag,
                    "origin": ORIGIN_PREFIX + r,
                    "_order": (start, end, spk, n),
                }
            )
    return meetings


def build_rows(source, prefix: str | None = None) -> list[dict]:
    """All rows, sorted by meeting then time, with id and index filled in."""
    if prefix is None:
        prefix = find_prefix(source.list())
    rows: list[dict] = []
    meetings = read_meetings(source, prefix)
    for meeting in sorted(meetings):
        das = sorted(meetings[meeting], key=lambda d: d["_order"])
        for i, d in enumerate(das):
            del d["_order"]
            rows.append(
                {
                    "id": f"ami-{meeting}-{i:06d}",
                    "text": d["text"],
                    "stage": d["stage"],
                    "talk_action": d["talk_action"],
                    "source": d["source"],
                    "group": d["group"],
                    "speaker": d["speaker"],
                    "index": i,
                    "start_s": d["start_s"],
                    "end_s": d["end_s"],
                    "da_type": d["da_type"],
                    "origin": d["origin"],
                }
            )
    return rows


def read_hand_labels(folder: Path, shards: Iterable[int] | None = None) -> dict[str, dict]:
    """Hand annotations of a folder of ``*.jsonl`` shards ({id, stage, talk_action}), by id.

    ``shards`` reads only ``shard-<n>.jsonl`` for those numbers (each must exist).
    """
    hand: dict[str, dict] = {}
    paths = (sorted(Path(folder).glob("*.jsonl")) if shards is None
             else [Path(folder) / f"shard-{n}.jsonl" for n in shards])
    for path in paths:
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("stage") not in {"align", "act", "adjust", "other"} or obj.get("talk_action") not in {
                    "talk", "action"}:
                raise SystemExit(f"{path}:{line_no}: bad labels {obj!r}")
            hand[obj["id"]] = obj
    return hand


def apply_hand_labels(rows: list[dict], folder: Path) -> list[dict]:
    """Overlay hand annotations (by id) on the mapped labels; drop rows with no words.

    Every row gets ``label_source``: ``hand`` when an annotator labelled it against the taxonomy
    in context, else ``mapped`` (the DA-tag mapping above). Rows whose text is empty (only a
    vocal sound) carry no words for a classifier or for context and are left out.
    """
    hand = read_hand_labels(folder)
    known = {r["id"] for r in rows}
    missing = sorted(set(hand) - known)
    if missing:
        raise SystemExit(f"hand labels for unknown ids, e.g. {missing[:3]}")
    out = []
    for row in rows:
        if not row["text"].strip():
            continue
        row = dict(row)
        if row["id"] in hand:
            row["stage"] = hand[row["id"]]["stage"]
            row["talk_action"] = hand[row["id"]]["talk_action"]
            row["label_source"] = "hand"
        else:
            row["label_source"] = "mapped"
        out.append(row)
    return out


def write_jsonl_gz(rows: list[dict], out: Path) -> None:
    """Deterministic gzip JSONL (mtime=0, no stored file name)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(payload)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)


# ---------------------------------------------------------------------------------------------
# Dev split


def series_of(meeting: str) -> str:
    """ES2002a -> ES2002; IB4003 -> IB4003 (meetings of one series share their speakers)."""
    return meeting[:-1] if meeting[-1:].islower() else meeting


def is_heldout_series(series: str) -> bool:
    """Whether training holds this meeting series out (the project's rule, not a copy of it)."""
    return is_holdout(split_key("ami", series))


def summary(rows: list[dict]) -> str:
    lines = []
    tags = collections.Counter(r["da_type"] for r in rows)
    lines.append(f"rows: {len(rows)}  meetings: {len({r['group'] for r in rows})}")
    lines.append("per da_type: " + ", ".join(f"{k or '(none)'} {v}" for k, v in tags.most_common()))
    for field in ("talk_action", "stage"):
        c = collections.Counter(r[field] for r in rows)
        lines.append(f"per {field}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0]))))
    empty = sum(1 for r in rows if not r["text"])
    lines.append(f"empty text: {empty}")
    series = sorted({series_of(r["group"]) for r in rows})
    held = [s for s in series if is_heldout_series(s)]
    side = collections.Counter(is_heldout_series(series_of(r["group"])) for r in rows)
    meet = collections.Counter(is_heldout_series(series_of(g)) for g in {r["group"] for r in rows})
    lines.append(f"series: {len(series)}; held out ({len(held)}): {' '.join(held)}")
    lines.append(f"held-out: {meet[True]} meetings, {side[True]} DAs; train: {meet[False]} meetings, {side[False]} DAs")
    return "\n".join(lines)


def sample(rows: list[dict], tag: str, n: int, seed: int) -> list[str]:
    """n random non-empty rows of one AMI tag (the hand spot-check), each with the previous DA."""
    pool = [i for i, r in enumerate(rows) if r["da_type"] == tag and r["text"]]
    out = []
    for k, i in enumerate(sorted(random.Random(seed).sample(pool, min(n, len(pool))))):
        r = rows[i]
        prev = rows[i - 1]["text"][:60] if i and rows[i - 1]["group"] == r["group"] else ""
        out.append(f"{k + 1:2d}. [{r['id']}] {r['text']}   || prev: {prev}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dir", type=Path, help="folder holding the AMI NXT annotations (or a parent of it)")
    src.add_argument("--git-dir", type=Path, help="git directory of a repository holding the annotations")
    ap.add_argument("--commit", default="HEAD", help="commit to read with --git-dir (default HEAD; pin a sha)")
    ap.add_argument("--prefix", default=None, help="annotation root inside the source (default: auto-detect)")
    ap.add_argument("--out", type=Path, default=Path("labels/external/ami.jsonl.gz"))
    ap.add_argument("--summary", action="store_true", help="print counts and the dev split")
    ap.add_argument(
        "--sample",
        metavar="TAG",
        action="append",
        default=[],
        help="print random rows of this AMI tag for a hand spot-check (repeatable)",
    )
    ap.add_argument("--hand-labels", type=Path, default=None,
                    help="folder of *.jsonl files ({id, stage, talk_action}) annotated by hand from the "
                         "taxonomy; they replace the mapped labels of those rows, and rows with no words are "
                         "dropped (labels/external/ami-hand)")
    ap.add_argument("--sample-n", type=int, default=40)
    ap.add_argument("--sample-seed", type=int, default=20261202)
    args = ap.parse_args(argv)

    source = DirSource(args.dir) if args.dir is not None else GitSource(args.git_dir, args.commit)
    rows = build_rows(source, args.prefix)
    if args.hand_labels is not None:
        rows = apply_hand_labels(rows, args.hand_labels)
    write_jsonl_gz(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    if args.summary:
        print(summary(rows))
    for tag in args.sample:
        print(f"===== {tag}")
        print("\n".join(sample(rows, tag, args.sample_n, args.sample_seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
