"""Who is the rep: a role for every speaker of a call, and where the role came from.

Roles are ``rep``, ``customer``, ``manager`` and ``unknown``. Sources, strongest first:

1. ``sidecar`` — the ``speakers`` column of ``calls.csv`` maps speaker names (diarized
   ``S1``/``S2`` in order of first speech, transcript names, channel names) to roles,
   e.g. ``S1=rep;S2=customer``; a speaker named like the sidecar's ``rep`` is the rep.
2. ``channel`` — multi-channel audio: the channel layout (``--channel-speakers``, default
   ``rep,customer``) names each channel's role.
3. ``name`` — a transcript speaker called by a role word (rep, agent, customer, caller,
   prospect, manager, director …: :data:`pipeline.schema.ROLE_WORDS`).
4. ``model`` — for the rest (diarized mono audio, unnamed transcript speakers), when a role
   model is given (:mod:`pipeline.speech.rolemodel`, shipped in ``models/roles/``): each
   speaker's role as the model reads everything that speaker said. Several speakers may be
   reps (a pipeline review), or none (a stand-up without one); when a stronger source already
   names the call's rep, the model gives the others one of the other roles.
5. ``heuristic`` — the same speakers when no role model is given: the speaker who asks the
   most questions is the rep (a tie goes to whoever spoke first — reps open calls and ask the
   discovery questions); with two speakers the other is the customer; anyone else is
   ``unknown``. The rule misreads internal meetings, where the manager asks the questions.

A call with one speaker (or diarization off: one ``mixed`` speaker) gets ``unknown`` for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pipeline.schema import ROLES, CallMetadata, Turn, role_word

if TYPE_CHECKING:
    from pipeline.speech.rolemodel import RoleModel

__all__ = ["ROLES", "ROLE_SOURCES", "assign_roles"]

ROLE_SOURCES = ("sidecar", "channel", "name", "model", "heuristic")


def _questions(turn: Turn) -> int:
    from pipeline.speech.turns import looks_like_question

    return turn.text.count("?") or int(looks_like_question(turn.text))


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
    mapping = {k.lower(): v for k, v in meta.speaker_roles}
    roles: dict[str, tuple[str, str]] = {}
    for speaker in order:
        key = speaker.lower()
        if key in mapping:
            roles[speaker] = (mapping[key], "sidecar")
        elif meta.rep and key == meta.rep.strip().lower():
            roles[speaker] = ("rep", "sidecar")
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

            reader = model if hasattr(model, "roles") else model()  # type: ignore[operator]
            documents = speaker_documents((t.speaker, t.text) for t in turns if t.speaker in rest)
            # the call's rep named by the sidecar or a name is its rep: the others are read as the other roles
            exclude = ("rep",) if "rep" in taken else ()
            for speaker, (role, _) in reader.roles(documents, exclude=exclude).items():
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
