"""Fallback chains: a provider that fails before producing anything is replaced by the next for that turn.

Each chain is itself a provider (same interface), so the session never knows it is talking to several.
A failure after output has started is not retried (the caller has heard part of it): it is raised, and the
reply ends with a spoken apology. A provider that failed goes to the back of the chain for the rest of the
call, so a dead or stalling vendor costs one timeout per call, not one per sentence. A recognizer that fails
mid-call is replaced by the next one (:meth:`FallbackSTT.failover`). Every failure is recorded in
``failures`` for the call's record.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

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

log = logging.getLogger(__name__)


async def _close_all(providers: Sequence[LLMProvider | TTSProvider | STTProvider]) -> None:
    """Close every provider of the chain: one that fails to close must not keep the others' connections open."""
    for provider in providers:
        try:
            await provider.aclose()
        except Exception:  # best effort: the call is over; the log says which vendor misbehaved
            log.warning("provider did not close cleanly", extra={"provider": provider.name}, exc_info=True)


def _demote(order: list[Any], provider: object) -> None:
    """Move a provider that just failed behind the others, for the next requests of this call."""
    if provider in order:
        order.remove(provider)
        order.append(provider)


class FallbackLLM(LLMProvider):
    def __init__(self, providers: Sequence[LLMProvider]) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self.name = "+".join(p.name for p in self.providers)
        self.failures: list[str] = []
        self.order = list(self.providers)  # the failed go last

    @property
    def speculative(self) -> bool:  # type: ignore[override]  # the chain's answer is its first provider's
        return self.order[0].speculative

    async def aclose(self) -> None:
        await _close_all(self.providers)

    async def prefill(self, messages: list[ChatMessage]) -> None:
        await self.order[0].prefill(messages)

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        last: ProviderError | None = None
        for provider in list(self.order):
            started = False
            try:
                async for chunk in provider.stream_chat(messages, options):
                    started = started or bool(chunk.text)
                    yield chunk
                return
            except ProviderError as exc:
                self.failures.append(f"llm {provider.name}: {exc.message}")
                _demote(self.order, provider)
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
        self.order = list(self.providers)  # the failed go last

    async def aclose(self) -> None:
        await _close_all(self.providers)

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        last: ProviderError | None = None
        for provider in list(self.order):
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
                _demote(self.order, provider)
                if started:
                    raise
                last = exc
        assert last is not None
        raise last


class FallbackSTT(STTProvider):
    """Opens the first provider that accepts a session; :meth:`failover` moves a call on to the next one."""

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

    async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
        return await self._open_from(0, language, endpointing_ms)

    async def failover(
        self, failure: ProviderError, *, language: str = "en", endpointing_ms: int | None = None
    ) -> STTSession:
        """The chosen recognizer failed mid-call: open a session on a provider after it in the chain."""
        chosen = self.chosen
        self.failures.append(f"stt {chosen.name if chosen else failure.provider}: {failure.message}")
        start = self.providers.index(chosen) + 1 if chosen in self.providers else len(self.providers)
        if start >= len(self.providers):
            raise failure
        return await self._open_from(start, language, endpointing_ms)

    async def _open_from(self, start: int, language: str, endpointing_ms: int | None) -> STTSession:
        last: ProviderError | None = None
        for provider in self.providers[start:]:
            try:
                session = await provider.open_session(language=language, endpointing_ms=endpointing_ms)
            except ProviderError as exc:
                self.failures.append(f"stt {provider.name}: {exc.message}")
                last = exc
                continue
            self.chosen = provider
            self.input_format = provider.input_format
            return session
        assert last is not None
        raise last
