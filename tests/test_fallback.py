"""Fallback chains: a provider failing before output is replaced; one failing mid-stream is not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pipelines.fallback import FallbackLLM, FallbackSTT, FallbackTTS
from providers.base import (
    AudioFormat,
    ChatMessage,
    LLMChunk,
    LLMOptions,
    LLMProvider,
    ProviderError,
    STTProvider,
    STTSession,
    TTSOptions,
    TTSProvider,
)
from providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

MESSAGES = [ChatMessage("user", "hi")]


class BrokenLLM(LLMProvider):
    name = "broken"

    def __init__(self, after_words: int = 0, retryable: bool = True) -> None:
        self.after_words, self.retryable = after_words, retryable

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        for index in range(self.after_words):
            yield LLMChunk(text=f"w{index} ")
        raise ProviderError("broken", "HTTP 500", retryable=self.retryable)


class BrokenTTS(TTSProvider):
    name = "broken-tts"
    output_format = AudioFormat("pcm16", 24000)

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        raise ProviderError("broken-tts", "401 unauthorized", retryable=False, status=401)
        yield b""  # pragma: no cover - makes this an async generator


class RefusingSTT(STTProvider):
    name = "refusing"

    async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
        raise ProviderError("refusing", "connection refused")


async def _text(llm: LLMProvider) -> str:
    return "".join([chunk.text async for chunk in llm.stream_chat(MESSAGES, LLMOptions())])


async def test_llm_falls_back_before_output_even_on_a_bad_key() -> None:
    chain = FallbackLLM([BrokenLLM(retryable=False), ScriptedLLM("From the backup.")])
    assert await _text(chain) == "From the backup."
    assert chain.failures == ["llm broken: HTTP 500"]


async def test_llm_failing_mid_stream_is_raised_not_retried() -> None:
    backup = ScriptedLLM("never used")
    chain = FallbackLLM([BrokenLLM(after_words=2), backup])
    with pytest.raises(ProviderError):
        await _text(chain)
    assert backup.requests == []


async def test_llm_all_failing_raises_the_last_error() -> None:
    with pytest.raises(ProviderError, match="HTTP 500"):
        await _text(FallbackLLM([BrokenLLM(), BrokenLLM()]))


async def test_tts_falls_back_and_speaks_in_the_call_format() -> None:
    backup = ScriptedTTS(ms_per_char=10, output_format=AudioFormat("pcm16", 16000))
    chain = FallbackTTS([BrokenTTS(), backup])
    audio = b"".join([chunk async for chunk in chain.synthesize("twenty characters!!", TTSOptions())])
    assert chain.output_format == AudioFormat("mulaw", 8000)
    assert abs(len(audio) - 8 * 190) <= 80  # 190 ms of μ-law at 8 kHz, give or take the resampler's edges
    assert chain.failures == ["tts broken-tts: 401 unauthorized"]


async def test_stt_opens_the_first_provider_that_accepts() -> None:
    backup = ScriptedSTT("hello")
    chain = FallbackSTT([RefusingSTT(), backup])
    session = await chain.open_session()
    assert chain.chosen is backup and chain.input_format == backup.input_format
    await session.close()
    with pytest.raises(ProviderError):
        await FallbackSTT([RefusingSTT()]).open_session()


async def test_stt_sessions_of_a_chain_get_the_calls_endpointing_also_after_a_failover() -> None:
    main, backup = ScriptedSTT("hello"), ScriptedSTT("hello")
    chain = FallbackSTT([RefusingSTT(), main, backup])
    first = await chain.open_session(endpointing_ms=250)
    second = await chain.failover(ProviderError("scripted", "connection dropped"), endpointing_ms=250)
    assert [s.endpointing_ms for s in main.sessions + backup.sessions] == [250, 250]
    assert chain.chosen is backup
    await first.close()
    await second.close()


@pytest.mark.parametrize(
    ("chain_type", "provider_type"),
    [(FallbackLLM, ScriptedLLM), (FallbackTTS, ScriptedTTS), (FallbackSTT, ScriptedSTT)],
)
async def test_a_chain_closes_every_provider_when_one_fails_to_close(
    chain_type: type, provider_type: type, caplog: pytest.LogCaptureFixture
) -> None:
    """One vendor's broken close must not leave the others' connections open for the life of the process."""
    closed: list[str] = []
    providers = []
    for name in ("a", "b", "c"):
        provider = provider_type()
        provider.name = name

        async def aclose(name: str = name) -> None:
            closed.append(name)
            if name != "c":
                raise RuntimeError(f"{name}: connection pool broke")

        provider.aclose = aclose
        providers.append(provider)
    await chain_type(providers).aclose()
    assert closed == ["a", "b", "c"]
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert [(record.getMessage(), record.provider) for record in warnings] == [
        ("provider did not close cleanly", "a"),
        ("provider did not close cleanly", "b"),
    ]
