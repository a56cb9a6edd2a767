"""A call's usage is what its vendors were asked for, heard or not; what the caller heard is kept apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipelines.reply import APOLOGY
from providers.base import ChatMessage, LLMChunk, LLMOptions, ProviderError
from providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.test_session import LONG_REPLY, config, finish, start

pytestmark = pytest.mark.looptime


async def test_usage_counts_barged_in_and_dropped_answers_and_the_summary() -> None:
    stt = ScriptedSTT(["What are your hours?", "Are you open on Sunday?"])
    llm = ScriptedLLM(
        ["Sure.", LONG_REPLY, "No, we are closed on Sundays.", "Asked about hours. Sentiment: neutral"],
        latency_ms=100,
        token_interval_ms=150,  # the long answer still streams when the caller cuts in: no usage chunk for it
    )
    tts = ScriptedTTS(realtime_factor=0.05)
    session, far, caller = await start(config(opening="callee_first", preemptiveGeneration="on"), stt, llm, tts)
    await caller.say(600)
    await caller.silence(300)  # a hesitation: an answer starts, held back…
    await caller.say(600)  # …and is dropped unheard when the caller goes on
    await caller.silence(500 + 2500)  # the agent is two and a half seconds into its long answer
    await caller.say(600)  # barge-in
    await caller.silence(4000)
    result = await finish(session, far)

    assert len(far.times("clear")) == 1 and result.turns[0]["interrupted"] is True
    assert len(llm.requests) == 4  # dropped, interrupted, answered, and the summary
    assert result.summary == "Asked about hours."
    assert result.usage["tokens"] >= sum(usage.total_tokens for usage in llm.consumed)
    assert result.usage["ttsChars"] >= sum(len(text) for text in tts.requests)
    assert "Sure." in tts.requests  # the dropped answer was synthesized ahead while it was held
    heard = sum(len(e["text"]) for e in result.transcript if e["role"] == "assistant")
    assert result.metrics["heard"] == {"ttsChars": heard}
    assert 0 < heard < result.usage["ttsChars"]
    assert result.metrics["estimatedTokens"] > 0  # the cut streams' tokens were estimated, and said so


async def test_a_call_without_cuts_reports_the_vendors_own_counts() -> None:
    llm = ScriptedLLM(["We open at eight.", "Asked about hours. Sentiment: neutral"])
    session, far, caller = await start(config(opening="callee_first"), ScriptedSTT("When do you open?"), llm)
    await caller.say(800)
    await caller.silence(3000)
    result = await finish(session, far)
    await asyncio.sleep(0)
    assert result.usage["tokens"] == sum(usage.total_tokens for usage in llm.consumed)  # answer and summary
    assert result.metrics["estimatedTokens"] == 0
    assert result.usage["ttsChars"] == result.metrics["heard"]["ttsChars"] == len("We open at eight.")


class RefusingFirstLLM(ScriptedLLM):
    """The vendor refuses the answer (an HTTP 500 before any token), then writes the summary."""

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        if not messages[0].content.startswith("Summarize"):
            raise ProviderError("scripted", "HTTP 500: overloaded")
        async for chunk in super().stream_chat(messages, options):
            yield chunk


async def test_a_request_the_vendor_refused_costs_no_tokens() -> None:
    llm = RefusingFirstLLM("Asked about hours. Sentiment: neutral")
    session, far, caller = await start(config(opening="callee_first"), ScriptedSTT("When do you open?"), llm)
    await caller.say(800)
    await caller.silence(6000)
    result = await finish(session, far)
    assert [e["text"] for e in result.transcript if e["role"] == "assistant"] == [APOLOGY]
    assert result.usage["tokens"] == sum(usage.total_tokens for usage in llm.consumed)  # the summary only
    assert result.usage["ttsChars"] == len(APOLOGY)
