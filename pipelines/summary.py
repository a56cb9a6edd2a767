"""After the call: a short summary and the caller's sentiment, from the agent's own LLM."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from pipelines.context import Conversation
from pipelines.usage import CallUsage, StreamMeter
from providers.base import ChatMessage, LLMOptions, LLMProvider, ProviderError

log = logging.getLogger(__name__)

SENTIMENTS = ("positive", "neutral", "negative")
_INSTRUCTIONS = (
    "Summarize this phone call between a caller and a voice agent in one or two sentences. Then, on a last line,"
    " write 'Sentiment:' followed by exactly one word describing the caller's sentiment: positive, neutral or"
    " negative."
)
_SENTIMENT = re.compile(r"sentiment\s*:\s*(positive|neutral|negative)", re.IGNORECASE)


@dataclass(frozen=True)
class CallSummary:
    summary: str = ""
    sentiment: str = "neutral"
    error: str | None = None  # why there is no summary, for the call's ``errors``


async def summarize_call(
    llm: LLMProvider, conversation: Conversation, usage: CallUsage, timeout_sec: float = 20.0
) -> CallSummary:
    """The summary, or an empty one with the error when the LLM fails in any way: a call is never lost over it.

    Its tokens go to ``usage`` like any reply's, also when it fails or times out part-way.
    """
    lines = [f"{entry.role}: {entry.text}" for entry in conversation.transcript if entry.role != "event" and entry.text]
    if not lines:
        return CallSummary()
    messages = [ChatMessage("system", _INSTRUCTIONS), ChatMessage("user", "\n".join(lines)[-8000:])]
    meter = StreamMeter(messages)
    try:
        text = await asyncio.wait_for(_collect(llm, messages, meter), timeout_sec)
    except Exception as exc:  # a vendor error, a timeout, or an SDK bug: the transcript matters more
        if isinstance(exc, TimeoutError):
            error = f"timed out after {timeout_sec:g} s"
        else:
            error = str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"
        log.warning("call summary failed", extra={"error": error})
        return CallSummary(error=f"summary: {error}")
    finally:
        usage.add_llm(meter)
    match = _SENTIMENT.search(text)
    sentiment = match.group(1).lower() if match else "neutral"
    return CallSummary(_SENTIMENT.sub("", text).strip(), sentiment)


async def _collect(llm: LLMProvider, messages: list[ChatMessage], meter: StreamMeter) -> str:
    parts: list[str] = []
    try:
        async for chunk in llm.stream_chat(messages, LLMOptions(temperature=0.2, max_tokens=120)):
            meter.add(chunk)
            parts.append(chunk.text)
    except ProviderError:
        meter.failed = True
        raise
    return "".join(parts)
