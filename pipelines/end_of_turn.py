"""Is the caller's thought complete? A judgement on the words so far, for ``turnDetection: model``.

Silence alone cannot tell "What time do you open tomorrow?" (answer now) from "my number is four one five…"
(the caller is reading on). The words can, most of the time: a sentence the recognizer punctuated as finished
is complete; a turn that stops on "and", "the", "um", a half-read phone number or a spelling in progress is
not. Anything else is ``UNKNOWN`` and the turn ends on the agent's plain ``silenceTimeoutMs``, so this can only
make confident cases faster or slower, never guess. Pure and cheap: it runs on every transcript.
"""

from __future__ import annotations

import re
from enum import Enum


class Verdict(Enum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    UNKNOWN = "unknown"


_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
FILLERS = frozenset({"um", "uh", "er", "erm", "uhm", "umm", "hmm", "ah"})
# Words a finished English sentence almost never ends on: conjunctions, articles, prepositions, possessives,
# auxiliaries, subject pronouns.
CONTINUERS = frozenset(
    """and or but so because cause then plus also the a an this that these those to of for with at in on from by
    about into onto over under between after before until than as if whether when while where my your our their
    his her its is are was were am be been being i i'm we we're you you're they he she it's will would can could
    should shall might must do does did have has had not no like just really very which who whose""".split()
)
_DIGIT_WORDS = {
    "zero": 1, "oh": 1, "o": 1, "one": 1, "two": 1, "three": 1, "four": 1, "five": 1, "six": 1, "seven": 1,
    "eight": 1, "nine": 1, "double": 0, "triple": 0,
}  # fmt: skip
# What the caller is reading, and how many digits make it whole.
_NUMBER_CONTEXTS = (
    (frozenset({"phone", "number", "cell", "mobile", "callback"}), 10),
    (frozenset({"zip", "postcode", "postal"}), 5),
    (frozenset({"card"}), 16),
    (frozenset({"account", "member", "policy", "order", "confirmation", "reference", "code", "pin", "id"}), 4),
)
_SPELLING = frozenset({"spelled", "spell", "spelling", "letters"})


def judge(text: str) -> Verdict:
    """The verdict on a transcript (the turn's finals and latest interim, as STT delivers them)."""
    stripped = text.strip()
    if not stripped:
        return Verdict.UNKNOWN
    tokens = _TOKEN.findall(stripped.lower())
    if not tokens:
        return Verdict.UNKNOWN
    last = tokens[-1]
    if last in FILLERS or stripped.endswith((",", "-", "…", "...")):
        return Verdict.INCOMPLETE
    reading = _reading(tokens)
    if reading is not None:
        return reading
    if last in CONTINUERS:
        return Verdict.INCOMPLETE
    if stripped.endswith((".", "?", "!")):
        return Verdict.COMPLETE
    return Verdict.UNKNOWN


def _digits(token: str) -> int | None:
    if token.isdigit():
        return len(token)
    return _DIGIT_WORDS.get(token)


def _reading(tokens: list[str]) -> Verdict | None:
    """A number or a spelling being read out: incomplete until it is as long as its kind needs."""
    run, count = 0, 0
    for token in reversed(tokens):
        digits = _digits(token)
        if digits is None:
            break
        run, count = run + 1, count + digits
    if run:
        context = set(tokens[: len(tokens) - run])
        for words, needed in _NUMBER_CONTEXTS:
            if context & words:
                return Verdict.INCOMPLETE if count < needed else Verdict.COMPLETE
        return None
    letters = 0
    for token in reversed(tokens):
        if len(token) != 1 or not token.isalpha():
            break
        letters += 1
    if letters and (letters >= 2 or _SPELLING & set(tokens)):
        return Verdict.INCOMPLETE  # a spelling ends when the caller says so, or after the long silence
    return None
