"""Preemptive generation: start the answer while the turn-ending silence runs; keep it only if the words agree.

The caller's turn ends ``silenceTimeoutMs`` after they stop talking, but STT usually has their words before then
(it finalizes after ``endpointingMs``, which is never longer).
So when the caller pauses, the session starts the reply to the best transcript so far, held back from playout:
the LLM streams and the first sentences are synthesized meanwhile. When the turn ends with the same words, the
held reply is released at once and the caller hears it up to an LLM-and-TTS latency sooner. When the caller
goes on speaking, or the final transcript says something else, it is cancelled. Nothing of it was played, so
nothing is said twice. The price is LLM work thrown away after a hesitation; agents can turn it off
(``preemptiveGeneration: off``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.metrics import TurnMetrics
from pipelines.reply import Reply
from pipelines.turn_detector import TurnState

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts say the same thing, whatever their case and punctuation ("Hi." == "hi")."""
    return _WORD.findall(a.lower()) == _WORD.findall(b.lower())


@dataclass
class Speculation:
    text: str
    reply: Reply
    task: asyncio.Task[None]
    metrics: TurnMetrics
    speech_end_wall: float
    release: asyncio.Event


StartSpeculation = Callable[[str, asyncio.Event], Speculation]


class Preemptive:
    """At most one held reply per call, with counts of how often one was started, used and thrown away."""

    def __init__(self) -> None:
        self.current: Speculation | None = None
        self.started = self.adopted = self.discarded = 0

    def follow(self, state: TurnState, awaiting_words: bool, text: Callable[[], str], start: StartSpeculation) -> None:
        """Keep up with the caller: while they speak there is no held reply; while they pause, one for their words
        so far, unless a barge-in still waits for words to prove itself."""
        if state is TurnState.CALLER_SPEAKING:
            self.cancel()
        elif state is TurnState.CALLER_PAUSED and not awaiting_words:
            self.offer(text(), start)

    def offer(self, text: str, start: StartSpeculation) -> None:
        """The best transcript while the caller is paused: (re)start the held reply if the words changed."""
        if not text.strip() or (self.current is not None and same_words(self.current.text, text)):
            return
        self.cancel()
        self.current = start(text, asyncio.Event())
        self.started += 1

    def take(self, final: str) -> Speculation | None:
        """The turn ended with ``final``: the held reply, released, if it answers those words; else None."""
        speculation, self.current = self.current, None
        if speculation is None:
            return None
        # A held reply whose LLM or TTS failed was never heard: a fresh one (from the next provider of a
        # fallback chain, as the failed one now goes last) serves the caller better than its apology.
        failed = bool(speculation.reply.result.errors)
        if speculation.task.done() or failed or not same_words(speculation.text, final):
            speculation.task.cancel()
            self.discarded += 1
            return None
        speculation.release.set()
        self.adopted += 1
        return speculation

    def cancel(self) -> None:
        """The caller went on speaking (or the call is ending): throw the held reply away."""
        if self.current is not None:
            self.current.task.cancel()
            self.current = None
            self.discarded += 1
