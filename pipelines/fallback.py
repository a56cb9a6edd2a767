"""Fallback chains: a provider that fails before producing anything is replaced by the next for that turn.

Each chain is itself a provider (same interface), so the session never knows it is talking to several.
A failure after output has started is not retried (the caller has heard part of it): it is raised, and the
reply ends with a spoken apology. Every failure is recorded in ``failures`` for the call's metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from pipelines.convert import AudioConverter
from providers.base import (
    TELEPHONY_FORMAT,
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


async def _close_all(providers: Sequence[LLMProvider | TTSProvider | STTProvider]) -> None:
    for provider in providers:
        await provider.aclose()


class FallbackLLM(LLMProvider):
    def __init__(self, providers: Sequence[LLMProvider]) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self.name = "+".join(p.name for p in self.providers)
        self.failures: list[str] = []

    async def aclose(self) -> None:
        await _close_all(self.providers)

    async def prefill(self, messages: list[ChatMessage]) -> None:
        await self.providers[0].prefill(messages)

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        last: ProviderError | None = None
        for provider in self.providers:
            started = False
            try:
                async for chunk in provider.stream_chat(messages, options):
                    started = started or bool(chunk.text)
                    yield chunk
                return
            except ProviderError as exc:
                self.failures.append(f"llm {provider.name}: {exc.message}")
                if started:  # the caller already heard part of it: no silent retry
                    raise
                last = exc
        assert last is not None
        raise last


class FallbackTTS(TTSProvider):
    """Speaks in the call's format whatever provider answers, so switching mid-call changes nothing else."""

    def __init__(self, providers: Sequence[TTSProvider]) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self.name = "+".join(p.name for p in self.providers)
        self.output_format = TELEPHONY_FORMAT
        self.failures: list[str] = []

    async def aclose(self) -> None:
        await _close_all(self.providers)

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        last: ProviderError | None = None
        for provider in self.providers:
            converter = AudioConverter(provider.output_format, self.output_format)
            started = False
            try:
                async for chunk in provider.synthesize(text, options):
                    converted = converter.convert(chunk)
                    if converted:
                        started = True
                        yield converted
                tail = converter.flush()
                if tail:
                    yield tail
                return
            except ProviderError as exc:
                self.failures.append(f"tts {provider.name}: {exc.message}")
                if started:
                    raise
                last = exc
        assert last is not None
        raise last


class FallbackSTT(STTProvider):
    """Opens the first provider that accepts a session. (A recognizer failing mid-call is not swapped.)"""

    def __init__(self, providers: Sequence[STTProvider]) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self.name = "+".join(p.name for p in self.providers)
        self.input_format = self.providers[0].input_format
        self.failures: list[str] = []
        self.chosen: STTProvider | None = None

    async def aclose(self) -> None:
        await _close_all(self.providers)

    async def open_session(self, *, language: str = "en") -> STTSession:
        last: ProviderError | None = None
        for provider in self.providers:
            try:
                session = await provider.open_session(language=language)
            except ProviderError as exc:
                self.failures.append(f"stt {provider.name}: {exc.message}")
                last = exc
                continue
            self.chosen = provider
            self.input_format = provider.input_format
            return session
        assert last is not None
        raise last
