"""Who is the rep: a role for every speaker of a call, and where the role came from.

Roles are ``rep``, ``customer``, ``manager`` and ``unknown``. Sources, strongest first:

1. ``sidecar`` — the ``speakers`` column of ``calls.csv`` maps speaker names (diarized
   ``S1``/``S2`` in order of first speech, transcript names, channel names) to roles,
   e.g. ``S1=rep;S2=customer``; a speaker named like the sidecar's or the file name's ``rep`` is the
   rep (:func:`names_match`: "Ben" in the transcript is "Ben Okafor" in ``calls.csv``, and the other way
   round, when no other speaker matches as well).
2. ``channel`` — multi-channel audio: the channel layout (``--channel-speakers``, default
   ``rep,customer``) names each channel's role.
3. ``name`` — a transcript speaker called by a role word (rep, agent, customer, caller,
   prospect, manager, director …: :data:`pipeline.schema.ROLE_WORDS`).
4. ``model`` — for the rest (diarized mono audio, unnamed transcript speakers), when a role
   model is given (:mod:`pipeline.speech.rolemodel`, shipped in ``models/roles/``): each
   speaker's role as the model reads everything that speaker said. Several speakers may be
   reps (a pipeline review), or none (a stand-up without one); when a stronger source already
   names the call's rep, the model gives the others one of the other roles. Of two speakers exactly
   one is the rep (the one the model finds likelier to be): a call between two reps or between two
   customers is not a sales call.
5. ``heuristic`` — the same speakers when no role model is given: the speaker who asks the
   most questions is the rep (a tie goes to whoever spoke first — reps open calls and ask the
   discovery questions); with two speakers the other is the customer; anyone else is
   ``unknown``. The rule misreads internal meetings, where the manager asks the questions.

A call with one speaker (or diarization off: one ``mixed`` speaker) gets ``unknown`` for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from pipeline.schema import ROLES, CallMetadata, Turn, role_word

if TYPE_CHECKING:
    from pipeline.speech.rolemodel import RoleModel

__all__ = ["ROLES", "ROLE_SOURCES", "assign_roles", "best_matches", "names_match", "sidecar_roles"]

ROLE_SOURCES = ("sidecar", "channel", "name", "model", "heuristic")


#: Titles dropped before names are compared ("Dr. Dana Whitfield" is "Dana Whitfield").
_TITLES = frozenset("dr mr mrs ms mx prof sir dame".split())


#: Characters inside a name's word: apostrophes (straight, curly, modifier letter) and hyphens.
_JOINERS = frozenset("'\u2019\u02bc-\u2010\u2011")


def _name_words(name: str) -> list[str]:
    """A name's words, case, accents and punctuation aside (apostrophes and hyphens join: :data:`_JOINERS`),
    titles dropped, "Last, First" turned round."""
    import unicodedata

    if name.count(",") == 1:  # "Whitfield, Dana"
        last, first = name.split(",")
        if last.strip() and first.strip() and " " not in last.strip():
            name = f"{first} {last}"
    folded = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    # an apostrophe or hyphen joins a name's parts ("O'Brien" is one word, "obrien", as "Smith-Jones" is), so
    # "O'Brien" is Kim O'Brien's last name; other punctuation separates words
    words = "".join(ch if ch.isalnum() else "" if ch in _JOINERS else " " for ch in plain).split()
    return [w for w in words if w not in _TITLES] or words


def names_match(speaker: str, rep: str) -> int:
    """How well a transcript speaker's name matches the call's rep, case, accents, punctuation, titles and
    "Last, First" order aside: 3 the same name ("Zoë Müller" is "zoe muller", "王 小明" is "王小明"), 2 the same
    words where one gives an initial ("Dana W." and "Dana Whitfield"), 1 one of them is a single word that is
    the other's first or last name ("Ben" and "Ben Okafor"), 0 no match."""
    a, b = _name_words(speaker), _name_words(rep)
    if not a or not b:
        return 0
    if a == b or "".join(a) == "".join(b):
        return 3
    if len(a) == len(b) and all(x == y or (min(len(x), len(y)) == 1 and x[0] == y[0]) for x, y in zip(a, b)):
        return 2
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return 1 if len(short) == 1 and short[0] in (long[0], long[-1]) else 0


def best_matches(name: str, candidates: Sequence[str]) -> list[str]:
    """The ``candidates`` that match ``name`` best by :func:`names_match` (none when none matches at all;
    several on a tie), in the order given."""
    scored = [(names_match(candidate, name), candidate) for candidate in candidates]
    best = max((score for score, _ in scored), default=0)
    return [candidate for score, candidate in scored if score == best and best > 0]


