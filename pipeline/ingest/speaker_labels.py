"""Speaker labels in transcript lines: which ``Name:`` names a speaker and which is a word with a colon.

Exports write who speaks in several shapes:

- ``Dana Whitfield: text`` on one line (most tools; ``Dana (rep): text`` adds a role, ``王小明：text``
  uses the full-width colon), or the label alone on its line with the words below it (``Dana:``,
  Rev's ``Speaker 1 (00:01):``);
- a name and a time on their own line, the words below: Otter (``Dana Whitfield  0:02``),
  Fireflies (``Dana Whitfield - 00:04``), Zoom's saved captions (``[Dana Whitfield] 14:23:05``).

A line's label is only a *candidate*: "Note: we closed two depots", "Option 2: start smaller",
"Sure. Quick question: who signs?" have the same shape. :func:`speakers` decides over the whole
file: a candidate is a speaker when it reads like a name (no sentence inside it, not a word that
introduces a point, no word after the first in lower case except name particles such as "de" or
"van"), or when the file uses it as a label more than once. A line whose candidate is refused stays
words of the current speaker, as before.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.schema import role_word

__all__ = ["Label", "capitalised", "read_label", "read_stamp_line", "speakers", "TIME_STAMP"]

#: hours (optional), minutes, seconds, milliseconds (optional).
TIME_STAMP = r"(?:([0-9]{1,5}):)?([0-9]{1,2}):([0-9]{2})(?:[.,]([0-9]{1,3}))?"

_NAME = r"(?P<name>\[[^\]\n]{1,60}\]|[^\s:：()\[\]<>{}\-–—•*][^:：()\[\]<>{}\n]{0,59}?)"
_BRACKET = r"(?:\s*\((?P<bracket>[^()\n]{1,40})\))?"
# "Name: text" / "Name (role): text" / "Name:" alone; ASCII colon needs a space or the line's end after
# it ("https://", "10:30"), the full-width colon does not (Chinese and Japanese put none)
_INLINE = re.compile(rf"^\s*{_NAME}{_BRACKET}\s*(?::(?=\s|$)|：)\s*(?P<text>.*)$")
_OTTER = re.compile(rf"^\s*{_NAME}{_BRACKET}\s+(?P<time>{TIME_STAMP})\s*$")
_FIREFLIES = re.compile(rf"^\s*{_NAME}{_BRACKET}\s+[-–|]\s+(?P<time>{TIME_STAMP})\s*$")
_EMAIL = re.compile(r"^[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+$")
_INITIALS = re.compile(r"^(?:[^\W\d_]\.){1,4}$")
_CAPTION = re.compile(rf"^\s*\[(?P<name>[^\]\n]{{1,60}})\]\s+(?P<time>{TIME_STAMP})\s*$")
_STAMP_ONLY = re.compile(rf"^\s*[\[(]?(?P<time>{TIME_STAMP})[\])]?\s*$")
_TIME_IN_BRACKET = re.compile(rf"^\s*{TIME_STAMP}\s*$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().\-]{5,24}$")

#: Words that lead a point or a list, not a person ("Note: ...", "Bottom line: ...").
_NOT_NAMES = frozenset("""
note notes ps p.s nb n.b fyi tl;dr tldr re fwd subject update updates agenda summary recap question questions
answer example examples warning tip tips reminder goal goals problem solution result results outcome decision
decisions action actions step steps option options status price prices pricing cost costs total budget timeline
deadline date time location attendees transcript objective objectives context background takeaway takeaways pros
cons risk risks issue issues blocker blockers todo to-do owner topic topics purpose scope plan edit source link url
email e-mail phone tel mobile fax web website address ref case ticket order invoice account important reason reasons
caveat hint bonus spoiler disclaimer correction definition rule rules quote translation meaning emphasis basic pro
enterprise premium standard starter free business team
""".split())
#: First words that start a sentence, not a name ("So: ...", "Quick question: ...", "Bottom line: ...").
_SENTENCE_STARTS = frozenset("""
yes yeah yep no nope so well ok okay sure and but or because then now also plus basically honestly anyway anyways
first second third finally hi hello hey thanks thank great good right look listen i we you it this that these those
there here here's what which who why how when where my our your their his her the a an one two three quick bottom next
key side fun main action agenda step option item point phase part stage round slide page question issue task goal
priority chapter section day week month year important remember wait sorry actually exactly absolutely perfect cool
awesome indeed agreed correct true definitely totally plan version tier monday tuesday wednesday thursday friday
saturday sunday today tomorrow yesterday tonight
""".split())
#: Lower-case words that belong inside names ("Vincent van Gogh", "iPhone de Marcus").
_PARTICLES = frozenset("de da di du del della der den van von le la al el bin ibn y e dos das do ter ten op zu af av "
                       "of".split())
#: Titles written with a full stop ("Dr. Smith"): a full stop elsewhere ends a sentence.
_TITLES = frozenset("dr mr mrs ms mx prof jr sr st rev hon sen gen col capt lt sgt fr mme mlle sra sr srta".split())
_NUMBERED = re.compile(r"^(?:step|option|item|point|phase|part|stage|round|slide|page|question|issue|action|task|"
                       r"goal|priority|chapter|section|day|week|month|year|fy|h|q|no|#)\s*\.?\s*[0-9]+[a-z]?$",
                       re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Label:
    """A line's candidate speaker label.

    Attributes:
        name: the name as written, square brackets removed (``[Dana]`` -> ``Dana``).
        bracket: words in round brackets after the name (a role, pronouns, a company, Rev's time).
        text: the words after the label on the same line; ``""`` when they follow on the next lines.
        time: a time written with the label (Otter's ``0:02``, Rev's ``(00:01)``), as text.
        shape: ``inline`` (``Name: words``), ``alone`` (``Name:`` on its own line) or ``timed`` (a name and
            a time on their own line).
        stamped: the line starts with a time stamp (``[00:00:06] zoë müller: ...``), which only speaker
            lines carry.
        clock: the time is a time of day, not time into the call (Zoom's saved captions,
            ``[Dana Whitfield] 14:23:05``).
    """

    name: str
    bracket: str | None
    text: str
    time: str | None
    shape: str
    stamped: bool = False
    clock: bool = False


def read_label(line: str) -> Label | None:
    """The candidate speaker label at the start of ``line`` (syntax only), or ``None``."""
    for pattern in (_CAPTION, _FIREFLIES, _OTTER):
        match = pattern.match(line)
        if match is not None:
            name = match.group("name").strip().strip("[]").strip()
            bracket = match.groupdict().get("bracket")
            if not name:
                return None
            return Label(name, bracket.strip() if bracket else None, "", match.group("time"), "timed",
                         clock=pattern is _CAPTION)
    match = _INLINE.match(line)
    if match is None:
        return None
    name = match.group("name").strip().strip("[]").strip()
    if not name:
        return None
    bracket = match.group("bracket")
    time = None
    if bracket is not None and _TIME_IN_BRACKET.match(bracket):
        time, bracket = bracket.strip(), None
    text = match.group("text").strip()
    return Label(name, bracket.strip() if bracket else None, text, time, "inline" if text else "alone")


def read_stamp_line(line: str) -> str | None:
    """The time of a line that holds only a time stamp (``00:05:00``, ``[01:02]``), or ``None``."""
    match = _STAMP_ONLY.match(line)
    return match.group("time") if match else None


def _words(name: str) -> list[str]:
    return name.replace(",", " , ").split()


def _plain(word: str) -> str:
    return word.strip(".,'’\"").casefold()


def _reads_as_sentence(name: str) -> bool:
    """Punctuation that ends or splits a sentence inside the label ("Sure. Quick question", "Hi, Marcus")."""
    if any(ch in name for ch in "?!;\"“”…"):
        return True
    words = name.split()
    for word in words[:-1]:
        if word.endswith(".") and _plain(word) not in _TITLES and not _INITIALS.match(word):  # "A.J. Smith"
            return True
    if name.count(",") > 1:
        return True
    if "," in name:  # only "Last, First"
        last, first = (part.strip() for part in name.split(",", 1))
        return not (last and first and " " not in last and not _opener(last))
    return False


def _opener(word: str) -> bool:
    """A word that starts sentences ("So", "Wait", "The"), not a name; a lone capital ("A:", "I:") is a
    label."""
    return _plain(word) in _SENTENCE_STARTS and not (len(word) == 1 and word.isupper())


def _not_a_name(name: str) -> bool:
    """Words that introduce a point ("Note", "Option 2", "Q3", "Bottom line") rather than name someone."""
    plain = " ".join(_plain(word) for word in name.split())
    return plain in _NOT_NAMES or bool(_NUMBERED.match(name.strip()))


def _name_like(name: str) -> bool:
    """Reads like a person's or a device's name: a letter in it, at most five words, none of them after the
    first starting in lower case unless a particle, the first not a sentence opener; a phone number too."""
    if _PHONE.match(name) or _EMAIL.match(name):
        return True
    if not any(ch.isalpha() for ch in name):
        return False
    words = [word for word in _words(name) if word != ","]
    if len(words) > 5 or _opener(words[0]):
        return False
    for index, word in enumerate(words):  # "dana", "plan" are lower case; "iPhone", "McKay", "محمد" are not
        if word.strip("'’\"()").islower() and (index == 0 or _plain(word) not in _PARTICLES):
            return False
    return True


def _starts_like_speech(text: str) -> bool:
    """Whether the words after a label start as an utterance in a transcript does: with a capital (or a letter
    of a script without case), not with a number, a price or a lower-case word ("Basic: $10", "Acme Corp:
    they run on SAP")."""
    for ch in text:
        if ch.isalpha():
            return not ch.islower()
        if ch.isdigit() or ch in "$€£¥%#+":
            return False
    return False


def capitalised(texts: Iterable[str]) -> bool:
    """Whether most of a file's lines start as typed sentences do, with a capital (tools that write
    lower-case speech make no such promise)."""
    starts = [_starts_like_speech(text) for text in texts if text.strip()]
    return bool(starts) and sum(starts) >= 0.5 * len(starts)


def speakers(labels: Iterable[Label], sentences_capitalised: bool | None = None) -> set[str]:
    """The candidate names that are speakers, judged over one file's ``labels``.

    - A name used more than once is a speaker unless it reads as a sentence or introduces a point ("Note");
      a lower-case name too, and one whose first word also starts sentences ("An Nguyen").
    - A name used once must read like a name, or carry a time stamp or a role word in brackets; written
      inline (``Name: words``), its words must start as an utterance does (a capital), where most lines of
      the file do (``sentences_capitalised``, by default judged from the labelled lines: "Acme Corp: they run
      on SAP", "Basic: $10" are words).
    - A name-and-time line (Otter, Fireflies) or a label alone on its line counts once the file has two such
      lines: one ("Pricing:" above a list) is a heading.
    """
    found = list(labels)
    uses = Counter(label.name for label in found)
    shapes = Counter(label.shape for label in found if _name_like(label.name))
    if sentences_capitalised is None:
        sentences_capitalised = capitalised(label.text for label in found if label.shape == "inline")
    accepted: set[str] = set()
    for label in found:
        name = label.name
        if name in accepted or _reads_as_sentence(name) or _not_a_name(name):
            continue
        words = [word for word in _words(name) if word != ","]
        opener = _opener(words[0])
        if uses[name] >= 2:  # a label the file keeps using
            proper = len(words) >= 2 and all(not w.islower() or _plain(w) in _PARTICLES for w in words)
            if not opener or proper or (len(name) <= 2 and name.isalnum()):  # "An Nguyen:", interview "I:"
                accepted.add(name)
            continue
        if (label.stamped or role_word(label.bracket)) and not opener and len(words) <= 4 and (
                _name_like(name) or all(word.islower() for word in words)):
            accepted.add(name)  # "[00:00:06] zoë müller (rep): ...": a stamp or a role marks a speaker line
            continue
        if not _name_like(name):
            continue
        if label.shape == "inline":
            # "Acme Corp: they run on SAP" continues a sentence; "Dana: ok" is a short reply
            if _starts_like_speech(label.text) or not sentences_capitalised or (
                    len(label.text.split()) < 3 and label.text[:1].isalpha()):
                accepted.add(name)
        elif shapes[label.shape] >= 2:
            accepted.add(name)
    return accepted
