"""A session whose start or end goes wrong still leaves nothing running and still reports the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipelines.session import CallSession
from providers.base import ChatMessage, LLMChunk, LLMOptions, STTSession
from providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.fake_transport import EnergyVad, FarEnd
from tests.test_session import config, finish, start

pytestmark = pytest.mark.looptime


class Closing:
    """Counts a provider's ``aclose`` calls."""

    def __init__(self) -> None:
        self.closed = 0

    def watch(self, provider: ScriptedSTT | ScriptedLLM | ScriptedTTS) -> None:
        async def aclose() -> None:
            self.closed += 1

        provider.aclose = aclose


class BrokenSTT(ScriptedSTT):
    """A recognizer whose SDK blows up while connecting with something that is not a ProviderError."""

    async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
        await asyncio.sleep(0.5)  # the greeting, the timer and the prefill are under way meanwhile
        raise RuntimeError("SDK bug while connecting")


async def test_a_start_that_fails_leaves_nothing_running_and_closes_the_providers() -> None:
    before = asyncio.all_tasks()
    stt, llm, tts = BrokenSTT(), ScriptedLLM(), ScriptedTTS(realtime_factor=1)
    closing = {name: Closing() for name in ("stt", "llm", "tts")}
    for name, provider in (("stt", stt), ("llm", llm), ("tts", tts)):
        closing[name].watch(provider)
    far = FarEnd()
    session = CallSession(config(), stt=stt, llm=llm, tts=tts, sink=far, vad=EnergyVad())
    far.start(session)
    with pytest.raises(RuntimeError, match="SDK bug"):
        await session.start()
    await far.stop()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()  # no greeting, max-duration timer or prefill left behind
    assert tts.active_streams == 0 and llm.active_streams == 0
    assert [c.closed for c in closing.values()] == [1, 1, 1]
    sent = len(far.times("media"))
    await asyncio.sleep(5)
    assert len(far.times("media")) == sent  # the greeting stopped with the failed start
    result = await session.close("provider_error")  # the transport may still close it: safe, and once
    assert [c.closed for c in closing.values()] == [1, 1, 1]
    assert result.end_reason == "provider_error"
    assert any("SDK bug while connecting" in error for error in result.errors)


class SummaryBreaksLLM(ScriptedLLM):
    """Answers the caller, then fails the after-call summary with an unexpected exception."""

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        if messages[0].content.startswith("Summarize"):
            raise KeyError("choices")  # an SDK that trips over the vendor's reply
        async for chunk in super().stream_chat(messages, options):
            yield chunk


async def test_a_summary_that_fails_in_any_way_still_returns_the_calls_transcript() -> None:
    session, far, caller = await start(
        config(opening="callee_first"), ScriptedSTT("When do you open?"), SummaryBreaksLLM("We open at eight.")
    )
    await caller.say(800)
    await caller.silence(3000)
    result = await finish(session, far)
    assert [(e["role"], e["text"]) for e in result.transcript] == [
        ("user", "When do you open?"),
        ("assistant", "We open at eight."),
    ]
    assert (result.summary, result.sentiment) == ("", "neutral")
    assert any(error.startswith("summary: KeyError") for error in result.errors)
