"""Word error rate: how far a transcript is from a reference, in words.

Used by the tests and by the benchmarks (``scripts/bench.py``, ``scripts/bench_stability.py``)
so that every reported WER is computed the same way.
"""

from __future__ import annotations

import re

__all__ = ["normalise_words", "word_errors", "word_error_rate"]

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise_words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed (apostrophes kept: ``don't``)."""
    return _NOT_WORD.sub(" ", text.lower()).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """``(substitutions + deletions + insertions, reference words)`` by word-level Levenshtein distance.

    Summing both parts over many files and dividing gives a corpus WER weighted by length.
    """
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    dist = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, dist[0] = dist[0], i
        for j, h in enumerate(hyp, start=1):
            cur = min(dist[j] + 1, dist[j - 1] + 1, prev + (r != h))
            prev, dist[j] = dist[j], cur
    return dist[len(hyp)], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word errors / reference words, on lower-cased words without punctuation."""
    errors, n_ref = word_errors(reference, hypothesis)
    return errors / max(1, n_ref)
