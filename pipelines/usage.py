"""What a call consumed from its vendors: LLM tokens and TTS characters, whether the caller heard them or not.

Vendors bill every request: answers cut by a barge-in, preemptive answers dropped unheard and the after-call
summary cost as much as the answers that played, so they are counted as they are consumed. An LLM stream
reports its tokens in its last chunk, which a cancelled or failed stream never receives: its tokens are then
estimated from the text sent and the text streamed (see :func:`estimate_tokens`), so usage errs high, not low.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from providers.base import ChatMessage, LLMChunk, Usage

CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by the rule of thumb, never fewer than its words (tokenizers split words, not join)."""
    return max(len(text.split()), math.ceil(len(text) / CHARS_PER_TOKEN))


class StreamMeter:
    """One LLM request: the vendor's count once its usage chunk arrives, else an estimate of what it consumed."""

    def __init__(self, messages: Sequence[ChatMessage]) -> None:
        self._prompt = "\n".join(message.content for message in messages)
        self._streamed: list[str] = []
        self.reported: Usage | None = None
        self.failed = False  # the vendor answered with an error (ProviderError), not the caller hanging up

    def add(self, chunk: LLMChunk) -> None:
        if chunk.usage is not None:
            self.reported = chunk.usage
        if chunk.text:
            self._streamed.append(chunk.text)

    @property
    def estimated(self) -> bool:
        return self.reported is None

    def usage(self) -> Usage:
        if self.reported is not None:
            return self.reported
        if self.failed and not self._streamed:  # refused or failed before any output (a 401, a 5xx): not billed
            return Usage()
        return Usage(estimate_tokens(self._prompt), estimate_tokens("".join(self._streamed)))


@dataclass
class CallUsage:
    """The call's running totals; ``estimated_tokens`` is the part of ``tokens`` no vendor reported."""

    tokens: int = 0
    estimated_tokens: int = 0
    tts_chars: int = 0

    def add_llm(self, meter: StreamMeter) -> None:
        tokens = meter.usage().total_tokens
        self.tokens += tokens
        if meter.estimated:
            self.estimated_tokens += tokens

    def add_tts(self, text: str) -> None:
        """``text`` was sent to the TTS vendor (billed per character, however much of it then plays)."""
        self.tts_chars += len(text)
