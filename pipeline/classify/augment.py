"""Speech-like copies of written training text: what a transcript does to a clean sentence.

The written corpus is clean prose; what the classifiers read at run time is a recogniser's
transcript of loose speech — punctuation that moves between runs (". " against ", "), casing
that comes and goes, dropped and repeated words, fillers. A classifier that leans on one exact
token swings when a re-exported file changes one word (BENCHMARKS.md, stability). Training on
noised copies of the written conversations, next to the originals, asks it to read the same
label through those changes.

The noise is seeded per row (a hash of the row id and the copy number), so a copy is the same
on every machine and run.
"""

from __future__ import annotations

import hashlib
import random
import re

__all__ = ["speech_noise", "FILLER_WORDS"]

#: Fillers a transcript of loose speech carries.
FILLER_WORDS = ("uh", "um", "you know", "like", "so", "yeah")

_TOKEN = re.compile(r"\S+")
_TRAILING = re.compile(r"[.,!?;:]+$")


def _rng(row_id: str, copy: int, salt: int) -> random.Random:
    key = f"{row_id}\x00{copy}" + (f"\x00{salt}" if salt else "")
    digest = hashlib.sha256(key.encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def speech_noise(text: str, row_id: str, copy: int = 1, drop: float = 0.06, repeat: float = 0.04,
                 filler: float = 0.05, punctuation: float = 0.5, salt: int = 0) -> str:
    """A transcript-like variant of ``text``, the same for the same ``row_id``, ``copy`` and ``salt``.

    Per word: dropped with probability ``drop`` (never the only word), repeated with ``repeat``
    (a disfluent restart), preceded by a filler with ``filler``. Each punctuation mark inside the
    text is, with probability ``punctuation``, removed or swapped for a comma or full stop; half
    of the copies are lower-cased throughout, as many transcripts are.
    """
    rng = _rng(row_id, copy, salt)
    words = _TOKEN.findall(text)
    if not words:
        return text
    out: list[str] = []
    for i, word in enumerate(words):
        if len(words) > 2 and rng.random() < drop:
            continue
        if rng.random() < filler:
            out.append(rng.choice(FILLER_WORDS))
        mark = _TRAILING.search(word)
        if mark and i < len(words) - 1 and rng.random() < punctuation:
            word = word[: mark.start()] + rng.choice(("", ",", "."))
        if rng.random() < repeat:
            out.append(_TRAILING.sub("", word))
        out.append(word)
    noised = " ".join(w for w in out if w)
    if rng.random() < 0.5:
        noised = noised.lower()
    return noised or text
