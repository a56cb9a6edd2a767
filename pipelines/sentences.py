"""Streaming sentence splitter: turns an LLM's token stream into clauses for text-to-speech.

Why: the caller hears nothing until the first clause is synthesized, so each clause must go to TTS the
moment it is complete; but a clause cut in the wrong place ("Dr." | "Smith", "3." | "5") or a string of
tiny clauses sounds broken. The rules below trade those off:

- A clause ends after `.` `!` `?` `…` (plus closing quotes, brackets or markdown marks) followed by
  whitespace, or right after CJK `。！？`. It is emitted only once the next non-space character has
  arrived, because "3." may become "3.5" and "e." may become "e.g.". Nothing ends a clause before a
  lowercase word ("Well... maybe", '"Sure?" she asked'). A `.` does not end one after a title or fixed
  abbreviation ("Dr.", "e.g.", "vs."), after initials ("J. R. R.", "U.S."; not the pronoun "I") or after
  "No" before a digit; "etc.", "a.m." and "p.m." do end one before a capitalized word. Numbers, URLs and
  e-mails ("3.5", "example.com") have no whitespace after their dots, so they are never split.
- Time to first audio: the first clause of a reply goes out as soon as it is a complete sentence with at
  least two letters or digits ("Sure!", "Hi."), however short: a pause after an opener sounds natural.
  While no clause has gone out yet, a comma, semicolon, colon or dash also ends it once it has
  `min_chars` characters. Later clauses end only at sentence ends and merge with the next sentence while
  shorter than `min_chars`, so TTS gets whole sentences with natural prosody.
- A clause reaching `max_chars` without an end is cut at its last comma/semicolon/colon/dash (if that
  leaves at least `min_chars`), else at its last whitespace, else at `max_chars`. (A sentence end just
  under the limit may carry its closing quote or bracket past it.)
- A blank line, a line that is a list item or a heading, and the start of a new item or heading ("- ",
  "* ", "1. ", "# ") end a clause whatever its length: they are pauses in speech. Single newlines are
  spaces.
- Output is TTS-ready: markdown marks `*` `_` `#` and backticks are removed (`_` inside a word becomes a
  space; `#` right after a letter stays, as in "C#"), "- " bullets are dropped, whitespace is collapsed,
  and clauses without any letter or digit are dropped.

Every decision depends only on the text, never on how it was chunked. One splitter serves one reply;
`flush()` also resets it for the next. A push resumes the scan where the last one stopped: only the few
characters of an undecided look-ahead are read again, so the cost per token does not grow with the reply.
"""

from __future__ import annotations

import re

_TERMINATORS = frozenset(".!?…。！？")
_CJK_TERMINATORS = frozenset("。！？")
_CLOSERS = frozenset("\"'”’)]}»」』）】*_`")
_OPENERS = frozenset("\"'“‘([{«「『（【*_`")
_SOFT = frozenset(",;:")
_TIGHT_SOFT = frozenset("，、；：—")  # pauses that need no whitespace after them (CJK, em dash)
_SPACED_DASHES = frozenset("-–")
_BULLETS = frozenset("-*+•")
_DIGITS = frozenset("0123456789")
_LOOKAHEAD = 32  # longest run of spaces, dots or quotes read ahead; past it, decide as if at a plain word
_NEVER_END = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "e.g", "i.e", "mt", "cf", "fig"})
_MAY_END = frozenset({"etc", "a.m", "p.m"})
_INITIALS = re.compile(r"(?:[A-Z]\.)*[A-Z]")
_TOKEN_OPENERS = "".join(_OPENERS)

_LEADING_BULLET = re.compile(r"^\s*[-+•]\s+")
_INNER_UNDERSCORE = re.compile(r"(?<=[^\W_])_+(?=[^\W_])")
_MARKS = re.compile(r"[*_`]+|(?<!\w)#+")
_WHITESPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """What TTS should read of a raw clause: no markdown marks or bullets, single spaces, never only punctuation."""
    text = _LEADING_BULLET.sub("", text)
    text = _INNER_UNDERSCORE.sub(" ", text)
    text = _MARKS.sub("", text)
    text = _WHITESPACE.sub(" ", text).strip()
    return text if any(ch.isalnum() for ch in text) else ""


