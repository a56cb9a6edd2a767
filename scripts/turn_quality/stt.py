"""Transcripts: what a streaming recognizer delivers for a scenario, and what the session hands the detector.

``stt_stream`` (used by make_set.py) models a streaming STT such as Deepgram with ``smart_format``: interim
transcripts grow word by word, the first word ``delay_ms`` after the speech onset and the others spread over
the phrase; a final ``delay_ms`` after a phrase that is followed by at least ``endpointing_ms`` of silence (or
ends the speech). A final carries the phrase as written in the set: a complete thought ends with "." or "?",
an incomplete part has no terminal punctuation and keeps a trailing filler ("so the thing is um"). Interims
are the bare words. Several phrases separated by less than ``endpointing_ms`` make one recognizer utterance.

``TranscriptFeed`` (used by score.py) is the session's side (pipelines/stt_stream.py and session.py): the
detector gets the turn's finals joined plus the latest interim; an end of turn takes them (waiting for an
open utterance's final), and a false interruption discards them (and drops that utterance's late final).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

_WORD = re.compile(r"[\w'-]+")
TERMINAL = (".", "?", "!")


class Spoken(Protocol):
    onset_ms: int
    end_ms: int
    text: str


def bare_words(text: str) -> list[str]:
    """The words of ``text`` without punctuation (apostrophes and hyphens kept), as an interim shows them."""
    return _WORD.findall(text)


def punctuate(text: str, mark: str = ".") -> str:
    """``text`` as a final of a complete thought: ends with ``mark`` unless it already ends with one."""
    text = text.strip()
    return text if text.endswith(TERMINAL) else text + mark


def stt_stream(spans: Sequence[Spoken], delay_ms: int, endpointing_ms: int = 300) -> list[dict[str, Any]]:
    """Interim and final transcripts for consecutive speech ``spans`` (``text``: the final's wording)."""
    items: list[dict[str, Any]] = []
    words: list[str] = []
    finals: list[str] = []
    for index, span in enumerate(spans):
        own = bare_words(span.text)
        step = (span.end_ms - span.onset_ms) / max(len(own), 1)
        for position, word in enumerate(own):
            words.append(word)
            at = span.onset_ms + delay_ms + round(position * step)
            items.append({"at_ms": at, "text": " ".join(words), "final": False})
        finals.append(span.text.strip())
        following = spans[index + 1] if index + 1 < len(spans) else None
        if following is None or following.onset_ms - span.end_ms >= endpointing_ms:
            items.append({"at_ms": span.end_ms + delay_ms, "text": " ".join(finals), "final": True})
            words, finals = [], []
    return sorted(items, key=lambda item: item["at_ms"])


class TranscriptFeed:
    """The session's transcript state for one call: finals of the current turn and the latest interim."""

    def __init__(self) -> None:
        self.finals: list[str] = []
        self.interim = ""
        self._drop_late_final = False  # a discarded utterance's final is still to come
        self._closing = False  # the turn ended with an utterance open: its final still belongs to it

    def receive(self, text: str, is_final: bool) -> str | None:
        """One recognizer message; returns the text to hand to ``TurnDetector.on_transcript`` (None: nothing)."""
        text = text.strip()
        if self._drop_late_final:
            self._drop_late_final = not is_final and not text
            if is_final:
                return None
        if is_final:
            if text:
                self.finals.append(text)
            self.interim = ""
        else:
            self.interim = text
        best = self.best_text() if text else None
        if is_final and self._closing:  # the end of turn took this final: the next turn starts empty
            self._closing = False
            self.finals = []
        return best

    def best_text(self) -> str:
        return " ".join(" ".join([*self.finals, self.interim]).split())

    def end_of_turn(self) -> None:
        """The turn's words were taken (the session waits for the open utterance's final, if any)."""
        self._closing = bool(self.interim)
        if not self._closing:
            self.finals, self.interim = [], ""

    def discard_turn(self) -> None:
        """A false interruption: its words must not open the next turn."""
        self._drop_late_final = bool(self.interim)
        self._closing = False
        self.finals, self.interim = [], ""
