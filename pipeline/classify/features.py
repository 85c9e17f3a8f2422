"""Text features for the classifiers: TF-IDF n-grams plus spaCy Matcher cues.

:class:`CueFeatures` is a scikit-learn transformer that counts linguistic cues with a
``spacy.blank("en")`` tokenizer and token ``Matcher`` patterns: commitments
("I'll", "we will", "let me"), requests ("can you", "please"), time expressions
("by Friday", "next week", "at 10am"), decisions, review language ("last time",
"didn't work"), alignment language (goals, priorities, budget), small talk, questions,
hedges and fillers. It stores only its arguments, so it persists safely with skops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

__all__ = ["CUE_NAMES", "CueFeatures", "CompactTfidfVectorizer", "build_feature_union"]

_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
         "mon", "tue", "tues", "wed", "thu", "thurs", "fri"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december", "jan", "feb", "mar", "apr", "jun",
           "jul", "aug", "sep", "sept", "oct", "nov", "dec"]
_RELATIVE = ["today", "tomorrow", "tonight", "eod", "eow", "asap", "noon", "midday", "morning",
             "afternoon", "tonight", "weekend"]
_FUTURE_VERBS = ["send", "email", "share", "book", "schedule", "set", "get", "follow", "call",
                 "draft", "prepare", "put", "loop", "ping", "confirm", "check", "review", "own",
                 "take", "run", "sign", "deliver", "ship", "circulate", "forward", "update", "write",
                 "handle", "cover", "organize", "organise", "arrange", "invite", "finish", "start",
                 "reach", "pull", "make", "have", "do", "move", "push", "drop", "chase", "sort"]
_SUBJECTS = ["i", "we", "you", "they", "he", "she", "team", "legal", "finance", "procurement"]

# name -> list of Matcher patterns (lists of token dicts); all matched on lower-cased text.
_PATTERNS: dict[str, list[list[dict[str, Any]]]] = {
    "first_person_future": [
        [{"LOWER": {"IN": ["i'll", "we'll", "ill", "well"]}}],
        [{"LOWER": {"IN": ["i", "we"]}}, {"LOWER": {"IN": ["'ll", "will", "shall"]}}],
        [{"LOWER": {"IN": ["i", "we"]}}, {"LOWER": {"IN": ["am", "are", "'m", "'re"]}},
         {"LOWER": "going"}, {"LOWER": "to"}],
        [{"LOWER": {"IN": ["i", "we"]}}, {"LOWER": {"IN": ["'m", "'re"]}}, {"LOWER": "gonna"}],
        [{"LOWER": {"IN": ["i", "we"]}}, {"LOWER": "gonna"}],
        [{"LOWER": "let"}, {"LOWER": {"IN": ["me", "us"]}}],
        [{"LOWER": "let"}, {"LOWER": "'s"}],
        [{"LOWER": "lets"}],
    ],
    "commit_verb": [
        [{"LOWER": {"IN": ["'ll", "will", "gonna", "i'll", "we'll"]}}, {"LOWER": {"IN": _FUTURE_VERBS}}],
        [{"LOWER": {"IN": ["'ll", "will", "i'll", "we'll"]}}, {"LOWER": {"IN": ["have", "get"]}},
         {"OP": "?"}, {"LOWER": {"IN": ["to", "over", "back", "done", "ready"]}}],
        [{"LOWER": {"IN": ["i", "we"]}}, {"LOWER": {"IN": ["commit", "promise", "guarantee", "agree"]}}],
        [{"LOWER": {"IN": ["i", "we"]}}, {"LOWER": {"IN": ["can", "could"]}}, {"LOWER": {"IN": _FUTURE_VERBS}}],
        [{"LOWER": {"IN": ["you", "they", "legal", "finance"]}}, {"LOWER": {"IN": ["will", "'ll"]}},
         {"LOWER": {"IN": _FUTURE_VERBS}}],
    ],
    "request": [
        [{"LOWER": {"IN": ["can", "could", "would", "will"]}}, {"LOWER": {"IN": ["you", "your", "ya"]}}],
        [{"LOWER": "please"}],
        [{"LOWER": {"IN": ["need", "want"]}}, {"LOWER": "you"}, {"LOWER": "to"}],
        [{"LOWER": "i"}, {"LOWER": {"IN": ["need", "want", "'d"]}}, {"OP": "?"}, {"LOWER": {"IN": ["you", "from"]}}],
        [{"LOWER": "make"}, {"LOWER": "sure"}, {"LOWER": "you"}],
        [{"LOWER": {"IN": ["send", "share", "book", "forward", "schedule", "email", "loop", "put",
                            "cancel", "sign", "approve", "confirm"]}, "IS_SENT_START": True}],
    ],
    "acceptance": [
        [{"LOWER": {"IN": ["yes", "yep", "yeah", "sure", "ok", "okay", "fine", "deal", "done", "agreed",
                            "absolutely", "perfect", "great"]}, "IS_SENT_START": True},
         {"IS_PUNCT": True, "OP": "?"},
         {"LOWER": {"IN": ["book", "send", "do", "go", "let", "works", "that", "put", "sign", "approved",
                            "we", "i", "lock", "count", "ship"]}}],
        [{"LOWER": {"IN": ["works", "approved", "confirmed", "signed", "booked"]}}],
        [{"LOWER": "go"}, {"LOWER": "ahead"}],
        [{"LOWER": "you"}, {"LOWER": "'ve"}, {"LOWER": "got"}, {"LOWER": "a"}, {"LOWER": "deal"}],
    ],
    "decline": [
        [{"LOWER": {"IN": ["ca", "can", "won't", "wo", "cannot"]}}, {"LOWER": {"IN": ["n't", "not"]}, "OP": "?"},
         {"LOWER": {"IN": ["commit", "sign", "do", "make", "agree", "approve"]}}],
        [{"LOWER": "not"}, {"LOWER": {"IN": ["this", "until", "before"]}}],
        [{"LOWER": "no"}, {"IS_PUNCT": True, "OP": "?"}, {"LOWER": {"IN": ["we", "i", "let", "that", "thanks"]}}],
    ],
    "decision": [
        [{"LOWER": {"IN": ["decided", "decision", "approved", "agreed", "final", "go-ahead", "greenlight",
                            "greenlit", "sign-off", "signoff"]}}],
        [{"LOWER": "going"}, {"LOWER": "with"}],
        [{"LOWER": "go"}, {"LOWER": "with"}],
        [{"LOWER": {"IN": ["we", "i"]}}, {"LOWER": {"IN": ["'re", "are", "am", "'m"]}},
         {"LOWER": {"IN": ["moving", "switching", "dropping", "cancelling", "canceling", "pausing", "signing"]}}],
    ],
    "time_expression": [
        [{"LOWER": {"IN": ["by", "on", "before", "until", "till", "this", "next", "every", "end", "from"]}},
         {"LOWER": {"IN": _DAYS + _MONTHS + ["week", "month", "quarter", "tomorrow", "today", "eod",
                                            "cob", "close", "friday", "noon"]}}],
        [{"LOWER": {"IN": _DAYS + _RELATIVE}}],
        [{"LIKE_NUM": True}, {"LOWER": {"IN": ["am", "pm", "a.m.", "p.m.", "o'clock", "th", "st", "nd", "rd"]}}],
        [{"TEXT": {"REGEX": r"^\d{1,2}(:\d{2})?(am|pm)$"}}],
        [{"LOWER": {"IN": ["q1", "q2", "q3", "q4", "h1", "h2"]}}],
        [{"LOWER": "end"}, {"LOWER": "of"}, {"LOWER": {"IN": ["day", "week", "month", "quarter", "year"]}}],
        [{"LOWER": "within"}, {"OP": "?"}, {"LOWER": {"IN": ["hour", "hours", "day", "days", "week", "weeks"]}}],
        [{"LOWER": "in"}, {"LIKE_NUM": True}, {"LOWER": {"IN": ["days", "weeks", "hours", "minutes"]}}],
    ],
    "next_step": [
        [{"LOWER": "next"}, {"LOWER": {"IN": ["step", "steps", "action", "actions"]}}],
        [{"LOWER": {"IN": ["owner", "owns", "owning", "deadline", "follow-up", "followup", "invite",
                            "calendar", "kickoff", "kick-off", "action", "todo", "to-do"]}}],
        [{"LOWER": "follow"}, {"LOWER": "up"}],
        [{"LOWER": "who"}, {"LOWER": {"IN": ["owns", "is", "'s"]}},
         {"LOWER": {"IN": ["doing", "owning", "on"]}, "OP": "?"}],
    ],
    "vague_intent": [
        [{"LOWER": {"IN": ["should", "could", "might", "maybe", "probably", "someday", "eventually", "perhaps"]}}],
        [{"LOWER": "at"}, {"LOWER": "some"}, {"LOWER": "point"}],
        [{"LOWER": "sometime"}],
        [{"LOWER": "we"}, {"LOWER": "'ll"}, {"LOWER": "see"}],
        [{"LOWER": "circle"}, {"LOWER": "back"}],
    ],
    "review": [
        [{"LOWER": {"IN": ["last", "previous", "past"]}}, {"LOWER": {"IN": ["time", "week", "quarter", "month",
                                                                              "year", "call", "sprint", "meeting"]}}],
        [{"LOWER": {"IN": ["went", "worked", "happened", "slipped", "missed", "lost", "failed", "broke", "dropped",
                            "stalled", "churned", "learned", "learnt", "realized", "realised", "noticed", "turned"]}}],
        [{"LOWER": {"IN": ["did", "does", "was", "were", "has", "had"]}}, {"LOWER": {"IN": ["n't", "not"]}}],
        [{"LOWER": {"IN": ["should", "could", "would"]}}, {"LOWER": {"IN": ["'ve", "have"]}}],
        [{"LOWER": {"IN": ["lesson", "lessons", "feedback", "retro", "retrospective", "post-mortem",
                            "postmortem", "debrief", "root", "mistake", "mistakes", "outage", "incident",
                            "instead", "anymore", "differently", "again", "recap", "review"]}}],
        [{"LOWER": "looking"}, {"LOWER": "back"}],
        [{"LOWER": {"IN": ["going", "moving"]}}, {"LOWER": "forward"}],
        [{"LOWER": "from"}, {"LOWER": "now"}, {"LOWER": "on"}],
    ],
    "align": [
        [{"LOWER": {"IN": ["goal", "goals", "priority", "priorities", "objective", "objectives", "success",
                            "criteria", "budget", "budgets", "pain", "challenge", "challenges", "problem",
                            "agenda", "purpose", "outcome", "outcomes", "requirements", "needs", "decide",
                            "decides", "decision-maker", "stakeholders", "currently", "today", "matters",
                            "important", "impact", "why", "situation", "process", "strategy", "target"]}}],
        [{"LOWER": "what"}, {"LOWER": {"IN": ["does", "do", "is", "are", "would"]}}],
        [{"LOWER": "who"}, {"LOWER": "else"}],
        [{"LOWER": {"IN": ["hearing", "sounds"]}}, {"LOWER": {"IN": ["is", "like"]}}],
        [{"LOWER": "on"}, {"LOWER": "the"}, {"LOWER": "same"}, {"LOWER": "page"}],
    ],
    "small_talk": [
        [{"LOWER": {"IN": ["hi", "hello", "hey", "morning", "bye", "goodbye", "cheers", "thanks", "thank",
                            "weekend", "weather", "vacation", "holiday", "kids", "coffee", "football",
                            "game", "hear", "mute", "muted", "audio", "camera", "screen", "lunch", "cheers"]}}],
        [{"LOWER": "how"}, {"LOWER": {"IN": ["are", "was", "'s", "is"]}},
         {"LOWER": {"IN": ["you", "your", "it", "things"]}}],
        [{"LOWER": {"IN": ["talk", "speak", "see", "catch"]}}, {"LOWER": "you"}],
        [{"LOWER": "have"}, {"LOWER": "a"}, {"LOWER": {"IN": ["good", "great", "nice"]}}],
    ],
    "blame_excuse": [
        [{"LOWER": {"IN": ["because", "fault", "blame", "excuse", "honestly", "frankly", "anyway", "whatever",
                            "ridiculous", "apparently", "rumor", "rumour", "gossip", "supposedly"]}}],
        [{"LOWER": {"IN": ["they", "he", "she", "marketing", "legal", "ops", "engineering", "product"]}},
         {"LOWER": {"IN": ["never", "always", "didn't", "did", "keep", "keeps"]}}],
        [{"LOWER": {"IN": ["i", "we"]}}, {"LOWER": {"IN": ["think", "feel", "guess", "suppose", "believe", "reckon"]}}],
    ],
    "filler": [
        [{"LOWER": {"IN": ["um", "uh", "erm", "hmm", "mm", "uhm", "ah", "like", "mean", "basically", "kinda",
                            "sorta", "whatever"]}}],
    ],
    "negation": [[{"LOWER": {"IN": ["not", "n't", "no", "never", "nobody", "nothing"]}}]],
}
_QUESTION_WORDS = {"who", "what", "when", "where", "why", "how", "which"}
_AUX_START = {"can", "could", "would", "will", "should", "do", "does", "did", "is", "are", "was",
              "were", "have", "has", "shall", "may"}

#: Column names of :class:`CueFeatures` output, in order.
CUE_NAMES: tuple[str, ...] = (*_PATTERNS.keys(), "question_mark", "wh_question", "aux_question",
                              "imperative_start", "n_tokens_log", "short_utterance", "digits")


class CueFeatures(TransformerMixin, BaseEstimator):
    """Counts of commitment, request, time, review, alignment and small-talk cues.

    Parameters:
        scale: divide counts by this (keeps the cue columns on the TF-IDF scale).

    The spaCy tokenizer and ``Matcher`` are rebuilt lazily after loading and never stored
    in the artifact.
    """

    def __init__(self, scale: float = 2.0) -> None:
        self.scale = scale

    def fit(self, X: Any, y: Any = None) -> CueFeatures:  # noqa: N803 - sklearn naming
        self.n_features_in_ = 1
        return self

    def _tools(self) -> tuple[Any, Any]:
        tools = self.__dict__.get("_tools_cache")
        if tools is None:
            import spacy
            from spacy.matcher import Matcher

            nlp = spacy.blank("en")
            matcher = Matcher(nlp.vocab)
            for name, patterns in _PATTERNS.items():
                matcher.add(name, patterns)
            tools = (nlp, matcher)
            self.__dict__["_tools_cache"] = tools
        return tools

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_tools_cache", None)
        return state

    def transform(self, X: Any) -> sparse.csr_matrix:  # noqa: N803 - sklearn naming
        nlp, matcher = self._tools()
        names = list(_PATTERNS.keys())
        index = {nlp.vocab.strings[name]: i for i, name in enumerate(names)}
        rows = np.zeros((len(X), len(CUE_NAMES)), dtype=np.float32)
        texts = [str(t).lower() for t in X]
        for r, doc in enumerate(nlp.pipe(texts, batch_size=256)):
            for match_id, _start, _end in matcher(doc):
                rows[r, index[match_id]] += 1.0
            tokens = [t.text for t in doc if not t.is_punct]
            first = tokens[0] if tokens else ""
            rows[r, len(names) + 0] = float(texts[r].rstrip().endswith("?"))
            rows[r, len(names) + 1] = float(first in _QUESTION_WORDS)
            rows[r, len(names) + 2] = float(first in _AUX_START)
            rows[r, len(names) + 3] = float(first in {"send", "book", "share", "let", "please", "put",
                                                      "loop", "schedule", "cancel", "go", "make", "get"})
            rows[r, len(names) + 4] = np.log1p(len(tokens))
            rows[r, len(names) + 5] = float(len(tokens) <= 3)
            rows[r, len(names) + 6] = float(any(t.like_num for t in doc))
        rows = np.minimum(rows, 3.0) / self.scale
        return sparse.csr_matrix(rows)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"cue__{n}" for n in CUE_NAMES], dtype=object)


class CompactTfidfVectorizer(TfidfVectorizer):
    """``TfidfVectorizer`` whose fitted vocabulary is saved as two arrays instead of a dict.

    skops restores a dict item by item, which made loading a 60,000-term vocabulary take
    seconds; as a string array and an index array it loads as two ``.npy`` blocks. Behaviour
    is identical to ``TfidfVectorizer``.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        vocab = state.pop("vocabulary_", None)
        if vocab is not None:
            terms = list(vocab)
            state["_vocab_terms"] = np.asarray(terms, dtype=str)
            state["_vocab_index"] = np.asarray([vocab[t] for t in terms], dtype=np.int64)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        terms = state.pop("_vocab_terms", None)
        index = state.pop("_vocab_index", None)
        if terms is not None and index is not None:
            state["vocabulary_"] = dict(zip(terms.tolist(), index.tolist()))
        super().__setstate__(state)


def build_feature_union(word_ngrams: tuple[int, int] = (1, 2), char_ngrams: tuple[int, int] = (2, 5),
                        min_df: int = 2, cues: bool = True) -> FeatureUnion:
    """TF-IDF word n-grams + TF-IDF character n-grams (robust to ASR misspellings) + cues."""
    parts: list[tuple[str, Any]] = [
        ("word", CompactTfidfVectorizer(ngram_range=word_ngrams, min_df=min_df, sublinear_tf=True,
                                 lowercase=True, token_pattern=r"(?u)\b\w[\w']*\b")),
        ("char", CompactTfidfVectorizer(analyzer="char_wb", ngram_range=char_ngrams, min_df=min_df,
                                 sublinear_tf=True, lowercase=True, max_features=60000)),
    ]
    if cues:
        parts.append(("cues", CueFeatures()))
    return FeatureUnion(parts)