class SentenceSplitter:
    """Feed it LLM deltas with `push`, then `flush` at the end of the reply; see the module docstring."""

    def __init__(self, min_chars: int = 20, max_chars: int = 250) -> None:
        if min_chars < 0 or max_chars <= min_chars:
            raise ValueError("need 0 <= min_chars < max_chars")
        self._min = min_chars
        self._max = max_chars
        self._reset()

    def _reset(self) -> None:
        self._buf = ""  # text not yet emitted; the current clause starts at self._start
        self._pos = 0  # next index to scan
        self._start = 0
        self._first = True  # nothing emitted yet in this reply
        self._line_start = True  # at the start of a line whose list/heading marker is not yet checked
        self._block_line = False  # the current line is a list item or heading
        self._soft = -1  # end of the clause's last comma/semicolon/colon/dash, for max_chars cuts
        self._space = -1  # the clause's last whitespace, for max_chars cuts

    def push(self, delta: str) -> list[str]:
        """Add one delta; return the clauses it completed, in order."""
        if not delta:
            return []
        self._buf += delta
        out: list[str] = []
        self._scan(out)
        return out

    def flush(self) -> list[str]:
        """End of the reply: return what remains (if anything speakable) and get ready for the next reply."""
        out: list[str] = []
        self._emit(len(self._buf), out)
        self._reset()
        return out

    def _scan(self, out: list[str]) -> None:
        """Advance the scan as far as decisions can be made without unseen text."""
        buf = self._buf
        n = len(buf)
        i = self._pos
        while i < n:
            if i - self._start >= self._max:
                self._force_cut(i, out)
            if self._line_start:
                after = self._line_begin(i, out)
                if after is None:
                    break
                if after != i:
                    i = after
                    continue
            c = buf[i]
            if c == "\n":
                if self._block_line:
                    self._emit(i, out)
                self._block_line = False
                self._line_start = True
                self._space = i
            elif c in _TERMINATORS and not (i > self._start and buf[i - 1] in _TERMINATORS):
                end = self._sentence_end(i)
                if end is None:
                    break
                if end > 0:
                    self._sentence(end, out)
                    i = end
                    continue
            elif c in _SOFT or c in _TIGHT_SOFT or c in _SPACED_DASHES:
                end = self._soft_end(i)
                if end is None:
                    break
                if end > 0:
                    self._soft = end
                    if self._first:
                        text = clean(buf[self._start : end])
                        if len(text) >= self._min:
                            self._emit_text(text, end, out)
            elif c.isspace():
                self._space = i
            i += 1
        self._pos = i
        if self._start:
            cut = self._start
            self._buf = buf[cut:]
            self._pos -= cut
            self._start = 0
            self._soft = self._soft - cut if self._soft >= 0 else -1
            self._space = self._space - cut if self._space >= 0 else -1

    def _line_begin(self, i: int, out: list[str]) -> int | None:
        """At a line start: end the clause on a blank line or list/heading marker; None if undecidable yet."""
        buf = self._buf
        n = len(buf)
        j = i
        while j < n and buf[j] != "\n" and buf[j].isspace() and j - i < _LOOKAHEAD:
            j += 1
        if j - i >= _LOOKAHEAD:
            self._line_start = False
            return i
        if j == n:
            return None
        if buf[j] == "\n":
            self._emit(i, out)
            return j + 1
        end = self._marker_end(j)
        if end is None:
            return None
        self._line_start = False
        if end < 0:
            return i
        self._emit(i, out)
        self._block_line = True
        return end

    def _marker_end(self, j: int) -> int | None:
        """End of a "- ", "* ", "1. ", "2) " or "## " marker at j, -1 if there is none, None if undecidable yet."""
        buf = self._buf
        n = len(buf)
        c = buf[j]
        if c in _BULLETS:
            k = j + 1
        elif c == "#":
            k = j
            while k < n and buf[k] == "#" and k - j <= 6:
                k += 1
            if k - j > 6:
                return -1
        elif c in _DIGITS:
            k = j
            while k < n and buf[k] in _DIGITS and k - j < 3:
                k += 1
            if k < n and (k - j > 2 or buf[k] not in ".)"):
                return -1
            k += 1
        else:
            return -1
        if k >= n:
            return None
        return k + 1 if buf[k] in " \t" else -1

    def _sentence_end(self, i: int) -> int | None:
        """End of the sentence whose terminator run starts at i, -1 if it is not one, None if undecidable yet."""
        buf = self._buf
        n = len(buf)
        j = i
        while j < n and buf[j] in _TERMINATORS and j - i < _LOOKAHEAD:
            j += 1
        run_end = j
        while j < n and buf[j] in _CLOSERS and j - run_end < _LOOKAHEAD:
            j += 1
        if run_end - i >= _LOOKAHEAD or j - run_end >= _LOOKAHEAD:
            return -1
        if j == n:
            return None
        if buf[run_end - 1] in _CJK_TERMINATORS:
            return j
        if not buf[j].isspace():
            return -1
        k = j
        while k < n and (buf[k].isspace() or buf[k] in _OPENERS) and k - j < _LOOKAHEAD:
            k += 1
        if k - j >= _LOOKAHEAD:
            return j
        if k == n:
            return None
        if buf[k].islower():
            return -1
        if run_end - i == 1 and buf[i] == "." and self._abbreviation(i, buf[k]):
            return -1
        return j

    def _abbreviation(self, i: int, following: str) -> bool:
        """Whether the "." at i belongs to a title, abbreviation or initial rather than ending a sentence."""
        buf = self._buf
        t = i
        while t > self._start and not buf[t - 1].isspace():
            t -= 1
        token = buf[t:i].lstrip(_TOKEN_OPENERS)
        lower = token.lower()
        if lower in _MAY_END:
            return False
        if lower in _NEVER_END or (token == "No" and following in _DIGITS):
            return True
        return token != "I" and _INITIALS.fullmatch(token) is not None

    def _soft_end(self, i: int) -> int | None:
        """End of a comma/semicolon/colon/dash pause at i, -1 if it is not one, None if undecidable yet."""
        buf = self._buf
        c = buf[i]
        if c in _TIGHT_SOFT:
            return i + 1
        if i + 1 >= len(buf):
            return None
        if not buf[i + 1].isspace():
            return -1
        if c in _SPACED_DASHES and not (i > self._start and buf[i - 1].isspace()):
            return -1
        return i + 1

    def _sentence(self, end: int, out: list[str]) -> None:
        """A sentence ends at `end`: emit the clause unless it is too short (then the next sentence joins it)."""
        text = clean(self._buf[self._start : end])
        if len(text) >= self._min or (self._first and sum(ch.isalnum() for ch in text) >= 2):
            self._emit_text(text, end, out)

    def _force_cut(self, i: int, out: list[str]) -> None:
        """The clause reached max_chars without an end: cut at its last pause, else whitespace, else here."""
        start = self._start
        if self._soft > start and self._soft - start >= self._min:
            cut = self._soft
        elif self._space > start:
            cut = self._space
        else:
            cut = i
        self._emit(cut, out)

    def _emit(self, cut: int, out: list[str]) -> None:
        self._emit_text(clean(self._buf[self._start : cut]), cut, out)

    def _emit_text(self, text: str, cut: int, out: list[str]) -> None:
        """Close the clause at `cut`, emitting its text if there is any to speak."""
        if text:
            out.append(text)
            self._first = False
        self._start = cut
        if self._soft <= cut:
            self._soft = -1
        if self._space <= cut:
            self._space = -1
