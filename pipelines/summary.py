"""After the call: a short summary and the caller's sentiment, from the agent's own LLM."""

from __future__ import annotations

import asyncio
import logging
import re

from pipelines.context import Conversation
from providers.base import ChatMessage, LLMOptions, LLMProvider, ProviderError

log = logging.getLogger(__name__)

SENTIMENTS = ("positive", "neutral", "negative")
_INSTRUCTIONS = (
    "Summarize this phone call between a caller and a voice agent in one or two sentences. Then, on a last line,"
    " write 'Sentiment:' followed by exactly one word describing the caller's sentiment: positive, neutral or"
    " negative."
)
_SENTIMENT = re.compile(r"sentiment\s*:\s*(positive|neutral|negative)", re.IGNORECASE)


async def summarize_call(llm: LLMProvider, conversation: Conversation, timeout_sec: float = 20.0) -> tuple[str, str]:
    """``(summary, sentiment)``; ``("", "neutral")`` when the LLM fails, so a call is never lost over it."""
    lines = [f"{entry.role}: {entry.text}" for entry in conversation.transcript if entry.role != "event" and entry.text]
    if not lines:
        return "", "neutral"
    messages = [ChatMessage("system", _INSTRUCTIONS), ChatMessage("user", "\n".join(lines)[-8000:])]
    try:
        text = await asyncio.wait_for(_collect(llm, messages), timeout_sec)
    except (ProviderError, TimeoutError) as exc:
        log.warning("call summary failed", extra={"error": str(exc)})
        return "", "neutral"
    match = _SENTIMENT.search(text)
    sentiment = match.group(1).lower() if match else "neutral"
    summary = _SENTIMENT.sub("", text).strip()
    return summary, sentiment


async def _collect(llm: LLMProvider, messages: list[ChatMessage]) -> str:
    parts = [chunk.text async for chunk in llm.stream_chat(messages, LLMOptions(temperature=0.2, max_tokens=120))]
    return "".join(parts)