def _rep_speaker(order: Sequence[str], rep: str | None) -> str | None:
    """The one speaker that best matches ``rep`` (:func:`best_matches`); ``None`` when none or a tie."""
    winners = best_matches(rep, order) if rep and rep.strip() else []
    return winners[0] if len(winners) == 1 else None


def _questions(turn: Turn) -> int:
    from pipeline.speech.turns import looks_like_question

    return turn.text.count("?") or int(looks_like_question(turn.text))


def sidecar_roles(speakers: Sequence[str], metadata: CallMetadata | None) -> dict[str, str]:
    """The roles ``calls.csv`` (or the file name's rep) gives a call's ``speakers``: its ``speakers`` map
    (case aside), then the rep's name (:func:`names_match`) among the speakers the map leaves out."""
    meta = metadata or CallMetadata()
    mapping = {k.lower(): v for k, v in meta.speaker_roles}
    given = {speaker: mapping[speaker.lower()] for speaker in speakers if speaker.lower() in mapping}
    rep = _rep_speaker([speaker for speaker in speakers if speaker not in given], meta.rep)
    if rep is not None:
        given[rep] = "rep"
    return given


def assign_roles(turns: Sequence[Turn], metadata: CallMetadata | None = None, *,
                 channel_layout: bool = False,
                 model: RoleModel | Callable[[], RoleModel] | None = None,
                 declared: dict[str, str] | None = None) -> list[Turn]:
    """Return the turns with ``role`` and ``role_source`` set for every speaker.

    Args:
        turns: the call's turns in time order.
        metadata: call metadata (sidecar speaker map, rep name).
        channel_layout: the speakers are channels of a multi-channel recording, named by the
            configured channel layout.
        declared: roles the transcript gives its speakers (``Lee (customer): ...``), source
            ``name``; the sidecar's map and rep name win over them.
        model: the role model for speakers no stronger source names, or a function that loads it (called
            only when such a speaker exists); ``None`` uses the question rule.
    """
    meta = metadata or CallMetadata()
    order: list[str] = []
    for turn in turns:
        if turn.speaker not in order:
            order.append(turn.speaker)
    given_by_sidecar = sidecar_roles(order, meta)
    roles: dict[str, tuple[str, str]] = {}
    for speaker in order:
        key = speaker.lower()
        if speaker in given_by_sidecar:
            roles[speaker] = (given_by_sidecar[speaker], "sidecar")
        elif channel_layout:
            roles[speaker] = (role_word(key) or "unknown", "channel")
        elif declared and speaker in declared:
            roles[speaker] = (declared[speaker], "name")
        elif role_word(key):
            roles[speaker] = (role_word(key) or "unknown", "name")
    rest = [s for s in order if s not in roles]
    if rest:
        taken = {role for role, _ in roles.values()}
        if len(order) == 1:
            roles[rest[0]] = ("unknown", "heuristic")
        elif model is not None:
            from pipeline.speech.rolemodel import speaker_documents

            reader = cast("RoleModel", model if hasattr(model, "roles") else model())  # type: ignore[operator]
            documents = speaker_documents((t.speaker, t.text) for t in turns if t.speaker in rest)
            # the call's rep named by the sidecar or a name is its rep: the others are read as the other roles
            exclude = ("rep",) if "rep" in taken else ()
            given = reader.roles(documents, exclude=exclude)
            if len(order) == 2 and len(rest) == 2 and "rep" in reader.classes:  # neither named: one is the rep
                probabilities = np.asarray(reader.probabilities([documents[s] for s in rest]))
                likelier = probabilities[:, list(reader.classes).index("rep")]
                rep = rest[int(likelier.argmax())]
                other = reader.roles({s: documents[s] for s in rest if s != rep}, exclude=("rep",))
                given = {rep: ("rep", float(likelier.max())), **other}
            for speaker, (role, _) in given.items():
                roles[speaker] = (role, "model")
        else:
            if "rep" not in taken:
                asked = {s: sum(_questions(t) for t in turns if t.speaker == s) for s in rest}
                rep = max(rest, key=lambda s: (asked[s], -order.index(s)))
                roles[rep] = ("rep", "heuristic")
                rest.remove(rep)
            if len(order) == 2 and len(rest) == 1 and "customer" not in taken:
                roles[rest[0]] = ("customer", "heuristic")
            else:
                for speaker in rest:
                    roles[speaker] = ("unknown", "heuristic")
    return [dataclasses.replace(t, role=roles[t.speaker][0], role_source=roles[t.speaker][1]) for t in turns]
